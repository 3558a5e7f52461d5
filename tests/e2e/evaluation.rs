//! Evaluation through the real binary. Datasets: the CLI and the API, versions that never change,
//! items taken from production runs (with their classification), role checks, the audit log, and
//! a kill -9. Experiments, on both stores: figures computed here from the runs sent.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vigil_proto::v1;

use crate::support::{Store, Vigil, calls, cli};

/// `vigil datasets <args>` against `vigil` with its admin key.
fn datasets(vigil: &Vigil, args: &[&str]) -> String {
    let url = vigil.http();
    let mut all = vec!["datasets", "--url", &url, "--token", &vigil.token];
    all.extend_from_slice(args);
    cli(&all)
}

/// The id the API gives an item sent without one, computed here from the documented rule:
/// 32 hex characters of SHA-256 over the input's JSON, a zero byte, the expected output's JSON.
fn content_id(input: &Value, expected_output: &Value) -> String {
    let mut hash = Sha256::new();
    hash.update(input.to_string().as_bytes());
    hash.update([0]);
    hash.update(expected_output.to_string().as_bytes());
    hex::encode(&hash.finalize()[..16])
}

/// The JSON Lines `vigil datasets export` printed.
fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Asserts that `request` is refused with 400 naming `field`.
async fn assert_refused(request: reqwest::RequestBuilder, token: &str, field: &str) {
    let (status, body) = status_of(request, token).await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!(field)),
        "{body}"
    );
}

