//! `vigil bench audit`: compliance investigations and exports over 1,000,000 runs / 10,000,000
//! spans, on each store.
//!
//! 1. Loads the same data as `vigil bench metrics` (the same generator, and the same kept store
//!    when `--data-dir` already holds it), into the embedded store and, given
//!    `--clickhouse-url`, into ClickHouse.
//! 2. Starts a real `vigil serve` on each store and times `POST /api/v1/audit/affected` end to
//!    end (totals, per-day counts and the first 100 sessions, the audit entry fsync'd first): a
//!    bad prompt version, a model with that prompt version, a tool, every run of one agent, one
//!    user's runs. The median of `--repetitions` requests after a warm-up.
//! 3. Exports through the same server: `POST /api/v1/audit/affected?
//!    format=csv` for one agent's runs, then for every run, read to the end and counted. Rows
//!    per second are the rows over the wall time of the request; the server's peak resident set
//!    (`VmHWM`) is read after each export, so a growth from the smaller export to the larger one
//!    would show that memory grows with the export.

use std::{fmt, time::Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;
use vigil_schemas::time::{parse_rfc3339, rfc3339};

use super::{
    SpawnedCollector,
    metrics::{AGENTS, DataArgs, END, Loaded},
    rss_bytes, store_servers, time_request,
};

const DAY_NS: i64 = 86_400_000_000_000;

#[derive(clap::Args, Debug, Clone)]
pub struct AuditBenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Timed runs of each investigation (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub repetitions: usize,
    /// Only ClickHouse (with `--clickhouse-url`): skips the embedded store's server.
    #[arg(long)]
    pub clickhouse_only: bool,
    /// Only the exports: skips the investigations.
    #[arg(long)]
    pub exports_only: bool,
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
    /// The server's resident set when the export began, and the most it reached while it ran
    /// (sampled every 100 ms).
    server_rss_before_mib: f64,
    server_rss_max_mib: f64,
}

/// The questions: (label, filters), over the whole generated day.
fn questions() -> Vec<(String, serde_json::Value)> {
    let agent = AGENTS[0];
    let prompt = format!("{agent}@v7");
    vec![
        (
            format!("prompt version {prompt}"),
            json!({"prompt_version": [prompt]}),
        ),
        (
            format!("model gpt-4o with prompt version {prompt}"),
            json!({"model": ["gpt-4o"], "prompt_version": [prompt]}),
        ),
        ("tool sql.query".into(), json!({"tool": ["sql.query"]})),
        (format!("agent {agent}"), json!({"agent": [agent]})),
        (
            "one user".into(),
            json!({"user_hash": [format!("{:016x}", 4242)]}),
        ),
    ]
}

pub async fn run(mut args: AuditBenchArgs) -> anyhow::Result<AuditBenchReport> {
    if args.smoke {
        args.data.shrink_for_smoke(&mut args.repetitions);
    }
    let Loaded {
        data,
        dir,
        clickhouse,
        load_seconds,
    } = args.data.load().await?;
    let end = parse_rfc3339(END).context("END")?;
    let range = (end - DAY_NS, end);

    let mut investigations = Vec::new();
    let mut exports = Vec::new();
    let servers = store_servers(!args.clickhouse_only, clickhouse.as_ref());
    for (name, env) in servers {
        let server = SpawnedCollector::start_at(&dir, &env).await?;
        let result = async {
            for (question, filters) in questions().into_iter().filter(|_| !args.exports_only) {
                let body =
                    json!({"from": rfc3339(range.0), "to": rfc3339(range.1), "filters": filters});
                investigations
                    .push(investigate(&server, &name, &question, &body, args.repetitions).await?);
            }
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

/// Median and slowest wall time of `POST /api/v1/audit/affected` (the JSON answer: totals,
/// days, the first 100 sessions, written to the audit log first), after one warm-up.
async fn investigate(
    server: &SpawnedCollector,
    store: &str,
    question: &str,
    body: &serde_json::Value,
    repetitions: usize,
) -> anyhow::Result<Investigation> {
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/audit/affected", server.http);
    let timed = time_request(question, repetitions, || {
        client.post(&url).bearer_auth(&server.token).json(body)
    })
    .await?;
    let answer = &timed.answer;
    let count = |name: &str| answer[name].as_u64().unwrap_or_default();
    Ok(Investigation {
        store: store.into(),
        question: question.into(),
        affected_runs: count("runs"),
        sessions: count("sessions"),
        median_ms: timed.median_ms(),
        max_ms: timed.max_ms(),
    })
}

async fn export(
    server: &SpawnedCollector,
    store: &str,
    what: &str,
    body: &serde_json::Value,
) -> anyhow::Result<Export> {
    let pid = server.pid();
    let rss_before = rss_bytes(pid).unwrap_or(0);
    let max_rss = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
    let sampling = tokio::spawn({
        let max_rss = max_rss.clone();
        async move {
            loop {
                let rss = rss_bytes(pid).unwrap_or(0);
                max_rss.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    });
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
    sampling.abort();
    let rss_max = max_rss.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Export {
        store: store.into(),
        what: what.into(),
        rows,
        bytes,
        seconds,
        rows_per_second: rows as f64 / seconds,
        server_rss_before_mib: mib(rss_before),
        server_rss_max_mib: mib(rss_max),
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
            writeln!(f, "{store} in {seconds:.1} s")?;
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
                "  {:<18} {:<24} {:>8} rows {:>6.1} MiB in {:>6.2} s = {:>9.0} rows/s; server RSS {:.0} MiB before, at most {:.0} MiB during",
                e.store,
                e.what,
                e.rows,
                e.bytes as f64 / (1 << 20) as f64,
                e.seconds,
                e.rows_per_second,
                e.server_rss_before_mib,
                e.server_rss_max_mib
            )?;
        }
        Ok(())
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
