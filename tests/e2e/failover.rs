//! Alerting on many nodes: rules, silences and alert state shared through ClickHouse, and a
//! lease in a real ZooKeeper that makes exactly one node evaluate and page at a time. The
//! leader is killed with -9 while an alert fires and while a resolution is due, and paused
//! (SIGSTOP) past the end of its lease: on-call hears every transition once, from whoever
//! holds the lease.

use std::{
    collections::BTreeSet,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use vigil_proto::v1;

use crate::{
    alerts::{Receiver, SECRET, send_runs},
    nodes::EVALUATIONS,
    support::{
        Vigil,
        clickhouse::{ClickHouse, unique_database},
        clickhouse_env,
        conformance::SHARED_USER_HASH_SECRET,
        until,
        zookeeper::ZooKeeper,
    },
};

/// The rules' evaluation interval; the lease's session timeout is half of it.
const INTERVAL: Duration = Duration::from_secs(4);
/// The window the rule counts failed runs over: an alert resolves this long after the runs.
const WINDOW: &str = "20s";

/// What a test here runs against: a fresh database on the shared ClickHouse, an on-call
/// receiver, the rules file that pages it, and, for the lease, a ZooKeeper.
struct Scene {
    database: String,
    oncall: Receiver,
    rules: std::path::PathBuf,
    zookeeper: Option<ZooKeeper>,
    _dir: tempfile::TempDir,
}

impl Scene {
    fn new(lease: bool) -> Scene {
        let oncall = Receiver::start(0);
        let dir = tempfile::tempdir().unwrap();
        Scene {
            database: unique_database(),
            rules: rules_file(dir.path(), &oncall),
            oncall,
            zookeeper: lease.then(ZooKeeper::start),
            _dir: dir,
        }
    }

    fn zookeeper(&self) -> &ZooKeeper {
        self.zookeeper.as_ref().expect("a scene with the lease")
    }

    /// A node running everything, with the lease when the scene has one.
    fn node(&self) -> Vigil {
        let mut env = self.settings();
        if let Some(zookeeper) = &self.zookeeper {
            env.push((
                "VIGIL_ALERTING__LEASE__ZOOKEEPER".into(),
                zookeeper.address(),
            ));
            env.push((
                "VIGIL_ALERTING__LEASE__SESSION_TIMEOUT".into(),
                format!("{}ms", INTERVAL.as_millis() / 2),
            ));
        }
        Vigil::spawn_with(env)
    }

    /// The settings every node shares (the lease aside).
    fn settings(&self) -> Vec<(String, String)> {
        self.settings_on(&ClickHouse::shared().url())
    }

    /// [`Self::settings`] on the ClickHouse server at `url`.
    fn settings_on(&self, url: &str) -> Vec<(String, String)> {
        let mut env = clickhouse_env(url, &self.database);
        env.push((
            "VIGIL_SECURITY__USER_HASH_SECRET".into(),
            SHARED_USER_HASH_SECRET.into(),
        ));
        env.push((
            "VIGIL_ALERTING__RULES_FILE".into(),
            self.rules.to_str().unwrap().into(),
        ));
        env
    }
}

fn rules_file(dir: &std::path::Path, oncall: &Receiver) -> std::path::PathBuf {
    let text = format!(
        "[[receivers]]\nname = \"oncall\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\
         group_wait = \"0s\"\ngroup_interval = \"1s\"\nrepeat_interval = \"1h\"\n\
         retry_initial = \"200ms\"\ntimeout = \"2s\"\n\n\
         [[rules]]\nname = \"failing\"\nfilters = {{ agent = [\"leased-bot\"] }}\n\
         metric = \"failed_runs\"\nwindow = \"{WINDOW}\"\ninterval = \"{}s\"\nop = \">\"\n\
         threshold = 0\nreceivers = [\"oncall\"]\n",
        oncall.url(),
        INTERVAL.as_secs()
    );
    let path = dir.join("alerts.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn leads(vigil: &Vigil) -> bool {
    vigil.metric("vigil_alerting_leader").await == 1.0
}

async fn evaluations(vigil: &Vigil) -> f64 {
    vigil.metric(EVALUATIONS).await
}

/// Sends `n` failed runs of the rule's agent through `vigil` and waits until the store has them.
async fn fail_runs(vigil: &Vigil, seed: u64) {
    send_runs(vigil, "leased-bot", v1::Outcome::Failure, 3, seed).await;
    vigil.wait_run(&format!("{seed:016x}{:016x}", 3), 0).await;
}

/// The notifications on-call received, as (status, webhook-id, lease token), in arrival order.
fn heard(oncall: &Receiver) -> Vec<(String, String, Option<i64>)> {
    oncall
        .about("failing")
        .iter()
        .map(|r: &Value| {
            (
                r["body"]["status"].as_str().unwrap().to_string(),
                r["id"].as_str().unwrap().to_string(),
                r["lease_token"].as_str().map(|t| t.parse().unwrap()),
            )
        })
        .collect()
}

/// The distinct notifications, in the order first heard: a retry (the same `webhook-id`) is
/// the same notification.
fn transitions(oncall: &Receiver) -> Vec<String> {
    let mut seen = BTreeSet::new();
    heard(oncall)
        .into_iter()
        .filter(|(_, id, _)| seen.insert(id.clone()))
        .map(|(status, _, _)| status)
        .collect()
}

async fn wait_transitions(oncall: &Receiver, n: usize, what: &str) {
    until(Duration::from_secs(90), what, || async {
        transitions(oncall).len() >= n
    })
    .await;
}

/// The leader dies (kill -9) while an alert fires, then the new leader dies while its
/// resolution is due: every transition reaches on-call once, each from the lease's holder, and
/// the standby takes over within two evaluation intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerting_pages_once_when_the_leader_dies() {
    let scene = Scene::new(true);
    let oncall = &scene.oncall;
    let mut a = scene.node();
    until(Duration::from_secs(30), "the first node leads", || {
        leads(&a)
    })
    .await;
    let mut b = scene.node();
    b.token = a.token.clone();
    tokio::time::sleep(INTERVAL).await;
    assert!(!leads(&b).await, "two leaders");
    assert_eq!(evaluations(&b).await, 0.0, "the standby evaluates");

    // 1. The alert fires; the leader is killed as soon as its API shows it firing.
    fail_runs(&a, 1).await;
    until(Duration::from_secs(30), "the alert fires", || async {
        let (_, alerts) = a.get("/api/v1/alerts").await;
        alerts["alerts"][0]["state"] == "firing"
    })
    .await;
    a.kill9();
    let died = Instant::now();
    until(Duration::from_secs(30), "the standby evaluates", || async {
        evaluations(&b).await > 0.0
    })
    .await;
    let took = died.elapsed();
    println!("failover while firing: the standby evaluated {took:?} after the leader died");
    assert!(took < 2 * INTERVAL, "took over after {took:?}");
    wait_transitions(oncall, 1, "the firing notification").await;
    // The resolution, once the runs leave the window, from the new leader.
    wait_transitions(oncall, 2, "the resolution").await;

    // 2. The old leader returns as a standby; the alert fires again (from b), and b dies
    //    just before the resolution is due.
    a.restart();
    until(
        Duration::from_secs(30),
        "the restarted node answers",
        || async { a.get("/api/v1/alerts").await.0 == 200 },
    )
    .await;
    assert!(
        !leads(&a).await,
        "the restarted node leads beside the leader"
    );
    fail_runs(&b, 2).await;
    let sent = Instant::now();
    wait_transitions(oncall, 3, "the second firing").await;
    let window = Duration::from_secs(20);
    if let Some(wait) = (window - Duration::from_secs(2)).checked_sub(sent.elapsed()) {
        tokio::time::sleep(wait).await;
    }
    b.kill9();
    let died = Instant::now();
    until(
        Duration::from_secs(30),
        "the old leader leads again",
        || leads(&a),
    )
    .await;
    println!(
        "failover while a resolution is due: the standby led {:?} after the leader died",
        died.elapsed()
    );
    wait_transitions(oncall, 4, "the second resolution").await;

    // Every transition once, in order; retries of one (a holder that died between delivering
    // and recording it) carry the same webhook-id; every request carries the token of a lease
    // holder, never falling back to an older one.
    tokio::time::sleep(2 * INTERVAL).await;
    assert_eq!(
        transitions(oncall),
        ["firing", "resolved", "firing", "resolved"],
        "{:#?}",
        heard(oncall)
    );
    let tokens: Vec<i64> = heard(oncall)
        .iter()
        .map(|(_, _, token)| token.expect("a lease token on every notification"))
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] <= w[1]),
        "a token went back: {tokens:?}"
    );
    println!(
        "notifications heard: {} for {} transitions",
        heard(oncall).len(),
        transitions(oncall).len()
    );
}

