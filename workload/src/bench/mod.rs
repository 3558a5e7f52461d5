//! `vigil bench ingest`: a load generator against a running collector.
//!
//! Request payloads are generated from [`crate::generator`] before the clock starts, so their
//! cost is not measured. `concurrency` client tasks, each on its own connection, send batches of
//! about `batch_spans` spans back to back. Before each request the trace ids are rewritten (the
//! first 8 bytes become a per-request number), so nothing is deduplicated, across requests nor
//! across benchmark invocations. After a warm-up, the benchmark counts the spans acknowledged and
//! the acknowledgement latency of every request that completes inside the measured window, and,
//! given the collector's pid, its CPU time and peak RSS from `/proc`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::task::JoinSet;
use vigil_schemas::percentile::exact_percentile;

mod alerts;
mod audit;
mod clickhouse_ingest;
mod cohorts;
mod failover;
mod keys;
mod metrics;
mod runs;
mod soak;

use crate::demo::{self, Ack, IngestClient, IngestProtocol, KeyArgs, Payload};
use crate::generator::{self, GeneratedRun, WorkloadConfig};

/// Distinct request payloads each client task cycles through.
const TEMPLATES_PER_TASK: usize = 4;
/// Pause of a client after a retryable refusal.
const REFUSAL_PAUSE: Duration = Duration::from_millis(50);
/// Linux's USER_HZ, when `getconf CLK_TCK` cannot tell.
const DEFAULT_CLOCK_TICKS: u64 = 100;
/// Length of the run timestamps' window, ending when the payloads are generated.
const PAYLOAD_WINDOW_NS: i64 = 10 * 60 * 1_000_000_000;

/// What `vigil bench ingest` does.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestBenchOptions {
    pub endpoint: String,
    /// API key with the `ingest` role; empty sends none.
    pub token: String,
    /// `Mixed` gives even tasks native, odd tasks OTLP.
    pub protocol: IngestProtocol,
    /// Client tasks, each with its own connection and one request in flight.
    pub concurrency: usize,
    /// Spans per request (whole runs are packed until the next would pass it).
    pub batch_spans: usize,
    /// Measured time, after the warm-up.
    pub duration: Duration,
    pub warmup: Duration,
    pub seed: u64,
    /// The collector's process id, to measure its CPU time and peak RSS.
    pub collector_pid: Option<u32>,
    /// Send gzip-compressed requests.
    pub gzip: bool,
}

impl Default for IngestBenchOptions {
    fn default() -> Self {
        IngestBenchOptions {
            endpoint: demo::DEFAULT_ENDPOINT.to_string(),
            token: String::new(),
            protocol: IngestProtocol::Otlp,
            concurrency: 8,
            batch_spans: 512,
            duration: Duration::from_secs(20),
            warmup: Duration::from_secs(3),
            seed: 1,
            collector_pid: None,
            gzip: false,
        }
    }
}

impl IngestBenchOptions {
    fn validate(&self) -> anyhow::Result<()> {
        if self.concurrency == 0 {
            bail!("concurrency is 0: at least one client task is needed");
        }
        if self.batch_spans == 0 {
            bail!("batch_spans is 0: a request needs at least one span");
        }
        if self.duration.is_zero() {
            bail!("duration is 0: nothing would be measured");
        }
        Ok(())
    }
}

/// The collector's resource use over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorUsage {
    pub pid: u32,
    /// utime + stime spent in the window.
    pub cpu_seconds: f64,
    /// `cpu_seconds` ÷ window: cores kept busy on average.
    pub cores_used: f64,
    /// Spans acknowledged per second of collector CPU (per core).
    pub spans_per_cpu_second: Option<f64>,
    /// VmHWM at the end: the process's peak resident set.
    pub peak_rss_bytes: Option<u64>,
}

/// Results of `vigil bench ingest`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestBenchReport {
    pub endpoint: String,
    pub protocol: IngestProtocol,
    pub concurrency: usize,
    pub batch_spans: usize,
    /// Average spans per request actually sent.
    pub spans_per_request: f64,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    /// Requests acknowledged in the window.
    pub requests: u64,
    /// Retryable refusals (UNAVAILABLE, RESOURCE_EXHAUSTED) in the window.
    pub refusals: u64,
    pub spans_sent: u64,
    pub spans_acknowledged: u64,
    pub spans_rejected: u64,
    pub spans_per_second: f64,
    /// Acknowledgement latency per request; exact percentiles (docs/design.md#percentiles).
    pub latency_p50_ms: Option<f64>,
    pub latency_p90_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// CPU time of this load generator in the window (it shares the machine).
    pub client_cpu_seconds: Option<f64>,
    pub collector: Option<CollectorUsage>,
}

