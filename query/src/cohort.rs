//! The runs of a cohort (a set of production runs chosen by metric filters over a time range,
//! such as release 2.3 or prompt version v8), one row of facts each, for comparing two cohorts
//! with unpaired tests. They come from the metric engine's own run statement, grouped by run
//! ([`MetricPlan::per_run`]): the same newest versions, filters (a call field such as
//! `prompt_version` keeps the runs that made at least one such call) and definitions as every
//! metric, on both stores, so a cohort's figures equal the metric query's for the same filters.

use std::collections::BTreeMap;

use serde::Serialize;
use vigil_schemas::CohortRun;

use crate::{
    error::QueryError,
    metrics::{
        MetricPlan, MetricQuery, ShadowRuns, Subject,
        aggregate::RunAggregate,
        answer::{Values, merge, slot},
        rows::Aggregates,
    },
};

/// The metrics whose aggregates make a run's facts.
const FACT_METRICS: [&str; 8] = [
    "runs",
    "completed_runs",
    "failed_runs",
    "silent_partial_failures",
    "run_latency_p50_ms",
    "cost_usd",
    "tool_calls_per_run",
    "feedback_positive_rate",
];

/// The plan that reads the facts of every run matching `filters` that started in
/// [`from`, `to`), shadow runs left out, counted too or alone as `shadow` says: checked as a
/// metric query is (every refusal names its field).
pub fn plan(
    from: &str,
    to: &str,
    filters: &BTreeMap<String, Vec<String>>,
    shadow: ShadowRuns,
) -> Result<MetricPlan, QueryError> {
    let mut plan = MetricQuery {
        from: from.to_string(),
        to: to.to_string(),
        metrics: FACT_METRICS.iter().map(|m| m.to_string()).collect(),
        group_by: Vec::new(),
        filters: filters.clone(),
        step: None,
        shadow,
    }
    .plan()?;
    plan.per_run = true;
    Ok(plan)
}

/// The facts of each run the statements of a [`plan`] answered (its trace id is the first group
/// key), by trace id.
pub(crate) fn facts(answers: Vec<(Subject, Vec<Aggregates>)>) -> Vec<CohortRun> {
    use RunAggregate::*;
    merge(answers)
        .into_iter()
        .filter_map(|(([trace_id, ..], _), values)| {
            let run = Values::<RunAggregate>::new(values[slot(Subject::Run)].as_deref());
            // Every part of the run statement answers each run: no runs, no run.
            if run.get(Runs) == 0 {
                return None;
            }
            Some(CohortRun {
                trace_id,
                completed: run.get(Completed) > 0,
                failed: run.get(Failed) > 0,
                silent_partial_failure: run.get(Silent) > 0,
                duration_ns: run.get(LatencyP50),
                cost_nanos: (run.get(UnpricedCalls) == 0).then(|| run.get(CostNanos)),
                tool_calls: run.get(ToolCalls).max(0) as u64,
                feedback_positive: run.get(FeedbackPositive).max(0) as u64,
                feedback_total: run.get(FeedbackTotal).max(0) as u64,
            })
        })
        .collect()
}

/// What makes a run one of the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Worst {
    /// Failed (`failure`, `timeout`), then completed with a failed call (a silent partial
    /// failure); among them, the most negative feedback, then the longest.
    Failure,
    /// The most negative feedback (boolean scores that are false), then the lowest share of
    /// positive feedback, then the longest; only runs with negative feedback.
    Feedback,
}

