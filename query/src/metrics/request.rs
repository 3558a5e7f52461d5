//! `POST /api/v1/metrics/query` bodies, and their validation into a [`MetricPlan`]: everything
//! the store-specific SQL needs, already checked, with every refusal naming the request field and
//! saying why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_schemas::{
    Outcome,
    time::{parse_duration_ns, parse_rfc3339},
};

use super::catalog::{Field, Metric, Subject};
use crate::error::QueryError;

/// The most metrics one request may ask for (every metric once).
pub const MAX_METRICS: usize = Metric::ALL.len();
/// The most fields one request may group by.
pub const MAX_GROUP_BY: usize = 4;
/// The most values one filter may list.
pub const MAX_FILTER_VALUES: usize = 1000;
/// The longest value a filter may list.
pub const MAX_FILTER_VALUE_BYTES: usize = 1024;
/// The longest time range one request may cover.
pub const MAX_RANGE_DAYS: i64 = 400;
/// The most time buckets `step` may cut the range into.
pub const MAX_BUCKETS: i64 = 10_000;

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// A metrics request as sent (docs/api.md#metrics-query). Checked into a [`MetricPlan`] before
/// any store is asked; every refusal names the field and says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricQuery {
    /// Runs and calls that *started* in [`from`, `to`) are counted.
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(schema_with = super::openapi::to_schema)]
    pub to: String,
    #[schema(schema_with = super::openapi::metrics_schema)]
    pub metrics: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = super::openapi::group_by_schema)]
    pub group_by: Vec<String>,
    /// Field → accepted values (any of them).
    #[serde(default)]
    #[schema(schema_with = super::openapi::filters_schema)]
    pub filters: BTreeMap<String, Vec<String>>,
    /// Time buckets of this length (`1m`, `1h`, `1d`…), aligned to the Unix epoch.
    #[serde(default)]
    #[schema(schema_with = super::openapi::step_schema)]
    pub step: Option<String>,
    /// Shadow runs (run tag `vigil.shadow`) and their calls: left out unless asked for.
    #[serde(default, skip_serializing_if = "ShadowRuns::is_default")]
    pub shadow: ShadowRuns,
}

/// Which runs count by their shadow mark ([`vigil_schemas::SHADOW_TAG`]). A run is a shadow run
/// when any stored version of it carries the mark; a call belongs to its run's side.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ShadowRuns {
    /// Production only: what dashboards and alerts show.
    #[default]
    Exclude,
    /// Both.
    Include,
    /// Shadow runs alone (to compare them with the runs they shadowed).
    Only,
}

impl ShadowRuns {
    pub const ALL: [ShadowRuns; 3] = [ShadowRuns::Exclude, ShadowRuns::Include, ShadowRuns::Only];

    pub fn is_default(&self) -> bool {
        *self == ShadowRuns::default()
    }

    pub fn name(self) -> &'static str {
        match self {
            ShadowRuns::Exclude => "exclude",
            ShadowRuns::Include => "include",
            ShadowRuns::Only => "only",
        }
    }
}

impl std::fmt::Display for ShadowRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// As on a command line: `exclude`, `include` or `only`.
impl std::str::FromStr for ShadowRuns {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ShadowRuns::ALL
            .into_iter()
            .find(|shadow| shadow.name() == text)
            .ok_or_else(|| format!("{text:?} is not exclude, include or only"))
    }
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricPlan {
    pub from_ns: i64,
    pub to_ns: i64,
    /// In the order asked, without repeats; `unpriced_model_calls` is added after them when a
    /// cost is asked for without it.
    pub metrics: Vec<Metric>,
    /// In the order asked.
    pub group_by: Vec<Field>,
    /// By field; each value list sorted and without repeats.
    pub filters: BTreeMap<Field, Vec<String>>,
    pub step_ns: Option<i64>,
    pub shadow: ShadowRuns,
    /// Each run its own group, keyed by its trace id in the first group key (and `group_by`
    /// empty): the facts of every run, for comparing two sets of runs ([`crate::cohort`]).
    /// Never set by a request.
    pub per_run: bool,
}

impl MetricPlan {
    /// The subjects the plan's metrics count.
    pub fn subjects(&self) -> Vec<Subject> {
        let mut subjects: Vec<Subject> = Vec::new();
        for metric in &self.metrics {
            if !subjects.contains(&metric.subject()) {
                subjects.push(metric.subject());
            }
        }
        subjects
    }
}

