//! Row types: what the collector writes and the query service reads, on every store.
//!
//! Absent text is the empty string and absent counts are zero, so that both stores (Parquet and
//! ClickHouse 18.16) hold the same plain columns. The one exception is cost: an unpriced call has
//! no cost (`None`), which is not the same as a free one.
//!
//! Rows are keyed: a run by `(project_id, trace_id)`, a span by `(project_id, trace_id, span_id)`,
//! a score by `(project_id, trace_id, score_id)`. The same key may be written more than once (an
//! SDK retry, a WAL replay, a run rebuilt when its root span arrives): readers keep, per key, the
//! row with the highest `ingested_at_ns`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Success,
    Failure,
    Partial,
    Timeout,
    Cancelled,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Partial,
        Outcome::Timeout,
        Outcome::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Partial => "partial",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// What a span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    Model,
    Tool,
    Retrieval,
    Agent,
    #[default]
    Other,
}

impl SpanKind {
    pub const ALL: [SpanKind; 5] = [
        SpanKind::Model,
        SpanKind::Tool,
        SpanKind::Retrieval,
        SpanKind::Agent,
        SpanKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Model => "model",
            SpanKind::Tool => "tool",
            SpanKind::Retrieval => "retrieval",
            SpanKind::Agent => "agent",
            SpanKind::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<SpanKind> {
        SpanKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// A span's status, as OpenTelemetry defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpanStatus {
    #[default]
    Unset,
    Ok,
    Error,
}

impl SpanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SpanStatus::Unset => "unset",
            SpanStatus::Ok => "ok",
            SpanStatus::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<SpanStatus> {
        [SpanStatus::Unset, SpanStatus::Ok, SpanStatus::Error]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One agent run (one trace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, ToSchema)]
pub struct RunRow {
    pub project_id: String,
    /// 32 lowercase hexadecimal characters.
    pub trace_id: String,
    /// Empty when the run has no session.
    pub session_id: String,
    /// HMAC-SHA256 of the raw user id under the server key, hex; never the raw id.
    pub user_hash: String,
    pub task_type: String,
    pub agent_name: String,
    pub agent_version: String,
    pub environment: String,
    pub release: String,
    /// Start, ns since the Unix epoch.
    pub start_time_ns: i64,
    /// End, ns since the Unix epoch.
    pub end_time_ns: i64,
    pub outcome: Outcome,
    pub error_message: String,
    /// Replaced by `[redacted]` over HTTP when the run is classified `pii`, `phi`, `financial` or
    /// `confidential` and the key lacks the `audit` role.
    pub input: String,
    /// Replaced by `[redacted]` over HTTP when the run is classified `pii`, `phi`, `financial` or
    /// `confidential` and the key lacks the `audit` role.
    pub output: String,
    pub tags: Vec<String>,
    /// Data classification labels.
    pub classification: Vec<String>,
    /// The retention class.
    pub retention: String,
    pub audit_ref: String,
    /// True when no root span ever arrived and the collector built the run from its children.
    pub synthesized: bool,
    /// When the collector accepted this version of the run; the newest version of a key wins.
    pub ingested_at_ns: i64,
}

/// The run tag that marks a shadow run: one that ran a candidate beside production on the same
/// input, its answer not shown to anyone (OTLP `vigil.shadow = true`, native `Run.shadow`).
/// Metric queries, dashboards and alerts leave shadow runs out unless asked for them.
pub const SHADOW_TAG: &str = "vigil.shadow";

impl RunRow {
    pub fn duration_ns(&self) -> i64 {
        self.end_time_ns - self.start_time_ns
    }

    /// Whether the run is a shadow run ([`SHADOW_TAG`]).
    pub fn is_shadow(&self) -> bool {
        self.tags.iter().any(|tag| tag == SHADOW_TAG)
    }

    /// Marks the run as a shadow run, once.
    pub fn mark_shadow(&mut self) {
        if !self.is_shadow() {
            self.tags.push(SHADOW_TAG.to_owned());
        }
    }
}

/// One step inside a run: a model call, a tool call, a retrieval, an agent step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, ToSchema)]
pub struct SpanRow {
    pub project_id: String,
    pub trace_id: String,
    /// 16 lowercase hexadecimal characters.
    pub span_id: String,
    /// Empty for the root span.
    pub parent_span_id: String,
    pub kind: SpanKind,
    pub name: String,
    /// Start, ns since the Unix epoch.
    pub start_time_ns: i64,
    /// End, ns since the Unix epoch.
    pub end_time_ns: i64,
    pub status: SpanStatus,
    pub error_type: String,
    pub status_message: String,
    /// Replaced by `[redacted]` over HTTP when the run is classified `pii`, `phi`, `financial` or
    /// `confidential` and the key lacks the `audit` role.
    pub input: String,
    /// Replaced by `[redacted]` over HTTP when the run is classified `pii`, `phi`, `financial` or
    /// `confidential` and the key lacks the `audit` role.
    pub output: String,
    /// Attributes not mapped to a column, as parallel key/value arrays (values rendered as text).
    /// Over HTTP both are sent empty: the pairs are in `attributes`.
    #[schema(max_items = 0)]
    pub attr_keys: Vec<String>,
    /// See `attr_keys`.
    #[schema(max_items = 0)]
    pub attr_values: Vec<String>,
    // model calls
    pub provider: String,
    pub model: String,
    pub model_version: String,
    pub prompt_id: String,
    pub prompt_version: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// Cost in nano-dollars (1e-9 USD); null when the model has no price.
    #[schema(required = true)]
    pub cost_nanos: Option<i64>,
    /// `sdk` (reported by the client), `catalog` (computed at ingest) or empty (unpriced).
    pub cost_source: String,
    // tool calls
    pub tool_name: String,
    pub tool_version: String,
    pub tool_call_id: String,
    /// Hash of the tool arguments, for loop detection; empty when there were none.
    pub tool_args_hash: String,
    pub retry_count: u32,
    /// When the collector accepted this version of the span.
    pub ingested_at_ns: i64,
}

impl SpanRow {
    pub fn duration_ns(&self) -> i64 {
        self.end_time_ns - self.start_time_ns
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    /// The value of an unmapped attribute.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attr_keys
            .iter()
            .position(|k| k == key)
            .map(|i| self.attr_values[i].as_str())
    }
}

/// An evaluation or user feedback attached to a run or a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, ToSchema)]
pub struct ScoreRow {
    pub project_id: String,
    pub trace_id: String,
    pub score_id: String,
    /// Empty when the score is about the whole run.
    pub span_id: String,
    pub name: String,
    /// Numeric value; booleans are stored as 1.0 / 0.0 here as well.
    #[schema(required = true)]
    pub value: Option<f64>,
    #[schema(required = true)]
    pub bool_value: Option<bool>,
    pub string_value: String,
    /// Who scored: `api`, `user`, an evaluator's name.
    pub source: String,
    pub comment: String,
    /// When the score was given, ns since the Unix epoch.
    pub time_ns: i64,
    /// When the collector accepted this version of the score.
    pub ingested_at_ns: i64,
}

/// Everything one accepted request adds: the unit the WAL stores and the sinks write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IngestBatch {
    pub runs: Vec<RunRow>,
    pub spans: Vec<SpanRow>,
    pub scores: Vec<ScoreRow>,
}

impl IngestBatch {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.spans.is_empty() && self.scores.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.runs.len() + self.spans.len() + self.scores.len()
    }

    pub fn extend(&mut self, other: IngestBatch) {
        self.runs.extend(other.runs);
        self.spans.extend(other.spans);
        self.scores.extend(other.scores);
    }
}

/// What comparing two sets of runs needs of one run: the metric engine reads it per run
/// (`vigil_query::cohort`), the evaluation crate compares cohorts of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CohortRun {
    pub trace_id: String,
    /// Outcome `success`.
    pub completed: bool,
    /// Outcome `failure` or `timeout`.
    pub failed: bool,
    /// Completed, with a failed model or tool call.
    pub silent_partial_failure: bool,
    pub duration_ns: i64,
    /// Its model calls' cost (nano-dollars); `None` when one of them has no price.
    pub cost_nanos: Option<i64>,
    pub tool_calls: u64,
    /// Its boolean scores (feedback): how many are true, of how many.
    pub feedback_positive: u64,
    pub feedback_total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_text() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        for k in SpanKind::ALL {
            assert_eq!(SpanKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Outcome::parse("exploded"), None);
    }
}
