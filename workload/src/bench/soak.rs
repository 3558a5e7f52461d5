//! `vigil bench soak`: sustained ingest with faults, then an account of every request.
//!
//! One `vigil serve` (this binary) writes to a fresh ClickHouse database. The soak first measures
//! what the collector acknowledges flat out (a short `bench ingest`), then sends at half of that,
//! paced, for `--duration`, while at random times it kills the collector with -9 (and starts it
//! again on the same data directory, so its WAL replays) and stops ClickHouse with SIGSTOP for a
//! while (given its pid). Every request carries its own number in the first half of its trace
//! ids. At the end, with the WAL drained, it accounts:
//!
//! - every acknowledged request: its runs and accepted spans are all in ClickHouse (distinct
//!   keys), and a sample of its runs reads back through the API with exactly its spans, once;
//! - every request whose acknowledgement never came (the kills): all of it stored or none;
//! - nothing stored that was never sent, and the API's `runs` metric equals the distinct runs in
//!   ClickHouse (reads count each run once, however often the WAL replayed it);
//! - the collector's resident memory and open files, sampled every few seconds, do not grow from
//!   the second quarter of the soak to the last (judged from ten minutes on).

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use tokio::{sync::watch, task::JoinSet, time::MissedTickBehavior};
use tonic::Code;
use vigil_schemas::time::parse_duration_ns;

use super::{
    IngestBenchOptions, ScratchDatabase, SpawnedCollector, Template, bench_ingest, build_templates,
    mean_spans,
};
use crate::demo::{self, IngestClient, IngestProtocol, Payload};

/// The first four hex digits of every soak trace id; the next twelve are the request's number.
const SOAK_TAG: u64 = 0x50ac << 48;
/// How often the collector's memory and open files are read.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// A sample this soon after its process started is not judged (it is still filling caches).
const SETTLING: Duration = Duration::from_secs(60);
/// Resource use is judged only in soaks at least this long.
const JUDGED_FROM: Duration = Duration::from_secs(600);
/// The most the resident set may grow from the second quarter to the last.
const RSS_GROWTH_LIMIT: f64 = 1.5;
/// The most open files may grow from the second quarter to the last.
const FD_GROWTH_LIMIT: i64 = 16;
/// Runs of acknowledged requests read back through the API, at most.
const API_SAMPLE: usize = 200;
/// Pause of a client after a refusal or a failed connection.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

#[derive(clap::Args, Debug, Clone)]
pub struct SoakBenchArgs {
    /// How long to send: `30m`, `2h`.
    #[arg(long, default_value = "30m")]
    pub duration: String,
    /// ClickHouse's HTTP interface; the soak makes (and drops) its own database there.
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    pub clickhouse_url: String,
    /// The ClickHouse server's process id (`pidof clickhouse-server`): outages stop it with
    /// SIGSTOP and resume it with SIGCONT. Without it, no ClickHouse outage.
    #[arg(long)]
    pub clickhouse_pid: Option<u32>,
    /// Spans per second to send; by default half of what the collector acknowledged flat out in
    /// the capacity measurement.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of the capacity measurement.
    #[arg(long, default_value_t = 15.0)]
    pub capacity_secs: f64,
    /// Client tasks, each with its own connection (even ones native, odd ones OTLP).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Spans per request.
    #[arg(long, default_value_t = 256)]
    pub batch_spans: usize,
    /// Seeds the payloads and the fault times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// 40 seconds with one kill and one short outage, to check the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
    /// Keep the database for a look afterwards.
    #[arg(long)]
    pub keep_database: bool,
    #[arg(long)]
    pub json: bool,
}

/// A fault, at an offset from the start of the load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// kill -9 of the collector, started again at once on the same data directory.
    Kill9 { at_secs: f64 },
    /// ClickHouse stopped with SIGSTOP for `secs`.
    #[serde(rename = "clickhouse_stopped")]
    ClickHouseStopped { at_secs: f64, secs: f64 },
}

impl Fault {
    fn at(&self) -> Duration {
        let (Fault::Kill9 { at_secs } | Fault::ClickHouseStopped { at_secs, .. }) = *self;
        Duration::from_secs_f64(at_secs)
    }
}

/// The collector's memory and open files at one moment.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ResourceSample {
    pub at_secs: f64,
    /// Which process: 0 for the first, one more after each kill.
    pub process: u32,
    pub rss_bytes: u64,
    pub open_files: u64,
}

