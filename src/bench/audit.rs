//! `vigil bench audit`: compliance investigations and exports over 1,000,000 runs / 10,000,000
//! spans, on each store.
//!
//! 1. Loads the same data as `vigil bench metrics` (the same generator, and the same kept store
//!    when `--data-dir` already holds it), into the embedded store and, given
//!    `--clickhouse-url`, into ClickHouse.
//! 2. Times investigations the way `POST /api/v1/audit/affected` runs them (the totals and
//!    per-day counts, then the first page of sessions) through the store: a bad prompt version,
//!    a model with that prompt version, a tool, every run of one agent, one user's runs. The
//!    median of `--repetitions` runs after a warm-up.
//! 3. Exports through a real `vigil serve` on the same data: `POST /api/v1/audit/affected?
//!    format=csv` for one agent's runs, then for every run, read to the end and counted. Rows
//!    per second are the rows over the wall time of the request; the server's peak resident set
//!    (`VmHWM`) is read after each export, so a growth from the smaller export to the larger one
//!    would show that memory grows with the export.

use std::{fmt, sync::Arc, time::Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;
use vigil_query::{
    ClickHouseStore, EmbeddedStore, TraceStore,
    audit::{AffectedPlan, SessionPageRequest},
    metrics::Field,
};
use vigil_schemas::time::{parse_rfc3339, rfc3339};

use super::{
    SpawnedCollector,
    metrics::{AGENTS, DataArgs, END, Loaded},
    peak_rss_bytes,
};

const DAY_NS: i64 = 86_400_000_000_000;

#[derive(clap::Args, Debug, Clone)]
pub struct AuditBenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Timed runs of each investigation (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub repetitions: usize,
    /// 2,000 runs, one repetition: checks the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct AuditBenchReport {
    runs: usize,
    spans: usize,
    load_seconds: Vec<(String, f64)>,
    investigations: Vec<Investigation>,
    exports: Vec<Export>,
}

#[derive(Debug, Serialize)]
struct Investigation {
    store: String,
    question: String,
    affected_runs: u64,
    sessions: u64,
    median_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct Export {
    store: String,
    what: String,
    rows: u64,
    bytes: u64,
    seconds: f64,
    rows_per_second: f64,
    /// The server's peak resident set after this export (it only grows).
    server_peak_rss_mib: f64,
}

/// The questions: (label, filters), over the whole generated day.
fn questions() -> Vec<(String, Vec<(Field, String)>)> {
    let agent = AGENTS[0];
    let prompt = format!("{agent}@v7");
    vec![
        (
            format!("prompt version {prompt}"),
            vec![(Field::PromptVersion, prompt.clone())],
        ),
        (
            format!("model gpt-4o with prompt version {prompt}"),
            vec![
                (Field::Model, "gpt-4o".into()),
                (Field::PromptVersion, prompt),
            ],
        ),
        (
            "tool sql.query".into(),
            vec![(Field::Tool, "sql.query".into())],
        ),
        (format!("agent {agent}"), vec![(Field::Agent, agent.into())]),
        (
            "one user".into(),
            vec![(Field::UserHash, format!("{:016x}", 4242))],
        ),
    ]
}

pub async fn run(mut args: AuditBenchArgs) -> anyhow::Result<AuditBenchReport> {
    if args.smoke {
        args.data.runs = args.data.runs.min(2_000);
        args.repetitions = 1;
    }
    let Loaded {
        data,
        dir,
        clickhouse,
        load_seconds,
    } = args.data.load().await?;
    let end = parse_rfc3339(END).context("END")?;
    let range = (end - DAY_NS, end);

    let mut stores: Vec<(String, Arc<dyn TraceStore>)> =
        vec![("embedded".into(), Arc::new(EmbeddedStore::open(&dir)?))];
    if let Some(config) = &clickhouse {
        stores.push((
            "ClickHouse 18.16".into(),
            Arc::new(ClickHouseStore::new(config)),
        ));
    }
    let mut investigations = Vec::new();
    for (name, store) in &stores {
        for (question, filters) in questions() {
            let plan = AffectedPlan {
                range: Some(range),
                filters: filters
                    .into_iter()
                    .map(|(field, value)| (field, vec![value]))
                    .collect(),
            };
            investigations
                .push(investigate(name, store.as_ref(), &question, &plan, args.repetitions).await?);
        }
    }

    let mut exports = Vec::new();
    let mut servers: Vec<(String, Vec<(String, String)>)> = vec![("embedded".into(), Vec::new())];
    if let Some(config) = &clickhouse {
        servers.push((
            "ClickHouse 18.16".into(),
            vec![
                ("VIGIL_STORE__KIND".into(), "clickhouse".into()),
                ("VIGIL_STORE__CLICKHOUSE__URL".into(), config.url.clone()),
                (
                    "VIGIL_STORE__CLICKHOUSE__DATABASE".into(),
                    config.database.clone(),
                ),
                // The bench database is loaded already; an export must not wait for a timeout.
                ("VIGIL_STORE__CLICKHOUSE__TIMEOUT_SECS".into(), "300".into()),
            ],
        ));
    }
    for (name, env) in servers {
        let server = SpawnedCollector::start_at(&dir, &env).await?;
        let result = async {
            let mut done = Vec::new();
            for (what, filters) in [
                (
                    format!("agent {}", AGENTS[0]),
                    json!({"agent": [AGENTS[0]]}),
                ),
                ("every run".to_string(), json!({})),
            ] {
                let body =
                    json!({"from": rfc3339(range.0), "to": rfc3339(range.1), "filters": filters});
                done.push(export(&server, &name, &what, &body).await?);
            }
            anyhow::Ok(done)
        }
        .await;
        server.stop();
        exports.extend(result?);
    }
    if args.smoke && exports.iter().any(|e| e.rows == 0) {
        bail!("smoke run: an export was empty");
    }
    Ok(AuditBenchReport {
        runs: data.runs,
        spans: data.runs * data.spans_per_run,
        load_seconds,
        investigations,
        exports,
    })
}

async fn investigate(
    store_name: &str,
    store: &dyn TraceStore,
    question: &str,
    plan: &AffectedPlan,
    repetitions: usize,
) -> anyhow::Result<Investigation> {
    let page = SessionPageRequest {
        limit: 100,
        after: None,
    };
    let mut times = Vec::new();
    let mut answer = (0, 0);
    for i in 0..=repetitions {
        let started = Instant::now();
        let summary = store.affected_summary("default", plan).await?;
        let sessions = store.affected_sessions("default", plan, &page).await?;
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        answer = (summary.runs, summary.sessions);
        if sessions.items.is_empty() && summary.runs > 0 {
            bail!("{question}: no sessions for {} runs", summary.runs);
        }
        if i > 0 {
            times.push(elapsed);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(Investigation {
        store: store_name.into(),
        question: question.into(),
        affected_runs: answer.0,
        sessions: answer.1,
        median_ms: times[times.len() / 2],
        max_ms: times[times.len() - 1],
    })
}

async fn export(
    server: &SpawnedCollector,
    store: &str,
    what: &str,
    body: &serde_json::Value,
) -> anyhow::Result<Export> {
    let started = Instant::now();
    let mut response = reqwest::Client::new()
        .post(format!("{}/api/v1/audit/affected?format=csv", server.http))
        .bearer_auth(&server.token)
        .json(body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("export {what}: {}", response.text().await?);
    }
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rows = lines.saturating_sub(1);
    Ok(Export {
        store: store.into(),
        what: what.into(),
        rows,
        bytes,
        seconds,
        rows_per_second: rows as f64 / seconds,
        server_peak_rss_mib: peak_rss_bytes(server.pid()).unwrap_or(0) as f64 / (1 << 20) as f64,
    })
}

impl fmt::Display for AuditBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "compliance over {} runs / {} spans",
            self.runs, self.spans
        )?;
        for (store, seconds) in &self.load_seconds {
            writeln!(f, "loaded {store} in {seconds:.1} s")?;
        }
        writeln!(
            f,
            "\ninvestigations (totals, per-day counts and the first 100 sessions):"
        )?;
        for i in &self.investigations {
            writeln!(
                f,
                "  {:<18} {:<48} {:>8} runs {:>7} sessions  median {:>8.1} ms  max {:>8.1} ms",
                i.store, i.question, i.affected_runs, i.sessions, i.median_ms, i.max_ms
            )?;
        }
        writeln!(f, "\nCSV exports through the API:")?;
        for e in &self.exports {
            writeln!(
                f,
                "  {:<18} {:<24} {:>8} rows {:>6.1} MiB in {:>6.2} s = {:>9.0} rows/s; server peak RSS {:.0} MiB",
                e.store,
                e.what,
                e.rows,
                e.bytes as f64 / (1 << 20) as f64,
                e.seconds,
                e.rows_per_second,
                e.server_peak_rss_mib
            )?;
        }
        Ok(())
    }
}
