//! The answer of `POST /api/v1/metrics/query`: the statements' integer aggregates merged per
//! group and bucket, and each metric computed from them once, for both stores alike: counts and
//! sums stay integers, ratios are one division, durations go from ns to ms, cost from
//! nano-dollars to USD. A ratio over nothing is null; so is a percentile over no values, and a
//! cost when every model call of the group is unpriced.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer, ser::SerializeMap};
use vigil_schemas::time::rfc3339;

use super::{
    catalog::{Field, Metric, Subject},
    request::MetricPlan,
    rows::{Aggregates, aggregate_names},
};

/// The rows of a metrics answer, by group then bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricAnswer {
    pub rows: Vec<MetricRow>,
}

/// One group (and bucket): its keys, then every metric asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// `group_by` field and value, in the request's order.
    pub group: Vec<(Field, String)>,
    /// Start of the bucket (ns since the epoch), with `step` only.
    pub bucket: Option<i64>,
    /// In the plan's order.
    pub values: Vec<(Metric, MetricValue)>,
}

/// A metric's value: counts and sums are exact integers; rates, means, milliseconds and USD
/// are numbers; `Null` where there was nothing to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricValue {
    Integer(i64),
    Number(f64),
    Null,
}

impl Serialize for MetricValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MetricValue::Integer(n) => serializer.serialize_i64(*n),
            MetricValue::Number(x) => serializer.serialize_f64(*x),
            MetricValue::Null => serializer.serialize_none(),
        }
    }
}

impl Serialize for MetricRow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(
            self.group.len() + usize::from(self.bucket.is_some()) + self.values.len(),
        ))?;
        for (field, value) in &self.group {
            map.serialize_entry(field.name(), value)?;
        }
        if let Some(bucket) = self.bucket {
            map.serialize_entry("bucket", &rfc3339(bucket))?;
        }
        for (metric, value) in &self.values {
            map.serialize_entry(metric.name(), value)?;
        }
        map.end()
    }
}

/// One subject's aggregates of one group and bucket, by name.
struct Named<'a> {
    names: &'a [&'static str],
    values: Option<&'a [i64]>,
}

impl Named<'_> {
    fn get(&self, name: &str) -> i64 {
        let index = self.names.iter().position(|n| *n == name);
        match (self.values, index) {
            (Some(values), Some(i)) => values[i],
            _ => 0,
        }
    }
}

/// Merges the statements' answers into the rows of the answer.
pub(crate) fn assemble(
    plan: &MetricPlan,
    answers: Vec<(Subject, Vec<Aggregates>)>,
) -> MetricAnswer {
    type Key = ([String; 4], i64);
    let mut merged: BTreeMap<Key, [Option<Vec<i64>>; 3]> = BTreeMap::new();
    for (subject, rows) in answers {
        let slot = slot(subject);
        for row in rows {
            merged.entry((row.keys, row.bucket)).or_default()[slot] = Some(row.values);
        }
    }
    // Each subject's aggregate names, looked up once for every row.
    let names = [Subject::Run, Subject::ModelCall, Subject::ToolCall].map(aggregate_names);
    let rows = merged
        .into_iter()
        .map(|((keys, bucket), values)| {
            let named = |subject: Subject| Named {
                names: &names[slot(subject)],
                values: values[slot(subject)].as_deref(),
            };
            let runs = named(Subject::Run);
            let model_calls = named(Subject::ModelCall);
            let tool_calls = named(Subject::ToolCall);
            MetricRow {
                group: plan
                    .group_by
                    .iter()
                    .zip(keys)
                    .map(|(field, key)| (*field, key))
                    .collect(),
                bucket: plan.step_ns.map(|_| bucket),
                values: plan
                    .metrics
                    .iter()
                    .map(|metric| (*metric, value(*metric, &runs, &model_calls, &tool_calls)))
                    .collect(),
            }
        })
        .collect();
    MetricAnswer { rows }
}

fn slot(subject: Subject) -> usize {
    match subject {
        Subject::Run => 0,
        Subject::ModelCall => 1,
        Subject::ToolCall => 2,
    }
}

const NANOS_PER_MS: f64 = 1e6;
const NANOS_PER_USD: f64 = 1e9;

fn value(metric: Metric, runs: &Named, model_calls: &Named, tool_calls: &Named) -> MetricValue {
    use Metric::*;
    use MetricValue::{Integer, Null, Number};
    let ratio = |numerator: i64, denominator: i64| {
        if denominator == 0 {
            Null
        } else {
            Number(numerator as f64 / denominator as f64)
        }
    };
    let latency = |of: &Named, count: &str, name: &str| {
        if of.get(count) == 0 {
            Null
        } else {
            Number(of.get(name) as f64 / NANOS_PER_MS)
        }
    };
    // Cost is unknown, not zero, when the group's model calls are all unpriced.
    let all_unpriced = runs.get("priced_calls") == 0 && runs.get("unpriced_calls") > 0;
    let cost_usd = (!all_unpriced && runs.get("runs") > 0)
        .then(|| runs.get("cost_nanos") as f64 / NANOS_PER_USD);
    match metric {
        Runs => Integer(runs.get("runs")),
        CompletedRuns => Integer(runs.get("completed")),
        FailedRuns => Integer(runs.get("failed")),
        CompletionRate => ratio(runs.get("completed"), runs.get("runs")),
        SilentPartialFailures => Integer(runs.get("silent")),
        SilentPartialFailureRate => ratio(runs.get("silent"), runs.get("completed")),
        RunLatencyP50Ms => latency(runs, "runs", "latency_p50"),
        RunLatencyP90Ms => latency(runs, "runs", "latency_p90"),
        RunLatencyP99Ms => latency(runs, "runs", "latency_p99"),
        CostUsd => cost_usd.map_or(Null, Number),
        CostPerRunUsd => cost_usd.map_or(Null, |usd| Number(usd / runs.get("runs") as f64)),
        UnpricedModelCalls => Integer(runs.get("unpriced_calls")),
        InputTokens => Integer(runs.get("input_tokens")),
        OutputTokens => Integer(runs.get("output_tokens")),
        CachedInputTokens => Integer(runs.get("cached_input_tokens")),
        ReasoningTokens => Integer(runs.get("reasoning_tokens")),
        ToolCallsPerRun => ratio(runs.get("tool_calls"), runs.get("runs")),
        RepeatedToolCalls => Integer(runs.get("repeated_tool_calls")),
        FeedbackPositiveRate => ratio(runs.get("feedback_positive"), runs.get("feedback_total")),
        Sessions => Integer(runs.get("sessions")),
        Users => Integer(runs.get("users")),
        ModelCalls => Integer(model_calls.get("calls")),
        ModelErrorRate => ratio(model_calls.get("errors"), model_calls.get("calls")),
        ModelLatencyP50Ms => latency(model_calls, "calls", "latency_p50"),
        ModelLatencyP90Ms => latency(model_calls, "calls", "latency_p90"),
        ModelLatencyP99Ms => latency(model_calls, "calls", "latency_p99"),
        ToolCalls => Integer(tool_calls.get("calls")),
        ToolErrors => Integer(tool_calls.get("errors")),
        ToolErrorRate => ratio(tool_calls.get("errors"), tool_calls.get("calls")),
        ToolLatencyP50Ms => latency(tool_calls, "calls", "latency_p50"),
        ToolLatencyP90Ms => latency(tool_calls, "calls", "latency_p90"),
        ToolLatencyP99Ms => latency(tool_calls, "calls", "latency_p99"),
    }
}
