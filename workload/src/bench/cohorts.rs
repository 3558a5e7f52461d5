//! `vigil bench cohorts`: two cohorts of production runs compared (`POST /api/v1/cohorts/compare`)
//! over the data of `vigil bench metrics` (1,000,000 runs / 10,000,000 spans in one day): three
//! of its agents against the other three, about 500,000 runs a side, through a real
//! `vigil serve` on each store (one warm-up, then `--repetitions`; median and slowest).
//!
//! Beside it, the physical limit on ClickHouse, in `clickhouse-client` (`--time`, the server's
//! own time; `--format Null`, nothing sent): the plain per-run read of the same rows over the
//! sealed tables (one version per key), each run's outcome and duration beside its calls' cost
//! and tool count, which is what the comparison needs of every run before any statistic.

use std::fmt;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;
use vigil_schemas::time::{parse_rfc3339, rfc3339};

use super::{
    SpawnedCollector,
    metrics::{AGENTS, DATABASE, DataArgs, END, Loaded, PROJECT, median},
    store_servers, time_request,
};

const HOUR_NS: i64 = 3_600_000_000_000;

#[derive(clap::Args, Debug, Clone)]
pub struct CohortsBenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Timed comparisons on each store (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub repetitions: usize,
    /// Only ClickHouse (with `--clickhouse-url`): skips the embedded store's server.
    #[arg(long)]
    pub clickhouse_only: bool,
    /// ClickHouse's native port, for `clickhouse-client`.
    #[arg(long, default_value_t = 9000)]
    pub clickhouse_port: u16,
    /// 2,000 runs, one repetition: checks the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct CohortsBenchReport {
    runs: usize,
    spans: usize,
    load_seconds: Vec<(String, f64)>,
    comparisons: Vec<Timing>,
    /// The plain per-run read in `clickhouse-client`, median ms.
    clickhouse_client_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Timing {
    store: String,
    baseline_runs: u64,
    candidate_runs: u64,
    median_ms: f64,
    max_ms: f64,
}

pub async fn run(mut args: CohortsBenchArgs) -> anyhow::Result<CohortsBenchReport> {
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
    let (from, to) = (end - 24 * HOUR_NS, end);
    let (first, second) = AGENTS.split_at(AGENTS.len() / 2);
    let body = json!({
        "from": rfc3339(from),
        "to": rfc3339(to),
        "baseline": {"filters": {"agent": first}},
        "candidate": {"filters": {"agent": second}},
    });

    let mut comparisons = Vec::new();
    for (store, env) in store_servers(!args.clickhouse_only, clickhouse.as_ref()) {
        let server = SpawnedCollector::start_at(&dir, &env).await?;
        let http = reqwest::Client::new();
        let url = format!("{}/api/v1/cohorts/compare", server.http);
        let timed = time_request(&store, args.repetitions, || {
            http.post(&url).bearer_auth(&server.token).json(&body)
        })
        .await;
        server.stop();
        let timed = timed?;
        let runs = |side: &str| timed.answer[side].as_u64().unwrap_or_default();
        comparisons.push(Timing {
            store,
            baseline_runs: runs("baseline_runs"),
            candidate_runs: runs("candidate_runs"),
            median_ms: timed.median_ms(),
            max_ms: timed.max_ms(),
        });
    }
    if comparisons
        .iter()
        .any(|c| c.baseline_runs + c.candidate_runs != data.runs as u64)
    {
        bail!("the cohorts do not hold every run: {comparisons:?}");
    }
    let clickhouse_client_ms = match clickhouse {
        Some(_) => Some(plain_read(
            from,
            to,
            args.repetitions,
            args.clickhouse_port,
        )?),
        None => None,
    };
    Ok(CohortsBenchReport {
        runs: data.runs,
        spans: data.runs * data.spans_per_run,
        load_seconds,
        comparisons,
        clickhouse_client_ms,
    })
}

/// Median ms of the plain per-run read in `clickhouse-client`.
fn plain_read(from: i64, to: i64, repetitions: usize, port: u16) -> anyhow::Result<f64> {
    let in_range =
        format!("project_id = '{PROJECT}' AND start_time_ns >= {from} AND start_time_ns < {to}");
    let sql = format!(
        "SELECT trace_id, agent_name, outcome, end_time_ns - start_time_ns, cost, tools \
         FROM (SELECT trace_id, agent_name, outcome, start_time_ns, end_time_ns FROM runs_sealed \
         WHERE {in_range}) ALL LEFT JOIN (SELECT trace_id, sum(cost_nanos) AS cost, \
         countIf(kind = 'tool') AS tools FROM spans_sealed WHERE project_id = '{PROJECT}' \
         AND start_time_ns >= {} AND start_time_ns < {} GROUP BY trace_id) USING trace_id",
        from - HOUR_NS,
        to + 24 * HOUR_NS,
    );
    let run = || -> anyhow::Result<f64> {
        let output = std::process::Command::new("clickhouse-client")
            .args(["--port", &port.to_string(), "--database", DATABASE])
            .args(["--time", "--format", "Null", "--query", &sql])
            .output()
            .context("running clickhouse-client")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("clickhouse-client: {stderr}");
        }
        let seconds: f64 = stderr
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("clickhouse-client --time printed {stderr:?}"))?;
        Ok(seconds * 1e3)
    };
    run()?;
    let mut times = (0..repetitions.max(1))
        .map(|_| run())
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(median(&mut times))
}

impl fmt::Display for CohortsBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "two cohorts compared over {} runs / {} spans",
            self.runs, self.spans
        )?;
        for (store, seconds) in &self.load_seconds {
            writeln!(f, "{store} in {seconds:.1} s")?;
        }
        for c in &self.comparisons {
            writeln!(
                f,
                "  {:<18} {} vs {} runs  median {:>8.1} ms  max {:>8.1} ms",
                c.store, c.baseline_runs, c.candidate_runs, c.median_ms, c.max_ms
            )?;
        }
        if let Some(ms) = self.clickhouse_client_ms {
            writeln!(
                f,
                "  clickhouse-client, the plain per-run read of the same rows: median {ms:.1} ms"
            )?;
        }
        Ok(())
    }
}
