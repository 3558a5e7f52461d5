//! The evaluator: a pure state machine, `(state, evaluation, now) → (state', transitions)`, with
//! the clock passed in. Prometheus's semantics, per alert instance (one per group):
//!
//! ```text
//!              condition holds                held for `for`
//!   inactive ─────────────────▶ pending ─────────────────────▶ firing ──▶ (Fired)
//!      ▲                          │                              │
//!      └──── condition fails ─────┘                              │ condition has not held for
//!      ▲                                                         │ `keep_firing_for`
//!      └─────────────────────────────────────────────────────────┘ ──▶ (Resolved)
//! ```
//!
//! A group without a value follows the rule's no-data policy: `ok` (the condition fails),
//! `firing` (it holds), `keep_state` (nothing changes). An ungrouped rule always has its one
//! group; a grouped rule's groups are those with a value now plus those with an alert already.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    labels::{Labels, fingerprint},
    rule::{NoDataPolicy, Rule},
};

/// One group's reading at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reading {
    /// The metric over the window; `None` when the group had nothing to measure.
    pub value: Option<f64>,
    /// Anomaly rules: the mean of the previous days' same window, when any had a value.
    pub baseline: Option<f64>,
}

/// Readings by group (the `group_by` fields' labels).
pub type Evaluation = BTreeMap<Labels, Reading>;

/// An alert's phase: pending until its rule's `for` has passed, then firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Pending,
    Firing,
}

/// One alert instance of one rule: a group whose condition holds, or held not long ago.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The group's own labels (the `group_by` fields).
    pub group: Labels,
    /// Everything the alert is known by: rule labels, `alertname`, the group.
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub phase: Phase,
    /// When the condition started holding (the start of `pending`).
    pub active_since_ns: i64,
    /// When the alert fired: Alertmanager's `startsAt`.
    pub fired_at_ns: Option<i64>,
    /// The last evaluation at which the condition held.
    pub last_active_ns: i64,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
}

/// What an evaluation changed that on-call hears about.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Fired(Instance),
    Resolved { alert: Instance, at_ns: i64 },
}

/// A rule's alert instances by fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    pub instances: BTreeMap<String, Instance>,
}

impl RuleState {
    /// Its alerts pending and firing.
    pub fn phases(&self) -> (u64, u64) {
        let firing = self
            .instances
            .values()
            .filter(|i| i.phase == Phase::Firing)
            .count() as u64;
        (self.instances.len() as u64 - firing, firing)
    }
}

/// One evaluation of `rule`: the next state, and the alerts that fired or resolved.
pub fn step(
    rule: &Rule,
    state: RuleState,
    evaluation: &Evaluation,
    now_ns: i64,
) -> (RuleState, Vec<Transition>) {
    let mut by_group: BTreeMap<Labels, Instance> = state
        .instances
        .into_values()
        .map(|instance| (instance.group.clone(), instance))
        .collect();
    let mut groups: Vec<Labels> = evaluation.keys().cloned().collect();
    groups.extend(by_group.keys().cloned());
    if rule.plan.group_by.is_empty() {
        groups.push(Labels::new());
    }
    groups.sort();
    groups.dedup();

    let mut next = RuleState::default();
    let mut transitions = Vec::new();
    for group in groups {
        let reading = evaluation.get(&group).copied().unwrap_or_default();
        let holds = match reading.value {
            Some(value) => Some(rule.condition.holds(value, reading.baseline)),
            None => match rule.no_data {
                NoDataPolicy::Ok => Some(false),
                NoDataPolicy::Firing => Some(true),
                NoDataPolicy::KeepState => None,
            },
        };
        let current = by_group.remove(&group);
        let kept = match (current, holds) {
            (current, None) => current,
            (None, Some(false)) => None,
            (None, Some(true)) => {
                let labels = rule.alert_labels(&group);
                let instance = Instance {
                    group,
                    annotations: BTreeMap::new(),
                    labels,
                    phase: Phase::Pending,
                    active_since_ns: now_ns,
                    fired_at_ns: None,
                    last_active_ns: now_ns,
                    value: None,
                    baseline: None,
                };
                Some(advance_active(
                    rule,
                    instance,
                    reading,
                    now_ns,
                    &mut transitions,
                ))
            }
            (Some(instance), Some(true)) => Some(advance_active(
                rule,
                instance,
                reading,
                now_ns,
                &mut transitions,
            )),
            (Some(instance), Some(false)) => match instance.phase {
                Phase::Pending => None,
                Phase::Firing if now_ns - instance.last_active_ns < rule.keep_firing_for_ns => {
                    Some(instance)
                }
                Phase::Firing => {
                    transitions.push(Transition::Resolved {
                        alert: instance,
                        at_ns: now_ns,
                    });
                    None
                }
            },
        };
        if let Some(instance) = kept {
            next.instances
                .insert(fingerprint(&instance.labels), instance);
        }
    }
    (next, transitions)
}