impl MetricQuery {
    /// Validates the request.
    pub fn plan(&self) -> Result<MetricPlan, QueryError> {
        let from_ns = time("from", &self.from)?;
        let to_ns = time("to", &self.to)?;
        if to_ns <= from_ns {
            return Err(QueryError::invalid("to", "must be after from"));
        }
        // Both ends may be centuries apart: their distance need not fit in i64.
        if to_ns.abs_diff(from_ns) > (MAX_RANGE_DAYS * NANOS_PER_DAY).unsigned_abs() {
            return Err(QueryError::invalid(
                "to",
                format!("the range from..to may cover at most {MAX_RANGE_DAYS} days"),
            ));
        }

        if self.metrics.is_empty() {
            return Err(QueryError::invalid(
                "metrics",
                format!("name at least one metric: {}", Metric::names()),
            ));
        }
        let mut metrics = Vec::new();
        for name in &self.metrics {
            let metric = Metric::parse(name).ok_or_else(|| {
                QueryError::invalid(
                    "metrics",
                    format!("unknown metric {name:?}; one of {}", Metric::names()),
                )
            })?;
            if !metrics.contains(&metric) {
                metrics.push(metric);
            }
        }
        // A cost is never read without the count of calls it could not price.
        let asks_cost =
            metrics.contains(&Metric::CostUsd) || metrics.contains(&Metric::CostPerRunUsd);
        if asks_cost && !metrics.contains(&Metric::UnpricedModelCalls) {
            metrics.push(Metric::UnpricedModelCalls);
        }
        if self.metrics.len() > MAX_METRICS {
            return Err(QueryError::invalid(
                "metrics",
                format!("at most {MAX_METRICS} metrics per request"),
            ));
        }

        let mut group_by = Vec::new();
        for name in &self.group_by {
            let field = field("group_by", name)?;
            if group_by.contains(&field) {
                return Err(QueryError::invalid(
                    "group_by",
                    format!("{field} is listed twice"),
                ));
            }
            group_by.push(field);
        }
        if group_by.len() > MAX_GROUP_BY {
            return Err(QueryError::invalid(
                "group_by",
                format!("at most {MAX_GROUP_BY} fields"),
            ));
        }
        let by_model_call = group_by.iter().any(|f| f.subject() == Subject::ModelCall);
        let by_tool_call = group_by.iter().any(|f| f.subject() == Subject::ToolCall);
        if by_model_call && by_tool_call {
            return Err(QueryError::invalid(
                "group_by",
                "cannot group by a model-call field and a tool-call field together: a run's model calls and tool calls are not paired",
            ));
        }

        let filters = check_filters(&self.filters)?;

        for metric in &metrics {
            for field in group_by.iter().chain(filters.keys()) {
                if let Some(why) = field.refuses(*metric) {
                    let request_field = if group_by.contains(field) {
                        "group_by"
                    } else {
                        "filters"
                    };
                    return Err(QueryError::invalid(request_field, why));
                }
            }
        }

        let step_ns = self
            .step
            .as_deref()
            .map(|text| {
                let step = parse_duration_ns(text)
                    .filter(|ns| *ns >= 1_000_000_000)
                    .ok_or_else(|| {
                        QueryError::invalid(
                            "step",
                            format!("{text:?} is not a duration of at least 1s (e.g. 1m, 1h, 1d)"),
                        )
                    })?;
                let buckets = (to_ns - from_ns + step - 1) / step;
                if buckets > MAX_BUCKETS {
                    return Err(QueryError::invalid(
                        "step",
                        format!(
                            "{text} cuts the range into {buckets} buckets; at most {MAX_BUCKETS}"
                        ),
                    ));
                }
                Ok(step)
            })
            .transpose()?;

        Ok(MetricPlan {
            from_ns,
            to_ns,
            metrics,
            group_by,
            filters,
            step_ns,
            shadow: self.shadow,
            per_run: false,
        })
    }
}

pub(crate) fn time(field: &'static str, text: &str) -> Result<i64, QueryError> {
    parse_rfc3339(text).ok_or_else(|| {
        QueryError::invalid(
            field,
            format!("{text:?} is not an RFC 3339 time (e.g. 2026-11-23T00:00:00Z)"),
        )
    })
}

fn field(request_field: &'static str, name: &str) -> Result<Field, QueryError> {
    Field::parse(name).ok_or_else(|| {
        QueryError::invalid(
            request_field,
            format!("unknown field {name:?}; one of {}", Field::names()),
        )
    })
}

