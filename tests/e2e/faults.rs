//! Faults made with real processes and real filesystems: the WAL's disk fills up under load;
//! erasure is killed part-way, or asked for while ClickHouse is down; a webhook receiver is down
//! for minutes while alerts fire and resolve; ClickHouse stalls (SIGSTOP) under queries.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde_json::Value;
use vigil_proto::v1::Outcome;

use crate::{
    alerts::{Receiver, SECRET, assert_signed, send_runs},
    compliance::{Run, generate, no_trace_left, send, traces_of},
    crash::{check_runs_listed_once, check_spans_readable_once},
    ingest::expected_user_hash,
    support::{
        Store, Vigil, clickhouse::ClickHouse, clickhouse::unique_database, clickhouse_env,
        conformance::wait_drained, load::Load, until,
    },
};

/// A tmpfs of a few MiB mounted by the test (which runs as root), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs (the test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Takes every byte of the disk that comes free until stopped, as another process filling the
/// disk would; the file is deleted when stopped.
struct Filler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl Filler {
    fn start(path: PathBuf) -> Filler {
        let stop = Arc::new(AtomicBool::new(false));
        let mut file = std::fs::File::create(&path).unwrap();
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let chunk = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    // Out of space: try again shortly, for bytes the WAL lets go of.
                    if file.write_all(&chunk).is_err() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        });
        Filler {
            stop,
            thread: Some(thread),
            path,
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        std::fs::remove_file(&self.path).unwrap();
    }
}

/// Moves the data directory's WAL onto `disk` and leaves a symbolic link in its place, as an
/// operator giving the WAL its own volume would (Vigil must be stopped).
fn put_wal_on(vigil: &Vigil, disk: &SmallDisk) {
    let wal = vigil.data_dir().join("wal");
    let moved = disk.path().join("wal");
    std::fs::create_dir(&moved).unwrap();
    for entry in std::fs::read_dir(&wal).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), moved.join(entry.file_name())).unwrap();
    }
    std::fs::remove_dir_all(&wal).unwrap();
    std::os::unix::fs::symlink(&moved, &wal).unwrap();
}

