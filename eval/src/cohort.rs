//! Two cohorts of production runs (canary and production, release A and B, prompt v7 and v8)
//! compared metric by metric. The runs differ between cohorts, so every test is unpaired:
//! Fisher's exact test for rates (each with its Wilson interval), the Mann–Whitney U test for
//! latency, cost and tool calls; a verdict per metric at the chosen α, in the same shape as an
//! experiment comparison ([`crate::compare`]).

use serde::Serialize;
use utoipa::ToSchema;
use vigil_schemas::{CohortRun, percentile::exact_percentile, time::NANOS_PER_MILLI};

use crate::{
    compare::{MetricComparison, Test, Verdict, verdict},
    experiment::nanos_to_usd,
    stats::{fisher_exact, mann_whitney_u, wilson},
};

/// The comparison of two cohorts.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CohortComparison {
    pub alpha: f64,
    pub baseline_runs: usize,
    pub candidate_runs: usize,
    /// Runs left out of `cost_per_run_usd`: a model call of theirs has no price.
    pub unpriced_runs: [usize; 2],
    /// `completion_rate`, `failure_rate`, `silent_partial_failure_rate`,
    /// `feedback_positive_rate`, `latency_p50_ms`, `latency_p90_ms`, `latency_p99_ms`,
    /// `cost_per_run_usd`, `tool_calls_per_run`, in that order. `pairs` is what the figure counts
    /// in both cohorts together (runs, completed runs, scores, priced runs).
    pub metrics: Vec<MetricComparison>,
}

