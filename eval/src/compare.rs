//! Two experiments on the same dataset version, compared item by item: the items are the same,
//! so every test is paired (McNemar's exact test for completion and each evaluator's verdict,
//! the Wilcoxon signed-rank test for scores, cost, latency and tool calls), each rate with its
//! Wilson interval, each metric with a verdict at the chosen α. Only items whose run is there in
//! both experiments are compared.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    experiment::{ItemResult, ItemStatus},
    stats::{mcnemar_exact, wilcoxon, wilson},
};

/// The test behind a metric's p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    McnemarExact,
    WilcoxonSignedRank,
    FisherExact,
    MannWhitneyU,
}

/// What a metric did, at α.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Improved,
    Regressed,
    NoSignificantChange,
}

/// One metric of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MetricComparison {
    /// `completion_rate`, `pass_rate.<evaluator>`, `score.<name>` (mean), `cost_usd`,
    /// `latency_ms`, `tool_calls` (means per item).
    pub metric: String,
    /// Items compared: done in both (and, for a verdict or a score, given in both).
    pub pairs: usize,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    /// `candidate − baseline`.
    pub difference: Option<f64>,
    /// A rate's Wilson interval at 1 − α.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_interval: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_interval: Option<[f64; 2]>,
    /// Two-sided; `null` when no pair differs.
    pub p_value: Option<f64>,
    pub test: Test,
    pub higher_is_better: bool,
    pub verdict: Verdict,
}

/// How an item's result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// It completed, or an evaluator passed it, in the baseline, and no longer does.
    NewlyFailing,
    /// The other way round.
    NewlyPassing,
    /// Same verdicts, another output or other scores.
    Changed,
}

/// An item whose result changed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ItemChange {
    pub item_id: String,
    pub change: Change,
    pub baseline: ItemResult,
    pub candidate: ItemResult,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Comparison {
    pub alpha: f64,
    pub metrics: Vec<MetricComparison>,
    /// Newly failing items first, then newly passing, then changed; by item id within each.
    pub items: Vec<ItemChange>,
}

/// Compares `candidate` with `baseline`, both the results of the same dataset version's items.
pub fn compare(baseline: &[ItemResult], candidate: &[ItemResult], alpha: f64) -> Comparison {
    let by_id: BTreeMap<&str, &ItemResult> =
        candidate.iter().map(|r| (r.item_id.as_str(), r)).collect();
    let pairs: Vec<(&ItemResult, &ItemResult)> = baseline
        .iter()
        .filter(|b| b.status == ItemStatus::Done)
        .filter_map(|b| Some((b, *by_id.get(b.item_id.as_str())?)))
        .filter(|(_, c)| c.status == ItemStatus::Done)
        .collect();

    let mut metrics = vec![paired_rate("completion_rate", &pairs, alpha, |r| {
        r.completed
    })];
    let evaluators: Vec<&String> = pairs
        .first()
        .map(|(b, _)| b.evaluations.keys().collect())
        .unwrap_or_default();
    for name in evaluators {
        metrics.push(paired_rate(
            &format!("pass_rate.{name}"),
            &pairs,
            alpha,
            |r| r.evaluations.get(name.as_str()).copied().flatten(),
        ));
    }
    let mut score_names: Vec<&String> = pairs
        .iter()
        .flat_map(|(b, c)| b.scores.keys().filter(|k| c.scores.contains_key(*k)))
        .collect();
    score_names.sort();
    score_names.dedup();
    for name in score_names {
        metrics.push(paired_numbers(
            &format!("score.{name}"),
            &pairs,
            alpha,
            true,
            |r| r.scores.get(name.as_str()).copied(),
        ));
    }
    metrics.push(paired_numbers("cost_usd", &pairs, alpha, false, |r| {
        r.cost_usd
    }));
    metrics.push(paired_numbers("latency_ms", &pairs, alpha, false, |r| {
        r.latency_ms
    }));
    metrics.push(paired_numbers("tool_calls", &pairs, alpha, false, |r| {
        r.tool_calls.map(|n| n as f64)
    }));

    let mut items: Vec<ItemChange> = pairs
        .iter()
        .filter_map(|(b, c)| {
            let change = change_of(b, c)?;
            Some(ItemChange {
                item_id: b.item_id.clone(),
                change,
                baseline: (*b).clone(),
                candidate: (*c).clone(),
            })
        })
        .collect();
    items.sort_by(|x, y| x.change.cmp(&y.change).then(x.item_id.cmp(&y.item_id)));
    Comparison {
        alpha,
        metrics,
        items,
    }
}