/// The `limit` worst of `runs` by `by`, worst first, leaving out `known` trace ids (runs already
/// taken); ties go to the lower trace id, so the choice is repeatable.
pub fn worst(
    runs: Vec<CohortRun>,
    by: Worst,
    limit: usize,
    known: &std::collections::HashSet<String>,
) -> Vec<CohortRun> {
    let negative = |r: &CohortRun| r.feedback_total - r.feedback_positive;
    let mut bad: Vec<CohortRun> = runs
        .into_iter()
        .filter(|r| !known.contains(&r.trace_id))
        .filter(|r| match by {
            Worst::Failure => r.failed || r.silent_partial_failure,
            Worst::Feedback => negative(r) > 0,
        })
        .collect();
    bad.sort_by(|a, b| {
        let failure =
            || (b.failed, b.silent_partial_failure).cmp(&(a.failed, a.silent_partial_failure));
        // a's share of positive feedback below b's: a/n < b/m ⇔ a·m < b·n.
        let share = || {
            (a.feedback_positive * b.feedback_total).cmp(&(b.feedback_positive * a.feedback_total))
        };
        let ranked = match by {
            Worst::Failure => failure().then_with(|| negative(b).cmp(&negative(a))),
            Worst::Feedback => negative(b).cmp(&negative(a)).then_with(share),
        };
        ranked
            .then_with(|| b.duration_ns.cmp(&a.duration_ns))
            .then_with(|| a.trace_id.cmp(&b.trace_id))
    });
    bad.truncate(limit);
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, failed: bool, silent: bool, positive: u64, total: u64, ms: i64) -> CohortRun {
        CohortRun {
            trace_id: id.into(),
            completed: !failed,
            failed,
            silent_partial_failure: silent,
            duration_ns: ms * 1_000_000,
            cost_nanos: Some(0),
            tool_calls: 0,
            feedback_positive: positive,
            feedback_total: total,
        }
    }

    #[test]
    fn the_worst_runs_come_first_and_known_ones_are_left_out() {
        let runs = vec![
            run("a", false, false, 0, 2, 10),
            run("b", true, false, 0, 0, 10),
            run("c", false, true, 0, 1, 10),
            run("d", true, false, 1, 3, 5),
            run("e", false, false, 3, 3, 99),
            run("f", false, false, 1, 2, 10),
        ];
        let ids = |picked: Vec<CohortRun>| -> Vec<String> {
            picked.into_iter().map(|r| r.trace_id).collect()
        };
        let none = std::collections::HashSet::new();
        // Failed (d has negative feedback) before silent; runs without failure are not picked.
        assert_eq!(
            ids(worst(runs.clone(), Worst::Failure, 10, &none)),
            ["d", "b", "c"]
        );
        // Two negative each: a (0 of 2 positive) before d (1 of 3); then c, f (one each: c has
        // the lower share).
        assert_eq!(
            ids(worst(runs.clone(), Worst::Feedback, 10, &none)),
            ["a", "d", "c", "f"]
        );
        let known = std::collections::HashSet::from(["a".to_string()]);
        assert_eq!(ids(worst(runs, Worst::Feedback, 2, &known)), ["d", "c"]);
    }

    #[test]
    fn a_cohort_is_checked_as_a_metric_query_is() {
        let filters = BTreeMap::from([("release".to_string(), vec!["2.3".to_string()])]);
        let shadow = ShadowRuns::Only;
        let plan = plan(
            "2026-11-01T00:00:00Z",
            "2026-11-02T00:00:00Z",
            &filters,
            shadow,
        );
        let plan = plan.expect("plan");
        assert!(plan.per_run && plan.group_by.is_empty());
        assert_eq!(plan.shadow, ShadowRuns::Only);
        let bad = BTreeMap::from([("colour".to_string(), vec!["red".to_string()])]);
        let refused = plan_field(plan_of(&bad));
        assert_eq!(refused.as_deref(), Some("filters"));
        let backwards = super::plan(
            "2026-11-02T00:00:00Z",
            "2026-11-01T00:00:00Z",
            &filters,
            ShadowRuns::Exclude,
        );
        assert_eq!(plan_field(backwards).as_deref(), Some("to"));
    }

    fn plan_of(filters: &BTreeMap<String, Vec<String>>) -> Result<MetricPlan, QueryError> {
        let shadow = ShadowRuns::Exclude;
        plan(
            "2026-11-01T00:00:00Z",
            "2026-11-02T00:00:00Z",
            filters,
            shadow,
        )
    }

    fn plan_field(result: Result<MetricPlan, QueryError>) -> Option<String> {
        result.err().and_then(|e| e.field().map(str::to_string))
    }
}