/// Compares `candidate` with `baseline` at `alpha`.
pub fn compare_cohorts(
    baseline: &[CohortRun],
    candidate: &[CohortRun],
    alpha: f64,
) -> CohortComparison {
    let cohorts = [baseline, candidate];
    let count = |which: &[CohortRun], holds: fn(&CohortRun) -> bool| {
        which.iter().filter(|r| holds(r)).count() as u64
    };
    let runs = cohorts.map(|c| c.len() as u64);
    let completed = cohorts.map(|c| count(c, |r| r.completed));
    let mut metrics = vec![
        rate("completion_rate", completed, runs, true, alpha),
        rate(
            "failure_rate",
            cohorts.map(|c| count(c, |r| r.failed)),
            runs,
            false,
            alpha,
        ),
        rate(
            "silent_partial_failure_rate",
            cohorts.map(|c| count(c, |r| r.silent_partial_failure)),
            completed,
            false,
            alpha,
        ),
        rate(
            "feedback_positive_rate",
            cohorts.map(|c| c.iter().map(|r| r.feedback_positive).sum()),
            cohorts.map(|c| c.iter().map(|r| r.feedback_total).sum()),
            true,
            alpha,
        ),
    ];

    let durations = cohorts.map(|c| {
        let mut ms: Vec<f64> = c
            .iter()
            .map(|r| r.duration_ns as f64 / NANOS_PER_MILLI as f64)
            .collect();
        ms.sort_unstable_by(f64::total_cmp);
        ms
    });
    // One test of the durations answers for every percentile of them.
    let latency = Numbers::new(&durations, alpha);
    for (name, percent) in [
        ("latency_p50_ms", 50),
        ("latency_p90_ms", 90),
        ("latency_p99_ms", 99),
    ] {
        let at = durations.each_ref().map(|d| exact_percentile(d, percent));
        metrics.push(latency.metric(name, at, false));
    }

    let costs = cohorts.map(|c| {
        c.iter()
            .filter_map(|r| r.cost_nanos)
            .map(nanos_to_usd)
            .collect::<Vec<f64>>()
    });
    let cost = Numbers::new(&costs, alpha);
    metrics.push(cost.metric("cost_per_run_usd", costs.each_ref().map(|c| mean(c)), false));
    let tools = cohorts.map(|c| c.iter().map(|r| r.tool_calls as f64).collect::<Vec<f64>>());
    let tool = Numbers::new(&tools, alpha);
    metrics.push(tool.metric(
        "tool_calls_per_run",
        tools.each_ref().map(|t| mean(t)),
        false,
    ));

    CohortComparison {
        alpha,
        baseline_runs: baseline.len(),
        candidate_runs: candidate.len(),
        unpriced_runs: [0, 1].map(|i| cohorts[i].len() - costs[i].len()),
        metrics,
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// A rate of each cohort, `yes[i]` of `of[i]`: Fisher's exact test, Wilson intervals.
fn rate(
    name: &str,
    yes: [u64; 2],
    of: [u64; 2],
    higher_is_better: bool,
    alpha: f64,
) -> MetricComparison {
    let value = |i: usize| (of[i] > 0).then(|| yes[i] as f64 / of[i] as f64);
    let interval = |i: usize| wilson(yes[i], of[i], alpha).map(|(low, high)| [low, high]);
    let (baseline, candidate) = (value(0), value(1));
    let p_value = (of[0] > 0 && of[1] > 0)
        .then(|| fisher_exact(yes[0], of[0] - yes[0], yes[1], of[1] - yes[1]));
    comparison(
        name,
        (of[0] + of[1]) as usize,
        [baseline, candidate],
        [interval(0), interval(1)],
        p_value,
        Test::FisherExact,
        higher_is_better,
        alpha,
    )
}

/// The two cohorts' samples of one quantity, and their Mann–Whitney test.
struct Numbers {
    counted: usize,
    p_value: Option<f64>,
    alpha: f64,
}

impl Numbers {
    fn new(samples: &[Vec<f64>; 2], alpha: f64) -> Numbers {
        Numbers {
            counted: samples[0].len() + samples[1].len(),
            p_value: mann_whitney_u(&samples[0], &samples[1]).map(|r| r.p_value),
            alpha,
        }
    }

    /// A figure of the samples (a mean, a percentile), tested by their ranks.
    fn metric(
        &self,
        name: &str,
        values: [Option<f64>; 2],
        higher_is_better: bool,
    ) -> MetricComparison {
        comparison(
            name,
            self.counted,
            values,
            [None, None],
            self.p_value,
            Test::MannWhitneyU,
            higher_is_better,
            self.alpha,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn comparison(
    name: &str,
    pairs: usize,
    [baseline, candidate]: [Option<f64>; 2],
    [baseline_interval, candidate_interval]: [Option<[f64; 2]>; 2],
    p_value: Option<f64>,
    test: Test,
    higher_is_better: bool,
    alpha: f64,
) -> MetricComparison {
    let difference = candidate.zip(baseline).map(|(c, b)| c - b);
    let went_up = difference.is_some_and(|d| d > 0.0);
    let verdict = if difference.is_none() {
        Verdict::NoSignificantChange
    } else {
        verdict(p_value, alpha, went_up == higher_is_better)
    };
    MetricComparison {
        metric: name.to_string(),
        pairs,
        baseline,
        candidate,
        difference,
        baseline_interval,
        candidate_interval,
        p_value,
        test,
        higher_is_better,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(completed: bool, ms: i64, cost: Option<i64>, tools: u64) -> CohortRun {
        CohortRun {
            trace_id: format!("{ms:032x}"),
            completed,
            failed: !completed,
            silent_partial_failure: completed && tools > 2,
            duration_ns: ms * 1_000_000,
            cost_nanos: cost,
            tool_calls: tools,
            feedback_positive: u64::from(completed),
            feedback_total: 1,
        }
    }

    #[test]
    fn figures_follow_the_definitions() {
        let baseline = [
            run(true, 100, Some(1_000_000_000), 1),
            run(true, 300, Some(3_000_000_000), 3),
            run(false, 200, None, 0),
        ];
        let candidate = [run(false, 1_000, Some(0), 0), run(false, 2_000, Some(0), 0)];
        let c = compare_cohorts(&baseline, &candidate, 0.05);
        let figure = |name: &str| {
            let m = c.metrics.iter().find(|m| m.metric == name).expect(name);
            (m.baseline, m.candidate, m.pairs)
        };
        assert_eq!((c.baseline_runs, c.candidate_runs), (3, 2));
        assert_eq!(c.unpriced_runs, [1, 0]);
        assert_eq!(figure("completion_rate"), (Some(2.0 / 3.0), Some(0.0), 5));
        assert_eq!(figure("failure_rate"), (Some(1.0 / 3.0), Some(1.0), 5));
        // Of the completed runs only: none in the candidate.
        assert_eq!(figure("silent_partial_failure_rate"), (Some(0.5), None, 2));
        // Sorted 100, 200, 300: p50 is element ⌊0.5·3⌋ = 1; p99 element 2.
        assert_eq!(figure("latency_p50_ms"), (Some(200.0), Some(2_000.0), 5));
        assert_eq!(figure("latency_p99_ms"), (Some(300.0), Some(2_000.0), 5));
        assert_eq!(figure("cost_per_run_usd"), (Some(2.0), Some(0.0), 4));
        assert_eq!(
            figure("tool_calls_per_run"),
            (Some(4.0 / 3.0), Some(0.0), 5)
        );
        let silent = &c.metrics[2];
        assert_eq!(
            (silent.p_value, silent.verdict),
            (None, Verdict::NoSignificantChange)
        );
        assert_eq!(c.metrics.len(), 9);
    }
}
