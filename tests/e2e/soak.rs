//! `vigil bench soak --smoke`: forty seconds of paced ingest into a ClickHouse of its own, one
//! kill -9 of the collector and one SIGSTOP of ClickHouse, then the soak's own account of every
//! request (it fails on any loss, duplicate, partial request or unexplained row). Here the test
//! checks that the faults happened and that the account covers the load.

use serde_json::Value;

use crate::support::{self, clickhouse::ClickHouse};

#[test]
fn a_short_soak_with_faults_accounts_for_every_request() {
    let clickhouse = ClickHouse::start();
    let out = support::cli(&[
        "bench",
        "soak",
        "--smoke",
        "--json",
        "--rate",
        "3000",
        "--clickhouse-url",
        &clickhouse.url(),
        "--clickhouse-pid",
        &clickhouse.pid().to_string(),
    ]);
    let report: Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = report["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2, "{report}");
    assert!(kinds.contains(&"kill9") && kinds.contains(&"clickhouse_stopped"));
    let a = &report["accounting"];
    let number = |field: &str| a[field].as_u64().unwrap();
    assert!(number("requests_acknowledged") >= 100, "{report}");
    assert_eq!(
        number("requests_sent"),
        number("requests_acknowledged") + number("requests_failed")
    );
    assert!(number("spans_stored") >= number("spans_acknowledged"));
    assert_eq!(number("api_runs"), number("clickhouse_runs"));
    assert!(number("runs_read_back") >= 100, "{report}");
    // Samples every 5 s from both processes: before and after the kill.
    let processes: Vec<u64> = report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["process"].as_u64().unwrap())
        .collect();
    assert!(processes.contains(&0) && processes.contains(&1), "{report}");
}
