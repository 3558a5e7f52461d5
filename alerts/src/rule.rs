//! Alert rules as written (TOML file or API JSON) and their validation into a [`Rule`]: every
//! refusal names the rule and the field, and says why.
//!
//! A rule watches one metric of the metric engine over a sliding `window`, per group of
//! `group_by`, every `interval`:
//! - a **threshold** rule is active while `value op threshold`;
//! - an **anomaly** rule (`baseline = "same_window_last_7d"`) is active while the baseline is at
//!   least `min_baseline` and `value > ratio_above × baseline`, the baseline being the mean of the
//!   same window on each of the previous 7 days that had a value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_eval::{EvalError, kill_switch::Scope};
use vigil_query::metrics::{Field, Metric, MetricPlan, MetricQuery};
use vigil_schemas::time::parse_duration_ns;

use crate::{
    evaluator::Reading,
    labels::{ALERTNAME, Labels},
    template::{Context, Template},
};

/// The only baseline there is: the same window on each of the previous 7 days.
pub const SAME_WINDOW_LAST_7D: &str = "same_window_last_7d";
/// Days in the anomaly baseline.
pub const BASELINE_DAYS: i64 = 7;
/// Shortest evaluation interval.
pub const MIN_INTERVAL_NS: i64 = 1_000_000_000;
/// Longest window (the metric engine's own range limit is far above).
pub const MAX_WINDOW_NS: i64 = 31 * 86_400 * 1_000_000_000;
/// Longest rule name (it becomes the `alertname` label and a URL path segment).
pub const MAX_NAME_CHARS: usize = 128;

/// A rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AlertRule)]
pub struct RuleSpec {
    /// As in the path (may be left out there).
    #[schema(required = false, pattern = "^[A-Za-z0-9_.:-]{1,128}$")]
    pub name: String,
    /// The project whose data the rule reads (file rules; API rules take the key's project).
    /// Not serialized: a rule is shown within its project, and saved beside it.
    #[serde(default = "default_project", skip_serializing)]
    pub project: String,
    /// One metric name of the metric engine (docs/design.md#metric-definitions).
    #[schema(value_type = Metric)]
    pub metric: String,
    /// Field → accepted values, as in a metric query.
    #[serde(default)]
    pub filters: BTreeMap<String, Vec<String>>,
    /// One alert per group of these fields.
    #[serde(default)]
    #[schema(value_type = Vec<Field>)]
    pub group_by: Vec<String>,
    /// The metric is computed over the `window` before each evaluation.
    #[schema(pattern = "^[0-9]+(ns|us|ms|s|m|h|d|w)$")]
    pub window: String,
    /// How often the rule is evaluated (default `alerting.evaluation_interval`, 1m). Evaluations
    /// are aligned to multiples of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9]+(ns|us|ms|s|m|h|d|w)$")]
    pub interval: Option<String>,
    /// Threshold rules: `>`, `>=`, `<`, `<=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = op_schema)]
    pub op: Option<String>,
    /// Threshold rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Anomaly rules: the baseline is the mean of the metric over the same window on each of the
    /// previous 7 days that had a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = baseline_schema)]
    pub baseline: Option<String>,
    /// Anomaly rules: active while value > ratio_above × baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0)]
    pub ratio_above: Option<f64>,
    /// Anomaly rules: a smaller baseline never makes the rule active (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub min_baseline: Option<f64>,
    /// How long the condition must hold before the alert fires; pending until then (default 0s).
    #[serde(default = "zero", rename = "for")]
    #[schema(pattern = "^[0-9]+(ns|us|ms|s|m|h|d|w)$")]
    pub for_: String,
    /// How long a firing alert keeps firing after the condition stops holding (default 0s).
    #[serde(default = "zero")]
    #[schema(pattern = "^[0-9]+(ns|us|ms|s|m|h|d|w)$")]
    pub keep_firing_for: String,
    /// A group without a value: the condition fails (`ok`, default), holds (`firing`), or
    /// nothing changes (`keep_state`).
    #[serde(default)]
    pub no_data: NoDataPolicy,
    /// Added to every alert of the rule.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Templated: `{{ $value }}`, `{{ $threshold }}`, `{{ $baseline }}`, `{{ $labels.<name> }}`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Receivers of the rules file; every receiver when empty.
    #[serde(default)]
    pub receivers: Vec<String>,
    /// An agent of the project whose kill switch the rule sets to `disabled` when one of its
    /// alerts fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256, min_length = 1)]
    pub kill_switch: Option<String>,
    /// With `kill_switch`: set it back to `enabled` when the rule's last firing alert resolves,
    /// unless someone changed it since the rule disabled it (default false: a person decides).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kill_switch_reenable_on_resolve: bool,
}