impl fmt::Display for IngestBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1} ms"));
        writeln!(
            f,
            "ingest bench against {}: {}, {} clients, {:.0} spans/request, {:.1} s measured after {:.1} s warm-up",
            self.endpoint,
            self.protocol,
            self.concurrency,
            self.spans_per_request,
            self.duration_secs,
            self.warmup_secs,
        )?;
        writeln!(
            f,
            "  requests      {} acknowledged, {} refused (retryable)",
            self.requests, self.refusals
        )?;
        writeln!(
            f,
            "  spans         {} acknowledged, {} rejected: {:.0} spans/s",
            self.spans_acknowledged, self.spans_rejected, self.spans_per_second
        )?;
        write!(
            f,
            "  ack latency   p50 {}, p90 {}, p99 {}, max {}",
            ms(self.latency_p50_ms),
            ms(self.latency_p90_ms),
            ms(self.latency_p99_ms),
            ms(self.latency_max_ms),
        )?;
        if let Some(c) = &self.collector {
            write!(
                f,
                "\n  collector     pid {}: {:.2} CPU s ({:.2} cores)",
                c.pid, c.cpu_seconds, c.cores_used
            )?;
            if let Some(per_core) = c.spans_per_cpu_second {
                write!(f, ", {per_core:.0} spans/s per core")?;
            }
            if let Some(rss) = c.peak_rss_bytes {
                write!(f, ", peak RSS {:.1} MiB", rss as f64 / (1024.0 * 1024.0))?;
            }
        }
        if let Some(cpu) = self.client_cpu_seconds {
            write!(f, "\n  load generator {cpu:.2} CPU s")?;
        }
        Ok(())
    }
}

/// `vigil bench …`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Load-test the ingest of a running collector.
    Ingest(IngestBenchArgs),
    /// Ingest through Vigil into ClickHouse, against the same rows inserted directly with
    /// `clickhouse-client` in Native format.
    Clickhouse(clickhouse_ingest::ClickHouseBenchArgs),
    /// The dashboard's metric queries over 1,000,000 runs / 10,000,000 spans on each store,
    /// through the API, against the same SQL in DuckDB and in `clickhouse-client`.
    Metrics(metrics::MetricsBenchArgs),
    /// 1,000 alert rules evaluated over 1,000,000 runs / 10,000,000 spans on each store, against
    /// the 60 s interval they must fit in.
    Alerts(alerts::AlertsBenchArgs),
    /// Compliance investigations and CSV exports over 1,000,000 runs / 10,000,000 spans on each
    /// store.
    Audit(audit::AuditBenchArgs),
    /// What the web UI's first pages ask over 1,000,000 runs / 10,000,000 spans on each store:
    /// a page of 50 runs, unfiltered and by each filter, and a run's detail.
    Runs(runs::RunsBenchArgs),
    /// Two cohorts of about 500,000 runs each compared (`POST /api/v1/cohorts/compare`) on each
    /// store, against the plain per-run read of the same rows in `clickhouse-client`.
    Cohorts(cohorts::CohortsBenchArgs),
    /// How long a key created or revoked on one node takes to hold on another sharing its
    /// ClickHouse store.
    Keys(keys::KeysBenchArgs),
    /// How long after the death (kill -9) of the alerting node that holds the lease a standby
    /// holds it and evaluates.
    Failover(failover::FailoverBenchArgs),
    /// Sustained ingest at half of the measured capacity for `--duration`, with kill -9 of the
    /// collector and ClickHouse stopped at random times; then every request accounted for, and
    /// the collector's memory and open files judged flat.
    Soak(soak::SoakBenchArgs),
}

/// `vigil bench ingest`.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestBenchArgs {
    /// gRPC endpoint of the collector.
    #[arg(long, env = "VIGIL_ENDPOINT", default_value = demo::DEFAULT_ENDPOINT)]
    pub endpoint: String,
    #[command(flatten)]
    pub key: KeyArgs,
    /// native, otlp or mixed (even client tasks native, odd ones OTLP).
    #[arg(long, default_value = "otlp")]
    pub protocol: IngestProtocol,
    /// Client tasks, each with its own connection and one request in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Spans per request.
    #[arg(long, default_value_t = 512)]
    pub batch_spans: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 20.0)]
    pub duration_secs: f64,
    #[arg(long, default_value_t = 3.0)]
    pub warmup_secs: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The collector's process id, to report its CPU time and peak RSS.
    #[arg(long)]
    pub collector_pid: Option<u32>,
    /// Send gzip-compressed requests.
    #[arg(long)]
    pub gzip: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Start a fresh `vigil serve` (this binary, default configuration, a temporary data
    /// directory, free ports) and measure it, instead of a running collector.
    #[arg(long)]
    pub spawn: bool,
    /// A few seconds against a spawned collector, to check the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
}

