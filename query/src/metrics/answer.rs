//! The answer of `POST /api/v1/metrics/query`: the statements' integer aggregates merged per
//! group and bucket, and each metric computed from them once, for both stores alike: counts and
//! sums stay integers, ratios are one division, durations go from ns to ms, cost from
//! nano-dollars to USD. A ratio over nothing is null; so is a percentile over no values, and a
//! cost when every model call of the group is unpriced.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer, ser::SerializeMap};
use vigil_schemas::time::rfc3339;

use super::{
    aggregate::{Aggregate, CallAggregate, RunAggregate},
    catalog::{Field, Metric, Subject},
    request::MetricPlan,
    rows::Aggregates,
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

/// One subject's aggregates of one group and bucket. A subject with no row in the group (no
/// model call in a group of runs, say) counted nothing: every aggregate reads 0.
pub(crate) struct Values<'a, A> {
    values: Option<&'a [i64]>,
    kind: std::marker::PhantomData<A>,
}

impl<'a, A: Aggregate> Values<'a, A> {
    pub(crate) fn new(values: Option<&'a [i64]>) -> Values<'a, A> {
        Values {
            values,
            kind: std::marker::PhantomData,
        }
    }

    /// Whether the statement answered a row for the group: it counted something there.
    fn present(&self) -> bool {
        self.values.is_some()
    }

    pub(crate) fn get(&self, aggregate: A) -> i64 {
        self.values.map_or(0, |values| values[aggregate.index()])
    }
}

/// A group's keys and bucket.
pub(crate) type GroupKey = ([String; 4], i64);
/// A group's aggregates of each subject (by [`slot`]), where its statement answered a row.
pub(crate) type Merged = BTreeMap<GroupKey, [Option<Vec<i64>>; 3]>;

/// Merges the statements' answers into the rows of the answer.
pub(crate) fn assemble(
    plan: &MetricPlan,
    answers: Vec<(Subject, Vec<Aggregates>)>,
) -> MetricAnswer {
    let rows = merge(answers)
        .into_iter()
        .map(|((keys, bucket), values)| {
            let runs = Values::new(values[slot(Subject::Run)].as_deref());
            let model_calls = Values::new(values[slot(Subject::ModelCall)].as_deref());
            let tool_calls = Values::new(values[slot(Subject::ToolCall)].as_deref());
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

/// The statements' rows by group and bucket.
pub(crate) fn merge(answers: Vec<(Subject, Vec<Aggregates>)>) -> Merged {
    let mut merged = Merged::new();
    for (subject, rows) in answers {
        let slot = slot(subject);
        for row in rows {
            // A subject answered in parts (the run statement's, split): each aggregate is in
            // one part and 0 in the others, so the parts add up.
            match &mut merged.entry((row.keys, row.bucket)).or_default()[slot] {
                Some(values) => {
                    for (sum, part) in values.iter_mut().zip(row.values) {
                        *sum += part;
                    }
                }
                empty => *empty = Some(row.values),
            }
        }
    }
    merged
}

pub(crate) fn slot(subject: Subject) -> usize {
    match subject {
        Subject::Run => 0,
        Subject::ModelCall => 1,
        Subject::ToolCall => 2,
    }
}

const NANOS_PER_MS: f64 = 1e6;
const NANOS_PER_USD: f64 = 1e9;

fn value(
    metric: Metric,
    runs: &Values<RunAggregate>,
    model_calls: &Values<CallAggregate>,
    tool_calls: &Values<CallAggregate>,
) -> MetricValue {
    use CallAggregate as Call;
    use Metric::*;
    use MetricValue::{Integer, Null, Number};
    use RunAggregate as Run;
    let ratio = |numerator: i64, denominator: i64| {
        if denominator == 0 {
            Null
        } else {
            Number(numerator as f64 / denominator as f64)
        }
    };
    let ms = |count: i64, nanos: i64| {
        if count == 0 {
            Null
        } else {
            Number(nanos as f64 / NANOS_PER_MS)
        }
    };
    let run_latency = |aggregate| ms(runs.get(Run::Runs), runs.get(aggregate));
    let call_latency =
        |calls: &Values<CallAggregate>, aggregate| ms(calls.get(Call::Calls), calls.get(aggregate));
    // Cost is unknown, not zero, when the group's model calls are all unpriced; there is none
    // for a group without runs.
    let all_unpriced = runs.get(Run::PricedCalls) == 0 && runs.get(Run::UnpricedCalls) > 0;
    let cost_usd =
        (!all_unpriced && runs.present()).then(|| runs.get(Run::CostNanos) as f64 / NANOS_PER_USD);
    match metric {
        Runs => Integer(runs.get(Run::Runs)),
        CompletedRuns => Integer(runs.get(Run::Completed)),
        FailedRuns => Integer(runs.get(Run::Failed)),
        CompletionRate => ratio(runs.get(Run::Completed), runs.get(Run::Runs)),
        SilentPartialFailures => Integer(runs.get(Run::Silent)),
        SilentPartialFailureRate => ratio(runs.get(Run::Silent), runs.get(Run::Completed)),
        RunLatencyP50Ms => run_latency(Run::LatencyP50),
        RunLatencyP90Ms => run_latency(Run::LatencyP90),
        RunLatencyP99Ms => run_latency(Run::LatencyP99),
        CostUsd => cost_usd.map_or(Null, Number),
        CostPerRunUsd => cost_usd.map_or(Null, |usd| Number(usd / runs.get(Run::Runs) as f64)),
        UnpricedModelCalls => Integer(runs.get(Run::UnpricedCalls)),
        InputTokens => Integer(runs.get(Run::InputTokens)),
        OutputTokens => Integer(runs.get(Run::OutputTokens)),
        CachedInputTokens => Integer(runs.get(Run::CachedInputTokens)),
        ReasoningTokens => Integer(runs.get(Run::ReasoningTokens)),
        ToolCallsPerRun => ratio(runs.get(Run::ToolCalls), runs.get(Run::Runs)),
        RepeatedToolCalls => Integer(runs.get(Run::RepeatedToolCalls)),
        FeedbackPositiveRate => ratio(
            runs.get(Run::FeedbackPositive),
            runs.get(Run::FeedbackTotal),
        ),
        Sessions => Integer(runs.get(Run::Sessions)),
        Users => Integer(runs.get(Run::Users)),
        ModelCalls => Integer(model_calls.get(Call::Calls)),
        ModelErrorRate => ratio(model_calls.get(Call::Errors), model_calls.get(Call::Calls)),
        ModelLatencyP50Ms => call_latency(model_calls, Call::LatencyP50),
        ModelLatencyP90Ms => call_latency(model_calls, Call::LatencyP90),
        ModelLatencyP99Ms => call_latency(model_calls, Call::LatencyP99),
        ToolCalls => Integer(tool_calls.get(Call::Calls)),
        ToolErrors => Integer(tool_calls.get(Call::Errors)),
        ToolErrorRate => ratio(tool_calls.get(Call::Errors), tool_calls.get(Call::Calls)),
        ToolLatencyP50Ms => call_latency(tool_calls, Call::LatencyP50),
        ToolLatencyP90Ms => call_latency(tool_calls, Call::LatencyP90),
        ToolLatencyP99Ms => call_latency(tool_calls, Call::LatencyP99),
    }
}