/// One OTLP/HTTP export of a single span: its status.
async fn export_one(vigil: &Vigil, n: u64) -> u16 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": format!("{:032x}", u64::MAX - n),
        "spanId": format!("{:016x}", n + 1),
        "name": "probe",
        "startTimeUnixNano": (now - 1_000_000).to_string(),
        "endTimeUnixNano": now.to_string(),
    }]}]}]});
    vigil
        .client()
        .post(format!("{}/v1/traces", vigil.http()))
        .bearer_auth(&vigil.token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_wal_disk_refuses_ingest_until_space_returns() {
    let disk = SmallDisk::mount(24 << 20);
    let mut vigil = Vigil::start_with(&[("VIGIL_WAL__SEGMENT_BYTES", "1048576")]);
    vigil.stop();
    put_wal_on(&vigil, &disk);
    vigil.restart();

    let load = Load::start(&vigil, 3);
    until(Duration::from_secs(30), "load is acknowledged", || async {
        load.acked_runs() >= 300
    })
    .await;

    // The disk fills up: every append is refused with a retryable status, over gRPC
    // (UNAVAILABLE, which the senders retry after a pause) and over HTTP (503).
    let filler = Filler::start(disk.path().join("filler"));
    let refused_before = load.refusals.load(Ordering::Relaxed);
    until(
        Duration::from_secs(30),
        "gRPC ingest is refused",
        || async { load.refusals.load(Ordering::Relaxed) >= refused_before + 20 },
    )
    .await;
    let probes = AtomicU64::new(0);
    until(
        Duration::from_secs(30),
        "OTLP/HTTP is refused with 503",
        || async { export_one(&vigil, probes.fetch_add(1, Ordering::Relaxed)).await == 503 },
    )
    .await;
    assert!(vigil.log().contains("wal write failed"), "{}", vigil.log());

    // Space returns: ingest resumes by itself.
    filler.stop();
    let acked_when_freed = load.acked_runs();
    until(Duration::from_secs(30), "ingest resumes", || async {
        load.acked_runs() >= acked_when_freed + 300
    })
    .await;
    let sent_requests = load.sent_requests();
    let acked = load.stop().await;

    // The WAL is whole (a corrupt segment would refuse to open after kill -9), and everything
    // acknowledged, before, during and after, is readable exactly once.
    vigil.kill9();
    vigil.restart();
    check_runs_listed_once(&vigil, &acked, sent_requests).await;
    check_spans_readable_once(&Arc::new(vigil), &acked).await;
}

/// How long the webhook receiver stays down.
const OUTAGE: Duration = Duration::from_secs(180);

/// The statuses (`firing`, `resolved`) of the notifications `receiver` got about `rule`, each
/// validly signed; panics if one was delivered twice (the same `webhook-id`).
fn transitions(receiver: &Receiver, rule: &str) -> Vec<String> {
    let got = receiver.about(rule);
    got.iter().for_each(assert_signed);
    let ids: std::collections::BTreeSet<String> = got.iter().map(|r| r["id"].to_string()).collect();
    assert_eq!(ids.len(), got.len(), "{rule} delivered twice: {got:?}");
    got.iter()
        .map(|r| r["body"]["status"].as_str().unwrap().to_string())
        .collect()
}

/// Whether `rule` has a firing alert.
async fn firing(vigil: &Vigil, rule: &str) -> bool {
    let (_, body) = vigil.get("/api/v1/alerts").await;
    body["alerts"].as_array().is_some_and(|alerts| {
        alerts
            .iter()
            .any(|a| a["rule"] == rule && a["state"] == "firing")
    })
}

/// The receiver is down for three minutes: an alert that fires and one that resolves meanwhile
/// are each told once when it is back (retried past `retry_for`, then at every group interval),
/// and what happens after is told once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_down_for_minutes_hears_each_transition_once() {
    let mut oncall = Receiver::start(0);
    let dir = tempfile::tempdir().unwrap();
    let rule = |name: &str, agent: &str| {
        format!(
            "[[rules]]\nname = \"{name}\"\nfilters = {{ agent = [\"{agent}\"] }}\nwindow = \"1h\"\n\
             interval = \"1s\"\nmetric = \"completion_rate\"\nop = \"<\"\nthreshold = 0.5\n\
             annotations = {{ summary = \"{{{{ $labels.alertname }}}}\" }}\n"
        )
    };
    let file = dir.path().join("alerts.toml");
    let text = format!(
        "[[receivers]]\nname = \"oncall\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\
         group_wait = \"1s\"\ngroup_interval = \"2s\"\nrepeat_interval = \"1h\"\n\
         retry_initial = \"500ms\"\nretry_for = \"20s\"\ntimeout = \"2s\"\n\n{}\n{}",
        oncall.url(),
        rule("before-outage", "early-bot"),
        rule("during-outage", "late-bot"),
    );
    std::fs::write(&file, text).unwrap();
    let vigil = Vigil::start_with(&[("VIGIL_ALERTING__RULES_FILE", file.to_str().unwrap())]);

    // One alert fires and is told while the receiver is up.
    send_runs(&vigil, "early-bot", Outcome::Failure, 10, 1).await;
    oncall.wait_for("before-outage", 1, &vigil).await;

    // Down: meanwhile that alert resolves and another fires.
    oncall.stop();
    let down = std::time::Instant::now();
    send_runs(&vigil, "early-bot", Outcome::Success, 40, 2).await;
    send_runs(&vigil, "late-bot", Outcome::Failure, 10, 3).await;
    until(Duration::from_secs(30), "the alerts change", || async {
        !firing(&vigil, "before-outage").await && firing(&vigil, "during-outage").await
    })
    .await;
    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    assert!(
        vigil.log().contains("notification not delivered"),
        "the outage outlasted retry_for"
    );

    // Back: each transition of the outage is told, once.
    oncall.restart();
    until(
        Duration::from_secs(120),
        "the outage's transitions are told",
        || async {
            oncall.about("before-outage").len() >= 2 && !oncall.about("during-outage").is_empty()
        },
    )
    .await;
    // The one after the outage too.
    send_runs(&vigil, "late-bot", Outcome::Success, 40, 4).await;
    oncall.wait_for("during-outage", 2, &vigil).await;
    // Past group_wait and a few group intervals: nothing more is said.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        transitions(&oncall, "before-outage"),
        ["firing", "resolved"]
    );
    assert_eq!(
        transitions(&oncall, "during-outage"),
        ["firing", "resolved"]
    );
}

/// `DELETE /api/v1/users/{hash}` with the admin key: status and body (no status: the connection
/// was dropped, the server killed under it).
async fn erase(vigil: &Vigil, user_hash: &str) -> Option<(u16, Value)> {
    let response = vigil
        .client()
        .delete(format!("{}/api/v1/users/{user_hash}", vigil.http()))
        .bearer_auth(&vigil.token)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

/// The person's runs and everyone else's.
fn split_by_user<'a>(runs: &'a [Run], user: &str) -> (Vec<&'a Run>, Vec<&'a Run>) {
    runs.iter().partition(|r| r.user == user)
}

/// Every run of `others` is still listed, and nothing else.
async fn only_these_left(vigil: &Vigil, others: &[&Run]) {
    let listed: std::collections::BTreeSet<String> = vigil
        .list_all_runs("")
        .await
        .iter()
        .map(|r| r["trace_id"].as_str().unwrap().to_string())
        .collect();
    let expected: std::collections::BTreeSet<String> =
        others.iter().map(|r| r.trace_id.clone()).collect();
    assert_eq!(listed, expected, "everyone else's runs, and only theirs");
}

