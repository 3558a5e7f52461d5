//! Many nodes as one: ClickHouse shards with replicas kept in step through a real ZooKeeper.

use std::time::{Duration, Instant};

use serde_json::json;
use vigil_proto::v1;
use vigil_schemas::time::{NANOS_PER_DAY, now_ns};

use crate::support::{
    Vigil,
    clickhouse::ClickHouse,
    clickhouse_env,
    conformance::{SHARED_USER_HASH_SECRET, wait_drained},
    load::{Load, acked_spans},
    zookeeper::ZooKeeper,
};

const CLUSTER: &str = "vigil_replicated";

/// Two shards of two replicas: migrations create replicated tables; one replica of each shard
/// is killed (-9) under sustained ingest, and ingest and reads go on; every acknowledged run and
/// span is stored exactly once and the replicas catch up after their restart; erasure and
/// retention then remove what they should from every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_of_each_shard_dies_under_ingest() {
    let zookeeper = ZooKeeper::start();
    let shards = ClickHouse::start_replicated(CLUSTER, 2, 2, &zookeeper);
    let nodes: Vec<&ClickHouse> = shards.iter().flatten().collect();
    let urls: Vec<String> = nodes.iter().map(|node| node.url()).collect();
    let mut env = clickhouse_env(&shards[0][0].url(), "vigil");
    for (key, value) in [
        ("VIGIL_STORE__CLICKHOUSE__CLUSTER", CLUSTER.to_string()),
        (
            "VIGIL_STORE__CLICKHOUSE__NODES",
            serde_json::to_string(&urls).unwrap(),
        ),
        ("VIGIL_STORE__CLICKHOUSE__REPLICATED", "true".into()),
        (
            "VIGIL_SECURITY__USER_HASH_SECRET",
            SHARED_USER_HASH_SECRET.into(),
        ),
        ("VIGIL_RETENTION__DEFAULT", "30d".into()),
        ("VIGIL_RETENTION__POLICIES__SHORT", "2d".into()),
        ("VIGIL_RETENTION__CHECK_INTERVAL", "1s".into()),
    ] {
        env.push((key.into(), value));
    }
    let vigil = Vigil::spawn_with(env);

    let deadline = Instant::now() + Duration::from_secs(60);
    let newest = vigil_schemas::clickhouse::migrate::MIGRATIONS
        .last()
        .map_or(0, |m| u64::from(m.version));
    for node in &nodes {
        let migrated = "SELECT count() FROM system.tables WHERE database = 'vigil' \
                        AND name = 'vigil_migrations'";
        let last = "SELECT max(version) FROM vigil.vigil_migrations";
        while node.number(migrated).await == 0 || node.number(last).await < newest {
            assert!(Instant::now() < deadline, "not migrated:\n{}", vigil.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let engines = "SELECT count() FROM system.tables WHERE database = 'vigil' \
                       AND name IN ('runs_local', 'spans_local', 'scores_local') \
                       AND engine = 'ReplicatedReplacingMergeTree'";
        assert_eq!(node.number(engines).await, 3, "{}", node.url());
    }

    // Sustained ingest; one replica of each shard killed in the middle of it.
    let load = Load::start(&vigil, 4);
    wait_for(|| load.acked_runs() >= 300, "ingest before the kill").await;
    let dead = [&shards[0][1], &shards[1][1]];
    for node in dead {
        node.stop();
    }
    let at_kill = load.acked_runs();
    wait_for(
        || load.acked_runs() >= at_kill + 1000,
        "ingest after the kill",
    )
    .await;
    let acked = load.stop().await;
    // The store takes every batch with a replica of each shard gone.
    wait_drained(&vigil).await;
    // Reads go on, through the replicas left. They may miss the last parts a dead replica took
    // before it could pass them on: those are on its disk until it comes back.
    let alive = &shards[0][0];
    let acked_keys = (acked.len() as u64, acked_spans(&acked));
    let during = alive.stored_keys("vigil").await;
    assert!(during.0 <= acked_keys.0 && during.1 <= acked_keys.1);
    let (status, page) = vigil.get("/api/v1/runs?limit=5").await;
    assert_eq!(status, 200, "{page}");
    let window = |offset_ns: i64| vigil_schemas::time::rfc3339(now_ns() + offset_ns);
    let runs_in_last_hour = json!({
        "from": window(-3_600_000_000_000),
        "to": window(3_600_000_000_000),
        "metrics": ["runs"],
    });
    let answer = vigil.metrics(&runs_in_last_hour).await;
    assert!(answer["rows"][0]["runs"].as_u64().unwrap() >= during.0.min(1));

    // Back, they catch up: each replica holds its shard's rows, each key once, and every
    // acknowledged run and span is read exactly once.
    for node in dead {
        node.restart();
    }
    let mut stored = (0, 0);
    for shard in &shards {
        let deadline = Instant::now() + Duration::from_secs(120);
        let keys = loop {
            let (first, second) = (local_keys(&shard[0]).await, local_keys(&shard[1]).await);
            if first == second {
                break first;
            }
            assert!(
                Instant::now() < deadline,
                "replicas apart: {first:?} {second:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        for replica in shard {
            assert_one_row_per_key(replica).await;
        }
        stored = (stored.0 + keys.0, stored.1 + keys.1);
    }
    assert_eq!(stored, acked_keys, "keys on the shards, each counted once");
    assert_eq!(alive.stored_keys("vigil").await, acked_keys);
    let answer = vigil.metrics(&runs_in_last_hour).await;
    assert_eq!(answer["rows"][0]["runs"], json!(acked.len()), "{answer}");

    // Erasure: one person's runs and spans leave every replica.
    let now = now_ns();
    let people = [("ann", 0), ("bob", 1), ("ann", 2)];
    let mut request = v1::ExportRequest::default();
    for (user, n) in people {
        add_run(&mut request, n, user, now - 3_600_000_000_000, "");
    }
    let response = vigil.export_native(request).await;
    assert!(response.rejections.is_empty(), "{:?}", response.rejections);
    wait_drained(&vigil).await;
    let (_, runs) = vigil.get(&format!("/api/v1/runs/{}", trace(0))).await;
    let ann = runs["run"]["user_hash"].as_str().unwrap().to_string();
    let (status, receipt) = vigil
        .delete_as(&format!("/api/v1/users/{ann}"), &vigil.token)
        .await;
    assert_eq!(status, 200, "{receipt}\n{}", vigil.log());
    // Each shard counted once: ann's two runs and their two spans.
    assert_eq!(receipt["deleted"]["runs"], json!(2), "{receipt}");
    assert_eq!(receipt["deleted"]["spans"], json!(2), "{receipt}");
    for node in &nodes {
        let left = node
            .number(&format!(
                "SELECT count() FROM vigil.runs_local WHERE user_hash = '{ann}'"
            ))
            .await
            + node
                .number(&format!(
                    "SELECT count() FROM vigil.spans_local WHERE trace_id IN ('{}', '{}')",
                    trace(0),
                    trace(2)
                ))
                .await;
        assert_eq!(left, 0, "{} still holds ann's rows", node.url());
    }
    let (status, _) = vigil.get(&format!("/api/v1/runs/{}", trace(1))).await;
    assert_eq!(status, 200, "bob's run stays");

    // Retention: a 40-day-old day dropped whole, a 5-day-old run past its 2-day policy
    // deleted by row, a 5-day-old run under the 30-day default kept.
    let mut request = v1::ExportRequest::default();
    add_run(&mut request, 10, "", now - 40 * NANOS_PER_DAY, "");
    add_run(&mut request, 11, "", now - 5 * NANOS_PER_DAY, "short");
    add_run(&mut request, 12, "", now - 5 * NANOS_PER_DAY, "");
    vigil.export_native(request).await;
    wait_drained(&vigil).await;
    let copies = async |n: u64| {
        let mut sum = 0;
        for node in &nodes {
            let sql = format!(
                "SELECT count() FROM vigil.runs_local WHERE trace_id = '{}'",
                trace(n)
            );
            sum += node.number(&sql).await;
        }
        sum
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while copies(10).await + copies(11).await > 0 {
        assert!(
            Instant::now() < deadline,
            "expired runs left:\n{}",
            vigil.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(copies(12).await, 2, "one copy on each replica of its shard");
}

fn trace(n: u64) -> String {
    format!("{:016x}{n:016x}", 0xc1u64)
}

/// A run of `user` (raw id) at `start` with one model call, under retention `policy`.
fn add_run(request: &mut v1::ExportRequest, n: u64, user: &str, start: i64, policy: &str) {
    request.runs.push(v1::Run {
        trace_id: trace(n),
        session_id: format!("s-{n}"),
        user_id: user.into(),
        agent_name: "cluster-test".into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000_000,
        outcome: v1::Outcome::Success as i32,
        retention: policy.into(),
        ..Default::default()
    });
    request.spans.push(v1::Span {
        trace_id: trace(n),
        span_id: format!("{:016x}", n + 1),
        kind: v1::SpanKind::Model as i32,
        name: "llm".into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 500_000_000,
        model: Some(v1::ModelCall {
            model: "gpt-x".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
}

/// Distinct (runs, spans) keys in one server's own tables.
async fn local_keys(node: &ClickHouse) -> (u64, u64) {
    let runs = node
        .number("SELECT uniqExact(trace_id) FROM vigil.runs_local")
        .await;
    let spans = node
        .number("SELECT uniqExact(trace_id, span_id) FROM vigil.spans_local")
        .await;
    (runs, spans)
}

/// Merged (OPTIMIZE … FINAL), one server's own tables hold one row per key: no retry or
/// failover left a second copy.
async fn assert_one_row_per_key(node: &ClickHouse) {
    let (runs, spans) = local_keys(node).await;
    for table in ["runs_local", "spans_local"] {
        node.query(&format!("OPTIMIZE TABLE vigil.{table} FINAL"))
            .await;
    }
    assert_eq!(
        node.number("SELECT count() FROM vigil.runs_local").await,
        runs
    );
    assert_eq!(
        node.number("SELECT count() FROM vigil.spans_local").await,
        spans
    );
}

async fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