async fn status_of(request: reqwest::RequestBuilder, token: &str) -> (u16, Value) {
    let response = request.bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn datasets_are_versioned_taken_from_runs_audited_and_kept() {
    let mut vigil = Vigil::start_on(Store::Embedded);
    let dir = tempfile::tempdir().unwrap();

    // Create and import with the CLI.
    let created = datasets(
        &vigil,
        &["create", "support-golden", "--description", "release gate"],
    );
    assert!(
        created.contains("created dataset support-golden"),
        "{created}"
    );
    let file = dir.path().join("items.jsonl");
    let written = [
        json!({"id": "refund-1", "input": {"q": "refund after 40 days?"}, "expected_output": "no", "metadata": {"category": "billing"}}),
        json!({"input": "reset my password", "expected_output": {"steps": 3}}),
        json!({"input": ["a", "b"]}),
    ];
    let text: String = written.iter().map(|item| format!("{item}\n")).collect();
    std::fs::write(&file, &text).unwrap();
    let imported = datasets(
        &vigil,
        &["import", "support-golden", file.to_str().unwrap()],
    );
    assert!(
        imported.contains("version 1 (3 items: 3 added, 0 updated, 0 deleted)"),
        "{imported}"
    );
    // The same file again changes nothing: the items without an id get the same id.
    let again = datasets(
        &vigil,
        &["import", "support-golden", file.to_str().unwrap()],
    );
    assert!(again.contains("unchanged (version 1, 3 items)"), "{again}");

    let mut expected_v1: Vec<Value> = written
        .iter()
        .map(|item| {
            let expected_output = item.get("expected_output").cloned().unwrap_or(Value::Null);
            let id = item["id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| content_id(&item["input"], &expected_output));
            json!({
                "id": id,
                "input": item["input"],
                "expected_output": expected_output,
                "metadata": item.get("metadata").cloned().unwrap_or(json!({})),
            })
        })
        .collect();
    expected_v1.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let exported = lines(&datasets(&vigil, &["export", "support-golden"]));
    assert_eq!(exported, expected_v1);

    // A production run, classified pii, taken as an item.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    vigil
        .export_native(v1::ExportRequest {
            runs: vec![v1::Run {
                trace_id: trace_id.into(),
                agent_name: "support-bot".into(),
                agent_version: "1.4.0".into(),
                start_time_unix_nano: now - 2_000_000_000,
                end_time_unix_nano: now - 1_000_000_000,
                outcome: v1::Outcome::Failure as i32,
                input: r#"{"question": "where is order 17?"}"#.into(),
                output: "I cannot find it".into(),
                classification: vec!["pii".into()],
                ..Default::default()
            }],
            ..Default::default()
        })
        .await;
    vigil.wait_run(trace_id, 0).await;
    let added = datasets(&vigil, &["add-runs", "support-golden", trace_id]);
    assert!(added.contains("version 2 (4 items: 1 added"), "{added}");
    let from_run = json!({
        "input": {"question": "where is order 17?"},
        "expected_output": "I cannot find it",
        "metadata": {"agent": "support-bot", "agent_version": "1.4.0", "outcome": "failure"},
        "source_trace_id": trace_id,
        "classification": ["pii"],
    });
    let from_run_id = content_id(&from_run["input"], &from_run["expected_output"]);
    let mut expected_from_run = from_run.clone();
    expected_from_run["id"] = json!(from_run_id);
    let exported = lines(&datasets(&vigil, &["export", "support-golden"]));
    assert_eq!(exported.len(), 4);
    assert!(exported.contains(&expected_from_run), "{exported:?}");

    // A reader sees the dataset but not the classified content; an audit key sees it.
    let reader = vigil.create_key("read");
    let auditor = vigil.create_key("read,audit");
    let items_path = "/api/v1/datasets/support-golden/items";
    let (status, page) = vigil.get_as(items_path, &reader.token).await;
    assert_eq!(status, 200, "{page}");
    let item_of = |page: &Value| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == json!(from_run_id))
            .cloned()
            .unwrap()
    };
    assert_eq!(item_of(&page)["input"], "[redacted]");
    assert_eq!(item_of(&page)["expected_output"], "[redacted]");
    let (_, page) = vigil.get_as(items_path, &auditor.token).await;
    assert_eq!(item_of(&page), expected_from_run);

    // Delete an item: a new version; the old versions keep their items.
    let deleted = datasets(&vigil, &["delete-item", "support-golden", "refund-1"]);
    assert!(
        deleted.contains("version 3 (3 items: 0 added, 0 updated, 1 deleted)"),
        "{deleted}"
    );
    let v1 = lines(&datasets(
        &vigil,
        &["export", "support-golden", "--version", "1"],
    ));
    assert_eq!(v1, expected_v1);

    // Paging: two items a page, the version pinned.
    let (status, first) = vigil.get(&format!("{items_path}?version=2&limit=2")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["total"].clone(), first["next_offset"].clone()),
        (json!(4), json!(2))
    );
    let (_, second) = vigil
        .get(&format!("{items_path}?version=2&limit=2&offset=2"))
        .await;
    assert!(second["next_offset"].is_null(), "{second}");
    assert_eq!(second["items"].as_array().unwrap().len(), 2);

    // Refusals name the field; roles are checked.
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", vigil.http());
    assert_refused(
        http.post(url("/api/v1/datasets"))
            .json(&json!({"name": "../x"})),
        &vigil.token,
        "name",
    )
    .await;
    assert_refused(
        http.post(url(items_path))
            .json(&json!({"items": [{"input": 1}, {"metadata": {}}]})),
        &vigil.token,
        "items[1].input",
    )
    .await;
    assert_refused(
        http.post(url(items_path))
            .json(&json!({"items": [{"source_trace_id": "0af7651916cd43dd8448eb211c80319c"}]})),
        &vigil.token,
        "items[0].source_trace_id",
    )
    .await;
    let (status, _) = status_of(
        http.delete(url("/api/v1/datasets/support-golden/items/nope")),
        &vigil.token,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = status_of(http.get(url("/api/v1/datasets/missing")), &vigil.token).await;
    assert_eq!(status, 404);
    let (status, _) = status_of(
        http.post(url("/api/v1/datasets"))
            .json(&json!({"name": "support-golden"})),
        &vigil.token,
    )
    .await;
    assert_eq!(status, 409);
    let ingest = vigil.create_key("ingest");
    for (request, token, expected) in [
        (
            http.get(url("/api/v1/datasets")),
            reader.token.as_str(),
            200,
        ),
        (
            http.get(url("/api/v1/datasets")),
            ingest.token.as_str(),
            403,
        ),
        (http.get(url("/api/v1/datasets")), "", 401),
        (
            http.post(url("/api/v1/datasets"))
                .json(&json!({"name": "mine"})),
            reader.token.as_str(),
            403,
        ),
        (
            http.post(url(items_path))
                .json(&json!({"items": [{"input": 1}]})),
            auditor.token.as_str(),
            403,
        ),
        (
            http.delete(url("/api/v1/datasets/support-golden/items/x")),
            reader.token.as_str(),
            403,
        ),
    ] {
        let (status, body) = status_of(request, token).await;
        assert_eq!(status, expected, "{body}");
    }

    // Every change is on the audit log.
    let (status, log) = vigil.get("/api/v1/audit/log?limit=1000").await;
    assert_eq!(status, 200, "{log}");
    let dataset_entries: Vec<(String, Value)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("dataset."))
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["parameters"]["version"].clone(),
            )
        })
        .collect();
    assert_eq!(
        dataset_entries,
        vec![
            ("dataset.create".to_string(), Value::Null),
            ("dataset.change".to_string(), json!(1)),
            ("dataset.change".to_string(), json!(2)),
            ("dataset.change".to_string(), json!(3)),
        ]
    );

    // Kept across a kill -9 right after a change was acknowledged, every version.
    let before = datasets(&vigil, &["show", "support-golden"]);
    let newest = datasets(&vigil, &["export", "support-golden"]);
    vigil.kill9();
    vigil.restart();
    assert_eq!(datasets(&vigil, &["show", "support-golden"]), before);
    assert_eq!(datasets(&vigil, &["export", "support-golden"]), newest);
    assert_eq!(
        lines(&datasets(
            &vigil,
            &["export", "support-golden", "--version", "1"]
        )),
        expected_v1
    );
    let listed = datasets(&vigil, &["list"]);
    assert!(
        listed
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("support-golden  3        3"),
        "{listed}"
    );
}