/// `vigil bench failover --smoke`: one leader killed; the standby holds the lease and evaluates
/// within the session timeout and an interval.
#[test]
fn the_failover_benchmark_runs() {
    let zookeeper = ZooKeeper::start();
    let out = crate::support::cli(&[
        "bench",
        "failover",
        "--smoke",
        "--json",
        "--clickhouse-url",
        &ClickHouse::shared().url(),
        "--zookeeper",
        &zookeeper.address(),
    ]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["rounds"], 1, "{report}");
    let (lease, evaluating) = (
        report["lease_ms"][2].as_f64().unwrap(),
        report["evaluating_ms"][2].as_f64().unwrap(),
    );
    assert!(lease > 0.0 && evaluating >= lease, "{report}");
    assert!(evaluating < 2.0 * 4_000.0, "{report}");
}

/// A leader paused (SIGSTOP) past the end of its lease does not page when it wakes up: the
/// standby took over and notified; the old leader asks ZooKeeper before it sends, and stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_cannot_page_after_its_lease() {
    let scene = Scene::new(true);
    let oncall = &scene.oncall;
    let a = scene.node();
    until(Duration::from_secs(30), "the first node leads", || {
        leads(&a)
    })
    .await;
    let mut b = scene.node();
    b.token = a.token.clone();

    // The leader is paused; the runs that make the alert fire arrive while it sleeps.
    signal(&a, "STOP");
    let paused = Instant::now();
    fail_runs(&b, 3).await;
    until(Duration::from_secs(30), "the standby leads", || leads(&b)).await;
    wait_transitions(oncall, 1, "the firing notification from the new leader").await;
    let from_b = heard(oncall);
    println!(
        "the standby led and paged {:?} after the leader was paused",
        paused.elapsed()
    );

    // The old leader wakes up with its evaluation and delivery overdue.
    signal(&a, "CONT");
    until(
        Duration::from_secs(30),
        "the old leader stands by",
        || async { !leads(&a).await },
    )
    .await;
    tokio::time::sleep(2 * INTERVAL).await;
    assert_eq!(
        heard(oncall),
        from_b,
        "a paused leader paged after its lease; its log:\n{}",
        crate::support::tail(&a.log(), 30)
    );
    let (_, alerts) = b.get("/api/v1/alerts").await;
    assert_eq!(alerts["alerts"][0]["state"], "firing", "{alerts}");
    assert!(
        a.log().contains("no longer holds the alerting lease")
            || a.log().contains("the alerting lease is lost"),
        "the old leader did not notice it lost the lease:\n{}",
        crate::support::tail(&a.log(), 30)
    );
}

