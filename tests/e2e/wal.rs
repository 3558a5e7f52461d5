//! The WAL's records across versions, with the real binary: a record this binary cannot read
//! (a format from a newer build) stops the store's writer there, loudly (`/readyz`, `/metrics`),
//! loses nothing, and `vigil wal inspect` / `vigil wal quarantine` let the operator see it and
//! set it aside deliberately, on the audit log; then the records after it are written.

use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_collector::{
    record,
    wal::{Wal, WalConfig},
};
use vigil_schemas::{IngestBatch, RunRow, time::now_ns};

use crate::support::{self, Vigil};

fn run(trace_id: &str) -> IngestBatch {
    let now = now_ns();
    IngestBatch {
        runs: vec![RunRow {
            project_id: "default".into(),
            trace_id: trace_id.into(),
            agent_name: "wal-test".into(),
            start_time_ns: now - 2_000_000_000,
            end_time_ns: now - 1_000_000_000,
            ingested_at_ns: now,
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_record_stops_the_writer_until_it_is_quarantined() {
    let before = "0000000000000000000000000000b4f0";
    let after = "00000000000000000000000000000af7";
    let mut vigil = Vigil::start();
    vigil.stop();
    let data_dir = vigil.data_dir().to_path_buf();
    let wal_dir = data_dir.join("wal");
    // What an older server acknowledged, with a record from a newer build between.
    let unreadable_lsn = {
        let wal = Wal::open(WalConfig::new(&wal_dir)).unwrap();
        let lsn = wal.append(record::encode(&run(before))).await.unwrap();
        wal.append(b"VWAL\x09written by a newer build".to_vec())
            .await
            .unwrap();
        wal.append(record::encode(&run(after))).await.unwrap();
        wal.close();
        lsn
    };
    vigil.restart();

    // Loud: not ready, the record named, the gauge set; what came before it is written.
    wait_until("/readyz to name the record", || async {
        vigil.get("/readyz").await.0 == 503
    })
    .await;
    let (_, ready) = vigil.get("/readyz").await;
    assert_eq!(ready["status"], "not_ready", "{ready}");
    let stopped = &ready["wal"]["unreadable_record"];
    assert_eq!(stopped["lsn"], unreadable_lsn, "{ready}");
    assert!(
        stopped["error"].as_str().unwrap().contains("format 9"),
        "{ready}"
    );
    assert_eq!(vigil.metric("vigil_wal_unreadable_record").await, 1.0);
    // The record before the unreadable one is written (the stop is announced before that
    // write ends, so wait for it).
    vigil.wait_run(before, 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _) = vigil.get(&format!("/api/v1/runs/{after}")).await;
    assert_eq!(
        status, 404,
        "nothing after the unreadable record is written"
    );

    // The operator looks, then sets it aside.
    let dir = data_dir.to_str().unwrap();
    let inspection: Value = serde_json::from_str(&support::cli(&[
        "wal",
        "inspect",
        "--data-dir",
        dir,
        "--json",
    ]))
    .unwrap();
    let reported = inspection["reported"].as_array().unwrap();
    assert_eq!(reported.len(), 1, "{inspection}");
    assert_eq!(reported[0]["lsn"], unreadable_lsn);
    assert_eq!(reported[0]["format"], 9);
    let text = support::cli(&["wal", "inspect", "--data-dir", dir]);
    assert!(text.contains("UNREADABLE"), "{text}");
    let lsn = unreadable_lsn.to_string();
    let quarantined = support::cli(&[
        "wal",
        "quarantine",
        "--data-dir",
        dir,
        "--lsn",
        &lsn,
        "--reason",
        "written by a build we rolled back",
    ]);
    assert!(quarantined.contains(&format!("LSN {lsn}")), "{quarantined}");
    let kept = std::fs::read(
        wal_dir
            .join("quarantine")
            .join(format!("{unreadable_lsn:020}.record")),
    )
    .unwrap();
    assert_eq!(kept, b"VWAL\x09written by a newer build");

    // The running server passes it and writes what follows; nothing acknowledged is lost.
    vigil.wait_run(after, 0).await;
    wait_until("/readyz to be ready", || async {
        vigil.get("/readyz").await.0 == 200
    })
    .await;
    assert_eq!(vigil.metric("vigil_wal_unreadable_record").await, 0.0);

    // On the audit log, and the log still verifies.
    let (status, log) = vigil.get("/api/v1/audit/log?limit=1000").await;
    assert_eq!(status, 200, "{log}");
    let entry = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "wal.quarantine")
        .unwrap_or_else(|| panic!("no wal.quarantine entry in {log}"));
    assert_eq!(entry["key_id"], "cli");
    assert_eq!(entry["parameters"]["lsn"], unreadable_lsn);
    assert_eq!(
        entry["parameters"]["reason"],
        "written by a build we rolled back"
    );
    support::cli(&["audit", "verify", "--data-dir", dir]);
}
