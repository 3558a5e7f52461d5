//! `vigil bench metrics`: the dashboard's metric queries over a large store, through Vigil's API,
//! against the same SQL run by the store's own client.
//!
//! 1. Generates `--runs` runs (default 1,000,000) with `--spans-per-run` spans each (default 10:
//!    half model calls, half tool calls) over the 24 hours before [`END`], seeded, and loads
//!    them into the embedded store (Parquet, through the collector's own sink) and, given
//!    `--clickhouse-url`, into ClickHouse (through the collector's ClickHouse sink). A store that
//!    already holds exactly this data (`--data-dir` kept between runs) is not loaded again.
//! 2. Starts `vigil serve` on each store and times every dashboard query through
//!    `POST /api/v1/metrics/query` (one warm-up, then `--repetitions`; the median is reported).
//! 3. Runs each question as a plain aggregate over the consolidated data, exact there (one
//!    version per key): in `clickhouse-client` over the sealed tables (its `--time`: the query's
//!    time in the client, without process start), and in DuckDB over the sealed Parquet files
//!    (`duckdb_metrics.py`, run with `--python`, a Python that has the `duckdb` package, with as
//!    many threads as this machine has cores), where the embedded store's own SQL
//!    ([`vigil_query::metrics::metric_sql`]) is timed too. Each plain aggregate must answer as
//!    many rows as Vigil.
//!
//! The ratios are Vigil's time over the reference's.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde::Serialize;
use serde_json::json;
use vigil_collector::sink::{ClickHouseSink, EmbeddedSink, EmbeddedSinkConfig, SealConfig, Sink};
use vigil_query::metrics::{Dialect, MetricQuery, metric_sql};
use vigil_schemas::{
    clickhouse::{ClickHouseConfig, Migrator},
    model::{IngestBatch, Outcome, RunRow, ScoreRow, SpanKind, SpanRow, SpanStatus},
    time::{parse_rfc3339, rfc3339},
};

use super::{SpawnedCollector, time_request};

/// The generated runs start in the 24 hours before this instant.
pub(super) const END: &str = "2026-11-23T12:00:00Z";
const HOUR_NS: i64 = 3_600_000_000_000;
/// The project of the generated rows: the bootstrap key's.
pub(super) const PROJECT: &str = "default";
/// Runs generated and written per batch (bounded memory).
const RUNS_PER_BATCH: usize = 50_000;
const DUCKDB_SCRIPT: &str = include_str!("duckdb_metrics.py");
pub(super) const DATABASE: &str = "vigil_bench_metrics";

#[derive(clap::Args, Debug, Clone)]
pub struct MetricsBenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// ClickHouse's native port, for `clickhouse-client`.
    #[arg(long, default_value_t = 9000)]
    pub clickhouse_port: u16,
    /// A Python interpreter with the `duckdb` package, to compare the embedded store with DuckDB.
    #[arg(long, env = "VIGIL_BENCH_PYTHON")]
    pub python: Option<String>,
    /// Timed repetitions of each query (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub repetitions: usize,
    /// 2,000 runs and one repetition, to check the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The agents of the generated runs.
pub(super) const AGENTS: [&str; 6] = [
    "support-bot",
    "sql-analyst",
    "researcher",
    "code-reviewer",
    "triage",
    "planner",
];

/// The generated data the query benchmarks (`metrics`, `alerts`) read, and where it is kept.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Runs to load.
    #[arg(long, default_value_t = 1_000_000)]
    pub runs: usize,
    /// Spans per run: half model calls, half tool calls.
    #[arg(long, default_value_t = 10)]
    pub spans_per_run: usize,
    /// Where the embedded store is generated; kept, and reused when it holds the same data.
    #[arg(long, default_value = "vigil-bench-metrics")]
    pub data_dir: PathBuf,
    /// Also load ClickHouse (HTTP URL) into the database `vigil_bench_metrics`.
    #[arg(long)]
    pub clickhouse_url: Option<String>,
    /// Measure the stores as written: do not seal their finished days (a later run without it
    /// seals them, as a running Vigil does).
    #[arg(long)]
    pub no_seal: bool,
}