/// What happened to the requests and what was found stored.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Accounting {
    pub requests_sent: u64,
    pub requests_acknowledged: u64,
    pub spans_acknowledged: u64,
    /// Refused with a retryable status (backlog full, store down) or failed in transport.
    pub requests_failed: u64,
    /// Failed requests found stored whole (the kill came after the WAL had them).
    pub failed_found_stored: u64,
    /// Distinct runs and spans of the soak in ClickHouse.
    pub runs_stored: u64,
    pub spans_stored: u64,
    /// Rows of the soak's spans in ClickHouse at the end, unmerged ones included: more than the
    /// distinct keys while a replayed copy waits for its merge.
    pub span_rows: u64,
    /// The API's `runs` metric over everything stored, against ClickHouse's distinct runs.
    pub api_runs: u64,
    pub clickhouse_runs: u64,
    /// Runs read back through the API, each with exactly its spans.
    pub runs_read_back: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakBenchReport {
    pub duration_secs: f64,
    /// Spans per second acknowledged flat out; `None` when `--rate` was given.
    pub capacity_spans_per_second: Option<f64>,
    pub rate_spans_per_second: f64,
    /// Spans acknowledged per second over the soak, faults included.
    pub achieved_spans_per_second: f64,
    pub faults: Vec<Fault>,
    pub accounting: Accounting,
    pub samples: Vec<ResourceSample>,
    /// Peak RSS in the second and the last quarter (settled samples), bytes.
    pub rss_second_quarter: Option<u64>,
    pub rss_last_quarter: Option<u64>,
    pub open_files_second_quarter: Option<u64>,
    pub open_files_last_quarter: Option<u64>,
    /// Whether memory and open files were judged (long enough a soak) and stayed flat.
    pub resources_judged: bool,
    /// From the end of the load until the WAL backlog was all in ClickHouse.
    pub drained_after_secs: f64,
}

impl fmt::Display for SoakBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.accounting;
        let mib =
            |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
        let n = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
        match self.capacity_spans_per_second {
            Some(c) => writeln!(
                f,
                "soak of {:.0} s at {:.0} spans/s (half of {c:.0} measured); {:.0} spans/s acknowledged on average",
                self.duration_secs, self.rate_spans_per_second, self.achieved_spans_per_second
            )?,
            None => writeln!(
                f,
                "soak of {:.0} s at {:.0} spans/s (given); {:.0} spans/s acknowledged on average",
                self.duration_secs, self.rate_spans_per_second, self.achieved_spans_per_second
            )?,
        }
        for fault in &self.faults {
            match fault {
                Fault::Kill9 { at_secs } => {
                    writeln!(f, "  {at_secs:>7.1} s  kill -9 of the collector")?
                }
                Fault::ClickHouseStopped { at_secs, secs } => {
                    writeln!(f, "  {at_secs:>7.1} s  ClickHouse stopped for {secs:.1} s")?
                }
            }
        }
        writeln!(
            f,
            "  requests      {} sent, {} acknowledged ({} spans), {} failed of which {} stored whole",
            a.requests_sent,
            a.requests_acknowledged,
            a.spans_acknowledged,
            a.requests_failed,
            a.failed_found_stored
        )?;
        writeln!(
            f,
            "  stored        {} runs, {} spans ({} rows); API runs {} = ClickHouse {}",
            a.runs_stored, a.spans_stored, a.span_rows, a.api_runs, a.clickhouse_runs
        )?;
        writeln!(
            f,
            "  drained       the WAL backlog was in ClickHouse {:.1} s after the load ended",
            self.drained_after_secs
        )?;
        writeln!(
            f,
            "  read back     {} runs through the API, each with exactly its spans",
            a.runs_read_back
        )?;
        write!(
            f,
            "  collector     RSS {} → {}, open files {} → {} (peak of the 2nd → last quarter){}",
            mib(self.rss_second_quarter),
            mib(self.rss_last_quarter),
            n(self.open_files_second_quarter),
            n(self.open_files_last_quarter),
            if self.resources_judged {
                ""
            } else {
                "; not judged: shorter than 10 minutes"
            }
        )
    }
}

