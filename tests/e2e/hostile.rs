//! Hostile and broken input against the real server: malformed protobuf, invalid UTF-8, oversized
//! bodies, 10,000 attributes, absurd timestamps, too many items. Each gets a clear error naming
//! the field and the limit, valid items beside them are kept, and the server keeps serving.

use crate::support;

use std::time::Duration;

use prost::Message;
use serde_json::Value;
use support::{Store, Vigil};
use vigil_proto::{
    otlp::{
        collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
        common::v1::{AnyValue, KeyValue, any_value},
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    },
    v1,
};

fn now_ns() -> u64 {
    vigil_schemas::time::now_ns() as u64
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn span(trace: u8, id: u8, start: u64, end: u64, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: format!("span-{id}"),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post_otlp(vigil: &Vigil, body: Vec<u8>, content_type: &str) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/traces", vigil.http()))
        .bearer_auth(&vigil.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

fn error_of(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["error"].clone()
}

async fn broken_bodies_get_clear_errors_and_the_server_keeps_serving(store: Store) {
    let vigil = Vigil::start_on_with(store, &[("VIGIL_LIMITS__MAX_MESSAGE_BYTES", "1048576")]);

    let (status, body) = post_otlp(
        &vigil,
        b"\xff\x00garbage\x13".to_vec(),
        "application/x-protobuf",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error_of(&body)["message"]
            .as_str()
            .unwrap()
            .contains("not a valid OTLP protobuf")
    );

    // A span name holding invalid UTF-8: request{resource_spans{scope_spans{spans{name: ff fe}}}}.
    let invalid_utf8 = vec![0x0a, 0x08, 0x12, 0x06, 0x12, 0x04, 0x2a, 0x02, 0xff, 0xfe];
    let (status, body) = post_otlp(&vigil, invalid_utf8, "application/x-protobuf").await;
    assert_eq!(status, 400);
    assert!(
        error_of(&body)["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8"),
        "{:?}",
        error_of(&body)
    );

    let (status, body) = post_otlp(
        &vigil,
        b"{\"resourceSpans\": 7}".to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    // OTLP/JSON messages are objects: an array in a message's place is not an empty request.
    for array in ["[]", r#"{"resourceSpans": [[]]}"#] {
        let (status, body) = post_otlp(&vigil, array.into(), "application/json").await;
        assert_eq!(status, 400, "{array}: {}", String::from_utf8_lossy(&body));
        assert_eq!(error_of(&body)["field"], "body", "{array}");
    }

    let (status, _) = post_otlp(&vigil, b"hello".to_vec(), "text/plain").await;
    assert_eq!(status, 415);

    let oversized = vec![0u8; 2 * 1024 * 1024];
    let (status, body) = post_otlp(&vigil, oversized, "application/x-protobuf").await;
    assert_eq!(status, 413);
    assert!(
        error_of(&body)["message"]
            .as_str()
            .unwrap()
            .contains("1048576")
    );

    let bad_gzip = reqwest::Client::new()
        .post(format!("{}/v1/traces", vigil.http()))
        .bearer_auth(&vigil.token)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(b"definitely not gzip".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(bad_gzip.status(), 400);

    // gRPC: a message over the limit is refused by the transport with the limit in the message.
    let huge = v1::ExportRequest {
        runs: vec![v1::Run {
            input: "x".repeat(2 * 1024 * 1024),
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = vigil
        .export_native_as(&vigil.token, huge)
        .await
        .unwrap_err();
    assert!(err.message().contains("1048576"), "{err:?}");

    // Still serving.
    let (status, _) = vigil.get("/healthz").await;
    assert_eq!(status, 200);
    let now = now_ns();
    let ok = request(vec![span(9, 1, now - 1_000_000, now, vec![])]);
    let (status, _) = post_otlp(&vigil, ok.encode_to_vec(), "application/x-protobuf").await;
    assert_eq!(status, 200);
}

async fn invalid_spans_are_reported_and_valid_neighbours_kept(store: Store) {
    let vigil = Vigil::start_on(store);
    let now = now_ns();
    let many_attributes: Vec<KeyValue> = (0..10_000).map(|i| kv(&format!("k{i}"), "v")).collect();
    let year = 365 * 86_400 * 1_000_000_000u64;
    let spans = vec![
        span(
            1,
            1,
            now - 2_000_000,
            now,
            vec![kv("gen_ai.request.model", "gpt-4o")],
        ),
        span(2, 1, now - 2_000_000, now, many_attributes),
        span(3, 1, now - 30 * year, now - 30 * year + 10, vec![]),
        span(4, 1, now, now - 1_000, vec![]),
        span(5, 1, now + 5 * year, now + 5 * year, vec![]),
    ];
    let (status, body) = post_otlp(
        &vigil,
        request(spans).encode_to_vec(),
        "application/x-protobuf",
    )
    .await;
    assert_eq!(status, 200);
    let response = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 4);
    let message = partial.error_message;
    assert!(
        message.contains("spans[1] span.attributes: 10000 attributes, the limit is 512"),
        "{message}"
    );
    assert!(message.contains("spans[2] span.start_time"), "{message}");
    assert!(message.contains("spans[3] span.end_time"), "{message}");
    assert!(message.contains("spans[4] span.start_time"), "{message}");

    // The valid span was kept.
    let trace = "01".repeat(16);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = vigil.get(&format!("/api/v1/runs/{trace}")).await;
        // On ClickHouse the run and its spans are separate inserts: the run may be readable a
        // moment before its span.
        let spans = body["spans"].as_array().map_or(0, Vec::len);
        if status == 200 && spans > 0 {
            assert_eq!(spans, 1, "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Native: item-level rejections name the item, the field and the limit.
    let bad = v1::ExportRequest {
        runs: vec![v1::Run {
            trace_id: "xyz".into(),
            start_time_unix_nano: now as i64,
            end_time_unix_nano: now as i64,
            ..Default::default()
        }],
        spans: vec![v1::Span {
            trace_id: "ab".repeat(16),
            span_id: "cd".repeat(8),
            name: "n".repeat(300),
            start_time_unix_nano: now as i64 - 10,
            end_time_unix_nano: now as i64,
            ..Default::default()
        }],
        ..Default::default()
    };
    let response = vigil.export_native(bad).await;
    assert_eq!(response.accepted_runs + response.accepted_spans, 0);
    let fields: Vec<&str> = response
        .rejections
        .iter()
        .map(|r| r.field.as_str())
        .collect();
    assert_eq!(fields, vec!["run.trace_id", "span.name"], "{response:?}");
    assert!(
        response.rejections[1]
            .reason
            .contains("300 bytes, the limit is 256"),
        "{response:?}"
    );

    // More items than a request may carry: the whole request is refused, naming the limit.
    let too_many = v1::ExportRequest {
        scores: (0..10_001).map(|_| v1::Score::default()).collect(),
        ..Default::default()
    };
    let err = vigil
        .export_native_as(&vigil.token, too_many)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message()
            .contains("10001 items in one request, the limit is 10000"),
        "{err:?}"
    );
}

/// A trace whose root span has not come has no run, so no classification yet: its spans'
/// content is shown to auditors only, never to a key that may not see classified content.
async fn spans_without_their_run_are_redacted_for_readers(store: Store) {
    let vigil = Vigil::start_on(store);
    let now = now_ns();
    let mut child = span(
        0x5e,
        2,
        now - 2_000_000,
        now - 1_000_000,
        vec![kv("input.value", "the customer's card number")],
    );
    child.parent_span_id = vec![1; 8];
    let (status, body) = post_otlp(
        &vigil,
        request(vec![child]).encode_to_vec(),
        "application/x-protobuf",
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let trace_id = "5e".repeat(16);
    let path = format!("/api/v1/runs/{trace_id}");
    let seen = vigil.wait_trace(&trace_id, 1, false).await;
    assert!(seen["run"].is_null(), "{seen}");
    assert_eq!(seen["spans"][0]["input"], "the customer's card number");
    let reader = vigil.create_key("read");
    let (status, redacted) = vigil.get_as(&path, &reader.token).await;
    assert_eq!(status, 200, "{redacted}");
    assert_eq!(redacted["spans"][0]["input"], "[redacted]", "{redacted}");
    let auditor = vigil.create_key("read,audit");
    let (_, audited) = vigil.get_as(&path, &auditor.token).await;
    assert_eq!(audited["spans"][0]["input"], "the customer's card number");
}

on_both_stores!(
    broken_bodies_get_clear_errors_and_the_server_keeps_serving,
    invalid_spans_are_reported_and_valid_neighbours_kept,
    spans_without_their_run_are_redacted_for_readers,
);
