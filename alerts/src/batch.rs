//! Rules that share a query are evaluated by one: rules of the same project, filters, grouping,
//! window and interval are evaluated at the same aligned times, so one metric request with the
//! union of their metrics answers them all. Anomaly rules of the batch add one request per
//! baseline day, with the union of theirs.

use std::{collections::BTreeMap, sync::Arc};

use vigil_query::{
    QueryError, TraceStore,
    metrics::{Field, Metric, MetricAnswer, MetricPlan, MetricValue},
};

use crate::{
    evaluator::{Evaluation, Reading},
    labels::Labels,
    rule::{BASELINE_DAYS, Rule},
};

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// What makes rules share a query.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BatchKey {
    pub project: String,
    pub filters: BTreeMap<Field, Vec<String>>,
    pub group_by: Vec<Field>,
    pub window_ns: i64,
    pub interval_ns: i64,
}

impl BatchKey {
    fn of(rule: &Rule) -> BatchKey {
        BatchKey {
            project: rule.project().to_string(),
            filters: rule.plan.filters.clone(),
            group_by: rule.plan.group_by.clone(),
            window_ns: rule.window_ns,
            interval_ns: rule.interval_ns,
        }
    }
}

/// Rules evaluated together.
#[derive(Debug, Clone)]
pub struct Batch {
    pub key: BatchKey,
    pub rules: Vec<Arc<Rule>>,
}

/// Sorts rules into batches, the costliest first: batches start in this order when several are
/// due together, and a round lasts until its slowest batch ends, so that one should not start
/// last ([`Batch::weight`]).
pub fn batches(rules: impl IntoIterator<Item = Arc<Rule>>) -> Vec<Batch> {
    let mut by_key: BTreeMap<BatchKey, Vec<Arc<Rule>>> = BTreeMap::new();
    for rule in rules {
        by_key.entry(BatchKey::of(&rule)).or_default().push(rule);
    }
    let mut batches: Vec<Batch> = by_key
        .into_iter()
        .map(|(key, rules)| Batch { key, rules })
        .collect();
    batches.sort_by_key(|batch| std::cmp::Reverse(batch.weight()));
    batches
}

/// The evaluation time of an interval: `now` rounded down to a multiple of it.
pub fn aligned(now_ns: i64, interval_ns: i64) -> i64 {
    now_ns.div_euclid(interval_ns) * interval_ns
}

impl Batch {
    /// What an evaluation costs, roughly: the time its requests read (the window, once, and
    /// once per baseline day when a rule is an anomaly rule).
    fn weight(&self) -> i64 {
        let requests = if self.rules.iter().any(|rule| rule.is_anomaly()) {
            1 + BASELINE_DAYS
        } else {
            1
        };
        self.key.window_ns.saturating_mul(requests)
    }

    /// A batch of one rule: its request asks its metric alone (`vigil bench alerts --verify`
    /// compares each rule's readings this way with those of its shared request).
    pub fn alone(rule: Arc<Rule>) -> Batch {
        Batch {
            key: BatchKey::of(&rule),
            rules: vec![rule],
        }
    }

    /// The metric request over the window ending at `end_ns`, for these metrics.
    fn plan(&self, metrics: Vec<Metric>, end_ns: i64) -> MetricPlan {
        let mut plan = self.rules[0].plan.clone();
        plan.from_ns = end_ns - self.key.window_ns;
        plan.to_ns = end_ns;
        plan.metrics = metrics;
        plan.step_ns = None;
        plan
    }

    fn metrics(&self, anomaly_only: bool) -> Vec<Metric> {
        let mut metrics = Vec::new();
        for rule in &self.rules {
            if (!anomaly_only || rule.is_anomaly()) && !metrics.contains(&rule.metric) {
                metrics.push(rule.metric);
            }
        }
        // A cost is never asked without its count of unpriced calls (the engine adds it too).
        if metrics
            .iter()
            .any(|m| matches!(m, Metric::CostUsd | Metric::CostPerRunUsd))
            && !metrics.contains(&Metric::UnpricedModelCalls)
        {
            metrics.push(Metric::UnpricedModelCalls);
        }
        metrics
    }

    /// Asks the store, for the window ending at `at_ns` (and, for anomaly rules, the same
    /// window on each of the previous 7 days), and reads each rule's evaluation from the answers.
    pub async fn evaluate(
        &self,
        store: &dyn TraceStore,
        at_ns: i64,
    ) -> Result<Vec<(Arc<Rule>, Evaluation)>, QueryError> {
        let current = store
            .metrics(&self.key.project, &self.plan(self.metrics(false), at_ns))
            .await?;
        let mut baselines = Vec::new();
        let anomaly_metrics = self.metrics(true);
        if !anomaly_metrics.is_empty() {
            for day in 1..=BASELINE_DAYS {
                let plan = self.plan(anomaly_metrics.clone(), at_ns - day * DAY_NS);
                baselines.push(store.metrics(&self.key.project, &plan).await?);
            }
        }
        Ok(self
            .rules
            .iter()
            .map(|rule| (rule.clone(), readings(rule, &current, &baselines)))
            .collect())
    }
}