pub async fn run(mut args: SoakBenchArgs) -> anyhow::Result<SoakBenchReport> {
    if args.smoke {
        args.duration = "40s".into();
        args.capacity_secs = args.capacity_secs.min(3.0);
        args.concurrency = args.concurrency.min(2);
    }
    let duration = parse_duration_ns(&args.duration)
        .and_then(|ns| u64::try_from(ns).ok())
        .filter(|&ns| ns > 0)
        .map(Duration::from_nanos)
        .with_context(|| {
            format!(
                "--duration {:?}: a duration such as 30m or 2h",
                args.duration
            )
        })?;
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let faults = schedule_faults(
        &mut rng,
        duration,
        args.clickhouse_pid.is_some(),
        args.smoke,
    );

    let database = ScratchDatabase::new(&args.clickhouse_url, "vigil_bench_soak")?;
    let data_dir = std::env::temp_dir().join(&database.name);
    let result = soak(&args, duration, faults, &database, &data_dir).await;
    let _ = std::fs::remove_dir_all(&data_dir);
    if !args.keep_database {
        database.drop().await;
    }
    result
}

/// Kills every five minutes and outages every six on average (one of each at least), at
/// uniformly random times between a tenth and four fifths of the soak; outages last 5–40 s.
fn schedule_faults(rng: &mut StdRng, duration: Duration, outages: bool, smoke: bool) -> Vec<Fault> {
    let secs = duration.as_secs_f64();
    let at = |rng: &mut StdRng| rng.random_range(secs * 0.1..secs * 0.8);
    let mut faults = Vec::new();
    for _ in 0..((secs / 300.0).round() as usize).max(1) {
        faults.push(Fault::Kill9 { at_secs: at(rng) });
    }
    if outages {
        for _ in 0..((secs / 360.0).round() as usize).max(1) {
            let length = if smoke {
                3.0
            } else {
                rng.random_range(5.0..40.0)
            };
            faults.push(Fault::ClickHouseStopped {
                at_secs: at(rng),
                secs: length,
            });
        }
    }
    faults.sort_by_key(Fault::at);
    faults
}

/// Where the clients send: the current collector's endpoint and key (new after each kill).
type Target = watch::Receiver<(String, String)>;

