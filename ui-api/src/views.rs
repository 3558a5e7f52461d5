//! JSON shapes of runs, spans and scores: the stored row plus derived, human-friendly fields
//! (RFC 3339 times, durations in ms, costs in USD, attributes as an object), with content
//! redacted for callers that may not see it.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
use vigil_access::keys::{Principal, Role};
use vigil_query::RunRollup;
use vigil_schemas::{Outcome, RunRow, ScoreRow, SpanRow, time::rfc3339};

/// Classification labels whose content only `audit` keys may read.
pub const SENSITIVE: [&str; 4] = ["pii", "phi", "financial", "confidential"];
pub const REDACTED: &str = "[redacted]";

/// One agent run (one trace). Absent text is the empty string.
#[derive(Serialize, ToSchema)]
#[schema(as = Run)]
pub struct RunView {
    #[serde(flatten)]
    pub row: RunRow,
    /// `start_time_ns`, RFC 3339.
    #[schema(format = DateTime)]
    pub start_time: String,
    /// `end_time_ns`, RFC 3339.
    #[schema(format = DateTime)]
    pub end_time: String,
    pub duration_ms: f64,
}

/// A run with its calls rolled up: a row of a run list.
#[derive(Serialize, ToSchema)]
#[schema(as = RunSummary)]
pub struct RunSummaryView {
    #[serde(flatten)]
    pub run: RunView,
    /// Its calls, summed over the newest version of each of its spans (the definitions of the
    /// metrics of the same names).
    pub calls: RunRollup,
    /// The run ended `success` but a model or tool call of it failed.
    pub silent_partial_failure: bool,
}

/// One step of a run: a model call, a tool call, a retrieval, an agent step.
#[derive(Serialize, ToSchema)]
#[schema(as = Span)]
pub struct SpanView {
    #[serde(flatten)]
    pub row: SpanRow,
    /// `start_time_ns`, RFC 3339.
    #[schema(format = DateTime)]
    pub start_time: String,
    /// `end_time_ns`, RFC 3339.
    #[schema(format = DateTime)]
    pub end_time: String,
    pub duration_ms: f64,
    /// `cost_nanos` in USD.
    #[schema(required = true)]
    pub cost_usd: Option<f64>,
    /// Attributes not mapped to a field, values as text; redacted as `input` is.
    pub attributes: BTreeMap<String, String>,
}

/// An evaluation or user feedback attached to a run or a span.
#[derive(Serialize, ToSchema)]
#[schema(as = Score)]
pub struct ScoreView {
    #[serde(flatten)]
    pub row: ScoreRow,
    /// `time_ns`, RFC 3339.
    #[schema(format = DateTime)]
    pub time: String,
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// Whether `principal` may see content classified `pii`, `phi`, `financial` or `confidential`.
pub fn may_see_classified(principal: &Principal) -> bool {
    principal.has(Role::Audit)
}

/// Whether `principal` must not see the content of a run with these labels.
pub fn must_redact(classification: &[String], principal: &Principal) -> bool {
    !may_see_classified(principal)
        && classification
            .iter()
            .any(|c| SENSITIVE.contains(&c.to_ascii_lowercase().as_str()))
}

pub fn run_view(mut row: RunRow, principal: &Principal) -> RunView {
    if must_redact(&row.classification, principal) {
        redact(&mut row.input);
        redact(&mut row.output);
    }
    RunView {
        start_time: rfc3339(row.start_time_ns),
        end_time: rfc3339(row.end_time_ns),
        duration_ms: ms(row.duration_ns()),
        row,
    }
}

/// A run of a list with its rollup (none when it has no spans yet).
pub fn run_summary_view(
    row: RunRow,
    rollup: Option<&RunRollup>,
    principal: &Principal,
) -> RunSummaryView {
    let calls = rollup.copied().unwrap_or_default();
    RunSummaryView {
        silent_partial_failure: row.outcome == Outcome::Success && calls.failed_calls > 0,
        run: run_view(row, principal),
        calls,
    }
}

pub fn span_view(mut row: SpanRow, redact_content: bool) -> SpanView {
    if redact_content {
        redact(&mut row.input);
        redact(&mut row.output);
        for value in &mut row.attr_values {
            redact(value);
        }
    }
    let attributes = row
        .attr_keys
        .drain(..)
        .zip(row.attr_values.drain(..))
        .collect();
    SpanView {
        start_time: rfc3339(row.start_time_ns),
        end_time: rfc3339(row.end_time_ns),
        duration_ms: ms(row.duration_ns()),
        cost_usd: row.cost_nanos.map(|n| n as f64 / 1e9),
        attributes,
        row,
    }
}

pub fn score_view(row: ScoreRow) -> ScoreView {
    ScoreView {
        time: rfc3339(row.time_ns),
        row,
    }
}

pub(crate) fn redact(text: &mut String) {
    if !text.is_empty() {
        REDACTED.clone_into(text);
    }
}

/// A dataset item's input and expected output (JSON), redacted as run content is: the input
/// always, the expected output unless it is `null` (there is none).
pub(crate) fn redact_item(input: &mut serde_json::Value, expected_output: &mut serde_json::Value) {
    *input = serde_json::Value::String(REDACTED.into());
    if !expected_output.is_null() {
        *expected_output = serde_json::Value::String(REDACTED.into());
    }
}
