//! `vigil bench clickhouse`: ingest through Vigil into ClickHouse, end to end (client → gRPC →
//! WAL with fsync → batcher → RowBinary inserts), against the physical limit of the same server:
//! the very same rows inserted directly by `clickhouse-client` from Native files.
//!
//! 1. A fresh `vigil serve` on the ClickHouse store (a new database) takes `vigil bench ingest`
//!    load for the configured time; the clock runs from the first request until the collector's
//!    WAL backlog is empty, i.e. every acknowledged row is confirmed by ClickHouse. Vigil's rate
//!    is the rows then in ClickHouse over that time. With `--collectors N`, N collectors (ingest
//!    nodes) write the same database, each under its own `--concurrency` clients.
//! 2. The collector stops. Each table is exported from ClickHouse as a Native file, and
//!    `clickhouse-client` inserts it into a second database with the same tables; its rate is
//!    the rows over the summed insert times.
//! 3. Both databases are dropped.

use std::{
    fmt,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use vigil_schemas::{
    clickhouse::{ClickHouseConfig, Migrator, schema::column_list},
    layout::Table,
};

use crate::{
    bench::{IngestBenchOptions, SpawnedCollector, bench_ingest},
    demo::IngestProtocol,
};

#[derive(clap::Args, Debug, Clone)]
pub struct ClickHouseBenchArgs {
    /// ClickHouse's HTTP interface.
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    pub clickhouse_url: String,
    /// ClickHouse's native TCP port, for `clickhouse-client`.
    #[arg(long, default_value_t = 9000)]
    pub clickhouse_port: u16,
    /// native or otlp.
    #[arg(long, default_value = "native")]
    pub protocol: IngestProtocol,
    /// Client tasks per collector.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Collectors (ingest nodes) writing the same database, each with its own clients.
    #[arg(long, default_value_t = 1)]
    pub collectors: usize,
    #[arg(long, default_value_t = 512)]
    pub batch_spans: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20.0)]
    pub duration_secs: f64,
    /// `batcher.max_rows` of the collector: rows per insert.
    #[arg(long, default_value_t = 100_000)]
    pub batch_rows: usize,
    /// A couple of seconds, to check the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClickHouseBenchReport {
    pub server_version: String,
    pub protocol: IngestProtocol,
    pub concurrency: usize,
    pub collectors: usize,
    pub batch_rows: usize,
    /// Rows (runs + spans + scores) Vigil stored.
    pub rows: u64,
    pub spans: u64,
    /// First request → every acknowledged row confirmed by ClickHouse.
    pub vigil_seconds: f64,
    pub vigil_rows_per_second: f64,
    /// Acknowledged spans per second while the load ran (the ingest side alone), all
    /// collectors together.
    pub vigil_acknowledged_spans_per_second: f64,
    /// Cores the collectors used, together.
    pub collector_cores_used: Option<f64>,
    /// Cores the load generator (this process) used while the load ran: it shares the machine.
    pub load_generator_cores_used: Option<f64>,
    /// `clickhouse-client … FORMAT Native` of the same rows, summed over the three tables.
    pub direct_seconds: f64,
    pub direct_rows_per_second: f64,
    /// Vigil's rows/s over the direct insert's.
    pub ratio: f64,
}

impl fmt::Display for ClickHouseBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ClickHouse {}: {} rows ({} spans)",
            self.server_version, self.rows, self.spans
        )?;
        writeln!(
            f,
            "  vigil end to end ({}, {} collector(s), {} clients each, {} rows per insert): {:.2} s, {:.0} rows/s (ingest acknowledged {:.0} spans/s{})",
            self.protocol.as_str(),
            self.collectors,
            self.concurrency,
            self.batch_rows,
            self.vigil_seconds,
            self.vigil_rows_per_second,
            self.vigil_acknowledged_spans_per_second,
            self.collector_cores_used
                .map(|c| format!(", collectors {c:.2} cores"))
                .unwrap_or_default()
                + &self
                    .load_generator_cores_used
                    .map(|c| format!(", load generator {c:.2} cores"))
                    .unwrap_or_default()
        )?;
        writeln!(
            f,
            "  clickhouse-client Native insert:   {:.2} s, {:.0} rows/s",
            self.direct_seconds, self.direct_rows_per_second
        )?;
        write!(f, "  ratio: {:.1} %", self.ratio * 100.0)
    }
}

