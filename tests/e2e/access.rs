//! Access end to end, against the real binary: the audit log (what is recorded, reading it,
//! `vigil audit verify` on the real files, tampered with), API keys through the API, and per-key
//! rate limits.

use crate::support;

use std::{path::Path, process::Command, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};
use support::{Vigil, cli};

/// A request with `token`: status, `Retry-After` (when sent) and JSON body (null if not JSON).
async fn call(
    vigil: &Vigil,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Option<u64>, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", vigil.http()))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn create_key_api(vigil: &Vigil, token: &str, body: Value) -> Value {
    let (status, _, key) = call(vigil, Method::POST, "/api/v1/keys", token, Some(body)).await;
    assert_eq!(status, 201, "{key}");
    key
}

/// Every entry `GET /api/v1/audit/log?{query}` returns, following `next_cursor`.
async fn read_all(vigil: &Vigil, token: &str, query: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/audit/log?{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, _, page) = call(vigil, Method::GET, &path, token, None).await;
        assert_eq!(status, 200, "{page}");
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return entries,
        }
    }
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

fn data_dir_arg(dir: &Path) -> String {
    dir.display().to_string()
}

/// `vigil audit verify --data-dir DIR`: success, stdout and stderr.
fn audit_verify(data_dir: &Path) -> (bool, String, String) {
    audit_verify_expecting(data_dir, &[])
}

