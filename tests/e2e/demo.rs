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

/// The session list counts each session's runs (newest versions) by outcome, their first and last
/// start, and sums their calls, as the run list shows them; a page at a time, each session once,
/// by last run.
async fn the_session_list_sums_each_sessions_runs(store: Store) {
    use std::collections::BTreeMap;

    let vigil = Vigil::start_on(store);
    support::conformance::send_demo(&vigil, 9, 80).await;
    support::conformance::send_demo(&vigil, 9, 80).await;
    support::conformance::wait_drained(&vigil).await;
    let runs = vigil.list_all_runs("").await;
    let mut expected: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for run in runs.iter().filter(|r| r["session_id"] != "") {
        expected
            .entry(run["session_id"].as_str().unwrap().to_string())
            .or_default()
            .push(run);
    }
    assert!(expected.len() > 3, "{}", expected.len());

    // Walked 7 at a time.
    let mut listed = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = vigil
            .get(&format!("/api/v1/sessions?limit=7{cursor}"))
            .await;
        assert_eq!(status, 200, "{page}");
        listed.extend(page["sessions"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(listed.len(), expected.len(), "each session once");
    let order: Vec<(String, String)> = listed
        .iter()
        .map(|s| (s["last_seen"].to_string(), s["session_id"].to_string()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, sorted, "newest last run first");

    for session in &listed {
        let id = session["session_id"].as_str().unwrap();
        let its = &expected[id];
        assert_eq!(session["runs"], its.len(), "{id}");
        let starts: Vec<&str> = its
            .iter()
            .map(|r| r["start_time"].as_str().unwrap())
            .collect();
        let at = |s: &str| vigil_schemas::time::parse_rfc3339(s).unwrap();
        let first = starts.iter().min_by_key(|s| at(s)).unwrap();
        let last = starts.iter().max_by_key(|s| at(s)).unwrap();
        assert_eq!(session["first_seen"], *first, "{id}");
        assert_eq!(session["last_seen"], *last, "{id}");
        for outcome in ["success", "failure", "partial", "timeout", "cancelled"] {
            let n = its.iter().filter(|r| r["outcome"] == outcome).count();
            assert_eq!(session["outcomes"][outcome], n, "{id} {outcome}");
        }
        let sum = |field: &str| -> u64 {
            its.iter()
                .map(|r| r["calls"][field].as_u64().unwrap())
                .sum()
        };
        for field in [
            "model_calls",
            "unpriced_model_calls",
            "input_tokens",
            "tool_calls",
            "failed_calls",
        ] {
            assert_eq!(session["calls"][field], sum(field), "{id} {field}");
        }
        let nanos: Vec<i64> = its
            .iter()
            .filter_map(|r| r["calls"]["cost_usd"].as_f64())
            .map(|usd| (usd * 1e9).round() as i64)
            .collect();
        let cost = if nanos.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::json!(nanos.iter().sum::<i64>() as f64 / 1e9)
        };
        assert_eq!(session["calls"]["cost_usd"], cost, "{id}");
    }

    // Filtered by user: only that user's sessions.
    let user = listed[0]["user_hash"].as_str().unwrap();
    let (status, page) = vigil
        .get(&format!("/api/v1/sessions?limit=1000&user_hash={user}"))
        .await;
    assert_eq!(status, 200, "{page}");
    let theirs = expected
        .values()
        .filter(|runs| runs.iter().any(|r| r["user_hash"] == user))
        .count();
    assert_eq!(page["sessions"].as_array().unwrap().len(), theirs);
}

on_both_stores!(the_session_list_sums_each_sessions_runs,);

/// A smoke run of `vigil bench runs` on both stores: the harness works, and both stores list the
/// same number of runs for every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_list_benchmark_runs() {
    let report = support::bench_smoke("runs", &[]);
    let requests = report["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 20, "{report}");
    let (embedded, clickhouse) = requests.split_at(10);
    for (e, c) in embedded.iter().zip(clickhouse) {
        assert_eq!(e["request"], c["request"]);
        assert_eq!(e["runs"], c["runs"], "{report}");
    }
    assert_eq!(embedded[0]["runs"], 50, "{report}");
}
