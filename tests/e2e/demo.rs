//! `vigil demo` against a running server over both protocols, then a graceful restart: every run
//! the demo sent is readable before and after, once.

use crate::support;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use support::{Store, Vigil};

async fn wait_for_runs(vigil: &Vigil, expected: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = vigil.list_all_runs("").await;
        let ids: BTreeSet<&str> = runs
            .iter()
            .map(|r| r["trace_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), runs.len(), "a run is listed twice");
        if runs.len() >= expected {
            assert_eq!(runs.len(), expected);
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} runs readable",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn demo_traffic_is_stored_and_survives_a_graceful_restart(store: Store) {
    let mut vigil = Vigil::start_on(store);
    let (endpoint, token) = (vigil.grpc(), vigil.token.clone());
    let out = support::cli(&[
        "demo",
        "--endpoint",
        &endpoint,
        "--token",
        &token,
        "--runs",
        "120",
        "--seed",
        "7",
        "--protocol",
        "mixed",
        "--batch-runs",
        "10",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["failed_requests"], 0, "{report}");

    let runs = wait_for_runs(&vigil, 120).await;
    let agents: BTreeSet<&str> = runs
        .iter()
        .map(|r| r["agent_name"].as_str().unwrap())
        .collect();
    assert!(agents.len() >= 3, "several agents: {agents:?}");
    assert!(
        runs.iter().any(|r| r["outcome"] != "success"),
        "some runs fail"
    );
    assert!(
        runs.iter().all(|r| r["synthesized"] == false),
        "every run had its root"
    );

    vigil.stop();
    vigil.restart();
    let after = wait_for_runs(&vigil, 120).await;
    let before_ids: BTreeSet<&str> = runs
        .iter()
        .map(|r| r["trace_id"].as_str().unwrap())
        .collect();
    let after_ids: BTreeSet<&str> = after
        .iter()
        .map(|r| r["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(before_ids, after_ids);
}

on_both_stores!(demo_traffic_is_stored_and_survives_a_graceful_restart,);