/// `vigil audit verify`, each of `checkpoints` given as `--expect`.
fn audit_verify_expecting(data_dir: &Path, checkpoints: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["audit", "verify", "--data-dir", &data_dir_arg(data_dir)])
        .args(checkpoints.iter().flat_map(|c| ["--expect", c]))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_change_is_in_the_audit_log_and_reading_it_is_too() {
    let vigil = Vigil::start();
    let admin = vigil.token.clone();
    let admin_id = format!(
        "vk_{}",
        admin
            .strip_prefix("vk_")
            .unwrap()
            .split('_')
            .next()
            .unwrap()
    );

    // A key through the CLI, one through the API, one revoked through the API.
    let reader = vigil.create_key("read");
    let auditor = create_key_api(
        &vigil,
        &admin,
        json!({"roles": ["audit"], "description": "auditor"}),
    )
    .await;
    let auditor_token = auditor["token"].as_str().unwrap().to_string();
    let doomed = create_key_api(&vigil, &admin, json!({"roles": ["ingest"]})).await;
    let doomed_id = doomed["id"].as_str().unwrap();
    let (status, _, _) = call(
        &vigil,
        Method::DELETE,
        &format!("/api/v1/keys/{doomed_id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);

    // Alert rule put and delete, silence create and expire.
    let rule = json!({"metric": "completion_rate", "window": "10m", "op": "<", "threshold": 0.85});
    let (status, _, body) = call(
        &vigil,
        Method::PUT,
        "/api/v1/alert-rules/completion-low",
        &admin,
        Some(rule),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _, _) = call(
        &vigil,
        Method::DELETE,
        "/api/v1/alert-rules/completion-low",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let silence = json!({
        "matchers": [{"name": "alertname", "op": "=", "value": "completion-low"}],
        "ends_at": "2099-01-01T00:00:00Z",
        "comment": "deploying",
    });
    let (status, _, silence) = call(
        &vigil,
        Method::POST,
        "/api/v1/silences",
        &admin,
        Some(silence),
    )
    .await;
    assert_eq!(status, 201, "{silence}");
    let silence_id = silence["id"].as_str().unwrap();
    let (status, _, _) = call(
        &vigil,
        Method::DELETE,
        &format!("/api/v1/silences/{silence_id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);

    // A key without `audit` may not read the log; one with it may.
    let (status, _, body) = call(
        &vigil,
        Method::GET,
        "/api/v1/audit/log",
        &reader.token,
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _, page) = call(
        &vigil,
        Method::GET,
        "/api/v1/audit/log",
        &auditor_token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().unwrap().clone();
    assert!(page["next_cursor"].is_null());
    assert_eq!(
        actions(&entries),
        [
            "key.create", // the first start's admin key
            "key.create", // CLI
            "key.create", // API: the auditor
            "key.create", // API: the doomed key
            "key.revoke",
            "alert_rule.put",
            "alert_rule.delete",
            "silence.create",
            "silence.expire",
        ]
    );
    let key_ids: Vec<&str> = entries
        .iter()
        .map(|e| e["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(key_ids[..3], ["system", "cli", admin_id.as_str()]);
    assert!(key_ids[3..].iter().all(|k| *k == admin_id));
    assert_eq!(entries[1]["parameters"]["id"], json!(reader.id));
    assert_eq!(entries[1]["parameters"]["roles"], json!(["read"]));
    assert_eq!(entries[2]["parameters"]["description"], "auditor");
    assert_eq!(entries[4]["parameters"]["id"], json!(doomed_id));
    assert_eq!(entries[5]["parameters"]["name"], "completion-low");
    assert_eq!(
        entries[5]["parameters"]["rule"]["metric"],
        "completion_rate"
    );
    assert_eq!(entries[7]["parameters"]["id"], json!(silence_id));
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry["seq"], json!(i + 1));
        assert_eq!(entry["project_id"], "default");
        assert_eq!(entry["result_count"], 1);
        let prev = if i == 0 {
            "0".repeat(64)
        } else {
            entries[i - 1]["hash"].as_str().unwrap().to_string()
        };
        assert_eq!(entry["prev_hash"], json!(prev));
    }
    // No secret reaches the log, nor a secret's hash.
    let file = std::fs::read_to_string(vigil.data_dir().join("audit/audit.log")).unwrap();
    for secret in [
        reader.secret.as_str(),
        auditor["secret"].as_str().unwrap(),
        doomed["secret"].as_str().unwrap(),
    ] {
        assert!(!file.contains(secret));
    }
    assert!(!file.contains("secret"));

    // Reading was recorded, with what was asked and how many entries it returned.
    let (_, _, again) = call(
        &vigil,
        Method::GET,
        "/api/v1/audit/log?cursor=9",
        &auditor_token,
        None,
    )
    .await;
    let after = again["entries"].as_array().unwrap();
    assert_eq!(actions(after), ["audit.log_read"]);
    assert_eq!(after[0]["key_id"], auditor["id"]);
    assert_eq!(after[0]["result_count"], 9);
    assert_eq!(after[0]["parameters"]["limit"], 100);

    // from / to: [time of entry 4, time of entry 7).
    let from = entries[3]["time"].as_str().unwrap();
    let to = entries[6]["time"].as_str().unwrap();
    let ranged = read_all(&vigil, &auditor_token, &format!("from={from}&to={to}")).await;
    let seqs: Vec<u64> = ranged.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [4, 5, 6]);

    // Pages of 2 up to a fixed end give the same entries as one page.
    let end = rfc3339_of(entries[8]["time_ns"].as_i64().unwrap() + 1);
    let paged = read_all(&vigil, &auditor_token, &format!("to={end}&limit=2")).await;
    assert_eq!(paged, entries);

    // Bad parameters are named.
    for (query, field) in [
        ("from=yesterday", "from"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=abc", "cursor"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("project=other", "query"),
    ] {
        let (status, _, body) = call(
            &vigil,
            Method::GET,
            &format!("/api/v1/audit/log?{query}"),
            &auditor_token,
            None,
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }

    // Another project's auditor sees only its own project's entries.
    let data_dir = data_dir_arg(vigil.data_dir());
    let other = cli(&[
        "keys",
        "--data-dir",
        &data_dir,
        "create",
        "--project",
        "other",
        "--role",
        "audit",
    ]);
    let other_token = other
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .unwrap()
        .trim()
        .to_string();
    let theirs = read_all(&vigil, &other_token, "").await;
    assert_eq!(actions(&theirs), ["key.create"]);
    assert_eq!(theirs[0]["project_id"], "other");
    assert_eq!(theirs[0]["key_id"], "cli");

    let (ok, stdout, stderr) = audit_verify(vigil.data_dir());
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
    let entries_line = stdout.lines().find(|l| l.starts_with("entries:")).unwrap();
    let total: u64 = entries_line["entries:".len()..].trim().parse().unwrap();
    let on_disk = std::fs::read_to_string(vigil.data_dir().join("audit/audit.log"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(total, on_disk);
}

/// RFC 3339 of a nanosecond timestamp, computed here (not by Vigil).
fn rfc3339_of(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let within = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        within / 3600,
        (within / 60) % 60,
        within % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_names_the_first_bad_entry_of_the_real_log() {
    let mut vigil = Vigil::start();
    let admin = vigil.token.clone();
    for i in 0..4 {
        create_key_api(
            &vigil,
            &admin,
            json!({"roles": ["read"], "description": format!("key {i}")}),
        )
        .await;
    }
    vigil.stop();
    let (ok, stdout, stderr) = audit_verify(vigil.data_dir());
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("entries:   5"), "{stdout}");
    assert!(stdout.contains("last seq:  5"), "{stdout}");

    let audit = vigil.data_dir().join("audit");
    let log = std::fs::read_to_string(audit.join("audit.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 5);

    let edited_field = lines[2].replace("\"key 1\"", "\"key 9\"");
    assert_ne!(edited_field, lines[2]);
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "a field edited",
            vec![lines[0], lines[1], &edited_field, lines[3], lines[4]],
            "line 3 (entry seq 3)",
        ),
        (
            "a line deleted",
            vec![lines[0], lines[1], lines[3], lines[4]],
            "line 3 (entry seq 3)",
        ),
        (
            "two lines swapped",
            vec![lines[0], lines[2], lines[1], lines[3], lines[4]],
            "line 2 (entry seq 2)",
        ),
        (
            "the tail truncated",
            vec![lines[0], lines[1], lines[2], lines[3]],
            "line 5 (entry seq 5)",
        ),
    ];
    for (what, kept, named) in cases {
        let copy = tempfile::tempdir().unwrap();
        std::fs::create_dir(copy.path().join("audit")).unwrap();
        std::fs::copy(audit.join("head"), copy.path().join("audit/head")).unwrap();
        std::fs::write(
            copy.path().join("audit/audit.log"),
            kept.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        let (ok, stdout, stderr) = audit_verify(copy.path());
        assert!(!ok, "{what}: verify passed: {stdout}");
        assert!(
            stderr.contains("FAILED verification") && stderr.contains(named),
            "{what}: expected {named:?} in: {stderr}"
        );
    }

    // The server, restarted on a tampered log, refuses to extend it rather than hide the cut.
    std::fs::write(
        audit.join("audit.log"),
        lines[..4]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .unwrap();
    vigil.restart();
    let (status, _, _) = call(
        &vigil,
        Method::POST,
        "/api/v1/keys",
        &admin,
        Some(json!({"roles": ["read"]})),
    )
    .await;
    assert_eq!(status, 500);
    let (ok, _, stderr) = audit_verify(vigil.data_dir());
    assert!(!ok && stderr.contains("line 5 (entry seq 5)"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_through_the_api() {
    let vigil = Vigil::start();
    let admin = vigil.token.clone();

    let key = create_key_api(
        &vigil,
        &admin,
        json!({"roles": ["read"], "description": "dashboard"}),
    )
    .await;
    let token = key["token"].as_str().unwrap();
    let secret = key["secret"].as_str().unwrap();
    let id = key["id"].as_str().unwrap();
    assert!(token.starts_with(&format!("{id}_")) && token.ends_with(secret));
    assert_eq!(key["roles"], json!(["read"]));
    assert_eq!(key["project_id"], "default");
    assert!(key["revoked_at"].is_null());

    // Exactly its roles: read yes; admin, audit and ingest no.
    for (method, path, expected) in [
        (Method::GET, "/api/v1/runs", 200),
        (Method::GET, "/api/v1/alert-rules", 200),
        (Method::GET, "/api/v1/keys", 403),
        (Method::GET, "/api/v1/audit/log", 403),
        (Method::POST, "/api/v1/scores", 403),
    ] {
        let body = (method == Method::POST).then(
            || json!({"trace_id": "0af7651916cd43dd8448eb211c80319c", "name": "x", "value": 1}),
        );
        let (status, _, answer) = call(&vigil, method.clone(), path, token, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }

    // Listed without its secret or hash.
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/keys", vigil.http()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(secret) && !text.contains("secret") && !text.contains("token"));
    let listed: Value = serde_json::from_str(&text).unwrap();
    let ids: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id) && ids.len() == 2, "{ids:?}");

    // Another project's admin neither sees nor revokes it.
    let data_dir = data_dir_arg(vigil.data_dir());
    let other = cli(&[
        "keys",
        "--data-dir",
        &data_dir,
        "create",
        "--project",
        "other",
        "--role",
        "admin",
    ]);
    let other_admin = other
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .unwrap()
        .trim()
        .to_string();
    let (status, _, theirs) = call(&vigil, Method::GET, "/api/v1/keys", &other_admin, None).await;
    assert_eq!(status, 200);
    assert!(!theirs.to_string().contains(id), "{theirs}");
    let (status, _, _) = call(
        &vigil,
        Method::DELETE,
        &format!("/api/v1/keys/{id}"),
        &other_admin,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = call(&vigil, Method::GET, "/api/v1/runs", token, None).await;
    assert_eq!(status, 200, "still works");

    // Revoked by its own project's admin: refused from then on.
    let (status, _, revoked) = call(
        &vigil,
        Method::DELETE,
        &format!("/api/v1/keys/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (status, _, _) = call(&vigil, Method::GET, "/api/v1/runs", token, None).await;
    assert_eq!(status, 401);
    let (status, _, _) = call(
        &vigil,
        Method::DELETE,
        "/api/v1/keys/vk_0000000000000000",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Refusals name the field.
    for (body, field) in [
        (json!({"roles": ["reader"]}), "roles"),
        (json!({"roles": []}), "roles"),
        (
            json!({"roles": ["read"], "rate_limit": {"requests_per_second": 1, "burst": 0}}),
            "rate_limit.burst",
        ),
        (
            json!({"roles": ["read"], "rate_limit": {"requests_per_second": 0, "burst": 1}}),
            "rate_limit.requests_per_second",
        ),
        (json!({"roles": ["read"], "project_id": "other"}), "body"),
    ] {
        let (status, _, answer) = call(
            &vigil,
            Method::POST,
            "/api/v1/keys",
            &admin,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_over_its_rate_limit_waits_and_others_do_not() {
    let vigil = Vigil::start();
    let admin = vigil.token.clone();
    let limited = create_key_api(
        &vigil,
        &admin,
        json!({"roles": ["read", "ingest"], "rate_limit": {"requests_per_second": 1, "burst": 2}}),
    )
    .await;
    let limited = limited["token"].as_str().unwrap();
    let other = create_key_api(&vigil, &admin, json!({"roles": ["read"]})).await;
    let other = other["token"].as_str().unwrap();

    // Admitted: at most the burst plus one per second elapsed. Twenty requests that take less
    // than 18 s must meet a refusal.
    let mut refusal = None;
    for _ in 0..20 {
        let (status, retry_after, body) =
            call(&vigil, Method::GET, "/api/v1/alert-rules", limited, None).await;
        if status == 429 {
            refusal = Some((retry_after, body));
            break;
        }
        assert_eq!(status, 200, "{body}");
    }
    let (retry_after, body) = refusal.expect("never refused");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["field"].is_null());
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("1 requests/s") && message.contains("burst of 2"),
        "{message}"
    );
    // The bucket refills one request a second: never more than a second to wait.
    let retry_after = retry_after.expect("no Retry-After");
    assert_eq!(retry_after, 1);

    // Another key is not affected; trace export is not counted.
    let (status, _, _) = call(&vigil, Method::GET, "/api/v1/alert-rules", other, None).await;
    assert_eq!(status, 200);
    let (status, _, body) = call(
        &vigil,
        Method::POST,
        "/v1/traces",
        limited,
        Some(json!({"resourceSpans": []})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Waiting as long as told is enough.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (status, _, body) = call(&vigil, Method::GET, "/api/v1/alert-rules", limited, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(vigil.metric("vigil_api_rate_limited_total").await >= 1.0);

    // A key made by the CLI with its own limit is held to it too: one request per 100 s.
    let data_dir = data_dir_arg(vigil.data_dir());
    let created = cli(&[
        "keys",
        "--data-dir",
        &data_dir,
        "create",
        "--role",
        "read",
        "--requests-per-second",
        "0.01",
        "--burst",
        "1",
    ]);
    let token = created
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .unwrap()
        .trim()
        .to_string();
    let (status, _, _) = call(&vigil, Method::GET, "/api/v1/alert-rules", &token, None).await;
    assert_eq!(status, 200);
    let (status, retry_after, _) =
        call(&vigil, Method::GET, "/api/v1/alert-rules", &token, None).await;
    assert_eq!(status, 429);
    assert!(matches!(retry_after, Some(1..=100)), "{retry_after:?}");
}

/// An address that failed to authenticate past its burst is refused, over HTTP and gRPC, even
/// with a right key, until its bucket refills; every HTTP answer carries the security headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_failing_to_authenticate_is_refused_for_a_while() {
    let vigil = Vigil::start_with(&[
        ("VIGIL_RATE_LIMITS__FAILED_AUTH_PER_SECOND", "0.1"),
        ("VIGIL_RATE_LIMITS__FAILED_AUTH_BURST", "3"),
    ]);
    let wrong = "vk_0000000000000000_000000000000000000000000000000000000000000000000";
    for _ in 0..3 {
        let (status, _, body) = call(&vigil, Method::GET, "/api/v1/runs", wrong, None).await;
        assert_eq!(status, 401, "{body}");
    }
    // The fourth try is refused before its key is looked at: the right key too. Three failures
    // at one per 10 s leave the bucket 10 s short of the next.
    let (status, retry_after, body) =
        call(&vigil, Method::GET, "/api/v1/runs", &vigil.token, None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let retry_after = retry_after.expect("no Retry-After");
    assert!(
        (9..=10).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let refused = vigil
        .export_native_as(&vigil.token, Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("failed authentications"),
        "{refused:?}"
    );
    // What needs no key is served as before.
    let (status, _, _) = call(&vigil, Method::GET, "/healthz", "", None).await;
    assert_eq!(status, 200);

    for path in ["/healthz", "/api/v1/runs", "/api/v1/nothing-here", "/"] {
        let response = reqwest::get(format!("{}{path}", vigil.http()))
            .await
            .unwrap();
        let headers = response.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
        ] {
            assert_eq!(headers[name], value, "{path}: {name}");
        }
        assert!(headers.contains_key("content-security-policy"), "{path}");
        assert!(headers.contains_key("cache-control"), "{path}");
    }
}

/// Every node publishes its audit chain's head to a receiver of the rules file, signed, whenever
/// it moved; `vigil audit head` prints the same. A log rewritten whole afterwards, every hash
/// recomputed, verifies by itself and fails against the published checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_head_finds_a_log_rewritten_whole() {
    use vigil_access::audit::{AuditLog, AuditRecord};

    let receiver = crate::alerts::Receiver::start(0);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("alerts.toml");
    std::fs::write(
        &rules,
        format!(
            "[[receivers]]\nname = \"auditors\"\nurl = \"{}\"\nsecret = \"{}\"\n",
            receiver.url(),
            crate::alerts::SECRET
        ),
    )
    .unwrap();
    let mut vigil = Vigil::start_with(&[
        ("VIGIL_ALERTING__RULES_FILE", rules.to_str().unwrap()),
        ("VIGIL_AUDIT__HEAD_RECEIVER", "auditors"),
        ("VIGIL_AUDIT__HEAD_INTERVAL", "1s"),
    ]);
    create_key_api(&vigil, &vigil.token, json!({"roles": ["read"]})).await;
    let data_dir = data_dir_arg(vigil.data_dir());
    let printed = cli(&["audit", "head", "--data-dir", &data_dir]);
    let printed = printed.trim().to_string();
    let (seq, hash) = printed.split_once(':').expect("SEQ:HASH");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let published = loop {
        let sent = receiver.requests();
        if let Some(request) = sent
            .iter()
            .find(|r| r["body"]["checkpoint"] == printed.as_str())
        {
            break request.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{printed} not published: {sent:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    crate::alerts::assert_signed(&published);
    assert_eq!(published["body"]["kind"], "vigil.audit_head");
    assert_eq!(published["body"]["seq"], seq.parse::<u64>().unwrap());
    assert_eq!(published["body"]["hash"], hash);
    vigil.stop();

    // Rewritten whole: the same entries, one of them changed, every hash recomputed.
    let audit_dir = vigil.data_dir().join("audit");
    let entries = AuditLog::open(&audit_dir)
        .unwrap()
        .read(None, None, None, usize::MAX)
        .unwrap();
    std::fs::remove_dir_all(&audit_dir).unwrap();
    let rewritten = AuditLog::open(&audit_dir).unwrap();
    for (i, entry) in entries.into_iter().enumerate() {
        rewritten
            .append(AuditRecord {
                project_id: entry.project_id,
                key_id: entry.key_id,
                action: entry.action,
                parameters: entry.parameters,
                result_count: entry.result_count + u64::from(i == 0),
            })
            .unwrap();
    }
    let (ok, _, stderr) = audit_verify(vigil.data_dir());
    assert!(ok, "a whole rewrite verifies by itself: {stderr}");
    let (ok, _, stderr) = audit_verify_expecting(vigil.data_dir(), &[&printed]);
    assert!(!ok, "the published checkpoint must fail");
    assert!(stderr.contains("rewritten"), "{stderr}");
    assert!(stderr.contains(&format!("entry {seq}")), "{stderr}");
}