/// The data, loaded where it was not already.
pub(super) struct Loaded {
    pub data: Data,
    /// The embedded store's directory.
    pub dir: PathBuf,
    pub clickhouse: Option<ClickHouseConfig>,
    /// What was loaded or sealed now, and the seconds it took.
    pub load_seconds: Vec<(String, f64)>,
}

impl DataArgs {
    /// A smoke run's size: 2,000 runs, one repetition (CI checks the harness, not the figures).
    pub(super) fn shrink_for_smoke(&mut self, repetitions: &mut usize) {
        self.runs = self.runs.min(2_000);
        *repetitions = 1;
    }

    pub(super) async fn load(&self) -> anyhow::Result<Loaded> {
        let data = Data {
            runs: self.runs,
            spans_per_run: self.spans_per_run,
        };
        let mut load_seconds = Vec::new();
        let dir = std::path::absolute(&self.data_dir)?;
        if let Some(seconds) = load_embedded(&data, &dir).await? {
            load_seconds.push(("loaded the embedded store".to_string(), seconds));
        }
        if !self.no_seal
            && let Some(seconds) = seal_embedded(&dir).await?
        {
            load_seconds.push(("sealed the embedded store's days".to_string(), seconds));
        }
        let clickhouse = match &self.clickhouse_url {
            Some(url) => {
                let config = ClickHouseConfig {
                    url: url.clone(),
                    database: DATABASE.into(),
                    ..ClickHouseConfig::default()
                };
                if let Some(seconds) = load_clickhouse(&data, &config).await? {
                    load_seconds.push(("loaded ClickHouse".to_string(), seconds));
                }
                if !self.no_seal
                    && let Some(seconds) = seal_clickhouse(&config).await?
                {
                    load_seconds.push(("sealed ClickHouse's days".to_string(), seconds));
                }
                Some(config)
            }
            None => None,
        };
        Ok(Loaded {
            data,
            dir,
            clickhouse,
            load_seconds,
        })
    }
}

/// One of the dashboard's questions: as Vigil's API takes it, and as a plain aggregate over the
/// consolidated data (the embedded store's sealed files, ClickHouse's sealed tables: one version
/// per key), which is exact there: the physical limit each store is measured against.
struct Question {
    name: &'static str,
    query: MetricQuery,
    /// DuckDB's SQL over `<table>_sealed` (views of the sealed files).
    plain_duckdb: String,
    /// ClickHouse's SQL over its `<table>_sealed` tables.
    plain_clickhouse: String,
}