/// The condition holds at `now`: record the reading, and fire once `for` has passed.
fn advance_active(
    rule: &Rule,
    mut instance: Instance,
    reading: Reading,
    now_ns: i64,
    transitions: &mut Vec<Transition>,
) -> Instance {
    instance.last_active_ns = now_ns;
    instance.value = reading.value;
    instance.baseline = reading.baseline;
    instance.annotations = rule.render_annotations(&instance.labels, reading);
    if instance.phase == Phase::Pending && now_ns - instance.active_since_ns >= rule.for_ns {
        instance.phase = Phase::Firing;
        instance.fired_at_ns = Some(now_ns);
        transitions.push(Transition::Fired(instance.clone()));
    }
    instance
}

/// Every alert of a rule that is no longer there resolves now (the rule was deleted).
pub fn resolve_all(state: RuleState, now_ns: i64) -> Vec<Transition> {
    state
        .instances
        .into_values()
        .filter(|i| i.phase == Phase::Firing)
        .map(|alert| Transition::Resolved {
            alert,
            at_ns: now_ns,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::rule::tests::spec;

    const S: i64 = 1_000_000_000;

    fn rule(extra: &str) -> Rule {
        Rule::new(
            spec(&format!(
                "name = \"r\"\nmetric = \"failed_runs\"\nwindow = \"5m\"\nop = \">\"\nthreshold = 10\nannotations = {{ summary = \"{{{{ $value }}}} failed\" }}\n{extra}"
            )),
            60 * S,
        )
        .unwrap()
    }

    fn one(value: Option<f64>) -> Evaluation {
        [(
            Labels::new(),
            Reading {
                value,
                baseline: None,
            },
        )]
        .into()
    }

    fn run(rule: &Rule, readings: &[(i64, Option<f64>)]) -> Vec<(i64, &'static str)> {
        let mut state = RuleState::default();
        let mut out = Vec::new();
        for &(t, value) in readings {
            let (next, transitions) = step(rule, state, &one(value), t * S);
            state = next;
            for tr in transitions {
                out.push((
                    t,
                    match tr {
                        Transition::Fired(_) => "fired",
                        Transition::Resolved { .. } => "resolved",
                    },
                ));
            }
        }
        out
    }

    #[test]
    fn fires_after_for_and_resolves_once() {
        let r = rule("for = \"2m\"");
        let events = run(
            &r,
            &[
                (0, Some(5.0)),
                (60, Some(11.0)),
                (120, Some(12.0)),
                (180, Some(13.0)),
                (240, Some(14.0)),
                (300, Some(1.0)),
                (360, Some(1.0)),
            ],
        );
        assert_eq!(events, vec![(180, "fired"), (300, "resolved")]);
    }

    #[test]
    fn a_pending_alert_that_stops_holding_never_fires() {
        let r = rule("for = \"2m\"");
        let events = run(&r, &[(0, Some(11.0)), (60, Some(1.0)), (120, Some(11.0))]);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn keep_firing_for_holds_a_flapping_alert() {
        let r = rule("keep_firing_for = \"3m\"");
        let events = run(
            &r,
            &[
                (0, Some(11.0)),
                (60, Some(1.0)),
                (120, Some(11.0)),
                (180, Some(1.0)),
                (240, Some(1.0)),
                (300, Some(1.0)),
            ],
        );
        assert_eq!(events, vec![(0, "fired"), (300, "resolved")]);
    }

    #[test]
    fn no_data_follows_the_policy() {
        let ok = run(&rule(""), &[(0, Some(11.0)), (60, None)]);
        assert_eq!(ok, vec![(0, "fired"), (60, "resolved")]);
        let firing = run(&rule("no_data = \"firing\""), &[(0, None), (60, Some(1.0))]);
        assert_eq!(firing, vec![(0, "fired"), (60, "resolved")]);
        let keep = run(
            &rule("no_data = \"keep_state\""),
            &[(0, Some(11.0)), (60, None), (120, None), (180, Some(1.0))],
        );
        assert_eq!(keep, vec![(0, "fired"), (180, "resolved")]);
    }

    #[test]
    fn annotations_carry_the_value_and_groups_are_separate_alerts() {
        let r = Rule::new(
            spec(
                "name = \"r\"\nmetric = \"failed_runs\"\ngroup_by = [\"agent\"]\nwindow = \"5m\"\nop = \">\"\nthreshold = 10\nannotations = { summary = \"{{ $labels.agent }}: {{ $value }}\" }",
            ),
            60 * S,
        )
        .unwrap();
        let group = |agent: &str| -> Labels { [("agent".to_string(), agent.to_string())].into() };
        let eval: Evaluation = [
            (
                group("a"),
                Reading {
                    value: Some(12.0),
                    baseline: None,
                },
            ),
            (
                group("b"),
                Reading {
                    value: Some(3.0),
                    baseline: None,
                },
            ),
        ]
        .into();
        let (state, transitions) = step(&r, RuleState::default(), &eval, 0);
        assert_eq!(state.instances.len(), 1);
        let Transition::Fired(alert) = &transitions[0] else {
            panic!()
        };
        assert_eq!(alert.annotations["summary"], "a: 12");
        assert_eq!(alert.labels["agent"], "a");
        // Group a disappears from the answer: no data, resolved under the default policy.
        let (state, transitions) = step(&r, state, &Evaluation::new(), 60 * S);
        assert!(state.instances.is_empty());
        assert!(matches!(transitions[..], [Transition::Resolved { .. }]));
    }

    proptest! {
        /// Over any sequence of readings: an alert fires and resolves alternately, starting with
        /// firing; it fires only once the condition has held, unbroken, for `for`; it resolves
        /// only at an evaluation where the condition fails, `keep_firing_for` after it last held;
        /// and the state after the last step says firing exactly when the last transition was
        /// Fired.
        #[test]
        fn transitions_obey_the_state_machine(
            for_s in 0i64..300,
            keep_s in 0i64..300,
            policy in 0usize..3,
            steps in proptest::collection::vec((1i64..120, proptest::option::of(0.0f64..20.0)), 1..60),
        ) {
            let policy = ["ok", "firing", "keep_state"][policy];
            let r = rule(&format!("for = \"{for_s}s\"\nkeep_firing_for = \"{keep_s}s\"\nno_data = \"{policy}\""));
            let mut state = RuleState::default();
            let mut t = 0i64;
            let mut firing = false;
            // Times at which the condition held (None: no-data under keep_state, unknown).
            let mut held_since: Option<i64> = None;
            let mut last_held: Option<i64> = None;
            for (gap, value) in steps {
                t += gap;
                let holds = match value {
                    Some(v) => Some(v > 10.0),
                    None => match policy { "ok" => Some(false), "firing" => Some(true), _ => None },
                };
                let (next, transitions) = step(&r, state, &one(value), t * S);
                state = next;
                match holds {
                    Some(true) => { held_since.get_or_insert(t); last_held = Some(t); }
                    Some(false) if !firing => { held_since = None; }
                    Some(false) => {}
                    None => {}
                }
                prop_assert!(transitions.len() <= 1);
                for tr in &transitions {
                    match tr {
                        Transition::Fired(alert) => {
                            prop_assert!(!firing, "fired twice");
                            prop_assert_eq!(holds, Some(true));
                            let since = held_since.unwrap();
                            prop_assert!(t - since >= for_s, "fired after {}s of {}s", t - since, for_s);
                            prop_assert_eq!(alert.fired_at_ns, Some(t * S));
                            firing = true;
                        }
                        Transition::Resolved { at_ns, .. } => {
                            prop_assert!(firing, "resolved without firing");
                            prop_assert_eq!(holds, Some(false));
                            prop_assert!(t - last_held.unwrap() >= keep_s);
                            prop_assert_eq!(*at_ns, t * S);
                            firing = false;
                            held_since = None;
                        }
                    }
                }
                if holds == Some(false) && !firing { held_since = None; }
                let is_firing = state.instances.values().any(|i| i.phase == Phase::Firing);
                prop_assert_eq!(is_firing, firing);
            }
        }
    }
}