/// ZooKeeper down: the holder cannot know whether it still holds the lease, so it stops paging
/// at once (an alert that fires meanwhile waits); when ZooKeeper is back it holds the lease
/// again and sends what is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_zookeeper_no_node_pages_until_it_returns() {
    let scene = Scene::new(true);
    let (oncall, zookeeper) = (&scene.oncall, scene.zookeeper());
    let vigil = scene.node();
    until(Duration::from_secs(30), "the node leads", || leads(&vigil)).await;

    zookeeper.stop();
    let stepped_down = until(Duration::from_secs(30), "the node stands by", || async {
        !leads(&vigil).await
    })
    .await;
    println!("ZooKeeper down: the holder stood by after {stepped_down:?}");
    fail_runs(&vigil, 5).await;
    tokio::time::sleep(2 * INTERVAL).await;
    assert!(
        heard(oncall).is_empty(),
        "paged without the lease: {:?}",
        heard(oncall)
    );

    zookeeper.restart();
    until(Duration::from_secs(30), "the node leads again", || {
        leads(&vigil)
    })
    .await;
    wait_transitions(oncall, 1, "the page once ZooKeeper is back").await;
    assert_eq!(transitions(oncall), ["firing"]);
}

/// A node that kept its API rules and silences in its data directory (the embedded store) brings
/// them along at its first start on the shared table, where every node sees them; its files are
/// renamed `*.imported`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_own_alerting_files_are_imported_once_shared() {
    let scene = Scene::new(false);
    let rules_env = ("VIGIL_ALERTING__RULES_FILE", scene.rules.to_str().unwrap());
    let mut vigil = Vigil::spawn_with(vec![(rules_env.0.into(), rules_env.1.into())]);
    let (status, rule) = vigil
        .put(
            "/api/v1/alert-rules/kept",
            &json!({"metric": "failed_runs", "window": "1m", "op": ">", "threshold": 5}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let (status, silence) = vigil
        .post(
            "/api/v1/silences",
            &json!({"matchers": [{"name": "alertname", "value": "kept"}], "duration": "1h"}),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    vigil.stop();

    let shared = scene.settings();
    let shared_env: Vec<(&str, &str)> = shared
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    vigil.restart_with(&shared_env);
    let mut other = Vigil::spawn_with(shared.clone());
    other.token = vigil.token.clone();
    until(
        Duration::from_secs(30),
        "the imported rule on another node",
        || async { other.get("/api/v1/alert-rules/kept").await.0 == 200 },
    )
    .await;
    let (_, silences) = other.get("/api/v1/silences").await;
    assert_eq!(silences["silences"][0]["id"], silence["id"], "{silences}");
    let alerts = vigil.data_dir().join("alerts");
    for name in ["rules.json", "silences.json"] {
        assert!(alerts.join(format!("{name}.imported")).exists(), "{name}");
        assert!(!alerts.join(name).exists(), "{name}");
    }
}

/// ClickHouse down: a change to a rule, a silence or a kill switch that cannot be shared is
/// refused with a retryable 503 (and nothing changes), what was read before is still answered,
/// and the same change goes through once ClickHouse is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_wait_for_clickhouse_and_reads_go_on() {
    let ch = ClickHouse::start();
    let scene = Scene::new(false);
    let vigil = Vigil::spawn_with(scene.settings_on(&ch.url()));
    let rule = json!({"metric": "failed_runs", "window": "1m", "op": ">", "threshold": 5});
    let (status, _) = vigil.put("/api/v1/alert-rules/before", &rule).await;
    assert_eq!(status, 201);

    ch.stop();
    let (status, refused) = vigil.put("/api/v1/alert-rules/during", &rule).await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    let silence = json!({"matchers": [{"name": "alertname", "value": "before"}], "duration": "1h"});
    let (status, refused) = vigil.post("/api/v1/silences", &silence).await;
    assert_eq!(status, 503, "{refused}");
    let (status, rules_now) = vigil.get("/api/v1/alert-rules").await;
    assert_eq!(status, 200, "{rules_now}");
    let names: Vec<&str> = rules_now["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        names.contains(&"before") && !names.contains(&"during"),
        "{rules_now}"
    );
    assert!(vigil.get("/api/v1/silences").await.1["silences"][0].is_null());

    ch.restart();
    until(
        Duration::from_secs(60),
        "the change once ClickHouse is back",
        || async { vigil.put("/api/v1/alert-rules/during", &rule).await.0 == 201 },
    )
    .await;
}

/// Two nodes that evaluate without a lease both page: each says so, in its log and in
/// `/metrics`, once it sees the other write the alert state it writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_alerting_nodes_without_a_lease_are_told() {
    let scene = Scene::new(false);
    let a = scene.node();
    let b = scene.node();
    let told = |vigil: &Vigil| {
        vigil
            .log()
            .contains("another node evaluates the alert rules and pages too")
    };
    until(
        Duration::from_secs(60),
        "a node tells of the other",
        || async {
            a.metric("vigil_alerting_other_writer").await == 1.0
                || b.metric("vigil_alerting_other_writer").await == 1.0
        },
    )
    .await;
    assert!(told(&a) || told(&b), "{}\n{}", a.log(), b.log());
}

