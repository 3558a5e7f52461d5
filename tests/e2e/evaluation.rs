//! Evaluation datasets through the real binary: the CLI and the API, versions that never change,
//! items taken from production runs (with their classification), role checks, the audit log, and
//! a kill -9.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vigil_proto::v1;

use crate::support::{Store, Vigil, cli};

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
    let (status, body) = status_of(
        http.post(url("/api/v1/datasets"))
            .json(&json!({"name": "../x"})),
        &vigil.token,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("name")),
        "{body}"
    );
    let (status, body) = status_of(
        http.post(url(items_path))
            .json(&json!({"items": [{"input": 1}, {"metadata": {}}]})),
        &vigil.token,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("items[1].input")),
        "{body}"
    );
    let (status, body) = status_of(
        http.post(url(items_path))
            .json(&json!({"items": [{"source_trace_id": "0af7651916cd43dd8448eb211c80319c"}]})),
        &vigil.token,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("items[0].source_trace_id")),
        "{body}"
    );
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