/// The comparisons of threshold rules: what [`Op::parse`] reads (tested).
const OPS: [&str; 4] = [">", ">=", "<", "<="];

fn op_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    vigil_schemas::openapi::from_json(serde_json::json!({
        "type": "string",
        "enum": OPS,
        "description": "Threshold rules: active while `value op threshold`.",
    }))
}

fn baseline_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    vigil_schemas::openapi::from_json(serde_json::json!({
        "type": "string",
        "enum": [SAME_WINDOW_LAST_7D],
        "description": "Anomaly rules: the baseline is the mean of the metric over the same \
            window on each of the previous 7 days that had a value.",
    }))
}

fn default_project() -> String {
    "default".into()
}

fn zero() -> String {
    "0s".into()
}

/// What a group without a value (no row, or a null value) means for its alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoDataPolicy {
    /// The condition does not hold: a firing alert resolves.
    #[default]
    Ok,
    /// The condition holds: silence is itself alarming (a pipeline that stopped sending).
    Firing,
    /// Nothing changes until a value arrives.
    KeepState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            _ => return None,
        })
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }
}

/// When a group's value makes its alert active.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    Threshold { op: Op, threshold: f64 },
    Anomaly { ratio_above: f64, min_baseline: f64 },
}

impl Condition {
    /// Whether the condition holds for `value` (and, for anomaly rules, `baseline`).
    pub fn holds(&self, value: f64, baseline: Option<f64>) -> bool {
        match *self {
            Condition::Threshold { op, threshold } => op.holds(value, threshold),
            Condition::Anomaly {
                ratio_above,
                min_baseline,
            } => baseline.is_some_and(|b| b >= min_baseline && value > ratio_above * b),
        }
    }
}

/// A checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// As written, for the API to show.
    pub spec: RuleSpec,
    pub metric: Metric,
    /// The metric request without its time range (set per evaluation).
    pub plan: MetricPlan,
    pub window_ns: i64,
    pub interval_ns: i64,
    pub condition: Condition,
    pub for_ns: i64,
    pub keep_firing_for_ns: i64,
    pub no_data: NoDataPolicy,
    pub annotations: BTreeMap<String, Template>,
}