/// The dashboard's questions.
fn dashboard() -> Vec<Question> {
    let end = parse_rfc3339(END).unwrap_or_default();
    let (from, to) = (end - 24 * HOUR_NS, end);
    let query = |metrics: &[&str], group_by: &str, step: Option<&str>| MetricQuery {
        from: rfc3339(from),
        to: rfc3339(to),
        metrics: metrics.iter().map(|m| m.to_string()).collect(),
        group_by: vec![group_by.to_string()],
        filters: Default::default(),
        step: step.map(str::to_string),
        shadow: Default::default(),
    };
    let in_range =
        format!("project_id = '{PROJECT}' AND start_time_ns >= {from} AND start_time_ns < {to}");
    vec![
        Question {
            name: "run latency p50/p90/p99 by agent, 24 h in 1 h steps",
            query: query(
                &[
                    "run_latency_p50_ms",
                    "run_latency_p90_ms",
                    "run_latency_p99_ms",
                ],
                "agent",
                Some("1h"),
            ),
            // Each engine's own exact percentile; DuckDB's rank rule is DuckDB's, not Vigil's.
            plain_duckdb: format!(
                "SELECT agent_name, start_time_ns // {HOUR_NS} AS bucket, \
                 quantile_disc(end_time_ns - start_time_ns, [0.5, 0.9, 0.99]) \
                 FROM runs_sealed WHERE {in_range} GROUP BY ALL"
            ),
            plain_clickhouse: format!(
                "SELECT agent_name, intDiv(start_time_ns, {HOUR_NS}) AS bucket, \
                 quantilesExact(0.5, 0.9, 0.99)(end_time_ns - start_time_ns) \
                 FROM runs_sealed WHERE {in_range} GROUP BY agent_name, bucket"
            ),
        },
        Question {
            name: "cost by model",
            query: query(&["cost_usd"], "model", None),
            plain_duckdb: format!(
                "SELECT s.model, sum(s.cost_nanos) FROM spans_sealed AS s \
                 JOIN (SELECT trace_id FROM runs_sealed WHERE {in_range}) AS r USING (trace_id) \
                 WHERE s.project_id = '{PROJECT}' AND s.kind = 'model' GROUP BY ALL"
            ),
            plain_clickhouse: format!(
                "SELECT model, sum(cost_nanos) FROM spans_sealed \
                 ALL INNER JOIN (SELECT trace_id FROM runs_sealed WHERE {in_range}) USING trace_id \
                 WHERE project_id = '{PROJECT}' AND kind = 'model' GROUP BY model"
            ),
        },
        Question {
            name: "tool error rate by tool",
            query: query(&["tool_error_rate"], "tool", None),
            plain_duckdb: format!(
                "SELECT tool_name, count(*), count_if(status = 'error') FROM spans_sealed \
                 WHERE kind = 'tool' AND {in_range} GROUP BY ALL"
            ),
            plain_clickhouse: format!(
                "SELECT tool_name, count(), countIf(status = 'error') FROM spans_sealed \
                 WHERE kind = 'tool' AND {in_range} GROUP BY tool_name"
            ),
        },
        Question {
            name: "completion rate by prompt version",
            query: query(&["completion_rate"], "prompt_version", None),
            plain_duckdb: format!(
                "SELECT s.prompt_version, count(*), count_if(r.outcome = 'success') \
                 FROM (SELECT DISTINCT trace_id, prompt_version FROM spans_sealed \
                 WHERE project_id = '{PROJECT}' AND kind = 'model') AS s \
                 JOIN (SELECT trace_id, outcome FROM runs_sealed WHERE {in_range}) AS r \
                 USING (trace_id) GROUP BY ALL"
            ),
            plain_clickhouse: format!(
                "SELECT prompt_version, count(), countIf(outcome = 'success') \
                 FROM (SELECT DISTINCT trace_id, prompt_version FROM spans_sealed \
                 WHERE project_id = '{PROJECT}' AND kind = 'model') \
                 ALL INNER JOIN (SELECT trace_id, outcome FROM runs_sealed WHERE {in_range}) \
                 USING trace_id GROUP BY prompt_version"
            ),
        },
    ]
}

#[derive(Debug, Serialize)]
pub struct MetricsBenchReport {
    pub runs: usize,
    pub spans: usize,
    pub cores: usize,
    pub repetitions: usize,
    pub load_seconds: Vec<(String, f64)>,
    pub queries: Vec<QueryTimes>,
}

#[derive(Debug, Serialize)]
pub struct QueryTimes {
    pub query: String,
    pub embedded_api_ms: f64,
    /// Vigil's SQL for the embedded store, in DuckDB.
    pub duckdb_ms: Option<f64>,
    /// The plain aggregate over the consolidated files, in DuckDB.
    pub duckdb_plain_ms: Option<f64>,
    pub clickhouse_api_ms: Option<f64>,
    /// The plain aggregate over ClickHouse's sealed tables, in `clickhouse-client`.
    pub clickhouse_plain_ms: Option<f64>,
    pub rows: usize,
}

impl QueryTimes {
    fn duckdb_ratio(&self) -> Option<f64> {
        self.duckdb_ms.map(|d| self.embedded_api_ms / d)
    }

    fn duckdb_plain_ratio(&self) -> Option<f64> {
        self.duckdb_plain_ms.map(|d| self.embedded_api_ms / d)
    }

    fn clickhouse_ratio(&self) -> Option<f64> {
        Some(self.clickhouse_api_ms? / self.clickhouse_plain_ms?)
    }
}

