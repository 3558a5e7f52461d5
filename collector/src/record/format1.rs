//! Format 1: bincode (1.x, default options) of the row types as the first release defined them.
//!
//! bincode is positional and carries no field names, so these types are a frozen copy of that
//! release's `IngestBatch`, `RunRow`, `SpanRow` and `ScoreRow`: same fields, same order, same
//! types, same enum variant order. They must never change; the live row types may.

use serde::Deserialize;
use vigil_schemas::{IngestBatch, Outcome, RunRow, ScoreRow, SpanKind, SpanRow, SpanStatus};

pub fn decode(body: &[u8]) -> Result<IngestBatch, String> {
    let batch: Batch = bincode::deserialize(body).map_err(|e| e.to_string())?;
    Ok(IngestBatch {
        runs: batch.runs.into_iter().map(RunRow::from).collect(),
        spans: batch.spans.into_iter().map(SpanRow::from).collect(),
        scores: batch.scores.into_iter().map(ScoreRow::from).collect(),
    })
}

#[derive(Deserialize)]
struct Batch {
    runs: Vec<Run>,
    spans: Vec<Span>,
    scores: Vec<Score>,
}

#[derive(Deserialize)]
enum Outcome1 {
    Success,
    Failure,
    Partial,
    Timeout,
    Cancelled,
}

#[derive(Deserialize)]
enum SpanKind1 {
    Model,
    Tool,
    Retrieval,
    Agent,
    Other,
}

#[derive(Deserialize)]
enum SpanStatus1 {
    Unset,
    Ok,
    Error,
}

#[derive(Deserialize)]
struct Run {
    project_id: String,
    trace_id: String,
    session_id: String,
    user_hash: String,
    task_type: String,
    agent_name: String,
    agent_version: String,
    environment: String,
    release: String,
    start_time_ns: i64,
    end_time_ns: i64,
    outcome: Outcome1,
    error_message: String,
    input: String,
    output: String,
    tags: Vec<String>,
    classification: Vec<String>,
    retention: String,
    audit_ref: String,
    synthesized: bool,
    ingested_at_ns: i64,
}

#[derive(Deserialize)]
struct Span {
    project_id: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    kind: SpanKind1,
    name: String,
    start_time_ns: i64,
    end_time_ns: i64,
    status: SpanStatus1,
    error_type: String,
    status_message: String,
    input: String,
    output: String,
    attr_keys: Vec<String>,
    attr_values: Vec<String>,
    provider: String,
    model: String,
    model_version: String,
    prompt_id: String,
    prompt_version: String,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    cache_write_tokens: u64,
    reasoning_tokens: u64,
    cost_nanos: Option<i64>,
    cost_source: String,
    tool_name: String,
    tool_version: String,
    tool_call_id: String,
    tool_args_hash: String,
    retry_count: u32,
    ingested_at_ns: i64,
}

#[derive(Deserialize)]
struct Score {
    project_id: String,
    trace_id: String,
    score_id: String,
    span_id: String,
    name: String,
    value: Option<f64>,
    bool_value: Option<bool>,
    string_value: String,
    source: String,
    comment: String,
    time_ns: i64,
    ingested_at_ns: i64,
}

impl From<Outcome1> for Outcome {
    fn from(outcome: Outcome1) -> Outcome {
        match outcome {
            Outcome1::Success => Outcome::Success,
            Outcome1::Failure => Outcome::Failure,
            Outcome1::Partial => Outcome::Partial,
            Outcome1::Timeout => Outcome::Timeout,
            Outcome1::Cancelled => Outcome::Cancelled,
        }
    }
}

impl From<SpanKind1> for SpanKind {
    fn from(kind: SpanKind1) -> SpanKind {
        match kind {
            SpanKind1::Model => SpanKind::Model,
            SpanKind1::Tool => SpanKind::Tool,
            SpanKind1::Retrieval => SpanKind::Retrieval,
            SpanKind1::Agent => SpanKind::Agent,
            SpanKind1::Other => SpanKind::Other,
        }
    }
}

impl From<SpanStatus1> for SpanStatus {
    fn from(status: SpanStatus1) -> SpanStatus {
        match status {
            SpanStatus1::Unset => SpanStatus::Unset,
            SpanStatus1::Ok => SpanStatus::Ok,
            SpanStatus1::Error => SpanStatus::Error,
        }
    }
}

impl From<Run> for RunRow {
    fn from(r: Run) -> RunRow {
        RunRow {
            project_id: r.project_id,
            trace_id: r.trace_id,
            session_id: r.session_id,
            user_hash: r.user_hash,
            task_type: r.task_type,
            agent_name: r.agent_name,
            agent_version: r.agent_version,
            environment: r.environment,
            release: r.release,
            start_time_ns: r.start_time_ns,
            end_time_ns: r.end_time_ns,
            outcome: r.outcome.into(),
            error_message: r.error_message,
            input: r.input,
            output: r.output,
            tags: r.tags,
            classification: r.classification,
            retention: r.retention,
            audit_ref: r.audit_ref,
            synthesized: r.synthesized,
            ingested_at_ns: r.ingested_at_ns,
        }
    }
}

impl From<Span> for SpanRow {
    fn from(s: Span) -> SpanRow {
        SpanRow {
            project_id: s.project_id,
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            kind: s.kind.into(),
            name: s.name,
            start_time_ns: s.start_time_ns,
            end_time_ns: s.end_time_ns,
            status: s.status.into(),
            error_type: s.error_type,
            status_message: s.status_message,
            input: s.input,
            output: s.output,
            attr_keys: s.attr_keys,
            attr_values: s.attr_values,
            provider: s.provider,
            model: s.model,
            model_version: s.model_version,
            prompt_id: s.prompt_id,
            prompt_version: s.prompt_version,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cached_input_tokens: s.cached_input_tokens,
            cache_write_tokens: s.cache_write_tokens,
            reasoning_tokens: s.reasoning_tokens,
            cost_nanos: s.cost_nanos,
            cost_source: s.cost_source,
            tool_name: s.tool_name,
            tool_version: s.tool_version,
            tool_call_id: s.tool_call_id,
            tool_args_hash: s.tool_args_hash,
            retry_count: s.retry_count,
            ingested_at_ns: s.ingested_at_ns,
        }
    }
}

impl From<Score> for ScoreRow {
    fn from(s: Score) -> ScoreRow {
        ScoreRow {
            project_id: s.project_id,
            trace_id: s.trace_id,
            score_id: s.score_id,
            span_id: s.span_id,
            name: s.name,
            value: s.value,
            bool_value: s.bool_value,
            string_value: s.string_value,
            source: s.source,
            comment: s.comment,
            time_ns: s.time_ns,
            ingested_at_ns: s.ingested_at_ns,
        }
    }
}
