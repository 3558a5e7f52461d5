//! RowBinary row types: what the sink inserts (borrowing from the model rows, no copies) and
//! what the query service fetches (owned, turned back into model rows). Field order is column
//! order ([`super::schema`]); enums travel as their `Enum8` codes.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::schema::SPAN_STATUSES;
use crate::model::{Outcome, RunRow, ScoreRow, SpanKind, SpanRow, SpanStatus};

/// `Enum8` codes are positions in the list, from 1 (see `schema::enum8`).
fn code_of<T: PartialEq>(all: &[T], value: &T) -> i8 {
    all.iter()
        .position(|v| v == value)
        .map_or(0, |i| i as i8 + 1)
}

fn value_of<T: Copy + Default>(all: &[T], code: i8) -> T {
    usize::try_from(code - 1)
        .ok()
        .and_then(|i| all.get(i).copied())
        .unwrap_or_default()
}

#[derive(Row, Serialize)]
pub struct RunInsert<'a> {
    project_id: &'a str,
    trace_id: &'a str,
    session_id: &'a str,
    user_hash: &'a str,
    task_type: &'a str,
    agent_name: &'a str,
    agent_version: &'a str,
    environment: &'a str,
    release: &'a str,
    start_time_ns: i64,
    end_time_ns: i64,
    outcome: i8,
    error_message: &'a str,
    input: &'a str,
    output: &'a str,
    tags: &'a [String],
    classification: &'a [String],
    retention: &'a str,
    audit_ref: &'a str,
    synthesized: u8,
    ingested_at_ns: i64,
}

impl<'a> From<&'a RunRow> for RunInsert<'a> {
    fn from(r: &'a RunRow) -> Self {
        RunInsert {
            project_id: &r.project_id,
            trace_id: &r.trace_id,
            session_id: &r.session_id,
            user_hash: &r.user_hash,
            task_type: &r.task_type,
            agent_name: &r.agent_name,
            agent_version: &r.agent_version,
            environment: &r.environment,
            release: &r.release,
            start_time_ns: r.start_time_ns,
            end_time_ns: r.end_time_ns,
            outcome: code_of(&Outcome::ALL, &r.outcome),
            error_message: &r.error_message,
            input: &r.input,
            output: &r.output,
            tags: &r.tags,
            classification: &r.classification,
            retention: &r.retention,
            audit_ref: &r.audit_ref,
            synthesized: r.synthesized as u8,
            ingested_at_ns: r.ingested_at_ns,
        }
    }
}

#[derive(Row, Deserialize)]
pub struct RunRecord {
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
    outcome: i8,
    error_message: String,
    input: String,
    output: String,
    tags: Vec<String>,
    classification: Vec<String>,
    retention: String,
    audit_ref: String,
    synthesized: u8,
    ingested_at_ns: i64,
}

impl From<RunRecord> for RunRow {
    fn from(r: RunRecord) -> Self {
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
            outcome: value_of(&Outcome::ALL, r.outcome),
            error_message: r.error_message,
            input: r.input,
            output: r.output,
            tags: r.tags,
            classification: r.classification,
            retention: r.retention,
            audit_ref: r.audit_ref,
            synthesized: r.synthesized != 0,
            ingested_at_ns: r.ingested_at_ns,
        }
    }
}

#[derive(Row, Serialize)]
pub struct SpanInsert<'a> {
    project_id: &'a str,
    trace_id: &'a str,
    span_id: &'a str,
    parent_span_id: &'a str,
    kind: i8,
    name: &'a str,
    start_time_ns: i64,
    end_time_ns: i64,
    status: i8,
    error_type: &'a str,
    status_message: &'a str,
    input: &'a str,
    output: &'a str,
    attr_keys: &'a [String],
    attr_values: &'a [String],
    provider: &'a str,
    model: &'a str,
    model_version: &'a str,
    prompt_id: &'a str,
    prompt_version: &'a str,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    cache_write_tokens: u64,
    reasoning_tokens: u64,
    cost_nanos: Option<i64>,
    cost_source: &'a str,
    tool_name: &'a str,
    tool_version: &'a str,
    tool_call_id: &'a str,
    tool_args_hash: &'a str,
    retry_count: u32,
    ingested_at_ns: i64,
}

