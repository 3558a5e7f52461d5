//! kill -9 of the server under sustained load, then restart: every acknowledged run and span is
//! readable, exactly once.
#![allow(clippy::unwrap_used)]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use support::{Store, Vigil};
use tonic::{Request, metadata::MetadataValue};
use vigil_proto::v1::{self, ingest_service_client::IngestServiceClient};

/// Trace ids the server acknowledged, with their span ids.
type Acked = std::sync::Mutex<Vec<(String, Vec<String>)>>;

const RUNS_PER_REQUEST: u64 = 10;
const SPANS_PER_RUN: u64 = 3;
const SENDERS: usize = 4;

fn request(batch: u64, now: i64) -> (v1::ExportRequest, Vec<(String, Vec<String>)>) {
    let mut req = v1::ExportRequest::default();
    let mut ids = Vec::new();
    for r in 0..RUNS_PER_REQUEST {
        let n = batch * RUNS_PER_REQUEST + r;
        let trace_id = format!("{:032x}", n + 1);
        let start = now - 5_000_000_000 + (n as i64 % 1000) * 1_000_000;
        req.runs.push(v1::Run {
            trace_id: trace_id.clone(),
            session_id: format!("s{}", n % 50),
            agent_name: "crash-test".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_000_000_000,
            outcome: v1::Outcome::Success as i32,
            ..Default::default()
        });
        let mut span_ids = Vec::new();
        for s in 0..SPANS_PER_RUN {
            let span_id = format!("{:016x}", n * 16 + s + 1);
            req.spans.push(v1::Span {
                trace_id: trace_id.clone(),
                span_id: span_id.clone(),
                parent_span_id: if s == 0 {
                    String::new()
                } else {
                    format!("{:016x}", n * 16 + 1)
                },
                kind: v1::SpanKind::Tool as i32,
                name: format!("step-{s}"),
                start_time_unix_nano: start + s as i64,
                end_time_unix_nano: start + 1_000,
                ..Default::default()
            });
            span_ids.push(span_id);
        }
        ids.push((trace_id, span_ids));
    }
    (req, ids)
}

async fn kill_9_under_load_loses_and_duplicates_nothing_acknowledged(store: Store) {
    let mut vigil = Vigil::start_on(store);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let acked = Arc::new(Acked::default());
    let next_batch = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let auth: MetadataValue<_> = format!("Bearer {}", vigil.token).parse().unwrap();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (acked, next_batch, stop, auth) = (
            acked.clone(),
            next_batch.clone(),
            stop.clone(),
            auth.clone(),
        );
        let endpoint = vigil.grpc();
        senders.push(tokio::spawn(async move {
            let Ok(mut client) = IngestServiceClient::connect(endpoint).await else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                let batch = next_batch.fetch_add(1, Ordering::Relaxed);
                let (req, ids) = request(batch, now);
                let mut req = Request::new(req);
                req.metadata_mut().insert("authorization", auth.clone());
                match client.export(req).await {
                    Ok(_) => acked.lock().unwrap().extend(ids),
                    Err(_) => return,
                }
            }
        }));
    }
    // Sustained load for a while, then SIGKILL mid-stream.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) && acked.lock().unwrap().len() < 3000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    vigil.kill9();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        let _ = s.await;
    }
    let acked: BTreeMap<String, Vec<String>> = acked.lock().unwrap().drain(..).collect();
    assert!(
        acked.len() >= 200,
        "too little load to mean anything: {}",
        acked.len()
    );
    let sent_batches = next_batch.load(Ordering::Relaxed);

    vigil.restart();

    // Every acknowledged run is listed exactly once; nothing listed was never sent.
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed: Vec<String> = loop {
        let listed: Vec<String> = vigil
            .list_all_runs("agent=crash-test")
            .await
            .iter()
            .map(|r| r["trace_id"].as_str().unwrap().to_string())
            .collect();
        let unique: BTreeSet<&String> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "a run is listed twice");
        if acked.keys().all(|t| unique.contains(t)) {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged runs missing after restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let max_sent = sent_batches * RUNS_PER_REQUEST;
    for t in &listed {
        let n = u64::from_str_radix(t, 16).unwrap();
        assert!(n >= 1 && n <= max_sent, "run {t} was never sent");
    }

    // Every acknowledged span is readable, once.
    let vigil = Arc::new(vigil);
    let traces: Vec<(String, Vec<String>)> = acked.into_iter().collect();
    let chunks: Vec<Vec<(String, Vec<String>)>> = traces
        .chunks(traces.len().div_ceil(8))
        .map(|c| c.to_vec())
        .collect();
    let mut checkers = Vec::new();
    for chunk in chunks {
        let vigil = vigil.clone();
        checkers.push(tokio::spawn(async move {
            for (trace, span_ids) in chunk {
                let body = vigil.wait_run(&trace, span_ids.len()).await;
                let got: Vec<String> = body["spans"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["span_id"].as_str().unwrap().to_string())
                    .collect();
                let mut sorted = got.clone();
                sorted.sort();
                assert_eq!(sorted, span_ids, "spans of {trace}");
            }
        }));
    }
    for c in checkers {
        c.await.unwrap();
    }
}

on_both_stores!(
    kill_9_under_load_loses_and_duplicates_nothing_acknowledged,
);