/// One item's run as the test sends it, and what the test expects of it.
#[derive(Clone, Copy)]
struct ItemRun {
    item: &'static str,
    output: &'static str,
    success: bool,
    duration_ms: i64,
    /// Each model call's cost, nano-dollars.
    costs: &'static [i64],
    tools: usize,
    judge: Option<f64>,
}

const ITEM_RUNS: [ItemRun; 5] = [
    ItemRun {
        item: "a",
        output: "refunds within 30 days",
        success: true,
        duration_ms: 1200,
        costs: &[120_000, 80_000],
        tools: 1,
        judge: Some(1.0),
    },
    ItemRun {
        item: "b",
        output: "I do not know",
        success: false,
        duration_ms: 5400,
        costs: &[300_000],
        tools: 3,
        judge: Some(0.0),
    },
    ItemRun {
        item: "c",
        output: "42",
        success: true,
        duration_ms: 800,
        costs: &[50_000],
        tools: 0,
        judge: None,
    },
    ItemRun {
        item: "d",
        output: "within 30 days, with a receipt",
        success: true,
        duration_ms: 2500,
        costs: &[],
        tools: 2,
        judge: Some(0.5),
    },
    ItemRun {
        item: "e",
        output: "",
        success: true,
        duration_ms: 100,
        costs: &[10_000],
        tools: 0,
        judge: None,
    },
];

/// Each item's run as an export (a trace, a model call per cost, tool calls, a judge's score;
/// item e is not run), trace ids counting from `first_trace`; and the links of the runs.
fn item_runs(runs: &[ItemRun], first_trace: usize) -> (v1::ExportRequest, Vec<Value>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let mut request = v1::ExportRequest::default();
    let mut links = Vec::new();
    for (n, r) in runs.iter().enumerate() {
        if r.item == "e" {
            continue; // not run
        }
        let trace_id = format!("{:032x}", first_trace + n);
        let start = now - 60_000_000_000 + n as i64 * 1_000_000_000;
        request.runs.push(v1::Run {
            trace_id: trace_id.clone(),
            agent_name: "support-bot".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + r.duration_ms * 1_000_000,
            outcome: if r.success {
                v1::Outcome::Success
            } else {
                v1::Outcome::Failure
            } as i32,
            input: format!("{{\"task\": \"{}\"}}", r.item),
            output: r.output.into(),
            ..Default::default()
        });
        for (i, cost) in r.costs.iter().enumerate() {
            let call = v1::ModelCall {
                model: "gpt-4o".into(),
                cost_usd: Some(*cost as f64 / 1e9),
                ..Default::default()
            };
            request
                .spans
                .push(calls::model_call(&trace_id, i, start, call));
        }
        for i in 0..r.tools {
            request
                .spans
                .push(calls::tool_call(&trace_id, i, start, false));
        }
        if let Some(judge) = r.judge {
            request.scores.push(v1::Score {
                trace_id: trace_id.clone(),
                name: "judge".into(),
                value: Some(v1::score::Value::Numeric(judge)),
                ..Default::default()
            });
        }
        links.push(json!({"item_id": r.item, "trace_id": trace_id}));
    }
    (request, links)
}

/// The items' expected outputs (a `const` cannot build JSON values).
fn expected_output(item: &str) -> Value {
    match item {
        "a" => json!("refunds within 30 days"),
        "b" => json!("refunds within 30 days"),
        "c" => json!(42),
        "d" => json!("refunds within 30 days"),
        _ => Value::Null,
    }
}

/// Creates an experiment over dataset `golden` with the test's three evaluators.
async fn create_experiment(vigil: &Vigil, token: &str, name: &str) -> Value {
    let (status, experiment) = status_of(
        reqwest::Client::new()
            .post(format!("{}/api/v1/experiments", vigil.http()))
            .json(&json!({
                "name": name,
                "dataset": "golden",
                "system": {"prompt_version": format!("support-bot@{name}")},
                "evaluators": [
                    {"type": "exact_match", "name": "exact"},
                    {"type": "contains", "name": "mentions_30_days", "value": "30 days"},
                    {"type": "numeric_tolerance", "name": "close", "tolerance": 0.5},
                ],
            })),
        token,
    )
    .await;
    assert_eq!(status, 201, "{experiment}");
    experiment
}