/// One rule's readings: its metric per group now, and the mean of the days that had a value.
pub fn readings(rule: &Rule, current: &MetricAnswer, baselines: &[MetricAnswer]) -> Evaluation {
    let mut evaluation: Evaluation = current
        .rows
        .iter()
        .map(|row| {
            (
                group_labels(&row.group),
                Reading {
                    value: value_of(&row.values, rule.metric),
                    baseline: None,
                },
            )
        })
        .collect();
    if rule.is_anomaly() {
        let mut days: BTreeMap<Labels, (f64, u32)> = BTreeMap::new();
        for answer in baselines {
            for row in &answer.rows {
                if let Some(value) = value_of(&row.values, rule.metric) {
                    let entry = days.entry(group_labels(&row.group)).or_default();
                    entry.0 += value;
                    entry.1 += 1;
                }
            }
        }
        for (group, reading) in &mut evaluation {
            reading.baseline = days.get(group).map(|(sum, n)| sum / f64::from(*n));
        }
    }
    evaluation
}

fn group_labels(group: &[(Field, String)]) -> Labels {
    group
        .iter()
        .map(|(field, value)| (field.name().to_string(), value.clone()))
        .collect()
}

fn value_of(values: &[(Metric, MetricValue)], metric: Metric) -> Option<f64> {
    values
        .iter()
        .find(|(m, _)| *m == metric)
        .and_then(|(_, v)| match *v {
            MetricValue::Integer(n) => Some(n as f64),
            MetricValue::Number(x) => Some(x),
            MetricValue::Null => None,
        })
}

#[cfg(test)]
mod tests {
    use vigil_query::metrics::MetricRow;

    use super::*;
    use crate::rule::tests::spec;

    fn rule(text: &str) -> Arc<Rule> {
        Arc::new(Rule::new(spec(text), 60_000_000_000).unwrap())
    }

    #[test]
    fn rules_sharing_a_query_share_a_batch() {
        let a = rule(
            "name = \"a\"\nmetric = \"runs\"\ngroup_by = [\"agent\"]\nwindow = \"5m\"\nop = \">\"\nthreshold = 1",
        );
        let b = rule(
            "name = \"b\"\nmetric = \"cost_usd\"\ngroup_by = [\"agent\"]\nwindow = \"5m\"\nop = \">\"\nthreshold = 1",
        );
        let c = rule("name = \"c\"\nmetric = \"runs\"\nwindow = \"5m\"\nop = \">\"\nthreshold = 1");
        let d = rule(
            "name = \"d\"\nmetric = \"input_tokens\"\ngroup_by = [\"agent\"]\nwindow = \"5m\"\nbaseline = \"same_window_last_7d\"\nratio_above = 2",
        );
        let batches = batches([a, b, c, d]);
        assert_eq!(batches.len(), 2);
        let shared = batches.iter().find(|b| b.rules.len() == 3).unwrap();
        assert_eq!(
            shared.metrics(false),
            vec![
                Metric::Runs,
                Metric::CostUsd,
                Metric::InputTokens,
                Metric::UnpricedModelCalls
            ]
        );
        assert_eq!(shared.metrics(true), vec![Metric::InputTokens]);
        let plan = shared.plan(shared.metrics(false), 600);
        assert_eq!((plan.from_ns, plan.to_ns), (600 - 300_000_000_000, 600));
        assert_eq!(aligned(125, 60), 120);
        assert_eq!(aligned(-1, 60), -60);
    }

    #[test]
    fn the_costliest_batches_come_first() {
        let rule = |name: &str, window: &str, anomaly: bool| {
            let condition = if anomaly {
                "baseline = \"same_window_last_7d\"\nratio_above = 2"
            } else {
                "op = \">\"\nthreshold = 1"
            };
            rule(&format!(
                "name = \"{name}\"\nmetric = \"runs\"\nwindow = \"{window}\"\n{condition}"
            ))
        };
        let order: Vec<String> = batches([
            rule("five-minutes", "5m", false),
            rule("a-day", "24h", false),
            rule("an-hour-and-seven-baselines", "1h", true),
            rule("two-hours", "2h", false),
        ])
        .iter()
        .map(|batch| batch.rules[0].name().to_string())
        .collect();
        assert_eq!(
            order,
            [
                "a-day",
                "an-hour-and-seven-baselines",
                "two-hours",
                "five-minutes"
            ]
        );
    }

    #[test]
    fn the_baseline_is_the_mean_of_the_days_with_a_value() {
        let d = rule(
            "name = \"d\"\nmetric = \"input_tokens\"\ngroup_by = [\"agent\"]\nwindow = \"5m\"\nbaseline = \"same_window_last_7d\"\nratio_above = 2",
        );
        let answer = |rows: &[(&str, MetricValue)]| MetricAnswer {
            rows: rows
                .iter()
                .map(|(agent, v)| MetricRow {
                    group: vec![(Field::Agent, agent.to_string())],
                    bucket: None,
                    values: vec![(Metric::InputTokens, *v)],
                })
                .collect(),
        };
        let now = answer(&[
            ("a", MetricValue::Integer(900)),
            ("b", MetricValue::Integer(5)),
        ]);
        let days = vec![
            answer(&[("a", MetricValue::Integer(100))]),
            answer(&[("a", MetricValue::Integer(300))]),
            answer(&[]),
        ];
        let e = readings(&d, &now, &days);
        let a: Labels = [("agent".to_string(), "a".to_string())].into();
        let b: Labels = [("agent".to_string(), "b".to_string())].into();
        assert_eq!(
            e[&a],
            Reading {
                value: Some(900.0),
                baseline: Some(200.0)
            }
        );
        assert_eq!(
            e[&b],
            Reading {
                value: Some(5.0),
                baseline: None
            }
        );
    }
}
