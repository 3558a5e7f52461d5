//! What the API shows of rules and alerts: the stored state, with times in RFC 3339.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::{engine::Source, evaluator::Phase, rule::RuleSpec};

/// A rule with where it came from and how its last evaluation went.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AlertRuleView)]
pub struct RuleView {
    #[serde(flatten)]
    pub spec: RuleSpec,
    pub source: Source,
    pub health: RuleHealth,
    /// When the rule was last evaluated; null before the first evaluation.
    #[schema(format = DateTime, required = true)]
    pub last_evaluation: Option<String>,
    /// How long the last evaluation took.
    pub last_evaluation_ms: f64,
    /// Why the last evaluation failed; null when it did not.
    #[schema(required = true)]
    pub last_error: Option<String>,
    pub alerts: AlertCounts,
}

/// How the last evaluation went (`unknown` before the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleHealth {
    Unknown,
    Ok,
    Error,
}

/// A rule's alerts by phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlertCounts {
    pub pending: u64,
    pub firing: u64,
}

/// A pending or firing alert.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Alert)]
pub struct AlertView {
    /// The rule's name.
    pub rule: String,
    /// Stable identity of the label set, as in the webhook.
    pub fingerprint: String,
    pub state: Phase,
    /// `alertname`, the rule's labels, the group's fields.
    pub labels: BTreeMap<String, String>,
    /// Rendered at the last evaluation.
    pub annotations: BTreeMap<String, String>,
    /// When the condition started holding.
    #[schema(format = DateTime)]
    pub active_since: String,
    /// `startsAt` of the webhook; null while pending.
    #[schema(format = DateTime, required = true)]
    pub fired_at: Option<String>,
    /// The metric's value at the last evaluation.
    #[schema(required = true)]
    pub value: Option<f64>,
    /// Anomaly rules: the baseline at the last evaluation.
    #[schema(required = true)]
    pub baseline: Option<f64>,
    /// Ids of the active silences that mute it.
    pub silenced_by: Vec<String>,
}
