//! `vigil bench failover`: how long alerting is without a leader when the node holding the
//! alerting lease dies. Two `vigil serve` share a fresh ClickHouse database and campaign for the
//! lease in ZooKeeper; each round kills the holder with -9 and runs the clock until the standby
//! holds the lease (`vigil_alerting_leader` = 1) and until it evaluated the rules once, then
//! starts a new standby. The bound: ZooKeeper expires the dead holder's session
//! `--session-timeout` after its last heartbeat (rounded up to its tick), and each rule is
//! evaluated at the next multiple of its interval.

use std::{
    fmt,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::bench::{ScratchDatabase, SpawnedCollector, Spread};

const LEADER: &str = "vigil_alerting_leader";
const EVALUATIONS: &str = "vigil_alert_rule_evaluations_total";

#[derive(clap::Args, Debug, Clone)]
pub struct FailoverBenchArgs {
    /// ClickHouse's HTTP interface.
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    pub clickhouse_url: String,
    /// ZooKeeper (or ClickHouse Keeper): `host:port[,host:port…]`.
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub zookeeper: String,
    /// Leaders killed.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// The rule's evaluation interval.
    #[arg(long, default_value = "4s")]
    pub interval: String,
    /// `alerting.lease.session_timeout`.
    #[arg(long, default_value = "2s")]
    pub session_timeout: String,
    /// One round, to check the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailoverBenchReport {
    pub rounds: usize,
    pub interval: String,
    pub session_timeout: String,
    /// The leader's death → the standby holds the lease, ms.
    pub lease_ms: Spread,
    /// The leader's death → the standby's first evaluation, ms.
    pub evaluating_ms: Spread,
}

impl fmt::Display for FailoverBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} leaders killed (interval {}, session timeout {}): the standby held the lease after {} (min / median / max)",
            self.rounds, self.interval, self.session_timeout, self.lease_ms
        )?;
        write!(f, "  and evaluated the rules after {}", self.evaluating_ms)
    }
}

pub async fn run(mut args: FailoverBenchArgs) -> anyhow::Result<FailoverBenchReport> {
    if args.smoke {
        args.rounds = 1;
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let database = ScratchDatabase::new(&args.clickhouse_url, "vigil_bench_failover")?;
    let stamp = &database.name;
    let rules = std::env::temp_dir().join(format!("{stamp}.toml"));
    std::fs::write(
        &rules,
        format!(
            "[[rules]]\nname = \"never\"\nmetric = \"runs\"\nwindow = \"1m\"\n\
             interval = \"{}\"\nop = \">\"\nthreshold = 1e12\n",
            args.interval
        ),
    )?;
    let mut env = database.env();
    env.extend(
        [
            ("VIGIL_ALERTING__RULES_FILE", rules.display().to_string()),
            ("VIGIL_ALERTING__LEASE__ZOOKEEPER", args.zookeeper.clone()),
            (
                "VIGIL_ALERTING__LEASE__SESSION_TIMEOUT",
                args.session_timeout.clone(),
            ),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let result = measure(&env, args.rounds).await;
    let _ = std::fs::remove_file(&rules);
    database.drop().await;
    let (mut lease, mut evaluating) = result?;
    Ok(FailoverBenchReport {
        rounds: args.rounds,
        interval: args.interval,
        session_timeout: args.session_timeout,
        lease_ms: Spread::of(&mut lease),
        evaluating_ms: Spread::of(&mut evaluating),
    })
}

async fn measure(env: &[(String, String)], rounds: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let http = reqwest::Client::new();
    let mut leader = SpawnedCollector::start_with(env).await?;
    let (mut lease, mut evaluating) = (Vec::new(), Vec::new());
    let outcome = async {
        until(|| async { Ok(leader.figure(&http, LEADER).await? == 1.0) }).await?;
        for _ in 0..rounds {
            let next = SpawnedCollector::start_with(env).await?;
            // The standby is settled: it stands by, and has read the shared state.
            tokio::time::sleep(Duration::from_secs(1)).await;
            if next.figure(&http, LEADER).await? != 0.0 {
                bail!("two nodes lead");
            }
            let before = next.figure(&http, EVALUATIONS).await?;
            let dead = std::mem::replace(&mut leader, next);
            dead.kill9();
            let died = Instant::now();
            until(|| async { Ok(leader.figure(&http, LEADER).await? == 1.0) }).await?;
            lease.push(died.elapsed().as_secs_f64() * 1000.0);
            until(|| async { Ok(leader.figure(&http, EVALUATIONS).await? > before) }).await?;
            evaluating.push(died.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::Ok(())
    }
    .await;
    leader.stop();
    outcome.map(|()| (lease, evaluating))
}

/// Polls `done` every 5 ms, for up to a minute.
async fn until<F: Future<Output = anyhow::Result<bool>>>(
    done: impl Fn() -> F,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await? {
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!("not within 60 s")).context("waiting for the failover");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