/// Rules and silences made through the API of any node hold on every node (the control table,
/// read again within a second), and the alert state the evaluating node (running everything)
/// writes is what a query-only node shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_silences_and_alerts_are_the_same_on_every_node() {
    let scene = Scene::new(false);
    let oncall = &scene.oncall;
    let alerting = scene.node();
    let mut query = {
        let mut env = scene.settings();
        env.push(("VIGIL_SERVER__COMPONENTS".into(), r#"["query"]"#.into()));
        Vigil::spawn_with(env)
    };
    query.token = alerting.token.clone();

    // A rule made on the query node is evaluated by the alerting node.
    let (status, rule) = query
        .put(
            "/api/v1/alert-rules/api-failing",
            &json!({"metric": "failed_runs", "window": WINDOW, "interval": "1s", "op": ">",
                    "threshold": 0, "filters": {"agent": ["api-bot"]}, "receivers": ["oncall"]}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    until(
        Duration::from_secs(20),
        "the query node's rule evaluated",
        || async {
            let (_, rule) = query.get("/api/v1/alert-rules/api-failing").await;
            rule["health"] == "ok"
        },
    )
    .await;

    // A silence made on the query node mutes the alerting node's notification.
    let (status, silence) = query
        .post(
            "/api/v1/silences",
            &json!({"matchers": [{"name": "alertname", "value": "api-failing"}], "duration": "1h"}),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    send_runs(&alerting, "api-bot", v1::Outcome::Failure, 2, 4).await;
    let firing = until(
        Duration::from_secs(30),
        "the alert fires, seen from the query node",
        || async {
            let (_, alerts) = query.get("/api/v1/alerts").await;
            alerts["alerts"][0]["state"] == "firing"
        },
    )
    .await;
    let (_, alerts) = query.get("/api/v1/alerts").await;
    assert_eq!(
        alerts["alerts"][0]["silenced_by"][0], silence["id"],
        "{alerts}"
    );
    println!("firing seen on the query node after {firing:?}");

    // Expired on the alerting node: the page goes out, and the query node shows it expired.
    let id = silence["id"].as_str().unwrap();
    let (status, _) = alerting
        .delete_as(&format!("/api/v1/silences/{id}"), &alerting.token)
        .await;
    assert_eq!(status, 200);
    until(
        Duration::from_secs(30),
        "the page after the silence",
        || async { !oncall.about("api-failing").is_empty() },
    )
    .await;
    until(
        Duration::from_secs(5),
        "the expiry seen on the query node",
        || async { query.get(&format!("/api/v1/silences/{id}")).await.1["state"] == "expired" },
    )
    .await;

    // Deleted on the alerting node, gone from the query node.
    let (status, _) = alerting
        .delete_as("/api/v1/alert-rules/api-failing", &alerting.token)
        .await;
    assert_eq!(status, 200);
    until(
        Duration::from_secs(5),
        "the deletion seen on the query node",
        || async { query.get("/api/v1/alert-rules/api-failing").await.0 == 404 },
    )
    .await;
    // One node evaluates: it sees no other writer.
    assert_eq!(alerting.metric("vigil_alerting_other_writer").await, 0.0);
}

fn signal(vigil: &Vigil, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(vigil.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