async fn experiments_report_what_their_runs_did(store: Store) {
    let vigil = Vigil::start_on(store);
    let (status, body) = vigil
        .post("/api/v1/datasets", &json!({"name": "golden"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let items: Vec<Value> = ITEM_RUNS
        .iter()
        .map(|r| json!({"id": r.item, "input": {"task": r.item}, "expected_output": expected_output(r.item)}))
        .collect();
    let (status, body) = vigil
        .post("/api/v1/datasets/golden/items", &json!({ "items": items }))
        .await;
    assert_eq!(status, 200, "{body}");

    // A CI key: sends traces and runs experiments, reads nothing else.
    let ci = vigil.create_key("ingest,read");
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", vigil.http());
    let experiment = create_experiment(&vigil, &ci.token, "prompt v8").await;
    assert_eq!(experiment["dataset_version"], 1);
    let id = experiment["id"].as_str().unwrap().to_string();

    // Each item's run.
    let (request, links) = item_runs(&ITEM_RUNS, 0xe0);
    // Item d is linked before its run arrives: it reads as pending until then.
    let (status, body) = status_of(
        http.post(url(&format!("/api/v1/experiments/{id}/items")))
            .json(&json!({ "items": links })),
        &ci.token,
    )
    .await;
    assert_eq!((status, body["linked"].clone()), (200, json!(4)), "{body}");
    let (_, report) = vigil.get(&format!("/api/v1/experiments/{id}")).await;
    assert_eq!(report["summary"]["pending"], 4, "{report}");
    assert_eq!(report["summary"]["not_run"], 1, "{report}");

    let response = vigil.export_native_as(&ci.token, request).await.unwrap();
    assert!(response.rejections.is_empty(), "{response:?}");
    for (n, r) in ITEM_RUNS.iter().enumerate().filter(|(_, r)| r.item != "e") {
        vigil
            .wait_run(&format!("{:032x}", 0xe0 + n), r.costs.len() + r.tools)
            .await;
    }

    // The figures, computed here from what was sent.
    let done: Vec<&ItemRun> = ITEM_RUNS.iter().filter(|r| r.item != "e").collect();
    let n = done.len() as f64;
    let completed = done.iter().filter(|r| r.success).count() as f64;
    let mut latencies: Vec<i64> = done.iter().map(|r| r.duration_ms).collect();
    latencies.sort_unstable();
    let percentile =
        |q: usize| latencies[(latencies.len() * q / 100).min(latencies.len() - 1)] as f64;
    let cost: i64 = done.iter().flat_map(|r| r.costs).sum();
    let tools: usize = done.iter().map(|r| r.tools).sum();
    let judged: Vec<f64> = done.iter().filter_map(|r| r.judge).collect();
    // exact: a (text equal), b (not), c (42 = 42), d (not); mentions: a, d of four; close: c.
    let expected_summary = json!({
        "items": 5, "done": 4, "pending": 0, "not_run": 1,
        "completion_rate": completed / n,
        "pass_rates": {
            "close": {"passed": 1, "evaluated": 1, "rate": 1.0},
            "exact": {"passed": 2, "evaluated": 4, "rate": 0.5},
            "mentions_30_days": {"passed": 2, "evaluated": 4, "rate": 0.5},
        },
        "mean_scores": {"judge": {"mean": judged.iter().sum::<f64>() / judged.len() as f64, "items": judged.len()}},
        "cost_per_item_usd": cost as f64 / 1e9 / n,
        "unpriced_items": 0,
        "latency_p50_ms": percentile(50),
        "latency_p90_ms": percentile(90),
        "latency_p99_ms": percentile(99),
        "tool_calls_per_item": tools as f64 / n,
    });
    let (status, report) = status_of(
        http.get(url(&format!("/api/v1/experiments/{id}"))),
        &ci.token,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["summary"], expected_summary, "{report}");
    assert_eq!(
        report["experiment"]["system"]["prompt_version"],
        "support-bot@prompt v8"
    );

    let (_, items) = vigil.get(&format!("/api/v1/experiments/{id}/items")).await;
    let items = items["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let b = &items[1];
    assert_eq!(
        (
            b["item_id"].clone(),
            b["status"].clone(),
            b["completed"].clone(),
            b["output"].clone(),
            b["tool_calls"].clone(),
            b["evaluations"]["exact"].clone(),
            b["evaluations"]["close"].clone(),
        ),
        (
            json!("b"),
            json!("done"),
            json!(false),
            json!("I do not know"),
            json!(3),
            json!(false),
            Value::Null
        )
    );
    assert_eq!(items[4]["status"], "not_run");

    // Refusals name the field; roles are checked.
    assert_refused(
        http.post(url("/api/v1/experiments")).json(&json!({
            "name": "x", "dataset": "golden",
            "evaluators": [{"type": "regex", "name": "r", "pattern": "("}],
        })),
        &ci.token,
        "evaluators[0].pattern",
    )
    .await;
    assert_refused(
        http.post(url(&format!("/api/v1/experiments/{id}/items")))
            .json(&json!({"items": [{"item_id": "zz", "trace_id": format!("{:032x}", 1)}]})),
        &ci.token,
        "items[0].item_id",
    )
    .await;
    let reader = vigil.create_key("read");
    let (status, _) = status_of(
        http.post(url("/api/v1/experiments"))
            .json(&json!({"name": "x", "dataset": "golden"})),
        &reader.token,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = status_of(
        http.get(url("/api/v1/experiments/exp_0000000000000000")),
        &reader.token,
    )
    .await;
    assert_eq!(status, 404);
    let (status, list) = status_of(
        http.get(url("/api/v1/experiments?dataset=golden")),
        &reader.token,
    )
    .await;
    assert_eq!(
        (status, list["experiments"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{list}"
    );
    // A candidate on the same items: item a now fails, item b now completes and passes.
    let candidate = create_experiment(&vigil, &ci.token, "prompt v9").await;
    let candidate_id = candidate["id"].as_str().unwrap().to_string();
    let candidate_runs: Vec<ItemRun> = ITEM_RUNS
        .iter()
        .map(|r| match r.item {
            "a" => ItemRun {
                success: false,
                output: "no idea",
                ..*r
            },
            "b" => ItemRun {
                success: true,
                output: "refunds within 30 days",
                ..*r
            },
            _ => ItemRun { ..*r },
        })
        .collect();
    let (request, links) = item_runs(&candidate_runs, 0xf0);
    let response = vigil.export_native_as(&ci.token, request).await.unwrap();
    assert!(response.rejections.is_empty(), "{response:?}");
    for (n, r) in candidate_runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.item != "e")
    {
        vigil
            .wait_run(&format!("{:032x}", 0xf0 + n), r.costs.len() + r.tools)
            .await;
    }
    let (status, body) = status_of(
        http.post(url(&format!("/api/v1/experiments/{candidate_id}/items")))
            .json(&json!({ "items": links })),
        &ci.token,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, comparison) = status_of(
        http.post(url("/api/v1/experiments/compare"))
            .json(&json!({"baseline": id, "candidate": candidate_id})),
        &ci.token,
    )
    .await;
    assert_eq!(status, 200, "{comparison}");
    let metric = |name: &str| {
        comparison["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {comparison}"))
    };
    // Completion: a, c, d of four before; b, c, d after: one lost, one won, p = 1.
    let completion = metric("completion_rate");
    assert_eq!(
        (
            completion["pairs"].clone(),
            completion["baseline"].clone(),
            completion["candidate"].clone(),
            completion["p_value"].clone(),
            completion["test"].clone(),
            completion["verdict"].clone(),
        ),
        (
            json!(4),
            json!(0.75),
            json!(0.75),
            json!(1.0),
            json!("mcnemar_exact"),
            json!("no_significant_change")
        )
    );
    // Exact match: a and c before; b and c after.
    let exact = metric("pass_rate.exact");
    assert_eq!(
        (exact["baseline"].clone(), exact["candidate"].clone()),
        (json!(0.5), json!(0.5))
    );
    // Latency did not change for any pair: nothing to test.
    let latency = metric("latency_ms");
    assert_eq!(
        (latency["pairs"].clone(), latency["p_value"].clone()),
        (json!(4), Value::Null)
    );
    let changes: Vec<(Value, Value)> = comparison["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["item_id"].clone(), c["change"].clone()))
        .collect();
    assert_eq!(
        changes,
        vec![
            (json!("a"), json!("newly_failing")),
            (json!("b"), json!("newly_passing"))
        ]
    );
    assert_refused(
        http.post(url("/api/v1/experiments/compare"))
            .json(&json!({"baseline": id, "candidate": candidate_id, "alpha": 0.7})),
        &ci.token,
        "alpha",
    )
    .await;
}

on_both_stores!(experiments_report_what_their_runs_did);

/// Runs sent with the OpenTelemetry SDK whose root span names an experiment and an item are
/// linked to it as they are stored; a run naming an item or an experiment that does not exist
/// is stored and not linked; the links survive a kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn experiment_runs_link_themselves_by_their_attributes() {
    let mut vigil = Vigil::start_on(Store::Embedded);
    let (status, _) = vigil
        .post("/api/v1/datasets", &json!({"name": "linked"}))
        .await;
    assert_eq!(status, 201);
    let items = json!({"items": [{"id": "a", "input": "one"}, {"id": "b", "input": "two"}]});
    let (status, _) = vigil.post("/api/v1/datasets/linked/items", &items).await;
    assert_eq!(status, 200);
    let (status, experiment) = vigil
        .post(
            "/api/v1/experiments",
            &json!({"name": "by attributes", "dataset": "linked"}),
        )
        .await;
    assert_eq!(status, 201, "{experiment}");
    let id = experiment["id"].as_str().unwrap();
    let endpoint = format!("{}/v1/traces", vigil.http());
    let send = |experiment: &str, item: &str| {
        let exp = format!("vigil.experiment.id={experiment}");
        let item = format!("vigil.dataset.item.id={item}");
        let args = [
            "--token",
            &vigil.token,
            "--root-attribute",
            &exp,
            "--root-attribute",
            &item,
        ];
        let sent = crate::ingest::send_with_python(&vigil, "http", &endpoint, &args, 1);
        sent["runs"][0]["trace_id"].as_str().unwrap().to_string()
    };
    let linked = send(id, "a");
    let unknown_item = send(id, "zzz");
    let unknown_experiment = send("exp_0000000000000000", "a");

    let path = format!("/api/v1/experiments/{id}/items");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, answer) = vigil.get(&path).await;
        let a = &answer["items"][0];
        if a["status"] == "done" {
            assert_eq!(a["trace_id"], linked.as_str(), "{answer}");
            assert_eq!(answer["items"][1]["status"], "not_run", "{answer}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not linked: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for trace_id in [&unknown_item, &unknown_experiment] {
        vigil.wait_run(trace_id, 3).await;
    }
    vigil.kill9();
    vigil.restart();
    let (_, answer) = vigil.get(&path).await;
    assert_eq!(answer["items"][0]["trace_id"], linked.as_str(), "{answer}");
}

/// SciPy's answers for the same data: binomtest (McNemar's exact test), binomtest's Wilson
/// interval, wilcoxon with its defaults, norm.ppf, fisher_exact, mannwhitneyu with its defaults.
const SCIPY_REFERENCE: &str = r#"
import json, sys
from scipy import stats
d = json.load(sys.stdin)
wilson = [stats.binomtest(k, n).proportion_ci(confidence_level=1 - d["alpha"], method="wilson")
          for k, n in d["rates"]]
out = {
    "mcnemar": [float(stats.binomtest(c, b + c, 0.5).pvalue) for b, c in d["pairs"]],
    "wilson": [[float(ci.low), float(ci.high)] for ci in wilson],
    "wilcoxon": [[float(r.statistic), float(r.pvalue)]
                 for r in (stats.wilcoxon(x, correction=False) for x in d["samples"])],
    "ppf": [float(stats.norm.ppf(p)) for p in d["quantiles"]],
    "fisher": [float(stats.fisher_exact([[a, b], [c, e]]).pvalue) for a, b, c, e in d["tables"]],
    "mwu": [[float(r.statistic), float(r.pvalue)]
            for r in (stats.mannwhitneyu(x, y) for x, y in d["unpaired"])],
}
print(json.dumps(out))
"#;

#[test]
fn comparison_statistics_equal_scipy() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use vigil_eval::stats::{
        MannWhitneyMethod, WilcoxonMethod, fisher_exact, mann_whitney_u, mcnemar_exact, normal_ppf,
        wilcoxon, wilson,
    };

    let mut rng = StdRng::seed_from_u64(15);
    let pairs: Vec<(u64, u64)> = vec![
        (0, 5),
        (1, 4),
        (3, 3),
        (12, 30),
        (100, 131),
        (7, 0),
        (250, 180),
        (0, 1),
    ];
    let rates: Vec<(u64, u64)> = vec![
        (0, 10),
        (10, 10),
        (17, 40),
        (512, 1000),
        (1, 3),
        (998, 1000),
    ];
    let alpha = 0.05;
    let continuous = |rng: &mut StdRng, n: usize| -> Vec<f64> {
        (0..n).map(|_| rng.random_range(-1.0..1.3)).collect()
    };
    let samples: Vec<(Vec<f64>, WilcoxonMethod)> = vec![
        (continuous(&mut rng, 20), WilcoxonMethod::Exact),
        (continuous(&mut rng, 50), WilcoxonMethod::Exact),
        (
            continuous(&mut rng, 60),
            WilcoxonMethod::NormalApproximation,
        ),
        // Ties and zeros, few pairs: every sign assignment counted.
        (
            (0..10)
                .map(|_| f64::from(rng.random_range(-2i32..4)))
                .collect(),
            WilcoxonMethod::Permutation,
        ),
        // Ties, more pairs: the normal approximation with the tie correction.
        (
            (0..30)
                .map(|_| f64::from(rng.random_range(-3i32..5)))
                .collect(),
            WilcoxonMethod::NormalApproximation,
        ),
        (
            (0..200)
                .map(|_| f64::from(rng.random_range(-40i32..45)))
                .collect(),
            WilcoxonMethod::NormalApproximation,
        ),
    ];
    let quantiles = [1e-6, 0.001, 0.025, 0.3, 0.5, 0.95, 0.975, 0.999];
    // Two cohorts' counts: [[yes, no] of the baseline, [yes, no] of the candidate].
    let tables: Vec<[u64; 4]> = vec![
        [3, 1, 1, 3],
        [10, 0, 0, 10],
        [0, 5, 0, 7],
        [12, 30, 20, 18],
        [480, 20, 455, 45],
        [400_000, 100_000, 399_000, 101_000],
        [1, 499_999, 9, 499_991],
        [7, 0, 3, 4],
        // Equal rows: each table is exactly as likely as its mirror, far from the mode.
        [250_000, 250_000, 249_400, 250_600],
        [500_000, 500_000, 498_600, 501_400],
    ];
    let spread = |rng: &mut StdRng, n: usize, shift: f64| -> Vec<f64> {
        (0..n)
            .map(|_| rng.random_range(0.0..10.0) + shift)
            .collect()
    };
    let whole = |rng: &mut StdRng, n: usize, top: i32| -> Vec<f64> {
        (0..n)
            .map(|_| f64::from(rng.random_range(0..top)))
            .collect()
    };
    let unpaired: Vec<(Vec<f64>, Vec<f64>, MannWhitneyMethod)> = vec![
        // No ties, one sample of at most 8: the exact distribution.
        (
            spread(&mut rng, 5, 0.0),
            spread(&mut rng, 7, 2.0),
            MannWhitneyMethod::Exact,
        ),
        (
            spread(&mut rng, 8, 0.0),
            spread(&mut rng, 40, 1.0),
            MannWhitneyMethod::Exact,
        ),
        (
            spread(&mut rng, 3, 3.0),
            spread(&mut rng, 4, 0.0),
            MannWhitneyMethod::Exact,
        ),
        // Both larger, or ties: the normal approximation.
        (
            spread(&mut rng, 30, 0.0),
            spread(&mut rng, 25, 0.5),
            MannWhitneyMethod::NormalApproximation,
        ),
        (
            whole(&mut rng, 6, 4),
            whole(&mut rng, 7, 5),
            MannWhitneyMethod::NormalApproximation,
        ),
        (
            spread(&mut rng, 5_000, 0.0),
            spread(&mut rng, 6_000, 0.05),
            MannWhitneyMethod::NormalApproximation,
        ),
        (
            whole(&mut rng, 2_000, 20),
            whole(&mut rng, 2_500, 21),
            MannWhitneyMethod::NormalApproximation,
        ),
    ];

    let input = json!({
        "pairs": pairs, "rates": rates, "alpha": alpha, "quantiles": quantiles,
        "samples": samples.iter().map(|(s, _)| s).collect::<Vec<_>>(),
        "tables": tables,
        "unpaired": unpaired.iter().map(|(x, y, _)| (x, y)).collect::<Vec<_>>(),
    });
    let scipy = crate::support::python_json(SCIPY_REFERENCE, &input);
    let close = |ours: f64, theirs: &Value, what: &str| {
        let theirs = theirs.as_f64().unwrap();
        assert!(
            (ours - theirs).abs() <= 1e-9,
            "{what}: Vigil {ours}, SciPy {theirs}"
        );
    };

    for (i, (b, c)) in pairs.iter().enumerate() {
        close(
            mcnemar_exact(*b, *c),
            &scipy["mcnemar"][i],
            &format!("McNemar b={b} c={c}"),
        );
    }
    for (i, (k, n)) in rates.iter().enumerate() {
        let (low, high) = wilson(*k, *n, alpha).unwrap();
        close(low, &scipy["wilson"][i][0], &format!("Wilson low {k}/{n}"));
        close(
            high,
            &scipy["wilson"][i][1],
            &format!("Wilson high {k}/{n}"),
        );
    }
    for (i, (sample, method)) in samples.iter().enumerate() {
        let r = wilcoxon(sample).unwrap();
        assert_eq!(r.method, *method, "sample {i}");
        close(
            r.statistic,
            &scipy["wilcoxon"][i][0],
            &format!("Wilcoxon statistic, sample {i}"),
        );
        close(
            r.p_value,
            &scipy["wilcoxon"][i][1],
            &format!("Wilcoxon p, sample {i} ({method:?})"),
        );
    }
    for (i, p) in quantiles.iter().enumerate() {
        close(
            normal_ppf(*p),
            &scipy["ppf"][i],
            &format!("normal quantile {p}"),
        );
    }
    for (i, [a, b, c, d]) in tables.iter().enumerate() {
        close(
            fisher_exact(*a, *b, *c, *d),
            &scipy["fisher"][i],
            &format!("Fisher [[{a}, {b}], [{c}, {d}]]"),
        );
    }
    for (i, (x, y, method)) in unpaired.iter().enumerate() {
        let r = mann_whitney_u(x, y).unwrap();
        assert_eq!(r.method, *method, "unpaired sample {i}");
        close(
            r.statistic,
            &scipy["mwu"][i][0],
            &format!("Mann-Whitney U, sample {i}"),
        );
        close(
            r.p_value,
            &scipy["mwu"][i][1],
            &format!("Mann-Whitney p, sample {i} ({method:?})"),
        );
    }
}

/// Runs `vigil eval gate` against `vigil` with `args`: its exit code and standard output.
fn gate(vigil: &Vigil, args: &[&str]) -> (i32, String) {
    let url = vigil.http();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["eval", "gate", "--url", &url, "--token", &vigil.token])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// An experiment over dataset `gate` whose item `i` completes when `completes(i)`: created, its
/// 40 runs sent and linked; its id.
async fn gate_experiment(
    vigil: &Vigil,
    name: &str,
    first_trace: usize,
    completes: impl Fn(usize) -> bool,
) -> String {
    let experiment = {
        let (status, body) = vigil
            .post(
                "/api/v1/experiments",
                &json!({"name": name, "dataset": "gate",
                        "evaluators": [{"type": "exact_match", "name": "exact"}]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let mut request = v1::ExportRequest::default();
    let mut links = Vec::new();
    for i in 0..40 {
        let trace_id = format!("{:032x}", first_trace + i);
        let start = now - 120_000_000_000 + i as i64 * 1_000_000;
        let ok = completes(i);
        request.runs.push(v1::Run {
            trace_id: trace_id.clone(),
            agent_name: "gate-bot".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_000_000_000 + (i as i64 % 7) * 10_000_000,
            outcome: if ok {
                v1::Outcome::Success
            } else {
                v1::Outcome::Failure
            } as i32,
            output: if ok { "ok" } else { "sorry" }.into(),
            ..Default::default()
        });
        links.push(json!({"item_id": format!("i{i:02}"), "trace_id": trace_id}));
    }
    let response = vigil.export_native(request).await;
    assert!(response.rejections.is_empty(), "{response:?}");
    for i in 0..40 {
        vigil
            .wait_run(&format!("{:032x}", first_trace + i), 0)
            .await;
    }
    let (status, body) = vigil
        .post(
            &format!("/api/v1/experiments/{experiment}/items"),
            &json!({ "items": links }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    experiment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gate_fails_a_regression_and_passes_noise() {
    let vigil = Vigil::start_on(Store::Embedded);
    let (status, _) = vigil
        .post("/api/v1/datasets", &json!({"name": "gate"}))
        .await;
    assert_eq!(status, 201);
    let items: Vec<Value> = (0..40)
        .map(|i| json!({"id": format!("i{i:02}"), "input": i, "expected_output": "ok"}))
        .collect();
    let (status, body) = vigil
        .post("/api/v1/datasets/gate/items", &json!({ "items": items }))
        .await;
    assert_eq!(status, 200, "{body}");

    // Baseline: 36 of 40 complete. Regressed: 24 do (12 newly failing, none newly passing:
    // McNemar's p = 2 · 2^-12). Noise: one item fails, another completes instead (p = 1).
    let baseline = gate_experiment(&vigil, "baseline", 0x1000, |i| i < 36).await;
    let regressed = gate_experiment(&vigil, "regressed", 0x2000, |i| i < 24).await;
    let noise = gate_experiment(&vigil, "noise", 0x3000, |i| (1..37).contains(&i)).await;

    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("gate.xml");
    let (code, out) = gate(
        &vigil,
        &[
            "--baseline",
            &baseline,
            "--candidate",
            &regressed,
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL") && out.contains("completion_rate: no significant regression"),
        "{out}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<failure") && xml.contains("completion_rate"),
        "{xml}"
    );

    let (code, out) = gate(
        &vigil,
        &[
            "--baseline",
            &baseline,
            "--candidate",
            &noise,
            "--max-completion-drop",
            "0.02",
            "--max-cost-increase",
            "10%",
            "--min-pass-rate",
            "exact=0.85",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["passed"], true, "{answer}");
    // A threshold alone fails it: the noise pair's exact-match rate is 36/40 = 0.9.
    let (code, out) = gate(
        &vigil,
        &[
            "--baseline",
            &baseline,
            "--candidate",
            &noise,
            "--min-pass-rate",
            "exact=0.95",
        ],
    );
    assert_eq!(code, 1, "{out}");

    // Usage and server errors: 2.
    for args in [
        vec![
            "--baseline",
            baseline.as_str(),
            "--candidate",
            noise.as_str(),
            "--min-pass-rate",
            "judge=0.9",
        ],
        vec![
            "--baseline",
            baseline.as_str(),
            "--candidate",
            noise.as_str(),
            "--alpha",
            "2",
        ],
        vec![
            "--baseline",
            baseline.as_str(),
            "--candidate",
            "exp_0000000000000000",
        ],
        vec!["--baseline", baseline.as_str()],
    ] {
        let (code, out) = gate(&vigil, &args);
        assert_eq!(code, 2, "{args:?}: {out}");
    }
}