/// Checks request filters (field → accepted values): known fields, between 1 and
/// [`MAX_FILTER_VALUES`] values of at most [`MAX_FILTER_VALUE_BYTES`] each, known outcomes;
/// each value list sorted and without repeats.
pub(crate) fn check_filters(
    filters: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<Field, Vec<String>>, QueryError> {
    let mut checked = BTreeMap::new();
    for (name, values) in filters {
        let field = field("filters", name)?;
        if values.is_empty() || values.len() > MAX_FILTER_VALUES {
            return Err(QueryError::invalid(
                "filters",
                format!("{field}: list between 1 and {MAX_FILTER_VALUES} values"),
            ));
        }
        if let Some(long) = values.iter().find(|v| v.len() > MAX_FILTER_VALUE_BYTES) {
            return Err(QueryError::invalid(
                "filters",
                format!(
                    "{field}: a value of {} bytes is longer than the limit of {MAX_FILTER_VALUE_BYTES} bytes",
                    long.len()
                ),
            ));
        }
        if field == Field::Outcome
            && let Some(bad) = values.iter().find(|v| Outcome::parse(v).is_none())
        {
            let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
            return Err(QueryError::invalid(
                "filters",
                format!(
                    "outcome: unknown outcome {bad:?}; one of {}",
                    names.join(", ")
                ),
            ));
        }
        let mut values = values.clone();
        values.sort();
        values.dedup();
        checked.insert(field, values);
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(json: serde_json::Value) -> MetricQuery {
        serde_json::from_value(json).unwrap()
    }

    fn refusal(json: serde_json::Value) -> (Option<&'static str>, String) {
        let err = query(json).plan().unwrap_err();
        (err.field(), err.to_string())
    }

    /// Found by the metric-query fuzz target: ends centuries apart overflowed the range check.
    #[test]
    fn a_range_wider_than_i64_nanoseconds_is_refused() {
        let (field, _) = refusal(serde_json::json!({
            "from": "1893-11-01T00:00:00Z", "to": "2226-11-24T00:00:00Z", "metrics": ["runs"]
        }));
        assert_eq!(field, Some("to"));
    }

    #[test]
    fn the_api_md_example_plans() {
        let plan = query(serde_json::json!({
            "from": "2026-11-23T00:00:00Z", "to": "2026-11-24T00:00:00Z",
            "metrics": ["runs", "completion_rate", "run_latency_p99_ms", "cost_usd", "runs"],
            "group_by": ["agent"], "filters": {"environment": ["production", "production"]},
            "step": "1h"
        }))
        .plan()
        .unwrap();
        // Repeats dropped; a cost brings the count of calls it could not price.
        assert_eq!(
            plan.metrics,
            vec![
                Metric::Runs,
                Metric::CompletionRate,
                Metric::RunLatencyP99Ms,
                Metric::CostUsd,
                Metric::UnpricedModelCalls
            ]
        );
        assert_eq!(plan.group_by, vec![Field::Agent]);
        assert_eq!(
            plan.filters[&Field::Environment],
            vec!["production".to_string()]
        );
        assert_eq!(plan.step_ns, Some(3_600_000_000_000));
        assert_eq!(plan.to_ns - plan.from_ns, NANOS_PER_DAY);
        assert_eq!(plan.subjects(), vec![Subject::Run]);
    }

    #[test]
    fn mistakes_are_refused_naming_the_field_and_the_reason() {
        let base = |extra: serde_json::Value| {
            let mut q = serde_json::json!({
                "from": "2026-11-23T00:00:00Z", "to": "2026-11-24T00:00:00Z", "metrics": ["runs"]
            });
            for (k, v) in extra.as_object().unwrap() {
                q[k] = v.clone();
            }
            q
        };
        let cases = [
            (
                serde_json::json!({"metrics": ["p99"]}),
                "metrics",
                "unknown metric \"p99\"",
            ),
            (
                serde_json::json!({"metrics": []}),
                "metrics",
                "at least one",
            ),
            (
                serde_json::json!({"group_by": ["colour"]}),
                "group_by",
                "unknown field \"colour\"",
            ),
            (
                serde_json::json!({"group_by": ["agent", "agent"]}),
                "group_by",
                "twice",
            ),
            (
                serde_json::json!({"group_by": ["model", "tool"]}),
                "group_by",
                "not paired",
            ),
            (
                serde_json::json!({"metrics": ["tool_error_rate"], "group_by": ["model"]}),
                "group_by",
                "a tool call is not made by a model call",
            ),
            (
                serde_json::json!({"metrics": ["model_calls"], "filters": {"tool": ["search"]}}),
                "filters",
                "a model call is not a tool call",
            ),
            (
                serde_json::json!({"filters": {"outcome": ["exploded"]}}),
                "filters",
                "unknown outcome",
            ),
            (
                serde_json::json!({"filters": {"agent": []}}),
                "filters",
                "between 1 and",
            ),
            (
                serde_json::json!({"to": "2026-11-22T00:00:00Z"}),
                "to",
                "after from",
            ),
            (serde_json::json!({"from": "yesterday"}), "from", "RFC 3339"),
            (
                serde_json::json!({"to": "2028-01-01T00:00:00Z"}),
                "to",
                "400 days",
            ),
            (serde_json::json!({"step": "1ms"}), "step", "at least 1s"),
            (serde_json::json!({"step": "1s"}), "step", "86400 buckets"),
        ];
        for (extra, field, message) in cases {
            let (got_field, text) = refusal(base(extra.clone()));
            assert_eq!(got_field, Some(field), "{extra}: {text}");
            assert!(text.contains(message), "{extra}: {text}");
        }
        let unknown = serde_json::from_value::<MetricQuery>(serde_json::json!({
            "from": "x", "to": "y", "metrics": [], "colour": 1
        }));
        assert!(unknown.unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn run_metrics_may_be_filtered_by_a_model_and_a_tool_together() {
        let plan = query(serde_json::json!({
            "from": "2026-11-23T00:00:00Z", "to": "2026-11-24T00:00:00Z",
            "metrics": ["runs"], "filters": {"model": ["gpt-4o"], "tool": ["search"]}
        }))
        .plan()
        .unwrap();
        assert_eq!(plan.filters.len(), 2);
    }
}
