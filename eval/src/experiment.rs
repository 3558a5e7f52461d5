//! An experiment: one version of a dataset run by one version of a system. Each item's execution
//! is an ordinary trace, linked to the experiment by its item id; what the experiment reports is
//! computed from those runs whenever it is read, so a run that arrives, or a score posted later
//! (human review, an LLM judge run by the user's code), is counted at once.
//!
//! Everything here is pure: the HTTP layer reads the runs ([`RunFacts`]), this module turns them
//! into per-item results ([`item_result`]) and aggregates ([`summarize`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use vigil_schemas::{Outcome, time::NANOS_PER_MILLI};

use crate::dataset::{DatasetName, EvalError, Item};

/// Most evaluators of an experiment.
pub const MAX_EVALUATORS: usize = 20;
/// Longest experiment name, in bytes.
pub const MAX_EXPERIMENT_NAME_BYTES: usize = 200;
/// Largest compiled regular expression (bytes of its automaton).
const MAX_REGEX_SIZE: usize = 1 << 20;

/// The version of the system an experiment runs: free fields that say what changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemVersion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

/// A deterministic check Vigil runs on each item's output, by `name`. An evaluator that has
/// nothing to compare with (the item has no expected output) does not count for that item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Evaluator {
    /// The output equals the expected output: as text when the expected output is a string,
    /// else as JSON (the output parsed).
    ExactMatch { name: String },
    /// The output contains `value`, or the expected output (a string) when `value` is absent.
    Contains {
        name: String,
        #[serde(default)]
        value: Option<String>,
        #[serde(default)]
        ignore_case: bool,
    },
    /// The output matches `pattern` (Rust `regex` syntax; anywhere in it unless anchored).
    Regex { name: String, pattern: String },
    /// The output is JSON valid against `schema` (JSON Schema; no remote references).
    JsonSchema {
        name: String,
        #[schema(value_type = Object)]
        schema: Value,
    },
    /// The output is a number within `tolerance` of the expected output (a number).
    NumericTolerance { name: String, tolerance: f64 },
}

impl Evaluator {
    pub fn name(&self) -> &str {
        match self {
            Evaluator::ExactMatch { name }
            | Evaluator::Contains { name, .. }
            | Evaluator::Regex { name, .. }
            | Evaluator::JsonSchema { name, .. }
            | Evaluator::NumericTolerance { name, .. } => name,
        }
    }
}

/// Evaluators ready to run: patterns and schemas compiled once per read.
pub struct Compiled {
    evaluators: Vec<(String, Check)>,
}

enum Check {
    ExactMatch,
    Contains {
        value: Option<String>,
        ignore_case: bool,
    },
    Regex(regex::Regex),
    JsonSchema(Box<jsonschema::Validator>),
    NumericTolerance(f64),
}

impl Compiled {
    /// Compiles `evaluators`, each checked as `evaluators[i]`.
    pub fn new(evaluators: &[Evaluator]) -> Result<Compiled, EvalError> {
        if evaluators.len() > MAX_EVALUATORS {
            return Err(EvalError::invalid(
                "evaluators",
                format!(
                    "{} evaluators, the limit is {MAX_EVALUATORS}",
                    evaluators.len()
                ),
            ));
        }
        let mut names = BTreeSet::new();
        let mut compiled = Vec::with_capacity(evaluators.len());
        for (i, evaluator) in evaluators.iter().enumerate() {
            let field = |name: &str| format!("evaluators[{i}].{name}");
            let name = evaluator.name();
            DatasetName::parse(&field("name"), name)?;
            if !names.insert(name) {
                return Err(EvalError::invalid(
                    field("name"),
                    format!("{name:?} names two evaluators"),
                ));
            }
            let check = match evaluator {
                Evaluator::ExactMatch { .. } => Check::ExactMatch,
                Evaluator::Contains {
                    value, ignore_case, ..
                } => Check::Contains {
                    value: value.clone(),
                    ignore_case: *ignore_case,
                },
                Evaluator::Regex { pattern, .. } => Check::Regex(
                    regex::RegexBuilder::new(pattern)
                        .size_limit(MAX_REGEX_SIZE)
                        .build()
                        .map_err(|e| EvalError::invalid(field("pattern"), e.to_string()))?,
                ),
                Evaluator::JsonSchema { schema, .. } => Check::JsonSchema(Box::new(
                    jsonschema::validator_for(schema)
                        .map_err(|e| EvalError::invalid(field("schema"), e.to_string()))?,
                )),
                Evaluator::NumericTolerance { tolerance, .. } => {
                    if !tolerance.is_finite() || *tolerance < 0.0 {
                        return Err(EvalError::invalid(
                            field("tolerance"),
                            "must be a finite number, at least 0",
                        ));
                    }
                    Check::NumericTolerance(*tolerance)
                }
            };
            compiled.push((name.to_string(), check));
        }
        Ok(Compiled {
            evaluators: compiled,
        })
    }

