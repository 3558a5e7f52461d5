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

/// The run list's rollups are the sums over each run's spans as its detail shows them (the
/// newest version of each): sent twice, every key is counted once.
async fn run_list_rollups_are_the_sums_of_each_runs_spans(store: Store) {
    let vigil = Vigil::start_on(store);
    support::conformance::send_demo(&vigil, 5, 60).await;
    support::conformance::send_demo(&vigil, 5, 60).await;
    support::conformance::wait_drained(&vigil).await;
    let runs = vigil.list_all_runs("").await;
    assert_eq!(runs.len(), 60);
    let (mut priced, mut failed, mut silent) = (0, 0, 0);
    for run in &runs {
        let trace_id = run["trace_id"].as_str().unwrap();
        let (status, detail) = vigil.get(&format!("/api/v1/runs/{trace_id}")).await;
        assert_eq!(status, 200, "{detail}");
        let spans = detail["spans"].as_array().unwrap();
        let of_kind = |kind: &'static str| spans.iter().filter(move |s| s["kind"] == kind);
        let sum =
            |field: &str| -> u64 { of_kind("model").map(|s| s[field].as_u64().unwrap()).sum() };
        let priced_nanos: Vec<i64> = of_kind("model")
            .filter_map(|s| s["cost_nanos"].as_i64())
            .collect();
        let failed_calls = spans
            .iter()
            .filter(|s| (s["kind"] == "model" || s["kind"] == "tool") && s["status"] == "error")
            .count() as u64;
        let expected = serde_json::json!({
            "model_calls": of_kind("model").count(),
            "unpriced_model_calls": of_kind("model").filter(|s| s["cost_nanos"].is_null()).count(),
            "cost_usd": if priced_nanos.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::json!(priced_nanos.iter().sum::<i64>() as f64 / 1e9)
            },
            "input_tokens": sum("input_tokens"),
            "output_tokens": sum("output_tokens"),
            "cached_input_tokens": sum("cached_input_tokens"),
            "reasoning_tokens": sum("reasoning_tokens"),
            "tool_calls": of_kind("tool").count(),
            "failed_calls": failed_calls,
        });
        assert_eq!(run["calls"], expected, "{trace_id}");
        let silent_partial = run["outcome"] == "success" && failed_calls > 0;
        assert_eq!(run["silent_partial_failure"], silent_partial, "{trace_id}");
        priced += usize::from(!priced_nanos.is_empty());
        failed += usize::from(failed_calls > 0);
        silent += usize::from(silent_partial);
    }
    // The demo's traffic has each case, so the comparison above meant something.
    assert!(
        priced > 0 && failed > 0 && silent > 0,
        "{priced} {failed} {silent}"
    );
    // A session's runs carry the same rollups.
    let run = runs.iter().find(|r| r["session_id"] != "").unwrap();
    let session = run["session_id"].as_str().unwrap();
    let (status, body) = vigil.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(status, 200, "{body}");
    let same = body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["trace_id"] == run["trace_id"])
        .unwrap();
    assert_eq!(same["calls"], run["calls"]);
}

on_both_stores!(run_list_rollups_are_the_sums_of_each_runs_spans,);