/// Runs a `vigil bench` command and prints its report.
#[allow(clippy::print_stdout)]
pub async fn run_cli(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(mut args) => {
            if args.smoke {
                args.spawn = true;
                args.duration_secs = args.duration_secs.min(2.0);
                args.warmup_secs = args.warmup_secs.min(0.5);
                args.concurrency = args.concurrency.min(2);
                args.batch_spans = args.batch_spans.min(100);
            }
            let seconds = |name: &str, value: f64| {
                Duration::try_from_secs_f64(value)
                    .with_context(|| format!("--{name} {value} is not a usable number of seconds"))
            };
            let spawned = if args.spawn {
                Some(SpawnedCollector::start().await?)
            } else {
                None
            };
            let (endpoint, token, collector_pid) = match &spawned {
                Some(c) => (c.endpoint.clone(), c.token.clone(), Some(c.pid())),
                None => (args.endpoint, args.key.resolve()?, args.collector_pid),
            };
            let report = bench_ingest(IngestBenchOptions {
                endpoint,
                token,
                protocol: args.protocol,
                concurrency: args.concurrency,
                batch_spans: args.batch_spans,
                duration: seconds("duration-secs", args.duration_secs)?,
                warmup: seconds("warmup-secs", args.warmup_secs)?,
                seed: args.seed,
                collector_pid,
                gzip: args.gzip,
            })
            .await;
            if let Some(collector) = spawned {
                collector.stop();
            }
            let report = report?;
            if args.smoke && report.spans_acknowledged == 0 {
                bail!("smoke run: no span was acknowledged");
            }
            print_report(&report, args.json)
        }
        BenchCommand::Metrics(args) => print_report(&metrics::run(args.clone()).await?, args.json),
        BenchCommand::Alerts(args) => print_report(&alerts::run(args.clone()).await?, args.json),
        BenchCommand::Audit(args) => print_report(&audit::run(args.clone()).await?, args.json),
        BenchCommand::Cohorts(args) => print_report(&cohorts::run(args.clone()).await?, args.json),
        BenchCommand::Runs(args) => print_report(&runs::run(args.clone()).await?, args.json),
        BenchCommand::Keys(args) => print_report(&keys::run(args.clone()).await?, args.json),
        BenchCommand::Failover(args) => {
            print_report(&failover::run(args.clone()).await?, args.json)
        }
        BenchCommand::Soak(args) => print_report(&soak::run(args.clone()).await?, args.json),
        BenchCommand::Clickhouse(args) => {
            print_report(&clickhouse_ingest::run(args.clone()).await?, args.json)
        }
    }
}

/// A fresh ClickHouse database the spawned nodes of one benchmark share, dropped at its end.
pub(crate) struct ScratchDatabase {
    url: String,
    pub name: String,
}

impl ScratchDatabase {
    /// `<prefix>_<ms since the epoch>` on the ClickHouse at `url` (created by the first node's
    /// migrations).
    pub fn new(url: &str, prefix: &str) -> anyhow::Result<ScratchDatabase> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis();
        Ok(ScratchDatabase {
            url: url.to_string(),
            name: format!("{prefix}_{stamp}"),
        })
    }

    /// The `vigil serve` settings of a node on it.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("VIGIL_STORE__KIND", "clickhouse"),
            ("VIGIL_STORE__CLICKHOUSE__URL", &self.url),
            ("VIGIL_STORE__CLICKHOUSE__DATABASE", &self.name),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec()
    }

    /// Runs one statement; its answer as text.
    pub async fn select(&self, sql: &str) -> anyhow::Result<String> {
        let response = reqwest::Client::new()
            .post(&self.url)
            .body(sql.to_string())
            .send()
            .await
            .with_context(|| format!("ClickHouse at {}", self.url))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("ClickHouse answered {status} to {sql}: {text}");
        }
        Ok(text)
    }

    /// A statement whose answer is one number.
    pub async fn number(&self, sql: &str) -> anyhow::Result<u64> {
        let text = self.select(sql).await?;
        text.trim()
            .parse()
            .with_context(|| format!("{sql} answered {text:?}, not a number"))
    }

    /// Drops it; a failure is told, not returned (the measurement stands).
    pub async fn drop(self) {
        let dropped = reqwest::Client::new()
            .post(&self.url)
            .body(format!("DROP DATABASE IF EXISTS {}", self.name))
            .send()
            .await;
        if let Err(e) = dropped {
            eprintln!("dropping {}: {e}", self.name);
        }
    }
}