    /// Each evaluator's verdict on `output` for an item expecting `expected` (`null`: none):
    /// passed or not, or `None` when it has nothing to compare with.
    pub fn evaluate(&self, output: &str, expected: &Value) -> BTreeMap<String, Option<bool>> {
        self.evaluators
            .iter()
            .map(|(name, check)| (name.clone(), check.run(output, expected)))
            .collect()
    }
}

impl Check {
    fn run(&self, output: &str, expected: &Value) -> Option<bool> {
        match self {
            Check::ExactMatch => match expected {
                Value::Null => None,
                Value::String(text) => Some(output == text),
                other => Some(serde_json::from_str::<Value>(output).is_ok_and(|o| o == *other)),
            },
            Check::Contains { value, ignore_case } => {
                let needle = match (value, expected) {
                    (Some(value), _) => value.as_str(),
                    (None, Value::String(text)) => text.as_str(),
                    (None, _) => return None,
                };
                Some(if *ignore_case {
                    output.to_lowercase().contains(&needle.to_lowercase())
                } else {
                    output.contains(needle)
                })
            }
            Check::Regex(pattern) => Some(pattern.is_match(output)),
            Check::JsonSchema(validator) => {
                Some(serde_json::from_str::<Value>(output).is_ok_and(|o| validator.is_valid(&o)))
            }
            Check::NumericTolerance(tolerance) => {
                let expected = match expected {
                    Value::Number(n) => n.as_f64()?,
                    Value::String(text) => text.trim().parse::<f64>().ok()?,
                    _ => return None,
                };
                Some(
                    output
                        .trim()
                        .parse::<f64>()
                        .is_ok_and(|o| (o - expected).abs() <= *tolerance),
                )
            }
        }
    }
}

/// What an item's run says, as the HTTP layer read it from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    pub outcome: Outcome,
    pub output: String,
    pub duration_ns: i64,
    /// The priced model calls' cost (nano-dollars); `None` when a model call has no price.
    pub cost_nanos: Option<i64>,
    pub tool_calls: u64,
    /// Its numeric and boolean (1 or 0) scores, by name.
    pub scores: Vec<(String, f64)>,
    pub classification: Vec<String>,
}

/// Where an item of the experiment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// No run is linked to it yet.
    NotRun,
    /// Its run is linked but not readable yet (its root span has not arrived).
    Pending,
    /// Its run is there.
    Done,
}

/// One item's result.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ItemResult {
    pub item_id: String,
    pub status: ItemStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    pub input: Value,
    pub expected_output: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The run's outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub outcome: Option<Outcome>,
    /// Whether the run completed (`outcome` is `success`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    /// Each evaluator's verdict; `null` when it had nothing to compare with.
    pub evaluations: BTreeMap<String, Option<bool>>,
    /// The run's scores, the mean per name.
    pub scores: BTreeMap<String, f64>,
    /// `null` when a model call of the run has no price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(skip)]
    pub cost_nanos: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip)]
    pub latency_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<u64>,
    /// The item's and the run's classification labels together.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classification: Vec<String>,
}