async fn soak(
    args: &SoakBenchArgs,
    duration: Duration,
    faults: Vec<Fault>,
    database: &ScratchDatabase,
    data_dir: &std::path::Path,
) -> anyhow::Result<SoakBenchReport> {
    let env = database.env();
    let mut collector = Some(SpawnedCollector::start_at(data_dir, &env).await?);
    let first = collector.as_ref().context("no collector")?;
    let options = IngestBenchOptions {
        endpoint: first.endpoint.clone(),
        token: first.token.clone(),
        protocol: IngestProtocol::Mixed,
        concurrency: args.concurrency,
        batch_spans: args.batch_spans,
        duration: Duration::try_from_secs_f64(args.capacity_secs)
            .context("--capacity-secs is not a usable number of seconds")?,
        warmup: Duration::from_secs(1),
        seed: args.seed,
        collector_pid: None,
        gzip: false,
    };
    let (capacity, rate) = match args.rate {
        Some(rate) if rate > 0.0 && rate.is_finite() => (None, rate),
        Some(rate) => bail!("--rate {rate}: spans per second must be above 0"),
        None => {
            let measured = bench_ingest(options.clone()).await?.spans_per_second;
            if measured <= 0.0 {
                bail!("the capacity measurement acknowledged nothing");
            }
            (Some(measured), measured / 2.0)
        }
    };

    let now = demo::now_ns()?;
    let templates = build_templates(&options, now);
    let (target_tx, target) = watch::channel((first.endpoint.clone(), first.token.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let spans_per_request = mean_spans(&templates);
    let period = Duration::from_secs_f64(args.concurrency as f64 * spans_per_request / rate)
        .max(Duration::from_micros(1));
    let mut clients = JoinSet::new();
    for (task, templates) in templates.into_iter().enumerate() {
        let client = Client {
            templates: templates.into_iter().map(SoakTemplate::new).collect(),
            target: target.clone(),
            counter: counter.clone(),
        };
        clients.spawn(client.run(period, stop.clone(), task));
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut process = 0;
    let mut pending = faults.iter().peekable();
    // A stopped ClickHouse and when to resume it; dropping it resumes it, also on an error.
    let mut outage: Option<(Stopped, Instant)> = None;
    let outcome: anyhow::Result<()> = async {
        let mut next_sample = started;
        while started.elapsed() < duration && !stop.load(Ordering::Relaxed) {
            let pid = collector.as_ref().context("no collector")?.pid();
            if Instant::now() >= next_sample {
                if let Some(sample) = sample(pid, process, started) {
                    samples.push(sample);
                }
                next_sample += SAMPLE_EVERY;
            }
            if let Some(fault) = pending.next_if(|f| started.elapsed() >= f.at()) {
                match *fault {
                    Fault::Kill9 { .. } => {
                        if let Some(dead) = collector.take() {
                            dead.kill9();
                        }
                        let next = SpawnedCollector::start_at(data_dir, &env).await?;
                        process += 1;
                        target_tx.send_replace((next.endpoint.clone(), next.token.clone()));
                        collector = Some(next);
                    }
                    Fault::ClickHouseStopped { secs, .. } => {
                        let pid = args.clickhouse_pid.context("an outage needs the pid")?;
                        let until = Instant::now() + Duration::from_secs_f64(secs);
                        outage = Some((Stopped::new(pid)?, until));
                    }
                }
            }
            if outage
                .as_ref()
                .is_some_and(|(_, until)| Instant::now() >= *until)
            {
                outage = None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
    .await;
    drop(outage);
    stop.store(true, Ordering::Relaxed);
    let mut sent = BTreeMap::new();
    while let Some(joined) = clients.join_next().await {
        sent.extend(joined.context("a client task panicked")??);
    }
    outcome?;
    let elapsed = started.elapsed();

    let collector = collector.context("no collector after the last kill")?;
    let http = reqwest::Client::new();
    let load_ended = Instant::now();
    drain(&http, &collector).await?;
    let drained_after_secs = load_ended.elapsed().as_secs_f64();
    let accounting = account(&http, database, &collector, &sent, now).await;
    collector.stop();
    let accounting = accounting?;
    let achieved = accounting.spans_acknowledged as f64 / elapsed.as_secs_f64();
    let mut report = SoakBenchReport {
        duration_secs: elapsed.as_secs_f64(),
        capacity_spans_per_second: capacity,
        rate_spans_per_second: rate,
        achieved_spans_per_second: achieved,
        faults,
        accounting,
        samples,
        rss_second_quarter: None,
        rss_last_quarter: None,
        open_files_second_quarter: None,
        open_files_last_quarter: None,
        resources_judged: duration >= JUDGED_FROM,
        drained_after_secs,
    };
    judge_resources(&mut report, duration)?;
    Ok(report)
}

/// A stopped ClickHouse, resumed when dropped (also when the soak fails meanwhile).
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> anyhow::Result<Stopped> {
        signal(pid, "-STOP")?;
        Ok(Stopped(pid))
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Err(e) = signal(self.0, "-CONT") {
            eprintln!("resuming ClickHouse (pid {}): {e}", self.0);
        }
    }
}

fn signal(pid: u32, which: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill {which} {pid}: {status}");
    }
    Ok(())
}

/// One request as sent: its spans and runs, one of its runs (trace id, span count) to read
/// back, and the spans the collector accepted, `None` when no acknowledgement came.
#[derive(Debug, Clone)]
struct Sent {
    spans: u64,
    runs: u64,
    sample: Option<(String, u64)>,
    accepted: Option<u64>,
}

/// A payload to send again and again, with what the accounting needs of each request sent from
/// it, worked out once: stamping a number changes only the high half of its trace ids.
struct SoakTemplate {
    template: Template,
    runs: u64,
    /// The low half of the run read back as the request's sample (its lowest trace id), and
    /// that run's span count.
    sample: Option<(String, u64)>,
}

impl SoakTemplate {
    fn new(template: Template) -> SoakTemplate {
        let runs = runs_of(&template.payload);
        let sample = runs
            .iter()
            .filter_map(|(trace, spans)| Some((trace.get(16..)?.to_string(), *spans)))
            .min();
        SoakTemplate {
            runs: runs.len() as u64,
            sample,
            template,
        }
    }

    /// The payload stamped with `high`, and its sample's trace id and span count.
    fn stamp(&mut self, high: u64) -> Option<(String, u64)> {
        self.template.stamp(high);
        let (low, spans) = self.sample.as_ref()?;
        Some((format!("{high:016x}{low}"), *spans))
    }
}

struct Client {
    templates: Vec<SoakTemplate>,
    target: Target,
    counter: Arc<AtomicU64>,
}

impl Client {
    /// Sends one request every `period`, each with a new number, reconnecting when the target
    /// changes or a request fails; returns every request it sent.
    async fn run(
        mut self,
        period: Duration,
        stop: Arc<AtomicBool>,
        task: usize,
    ) -> anyhow::Result<Vec<(u64, Sent)>> {
        let mut sent = Vec::new();
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut client = None;
        let mut next = task;
        while !stop.load(Ordering::Relaxed) {
            ticks.tick().await;
            if self.target.has_changed()? {
                client = None;
            }
            let connected = match client.as_mut() {
                Some(c) => c,
                None => {
                    let (endpoint, token) = self.target.borrow_and_update().clone();
                    match IngestClient::connect(&endpoint, &token, false).await {
                        Ok(c) => client.insert(c),
                        Err(_) => {
                            tokio::time::sleep(RETRY_PAUSE).await;
                            continue;
                        }
                    }
                }
            };
            let count = self.templates.len();
            let soak_template = &mut self.templates[next % count];
            next += 1;
            let number = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
            let sample = soak_template.stamp(SOAK_TAG | number);
            let (runs, template) = (soak_template.runs, &soak_template.template);
            let result = connected.export(template.payload.clone()).await;
            let accepted = match result {
                Ok(ack) => Some(ack.accepted_spans(template.spans).min(template.spans)),
                Err(status)
                    if matches!(
                        status.code(),
                        Code::InvalidArgument | Code::Unauthenticated | Code::PermissionDenied
                    ) =>
                {
                    stop.store(true, Ordering::Relaxed);
                    bail!(
                        "the collector refused a soak request ({:?}): {}",
                        status.code(),
                        status.message()
                    );
                }
                Err(_) => {
                    // Refused (retryable) or cut off by a kill: it may be stored or not.
                    client = None;
                    tokio::time::sleep(RETRY_PAUSE).await;
                    None
                }
            };
            sent.push((
                number,
                Sent {
                    spans: template.spans,
                    runs,
                    sample,
                    accepted,
                },
            ));
        }
        Ok(sent)
    }
}

/// The trace ids of a payload's runs, each with its span count.
fn runs_of(payload: &Payload) -> HashMap<String, u64> {
    let mut runs = HashMap::new();
    match payload {
        Payload::Native(request) => {
            for span in &request.spans {
                *runs.entry(span.trace_id.clone()).or_insert(0) += 1;
            }
            for run in &request.runs {
                runs.entry(run.trace_id.clone()).or_insert(0);
            }
        }
        Payload::Otlp(request) => {
            let spans = request
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans);
            for span in spans {
                *runs.entry(hex::encode(&span.trace_id)).or_insert(0) += 1;
            }
        }
    }
    runs
}

/// The collector's resident set and open files from `/proc`, if it is there.
fn sample(pid: u32, process: u32, started: Instant) -> Option<ResourceSample> {
    let rss_bytes = super::rss_bytes(pid)?;
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ResourceSample {
        at_secs: started.elapsed().as_secs_f64(),
        process,
        rss_bytes,
        open_files,
    })
}

/// Waits (up to five minutes) until the collector's WAL backlog is written to the store.
async fn drain(http: &reqwest::Client, collector: &SpawnedCollector) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while collector.figure(http, "vigil_wal_backlog_bytes").await? > 0.0 {
        if Instant::now() > deadline {
            bail!("the WAL backlog was not written to ClickHouse within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn account(
    http: &reqwest::Client,
    database: &ScratchDatabase,
    collector: &SpawnedCollector,
    sent: &BTreeMap<u64, Sent>,
    generated_ns: i64,
) -> anyhow::Result<Accounting> {
    let db = &database.name;
    let soak = format!("startsWith(trace_id, '{:04x}')", SOAK_TAG >> 48);
    let per_request = |table: &str, key: &str| {
        format!(
            "SELECT substring(trace_id, 5, 12) AS request, uniqExact({key}) FROM {db}.{table} WHERE {soak} GROUP BY request FORMAT TabSeparated"
        )
    };
    let spans_stored = counts_by_request(
        &database
            .select(&per_request("spans", "trace_id, span_id"))
            .await?,
    )?;
    let runs_stored = counts_by_request(&database.select(&per_request("runs", "trace_id")).await?)?;

    let mut a = Accounting {
        requests_sent: sent.len() as u64,
        ..Accounting::default()
    };
    for (number, request) in sent {
        let spans = spans_stored.get(number).copied().unwrap_or(0);
        let runs = runs_stored.get(number).copied().unwrap_or(0);
        match request.accepted {
            Some(accepted) => {
                a.requests_acknowledged += 1;
                a.spans_acknowledged += accepted;
                if spans != accepted || runs != request.runs {
                    bail!(
                        "acknowledged request {number}: {spans} of its {accepted} accepted spans and {runs} of its {} runs are stored",
                        request.runs
                    );
                }
            }
            None => {
                a.requests_failed += 1;
                if spans == request.spans && runs == request.runs {
                    a.failed_found_stored += 1;
                } else if spans != 0 || runs != 0 {
                    bail!(
                        "failed request {number} is stored in part: {spans} of {} spans, {runs} runs",
                        request.spans
                    );
                }
            }
        }
    }
    if let Some(stray) = spans_stored
        .keys()
        .chain(runs_stored.keys())
        .find(|n| !sent.contains_key(n))
    {
        bail!("request {stray} is stored but was never sent");
    }
    a.spans_stored = spans_stored.values().sum();
    a.runs_stored = runs_stored.values().sum();
    a.span_rows = database
        .number(&format!("SELECT count() FROM {db}.spans WHERE {soak}"))
        .await?;

    // Everything stored, the capacity measurement's runs too, counted by the API and by ClickHouse.
    a.clickhouse_runs = database
        .number(&format!("SELECT uniqExact(trace_id) FROM {db}.runs"))
        .await?;
    a.api_runs = api_runs(http, collector, generated_ns).await?;
    if a.api_runs != a.clickhouse_runs {
        bail!(
            "the API counts {} runs, ClickHouse holds {}",
            a.api_runs,
            a.clickhouse_runs
        );
    }

    // A sample of acknowledged runs, spread over the soak, read back whole.
    let acknowledged: Vec<&(String, u64)> = sent
        .values()
        .filter(|r| r.accepted == Some(r.spans))
        .filter_map(|r| r.sample.as_ref())
        .collect();
    let step = acknowledged.len().div_ceil(API_SAMPLE).max(1);
    for (trace_id, spans) in acknowledged.into_iter().step_by(step) {
        read_back(http, collector, trace_id, *spans).await?;
        a.runs_read_back += 1;
    }
    Ok(a)
}

/// `request number → count` from the TabSeparated answer `<12 hex digits>\t<count>`.
fn counts_by_request(answer: &str) -> anyhow::Result<BTreeMap<u64, u64>> {
    answer
        .lines()
        .map(|line| {
            let (number, count) = line.split_once('\t').context("a row without a tab")?;
            Ok((u64::from_str_radix(number, 16)?, count.parse()?))
        })
        .collect()
}

/// The API's count of runs over a day either side of the payloads' times.
async fn api_runs(
    http: &reqwest::Client,
    collector: &SpawnedCollector,
    around_ns: i64,
) -> anyhow::Result<u64> {
    let day = 86_400;
    let secs = around_ns / 1_000_000_000;
    let time = |s: i64| vigil_schemas::time::rfc3339(s * 1_000_000_000);
    let answer: serde_json::Value = http
        .post(format!("{}/api/v1/metrics/query", collector.http))
        .bearer_auth(&collector.token)
        .json(&serde_json::json!({"from": time(secs - day), "to": time(secs + day), "metrics": ["runs"]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["rows"][0]["runs"]
        .as_u64()
        .context("the metrics answer has no runs")
}

/// Reads one run through the API: exactly `spans` spans, none twice.
async fn read_back(
    http: &reqwest::Client,
    collector: &SpawnedCollector,
    trace_id: &str,
    spans: u64,
) -> anyhow::Result<()> {
    let run: serde_json::Value = http
        .get(format!("{}/api/v1/runs/{trace_id}", collector.http))
        .bearer_auth(&collector.token)
        .send()
        .await?
        .error_for_status()
        .with_context(|| format!("reading run {trace_id}"))?
        .json()
        .await?;
    let mut ids: Vec<&str> = run["spans"]
        .as_array()
        .context("a run without spans")?
        .iter()
        .filter_map(|s| s["span_id"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let listed = run["spans"].as_array().map_or(0, Vec::len);
    if ids.len() != listed || listed as u64 != spans {
        bail!(
            "run {trace_id}: {listed} spans listed, {} distinct, {spans} sent",
            ids.len()
        );
    }
    Ok(())
}

/// Peaks of settled samples in the second and last quarters; fails a judged soak whose memory
/// or open files grew past the limits.
fn judge_resources(report: &mut SoakBenchReport, duration: Duration) -> anyhow::Result<()> {
    let secs = duration.as_secs_f64();
    let settled: Vec<ResourceSample> = {
        let mut first_seen: HashMap<u32, f64> = HashMap::new();
        report
            .samples
            .iter()
            .filter(|s| {
                let start = *first_seen.entry(s.process).or_insert(s.at_secs);
                s.at_secs - start >= SETTLING.as_secs_f64()
            })
            .copied()
            .collect()
    };
    let peak = |from: f64, to: f64, of: fn(&ResourceSample) -> u64| {
        settled
            .iter()
            .filter(|s| s.at_secs >= secs * from && s.at_secs < secs * to)
            .map(of)
            .max()
    };
    report.rss_second_quarter = peak(0.25, 0.5, |s| s.rss_bytes);
    report.rss_last_quarter = peak(0.75, 1.01, |s| s.rss_bytes);
    report.open_files_second_quarter = peak(0.25, 0.5, |s| s.open_files);
    report.open_files_last_quarter = peak(0.75, 1.01, |s| s.open_files);
    if !report.resources_judged {
        return Ok(());
    }
    let (Some(rss2), Some(rss4), Some(fd2), Some(fd4)) = (
        report.rss_second_quarter,
        report.rss_last_quarter,
        report.open_files_second_quarter,
        report.open_files_last_quarter,
    ) else {
        bail!(
            "too few settled samples in the second or the last quarter to judge memory and open files"
        );
    };
    if rss4 as f64 > rss2 as f64 * RSS_GROWTH_LIMIT {
        bail!("resident memory grew from {rss2} to {rss4} bytes:\n{report}");
    }
    if fd4 as i64 - fd2 as i64 > FD_GROWTH_LIMIT {
        bail!("open files grew from {fd2} to {fd4}:\n{report}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_fall_inside_the_soak_in_order() {
        let mut rng = StdRng::seed_from_u64(7);
        let faults = schedule_faults(&mut rng, Duration::from_secs(1800), true, false);
        let kills = faults
            .iter()
            .filter(|f| matches!(f, Fault::Kill9 { .. }))
            .count();
        assert_eq!((kills, faults.len() - kills), (6, 5));
        assert!(faults.windows(2).all(|w| w[0].at() <= w[1].at()));
        assert!(
            faults
                .iter()
                .all(|f| (180.0..1440.0).contains(&f.at().as_secs_f64()))
        );
        let short = schedule_faults(&mut rng, Duration::from_secs(40), false, true);
        assert_eq!(short.len(), 1, "one kill, no outage without a pid");
    }

    #[test]
    fn a_stamped_template_knows_its_runs_and_sample_without_reading_the_payload() {
        let options = IngestBenchOptions {
            protocol: super::super::IngestProtocol::Mixed,
            concurrency: 2,
            batch_spans: 64,
            ..Default::default()
        };
        for template in build_templates(&options, 1_800_000_000_000_000_000)
            .into_iter()
            .flatten()
        {
            let mut template = SoakTemplate::new(template);
            for number in [1, 0xfff, 123_456_789] {
                let sample = template.stamp(SOAK_TAG | number);
                let runs = runs_of(&template.template.payload);
                assert_eq!(template.runs, runs.len() as u64);
                assert_eq!(sample, runs.into_iter().min());
            }
        }
    }

    #[test]
    fn stored_counts_are_read_by_request_number() {
        let counts = counts_by_request("000000000001\t12\n00000000000a\t3\n").unwrap();
        assert_eq!(counts, BTreeMap::from([(1, 12), (10, 3)]));
        assert!(counts_by_request("zz\t1\n").is_err());
    }
}