/// Why a kill switch's agent name was refused, without the field (the rule names its own).
fn reason(error: EvalError) -> String {
    match error {
        EvalError::Invalid { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// A rule refused: which rule, which field, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule:?}: {field}: {message}")]
pub struct RuleError {
    pub rule: String,
    pub field: String,
    pub message: String,
}

impl Rule {
    /// Checks `spec`; `default_interval_ns` applies when the rule names none.
    pub fn new(spec: RuleSpec, default_interval_ns: i64) -> Result<Rule, RuleError> {
        let fail = |field: &str, message: String| RuleError {
            rule: spec.name.clone(),
            field: field.into(),
            message,
        };
        check_name(&spec.name).map_err(|m| fail("name", m))?;
        if spec.project.is_empty() {
            return Err(fail("project", "must not be empty".into()));
        }
        let metric = Metric::parse(&spec.metric).ok_or_else(|| {
            fail(
                "metric",
                format!(
                    "unknown metric {:?}; one of {}",
                    spec.metric,
                    Metric::names()
                ),
            )
        })?;
        // The metric engine checks the metric, grouping and filters together, as it would for
        // a query; its field names are mapped to the rule's.
        let plan = MetricQuery {
            from: "2000-01-01T00:00:00Z".into(),
            to: "2000-01-02T00:00:00Z".into(),
            metrics: vec![spec.metric.clone()],
            group_by: spec.group_by.clone(),
            filters: spec.filters.clone(),
            step: None,
            shadow: Default::default(),
        }
        .plan()
        .map_err(|e| {
            let field = match e.field() {
                Some("metrics") => "metric",
                Some(field) => field,
                None => "metric",
            };
            let message = e.to_string();
            let message = message
                .split_once(": ")
                .map_or(message.as_str(), |(_, m)| m)
                .to_string();
            fail(field, message)
        })?;

        let window_ns = duration(&spec.window).map_err(|m| fail("window", m))?;
        if window_ns <= 0 || window_ns > MAX_WINDOW_NS {
            return Err(fail("window", "must be between 1s and 31d".into()));
        }
        let interval_ns = match &spec.interval {
            Some(text) => duration(text).map_err(|m| fail("interval", m))?,
            None => default_interval_ns,
        };
        if interval_ns < MIN_INTERVAL_NS {
            return Err(fail("interval", "must be at least 1s".into()));
        }
        let for_ns = duration(&spec.for_).map_err(|m| fail("for", m))?;
        let keep_firing_for_ns =
            duration(&spec.keep_firing_for).map_err(|m| fail("keep_firing_for", m))?;

        let condition = condition(&spec).map_err(|(field, m)| fail(field, m))?;

        for name in spec.labels.keys() {
            check_label_name(name).map_err(|m| fail("labels", m))?;
            if name == ALERTNAME || spec.group_by.contains(name) {
                return Err(fail(
                    "labels",
                    format!("{name:?} is set by the rule itself (alertname, group_by fields)"),
                ));
            }
        }
        let mut annotations = BTreeMap::new();
        for (name, text) in &spec.annotations {
            let template =
                Template::parse(text).map_err(|m| fail(&format!("annotations.{name}"), m))?;
            annotations.insert(name.clone(), template);
        }
        for receiver in &spec.receivers {
            if receiver.is_empty() {
                return Err(fail("receivers", "a receiver name is empty".into()));
            }
        }
        match &spec.kill_switch {
            Some(agent) => {
                Scope::new(agent, None, None).map_err(|e| fail("kill_switch", reason(e)))?;
            }
            None if spec.kill_switch_reenable_on_resolve => {
                return Err(fail(
                    "kill_switch_reenable_on_resolve",
                    "needs kill_switch: the agent to re-enable".into(),
                ));
            }
            None => {}
        }
        Ok(Rule {
            metric,
            plan,
            window_ns,
            interval_ns,
            condition,
            for_ns,
            keep_firing_for_ns,
            no_data: spec.no_data,
            annotations,
            spec,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn project(&self) -> &str {
        &self.spec.project
    }

    pub fn is_anomaly(&self) -> bool {
        matches!(self.condition, Condition::Anomaly { .. })
    }

    /// The alert labels of one group: the rule's labels, `alertname`, then the group's fields.
    pub fn alert_labels(&self, group: &Labels) -> Labels {
        let mut labels = self.spec.labels.clone();
        labels.insert(ALERTNAME.into(), self.spec.name.clone());
        labels.extend(group.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels
    }

    /// The annotations rendered with one group's reading.
    pub fn render_annotations(
        &self,
        labels: &Labels,
        reading: Reading,
    ) -> BTreeMap<String, String> {
        let threshold = match self.condition {
            Condition::Threshold { threshold, .. } => Some(threshold),
            Condition::Anomaly { ratio_above, .. } => Some(ratio_above),
        };
        let context = Context {
            value: reading.value,
            threshold,
            baseline: reading.baseline,
            labels,
        };
        self.annotations
            .iter()
            .map(|(name, template)| (name.clone(), template.render(&context)))
            .collect()
    }
}

fn condition(spec: &RuleSpec) -> Result<Condition, (&'static str, String)> {
    match &spec.baseline {
        None => {
            if spec.ratio_above.is_some() || spec.min_baseline.is_some() {
                return Err((
                    "baseline",
                    format!("ratio_above and min_baseline need baseline = {SAME_WINDOW_LAST_7D:?}"),
                ));
            }
            let op = spec.op.as_deref().ok_or((
                "op",
                "a threshold rule needs op (>, >=, <, <=); an anomaly rule needs baseline".into(),
            ))?;
            let op = Op::parse(op).ok_or(("op", format!("{op:?} is not one of >, >=, <, <=")))?;
            let threshold = spec
                .threshold
                .ok_or(("threshold", "a threshold rule needs a threshold".into()))?;
            if !threshold.is_finite() {
                return Err(("threshold", "must be a finite number".into()));
            }
            Ok(Condition::Threshold { op, threshold })
        }
        Some(baseline) => {
            if baseline != SAME_WINDOW_LAST_7D {
                return Err((
                    "baseline",
                    format!(
                        "{baseline:?} is not a baseline; the one there is: {SAME_WINDOW_LAST_7D:?}"
                    ),
                ));
            }
            if spec.op.is_some() || spec.threshold.is_some() {
                return Err((
                    "op",
                    "an anomaly rule compares with its baseline (ratio_above); leave op and threshold out".into(),
                ));
            }
            let ratio_above = spec
                .ratio_above
                .ok_or(("ratio_above", "an anomaly rule needs ratio_above".into()))?;
            if !(ratio_above.is_finite() && ratio_above > 0.0) {
                return Err(("ratio_above", "must be a number above 0".into()));
            }
            let min_baseline = spec.min_baseline.unwrap_or(0.0);
            if !(min_baseline.is_finite() && min_baseline >= 0.0) {
                return Err(("min_baseline", "must be a number of 0 or more".into()));
            }
            Ok(Condition::Anomaly {
                ratio_above,
                min_baseline,
            })
        }
    }
}

/// A duration such as `90s`, `5m`, `1h`, `7d`; never negative.
pub fn duration(text: &str) -> Result<i64, String> {
    parse_duration_ns(text)
        .ok_or_else(|| format!("{text:?} is not a duration (e.g. 30s, 5m, 1h, 1d)"))
}

/// Rule and receiver names: 1–128 of letters, digits, `_`, `-`, `.`, `:`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("must be 1 to {MAX_NAME_CHARS} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(format!(
            "{c:?} is not allowed: use letters, digits, _, -, . and :"
        ));
    }
    Ok(())
}

/// Label names: Prometheus's `[a-zA-Z_][a-zA-Z0-9_]*`.
fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use vigil_query::metrics::Field;

    use super::*;

    pub(crate) fn spec(toml_text: &str) -> RuleSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn refused(toml_text: &str) -> RuleError {
        Rule::new(spec(toml_text), 60_000_000_000).unwrap_err()
    }

    #[test]
    fn the_documented_comparisons_are_the_ones_read() {
        for op in OPS {
            assert!(Op::parse(op).is_some(), "{op}");
        }
        assert!(Op::parse("==").is_none());
    }

    #[test]
    fn a_threshold_rule_is_checked() {
        let rule = Rule::new(
            spec(
                r#"name = "p99-over-sla"
                   metric = "run_latency_p99_ms"
                   group_by = ["agent"]
                   filters = { environment = ["production"] }
                   window = "5m"
                   op = ">"
                   threshold = 3000
                   for = "2m"
                   labels = { severity = "page" }
                   annotations = { summary = "p99 of {{ $labels.agent }} is {{ $value }} ms" }"#,
            ),
            60_000_000_000,
        )
        .unwrap();
        assert_eq!(rule.metric, Metric::RunLatencyP99Ms);
        assert_eq!(rule.plan.group_by, vec![Field::Agent]);
        assert_eq!(rule.window_ns, 300_000_000_000);
        assert_eq!(rule.interval_ns, 60_000_000_000);
        assert_eq!(rule.for_ns, 120_000_000_000);
        assert!(rule.condition.holds(3001.0, None));
        assert!(!rule.condition.holds(3000.0, None));
        let labels = rule.alert_labels(&[("agent".to_string(), "bot".to_string())].into());
        assert_eq!(labels["alertname"], "p99-over-sla");
        assert_eq!(labels["agent"], "bot");
        assert_eq!(labels["severity"], "page");
    }

    #[test]
    fn an_anomaly_rule_needs_its_baseline_to_be_large_enough() {
        let rule = Rule::new(
            spec(
                r#"name = "token-anomaly"
                   metric = "input_tokens"
                   window = "1h"
                   baseline = "same_window_last_7d"
                   ratio_above = 3.0
                   min_baseline = 1000"#,
            ),
            60_000_000_000,
        )
        .unwrap();
        assert!(rule.is_anomaly());
        assert!(rule.condition.holds(3001.0 * 2.0, Some(2000.0)));
        assert!(!rule.condition.holds(6000.0, Some(2000.0)));
        assert!(!rule.condition.holds(1e9, Some(999.0)));
        assert!(!rule.condition.holds(1e9, None));
    }

    #[test]
    fn every_refusal_names_its_field() {
        let base = "name = \"r\"\nwindow = \"5m\"\n";
        let cases = [
            ("metric = \"nope\"\nop = \">\"\nthreshold = 1", "metric"),
            (
                "metric = \"runs\"\ngroup_by = [\"colour\"]\nop = \">\"\nthreshold = 1",
                "group_by",
            ),
            (
                "metric = \"model_calls\"\ngroup_by = [\"tool\"]\nop = \">\"\nthreshold = 1",
                "group_by",
            ),
            (
                "metric = \"runs\"\nfilters = { colour = [\"red\"] }\nop = \">\"\nthreshold = 1",
                "filters",
            ),
            ("metric = \"runs\"\nthreshold = 1", "op"),
            ("metric = \"runs\"\nop = \"!=\"\nthreshold = 1", "op"),
            ("metric = \"runs\"\nop = \">\"", "threshold"),
            (
                "metric = \"runs\"\nop = \">\"\nthreshold = 1\nfor = \"soon\"",
                "for",
            ),
            (
                "metric = \"runs\"\nop = \">\"\nthreshold = 1\ninterval = \"10ms\"",
                "interval",
            ),
            ("metric = \"runs\"\nbaseline = \"yesterday\"", "baseline"),
            (
                "metric = \"runs\"\nbaseline = \"same_window_last_7d\"",
                "ratio_above",
            ),
            (
                "metric = \"runs\"\nop = \">\"\nthreshold = 1\nlabels = { alertname = \"x\" }",
                "labels",
            ),
            (
                "metric = \"runs\"\nop = \">\"\nthreshold = 1\nannotations = { summary = \"{{ $nope }}\" }",
                "annotations.summary",
            ),
        ];
        for (body, field) in cases {
            let error = refused(&format!("{base}{body}"));
            assert_eq!(error.field, field, "{body}: {error}");
            assert_eq!(error.rule, "r");
        }
        let error = refused(
            "name = \"a b\"\nmetric = \"runs\"\nwindow = \"5m\"\nop = \">\"\nthreshold = 1",
        );
        assert_eq!(error.field, "name");
        let error =
            refused("name = \"r\"\nmetric = \"runs\"\nwindow = \"0s\"\nop = \">\"\nthreshold = 1");
        assert_eq!(error.field, "window");
    }
}