impl fmt::Display for MetricsBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} runs, {} spans; {} cores; median of {} repetitions after a warm-up",
            self.runs, self.spans, self.cores, self.repetitions
        )?;
        for (store, seconds) in &self.load_seconds {
            writeln!(f, "{store} in {seconds:.1} s")?;
        }
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let ratio = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}×"));
        writeln!(
            f,
            "| query | rows | embedded via API (ms) | DuckDB, Vigil's SQL (ms) | ratio | DuckDB, plain aggregate over the sealed files (ms) | ratio | ClickHouse via API (ms) | clickhouse-client, plain aggregate over the sealed tables (ms) | ratio |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        for q in &self.queries {
            writeln!(
                f,
                "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
                q.query,
                q.rows,
                q.embedded_api_ms,
                ms(q.duckdb_ms),
                ratio(q.duckdb_ratio()),
                ms(q.duckdb_plain_ms),
                ratio(q.duckdb_plain_ratio()),
                ms(q.clickhouse_api_ms),
                ms(q.clickhouse_plain_ms),
                ratio(q.clickhouse_ratio()),
            )?;
        }
        Ok(())
    }
}

pub async fn run(mut args: MetricsBenchArgs) -> anyhow::Result<MetricsBenchReport> {
    if args.smoke {
        args.data.shrink_for_smoke(&mut args.repetitions);
    }
    let Loaded {
        data,
        dir: embedded_dir,
        clickhouse,
        load_seconds,
    } = args.data.load().await?;

    let queries = dashboard();
    let embedded = time_api(
        &queries,
        args.repetitions,
        SpawnedCollector::start_at(&embedded_dir, &[]).await?,
    )
    .await?;
    let clickhouse_api = match &clickhouse {
        Some(config) => {
            let env = [
                ("VIGIL_STORE__KIND".to_string(), "clickhouse".to_string()),
                (
                    "VIGIL_STORE__CLICKHOUSE__URL".to_string(),
                    config.url.clone(),
                ),
                (
                    "VIGIL_STORE__CLICKHOUSE__DATABASE".to_string(),
                    DATABASE.to_string(),
                ),
            ];
            Some(
                time_api(
                    &queries,
                    args.repetitions,
                    SpawnedCollector::start_with(&env).await?,
                )
                .await?,
            )
        }
        None => None,
    };
    // The plain aggregates read the sealed data.
    let clickhouse_client = match &clickhouse {
        Some(_) if !args.data.no_seal => Some(time_clickhouse_client(
            &queries,
            args.repetitions,
            args.clickhouse_port,
        )?),
        _ => None,
    };
    let duckdb = match &args.python {
        Some(python) if !args.data.no_seal => Some(time_duckdb(
            &queries,
            args.repetitions,
            python,
            &embedded_dir,
        )?),
        _ => None,
    };

    // The plain aggregates must ask what Vigil answers: as many rows.
    for (i, question) in queries.iter().enumerate() {
        let plain_rows = [
            ("DuckDB", duckdb.as_ref().map(|d| d[i].plain_rows)),
            ("ClickHouse", clickhouse_client.as_ref().map(|c| c[i].1)),
        ];
        for (engine, rows) in plain_rows {
            if let Some(rows) = rows
                && rows != embedded[i].1
            {
                bail!(
                    "{}: {engine}'s plain aggregate answered {rows} rows, Vigil {}: they do not ask the same",
                    question.name,
                    embedded[i].1
                );
            }
        }
    }
    let queries = queries
        .iter()
        .enumerate()
        .map(|(i, question)| QueryTimes {
            query: question.name.to_string(),
            embedded_api_ms: embedded[i].0,
            rows: embedded[i].1,
            duckdb_ms: duckdb.as_ref().map(|d| d[i].vigil_ms),
            duckdb_plain_ms: duckdb.as_ref().map(|d| d[i].plain_ms),
            clickhouse_api_ms: clickhouse_api.as_ref().map(|c| c[i].0),
            clickhouse_plain_ms: clickhouse_client.as_ref().map(|c| c[i].0),
        })
        .collect();
    Ok(MetricsBenchReport {
        runs: data.runs,
        spans: data.runs * data.spans_per_run,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        repetitions: args.repetitions,
        load_seconds,
        queries,
    })
}

