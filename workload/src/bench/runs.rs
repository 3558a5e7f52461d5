//! `vigil bench runs`: what the web UI's first pages ask, over the data of `vigil bench metrics`
//! (1,000,000 runs / 10,000,000 spans by default, in one day), through a real `vigil serve` on
//! each store.
//!
//! Times `GET /api/v1/runs?limit=50` (each run's calls rolled up, as the Runs page asks) with no
//! filter and with each filter the page offers, the second page of the unfiltered list (through
//! its cursor), and `GET /api/v1/runs/{trace_id}` (the Run detail page). Each figure is the
//! median and the slowest of `--repetitions` requests after one warm-up, end to end over HTTP.

use std::fmt;

use anyhow::{Context, bail};
use serde::Serialize;
use vigil_schemas::time::{parse_rfc3339, rfc3339};

use super::{
    SpawnedCollector,
    metrics::{AGENTS, DataArgs, END, Loaded},
    store_servers, time_request,
};

const HOUR_NS: i64 = 3_600_000_000_000;

#[derive(clap::Args, Debug, Clone)]
pub struct RunsBenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Timed requests of each kind (after one warm-up).
    #[arg(long, default_value_t = 7)]
    pub repetitions: usize,
    /// Only ClickHouse (with `--clickhouse-url`): skips the embedded store's server.
    #[arg(long)]
    pub clickhouse_only: bool,
    /// Serve with this `vigil` binary instead of this one (to compare two builds on the same
    /// data).
    #[arg(long)]
    pub server: Option<std::path::PathBuf>,
    /// 2,000 runs, one repetition: checks the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct RunsBenchReport {
    runs: usize,
    spans: usize,
    load_seconds: Vec<(String, f64)>,
    requests: Vec<Timing>,
}

#[derive(Debug, Serialize)]
struct Timing {
    store: String,
    request: String,
    /// Runs on the page (1 for a run's detail).
    runs: usize,
    median_ms: f64,
    max_ms: f64,
}

pub async fn run(mut args: RunsBenchArgs) -> anyhow::Result<RunsBenchReport> {
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

    let mut requests = Vec::new();
    for (store, env) in store_servers(!args.clickhouse_only, clickhouse.as_ref()) {
        let server = match &args.server {
            Some(binary) => SpawnedCollector::start_binary_at(binary, &dir, &env).await?,
            None => SpawnedCollector::start_at(&dir, &env).await?,
        };
        let result = async {
            let client = Client {
                http: reqwest::Client::new(),
                server: &server,
                store: &store,
                repetitions: args.repetitions,
            };
            let mut timings = Vec::new();
            let (first, answer) = client.time("no filter", "/api/v1/runs?limit=50").await?;
            let top = answer["runs"]
                .get(0)
                .cloned()
                .context("the unfiltered list is empty")?;
            let text = |name: &str| top[name].as_str().unwrap_or_default().to_string();
            let cursor = answer["next_cursor"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            timings.push(first);
            let agent = AGENTS[0];
            let filters = [
                ("agent", format!("agent={agent}")),
                ("model", "model=gpt-4o".to_string()),
                ("prompt version", format!("prompt_version={agent}@v7")),
                ("outcome", "outcome=failure".to_string()),
                ("session", format!("session_id={}", text("session_id"))),
                ("user", format!("user_hash={}", text("user_hash"))),
                (
                    "time range (one hour)",
                    format!(
                        "from={}&to={}",
                        rfc3339(end - 13 * HOUR_NS),
                        rfc3339(end - 12 * HOUR_NS)
                    ),
                ),
                ("second page", format!("cursor={cursor}")),
            ];
            for (label, query) in filters {
                let path = format!("/api/v1/runs?limit=50&{query}");
                timings.push(client.time(label, &path).await?.0);
            }
            let detail = format!("/api/v1/runs/{}", text("trace_id"));
            timings.push(client.time("a run's detail", &detail).await?.0);
            anyhow::Ok(timings)
        }
        .await;
        server.stop();
        requests.extend(result?);
    }
    if args.smoke && requests.iter().any(|t| t.runs == 0) {
        bail!("smoke run: a request found no run");
    }
    Ok(RunsBenchReport {
        runs: data.runs,
        spans: data.runs * data.spans_per_run,
        load_seconds,
        requests,
    })
}

struct Client<'a> {
    http: reqwest::Client,
    server: &'a SpawnedCollector,
    store: &'a str,
    repetitions: usize,
}

impl Client<'_> {
    /// Median and slowest wall time of `GET path`, after one warm-up; and the last answer.
    async fn time(&self, label: &str, path: &str) -> anyhow::Result<(Timing, serde_json::Value)> {
        let url = format!("{}{path}", self.server.http);
        let timed = time_request(label, self.repetitions, || {
            self.http.get(&url).bearer_auth(&self.server.token)
        })
        .await?;
        let runs = match timed.answer["runs"].as_array() {
            Some(runs) => runs.len(),
            None => usize::from(timed.answer["run"].is_object()),
        };
        let timing = Timing {
            store: self.store.into(),
            request: label.into(),
            runs,
            median_ms: timed.median_ms(),
            max_ms: timed.max_ms(),
        };
        Ok((timing, timed.answer))
    }
}

impl fmt::Display for RunsBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the run list and a run's detail over {} runs / {} spans",
            self.runs, self.spans
        )?;
        for (store, seconds) in &self.load_seconds {
            writeln!(f, "{store} in {seconds:.1} s")?;
        }
        for t in &self.requests {
            writeln!(
                f,
                "  {:<18} {:<24} {:>4} runs  median {:>8.1} ms  max {:>8.1} ms",
                t.store, t.request, t.runs, t.median_ms, t.max_ms
            )?;
        }
        Ok(())
    }
}
