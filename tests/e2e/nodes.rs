//! Many Vigil processes over one ClickHouse, each running some of the components
//! (`vigil serve --components`): what each one serves, and that they work as one.

use std::time::{Duration, Instant};

use serde_json::json;
use vigil_proto::v1;

use crate::support::{
    Vigil, cli_with,
    clickhouse::{ClickHouse, unique_database},
    clickhouse_env,
    conformance::{SHARED_USER_HASH_SECRET, wait_drained},
    load::{Load, acked_spans},
    until,
    zookeeper::ZooKeeper,
};

/// Rule evaluations, summed over the rules.
pub const EVALUATIONS: &str = "vigil_alert_rule_evaluations_total";
/// How long a test waits for a change to reach another node before it fails.
const LIMIT: Duration = Duration::from_secs(30);

/// An ingest node takes traces and answers no REST call; a query node answers them over the
/// same store and takes no trace; neither evaluates alert rules, which the alerting node does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_split_the_work_between_processes() {
    let database = unique_database();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("alerts.toml");
    std::fs::write(
        &rules,
        "[[rules]]\nname = \"busy\"\nmetric = \"runs\"\nwindow = \"5m\"\ninterval = \"1s\"\n\
         op = \">\"\nthreshold = 1000\n",
    )
    .unwrap();
    let node = |components: &str| {
        let mut env = clickhouse_env(&ClickHouse::shared().url(), &database);
        for (key, value) in [
            ("VIGIL_SERVER__COMPONENTS", components),
            ("VIGIL_SECURITY__USER_HASH_SECRET", SHARED_USER_HASH_SECRET),
            ("VIGIL_ALERTING__RULES_FILE", rules.to_str().unwrap()),
        ] {
            env.push((key.into(), value.into()));
        }
        Vigil::spawn_with(env)
    };
    // The keys are shared: the first node's bootstrap key works on all three.
    let ingest = node(r#"["ingest"]"#);
    let mut query = node(r#"["query"]"#);
    let mut alerting = node(r#"["alerting"]"#);
    query.token = ingest.token.clone();
    alerting.token = ingest.token.clone();

    // The ingest node takes a run over gRPC; the query node reads it from the store.
    let trace_id = format!("{:032x}", 0x5eed_u128);
    let start = vigil_schemas::time::now_ns() - 60_000_000_000;
    let request = v1::ExportRequest {
        runs: vec![v1::Run {
            trace_id: trace_id.clone(),
            session_id: "s-1".into(),
            agent_name: "split".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_000_000_000,
            outcome: v1::Outcome::Success as i32,
            ..Default::default()
        }],
        ..Default::default()
    };
    let response = ingest.export_native(request).await;
    assert!(response.rejections.is_empty(), "{:?}", response.rejections);
    let run = query.wait_run(&trace_id, 0).await;
    assert_eq!(run["run"]["agent_name"], "split", "{run}");

    // What a node does not run, it does not serve, and says so.
    for (vigil, path) in [
        (&ingest, "/api/v1/runs"),
        (&ingest, "/"),
        (&alerting, "/api/v1/runs"),
        (&query, "/v1/traces"),
        (&alerting, "/v1/traces"),
    ] {
        let (status, body) = if path == "/v1/traces" {
            vigil.post(path, &json!({"resourceSpans": []})).await
        } else {
            vigil.get(path).await
        };
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_served", "{path}: {body}");
    }
    for vigil in [&query, &alerting] {
        let grpc = tokio::net::TcpStream::connect(("127.0.0.1", vigil.grpc_port)).await;
        assert!(grpc.is_err(), "the gRPC port is bound without ingest");
    }
    for vigil in [&ingest, &query, &alerting] {
        for path in ["/healthz", "/readyz"] {
            let (status, body) = vigil.get(path).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
    }

    // The rule is evaluated where alerting runs, and nowhere else.
    let deadline = Instant::now() + Duration::from_secs(30);
    while alerting.metric(EVALUATIONS).await < 2.0 {
        assert!(Instant::now() < deadline, "{}", alerting.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ingest.metric(EVALUATIONS).await, 0.0);
    assert_eq!(query.metric(EVALUATIONS).await, 0.0);
}

/// Keys are shared through ClickHouse: the first node makes the bootstrap key and the second
/// makes none; a key created on either node works on both, and a key revoked on one is refused
/// by the other within 5 s, over REST and gRPC alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_or_revoked_on_one_node_holds_on_every_node() {
    let database = unique_database();
    let node = || {
        let mut env = clickhouse_env(&ClickHouse::shared().url(), &database);
        env.push((
            "VIGIL_SECURITY__USER_HASH_SECRET".into(),
            SHARED_USER_HASH_SECRET.into(),
        ));
        Vigil::spawn_with(env)
    };
    let first = node();
    let mut second = node();
    assert!(!first.token.is_empty());
    assert!(
        !second.data_dir.join("bootstrap.key").exists(),
        "a second bootstrap key"
    );
    second.token = first.token.clone();
    let (status, who) = second.get("/api/v1/whoami").await;
    assert_eq!(status, 200, "{who}");

    // Created on the first node (REST), used on the second.
    let (status, created) = first
        .post("/api/v1/keys", &json!({"roles": ["read", "ingest"]}))
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let took = until(LIMIT, "the key accepted", || async {
        whoami(&second, &token).await == 200
    })
    .await;
    assert!(
        took < Duration::from_secs(5),
        "created key seen after {took:?}"
    );
    let nothing = v1::ExportRequest::default;
    second.export_native_as(&token, nothing()).await.unwrap();

    // Revoked on the second node, refused by the first within 5 s.
    let (status, revoked) = second
        .delete_as(&format!("/api/v1/keys/{id}"), &second.token)
        .await;
    assert_eq!(status, 200, "{revoked}");
    let took = until(LIMIT, "the key refused", || async {
        whoami(&first, &token).await == 401
    })
    .await;
    assert!(
        took < Duration::from_secs(5),
        "revoked key refused after {took:?}"
    );
    let refused = first.export_native_as(&token, nothing()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // The CLI, given the store, creates keys every node knows.
    let token = first.create_key("read").token;
    let took = until(LIMIT, "the key accepted", || async {
        whoami(&second, &token).await == 200
    })
    .await;
    assert!(took < Duration::from_secs(5), "CLI key seen after {took:?}");
}

/// A kill switch set on one node is what every node tells agents within seconds (agents poll
/// whichever node the balancer picks); the last one set wins, whichever node set it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_set_on_one_node_answers_on_every_node() {
    let database = unique_database();
    let node = || Vigil::spawn_with(clickhouse_env(&ClickHouse::shared().url(), &database));
    let first = node();
    let mut second = node();
    second.token = first.token.clone();
    assert_eq!(answer(&second).await, "enabled");

    let (status, set) = first
        .put(
            "/api/v1/kill-switch/support-bot",
            &json!({"state": "disabled", "reason": "refund loop"}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    let took = until(LIMIT, "disabled on the other node", || async {
        answer(&second).await == "disabled"
    })
    .await;
    assert!(took < Duration::from_secs(5), "seen after {took:?}");
    let (_, told) = second.get("/api/v1/kill-switch/support-bot").await;
    assert_eq!(told["reason"], "refund loop", "{told}");

    // Enabled again on the second node: both nodes answer enabled.
    let (status, _) = second
        .put(
            "/api/v1/kill-switch/support-bot",
            &json!({"state": "enabled", "reason": "fixed"}),
        )
        .await;
    assert_eq!(status, 200);
    let took = until(LIMIT, "enabled on the first node", || async {
        answer(&first).await == "enabled"
    })
    .await;
    assert!(took < Duration::from_secs(5), "seen after {took:?}");
    let (_, listed) = first.get("/api/v1/kill-switch").await;
    assert_eq!(listed["switches"].as_array().unwrap().len(), 1, "{listed}");
}

/// Each node ships its audit chain to ClickHouse; `vigil audit verify` checks every chain
/// there, and this node's log against its copy. A node killed with -9 loses no entry: what it
/// had not shipped, `vigil wal drain` ships. An entry changed in ClickHouse is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nodes_audit_chain_is_checked_together() {
    let database = unique_database();
    let ch = ClickHouse::shared();
    let env = clickhouse_env(&ch.url(), &database);
    let first = Vigil::spawn_with(env.clone());
    let mut second = Vigil::spawn_with(env.clone());
    second.token = first.token.clone();
    for vigil in [&first, &first, &second] {
        let (status, key) = vigil
            .post("/api/v1/keys", &json!({"roles": ["read"]}))
            .await;
        assert_eq!(status, 201, "{key}");
    }
    // The second node dies at once: its entry may not have been shipped yet.
    second.kill9();
    let local_entries = |vigil: &Vigil| {
        std::fs::read_to_string(vigil.data_dir.join("audit/audit.log"))
            .unwrap()
            .lines()
            .count()
    };
    let dir = |vigil: &Vigil| vigil.data_dir.to_str().unwrap().to_string();
    let drained = cli_with(
        &["wal", "--data-dir", &dir(&second), "drain", "--json"],
        &env,
    );
    let drained: serde_json::Value = serde_json::from_str(&drained).unwrap();
    assert!(drained["audit_chain"].is_string(), "{drained}");

    // Both chains whole in ClickHouse (the first node's after its next shipment), all valid.
    let verify = |vigil: &Vigil| cli_with(&["audit", "--data-dir", &dir(vigil), "verify"], &env);
    let chain_of =
        |vigil: &Vigil| std::fs::read_to_string(vigil.data_dir.join("audit/chain")).unwrap();
    until(LIMIT, "both chains shipped", || async {
        let out = verify(&first);
        [
            (&first, local_entries(&first)),
            (&second, local_entries(&second)),
        ]
        .iter()
        .all(|(vigil, n)| out.contains(&format!("{}: valid, {n} entries", chain_of(vigil))))
    })
    .await;
    assert_eq!(local_entries(&second), 1, "the second node audited one key");
    let out = verify(&second);
    assert!(out.contains("chains shipped to ClickHouse"), "{out}");
    assert!(
        out.contains("its log holds the 1 entries shipped, as shipped"),
        "{out}"
    );
    // The REST check says the same.
    let (status, checked) = first.get("/api/v1/audit/verify").await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["valid"], true, "{checked}");
    assert_eq!(checked["chains"].as_array().unwrap().len(), 2, "{checked}");
    assert_eq!(
        checked["own_chain"]["chain"],
        chain_of(&first).as_str(),
        "{checked}"
    );
    assert!(checked["own_chain"]["differs"].is_null(), "{checked}");

    // An entry of the first node's chain changed in ClickHouse (a newer version of it).
    let key = format!("{}/{:020}", chain_of(&first), 2);
    let body = ch
        .query(&format!(
            "SELECT body FROM {database}.vigil_control WHERE kind = 'audit_entry' AND key = '{key}' \
             FORMAT TabSeparatedRaw"
        ))
        .await;
    let mut entry: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    entry["parameters"] = json!({"roles": ["admin"]});
    ch.query(&format!(
        "INSERT INTO {database}.vigil_control VALUES ('audit_entry', '{key}', {}, 'intruder', 0, '{}')",
        i64::MAX,
        entry.to_string().replace('\\', "\\\\").replace('\'', "\\'")
    ))
    .await;
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["audit", "--data-dir", &dir(&second), "verify"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains(&format!(
            "the chain {} in ClickHouse FAILED",
            chain_of(&first)
        )) && message.contains("entry seq 2"),
        "{message}"
    );
    // The first node's own log no longer matches the copy other machines read.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["audit", "--data-dir", &dir(&first), "verify"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("this node's audit log differs"),
        "{message}"
    );
    let (_, checked) = first.get("/api/v1/audit/verify").await;
    assert_eq!(checked["valid"], false, "{checked}");
    assert_eq!(checked["own_chain"]["differs"]["seq"], 2, "{checked}");
    let broken: Vec<&serde_json::Value> = checked["chains"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["valid"] == false)
        .collect();
    assert_eq!(broken.len(), 1, "{checked}");
    assert_eq!(broken[0]["tampering"]["seq"], 2, "{checked}");
}

/// What `support-bot`'s kill switch tells it on `vigil`.
async fn answer(vigil: &Vigil) -> serde_json::Value {
    vigil.get("/api/v1/kill-switch/support-bot").await.1["state"].clone()
}

/// The status of `GET /api/v1/whoami` with `token`.
async fn whoami(vigil: &Vigil, token: &str) -> u16 {
    vigil.get_as("/api/v1/whoami", token).await.0
}

/// Three ingest nodes behind a load balancer (the clients spread over them); one is killed
/// with -9 under load and its clients go on through the others. The dead node's WAL, drained
/// by another process (`vigil wal drain`), brings what it acknowledged but had not stored: then
/// every acknowledged run and span is in the store exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_nodes_behind_a_balancer_lose_nothing_when_one_dies() {
    let database = unique_database();
    let ch = ClickHouse::shared();
    let env = {
        let mut env = clickhouse_env(&ch.url(), &database);
        env.push(("VIGIL_SERVER__COMPONENTS".into(), r#"["ingest"]"#.into()));
        // A slow writer: the node dies with acknowledged batches still only in its WAL.
        env.push(("VIGIL_BATCHER__MAX_DELAY".into(), "3s".into()));
        env
    };
    let first = Vigil::spawn_with(env.clone());
    let mut nodes = vec![first];
    for _ in 0..2 {
        let mut node = Vigil::spawn_with(env.clone());
        node.token = nodes[0].token.clone();
        nodes.push(node);
    }
    let load = Load::start_over(&nodes.iter().collect::<Vec<_>>(), 6);
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.acked_runs() < 1500 {
        assert!(Instant::now() < deadline, "ingest is slow");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nodes[2].kill9();
    let at_kill = load.acked_runs();
    while load.acked_runs() < at_kill + 1500 {
        assert!(
            Instant::now() < deadline,
            "ingest did not go on after the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked = load.stop().await;
    for node in &nodes[..2] {
        wait_drained(node).await;
    }

    // The dead node will not come back: another process drains its log.
    let dead = nodes.pop().unwrap();
    let drained = cli_with(
        &[
            "wal",
            "--data-dir",
            dead.data_dir.to_str().unwrap(),
            "drain",
            "--json",
        ],
        dead.env(),
    );
    let drained: serde_json::Value = serde_json::from_str(&drained).unwrap();
    assert!(drained["bytes"].as_u64().unwrap() > 0, "{drained}");
    let acked_keys = (acked.len() as u64, acked_spans(&acked));
    assert_eq!(ch.stored_keys(&database).await, acked_keys);
    ch.assert_one_row_per_key(&database).await;

    // Draining a directory a server runs on is refused.
    let live = &nodes[0];
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "wal",
            "--data-dir",
            live.data_dir.to_str().unwrap(),
            "drain",
        ])
        .envs(live.env().iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("serve.lock"), "{message}");
}

/// Datasets and experiments on many nodes (`[evaluation] zookeeper`): changes made at once
/// from two nodes to one dataset all land, as consecutive versions each holding its change;
/// a name taken on one node is taken on the other; an experiment created on one node links the
/// runs an ingest-only node takes; a node killed with -9 reads everything back; what a node
/// kept in its own logs before is imported; without ZooKeeper changes wait and reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_and_experiments_are_the_same_on_every_node() {
    let database = unique_database();
    let zookeeper = ZooKeeper::start();
    let sharing = ("VIGIL_EVALUATION__ZOOKEEPER", zookeeper.address());
    let node = |components: &str| {
        let mut env = clickhouse_env(&ClickHouse::shared().url(), &database);
        env.push(("VIGIL_SERVER__COMPONENTS".into(), components.into()));
        env.push((sharing.0.into(), sharing.1.clone()));
        Vigil::spawn_with(env)
    };
    // The second node kept datasets of its own before the nodes shared them: they are
    // imported, but for one whose name a sharing node took meanwhile.
    let mut second = Vigil::spawn_with(clickhouse_env(&ClickHouse::shared().url(), &database));
    for name in ["own", "clash"] {
        let (status, _) = second
            .post(
                "/api/v1/datasets",
                &json!({"name": name, "description": "second's"}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let one_item = json!({"items": [{"id": "x", "input": "kept before sharing"}]});
    let (status, _) = second.post("/api/v1/datasets/own/items", &one_item).await;
    assert_eq!(status, 200);
    second.stop();
    let mut first = node(r#"["query", "alerting"]"#);
    let mut ingest = node(r#"["ingest"]"#);
    first.token = second.token.clone();
    ingest.token = second.token.clone();
    let (status, _) = first
        .post(
            "/api/v1/datasets",
            &json!({"name": "clash", "description": "first's"}),
        )
        .await;
    assert_eq!(status, 201);
    second.restart_with(&[
        (sharing.0, &sharing.1),
        ("VIGIL_SERVER__COMPONENTS", r#"["query"]"#),
    ]);
    until(
        LIMIT,
        "the second node's own dataset, on the first",
        || async { first.get("/api/v1/datasets/own").await.1["dataset"]["latest_version"] == 1 },
    )
    .await;
    assert!(second.data_dir().join("datasets.jsonl.imported").exists());
    let (_, clash) = second.get("/api/v1/datasets/clash").await;
    assert_eq!(clash["dataset"]["description"], "first's", "{clash}");

    let (status, created) = first
        .post("/api/v1/datasets", &json!({"name": "golden"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, taken) = second
        .post("/api/v1/datasets", &json!({"name": "golden"}))
        .await;
    assert_eq!(status, 409, "the name is taken on every node: {taken}");

    // Ten changes from each node at once, each adding its own item.
    const PER_NODE: usize = 10;
    let http = reqwest::Client::new();
    let mut changes = tokio::task::JoinSet::new();
    for (n, vigil) in [&first, &second].into_iter().enumerate() {
        for i in 0..PER_NODE {
            let request = http
                .post(format!("{}/api/v1/datasets/golden/items", vigil.http()))
                .bearer_auth(&vigil.token)
                .json(&json!({"items": [{"id": format!("n{n}-{i}"), "input": i}]}));
            changes.spawn(async move {
                let response = request.send().await.expect("the change is answered");
                (response.status().as_u16(), response.text().await.unwrap())
            });
        }
    }
    while let Some(answer) = changes.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let expected: Vec<(u64, u64, u64)> = (1..=2 * PER_NODE as u64).map(|v| (v, v, 1)).collect();
    for vigil in [&first, &second] {
        until(LIMIT, "every version on both nodes", || async {
            vigil.get("/api/v1/datasets/golden").await.1["dataset"]["latest_version"]
                == 2 * PER_NODE
        })
        .await;
        let (_, detail) = vigil.get("/api/v1/datasets/golden").await;
        let versions: Vec<(u64, u64, u64)> = detail["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let figure = |name: &str| v[name].as_u64().unwrap();
                (figure("version"), figure("items"), figure("added"))
            })
            .collect();
        assert_eq!(versions, expected, "(version, items, added): {detail}");
    }
    let (_, items) = second.get("/api/v1/datasets/golden/items").await;
    let mut ids: Vec<&str> = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut sent: Vec<String> = (0..2)
        .flat_map(|n| (0..PER_NODE).map(move |i| format!("n{n}-{i}")))
        .collect();
    sent.sort_unstable();
    assert_eq!(ids, sent);
    let written = ClickHouse::shared()
        .number(&format!(
            "SELECT count() FROM {database}.vigil_control WHERE kind = 'log_entry'"
        ))
        .await;
    // Kept: a dataset made on the first node, the second node's import, the creation and the
    // changes; an entry of a change that lost a race (and was made again) is written, not kept.
    println!("{written} log entries written, {} kept", 2 * PER_NODE + 3);

    // An experiment made on the second node; a run sent to the ingest node is linked to it.
    let (status, experiment) = second
        .post(
            "/api/v1/experiments",
            &json!({"name": "across nodes", "dataset": "golden"}),
        )
        .await;
    assert_eq!(status, 201, "{experiment}");
    let id = experiment["id"].as_str().unwrap().to_string();
    let endpoint = format!("{}/v1/traces", ingest.http());
    let (exp, item) = (
        format!("vigil.experiment.id={id}"),
        "vigil.dataset.item.id=n0-3".to_string(),
    );
    let args = [
        "--token",
        &ingest.token,
        "--root-attribute",
        &exp,
        "--root-attribute",
        &item,
    ];
    let sent = crate::ingest::send_with_python(&ingest, "http", &endpoint, &args, 1);
    let trace_id = sent["runs"][0]["trace_id"].as_str().unwrap().to_string();
    until(LIMIT, "the run linked, seen on the first node", || {
        linked(&first, &id, &trace_id)
    })
    .await;

    // Killed with -9 and started again, a node reads it all back from the shared log.
    first.kill9();
    first.restart();
    until(LIMIT, "the first node read the log again", || {
        linked(&first, &id, &trace_id)
    })
    .await;
    let (_, listed) = first.get("/api/v1/experiments").await;
    assert_eq!(listed["experiments"][0]["id"], id.as_str(), "{listed}");
    let (_, detail) = first.get("/api/v1/datasets/golden").await;
    assert_eq!(
        detail["dataset"]["latest_version"],
        2 * PER_NODE,
        "{detail}"
    );

    // Without ZooKeeper no change can be ordered: 503, nothing changed, reads go on; then the
    // change goes through once it is back.
    zookeeper.stop();
    let change = json!({"items": [{"id": "late", "input": "while ZooKeeper was down"}]});
    let (status, refused) = first.post("/api/v1/datasets/golden/items", &change).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (503, &json!("unavailable")),
        "{refused}"
    );
    let (status, _) = second.get("/api/v1/datasets/golden").await;
    assert_eq!(status, 200);
    zookeeper.restart();
    let (status, changed) = first.post("/api/v1/datasets/golden/items", &change).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["version"], 2 * PER_NODE + 1, "{changed}");
}

/// Whether the experiment's item `n0-3` has the run `trace_id`, as `vigil` answers.
async fn linked(vigil: &Vigil, id: &str, trace_id: &str) -> bool {
    let (_, answer) = vigil.get(&format!("/api/v1/experiments/{id}/items")).await;
    answer["items"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["item_id"] == "n0-3" && i["trace_id"] == trace_id)
}