impl<'a> From<&'a SpanRow> for SpanInsert<'a> {
    fn from(s: &'a SpanRow) -> Self {
        SpanInsert {
            project_id: &s.project_id,
            trace_id: &s.trace_id,
            span_id: &s.span_id,
            parent_span_id: &s.parent_span_id,
            kind: code_of(&SpanKind::ALL, &s.kind),
            name: &s.name,
            start_time_ns: s.start_time_ns,
            end_time_ns: s.end_time_ns,
            status: code_of(&SPAN_STATUSES, &s.status),
            error_type: &s.error_type,
            status_message: &s.status_message,
            input: &s.input,
            output: &s.output,
            attr_keys: &s.attr_keys,
            attr_values: &s.attr_values,
            provider: &s.provider,
            model: &s.model,
            model_version: &s.model_version,
            prompt_id: &s.prompt_id,
            prompt_version: &s.prompt_version,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cached_input_tokens: s.cached_input_tokens,
            cache_write_tokens: s.cache_write_tokens,
            reasoning_tokens: s.reasoning_tokens,
            cost_nanos: s.cost_nanos,
            cost_source: &s.cost_source,
            tool_name: &s.tool_name,
            tool_version: &s.tool_version,
            tool_call_id: &s.tool_call_id,
            tool_args_hash: &s.tool_args_hash,
            retry_count: s.retry_count,
            ingested_at_ns: s.ingested_at_ns,
        }
    }
}

#[derive(Row, Deserialize)]
pub struct SpanRecord {
    project_id: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    kind: i8,
    name: String,
    start_time_ns: i64,
    end_time_ns: i64,
    status: i8,
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

impl From<SpanRecord> for SpanRow {
    fn from(s: SpanRecord) -> Self {
        SpanRow {
            project_id: s.project_id,
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            kind: value_of(&SpanKind::ALL, s.kind),
            name: s.name,
            start_time_ns: s.start_time_ns,
            end_time_ns: s.end_time_ns,
            status: value_of::<SpanStatus>(&SPAN_STATUSES, s.status),
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

#[derive(Row, Serialize)]
pub struct ScoreInsert<'a> {
    project_id: &'a str,
    trace_id: &'a str,
    score_id: &'a str,
    span_id: &'a str,
    name: &'a str,
    value: Option<f64>,
    bool_value: Option<u8>,
    string_value: &'a str,
    source: &'a str,
    comment: &'a str,
    time_ns: i64,
    ingested_at_ns: i64,
}

impl<'a> From<&'a ScoreRow> for ScoreInsert<'a> {
    fn from(s: &'a ScoreRow) -> Self {
        ScoreInsert {
            project_id: &s.project_id,
            trace_id: &s.trace_id,
            score_id: &s.score_id,
            span_id: &s.span_id,
            name: &s.name,
            value: s.value,
            bool_value: s.bool_value.map(u8::from),
            string_value: &s.string_value,
            source: &s.source,
            comment: &s.comment,
            time_ns: s.time_ns,
            ingested_at_ns: s.ingested_at_ns,
        }
    }
}

#[derive(Row, Deserialize)]
pub struct ScoreRecord {
    project_id: String,
    trace_id: String,
    score_id: String,
    span_id: String,
    name: String,
    value: Option<f64>,
    bool_value: Option<u8>,
    string_value: String,
    source: String,
    comment: String,
    time_ns: i64,
    ingested_at_ns: i64,
}

impl From<ScoreRecord> for ScoreRow {
    fn from(s: ScoreRecord) -> Self {
        ScoreRow {
            project_id: s.project_id,
            trace_id: s.trace_id,
            score_id: s.score_id,
            span_id: s.span_id,
            name: s.name,
            value: s.value,
            bool_value: s.bool_value.map(|b| b != 0),
            string_value: s.string_value,
            source: s.source,
            comment: s.comment,
            time_ns: s.time_ns,
            ingested_at_ns: s.ingested_at_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clickhouse::schema::columns, layout::Table};

    fn names(table: Table) -> Vec<&'static str> {
        columns(table).iter().map(|(name, _)| *name).collect()
    }

    #[test]
    fn row_types_follow_the_column_lists() {
        assert_eq!(RunInsert::COLUMN_NAMES, names(Table::Runs));
        assert_eq!(RunRecord::COLUMN_NAMES, names(Table::Runs));
        assert_eq!(SpanInsert::COLUMN_NAMES, names(Table::Spans));
        assert_eq!(SpanRecord::COLUMN_NAMES, names(Table::Spans));
        assert_eq!(ScoreInsert::COLUMN_NAMES, names(Table::Scores));
        assert_eq!(ScoreRecord::COLUMN_NAMES, names(Table::Scores));
    }

    #[test]
    fn enum_codes_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(value_of(&Outcome::ALL, code_of(&Outcome::ALL, &o)), o);
        }
        for s in SPAN_STATUSES {
            assert_eq!(value_of(&SPAN_STATUSES, code_of(&SPAN_STATUSES, &s)), s);
        }
        assert_eq!(code_of(&SpanKind::ALL, &SpanKind::Model), 1);
    }
}