pub async fn run(mut args: ClickHouseBenchArgs) -> anyhow::Result<ClickHouseBenchReport> {
    if args.collectors == 0 {
        bail!("--collectors must be at least 1");
    }
    if args.smoke {
        args.duration_secs = args.duration_secs.min(2.0);
        args.concurrency = args.concurrency.min(2);
        args.batch_spans = args.batch_spans.min(100);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let vigil_db = format!("vigil_bench_{stamp}");
    let direct_db = format!("vigil_bench_direct_{stamp}");
    let config = |database: &str| ClickHouseConfig {
        url: args.clickhouse_url.clone(),
        database: database.to_string(),
        ..ClickHouseConfig::default()
    };
    // Both databases exist before the clock starts: the collector does not migrate.
    for db in [&vigil_db, &direct_db] {
        Migrator::new(&config(db)).run().await?;
    }
    let client = config(&vigil_db).client_for(&args.clickhouse_url);
    let server_version: String = client.query("SELECT version()").fetch_one().await?;

    let result = measure(&args, &config(&vigil_db), &direct_db).await;
    for db in [&vigil_db, &direct_db] {
        client
            .query(&format!("DROP DATABASE IF EXISTS {db}"))
            .execute()
            .await?;
    }
    let (vigil, direct) = result?;
    if args.smoke && vigil.rows == 0 {
        bail!("smoke run: no row reached ClickHouse");
    }
    Ok(ClickHouseBenchReport {
        server_version: server_version.trim().to_string(),
        protocol: args.protocol,
        concurrency: args.concurrency,
        collectors: args.collectors,
        batch_rows: args.batch_rows,
        rows: vigil.rows,
        spans: vigil.spans,
        vigil_seconds: vigil.seconds,
        vigil_rows_per_second: vigil.rows as f64 / vigil.seconds,
        vigil_acknowledged_spans_per_second: vigil.acknowledged_spans_per_second,
        collector_cores_used: vigil.cores_used,
        load_generator_cores_used: vigil.load_generator_cores,
        direct_seconds: direct,
        direct_rows_per_second: vigil.rows as f64 / direct,
        ratio: direct / vigil.seconds,
    })
}

struct VigilRun {
    rows: u64,
    spans: u64,
    seconds: f64,
    acknowledged_spans_per_second: f64,
    cores_used: Option<f64>,
    load_generator_cores: Option<f64>,
}

/// Both halves; the second gets the whole machine (the collector has stopped).
async fn measure(
    args: &ClickHouseBenchArgs,
    vigil_config: &ClickHouseConfig,
    direct_db: &str,
) -> anyhow::Result<(VigilRun, f64)> {
    let env = [
        ("VIGIL_STORE__KIND", "clickhouse".to_string()),
        ("VIGIL_STORE__CLICKHOUSE__URL", vigil_config.url.clone()),
        (
            "VIGIL_STORE__CLICKHOUSE__DATABASE",
            vigil_config.database.clone(),
        ),
        ("VIGIL_STORE__CLICKHOUSE__MIGRATE_ON_START", "false".into()),
        ("VIGIL_BATCHER__MAX_ROWS", args.batch_rows.to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let mut collectors = Vec::new();
    for _ in 0..args.collectors {
        collectors.push(SpawnedCollector::start_with(&env).await?);
    }
    let duration = Duration::try_from_secs_f64(args.duration_secs)
        .context("--duration-secs is not a usable number of seconds")?;
    let started = Instant::now();
    // Each collector under its own clients, all at once; each its own seed, so that the
    // collectors take different traces.
    let tasks: Vec<_> = collectors
        .iter()
        .zip(1u64..)
        .map(|(collector, seed)| {
            tokio::spawn(bench_ingest(IngestBenchOptions {
                endpoint: collector.endpoint.clone(),
                token: collector.token.clone(),
                protocol: args.protocol,
                concurrency: args.concurrency,
                batch_spans: args.batch_spans,
                duration,
                warmup: Duration::ZERO,
                seed,
                collector_pid: Some(collector.pid()),
                ..IngestBenchOptions::default()
            }))
        })
        .collect();
    let mut loads = Vec::new();
    for task in tasks {
        loads.push(task.await.context("a load task panicked")?);
    }
    let mut drained = Ok(());
    if loads.iter().all(Result::is_ok) {
        for collector in &collectors {
            drained = drained.and(wait_drained(&collector.http).await);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    for collector in collectors {
        collector.stop();
    }
    let loads = loads.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    drained?;
    let acknowledged_spans_per_second = loads.iter().map(|l| l.spans_per_second).sum();
    let cores_used = loads
        .iter()
        .map(|l| l.collector.as_ref().map(|c| c.cores_used))
        .sum::<Option<f64>>();
    // Every load measured this whole process: the largest is the load generator's.
    let load_generator_cores = loads
        .iter()
        .filter_map(|l| l.client_cpu_seconds.map(|s| s / l.duration_secs))
        .reduce(f64::max);

    let client = vigil_config.client();
    let mut rows = 0;
    let mut spans = 0;
    let mut direct_seconds = 0.0;
    let dir = std::env::temp_dir().join(format!("{}-native", vigil_config.database));
    std::fs::create_dir_all(&dir)?;
    let result = async {
        for table in Table::ALL {
            let count: u64 = client
                .query(&format!("SELECT count() FROM {table}"))
                .fetch_one()
                .await?;
            rows += count;
            if table == Table::Spans {
                spans = count;
            }
            let file = dir.join(format!("{table}.native"));
            export_native(&client, table, &file).await?;
            direct_seconds += insert_native(args.clickhouse_port, direct_db, table, &file)?;
        }
        anyhow::Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    Ok((
        VigilRun {
            rows,
            spans,
            seconds,
            acknowledged_spans_per_second,
            cores_used,
            load_generator_cores,
        },
        direct_seconds,
    ))
}

/// Polls the collector's `/metrics` until its WAL backlog is empty.
async fn wait_drained(http: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let client = reqwest::Client::new();
    loop {
        if super::figure(&client, http, "vigil_wal_backlog_bytes").await? == 0.0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the collector's WAL backlog did not drain into ClickHouse within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `SELECT <columns> FROM table FORMAT Native` into `file`.
async fn export_native(
    client: &clickhouse::Client,
    table: Table,
    file: &Path,
) -> anyhow::Result<()> {
    let mut cursor = client
        .query(&format!("SELECT {} FROM {table}", column_list(table)))
        .fetch_bytes("Native")?;
    let mut out = tokio::fs::File::create(file).await?;
    while let Some(chunk) = cursor.next().await? {
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    Ok(())
}

/// `clickhouse-client --query "INSERT … FORMAT Native" < file`; its wall time in seconds.
fn insert_native(port: u16, database: &str, table: Table, file: &Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    let output = std::process::Command::new("clickhouse-client")
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--query",
        ])
        .arg(format!(
            "INSERT INTO {database}.{table} ({}) FORMAT Native",
            column_list(table)
        ))
        .stdin(std::fs::File::open(file)?)
        .output()
        .context("running clickhouse-client (Debian package clickhouse-client)")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "clickhouse-client failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(seconds)
}
