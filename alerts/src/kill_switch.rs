//! What a rule that names a kill switch (`kill_switch = "<agent>"`) does to it: when one of its
//! alerts fires, the agent's switch is set to `disabled`; with
//! `kill_switch_reenable_on_resolve`, when its last firing alert resolves, the switch is set back
//! to `enabled`, but only if it is still as the rule left it (a person who changed it since
//! decides). Each change is written to the kill switch log and to the audit log (key `system`)
//! by the engine, in the evaluation that caused it, so a switch flips within one evaluation
//! interval of its alert.
//!
//! The change travels to the rule's receivers with the alert's own notification, which is
//! delivered exactly once: its annotations `kill_switch` (the agent) and `kill_switch_state`
//! (what the rule set it to: `disabled` while firing; on resolve `enabled` when the rule
//! re-enables it, else `disabled`).

use std::collections::BTreeMap;

use serde_json::json;
use vigil_access::audit::{AuditLog, AuditRecord, KILL_SWITCH_SET, SYSTEM_KEY_ID};
use vigil_eval::kill_switch::{KillSwitches, Scope, SetSwitch, SwitchSource, SwitchState};

use crate::{evaluator::Transition, rule::Rule};

/// The annotation naming the agent.
pub const AGENT_ANNOTATION: &str = "kill_switch";
/// The annotation saying what the rule set the switch to.
pub const STATE_ANNOTATION: &str = "kill_switch_state";

/// What one evaluation of `rule` asks of its kill switch: `disabled` when an alert fired,
/// `enabled` when one resolved, none is left firing and the rule re-enables; else nothing.
pub(crate) fn wanted(
    rule: &Rule,
    transitions: &[Transition],
    still_firing: bool,
) -> Option<SwitchState> {
    rule.spec.kill_switch.as_ref()?;
    if transitions
        .iter()
        .any(|t| matches!(t, Transition::Fired(_)))
    {
        return Some(SwitchState::Disabled);
    }
    let resolved = transitions
        .iter()
        .any(|t| matches!(t, Transition::Resolved { .. }));
    (resolved && !still_firing && rule.spec.kill_switch_reenable_on_resolve)
        .then_some(SwitchState::Enabled)
}

/// Adds the kill switch annotations of an alert of `rule` (firing or resolved).
pub(crate) fn annotate(rule: &Rule, firing: bool, annotations: &mut BTreeMap<String, String>) {
    let Some(agent) = &rule.spec.kill_switch else {
        return;
    };
    let state = if firing || !rule.spec.kill_switch_reenable_on_resolve {
        SwitchState::Disabled
    } else {
        SwitchState::Enabled
    };
    annotations.insert(AGENT_ANNOTATION.into(), agent.clone());
    annotations.insert(STATE_ANNOTATION.into(), state.as_str().into());
}

/// Sets `rule`'s switch to `state` at `at_ns`, and records the change in the audit log. A
/// failure is logged: the alert itself goes on.
pub(crate) fn apply(
    switches: &KillSwitches,
    audit: &AuditLog,
    rule: &Rule,
    state: SwitchState,
    at_ns: i64,
) {
    let Some(agent) = &rule.spec.kill_switch else {
        return;
    };
    let project = rule.project();
    let Ok(scope) = Scope::new(agent, None, None) else {
        return; // Checked when the rule was loaded.
    };
    let source = SwitchSource::AlertRule {
        rule: rule.name().to_string(),
    };
    if state == SwitchState::Enabled
        && switches
            .get(project, &scope)
            .is_none_or(|s| s.state != SwitchState::Disabled || s.source != source)
    {
        return;
    }
    let reason = match state {
        SwitchState::Disabled => format!("alert rule {:?} fired", rule.name()),
        SwitchState::Enabled => format!("alert rule {:?} resolved", rule.name()),
    };
    let change = SetSwitch {
        scope,
        state,
        reason: Some(reason.clone()),
        source,
        at_ns,
    };
    match switches.set(project, change) {
        Ok(None) => {}
        Ok(Some(_)) => {
            tracing::warn!(
                project,
                agent,
                rule = rule.name(),
                state = state.as_str(),
                "kill switch set by an alert rule"
            );
            let record = AuditRecord {
                project_id: project.to_string(),
                key_id: SYSTEM_KEY_ID.into(),
                action: KILL_SWITCH_SET.into(),
                parameters: json!({
                    "agent": agent,
                    "state": state,
                    "reason": reason,
                    "rule": rule.name(),
                }),
                result_count: 1,
            };
            if let Err(e) = audit.append(record) {
                tracing::error!(error = %e, agent, "a kill switch change is not on the audit log");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, project, agent, rule = rule.name(), "the alert rule could not set its kill switch");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::tests::spec;

    const RULE: &str = r#"name = "refunds-failing"
        metric = "completion_rate"
        window = "10m"
        op = "<"
        threshold = 0.5"#;

    fn rule(extra: &str) -> Result<Rule, crate::rule::RuleError> {
        Rule::new(spec(&format!("{RULE}\n{extra}")), 60_000_000_000)
    }

    fn instance() -> crate::evaluator::Instance {
        serde_json::from_value(json!({
            "group": {}, "labels": {}, "annotations": {}, "phase": "firing",
            "active_since_ns": 0, "fired_at_ns": 0, "last_active_ns": 0,
        }))
        .expect("an instance")
    }

    #[test]
    fn a_rule_disables_on_firing_and_re_enables_only_when_asked() {
        let fired = [Transition::Fired(instance())];
        let resolved = [Transition::Resolved {
            alert: instance(),
            at_ns: 1,
        }];
        let plain = rule("").expect("rule");
        assert_eq!(wanted(&plain, &fired, true), None, "no kill_switch");
        let stops = rule(r#"kill_switch = "refund-bot""#).expect("rule");
        assert_eq!(wanted(&stops, &fired, true), Some(SwitchState::Disabled));
        assert_eq!(wanted(&stops, &resolved, false), None, "a person decides");
        let restarts = rule("kill_switch = \"refund-bot\"\nkill_switch_reenable_on_resolve = true")
            .expect("rule");
        assert_eq!(
            wanted(&restarts, &resolved, false),
            Some(SwitchState::Enabled)
        );
        assert_eq!(
            wanted(&restarts, &resolved, true),
            None,
            "another alert fires"
        );
        assert_eq!(wanted(&restarts, &[], false), None);

        let mut annotations = BTreeMap::new();
        annotate(&restarts, false, &mut annotations);
        assert_eq!(annotations[STATE_ANNOTATION], "enabled");
        annotate(&stops, false, &mut annotations);
        assert_eq!(annotations[STATE_ANNOTATION], "disabled");
        assert_eq!(annotations[AGENT_ANNOTATION], "refund-bot");
    }

    #[test]
    fn bad_kill_switch_fields_are_named() {
        let field = |extra: &str| rule(extra).expect_err("refused").field;
        assert_eq!(field(r#"kill_switch = """#), "kill_switch");
        assert_eq!(
            field(&format!("kill_switch = \"{}\"", "a".repeat(257))),
            "kill_switch"
        );
        assert_eq!(
            field("kill_switch_reenable_on_resolve = true"),
            "kill_switch_reenable_on_resolve"
        );
    }
}
