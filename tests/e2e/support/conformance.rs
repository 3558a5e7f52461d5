//! The same data sent to several Vigils, and everything each one answers about it, in a form
//! that can be compared: the conformance suite checks that the stores answer identically.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use serde_json::Value;

use vigil_schemas::time::parse_rfc3339;
use vigil_workload::demo::{DemoOptions, run_demo};

use super::Vigil;

/// A user-hash key every Vigil of a comparison shares, so user hashes agree.
pub const SHARED_USER_HASH_SECRET: &str =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// A fixed end for the demo's history window, so the same seed sends the same runs.
pub const DEMO_END_TIME: &str = "2026-11-20T12:00:00Z";

/// Sends the demo's traffic (seed, runs, fixed end time) to `vigil`, through the workload
/// library's demo sender (what `vigil demo` runs).
pub async fn send_demo(vigil: &Vigil, seed: u64, runs: usize) {
    let report = run_demo(DemoOptions {
        endpoint: vigil.grpc(),
        token: vigil.token.clone(),
        seed,
        runs,
        history: Duration::from_secs(48 * 3600),
        end_ns: Some(parse_rfc3339(DEMO_END_TIME).unwrap()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(report.failed_requests, 0, "{report:?}");
    assert_eq!(report.rejected_items, 0, "{report:?}");
}

/// Waits until everything acknowledged is in the store: the WAL backlog is empty.
pub async fn wait_drained(vigil: &Vigil) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while vigil.metric("vigil_wal_backlog_bytes").await > 0.0 {
        if Instant::now() > deadline {
            let log = vigil.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "the WAL did not drain; log tail (newest first):\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Removes what legitimately differs between two Vigils given the same data: when each
/// accepted a row.
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("ingested_at_ns");
            map.remove("ingested_at");
            map.values_mut().for_each(normalize);
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Everything the read API answers about the data: run lists (whole, filtered, paged), every
/// run with its spans and scores, every session.
pub async fn answers(vigil: &Vigil) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let all = vigil.list_all_runs("").await;
    assert!(!all.is_empty(), "no runs to compare");
    let field = |name: &str| -> BTreeSet<String> {
        all.iter()
            .filter_map(|r| r[name].as_str().map(str::to_string))
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mut queries = vec![String::new()];
    for agent in field("agent_name") {
        queries.push(format!("agent={agent}"));
    }
    for outcome in ["success", "failure", "partial", "timeout"] {
        queries.push(format!("outcome={outcome}"));
    }
    for environment in field("environment") {
        queries.push(format!("environment={environment}"));
    }
    queries.push("from=2026-11-19T00:00:00Z&to=2026-11-20T00:00:00Z".into());
    queries.push("model=gpt-4o".into());
    queries.push("prompt_version=v9".into());
    // Values that would change a statement if they were spliced into SQL match nothing.
    for hostile in [
        "agent=%27%20OR%20%271%27%3D%271",
        "session_id=x%27)%20OR%201%3D1%20--",
        "model=%5C%27%3B%20DROP%20TABLE%20runs%3B%20--",
        "prompt_version=%27%20UNION%20SELECT%201%20--",
    ] {
        let listed = vigil.list_all_runs(hostile).await;
        assert!(listed.is_empty(), "{hostile} matched {} runs", listed.len());
    }
    for query in queries {
        let mut listed = Value::Array(vigil.list_all_runs(&query).await);
        normalize(&mut listed);
        out.push((format!("runs?{query}"), listed));
    }
    // Small pages: the cursor walks the same positions on both stores.
    let (status, mut page) = vigil.get("/api/v1/runs?limit=7&outcome=success").await;
    assert_eq!(status, 200);
    normalize(&mut page);
    out.push(("runs?limit=7".into(), page));
    for run in &all {
        let trace = run["trace_id"].as_str().unwrap();
        let (status, mut body) = vigil.get(&format!("/api/v1/runs/{trace}")).await;
        assert_eq!(status, 200, "{body}");
        normalize(&mut body);
        out.push((format!("runs/{trace}"), body));
    }
    for session in field("session_id") {
        let (status, mut body) = vigil.get(&format!("/api/v1/sessions/{session}")).await;
        assert_eq!(status, 200, "{body}");
        normalize(&mut body);
        out.push((format!("sessions/{session}"), body));
    }
    out
}

/// Asserts that two sets of answers are equal, naming the first request that differs.
pub fn assert_same_answers(left: &[(String, Value)], right: &[(String, Value)], what: &str) {
    assert_eq!(
        left.len(),
        right.len(),
        "{what}: different numbers of answers"
    );
    for ((request, a), (_, b)) in left.iter().zip(right) {
        assert_eq!(a, b, "{what}: answers to {request} differ");
    }
}