/// Erasure killed (-9) at different moments of its work, again and again, then asked for once
/// more: it completes, and nothing of the person is left in any table or WAL file, while
/// everyone else's runs are all there.
async fn erasure_killed_part_way_completes_when_repeated(store: Store) {
    let mut vigil = Vigil::start_on(store);
    let runs = generate(11, 400);
    send(&vigil, &runs).await;
    wait_drained(&vigil).await;
    let user = "ann@example.com";
    let hash = expected_user_hash(&vigil, user);
    let (theirs, others) = split_by_user(&runs, user);
    assert!(!theirs.is_empty());

    for delay_ms in [0, 3, 10, 30, 100] {
        let request = {
            let (url, token) = (vigil.http(), vigil.token.clone());
            let hash = hash.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .delete(format!("{url}/api/v1/users/{hash}"))
                    .bearer_auth(token)
                    .send()
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        vigil.kill9();
        let _ = request.await;
        vigil.restart();
    }

    let (status, receipt) = erase(&vigil, &hash).await.unwrap();
    assert_eq!(status, 200, "{receipt}");
    wait_drained(&vigil).await;
    no_trace_left(&vigil, store.clickhouse(), &hash, &traces_of(&theirs)).await;
    only_these_left(&vigil, &others).await;
}

on_both_stores!(erasure_killed_part_way_completes_when_repeated);

/// Erasure asked for while ClickHouse is down is refused with a retryable status and says so;
/// asked for again once ClickHouse is back, it completes and leaves nothing of the person.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_while_clickhouse_is_down_completes_when_repeated() {
    let clickhouse = ClickHouse::start();
    let database = unique_database();
    let mut env = clickhouse_env(&clickhouse.url(), &database);
    env.push(("VIGIL_STORE__CLICKHOUSE__TIMEOUT_SECS".into(), "5".into()));
    let mut vigil = Vigil::spawn_with(env);
    vigil.database = Some(database);
    let runs = generate(12, 300);
    send(&vigil, &runs).await;
    wait_drained(&vigil).await;
    let user = "bob";
    let hash = expected_user_hash(&vigil, user);
    let (theirs, others) = split_by_user(&runs, user);

    clickhouse.stop();
    let (status, refused) = erase(&vigil, &hash).await.unwrap();
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");

    clickhouse.restart();
    let (status, receipt) = erase(&vigil, &hash).await.unwrap();
    assert_eq!(status, 200, "{receipt}");
    no_trace_left(&vigil, Some(&clickhouse), &hash, &traces_of(&theirs)).await;
    only_these_left(&vigil, &others).await;
}

/// ClickHouse stopped with SIGSTOP (it keeps its connections and answers nothing) while reads
/// keep coming: each is answered 503 `unavailable` within the store timeout, the server stays
/// responsive, and once ClickHouse answers again nothing is left waiting, in Vigil or in
/// ClickHouse, and the answers are what they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_from_a_stalled_clickhouse_fail_within_the_timeout_and_do_not_pile_up() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let clickhouse = ClickHouse::start();
    let mut env = clickhouse_env(&clickhouse.url(), &unique_database());
    env.push(("VIGIL_STORE__CLICKHOUSE__TIMEOUT_SECS".into(), "2".into()));
    let vigil = Arc::new(Vigil::spawn_with(env));
    send(&vigil, &generate(13, 100)).await;
    wait_drained(&vigil).await;
    let (status, before) = vigil.get("/api/v1/runs?limit=50").await;
    assert_eq!(status, 200, "{before}");

    clickhouse.pause();
    // 40 reads over four seconds, twice the timeout.
    let reads: Vec<_> = (0..40u64)
        .map(|i| {
            let vigil = vigil.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i * 100)).await;
                let started = std::time::Instant::now();
                let (status, body) = vigil.get("/api/v1/runs?limit=50").await;
                (status, body, started.elapsed())
            })
        })
        .collect();
    // Meanwhile the server itself answers at once.
    let started = std::time::Instant::now();
    let (status, _) = vigil.get("/healthz").await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    for read in reads {
        let (status, body, took) = read.await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
        assert!(
            took < TIMEOUT + Duration::from_millis(1500),
            "answered after {took:?}"
        );
    }

    clickhouse.resume();
    until(
        Duration::from_secs(15),
        "reads are answered again",
        || async { vigil.get("/api/v1/runs?limit=50").await == (200, before.clone()) },
    )
    .await;
    // Nothing waits in Vigil but the scrape asking, nor in ClickHouse but this question.
    assert_eq!(vigil.metric("vigil_http_requests_in_flight").await, 1.0);
    until(Duration::from_secs(15), "ClickHouse has nothing left to do", || async {
        clickhouse
            .number("SELECT count() FROM system.processes WHERE query NOT LIKE '%system.processes%'")
            .await
            == 0
    })
    .await;
}