/// An item's result from its run (`None`: not readable yet) or without one (`trace_id` `None`).
pub fn item_result(
    item: &Item,
    trace_id: Option<&str>,
    run: Option<&RunFacts>,
    evaluators: &Compiled,
) -> ItemResult {
    let mut result = ItemResult {
        item_id: item.id.clone(),
        status: match (trace_id, run) {
            (None, _) => ItemStatus::NotRun,
            (Some(_), None) => ItemStatus::Pending,
            (Some(_), Some(_)) => ItemStatus::Done,
        },
        trace_id: trace_id.map(str::to_string),
        input: item.input.clone(),
        expected_output: item.expected_output.clone(),
        output: None,
        outcome: None,
        completed: None,
        evaluations: BTreeMap::new(),
        scores: BTreeMap::new(),
        cost_usd: None,
        cost_nanos: None,
        latency_ms: None,
        latency_ns: None,
        tool_calls: None,
        classification: item.classification.clone(),
    };
    let Some(run) = run.filter(|_| trace_id.is_some()) else {
        return result;
    };
    result.output = Some(run.output.clone());
    result.outcome = Some(run.outcome);
    result.completed = Some(run.outcome == Outcome::Success);
    result.evaluations = evaluators.evaluate(&run.output, &item.expected_output);
    let mut sums: BTreeMap<&str, (f64, u32)> = BTreeMap::new();
    for (name, value) in &run.scores {
        let sum = sums.entry(name).or_default();
        sum.0 += value;
        sum.1 += 1;
    }
    result.scores = sums
        .into_iter()
        .map(|(name, (sum, n))| (name.to_string(), sum / f64::from(n)))
        .collect();
    result.cost_nanos = run.cost_nanos;
    result.cost_usd = run.cost_nanos.map(nanos_to_usd);
    result.latency_ns = Some(run.duration_ns);
    result.latency_ms = Some(run.duration_ns as f64 / NANOS_PER_MILLI as f64);
    result.tool_calls = Some(run.tool_calls);
    for label in &run.classification {
        if !result.classification.contains(label) {
            result.classification.push(label.clone());
        }
    }
    result
}

/// Nano-dollars as USD.
pub(crate) fn nanos_to_usd(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

/// An evaluator's pass rate.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PassRate {
    pub passed: usize,
    /// Items it had something to compare with.
    pub evaluated: usize,
    /// `passed / evaluated`; `null` when nothing was evaluated.
    pub rate: Option<f64>,
}

/// A score name's mean over the items whose run has it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MeanScore {
    pub mean: f64,
    pub items: usize,
}

/// The experiment's figures over its items' runs.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Summary {
    /// Items in the dataset version.
    pub items: usize,
    /// Items whose run is there.
    pub done: usize,
    /// Items linked to a run not readable yet.
    pub pending: usize,
    /// Items with no run linked.
    pub not_run: usize,
    /// Of the items done, those whose run completed; `null` when none is done.
    pub completion_rate: Option<f64>,
    pub pass_rates: BTreeMap<String, PassRate>,
    pub mean_scores: BTreeMap<String, MeanScore>,
    /// The mean cost of the items done whose cost is known (every model call priced).
    pub cost_per_item_usd: Option<f64>,
    /// Items done with a model call without a price (left out of the cost).
    pub unpriced_items: usize,
    /// Latency percentiles of the items done, exact (the metric engine's rule).
    pub latency_p50_ms: Option<f64>,
    pub latency_p90_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub tool_calls_per_item: Option<f64>,
}

