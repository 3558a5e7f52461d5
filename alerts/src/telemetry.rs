//! Alerting's own figures for `/metrics`: evaluations, their failures and duration, alerts by
//! state, every webhook try and notification by receiver and outcome, and whether this node
//! leads, kept in
//! `prometheus-client` metrics and registered into the server's registry
//! ([`AlertTelemetry::register`]).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Delivery {
    receiver: String,
    outcome: &'static str,
}

#[derive(Debug, Default)]
pub struct AlertTelemetry {
    rules: Gauge,
    evaluations: Counter,
    evaluation_failures: Counter,
    evaluations_skipped: Counter,
    last_round_seconds: Gauge<f64, AtomicU64>,
    reload_ok: Gauge,
    reloads: Counter,
    pending: Gauge,
    firing: Gauge,
    attempts: Family<Delivery, Counter>,
    notifications: Family<Delivery, Counter>,
    leading: Gauge,
    other_writer: Gauge,
}

impl AlertTelemetry {
    pub fn new() -> AlertTelemetry {
        let t = AlertTelemetry::default();
        t.reload_ok.set(1);
        t
    }

    /// Adds every figure to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "vigil_alert_rules",
            "Alert rules loaded.",
            self.rules.clone(),
        );
        registry.register(
            "vigil_alert_rule_evaluations",
            "Rule evaluations.",
            self.evaluations.clone(),
        );
        registry.register(
            "vigil_alert_rule_evaluation_failures",
            "Rule evaluations whose query failed; the rule's alerts kept their state.",
            self.evaluation_failures.clone(),
        );
        registry.register(
            "vigil_alert_rule_evaluations_skipped",
            "Rule evaluations skipped because the previous one of the same query was still \
             running.",
            self.evaluations_skipped.clone(),
        );
        registry.register(
            "vigil_alert_evaluation_round_seconds",
            "Duration of the last evaluation of a batch of rules.",
            self.last_round_seconds.clone(),
        );
        registry.register(
            "vigil_alert_config_last_reload_successful",
            "1 if the last load of the rules file succeeded.",
            self.reload_ok.clone(),
        );
        registry.register(
            "vigil_alert_config_reloads",
            "Loads of the rules file.",
            self.reloads.clone(),
        );
        registry.register("vigil_alerts_firing", "Alerts firing.", self.firing.clone());
        registry.register(
            "vigil_alerts_pending",
            "Alerts pending (condition holds, `for` not yet passed).",
            self.pending.clone(),
        );
        registry.register(
            "vigil_alert_webhook_attempts",
            "Webhook requests by receiver and outcome.",
            self.attempts.clone(),
        );
        registry.register(
            "vigil_alert_notifications",
            "Notifications by receiver and final outcome.",
            self.notifications.clone(),
        );
        registry.register(
            "vigil_alerting_leader",
            "1 while this node evaluates the rules and notifies (it holds the alerting lease, \
             or needs none), 0 while it stands by.",
            self.leading.clone(),
        );
        registry.register(
            "vigil_alerting_other_writer",
            "1 while another node writes the alert state under this node's lease token: two \
             alerting nodes without [alerting.lease], both paging.",
            self.other_writer.clone(),
        );
    }

    pub fn leading(&self, leading: bool) {
        self.leading.set(i64::from(leading));
    }

    pub fn other_writer(&self, seen: bool) {
        self.other_writer.set(i64::from(seen));
    }

    pub fn evaluated(&self, rules: u64, failed: bool) {
        self.evaluations.inc_by(rules);
        if failed {
            self.evaluation_failures.inc_by(rules);
        }
    }

    pub fn skipped(&self, rules: u64) {
        self.evaluations_skipped.inc_by(rules);
    }

    pub fn round_took(&self, seconds: f64) {
        self.last_round_seconds.set(seconds);
    }

    pub fn alerts(&self, rules: u64, pending: u64, firing: u64) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.rules.set(gauge(rules));
        self.pending.set(gauge(pending));
        self.firing.set(gauge(firing));
    }

    pub fn reloaded(&self, ok: bool) {
        self.reload_ok.set(i64::from(ok));
        self.reloads.inc();
    }

    pub fn attempt(&self, receiver: &str, outcome: &'static str) {
        self.attempts
            .get_or_create(&Delivery {
                receiver: receiver.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn notification(&self, receiver: &str, outcome: &'static str) {
        self.notifications
            .get_or_create(&Delivery {
                receiver: receiver.to_string(),
                outcome,
            })
            .inc();
    }
}