// ---- the data ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Data {
    pub(super) runs: usize,
    pub(super) spans_per_run: usize,
}

impl Data {
    fn describe(&self) -> String {
        format!(
            "{} runs x {} spans (seed 7, end {END})\n",
            self.runs, self.spans_per_run
        )
    }

    /// The rows of runs `first..first + count`: deterministic for each run, whatever the batch.
    fn batch(&self, first: usize, count: usize) -> IngestBatch {
        const MODELS: [&str; 6] = [
            "gpt-4o",
            "gpt-4o-mini",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
            "gemini-2.5-pro",
            "llama-3.1-70b",
        ];
        const TOOLS: [&str; 8] = [
            "search",
            "sql.query",
            "http.get",
            "code.exec",
            "files.read",
            "email.send",
            "calendar",
            "vector.lookup",
        ];
        const OUTCOMES: [Outcome; 8] = [
            Outcome::Success,
            Outcome::Success,
            Outcome::Success,
            Outcome::Success,
            Outcome::Success,
            Outcome::Failure,
            Outcome::Timeout,
            Outcome::Partial,
        ];
        let end = parse_rfc3339(END).unwrap_or_default();
        let mut batch = IngestBatch::default();
        for n in first..first + count {
            let mut rng = StdRng::seed_from_u64(7 ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let trace_id = format!("{:032x}", n as u128 * 0x1_0000_0001 + 7);
            let start = end - 24 * HOUR_NS + rng.random_range(0..24 * HOUR_NS);
            let mut at = start;
            let agent = *AGENTS.choose(&mut rng).unwrap_or(&AGENTS[0]);
            let prompt_version = format!("{agent}@v{}", rng.random_range(1..=12));
            for s in 0..self.spans_per_run {
                let begin = at + rng.random_range(0..500_000_000);
                let end = begin + rng.random_range(5_000_000..8_000_000_000);
                at = end;
                let mut span = SpanRow {
                    project_id: PROJECT.into(),
                    trace_id: trace_id.clone(),
                    span_id: format!("{:08x}{:08x}", n as u32, s as u32),
                    start_time_ns: begin,
                    end_time_ns: end,
                    status: if rng.random_bool(0.06) {
                        SpanStatus::Error
                    } else {
                        SpanStatus::Ok
                    },
                    ingested_at_ns: end,
                    ..SpanRow::default()
                };
                if s % 2 == 0 {
                    span.kind = SpanKind::Model;
                    span.name = "chat".into();
                    span.model = MODELS.choose(&mut rng).unwrap_or(&MODELS[0]).to_string();
                    span.prompt_version = prompt_version.clone();
                    span.input_tokens = rng.random_range(100..20_000);
                    span.output_tokens = rng.random_range(10..2_000);
                    span.cost_nanos = (!span.model.starts_with("llama"))
                        .then(|| rng.random_range(10_000..50_000_000));
                } else {
                    span.kind = SpanKind::Tool;
                    span.name = "tool".into();
                    span.tool_name = TOOLS.choose(&mut rng).unwrap_or(&TOOLS[0]).to_string();
                    span.tool_args_hash = format!("{:016x}", rng.random_range(0..4u64));
                }
                batch.spans.push(span);
            }
            batch.runs.push(RunRow {
                project_id: PROJECT.into(),
                trace_id: trace_id.clone(),
                session_id: format!("session-{}", n / 4),
                user_hash: format!("{:016x}", rng.random_range(0..50_000u64)),
                task_type: "task".into(),
                agent_name: agent.into(),
                agent_version: "1.0".into(),
                environment: "production".into(),
                release: "r1".into(),
                start_time_ns: start,
                end_time_ns: at + rng.random_range(1_000_000..500_000_000),
                outcome: *OUTCOMES.choose(&mut rng).unwrap_or(&Outcome::Success),
                ingested_at_ns: at,
                ..RunRow::default()
            });
            if rng.random_bool(0.2) {
                batch.scores.push(ScoreRow {
                    project_id: PROJECT.into(),
                    trace_id,
                    score_id: format!("thumbs-{n}"),
                    name: "thumbs".into(),
                    bool_value: Some(rng.random_bool(0.7)),
                    time_ns: at,
                    ingested_at_ns: at,
                    ..ScoreRow::default()
                });
            }
        }
        batch
    }

    /// Writes every run, batch by batch, through `sink`.
    async fn write(&self, sink: &dyn Sink) -> anyhow::Result<()> {
        let mut first = 0;
        while first < self.runs {
            let count = RUNS_PER_BATCH.min(self.runs - first);
            sink.write(Arc::new(self.batch(first, count))).await?;
            first += count;
        }
        Ok(())
    }
}

/// Loads the embedded store unless it already holds `data`; the seconds it took.
async fn load_embedded(data: &Data, dir: &Path) -> anyhow::Result<Option<f64>> {
    let marker = dir.join("bench-data.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(data.describe().as_str()) {
        return Ok(None);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let started = Instant::now();
    let sink = EmbeddedSink::open(dir, EmbeddedSinkConfig::default())?;
    data.write(&sink).await?;
    // Merge the batches' files as the running store would.
    for _ in 0..10 {
        if sink.compact_once().await?.partitions_compacted == 0 {
            break;
        }
    }
    std::fs::write(&marker, data.describe())?;
    Ok(Some(started.elapsed().as_secs_f64()))
}

/// Seals every day of the embedded store that is not sealed yet, as a running store does once a
/// day has been over for `seal_after` (the generated days are long over); the seconds it took,
/// when there was anything to seal.
async fn seal_embedded(dir: &Path) -> anyhow::Result<Option<f64>> {
    let mut config = EmbeddedSinkConfig::default();
    config.compaction.seal_after = Duration::ZERO;
    config.compaction.grace = Duration::ZERO;
    let sink = EmbeddedSink::open(dir, config)?;
    let started = Instant::now();
    let stats = sink.compact_once().await?;
    if stats.partitions_failed > 0 {
        bail!("sealing failed in {} partitions", stats.partitions_failed);
    }
    // The merged files go with the next pass (no grace: no query is running).
    sink.compact_once().await?;
    Ok((stats.partitions_sealed > 0).then(|| started.elapsed().as_secs_f64()))
}

/// Loads ClickHouse unless the database already holds `data`; the seconds it took.
async fn load_clickhouse(data: &Data, config: &ClickHouseConfig) -> anyhow::Result<Option<f64>> {
    let client = config.client_for(&config.url).with_database("default");
    let described = data.describe();
    let stored: Option<String> = client
        .query("SELECT description FROM vigil_bench_metrics.bench_data")
        .fetch_optional()
        .await
        .ok()
        .flatten();
    if stored.as_deref() == Some(described.as_str()) {
        return Ok(None);
    }
    client
        .query("DROP DATABASE IF EXISTS vigil_bench_metrics")
        .execute()
        .await?;
    let started = Instant::now();
    Migrator::new(config).run().await?;
    data.write(&ClickHouseSink::new(config)).await?;
    client
        .query("CREATE TABLE vigil_bench_metrics.bench_data (description String) ENGINE = TinyLog")
        .execute()
        .await?;
    client
        .query("INSERT INTO vigil_bench_metrics.bench_data VALUES (?)")
        .bind(described)
        .execute()
        .await?;
    Ok(Some(started.elapsed().as_secs_f64()))
}

/// Seals every day of ClickHouse that is not sealed yet, as a running Vigil does once a day
/// has been over for `seal_after` and quiet (the generated days are long over, but the sealer
/// waits until nothing was inserted for its settling margin); the seconds the copies took,
/// when there was anything to seal. A kept database is migrated first, as `vigil serve` does
/// on start, so that a newer binary seals it in its own terms.
async fn seal_clickhouse(config: &ClickHouseConfig) -> anyhow::Result<Option<f64>> {
    Migrator::new(config).run().await?;
    let sink = ClickHouseSink::new(config);
    let sealing = SealConfig {
        seal_after: Duration::ZERO,
        grace: Duration::ZERO,
    };
    let mut copying = None;
    loop {
        let started = Instant::now();
        let stats = sink.seal_once(sealing).await?;
        if !stats.sealed.is_empty() {
            *copying.get_or_insert(0.0) += started.elapsed().as_secs_f64();
        }
        if stats.waiting == 0 {
            return Ok(copying);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

// ---- timing ----

/// Median milliseconds and answer rows of each query through `POST /api/v1/metrics/query`.
async fn time_api(
    queries: &[Question],
    repetitions: usize,
    vigil: SpawnedCollector,
) -> anyhow::Result<Vec<(f64, usize)>> {
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/metrics/query", vigil.http);
    let mut out = Vec::new();
    for question in queries {
        let timed = time_request(question.name, repetitions, || {
            client
                .post(&url)
                .bearer_auth(&vigil.token)
                .json(&question.query)
                .timeout(Duration::from_secs(600))
        })
        .await?;
        let rows = timed.answer["rows"].as_array().map_or(0, Vec::len);
        out.push((timed.median_ms(), rows));
    }
    vigil.stop();
    Ok(out)
}

/// Median milliseconds of each question's plain aggregate in `clickhouse-client`, as it
/// reports them, and the rows it answered.
fn time_clickhouse_client(
    queries: &[Question],
    repetitions: usize,
    port: u16,
) -> anyhow::Result<Vec<(f64, usize)>> {
    let mut out = Vec::new();
    for question in queries {
        let run = || -> anyhow::Result<(f64, usize)> {
            let output = std::process::Command::new("clickhouse-client")
                .args([
                    "--port",
                    &port.to_string(),
                    "--database",
                    DATABASE,
                    "--time",
                    "--format",
                    "TSV",
                    "--query",
                    &question.plain_clickhouse,
                ])
                .output()
                .context("running clickhouse-client")?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() {
                bail!("{}: clickhouse-client: {stderr}", question.name);
            }
            let seconds: f64 = stderr
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .with_context(|| format!("clickhouse-client --time printed {stderr:?}"))?;
            Ok((
                seconds * 1e3,
                output.stdout.split(|b| *b == b'\n').count() - 1,
            ))
        };
        let (_, rows) = run()?;
        let mut times = (0..repetitions)
            .map(|_| run().map(|(ms, _)| ms))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.push((median(&mut times), rows));
    }
    Ok(out)
}

/// DuckDB's times for one question.
#[derive(Debug, serde::Deserialize)]
struct DuckDbTimes {
    /// Median milliseconds of Vigil's SQL.
    vigil_ms: f64,
    /// Median milliseconds of the plain aggregate, and the rows it answered.
    plain_ms: f64,
    plain_rows: usize,
}

/// DuckDB's times for each question over the embedded store's Parquet files.
fn time_duckdb(
    queries: &[Question],
    repetitions: usize,
    python: &str,
    data_dir: &Path,
) -> anyhow::Result<Vec<DuckDbTimes>> {
    let script = std::env::temp_dir().join(format!("vigil-duckdb-{}.py", std::process::id()));
    std::fs::write(&script, DUCKDB_SCRIPT)?;
    let mut specs = Vec::new();
    for question in queries {
        specs.push(json!({
            "name": question.name,
            "sql": metric_sql(&question.query.plan()?, PROJECT, Dialect::DataFusion),
            "plain": question.plain_duckdb,
        }));
    }
    let spec = json!({
        "store": data_dir.join("store"),
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "repetitions": repetitions,
        "queries": specs,
    });
    let mut child = std::process::Command::new(python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {python}"))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("duckdb script stdin")?;
        stdin.write_all(spec.to_string().as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let _ = std::fs::remove_file(&script);
    if !output.status.success() {
        bail!("the DuckDB script failed");
    }
    serde_json::from_slice(&output.stdout).context("reading the DuckDB script's answer")
}

pub(super) fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
}
