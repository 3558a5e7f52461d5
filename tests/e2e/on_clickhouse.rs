//! The ClickHouse store beyond the shared scenarios: identical answers to the embedded store,
//! a ClickHouse outage under sustained ingest, and two shards behind `Distributed` tables.

use crate::support;

use std::time::{Duration, Instant};

use support::{
    Store, Vigil,
    clickhouse::{ClickHouse, unique_database},
    clickhouse_env,
    conformance::{SHARED_USER_HASH_SECRET, answers, assert_same_answers, send_demo, wait_drained},
    load::{AGENT, Load, acked_spans},
};

const HASH_SECRET_ENV: &str = "VIGIL_SECURITY__USER_HASH_SECRET";

/// The same demo traffic into the embedded store and into ClickHouse: every read answers the
/// same, to the last field.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_stores_answer_identically() {
    let secret = [(HASH_SECRET_ENV, SHARED_USER_HASH_SECRET)];
    let embedded = Vigil::start_on_with(Store::Embedded, &secret);
    let clickhouse = Vigil::start_on_with(Store::ClickHouse, &secret);
    for vigil in [&embedded, &clickhouse] {
        send_demo(vigil, 11, 400).await;
        wait_drained(vigil).await;
    }
    let expected = answers(&embedded).await;
    assert!(expected.len() > 400, "{} answers", expected.len());
    assert_same_answers(
        &expected,
        &answers(&clickhouse).await,
        "embedded vs clickhouse",
    );
}

