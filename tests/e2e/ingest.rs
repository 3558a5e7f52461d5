//! End to end, with the real binary over real sockets: native gRPC, OTLP from the real Python
//! OpenTelemetry SDK over gRPC and HTTP, the Langfuse-compatible path, roles, and read-back equal
//! to what was sent.

use crate::support;

use std::process::Command;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use support::{Store, Vigil, authed, python};
use vigil_proto::v1::{self, ExportRequest, ingest_service_client::IngestServiceClient};
use vigil_schemas::time::now_ns;

/// The user hash computed here, independently: HMAC-SHA256 under the server's key file.
pub(crate) fn expected_user_hash(vigil: &Vigil, raw: &str) -> String {
    let key = std::fs::read_to_string(vigil.data_dir().join("user-hash.key")).unwrap();
    let key = hex::decode(key.trim()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(raw.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn hex_id(seed: u64, bytes: usize) -> String {
    let mut s = String::new();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while s.len() < bytes * 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(bytes * 2);
    s
}

fn native_run(seed: u64, start: i64) -> (v1::Run, Vec<v1::Span>) {
    let trace_id = hex_id(seed, 16);
    let root = hex_id(seed + 1_000_000, 8);
    let run = v1::Run {
        trace_id: trace_id.clone(),
        session_id: format!("session-{}", seed % 7),
        user_id: format!("person-{seed}@example.com"),
        task_type: "refund_request".into(),
        agent_name: "support-bot".into(),
        agent_version: "1.4.0".into(),
        environment: "production".into(),
        release: "2026.11.2".into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 2_000_000_000,
        outcome: v1::Outcome::Success as i32,
        input: "where is my refund?".into(),
        output: "on its way".into(),
        tags: vec!["beta".into()],
        classification: vec!["financial".into()],
        retention: "default".into(),
        ..Default::default()
    };
    let spans = vec![
        v1::Span {
            trace_id: trace_id.clone(),
            span_id: root.clone(),
            kind: v1::SpanKind::Agent as i32,
            name: "support-bot.run".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 2_000_000_000,
            status: v1::SpanStatus::Ok as i32,
            ..Default::default()
        },
        v1::Span {
            trace_id: trace_id.clone(),
            span_id: hex_id(seed + 2_000_000, 8),
            parent_span_id: root.clone(),
            kind: v1::SpanKind::Model as i32,
            name: "chat gpt-4o".into(),
            start_time_unix_nano: start + 100_000_000,
            end_time_unix_nano: start + 1_100_000_000,
            status: v1::SpanStatus::Ok as i32,
            model: Some(v1::ModelCall {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                prompt_id: "refund-policy".into(),
                prompt_version: "v7".into(),
                input_tokens: 1000,
                output_tokens: 200,
                cached_input_tokens: 400,
                ..Default::default()
            }),
            ..Default::default()
        },
        v1::Span {
            trace_id: trace_id.clone(),
            span_id: hex_id(seed + 3_000_000, 8),
            parent_span_id: root,
            kind: v1::SpanKind::Tool as i32,
            name: "lookup_order".into(),
            start_time_unix_nano: start + 1_200_000_000,
            end_time_unix_nano: start + 1_500_000_000,
            status: v1::SpanStatus::Error as i32,
            status_message: "order service timed out".into(),
            tool: Some(v1::ToolCall {
                name: "lookup_order".into(),
                version: "3".into(),
                arguments: "{\"order\": 42}".into(),
                retry_count: 2,
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    (run, spans)
}

async fn native_grpc_round_trip(store: Store) {
    let vigil = Vigil::start_on(store);
    let mut client = IngestServiceClient::connect(vigil.grpc()).await.unwrap();
    let start = now_ns() - 60_000_000_000;
    let (run, spans) = native_run(1, start);
    let score = v1::Score {
        trace_id: run.trace_id.clone(),
        name: "user_feedback".into(),
        value: Some(v1::score::Value::Boolean(true)),
        source: "end_user".into(),
        ..Default::default()
    };
    let response = client
        .export(authed(
            ExportRequest {
                runs: vec![run.clone()],
                spans: spans.clone(),
                scores: vec![score],
            },
            &vigil.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            response.accepted_runs,
            response.accepted_spans,
            response.accepted_scores
        ),
        (1, 3, 1),
        "{response:?}"
    );
    assert!(response.rejections.is_empty());

    let mut body = vigil.wait_run(&run.trace_id, 3).await;
    // A batch's tables are written one after another: its score may be readable after its run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while body["scores"]
        .as_array()
        .is_none_or(|scores| scores.is_empty())
    {
        assert!(std::time::Instant::now() < deadline, "no score: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        body = vigil.wait_run(&run.trace_id, 3).await;
    }
    let got = &body["run"];
    assert_eq!(got["session_id"], run.session_id.as_str());
    assert_eq!(got["agent_name"], "support-bot");
    assert_eq!(got["task_type"], "refund_request");
    assert_eq!(got["start_time_ns"], start);
    assert_eq!(got["outcome"], "success");
    assert_eq!(got["classification"][0], "financial");
    assert_eq!(
        got["input"], "where is my refund?",
        "an admin key sees content"
    );
    let user_hash = expected_user_hash(&vigil, &run.user_id);
    assert_eq!(got["user_hash"], user_hash.as_str());
    assert!(
        !body.to_string().contains("person-1@example.com"),
        "raw user ids are never stored"
    );

    let spans_back = body["spans"].as_array().unwrap();
    assert_eq!(
        spans_back[0]["span_id"],
        spans[0].span_id.as_str(),
        "root first (tree order)"
    );
    let model = spans_back.iter().find(|s| s["kind"] == "model").unwrap();
    // gpt-4o since 2024-10-01: input $2.50, cached input $1.25, output $10.00 per million tokens.
    let expected_cost = 600 * 2_500 + 400 * 1_250 + 200 * 10_000;
    assert_eq!(model["cost_nanos"], expected_cost);
    assert_eq!(model["cost_source"], "catalog");
    assert_eq!(model["prompt_version"], "v7");
    let tool = spans_back.iter().find(|s| s["kind"] == "tool").unwrap();
    assert_eq!(tool["status"], "error");
    assert_eq!(tool["retry_count"], 2);
    assert_eq!(tool["tool_args_hash"].as_str().unwrap().len(), 16);
    assert_eq!(body["scores"][0]["bool_value"], true);

    // The same export again (an SDK retry) is stored once.
    client
        .export(authed(
            ExportRequest {
                runs: vec![run.clone()],
                spans: spans.clone(),
                scores: vec![],
            },
            &vigil.token,
        ))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let body = vigil.wait_run(&run.trace_id, 3).await;
    assert_eq!(body["spans"].as_array().unwrap().len(), 3);
    let (_, list) = vigil.get("/api/v1/runs?agent=support-bot").await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);
    let (status, session) = vigil
        .get(&format!("/api/v1/sessions/{}", run.session_id))
        .await;
    assert_eq!(status, 200);
    assert_eq!(session["runs"].as_array().unwrap().len(), 1);
}

async fn roles_separate_ingest_from_reading_and_redact_content(store: Store) {
    let vigil = Vigil::start_on(store);
    let ingest_only = vigil.create_key("ingest").token;
    let read_only = vigil.create_key("read").token;
    let mut client = IngestServiceClient::connect(vigil.grpc()).await.unwrap();
    let (run, spans) = native_run(2, now_ns() - 10_000_000_000);

    let denied = client
        .export(authed(
            ExportRequest {
                runs: vec![run.clone()],
                spans: spans.clone(),
                scores: vec![],
            },
            &read_only,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let unauthenticated = client
        .export(authed(ExportRequest::default(), "vk_0000_nope"))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);

    client
        .export(authed(
            ExportRequest {
                runs: vec![run.clone()],
                spans,
                scores: vec![],
            },
            &ingest_only,
        ))
        .await
        .unwrap();
    let (status, body) = vigil
        .get_as(&format!("/api/v1/runs/{}", run.trace_id), &ingest_only)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "permission_denied");
    vigil.wait_run(&run.trace_id, 3).await;
    let (status, body) = vigil
        .get_as(&format!("/api/v1/runs/{}", run.trace_id), &read_only)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["run"]["input"], "[redacted]",
        "financial content needs the audit role"
    );
    let (status, _) = vigil.get_as("/api/v1/runs", "wrong").await;
    assert_eq!(status, 401);
}

/// Sends `runs` runs with the Python SDK's OTLP exporter; `args` carry the key (`--token` or
/// `--basic`) and any `--root-attribute`.
pub(crate) fn send_with_python(
    vigil: &Vigil,
    protocol: &str,
    endpoint: &str,
    args: &[&str],
    runs: usize,
) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otel/send_traces.py");
    let out = Command::new(python())
        .arg(script)
        .args([
            "--protocol",
            protocol,
            "--endpoint",
            endpoint,
            "--runs",
            &runs.to_string(),
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python exporter failed: {}\nvigil log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        vigil.log()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) async fn check_python_runs(vigil: &Vigil, sent: &Value) {
    assert_eq!(sent["flushed"], true);
    for run in sent["runs"].as_array().unwrap() {
        let trace_id = run["trace_id"].as_str().unwrap();
        let body = vigil.wait_run(trace_id, 3).await;
        let got = &body["run"];
        assert_eq!(got["session_id"], run["session_id"]);
        assert_eq!(got["agent_name"], "support-bot");
        assert_eq!(got["agent_version"], "1.4.0");
        assert_eq!(got["task_type"], "refund_request");
        assert_eq!(got["environment"], "production", "from the resource");
        assert_eq!(
            got["release"], "2026.11.2",
            "service.version from the resource"
        );
        assert_eq!(got["classification"][0], "pii");
        assert_eq!(got["synthesized"], false);
        let user_hash = expected_user_hash(vigil, run["user_id"].as_str().unwrap());
        assert_eq!(got["user_hash"], user_hash.as_str());
        let spans = body["spans"].as_array().unwrap();
        assert_eq!(spans[0]["span_id"], run["spans"]["root"]);
        assert_eq!(spans[0]["kind"], "agent");
        let llm = spans
            .iter()
            .find(|s| s["span_id"] == run["spans"]["llm"])
            .unwrap();
        assert_eq!(llm["kind"], "model");
        assert_eq!(llm["model"], "gpt-4o");
        assert_eq!(llm["provider"], "openai");
        assert_eq!(llm["input_tokens"], run["input_tokens"]);
        assert_eq!(llm["output_tokens"], run["output_tokens"]);
        assert_eq!(llm["prompt_id"], "refund-policy");
        assert_eq!(llm["prompt_version"], "v7");
        assert_eq!(llm["attributes"]["custom.flag"], "kept");
        let input = run["input_tokens"].as_i64().unwrap();
        let output = run["output_tokens"].as_i64().unwrap();
        assert_eq!(llm["cost_nanos"], input * 2_500 + output * 10_000);
        let tool = spans
            .iter()
            .find(|s| s["span_id"] == run["spans"]["tool"])
            .unwrap();
        assert_eq!(tool["kind"], "tool");
        assert_eq!(tool["tool_name"], "lookup_order");
        let failed = run["tool_failed"].as_bool().unwrap();
        assert_eq!(tool["status"], if failed { "error" } else { "unset" });
    }
}

async fn python_sdk_over_otlp_grpc_and_http(store: Store) {
    let vigil = Vigil::start_on(store);
    let auth = ["--token", vigil.token.as_str()];
    let sent = send_with_python(&vigil, "grpc", &vigil.grpc(), &auth, 4);
    check_python_runs(&vigil, &sent).await;
    let endpoint = format!("{}/v1/traces", vigil.http());
    let sent = send_with_python(&vigil, "http", &endpoint, &auth, 4);
    check_python_runs(&vigil, &sent).await;
}

async fn langfuse_compatible_path_with_basic_auth(store: Store) {
    let vigil = Vigil::start_on(store);
    let key = vigil.create_key("ingest,read");
    let (id, secret) = (key.id, key.secret);
    let basic = format!("{id}:{secret}");

    let response = reqwest::Client::new()
        .get(format!("{}/api/public/projects", vigil.http()))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let projects: Value = response.json().await.unwrap();
    assert_eq!(projects["data"][0]["id"], "default");

    let endpoint = format!("{}/api/public/otel/v1/traces", vigil.http());
    let sent = send_with_python(&vigil, "http", &endpoint, &["--basic", &basic], 2);
    check_python_runs(&vigil, &sent).await;
}

/// Newer versions sent later move runs in the list (an earlier start), take them out of an agent
/// filter, or out of a model filter (their model call now names another model). The newest
/// positions then hold superseded versions: every page still lists each run once, where its
/// newest version is, and only when that version matches; a small page walks the same runs.
async fn newer_versions_move_runs_in_the_run_list(store: Store) {
    let vigil = Vigil::start_on(store);
    let base = now_ns() - 3_600_000_000_000;
    let version = |n: i64, newer: bool| {
        let trace_id = format!("{:032x}", 0xbeef_0000 + n);
        // The first versions are the newest positions; a newer version starts an hour earlier.
        let start = if newer {
            base - n * 1_000_000_000
        } else {
            base + n * 1_000_000_000
        };
        let run = v1::Run {
            trace_id: trace_id.clone(),
            agent_name: if newer && n % 2 == 1 {
                "router"
            } else {
                "planner"
            }
            .into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_000_000_000,
            outcome: v1::Outcome::Success as i32,
            ..Default::default()
        };
        let span = v1::Span {
            trace_id,
            span_id: "00000000000000aa".into(),
            kind: v1::SpanKind::Model as i32,
            name: "llm".into(),
            start_time_unix_nano: start + 1_000,
            end_time_unix_nano: start + 2_000,
            model: Some(v1::ModelCall {
                model: if newer && n % 3 == 0 {
                    "small"
                } else {
                    "large"
                }
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        ExportRequest {
            runs: vec![run],
            spans: vec![span],
            scores: Vec::new(),
        }
    };
    for newer in [false, true] {
        for n in 0..12 {
            let response = vigil.export_native(version(n, newer)).await;
            assert!(response.rejections.is_empty(), "{:?}", response.rejections);
        }
        support::conformance::wait_drained(&vigil).await;
    }
    // Expected, from what was sent: the newer versions, newest start first.
    let ids = |pick: &dyn Fn(i64) -> bool| -> Vec<String> {
        (0..12)
            .filter(|n| pick(*n))
            .map(|n| format!("{:032x}", 0xbeef_0000 + n))
            .collect()
    };
    let listed = |runs: &[Value]| -> Vec<String> {
        runs.iter()
            .map(|r| r["trace_id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = vigil.list_all_runs("").await;
    assert_eq!(listed(&all), ids(&|_| true));
    assert_eq!(
        listed(&vigil.list_all_runs("agent=planner").await),
        ids(&|n| n % 2 == 0)
    );
    assert_eq!(
        listed(&vigil.list_all_runs("model=large").await),
        ids(&|n| n % 3 != 0)
    );
    assert_eq!(
        listed(&vigil.list_all_runs("model=small").await),
        ids(&|n| n % 3 == 0)
    );
    // Pages of two walk the same runs.
    let mut walked = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = vigil
            .get(&format!("/api/v1/runs?limit=2&agent=planner{cursor}"))
            .await;
        assert_eq!(status, 200, "{page}");
        walked.extend(listed(page["runs"].as_array().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(walked, ids(&|n| n % 2 == 0));
}

on_both_stores!(
    newer_versions_move_runs_in_the_run_list,
    native_grpc_round_trip,
    roles_separate_ingest_from_reading_and_redact_content,
    python_sdk_over_otlp_grpc_and_http,
    langfuse_compatible_path_with_basic_auth,
);