/// The figures of `results`.
pub fn summarize(results: &[ItemResult]) -> Summary {
    let done: Vec<&ItemResult> = results
        .iter()
        .filter(|r| r.status == ItemStatus::Done)
        .collect();
    let count = |status| results.iter().filter(|r| r.status == status).count();
    let ratio = |part: f64, whole: usize| (whole > 0).then(|| part / whole as f64);
    let completed = done.iter().filter(|r| r.completed == Some(true)).count();

    let mut pass_rates: BTreeMap<String, PassRate> = BTreeMap::new();
    let mut score_sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for r in &done {
        for (name, verdict) in &r.evaluations {
            let rate = pass_rates.entry(name.clone()).or_insert(PassRate {
                passed: 0,
                evaluated: 0,
                rate: None,
            });
            if let Some(passed) = verdict {
                rate.evaluated += 1;
                rate.passed += usize::from(*passed);
            }
        }
        for (name, value) in &r.scores {
            let sum = score_sums.entry(name.clone()).or_default();
            sum.0 += value;
            sum.1 += 1;
        }
    }
    for rate in pass_rates.values_mut() {
        rate.rate = ratio(rate.passed as f64, rate.evaluated);
    }
    let priced: Vec<i64> = done.iter().filter_map(|r| r.cost_nanos).collect();
    let mut latencies: Vec<i64> = done.iter().filter_map(|r| r.latency_ns).collect();
    latencies.sort_unstable();
    let percentile = |percent| {
        vigil_schemas::percentile::exact_percentile(&latencies, percent)
            .map(|ns| ns as f64 / NANOS_PER_MILLI as f64)
    };
    let tool_calls: u64 = done.iter().filter_map(|r| r.tool_calls).sum();
    Summary {
        items: results.len(),
        done: done.len(),
        pending: count(ItemStatus::Pending),
        not_run: count(ItemStatus::NotRun),
        completion_rate: ratio(completed as f64, done.len()),
        pass_rates,
        mean_scores: score_sums
            .into_iter()
            .map(|(name, (sum, items))| {
                (
                    name,
                    MeanScore {
                        mean: sum / items as f64,
                        items,
                    },
                )
            })
            .collect(),
        cost_per_item_usd: ratio(nanos_to_usd(priced.iter().sum::<i64>()), priced.len()),
        unpriced_items: done.len() - priced.len(),
        latency_p50_ms: percentile(50),
        latency_p90_ms: percentile(90),
        latency_p99_ms: percentile(99),
        tool_calls_per_item: ratio(tool_calls as f64, done.len()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::dataset::ItemInput;

    fn evaluators(list: Value) -> Compiled {
        Compiled::new(&serde_json::from_value::<Vec<Evaluator>>(list).expect("evaluators"))
            .expect("compiles")
    }

    #[test]
    fn each_evaluator_passes_fails_or_has_nothing_to_compare() {
        let compiled = evaluators(json!([
            {"type": "exact_match", "name": "exact"},
            {"type": "contains", "name": "mentions", "value": "Refund", "ignore_case": true},
            {"type": "contains", "name": "contains_expected"},
            {"type": "regex", "name": "days", "pattern": "\\b30 days\\b"},
            {"type": "json_schema", "name": "shape", "schema": {"type": "object", "required": ["answer"]}},
            {"type": "numeric_tolerance", "name": "close", "tolerance": 0.5},
        ]));
        let verdicts = |output: &str, expected: Value| {
            compiled
                .evaluate(output, &expected)
                .into_values()
                .collect::<Vec<_>>()
        };
        // Order: by name (close, contains_expected, days, exact, mentions, shape).
        assert_eq!(
            verdicts("refunds within 30 days", json!("refunds within 30 days")),
            vec![
                None,
                Some(true),
                Some(true),
                Some(true),
                Some(true),
                Some(false)
            ]
        );
        assert_eq!(
            verdicts(r#"{"answer": 42}"#, json!({"answer": 42})),
            vec![None, None, Some(false), Some(true), Some(false), Some(true)]
        );
        assert_eq!(
            verdicts("41.6", json!(42)),
            vec![
                Some(true),
                None,
                Some(false),
                Some(false),
                Some(false),
                Some(false)
            ]
        );
        assert_eq!(verdicts("40", json!("42"))[0], Some(false));
        assert_eq!(verdicts("forty", json!(42))[0], Some(false));
        assert_eq!(verdicts("x", Value::Null)[0], None);
    }

    #[test]
    fn bad_evaluators_are_refused_by_field() {
        let refused = |list: Value| match Compiled::new(
            &serde_json::from_value::<Vec<Evaluator>>(list).expect("parses"),
        ) {
            Err(EvalError::Invalid { field, .. }) => field,
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("accepted"),
        };
        assert_eq!(
            refused(json!([{"type": "regex", "name": "r", "pattern": "("}])),
            "evaluators[0].pattern"
        );
        assert_eq!(
            refused(
                json!([{"type": "exact_match", "name": "a"}, {"type": "exact_match", "name": "a"}])
            ),
            "evaluators[1].name"
        );
        assert_eq!(
            refused(json!([{"type": "json_schema", "name": "s", "schema": {"type": 12}}])),
            "evaluators[0].schema"
        );
        assert_eq!(
            refused(json!([{"type": "numeric_tolerance", "name": "n", "tolerance": -1.0}])),
            "evaluators[0].tolerance"
        );
        assert_eq!(
            refused(json!([{"type": "exact_match", "name": "no spaces"}])),
            "evaluators[0].name"
        );
    }

    #[test]
    fn the_summary_counts_what_each_item_says() {
        let compiled = evaluators(json!([{"type": "exact_match", "name": "exact"}]));
        let item = |id: &str, expected: Value| {
            ItemInput {
                id: Some(id.into()),
                input: Some(json!(id)),
                expected_output: Some(expected),
                ..Default::default()
            }
            .into_item("items[0]")
            .expect("item")
        };
        let run =
            |outcome, output: &str, ms: i64, cost: Option<i64>, tools, scores: &[f64]| RunFacts {
                outcome,
                output: output.into(),
                duration_ns: ms * NANOS_PER_MILLI,
                cost_nanos: cost,
                tool_calls: tools,
                scores: scores.iter().map(|v| ("judge".to_string(), *v)).collect(),
                classification: Vec::new(),
            };
        let runs = [
            run(Outcome::Success, "a", 100, Some(2_000), 1, &[1.0, 0.0]),
            run(Outcome::Failure, "x", 300, Some(4_000), 3, &[0.0]),
            run(Outcome::Success, "c", 200, None, 2, &[]),
        ];
        let results = vec![
            item_result(
                &item("a", json!("a")),
                Some("t1"),
                Some(&runs[0]),
                &compiled,
            ),
            item_result(
                &item("b", json!("b")),
                Some("t2"),
                Some(&runs[1]),
                &compiled,
            ),
            item_result(
                &item("c", Value::Null),
                Some("t3"),
                Some(&runs[2]),
                &compiled,
            ),
            item_result(&item("d", json!("d")), Some("t4"), None, &compiled),
            item_result(&item("e", json!("e")), None, None, &compiled),
        ];
        assert_eq!(results[0].scores["judge"], 0.5);
        let s = summarize(&results);
        assert_eq!((s.items, s.done, s.pending, s.not_run), (5, 3, 1, 1));
        assert_eq!(s.completion_rate, Some(2.0 / 3.0));
        assert_eq!(
            s.pass_rates["exact"],
            PassRate {
                passed: 1,
                evaluated: 2,
                rate: Some(0.5)
            }
        );
        // Item a's mean (0.5) and item b's (0.0), each counted once.
        assert_eq!(
            s.mean_scores["judge"],
            MeanScore {
                mean: 0.25,
                items: 2
            }
        );
        assert_eq!(s.cost_per_item_usd, Some(3_000.0 / 1e9));
        assert_eq!(s.unpriced_items, 1);
        // Sorted 100, 200, 300: index min(⌊p·3/100⌋, 2).
        assert_eq!(
            (s.latency_p50_ms, s.latency_p90_ms, s.latency_p99_ms),
            (Some(200.0), Some(300.0), Some(300.0))
        );
        assert_eq!(s.tool_calls_per_item, Some(2.0));
    }
}
