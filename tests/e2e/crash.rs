//! kill -9 of the server under sustained load, then restart: every acknowledged run and span is
//! readable, exactly once, on both stores. On ClickHouse the stored rows are also counted
//! directly: every acknowledged key is there, and once ClickHouse has merged (OPTIMIZE FINAL)
//! there is exactly one row per key. And kill -9 while either store seals its days: every
//! answer stays what it was.

use crate::support;

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use support::{
    Store, Vigil,
    clickhouse::ClickHouse,
    load::{AGENT, Acked, Load, RUNS_PER_REQUEST, acked_spans},
};

async fn kill_9_under_load_loses_and_duplicates_nothing_acknowledged(store: Store) {
    let mut vigil = Vigil::start_on(store);
    let load = Load::start(&vigil, 4);
    // Sustained load for a while, then SIGKILL mid-stream.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) && load.acked_runs() < 3000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    vigil.kill9();
    let sent_requests = load.sent_requests();
    let acked = load.stop().await;
    assert!(
        acked.len() >= 200,
        "too little load to mean anything: {}",
        acked.len()
    );

    vigil.restart();

    let listed = check_runs_listed_once(&vigil, &acked, sent_requests).await;
    let vigil = Arc::new(vigil);
    check_spans_readable_once(&vigil, &acked).await;
    if store == Store::ClickHouse {
        check_clickhouse_rows(&vigil, &acked, listed.len() as u64).await;
    }
}

