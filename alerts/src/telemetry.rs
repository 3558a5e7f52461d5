//! Alerting's own figures for `/metrics`: evaluations, their failures and duration, alerts by
//! state, and every webhook try and notification by receiver and outcome.

use std::{collections::BTreeMap, fmt::Write as _};

use parking_lot::Mutex;

#[derive(Default)]
pub struct AlertTelemetry {
    inner: Mutex<Figures>,
}

#[derive(Default)]
struct Figures {
    evaluations: u64,
    evaluation_failures: u64,
    evaluations_skipped: u64,
    last_round_seconds: f64,
    rules: u64,
    pending: u64,
    firing: u64,
    reload_ok: bool,
    reloads: u64,
    /// (receiver, outcome) → count.
    attempts: BTreeMap<(String, &'static str), u64>,
    notifications: BTreeMap<(String, &'static str), u64>,
}

impl AlertTelemetry {
    pub fn new() -> AlertTelemetry {
        let t = AlertTelemetry::default();
        t.inner.lock().reload_ok = true;
        t
    }

    pub fn evaluated(&self, rules: u64, failed: bool) {
        let mut f = self.inner.lock();
        f.evaluations += rules;
        if failed {
            f.evaluation_failures += rules;
        }
    }

    pub fn skipped(&self, rules: u64) {
        self.inner.lock().evaluations_skipped += rules;
    }

    pub fn round_took(&self, seconds: f64) {
        self.inner.lock().last_round_seconds = seconds;
    }

    pub fn alerts(&self, rules: u64, pending: u64, firing: u64) {
        let mut f = self.inner.lock();
        f.rules = rules;
        f.pending = pending;
        f.firing = firing;
    }

    pub fn reloaded(&self, ok: bool) {
        let mut f = self.inner.lock();
        f.reload_ok = ok;
        f.reloads += 1;
    }

    pub fn attempt(&self, receiver: &str, outcome: &'static str) {
        *self
            .inner
            .lock()
            .attempts
            .entry((receiver.to_string(), outcome))
            .or_default() += 1;
    }

    pub fn notification(&self, receiver: &str, outcome: &'static str) {
        *self
            .inner
            .lock()
            .notifications
            .entry((receiver.to_string(), outcome))
            .or_default() += 1;
    }

    /// Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        let f = self.inner.lock();
        let plain: [(&str, &str, &str, f64); 8] = [
            (
                "vigil_alert_rules",
                "gauge",
                "Alert rules loaded.",
                f.rules as f64,
            ),
            (
                "vigil_alert_rule_evaluations_total",
                "counter",
                "Rule evaluations.",
                f.evaluations as f64,
            ),
            (
                "vigil_alert_rule_evaluation_failures_total",
                "counter",
                "Rule evaluations whose query failed; the rule's alerts kept their state.",
                f.evaluation_failures as f64,
            ),
            (
                "vigil_alert_rule_evaluations_skipped_total",
                "counter",
                "Rule evaluations skipped because the previous one of the same query was still running.",
                f.evaluations_skipped as f64,
            ),
            (
                "vigil_alert_evaluation_round_seconds",
                "gauge",
                "Duration of the last evaluation of a batch of rules.",
                f.last_round_seconds,
            ),
            (
                "vigil_alert_config_last_reload_successful",
                "gauge",
                "1 if the last load of the rules file succeeded.",
                if f.reload_ok { 1.0 } else { 0.0 },
            ),
            (
                "vigil_alert_config_reloads_total",
                "counter",
                "Loads of the rules file.",
                f.reloads as f64,
            ),
            (
                "vigil_alerts_firing",
                "gauge",
                "Alerts firing.",
                f.firing as f64,
            ),
        ];
        for (name, kind, help, value) in plain {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP vigil_alerts_pending Alerts pending (condition holds, `for` not yet passed).\n# TYPE vigil_alerts_pending gauge\nvigil_alerts_pending {}",
            f.pending
        );
        for (name, help, figures) in [
            (
                "vigil_alert_webhook_attempts_total",
                "Webhook requests by receiver and outcome.",
                &f.attempts,
            ),
            (
                "vigil_alert_notifications_total",
                "Notifications by receiver and final outcome.",
                &f.notifications,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((receiver, outcome), n) in figures {
                let _ = writeln!(
                    out,
                    "{name}{{receiver={receiver:?},outcome=\"{outcome}\"}} {n}"
                );
            }
        }
    }
}
