//! Format 2: protobuf `vigil.wal.v1.Batch`. The conversions between the row types and the
//! messages; a row field added later needs a field number in `record.proto` and a line here
//! (the round-trip test in `record/mod.rs` fails until both exist).

use prost::Message;
use vigil_proto::wal::v1 as pb;
use vigil_schemas::{IngestBatch, Outcome, RunRow, ScoreRow, SpanKind, SpanRow, SpanStatus};

/// Encodes a batch it owns and gives it back: the rows move into the message and out again, so
/// no text is copied on the ingest path.
pub fn encode(batch: IngestBatch) -> (Vec<u8>, IngestBatch) {
    let outcomes: Vec<Outcome> = batch.runs.iter().map(|r| r.outcome).collect();
    let kinds: Vec<(SpanKind, SpanStatus)> =
        batch.spans.iter().map(|s| (s.kind, s.status)).collect();
    let message = pb::Batch {
        runs: batch.runs.into_iter().map(run_message).collect(),
        spans: batch.spans.into_iter().map(span_message).collect(),
        scores: batch.scores.into_iter().map(score_message).collect(),
    };
    let bytes = message.encode_to_vec();
    let batch = IngestBatch {
        runs: message
            .runs
            .into_iter()
            .zip(outcomes)
            .map(|(run, outcome)| run_row(run, outcome))
            .collect(),
        spans: message
            .spans
            .into_iter()
            .zip(kinds)
            .map(|(span, (kind, status))| span_row(span, kind, status))
            .collect(),
        scores: message.scores.into_iter().map(score_row).collect(),
    };
    (bytes, batch)
}

pub fn decode(body: &[u8]) -> Result<IngestBatch, String> {
    let batch = pb::Batch::decode(body).map_err(|e| e.to_string())?;
    let runs = batch
        .runs
        .into_iter()
        .map(|run| {
            let outcome = outcome(run.outcome)?;
            Ok(run_row(run, outcome))
        })
        .collect::<Result<_, String>>()?;
    let spans = batch
        .spans
        .into_iter()
        .map(|span| {
            let (kind, status) = (kind(span.kind)?, status(span.status)?);
            if span.attr_keys.len() != span.attr_values.len() {
                return Err(format!(
                    "span {:?} has {} attribute keys and {} values",
                    span.span_id,
                    span.attr_keys.len(),
                    span.attr_values.len()
                ));
            }
            Ok(span_row(span, kind, status))
        })
        .collect::<Result<_, String>>()?;
    Ok(IngestBatch {
        runs,
        spans,
        scores: batch.scores.into_iter().map(score_row).collect(),
    })
}

/// A row enum's wire numbers, both ways, from one list of its variants (named alike in the
/// row type and in `record.proto`): `$to_wire` for encoding, `$from_wire` for decoding, which
/// refuses a number this binary does not know (0, unspecified, included).
macro_rules! wire_enum {
    ($name:ident, $to_wire:ident, $from_wire:ident, $what:literal, [$($variant:ident),+ $(,)?]) => {
        fn $to_wire(value: $name) -> pb::$name {
            match value {
                $($name::$variant => pb::$name::$variant,)+
            }
        }

        fn $from_wire(number: i32) -> Result<$name, String> {
            match pb::$name::try_from(number) {
                $(Ok(pb::$name::$variant) => Ok($name::$variant),)+
                _ => Err(format!(concat!("unknown ", $what, " {}"), number)),
            }
        }
    };
}

wire_enum!(
    Outcome,
    outcome_number,
    outcome,
    "run outcome",
    [Success, Failure, Partial, Timeout, Cancelled]
);
wire_enum!(
    SpanKind,
    kind_number,
    kind,
    "span kind",
    [Model, Tool, Retrieval, Agent, Other]
);
wire_enum!(
    SpanStatus,
    status_number,
    status,
    "span status",
    [Unset, Ok, Error]
);

fn run_message(r: RunRow) -> pb::Run {
    pb::Run {
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
        outcome: outcome_number(r.outcome).into(),
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

fn run_row(r: pb::Run, outcome: Outcome) -> RunRow {
    RunRow {
        outcome,
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

fn span_message(s: SpanRow) -> pb::Span {
    pb::Span {
        project_id: s.project_id,
        trace_id: s.trace_id,
        span_id: s.span_id,
        parent_span_id: s.parent_span_id,
        kind: kind_number(s.kind).into(),
        name: s.name,
        start_time_ns: s.start_time_ns,
        end_time_ns: s.end_time_ns,
        status: status_number(s.status).into(),
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

fn span_row(s: pb::Span, kind: SpanKind, status: SpanStatus) -> SpanRow {
    SpanRow {
        kind,
        status,
        project_id: s.project_id,
        trace_id: s.trace_id,
        span_id: s.span_id,
        parent_span_id: s.parent_span_id,
        name: s.name,
        start_time_ns: s.start_time_ns,
        end_time_ns: s.end_time_ns,
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

fn score_message(s: ScoreRow) -> pb::Score {
    pb::Score {
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

fn score_row(s: pb::Score) -> ScoreRow {
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
