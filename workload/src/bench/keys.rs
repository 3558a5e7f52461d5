//! `vigil bench keys`: how long a key created or revoked on one node takes to hold on another
//! that shares its ClickHouse store. Two `vigil serve` on a fresh database; a key is created
//! through the first node's API and the clock runs until the second accepts it, then revoked
//! through the first and the clock runs until the second refuses it. The bound is the nodes'
//! poll of the control table (once a second) plus one read of it.

use std::{fmt, time::Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;

use crate::bench::{ScratchDatabase, SpawnedCollector, Spread};

#[derive(clap::Args, Debug, Clone)]
pub struct KeysBenchArgs {
    /// ClickHouse's HTTP interface.
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    pub clickhouse_url: String,
    /// Keys created and revoked.
    #[arg(long, default_value_t = 20)]
    pub keys: usize,
    /// Three keys, to check the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeysBenchReport {
    pub keys: usize,
    /// Creation on the first node → accepted by the second, ms.
    pub created_ms: Spread,
    /// Revocation on the first node → refused by the second, ms.
    pub revoked_ms: Spread,
}

impl fmt::Display for KeysBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} keys, two nodes: created on one, accepted by the other after {} (min / median / max)",
            self.keys, self.created_ms
        )?;
        write!(
            f,
            "  revoked on one, refused by the other after {}",
            self.revoked_ms
        )
    }
}

pub async fn run(mut args: KeysBenchArgs) -> anyhow::Result<KeysBenchReport> {
    if args.smoke {
        args.keys = args.keys.min(3);
    }
    if args.keys == 0 {
        bail!("--keys must be at least 1");
    }
    let database = ScratchDatabase::new(&args.clickhouse_url, "vigil_bench_keys")?;
    let env = database.env();
    let first = SpawnedCollector::start_with(&env).await?;
    let second = SpawnedCollector::start_with(&env).await;
    let result = match &second {
        Ok(second) => measure(&first, second, args.keys).await,
        Err(_) => Ok((Vec::new(), Vec::new())),
    };
    first.stop();
    let second = second?;
    second.stop();
    database.drop().await;
    let (mut created, mut revoked) = result?;
    Ok(KeysBenchReport {
        keys: args.keys,
        created_ms: Spread::of(&mut created),
        revoked_ms: Spread::of(&mut revoked),
    })
}

async fn measure(
    first: &SpawnedCollector,
    second: &SpawnedCollector,
    keys: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let http = reqwest::Client::new();
    let (mut created, mut revoked) = (Vec::new(), Vec::new());
    for _ in 0..keys {
        let answer: serde_json::Value = http
            .post(format!("{}/api/v1/keys", first.http))
            .bearer_auth(&first.token)
            .json(&json!({"roles": ["read"], "description": "bench"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let started = Instant::now();
        let token = answer["token"].as_str().context("no token")?;
        let id = answer["id"].as_str().context("no id")?;
        second.wait_for_key(&http, token, 200).await?;
        created.push(started.elapsed().as_secs_f64() * 1000.0);

        http.delete(format!("{}/api/v1/keys/{id}", first.http))
            .bearer_auth(&first.token)
            .send()
            .await?
            .error_for_status()?;
        let started = Instant::now();
        second.wait_for_key(&http, token, 401).await?;
        revoked.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((created, revoked))
}