fn change_of(b: &ItemResult, c: &ItemResult) -> Option<Change> {
    let verdicts = |r: &ItemResult| {
        let mut v = vec![r.completed];
        v.extend(r.evaluations.values().copied());
        v
    };
    let (vb, vc) = (verdicts(b), verdicts(c));
    let lost = vb
        .iter()
        .zip(&vc)
        .any(|(x, y)| *x == Some(true) && *y == Some(false));
    let won = vb
        .iter()
        .zip(&vc)
        .any(|(x, y)| *x == Some(false) && *y == Some(true));
    if lost {
        Some(Change::NewlyFailing)
    } else if won {
        Some(Change::NewlyPassing)
    } else if b.output != c.output || b.scores != c.scores {
        Some(Change::Changed)
    } else {
        None
    }
}

pub(crate) fn verdict(p: Option<f64>, alpha: f64, better: bool) -> Verdict {
    match p {
        Some(p) if p < alpha => {
            if better {
                Verdict::Improved
            } else {
                Verdict::Regressed
            }
        }
        _ => Verdict::NoSignificantChange,
    }
}

/// A pass/fail figure of each pair: McNemar's exact test, Wilson intervals.
fn paired_rate(
    metric: &str,
    pairs: &[(&ItemResult, &ItemResult)],
    alpha: f64,
    passed: impl Fn(&ItemResult) -> Option<bool>,
) -> MetricComparison {
    let both: Vec<(bool, bool)> = pairs
        .iter()
        .filter_map(|(b, c)| Some((passed(b)?, passed(c)?)))
        .collect();
    let n = both.len() as u64;
    let base = both.iter().filter(|(b, _)| *b).count() as u64;
    let cand = both.iter().filter(|(_, c)| *c).count() as u64;
    let lost = both.iter().filter(|(b, c)| *b && !*c).count() as u64;
    let won = both.iter().filter(|(b, c)| !*b && *c).count() as u64;
    let rate = |k: u64| (n > 0).then(|| k as f64 / n as f64);
    let interval = |k: u64| wilson(k, n, alpha).map(|(low, high)| [low, high]);
    let p_value = (lost + won > 0).then(|| mcnemar_exact(lost, won));
    MetricComparison {
        metric: metric.to_string(),
        pairs: both.len(),
        baseline: rate(base),
        candidate: rate(cand),
        difference: rate(cand).zip(rate(base)).map(|(c, b)| c - b),
        baseline_interval: interval(base),
        candidate_interval: interval(cand),
        p_value,
        test: Test::McnemarExact,
        higher_is_better: true,
        verdict: verdict(p_value, alpha, won > lost),
    }
}

/// A number of each pair: the Wilcoxon signed-rank test on the differences, means compared.
fn paired_numbers(
    metric: &str,
    pairs: &[(&ItemResult, &ItemResult)],
    alpha: f64,
    higher_is_better: bool,
    value: impl Fn(&ItemResult) -> Option<f64>,
) -> MetricComparison {
    let both: Vec<(f64, f64)> = pairs
        .iter()
        .filter_map(|(b, c)| Some((value(b)?, value(c)?)))
        .collect();
    let n = both.len();
    let mean =
        |f: fn(&(f64, f64)) -> f64| (n > 0).then(|| both.iter().map(f).sum::<f64>() / n as f64);
    let (base, cand) = (mean(|p| p.0), mean(|p| p.1));
    let differences: Vec<f64> = both.iter().map(|(b, c)| c - b).collect();
    let p_value = wilcoxon(&differences).map(|r| r.p_value);
    let difference = cand.zip(base).map(|(c, b)| c - b);
    let went_up = difference.is_some_and(|d| d > 0.0);
    MetricComparison {
        metric: metric.to_string(),
        pairs: n,
        baseline: base,
        candidate: cand,
        difference,
        baseline_interval: None,
        candidate_interval: None,
        p_value,
        test: Test::WilcoxonSignedRank,
        higher_is_better,
        verdict: verdict(p_value, alpha, went_up == higher_is_better),
    }
}