/// Milliseconds measured again and again: min, median and max (a JSON array of the three).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(transparent)]
pub struct Spread(pub [f64; 3]);

impl Spread {
    /// Of at least one value.
    pub fn of(values: &mut [f64]) -> Spread {
        values.sort_by(f64::total_cmp);
        Spread([
            values[0],
            values[values.len() / 2],
            values[values.len() - 1],
        ])
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [min, median, max] = self.0;
        write!(f, "{min:.0} / {median:.0} / {max:.0} ms")
    }
}

/// A figure of the `/metrics` of the server at `http`, by the whole name of a sample.
pub(crate) async fn figure(http: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("{base}/metrics has no {name}"))
}

/// Prints a report for people, or as JSON.
#[allow(clippy::print_stdout)]
fn print_report(report: &(impl fmt::Display + Serialize), json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// A `vigil serve` child process on free ports with its own temporary data directory.
pub(crate) struct SpawnedCollector {
    child: std::process::Child,
    data_dir: std::path::PathBuf,
    remove_data_dir: bool,
    pub endpoint: String,
    /// Base URL of its HTTP side (`/metrics`, the REST API).
    pub http: String,
    pub token: String,
}

impl SpawnedCollector {
    /// With the default configuration: the embedded store.
    pub async fn start() -> anyhow::Result<SpawnedCollector> {
        SpawnedCollector::start_with(&[]).await
    }

    /// With these `VIGIL_*` settings on top of the defaults, in a temporary data directory
    /// removed by [`Self::stop`].
    pub async fn start_with(env: &[(String, String)]) -> anyhow::Result<SpawnedCollector> {
        let data_dir = std::env::temp_dir().join(format!(
            "vigil-bench-{}-{}",
            std::process::id(),
            free_port()?
        ));
        let mut collector = SpawnedCollector::start_at(&data_dir, env).await?;
        collector.remove_data_dir = true;
        Ok(collector)
    }

    /// On the data directory `data_dir`, which is kept.
    pub async fn start_at(
        data_dir: &std::path::Path,
        env: &[(String, String)],
    ) -> anyhow::Result<SpawnedCollector> {
        SpawnedCollector::start_binary_at(&std::env::current_exe()?, data_dir, env).await
    }

    /// [`Self::start_at`] with another `vigil` binary (another build, to compare). Its ports
    /// are picked free, but another process may take one before it binds: then it exits at
    /// once, and it is started again on other ports.
    pub async fn start_binary_at(
        binary: &std::path::Path,
        data_dir: &std::path::Path,
        env: &[(String, String)],
    ) -> anyhow::Result<SpawnedCollector> {
        const ATTEMPTS: usize = 3;
        for _ in 0..ATTEMPTS {
            if let Some(collector) = SpawnedCollector::try_start(binary, data_dir, env).await? {
                return Ok(collector);
            }
        }
        bail!("the spawned collector exited during start {ATTEMPTS} times")
    }

    /// One start: `None` when the process exited before it was serving.
    async fn try_start(
        binary: &std::path::Path,
        data_dir: &std::path::Path,
        env: &[(String, String)],
    ) -> anyhow::Result<Option<SpawnedCollector>> {
        let data_dir = data_dir.to_path_buf();
        let (grpc, http) = (free_port()?, free_port()?);
        let child = std::process::Command::new(binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .env("VIGIL_SERVER__GRPC_LISTEN", format!("127.0.0.1:{grpc}"))
            .env("VIGIL_SERVER__HTTP_LISTEN", format!("127.0.0.1:{http}"))
            .env("VIGIL_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting vigil serve")?;
        let key_file = data_dir.join("bootstrap.key");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut collector = SpawnedCollector {
            child,
            data_dir,
            remove_data_dir: false,
            endpoint: format!("http://127.0.0.1:{grpc}"),
            http: format!("http://127.0.0.1:{http}"),
            token: String::new(),
        };
        let healthz = format!("{}/healthz", collector.http);
        loop {
            // Both ports answer, and the process is still there once they do (a port another
            // process holds answers too, and this one exits on failing to bind it).
            let listening = tokio::net::TcpStream::connect(("127.0.0.1", grpc))
                .await
                .is_ok()
                && reqwest::get(&healthz)
                    .await
                    .is_ok_and(|r| r.status().is_success());
            if listening {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if collector.child.try_wait()?.is_none() {
                    // A server writes its bootstrap key before it listens; one that wrote none
                    // found keys in the store it shares with servers before it.
                    collector.token = match std::fs::read_to_string(&key_file) {
                        Ok(token) => token.trim().to_string(),
                        Err(_) => collector.admin_key(binary, env).await?,
                    };
                    return Ok(Some(collector));
                }
            }
            if let Some(status) = collector.child.try_wait()? {
                eprintln!(
                    "the spawned collector exited during start ({status}): trying other ports"
                );
                return Ok(None);
            }
            if Instant::now() > deadline {
                bail!("the spawned collector did not start within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new admin key for this server's store (`vigil keys create`, given the same settings), once
    /// the server accepts it (shared keys reach it at its next poll of the store).
    async fn admin_key(
        &self,
        binary: &std::path::Path,
        env: &[(String, String)],
    ) -> anyhow::Result<String> {
        let output = std::process::Command::new(binary)
            .arg("keys")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["create", "--role", "admin", "--description", "benchmark"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .context("running vigil keys create")?;
        let text = String::from_utf8_lossy(&output.stdout);
        let Some(token) = text.lines().find_map(|l| l.strip_prefix("token:")) else {
            bail!(
                "vigil keys create failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let token = token.trim().to_string();
        self.wait_for_key(&reqwest::Client::new(), &token, 200)
            .await?;
        Ok(token)
    }

    /// Polls `GET /api/v1/whoami` with `token` every 5 ms until it answers `status` (200 once
    /// a new shared key reached this server, 401 once a revocation did).
    pub(crate) async fn wait_for_key(
        &self,
        http: &reqwest::Client,
        token: &str,
        status: u16,
    ) -> anyhow::Result<()> {
        let whoami = format!("{}/api/v1/whoami", self.http);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = http.get(&whoami).bearer_auth(token).send().await;
            if answer.is_ok_and(|r| r.status().as_u16() == status) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer {status} to the key within 30 s",
                    self.http
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A figure of its `/metrics`, by the whole name of a sample (`vigil_wal_backlog_bytes`).
    pub(crate) async fn figure(&self, http: &reqwest::Client, name: &str) -> anyhow::Result<f64> {
        figure(http, &self.http, name).await
    }

    /// SIGKILL, then remove the data directory.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.remove_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }

    /// SIGTERM, wait for the graceful exit, remove the data directory.
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        if self.remove_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// The `vigil serve` settings of each store a server benchmark measures: the embedded store
/// (when `embedded`) and the loaded ClickHouse database, by name.
fn store_servers(
    embedded: bool,
    clickhouse: Option<&vigil_schemas::clickhouse::ClickHouseConfig>,
) -> Vec<(String, Vec<(String, String)>)> {
    let mut servers = Vec::new();
    if embedded {
        servers.push(("embedded".into(), Vec::new()));
    }
    if let Some(config) = clickhouse {
        servers.push((
            "ClickHouse 18.16".into(),
            vec![
                ("VIGIL_STORE__KIND".into(), "clickhouse".into()),
                ("VIGIL_STORE__CLICKHOUSE__URL".into(), config.url.clone()),
                (
                    "VIGIL_STORE__CLICKHOUSE__DATABASE".into(),
                    config.database.clone(),
                ),
                // The bench database is loaded already; a long request must not time out.
                ("VIGIL_STORE__CLICKHOUSE__TIMEOUT_SECS".into(), "300".into()),
            ],
        ));
    }
    servers
}

/// The wall times of one request to a server, in ms, sorted, and its last answer.
pub(super) struct Timed {
    times_ms: Vec<f64>,
    pub answer: serde_json::Value,
}

impl Timed {
    pub fn median_ms(&self) -> f64 {
        self.times_ms[self.times_ms.len() / 2]
    }

    pub fn max_ms(&self) -> f64 {
        self.times_ms[self.times_ms.len() - 1]
    }
}

/// Sends the request `request` builds once to warm up, then `repetitions` (at least one) times
/// timed, end to end with its JSON answer read; any answer but a success fails, named `label`.
pub(super) async fn time_request(
    label: &str,
    repetitions: usize,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> anyhow::Result<Timed> {
    let mut times_ms = Vec::new();
    let mut answer = serde_json::Value::Null;
    for i in 0..=repetitions.max(1) {
        let started = Instant::now();
        let response = request().send().await?;
        let status = response.status();
        answer = response.json().await?;
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        if !status.is_success() {
            bail!("{label}: {status} {answer}");
        }
        if i > 0 {
            times_ms.push(elapsed);
        }
    }
    times_ms.sort_by(f64::total_cmp);
    Ok(Timed { times_ms, answer })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs the benchmark described by `opts` against a running collector.
pub async fn bench_ingest(opts: IngestBenchOptions) -> anyhow::Result<IngestBenchReport> {
    opts.validate()?;
    let ticks_per_second = clock_ticks();
    if let Some(pid) = opts.collector_pid {
        process_cpu_ticks(pid)
            .with_context(|| format!("cannot read the CPU time of collector pid {pid}"))?;
    }

    let now = demo::now_ns()?;
    let templates = build_templates(&opts, now);
    let spans_per_request = mean_spans(&templates);
    let mut clients = Vec::with_capacity(opts.concurrency);
    for _ in 0..opts.concurrency {
        clients.push(IngestClient::connect(&opts.endpoint, &opts.token, opts.gzip).await?);
    }

    // The high half of every trace id: this number plus a request counter; the clock makes it
    // differ from earlier invocations against the same collector.
    let id_base = u64::try_from(now).unwrap_or(1);
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let warm_end = start + opts.warmup;
    let end = warm_end + opts.duration;
    let mut tasks = JoinSet::new();
    for (client, templates) in clients.into_iter().zip(templates) {
        let window = Window { warm_end, end };
        tasks.spawn(client_task(
            client,
            templates,
            id_base,
            counter.clone(),
            stop.clone(),
            window,
        ));
    }

    wait_until(warm_end, &stop).await;
    let collector_before = opts
        .collector_pid
        .and_then(|pid| process_cpu_ticks(pid).ok());
    let client_before = self_cpu_ticks();
    wait_until(end, &stop).await;
    let collector_after = opts
        .collector_pid
        .and_then(|pid| process_cpu_ticks(pid).ok());
    let client_after = self_cpu_ticks();
    let peak_rss = opts.collector_pid.and_then(peak_rss_bytes);

    let mut total = ClientStats::default();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(stats)) => total.merge(stats),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(anyhow::Error::new(e).context("a client task panicked"));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    total.latencies_ns.sort_unstable();
    let to_ms = |ns: Option<u64>| ns.map(|ns| ns as f64 / 1e6);
    let duration_secs = opts.duration.as_secs_f64();
    let cpu_seconds = |before: Option<u64>, after: Option<u64>| {
        Some(after?.saturating_sub(before?) as f64 / ticks_per_second as f64)
    };
    let collector = opts.collector_pid.map(|pid| {
        let cpu = cpu_seconds(collector_before, collector_after).unwrap_or(0.0);
        CollectorUsage {
            pid,
            cpu_seconds: cpu,
            cores_used: cpu / duration_secs,
            spans_per_cpu_second: (cpu > 0.0).then(|| total.spans_acknowledged as f64 / cpu),
            peak_rss_bytes: peak_rss,
        }
    });
    let report = IngestBenchReport {
        endpoint: opts.endpoint.clone(),
        protocol: opts.protocol,
        concurrency: opts.concurrency,
        batch_spans: opts.batch_spans,
        spans_per_request,
        warmup_secs: opts.warmup.as_secs_f64(),
        duration_secs,
        requests: total.requests,
        refusals: total.refusals,
        spans_sent: total.spans_sent,
        spans_acknowledged: total.spans_acknowledged,
        spans_rejected: total.spans_sent.saturating_sub(total.spans_acknowledged),
        spans_per_second: total.spans_acknowledged as f64 / duration_secs,
        latency_p50_ms: to_ms(exact_percentile(&total.latencies_ns, 50)),
        latency_p90_ms: to_ms(exact_percentile(&total.latencies_ns, 90)),
        latency_p99_ms: to_ms(exact_percentile(&total.latencies_ns, 99)),
        latency_max_ms: to_ms(total.latencies_ns.last().copied()),
        client_cpu_seconds: cpu_seconds(client_before, client_after),
        collector,
    };
    tracing::info!(
        spans_per_second = report.spans_per_second,
        requests = report.requests,
        "ingest bench finished"
    );
    Ok(report)
}

/// A request payload a client re-sends with fresh trace ids.
#[derive(Debug, Clone)]
struct Template {
    payload: Payload,
    spans: u64,
}

impl Template {
    /// Writes `high` into the first 8 bytes (16 hex characters) of every trace id.
    fn stamp(&mut self, high: u64) {
        match &mut self.payload {
            Payload::Native(request) => {
                let hex = format!("{high:016x}");
                let ids = request
                    .runs
                    .iter_mut()
                    .map(|r| &mut r.trace_id)
                    .chain(request.spans.iter_mut().map(|s| &mut s.trace_id))
                    .chain(request.scores.iter_mut().map(|s| &mut s.trace_id));
                for id in ids {
                    if id.len() >= 16 {
                        id.replace_range(..16, &hex);
                    }
                }
            }
            Payload::Otlp(request) => {
                let bytes = high.to_be_bytes();
                for span in request
                    .resource_spans
                    .iter_mut()
                    .flat_map(|rs| rs.scope_spans.iter_mut())
                    .flat_map(|ss| ss.spans.iter_mut())
                {
                    if let Some(head) = span.trace_id.get_mut(..8) {
                        head.copy_from_slice(&bytes);
                    }
                }
            }
        }
    }
}

/// The mean spans per request over every client's templates.
fn mean_spans(templates: &[Vec<Template>]) -> f64 {
    let all: Vec<&Template> = templates.iter().flatten().collect();
    all.iter().map(|t| t.spans as f64).sum::<f64>() / all.len().max(1) as f64
}

/// `TEMPLATES_PER_TASK` payloads per client task, each of whole runs totalling at most
/// `batch_spans` spans (a run larger than that goes alone). Within a payload, the low half of
/// each trace id starts with the run's index in the payload, so that ids stay distinct whatever
/// the high half becomes.
fn build_templates(opts: &IngestBenchOptions, now_ns: i64) -> Vec<Vec<Template>> {
    let needed = opts.concurrency * TEMPLATES_PER_TASK;
    // Runs average fewer than ten spans; grow the workload until it fills every template.
    let mut runs_wanted = (needed * opts.batch_spans).div_ceil(6).max(needed);
    let groups = loop {
        let config = WorkloadConfig::new(
            opts.seed,
            runs_wanted,
            now_ns - PAYLOAD_WINDOW_NS,
            PAYLOAD_WINDOW_NS,
        );
        let groups = pack(generator::generate(&config), opts.batch_spans);
        if groups.len() >= needed || runs_wanted >= needed * opts.batch_spans {
            break groups;
        }
        runs_wanted *= 2;
    };
    let mut per_task: Vec<Vec<Template>> = (0..opts.concurrency).map(|_| Vec::new()).collect();
    for (i, mut group) in groups.into_iter().take(needed).enumerate() {
        for (index, run) in group.iter_mut().enumerate() {
            run.trace_id = format!("{:016x}{:08x}{}", 0, index, &run.trace_id[24..]);
        }
        let task = i % opts.concurrency;
        let spans = generator::span_count(&group) as u64;
        let payload = match opts.protocol.for_index(task) {
            IngestProtocol::Otlp => Payload::Otlp(generator::to_otlp(&group)),
            _ => Payload::Native(generator::to_native(&group)),
        };
        per_task[task].push(Template { payload, spans });
    }
    per_task
}

/// Splits runs into consecutive groups of at most `batch_spans` spans (at least one run each).
fn pack(runs: Vec<GeneratedRun>, batch_spans: usize) -> Vec<Vec<GeneratedRun>> {
    let mut groups = Vec::new();
    let mut current: Vec<GeneratedRun> = Vec::new();
    let mut spans = 0;
    for run in runs {
        if !current.is_empty() && spans + run.span_count() > batch_spans {
            groups.push(std::mem::take(&mut current));
            spans = 0;
        }
        spans += run.span_count();
        current.push(run);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

#[derive(Debug, Clone, Copy)]
struct Window {
    warm_end: Instant,
    end: Instant,
}

#[derive(Debug, Default)]
struct ClientStats {
    requests: u64,
    refusals: u64,
    spans_sent: u64,
    spans_acknowledged: u64,
    latencies_ns: Vec<u64>,
}

impl ClientStats {
    fn merge(&mut self, other: ClientStats) {
        self.requests += other.requests;
        self.refusals += other.refusals;
        self.spans_sent += other.spans_sent;
        self.spans_acknowledged += other.spans_acknowledged;
        self.latencies_ns.extend(other.latencies_ns);
    }
}

/// One client: sends its templates in turn, one request in flight, until the window ends.
/// Counts the requests that complete inside the measured window.
async fn client_task(
    mut client: IngestClient,
    mut templates: Vec<Template>,
    id_base: u64,
    counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    window: Window,
) -> anyhow::Result<ClientStats> {
    let mut stats = ClientStats::default();
    if templates.is_empty() {
        return Ok(stats);
    }
    let mut next = 0;
    while Instant::now() < window.end && !stop.load(Ordering::Relaxed) {
        let count = templates.len();
        let template = &mut templates[next % count];
        next += 1;
        let sequence = counter.fetch_add(1, Ordering::Relaxed) + 1;
        template.stamp(id_base.wrapping_add(sequence));
        let payload = template.payload.clone();
        let sent = Instant::now();
        let result = client.export(payload).await;
        let done = Instant::now();
        let measured = done >= window.warm_end && done <= window.end;
        match result {
            Ok(ack) => {
                if measured {
                    stats.requests += 1;
                    stats.spans_sent += template.spans;
                    stats.spans_acknowledged += accepted_spans(&ack, template.spans);
                    let latency = done.duration_since(sent).as_nanos();
                    stats
                        .latencies_ns
                        .push(u64::try_from(latency).unwrap_or(u64::MAX));
                }
            }
            Err(status) if demo::is_retryable(&status) => {
                if measured {
                    stats.refusals += 1;
                }
                tokio::time::sleep(REFUSAL_PAUSE).await;
            }
            Err(status) => {
                stop.store(true, Ordering::Relaxed);
                bail!(
                    "the collector failed an export ({:?}): {}",
                    status.code(),
                    status.message()
                );
            }
        }
    }
    Ok(stats)
}

fn accepted_spans(ack: &Ack, sent: u64) -> u64 {
    ack.accepted_spans(sent).min(sent)
}

/// Sleeps until `deadline`, waking early when a client stopped the benchmark.
async fn wait_until(deadline: Instant, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(100))).await;
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times: `getconf CLK_TCK`, else Linux's 100.
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        })
        .filter(|&t| t > 0)
        .unwrap_or(DEFAULT_CLOCK_TICKS)
}

fn process_cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("{path} has no utime/stime fields"))
}

fn self_cpu_ticks() -> Option<u64> {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_cpu_ticks(&s))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn peak_rss_bytes(pid: u32) -> Option<u64> {
    parse_vm_hwm(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The current resident set of a process (`VmRSS`), in bytes.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    status_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmRSS:",
    )
    .map(|kib| kib * 1024)
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(field))?;
    line.split_whitespace().next()?.parse().ok()
}

/// `VmHWM` of a `/proc/<pid>/status` text, in bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    status_kib(status, "VmHWM:").map(|kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        let stat = "4242 (vigil (serve) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        let status = "Name:\tvigil\nVmPeak:\t  900 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2 * 1024 * 1024));
        assert!(self_cpu_ticks().is_some());
        assert!(clock_ticks() > 0);
    }

    fn native_ids(t: &Template) -> Vec<String> {
        match &t.payload {
            Payload::Native(r) => r.runs.iter().map(|r| r.trace_id.clone()).collect(),
            Payload::Otlp(r) => {
                let mut ids: Vec<String> = r
                    .resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .flat_map(|ss| &ss.spans)
                    .map(|s| hex::encode(&s.trace_id))
                    .collect();
                ids.sort();
                ids.dedup();
                ids
            }
        }
    }

    #[test]
    fn templates_fill_batches_and_stamped_ids_never_repeat() {
        for protocol in [
            IngestProtocol::Native,
            IngestProtocol::Otlp,
            IngestProtocol::Mixed,
        ] {
            let opts = IngestBenchOptions {
                protocol,
                concurrency: 3,
                batch_spans: 100,
                ..Default::default()
            };
            let mut templates = build_templates(&opts, 1_800_000_000_000_000_000);
            assert_eq!(templates.len(), 3);
            let mut seen = HashSet::new();
            let mut sequence = 0u64;
            for (task, list) in templates.iter_mut().enumerate() {
                assert_eq!(list.len(), TEMPLATES_PER_TASK);
                for t in list.iter_mut() {
                    assert!(t.spans <= 100 && t.spans > 50, "{} spans", t.spans);
                    let is_otlp = matches!(t.payload, Payload::Otlp(_));
                    assert_eq!(is_otlp, protocol.for_index(task) == IngestProtocol::Otlp);
                    // Sending the same template twice gives new ids each time.
                    for _ in 0..2 {
                        sequence += 1;
                        t.stamp(sequence);
                        for id in native_ids(t) {
                            assert_eq!(id.len(), 32);
                            assert_eq!(&id[..16], format!("{sequence:016x}"));
                            assert!(seen.insert(id.clone()), "{id} repeated");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn native_stamp_rewrites_spans_and_scores_too() {
        let opts = IngestBenchOptions {
            protocol: IngestProtocol::Native,
            concurrency: 1,
            batch_spans: 400,
            ..Default::default()
        };
        let mut templates = build_templates(&opts, 1_800_000_000_000_000_000);
        let t = &mut templates[0][0];
        t.stamp(0xabc);
        let Payload::Native(r) = &t.payload else {
            panic!("native payload expected");
        };
        let runs: HashSet<&str> = r.runs.iter().map(|r| r.trace_id.as_str()).collect();
        assert!(r.spans.iter().all(|s| runs.contains(s.trace_id.as_str())));
        assert!(r.scores.iter().all(|s| runs.contains(s.trace_id.as_str())));
        assert!(!r.scores.is_empty());
    }
}
