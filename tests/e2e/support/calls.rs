//! The calls of a native test run, as spans: the `i`th model call and tool call of a run, each
//! numbered and timed within it, so that tests build runs of any shape the same way.

use vigil_proto::v1;

/// Model call `i` of the run `trace_id` started at `run_start_ns`: 1 µs long, starting 1 µs
/// (and `i` ns) after the run.
pub fn model_call(trace_id: &str, i: usize, run_start_ns: i64, call: v1::ModelCall) -> v1::Span {
    v1::Span {
        trace_id: trace_id.into(),
        span_id: format!("{:016x}", 0x100 + i),
        kind: v1::SpanKind::Model as i32,
        name: "llm".into(),
        start_time_unix_nano: run_start_ns + 1_000 + i as i64,
        end_time_unix_nano: run_start_ns + 2_000 + i as i64,
        model: Some(call),
        ..Default::default()
    }
}

/// Tool call `i` (of the tool `search`) of the run `trace_id` started at `run_start_ns`, failed
/// or not: 1 µs long, starting 3 µs (and `i` ns) after the run.
pub fn tool_call(trace_id: &str, i: usize, run_start_ns: i64, failed: bool) -> v1::Span {
    v1::Span {
        trace_id: trace_id.into(),
        span_id: format!("{:016x}", 0x200 + i),
        kind: v1::SpanKind::Tool as i32,
        name: "tool".into(),
        start_time_unix_nano: run_start_ns + 3_000 + i as i64,
        end_time_unix_nano: run_start_ns + 4_000 + i as i64,
        status: if failed {
            v1::SpanStatus::Error
        } else {
            v1::SpanStatus::Ok
        } as i32,
        tool: Some(v1::ToolCall {
            name: "search".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
