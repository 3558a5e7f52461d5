//! Arrow schemas of the three tables and the conversions between rows and record batches.
//! The embedded store writes these batches to Parquet; the query service reads them back.
//! Column names equal the row field names and the ClickHouse column names.

use std::{
    borrow::Borrow,
    sync::{Arc, LazyLock},
};

use datafusion::arrow::{
    array::{
        Array, ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, ListBuilder,
        RecordBatch, StringArray, StringBuilder, UInt32Array, UInt64Array,
    },
    datatypes::{DataType, Field, Schema, SchemaRef},
    error::ArrowError,
};

use crate::model::{Outcome, RunRow, ScoreRow, SpanKind, SpanRow, SpanStatus};

fn list_of_strings() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

fn int64(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}

fn uint64(name: &str) -> Field {
    Field::new(name, DataType::UInt64, false)
}

fn strings(name: &str) -> Field {
    Field::new(name, list_of_strings(), false)
}

static RUNS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("project_id"),
        utf8("trace_id"),
        utf8("session_id"),
        utf8("user_hash"),
        utf8("task_type"),
        utf8("agent_name"),
        utf8("agent_version"),
        utf8("environment"),
        utf8("release"),
        int64("start_time_ns"),
        int64("end_time_ns"),
        utf8("outcome"),
        utf8("error_message"),
        utf8("input"),
        utf8("output"),
        strings("tags"),
        strings("classification"),
        utf8("retention"),
        utf8("audit_ref"),
        Field::new("synthesized", DataType::Boolean, false),
        int64("ingested_at_ns"),
    ]))
});

static SPANS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("project_id"),
        utf8("trace_id"),
        utf8("span_id"),
        utf8("parent_span_id"),
        utf8("kind"),
        utf8("name"),
        int64("start_time_ns"),
        int64("end_time_ns"),
        utf8("status"),
        utf8("error_type"),
        utf8("status_message"),
        utf8("input"),
        utf8("output"),
        strings("attr_keys"),
        strings("attr_values"),
        utf8("provider"),
        utf8("model"),
        utf8("model_version"),
        utf8("prompt_id"),
        utf8("prompt_version"),
        uint64("input_tokens"),
        uint64("output_tokens"),
        uint64("cached_input_tokens"),
        uint64("cache_write_tokens"),
        uint64("reasoning_tokens"),
        Field::new("cost_nanos", DataType::Int64, true),
        utf8("cost_source"),
        utf8("tool_name"),
        utf8("tool_version"),
        utf8("tool_call_id"),
        utf8("tool_args_hash"),
        Field::new("retry_count", DataType::UInt32, false),
        int64("ingested_at_ns"),
    ]))
});

static SCORES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("project_id"),
        utf8("trace_id"),
        utf8("score_id"),
        utf8("span_id"),
        utf8("name"),
        Field::new("value", DataType::Float64, true),
        Field::new("bool_value", DataType::Boolean, true),
        utf8("string_value"),
        utf8("source"),
        utf8("comment"),
        int64("time_ns"),
        int64("ingested_at_ns"),
    ]))
});

pub fn runs_schema() -> SchemaRef {
    RUNS.clone()
}

pub fn spans_schema() -> SchemaRef {
    SPANS.clone()
}

pub fn scores_schema() -> SchemaRef {
    SCORES.clone()
}

// ---- rows → batch (owned rows or references) ---------------------------------------------------------------------------

fn text<T>(rows: &[T], get: impl Fn(&T) -> &str) -> ArrayRef {
    Arc::new(rows.iter().map(|r| Some(get(r))).collect::<StringArray>())
}

fn i64s<T>(rows: &[T], get: impl Fn(&T) -> i64) -> ArrayRef {
    Arc::new(rows.iter().map(&get).collect::<Int64Array>())
}

fn u64s<T>(rows: &[T], get: impl Fn(&T) -> u64) -> ArrayRef {
    Arc::new(rows.iter().map(&get).collect::<UInt64Array>())
}