/// ClickHouse stopped for 35 s under sustained ingest: the WAL absorbs the backlog, refuses with
/// a retryable status past its limit, the health endpoints say so, and when ClickHouse is back
/// the backlog drains by itself. Counted in ClickHouse: every acknowledged run and span once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clickhouse_outage_loses_and_duplicates_nothing() {
    let ch = ClickHouse::start();
    let db = unique_database();
    let mut env = clickhouse_env(&ch.url(), &db);
    env.push((
        "VIGIL_WAL__MAX_BACKLOG_BYTES".into(),
        (4u64 << 20).to_string(),
    ));
    env.push(("VIGIL_WAL__SEGMENT_BYTES".into(), (1u64 << 20).to_string()));
    let vigil = Vigil::spawn_with(env);
    let (status, _) = vigil.get("/readyz").await;
    assert_eq!(status, 200);

    let load = Load::start(&vigil, 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    ch.stop();
    let outage = Instant::now();

    // During the outage: a growing backlog, then, once it is full, refusals and not ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = vigil.get("/readyz").await;
        if status == 503 {
            break body;
        }
        assert_eq!(status, 200, "{body}");
        assert!(Instant::now() < deadline, "the WAL never filled: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.refusals.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the full WAL never refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["store"]["ok"], false, "{body}");
    assert_eq!(body["wal"]["accepting"], false, "{body}");
    assert!(vigil.metric("vigil_wal_backlog_bytes").await > 0.0);
    assert_eq!(vigil.metric("vigil_sink_up").await, 0.0);
    assert!(vigil.metric("vigil_sink_write_errors_total").await > 0.0);
    assert_eq!(vigil.metric("vigil_store_up").await, 0.0);
    while outage.elapsed() < Duration::from_secs(35) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    ch.restart();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked = load.stop().await;
    wait_drained(&vigil).await;
    let (status, body) = vigil.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(vigil.metric("vigil_sink_up").await, 1.0);
    assert_eq!(vigil.metric("vigil_store_up").await, 1.0);

    let acked_spans = acked_spans(&acked);
    let (run_keys, span_keys) = ch.stored_keys(&db).await;
    // Every sender finished its request before stopping: what is stored is what was acked.
    assert_eq!(run_keys, acked.len() as u64);
    assert_eq!(span_keys, acked_spans);
    ch.assert_one_row_per_key(&db).await;
    let listed = vigil.list_all_runs(&format!("agent={AGENT}")).await;
    assert_eq!(listed.len(), acked.len());
}

/// A ClickHouse that stops answering (SIGSTOP) instead of going away: inserts time out and are
/// retried, and once it answers again everything acknowledged is stored, once per key, although
/// the timed-out inserts may have completed on the server too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_clickhouse_times_out_and_nothing_is_lost() {
    let ch = ClickHouse::start();
    let db = unique_database();
    let mut env = clickhouse_env(&ch.url(), &db);
    env.push(("VIGIL_STORE__CLICKHOUSE__TIMEOUT_SECS".into(), "2".into()));
    let vigil = Vigil::spawn_with(env);
    let load = Load::start(&vigil, 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let errors_before = vigil.metric("vigil_sink_write_errors_total").await;
    ch.pause();
    let deadline = Instant::now() + Duration::from_secs(30);
    while vigil.metric("vigil_sink_write_errors_total").await == errors_before {
        assert!(
            Instant::now() < deadline,
            "no insert timed out against a stalled server"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    ch.resume();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = load.stop().await;
    wait_drained(&vigil).await;

    let acked_spans = acked_spans(&acked);
    assert_eq!(ch.stored_keys(&db).await, (acked.len() as u64, acked_spans));
    ch.assert_one_row_per_key(&db).await;
    assert_eq!(
        vigil.list_all_runs(&format!("agent={AGENT}")).await.len(),
        acked.len()
    );
}

/// Two ClickHouse servers as two shards, two collectors writing through the `Distributed`
/// tables: every read equals a single node's answer given the same data, and both shards
/// hold part of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_shards_answer_like_a_single_node() {
    let nodes = ClickHouse::start_cluster("vigil_two", 2);
    let cluster_env = |node: &ClickHouse| {
        let mut env = clickhouse_env(&node.url(), "vigil");
        env.push((
            "VIGIL_STORE__CLICKHOUSE__CLUSTER".into(),
            "vigil_two".into(),
        ));
        env.push((
            "VIGIL_STORE__CLICKHOUSE__NODES".into(),
            format!("[\"{}\", \"{}\"]", nodes[0].url(), nodes[1].url()),
        ));
        env.push((HASH_SECRET_ENV.into(), SHARED_USER_HASH_SECRET.into()));
        env
    };
    let first = Vigil::spawn_with(cluster_env(&nodes[0]));
    let mut second = Vigil::spawn_with(cluster_env(&nodes[1]));
    // The keys are shared (on the first node of a cluster without replicas).
    second.token = first.token.clone();
    let single = Vigil::start_on_with(
        Store::ClickHouse,
        &[(HASH_SECRET_ENV, SHARED_USER_HASH_SECRET)],
    );

    send_demo(&first, 21, 250).await;
    send_demo(&second, 22, 250).await;
    send_demo(&single, 21, 250).await;
    send_demo(&single, 22, 250).await;
    for vigil in [&first, &second, &single] {
        wait_drained(vigil).await;
    }

    for node in &nodes {
        let local = node.number("SELECT count() FROM vigil.runs_local").await;
        assert!(local > 0, "a shard holds no runs");
    }
    let expected = answers(&single).await;
    assert_same_answers(&expected, &answers(&first).await, "shard 1 vs single node");
    assert_same_answers(&expected, &answers(&second).await, "shard 2 vs single node");
}

/// A seal recorded before seals held their raw day's highest block number (migration 5) says
/// nothing about rows inserted since: reads take its day for one with late rows and
/// de-duplicate its raw rows as before, and the sealer seals the day again, recording the
/// number. The answers never change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seals_recorded_without_a_block_number_are_sealed_again() {
    let mut vigil = Vigil::start_on(Store::ClickHouse);
    send_demo(&vigil, 14, 2000).await;
    wait_drained(&vigil).await;
    let query = serde_json::json!({
        "from": "2026-11-18T00:00:00Z",
        "to": "2026-11-21T00:00:00Z",
        "metrics": ["runs", "cost_usd", "repeated_tool_calls", "feedback_positive_rate"],
        "group_by": ["model"],
    });
    let answer = async |vigil: &Vigil| vigil.metrics(&query).await;
    let expected = answer(&vigil).await;
    assert!(
        expected["rows"].as_array().unwrap().len() >= 3,
        "{expected}"
    );

    support::consolidate(&mut vigil).await;
    let ch = ClickHouse::shared();
    let db = vigil.database.clone().unwrap();
    let without_block = format!(
        "SELECT count() FROM (SELECT argMax(raw_max_block, generation) AS block \
         FROM {db}.vigil_seals GROUP BY table_name, day) WHERE block < 0"
    );
    let seals = format!("SELECT count() FROM {db}.vigil_seals");
    let sealed_days =
        format!("SELECT count() FROM (SELECT DISTINCT table_name, day FROM {db}.vigil_seals)");
    // Runs and spans of three days, scores of at least two.
    assert!(ch.number(&sealed_days).await >= 8);
    assert_eq!(ch.number(&without_block).await, 0);
    assert_eq!(answer(&vigil).await, expected, "sealed");

    // The seals as an older binary recorded them.
    let before = ch.number(&seals).await;
    ch.query(&format!(
        "ALTER TABLE {db}.vigil_seals UPDATE raw_max_block = -1 WHERE 1 = 1"
    ))
    .await;
    let pending = format!(
        "SELECT count() FROM system.mutations WHERE database = '{db}' AND table = 'vigil_seals' AND is_done = 0"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while ch.number(&pending).await > 0 {
        assert!(Instant::now() < deadline, "the mutation did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        answer(&vigil).await,
        expected,
        "seals without a block number"
    );

    // Sealed again, each day once more.
    let deadline = Instant::now() + Duration::from_secs(90);
    while ch.number(&without_block).await > 0 {
        assert!(
            Instant::now() < deadline,
            "not sealed again within 90 s; log:\n{}",
            vigil.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ch.number(&seals).await >= before + ch.number(&sealed_days).await);
    assert_eq!(answer(&vigil).await, expected, "sealed again");
}

/// `vigil bench clickhouse --smoke` works end to end against a real server (the figures
/// themselves are for BENCHMARKS.md, not for a test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clickhouse_benchmark_runs() {
    let ch = ClickHouse::start();
    let out = support::cli(&[
        "bench",
        "clickhouse",
        "--smoke",
        "--json",
        "--clickhouse-url",
        &ch.url(),
        "--clickhouse-port",
        &ch.tcp_port.to_string(),
        "--collectors",
        "2",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["rows"].as_u64().unwrap() > 0, "{report}");
    assert!(report["ratio"].as_f64().unwrap() > 0.0, "{report}");
    assert_eq!(report["collectors"], 2, "{report}");

    // How long a key takes to hold on a second node: within the nodes' 1 s poll and a read.
    let out = support::cli(&[
        "bench",
        "keys",
        "--smoke",
        "--json",
        "--clickhouse-url",
        &ch.url(),
    ]);
    let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(keys["keys"], 3, "{keys}");
    for figure in ["created_ms", "revoked_ms"] {
        let max = keys[figure][2].as_f64().unwrap();
        assert!(max > 0.0 && max < 5000.0, "{keys}");
    }
    // The benchmarks drop their databases.
    let left = ch
        .number("SELECT count() FROM system.databases WHERE name LIKE 'vigil_bench%'")
        .await;
    assert_eq!(left, 0);
}

/// The migrations are valid, and idempotent, on a current ClickHouse release too (chDB from
/// PyPI embeds one), not only on the 18.16 server the other tests use.
#[test]
fn the_migrations_apply_on_a_current_clickhouse() {
    let sql = support::cli(&["migrate", "--print-sql"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clickhouse/check_ddl.py");
    let mut child = std::process::Command::new(support::python())
        .args([script, "vigil"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let major: u32 = report["version"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(major >= 24, "{report}");
    // Every column of the column lists, plus the materialized time and insertion columns.
    use vigil_schemas::clickhouse::schema::{RUN_COLUMNS, SCORE_COLUMNS, SPAN_COLUMNS};
    for (table, columns) in [
        ("runs", RUN_COLUMNS),
        ("spans", SPAN_COLUMNS),
        ("scores", SCORE_COLUMNS),
    ] {
        assert_eq!(report["columns"][table], columns.len() + 2, "{report}");
    }
    // Migration 2 applies there: five bloom-filter indexes.
    assert_eq!(report["skip_indexes"], 5, "{report}");
}