/// Every acknowledged run is listed exactly once (waiting up to a minute for the store to catch
/// up), and nothing listed was never sent (`sent_requests` were handed out); the listed runs.
/// A listing takes many pages, so only one begun after the minute is over can fail the check:
/// the first pages of one begun earlier may have been read before a replay wrote their runs.
pub(crate) async fn check_runs_listed_once(
    vigil: &Vigil,
    acked: &Acked,
    sent_requests: u64,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed: Vec<String> = loop {
        let begun = Instant::now();
        let listed: Vec<String> = vigil
            .list_all_runs(&format!("agent={AGENT}"))
            .await
            .iter()
            .map(|r| r["trace_id"].as_str().unwrap().to_string())
            .collect();
        let unique: BTreeSet<&String> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "a run is listed twice");
        let missing: Vec<&String> = acked.keys().filter(|t| !unique.contains(t)).collect();
        if missing.is_empty() {
            break listed;
        }
        if begun >= deadline {
            // Stored but not listed, or not stored at all?
            let (status, _) = vigil.get(&format!("/api/v1/runs/{}", missing[0])).await;
            panic!(
                "{} of {} acknowledged runs not listed after 60 s ({} listed), e.g. {:?}; \
                 GET of the first answered {status}; the log ends:\n{}",
                missing.len(),
                acked.len(),
                unique.len(),
                &missing[..missing.len().min(5)],
                support::tail(&vigil.log(), 40),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let max_sent = sent_requests * RUNS_PER_REQUEST;
    for t in &listed {
        let n = u64::from_str_radix(t, 16).unwrap();
        assert!(n >= 1 && n <= max_sent, "run {t} was never sent");
    }
    listed
}

/// Every acknowledged span is readable through the API, once.
pub(crate) async fn check_spans_readable_once(vigil: &Arc<Vigil>, acked: &Acked) {
    let traces: Vec<(String, Vec<String>)> =
        acked.iter().map(|(t, s)| (t.clone(), s.clone())).collect();
    let mut checkers = Vec::new();
    for chunk in traces.chunks(traces.len().div_ceil(8)) {
        let (vigil, chunk) = (vigil.clone(), chunk.to_vec());
        checkers.push(tokio::spawn(async move {
            for (trace, span_ids) in chunk {
                let body = vigil.wait_run(&trace, span_ids.len()).await;
                let mut got: Vec<String> = body["spans"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["span_id"].as_str().unwrap().to_string())
                    .collect();
                got.sort();
                assert_eq!(got, span_ids, "spans of {trace}");
            }
        }));
    }
    for c in checkers {
        c.await.unwrap();
    }
}

/// Counted in ClickHouse itself: the stored keys are the listed runs and their spans, and
/// after a forced merge there is one row per key (replays left no duplicate behind).
async fn check_clickhouse_rows(vigil: &Vigil, acked: &Acked, listed_runs: u64) {
    let ch = ClickHouse::shared();
    let db = vigil.database.as_deref().unwrap();
    let (run_keys, span_keys) = ch.stored_keys(db).await;
    assert_eq!(run_keys, listed_runs);
    let acked_spans = acked_spans(acked);
    // Requests in flight at the kill may have been stored without their acknowledgement
    // reaching the client: more keys than acknowledged is fine, fewer is loss.
    assert!(span_keys >= acked_spans, "{span_keys} < {acked_spans}");
    assert_eq!(span_keys, listed_runs * support::load::SPANS_PER_RUN);
    ch.assert_one_row_per_key(db).await;
}

on_both_stores!(kill_9_under_load_loses_and_duplicates_nothing_acknowledged);

/// kill -9 again and again while the store seals finished days (embedded: merges every file of
/// a day into one, then deletes the inputs; ClickHouse: copies a day's newest versions into a new
/// generation of its sealed table, then records it): every answer, between the kills and once
/// the days are sealed, is the one given before any seal: nothing lost, nothing counted twice.
async fn kill_9_while_sealing_changes_no_answer(store: Store) {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    let mut vigil = Vigil::start_on(store);
    let token = vigil.token.clone();
    support::cli(&[
        "demo",
        "--endpoint",
        &vigil.grpc(),
        "--token",
        &token,
        "--runs",
        "20000",
        "--end-time",
        "2026-11-23T12:00:00Z",
        "--history-hours",
        "48",
    ]);
    support::conformance::wait_drained(&vigil).await;
    let query = serde_json::json!({
        "from": "2026-11-21T00:00:00Z",
        "to": "2026-11-24T00:00:00Z",
        "metrics": ["runs", "cost_usd", "model_calls", "tool_calls", "feedback_positive_rate"],
        "group_by": ["agent"],
    });
    let answer = async |vigil: &Vigil| vigil.metrics(&query).await;
    let expected = answer(&vigil).await;
    assert!(
        expected["rows"].as_array().unwrap().len() >= 3,
        "{expected}"
    );

    vigil.stop();
    let data_dir = vigil.data_dir().to_path_buf();
    let database = vigil.database.clone();
    match &database {
        Some(_) => vigil.restart_with(support::CLICKHOUSE_SEAL_AT_ONCE),
        None => vigil.restart_with(support::SEAL_AT_ONCE),
    }
    // A seal under way: embedded, a `.tmp` output being written; ClickHouse, a copy into a
    // sealed table running on the server.
    let sealing = async || match &database {
        Some(db) => {
            let copies = format!(
                "SELECT count() FROM system.processes WHERE query LIKE 'INSERT INTO {db}.%_sealed%'"
            );
            ClickHouse::shared().number(&copies).await > 0
        }
        None => support::store_partitions(&data_dir)
            .iter()
            .flatten()
            .any(|name| name.ends_with(vigil_schemas::layout::TEMP_FILE_SUFFIX)),
    };
    let mut rng = StdRng::seed_from_u64(14);
    let mut interrupted = 0;
    for round in 0..6 {
        // Kill as soon as a seal is under way (or after a while, if none starts), a little later
        // each time. ClickHouse seals a day once nothing was inserted into it for 10 s.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sealing().await && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..10))).await;
        interrupted += usize::from(sealing().await);
        vigil.kill9();
        vigil.restart();
        assert_eq!(answer(&vigil).await, expected, "after kill {round}");
    }
    eprintln!("{interrupted} of 6 kills interrupted a seal");
    assert!(interrupted >= 1, "no kill hit a seal");
    support::consolidate(&mut vigil).await;
    assert_eq!(answer(&vigil).await, expected, "once sealed");
}

on_both_stores!(kill_9_while_sealing_changes_no_answer);