fn lists<T>(rows: &[T], get: impl Fn(&T) -> &[String]) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for row in rows {
        for item in get(row) {
            builder.values().append_value(item);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

pub fn runs_to_batch<R: Borrow<RunRow>>(rows: &[R]) -> Result<RecordBatch, ArrowError> {
    let columns: Vec<ArrayRef> = vec![
        text(rows, |r| &r.borrow().project_id),
        text(rows, |r| &r.borrow().trace_id),
        text(rows, |r| &r.borrow().session_id),
        text(rows, |r| &r.borrow().user_hash),
        text(rows, |r| &r.borrow().task_type),
        text(rows, |r| &r.borrow().agent_name),
        text(rows, |r| &r.borrow().agent_version),
        text(rows, |r| &r.borrow().environment),
        text(rows, |r| &r.borrow().release),
        i64s(rows, |r| r.borrow().start_time_ns),
        i64s(rows, |r| r.borrow().end_time_ns),
        text(rows, |r| r.borrow().outcome.as_str()),
        text(rows, |r| &r.borrow().error_message),
        text(rows, |r| &r.borrow().input),
        text(rows, |r| &r.borrow().output),
        lists(rows, |r| &r.borrow().tags),
        lists(rows, |r| &r.borrow().classification),
        text(rows, |r| &r.borrow().retention),
        text(rows, |r| &r.borrow().audit_ref),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.borrow().synthesized))
                .collect::<BooleanArray>(),
        ),
        i64s(rows, |r| r.borrow().ingested_at_ns),
    ];
    RecordBatch::try_new(runs_schema(), columns)
}

pub fn spans_to_batch<R: Borrow<SpanRow>>(rows: &[R]) -> Result<RecordBatch, ArrowError> {
    let columns: Vec<ArrayRef> = vec![
        text(rows, |r| &r.borrow().project_id),
        text(rows, |r| &r.borrow().trace_id),
        text(rows, |r| &r.borrow().span_id),
        text(rows, |r| &r.borrow().parent_span_id),
        text(rows, |r| r.borrow().kind.as_str()),
        text(rows, |r| &r.borrow().name),
        i64s(rows, |r| r.borrow().start_time_ns),
        i64s(rows, |r| r.borrow().end_time_ns),
        text(rows, |r| r.borrow().status.as_str()),
        text(rows, |r| &r.borrow().error_type),
        text(rows, |r| &r.borrow().status_message),
        text(rows, |r| &r.borrow().input),
        text(rows, |r| &r.borrow().output),
        lists(rows, |r| &r.borrow().attr_keys),
        lists(rows, |r| &r.borrow().attr_values),
        text(rows, |r| &r.borrow().provider),
        text(rows, |r| &r.borrow().model),
        text(rows, |r| &r.borrow().model_version),
        text(rows, |r| &r.borrow().prompt_id),
        text(rows, |r| &r.borrow().prompt_version),
        u64s(rows, |r| r.borrow().input_tokens),
        u64s(rows, |r| r.borrow().output_tokens),
        u64s(rows, |r| r.borrow().cached_input_tokens),
        u64s(rows, |r| r.borrow().cache_write_tokens),
        u64s(rows, |r| r.borrow().reasoning_tokens),
        Arc::new(
            rows.iter()
                .map(|r| r.borrow().cost_nanos)
                .collect::<Int64Array>(),
        ),
        text(rows, |r| &r.borrow().cost_source),
        text(rows, |r| &r.borrow().tool_name),
        text(rows, |r| &r.borrow().tool_version),
        text(rows, |r| &r.borrow().tool_call_id),
        text(rows, |r| &r.borrow().tool_args_hash),
        Arc::new(
            rows.iter()
                .map(|r| r.borrow().retry_count)
                .collect::<UInt32Array>(),
        ),
        i64s(rows, |r| r.borrow().ingested_at_ns),
    ];
    RecordBatch::try_new(spans_schema(), columns)
}

pub fn scores_to_batch<R: Borrow<ScoreRow>>(rows: &[R]) -> Result<RecordBatch, ArrowError> {
    let columns: Vec<ArrayRef> = vec![
        text(rows, |r| &r.borrow().project_id),
        text(rows, |r| &r.borrow().trace_id),
        text(rows, |r| &r.borrow().score_id),
        text(rows, |r| &r.borrow().span_id),
        text(rows, |r| &r.borrow().name),
        Arc::new(
            rows.iter()
                .map(|r| r.borrow().value)
                .collect::<Float64Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.borrow().bool_value)
                .collect::<BooleanArray>(),
        ),
        text(rows, |r| &r.borrow().string_value),
        text(rows, |r| &r.borrow().source),
        text(rows, |r| &r.borrow().comment),
        i64s(rows, |r| r.borrow().time_ns),
        i64s(rows, |r| r.borrow().ingested_at_ns),
    ];
    RecordBatch::try_new(scores_schema(), columns)
}

// ---- batch → rows ---------------------------------------------------------------------------

/// Typed access to a batch's columns by name, for reading rows back.
struct Columns<'a>(&'a RecordBatch);

impl<'a> Columns<'a> {
    fn get<A: Array + 'static>(&self, name: &str) -> Result<&'a A, ArrowError> {
        self.0
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<A>())
            .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is missing or mistyped")))
    }

    fn text(&self, name: &str) -> Result<impl Fn(usize) -> String + 'a, ArrowError> {
        let a = self.get::<StringArray>(name)?;
        Ok(move |i| {
            if a.is_null(i) {
                String::new()
            } else {
                a.value(i).to_string()
            }
        })
    }

    fn i64(&self, name: &str) -> Result<impl Fn(usize) -> i64 + 'a, ArrowError> {
        let a = self.get::<Int64Array>(name)?;
        Ok(move |i| a.value(i))
    }

    fn opt_i64(&self, name: &str) -> Result<impl Fn(usize) -> Option<i64> + 'a, ArrowError> {
        let a = self.get::<Int64Array>(name)?;
        Ok(move |i| (!a.is_null(i)).then(|| a.value(i)))
    }

    fn u64(&self, name: &str) -> Result<impl Fn(usize) -> u64 + 'a, ArrowError> {
        let a = self.get::<UInt64Array>(name)?;
        Ok(move |i| a.value(i))
    }

    fn list(&self, name: &str) -> Result<impl Fn(usize) -> Vec<String> + 'a, ArrowError> {
        let a = self.get::<ListArray>(name)?;
        Ok(move |i| {
            let values = a.value(i);
            values
                .as_any()
                .downcast_ref::<StringArray>()
                .map(|s| {
                    s.iter()
                        .map(|v| v.unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    fn opt_bool(&self, name: &str) -> Result<impl Fn(usize) -> Option<bool> + 'a, ArrowError> {
        let a = self.get::<BooleanArray>(name)?;
        Ok(move |i| (!a.is_null(i)).then(|| a.value(i)))
    }
}

pub fn runs_from_batch(batch: &RecordBatch) -> Result<Vec<RunRow>, ArrowError> {
    let c = Columns(batch);
    let (project_id, trace_id, session_id, user_hash) = (
        c.text("project_id")?,
        c.text("trace_id")?,
        c.text("session_id")?,
        c.text("user_hash")?,
    );
    let (task_type, agent_name, agent_version, environment, release) = (
        c.text("task_type")?,
        c.text("agent_name")?,
        c.text("agent_version")?,
        c.text("environment")?,
        c.text("release")?,
    );
    let (start, end, outcome, error_message, input, output) = (
        c.i64("start_time_ns")?,
        c.i64("end_time_ns")?,
        c.text("outcome")?,
        c.text("error_message")?,
        c.text("input")?,
        c.text("output")?,
    );
    let (tags, classification, retention, audit_ref, synthesized, ingested) = (
        c.list("tags")?,
        c.list("classification")?,
        c.text("retention")?,
        c.text("audit_ref")?,
        c.opt_bool("synthesized")?,
        c.i64("ingested_at_ns")?,
    );
    Ok((0..batch.num_rows())
        .map(|i| RunRow {
            project_id: project_id(i),
            trace_id: trace_id(i),
            session_id: session_id(i),
            user_hash: user_hash(i),
            task_type: task_type(i),
            agent_name: agent_name(i),
            agent_version: agent_version(i),
            environment: environment(i),
            release: release(i),
            start_time_ns: start(i),
            end_time_ns: end(i),
            outcome: Outcome::parse(&outcome(i)).unwrap_or_default(),
            error_message: error_message(i),
            input: input(i),
            output: output(i),
            tags: tags(i),
            classification: classification(i),
            retention: retention(i),
            audit_ref: audit_ref(i),
            synthesized: synthesized(i).unwrap_or(false),
            ingested_at_ns: ingested(i),
        })
        .collect())
}

pub fn spans_from_batch(batch: &RecordBatch) -> Result<Vec<SpanRow>, ArrowError> {
    let c = Columns(batch);
    let (project_id, trace_id, span_id, parent, kind, name) = (
        c.text("project_id")?,
        c.text("trace_id")?,
        c.text("span_id")?,
        c.text("parent_span_id")?,
        c.text("kind")?,
        c.text("name")?,
    );
    let (start, end, status, error_type, status_message, input, output) = (
        c.i64("start_time_ns")?,
        c.i64("end_time_ns")?,
        c.text("status")?,
        c.text("error_type")?,
        c.text("status_message")?,
        c.text("input")?,
        c.text("output")?,
    );
    let (attr_keys, attr_values, provider, model, model_version, prompt_id, prompt_version) = (
        c.list("attr_keys")?,
        c.list("attr_values")?,
        c.text("provider")?,
        c.text("model")?,
        c.text("model_version")?,
        c.text("prompt_id")?,
        c.text("prompt_version")?,
    );
    let (input_tokens, output_tokens, cached, cache_write, reasoning, cost, cost_source) = (
        c.u64("input_tokens")?,
        c.u64("output_tokens")?,
        c.u64("cached_input_tokens")?,
        c.u64("cache_write_tokens")?,
        c.u64("reasoning_tokens")?,
        c.opt_i64("cost_nanos")?,
        c.text("cost_source")?,
    );
    let (tool_name, tool_version, tool_call_id, tool_args_hash, ingested) = (
        c.text("tool_name")?,
        c.text("tool_version")?,
        c.text("tool_call_id")?,
        c.text("tool_args_hash")?,
        c.i64("ingested_at_ns")?,
    );
    let retry = c.get::<UInt32Array>("retry_count")?;
    Ok((0..batch.num_rows())
        .map(|i| SpanRow {
            project_id: project_id(i),
            trace_id: trace_id(i),
            span_id: span_id(i),
            parent_span_id: parent(i),
            kind: SpanKind::parse(&kind(i)).unwrap_or_default(),
            name: name(i),
            start_time_ns: start(i),
            end_time_ns: end(i),
            status: SpanStatus::parse(&status(i)).unwrap_or_default(),
            error_type: error_type(i),
            status_message: status_message(i),
            input: input(i),
            output: output(i),
            attr_keys: attr_keys(i),
            attr_values: attr_values(i),
            provider: provider(i),
            model: model(i),
            model_version: model_version(i),
            prompt_id: prompt_id(i),
            prompt_version: prompt_version(i),
            input_tokens: input_tokens(i),
            output_tokens: output_tokens(i),
            cached_input_tokens: cached(i),
            cache_write_tokens: cache_write(i),
            reasoning_tokens: reasoning(i),
            cost_nanos: cost(i),
            cost_source: cost_source(i),
            tool_name: tool_name(i),
            tool_version: tool_version(i),
            tool_call_id: tool_call_id(i),
            tool_args_hash: tool_args_hash(i),
            retry_count: retry.value(i),
            ingested_at_ns: ingested(i),
        })
        .collect())
}

pub fn scores_from_batch(batch: &RecordBatch) -> Result<Vec<ScoreRow>, ArrowError> {
    let c = Columns(batch);
    let (project_id, trace_id, score_id, span_id, name) = (
        c.text("project_id")?,
        c.text("trace_id")?,
        c.text("score_id")?,
        c.text("span_id")?,
        c.text("name")?,
    );
    let value = c.get::<Float64Array>("value")?;
    let (bool_value, string_value, source, comment, time, ingested) = (
        c.opt_bool("bool_value")?,
        c.text("string_value")?,
        c.text("source")?,
        c.text("comment")?,
        c.i64("time_ns")?,
        c.i64("ingested_at_ns")?,
    );
    Ok((0..batch.num_rows())
        .map(|i| ScoreRow {
            project_id: project_id(i),
            trace_id: trace_id(i),
            score_id: score_id(i),
            span_id: span_id(i),
            name: name(i),
            value: (!value.is_null(i)).then(|| value.value(i)),
            bool_value: bool_value(i),
            string_value: string_value(i),
            source: source(i),
            comment: comment(i),
            time_ns: time(i),
            ingested_at_ns: ingested(i),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_batches() {
        let run = RunRow {
            project_id: "p".into(),
            trace_id: "a".repeat(32),
            tags: vec!["x".into(), "y".into()],
            classification: vec!["pii".into()],
            outcome: Outcome::Timeout,
            start_time_ns: 5,
            end_time_ns: 9,
            synthesized: true,
            ..Default::default()
        };
        let batch = runs_to_batch(std::slice::from_ref(&run)).unwrap();
        assert_eq!(runs_from_batch(&batch).unwrap(), vec![run]);

        let span = SpanRow {
            trace_id: "a".repeat(32),
            span_id: "b".repeat(16),
            kind: SpanKind::Tool,
            status: SpanStatus::Error,
            attr_keys: vec!["k".into()],
            attr_values: vec!["v".into()],
            cost_nanos: Some(42),
            input_tokens: 7,
            retry_count: 2,
            ..Default::default()
        };
        let unpriced = SpanRow {
            cost_nanos: None,
            ..span.clone()
        };
        let batch = spans_to_batch(&[span.clone(), unpriced.clone()]).unwrap();
        assert_eq!(spans_from_batch(&batch).unwrap(), vec![span, unpriced]);

        let score = ScoreRow {
            score_id: "s".into(),
            value: Some(1.0),
            bool_value: Some(true),
            ..Default::default()
        };
        let batch = scores_to_batch(std::slice::from_ref(&score)).unwrap();
        assert_eq!(scores_from_batch(&batch).unwrap(), vec![score]);
    }
}
