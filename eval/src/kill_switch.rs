//! The kill switch: state an agent polls before it runs, so that a bad release can be stopped
//! without a deploy. A switch is set per agent, optionally narrowed to one agent version, one
//! prompt version, or both, to `enabled` or `disabled` with a reason. It is set by a person
//! (through the API or the CLI) or by an alert rule that names the agent.
//!
//! What an agent is told ([`KillSwitches::resolve`]): it may not run when any switch that covers
//! it is disabled. The broadest disabled switch answers (the agent's own, then its version's,
//! then its prompt version's, then both), since it is the one that has to be lifted before the
//! agent runs again. When none is disabled the narrowest switch that covers it answers, or,
//! when none was ever set, `enabled` with no reason and no source.
//!
//! Switches are kept in memory; each change is appended to `<data dir>/kill_switches.jsonl`
//! ([`crate::log`]) and fsync'd before it is acknowledged. On ClickHouse the switches are also
//! shared by every node ([`crate::shared_switches`]): a switch set on another node is taken when
//! it was set later than this node's ([`KillSwitches::adopt`]).

use std::{
    collections::BTreeMap,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::{
    dataset::EvalError,
    log::{EventLog, StoreError},
};

/// The log's file name in the data directory.
pub const LOG_FILE: &str = "kill_switches.jsonl";
/// Longest agent name, agent version or prompt version, in bytes (the ingest limit for names).
pub const MAX_NAME_BYTES: usize = 256;
/// Longest reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// May the agent run?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SwitchState {
    Enabled,
    Disabled,
}

impl SwitchState {
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchState::Enabled => "enabled",
            SwitchState::Disabled => "disabled",
        }
    }
}

/// What a switch covers: an agent, or one of its agent versions, prompt versions, or both.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Scope {
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_version: Option<String>,
}

impl Scope {
    /// A scope, each name checked: not empty, at most [`MAX_NAME_BYTES`].
    pub fn new(
        agent: &str,
        agent_version: Option<&str>,
        prompt_version: Option<&str>,
    ) -> Result<Scope, EvalError> {
        let name = |field: &str, value: &str| {
            if value.is_empty() {
                return Err(EvalError::invalid(field, "must not be empty"));
            }
            if value.len() > MAX_NAME_BYTES {
                return Err(EvalError::invalid(
                    field,
                    format!("{} bytes, the limit is {MAX_NAME_BYTES}", value.len()),
                ));
            }
            Ok(value.to_string())
        };
        Ok(Scope {
            agent: name("agent", agent)?,
            agent_version: agent_version
                .map(|v| name("agent_version", v))
                .transpose()?,
            prompt_version: prompt_version
                .map(|v| name("prompt_version", v))
                .transpose()?,
        })
    }

    /// The switches that cover an agent running as `self`, broadest first: the agent's, its
    /// version's, its prompt version's, both.
    fn covering(&self) -> Vec<Scope> {
        let scope = |agent_version: Option<&String>, prompt_version: Option<&String>| Scope {
            agent: self.agent.clone(),
            agent_version: agent_version.cloned(),
            prompt_version: prompt_version.cloned(),
        };
        let mut scopes = vec![scope(None, None)];
        if self.agent_version.is_some() {
            scopes.push(scope(self.agent_version.as_ref(), None));
        }
        if self.prompt_version.is_some() {
            scopes.push(scope(None, self.prompt_version.as_ref()));
        }
        if self.agent_version.is_some() && self.prompt_version.is_some() {
            scopes.push(self.clone());
        }
        scopes
    }
}

/// Who set a switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SwitchSource {
    /// A person, with an API key (`cli` for the `vigil` CLI on the server's machine).
    Api { key_id: String },
    /// An alert rule that names the agent: when its alert fired, or (re-enabled) resolved.
    AlertRule { rule: String },
}

/// A switch as last set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KillSwitch {
    pub scope: Scope,
    pub state: SwitchState,
    /// Why; always given when disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was set (ns since the epoch).
    pub since_ns: i64,
    pub source: SwitchSource,
}

/// What an agent polling the switch is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SwitchAnswer {
    pub state: SwitchState,
    /// Why it was set; `null` when no switch covers the agent.
    pub reason: Option<String>,
    /// When it was set, RFC 3339; `null` when no switch covers the agent.
    pub since: Option<String>,
    pub source: Option<SwitchSource>,
    /// The switch that answered; `null` when none covers the agent.
    pub scope: Option<Scope>,
}

impl SwitchAnswer {
    /// A strong entity tag of the answer, for `ETag` and `If-None-Match`: the answer's hash.
    pub fn etag(&self) -> String {
        let body = serde_json::to_vec(self).expect("an answer serializes");
        format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..12]))
    }
}

/// A change asked for.
#[derive(Debug, Clone)]
pub struct SetSwitch {
    pub scope: Scope,
    pub state: SwitchState,
    pub reason: Option<String>,
    pub source: SwitchSource,
    pub at_ns: i64,
}

impl SetSwitch {
    fn check(&self) -> Result<(), EvalError> {
        match self.reason.as_deref() {
            Some(reason) if reason.len() > MAX_REASON_BYTES => Err(EvalError::invalid(
                "reason",
                format!("{} bytes, the limit is {MAX_REASON_BYTES}", reason.len()),
            )),
            None | Some("") if self.state == SwitchState::Disabled => Err(EvalError::invalid(
                "reason",
                "required when disabling: say why, for whoever re-enables it",
            )),
            _ => Ok(()),
        }
    }
}

/// One line of the log.
#[derive(Serialize, Deserialize)]
struct Event {
    project: String,
    switch: KillSwitch,
}

type Switches = BTreeMap<(String, Scope), KillSwitch>;

struct State {
    log: EventLog<Event>,
    switches: Switches,
}

/// Every project's kill switches.
pub struct KillSwitches {
    state: Mutex<State>,
    /// Counts the changes set on this node, so that sharing knows when there is news to send.
    local_changes: AtomicU64,
}

impl KillSwitches {
    /// Opens (or starts) the log in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<KillSwitches, StoreError> {
        let mut switches = Switches::new();
        let log = EventLog::open(data_dir, LOG_FILE, |event: Event| {
            switches.insert((event.project, event.switch.scope.clone()), event.switch);
            Ok(())
        })?;
        Ok(KillSwitches {
            state: Mutex::new(State { log, switches }),
            local_changes: AtomicU64::new(0),
        })
    }

    /// How many changes were set on this node since it opened.
    pub fn local_changes(&self) -> u64 {
        self.local_changes.load(Ordering::SeqCst)
    }

    /// Every switch of every project.
    pub fn all(&self) -> Vec<(String, KillSwitch)> {
        self.state
            .lock()
            .switches
            .iter()
            .map(|((project, _), switch)| (project.clone(), switch.clone()))
            .collect()
    }

    /// Takes a switch set on another node when it is later than the one here (see [`later`]);
    /// whether it was taken. Logged like a change made here.
    pub fn adopt(&self, project: &str, switch: KillSwitch) -> Result<bool, StoreError> {
        let mut state = self.state.lock();
        let key = (project.to_string(), switch.scope.clone());
        if state
            .switches
            .get(&key)
            .is_some_and(|ours| !later(&switch, ours))
        {
            return Ok(false);
        }
        let event = Event {
            project: project.to_string(),
            switch,
        };
        state.log.append(&event)?;
        state.switches.insert(key, event.switch);
        Ok(true)
    }

    /// Sets a switch; `None` when it already was in that state for that reason (nothing is
    /// written), else the switch as now set.
    pub fn set(&self, project: &str, change: SetSwitch) -> Result<Option<KillSwitch>, StoreError> {
        change.check()?;
        let mut state = self.state.lock();
        let key = (project.to_string(), change.scope.clone());
        if state
            .switches
            .get(&key)
            .is_some_and(|s| s.state == change.state && s.reason == change.reason)
        {
            return Ok(None);
        }
        let switch = KillSwitch {
            scope: change.scope,
            state: change.state,
            reason: change.reason.filter(|r| !r.is_empty()),
            since_ns: change.at_ns,
            source: change.source,
        };
        let event = Event {
            project: project.to_string(),
            switch,
        };
        state.log.append(&event)?;
        state.switches.insert(key, event.switch.clone());
        self.local_changes.fetch_add(1, Ordering::SeqCst);
        Ok(Some(event.switch))
    }

    /// The switch set for exactly this scope, if any.
    pub fn get(&self, project: &str, scope: &Scope) -> Option<KillSwitch> {
        let key = (project.to_string(), scope.clone());
        self.state.lock().switches.get(&key).cloned()
    }

    /// What an agent running as `running` is told (see the module documentation).
    pub fn resolve(&self, project: &str, running: &Scope) -> SwitchAnswer {
        let state = self.state.lock();
        let covering: Vec<&KillSwitch> = running
            .covering()
            .into_iter()
            .filter_map(|scope| state.switches.get(&(project.to_string(), scope)))
            .collect();
        let answering = covering
            .iter()
            .find(|s| s.state == SwitchState::Disabled)
            .or(covering.last());
        match answering {
            Some(switch) => SwitchAnswer {
                state: switch.state,
                reason: switch.reason.clone(),
                since: Some(vigil_schemas::time::rfc3339(switch.since_ns)),
                source: Some(switch.source.clone()),
                scope: Some(switch.scope.clone()),
            },
            None => SwitchAnswer {
                state: SwitchState::Enabled,
                reason: None,
                since: None,
                source: None,
                scope: None,
            },
        }
    }

    /// Every switch of the project, by scope.
    pub fn list(&self, project: &str) -> Vec<KillSwitch> {
        self.state
            .lock()
            .switches
            .iter()
            .filter(|((p, _), _)| p == project)
            .map(|(_, s)| s.clone())
            .collect()
    }
}

/// Whether `a` was set after `b`: by the time set, then (two nodes setting a switch in the same
/// nanosecond) by a fixed order of their contents, so that every node picks the same.
pub fn later(a: &KillSwitch, b: &KillSwitch) -> bool {
    let contents = |s: &KillSwitch| serde_json::to_string(s).expect("a switch serializes");
    (a.since_ns, contents(a)) > (b.since_ns, contents(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(agent_version: Option<&str>, prompt_version: Option<&str>) -> Scope {
        Scope::new("support", agent_version, prompt_version).expect("scope")
    }

    fn set(state: SwitchState, scope: Scope, reason: Option<&str>, at_ns: i64) -> SetSwitch {
        SetSwitch {
            scope,
            state,
            reason: reason.map(str::to_string),
            source: SwitchSource::Api {
                key_id: "key_1".into(),
            },
            at_ns,
        }
    }

    #[test]
    fn the_broadest_disabled_switch_answers_and_a_narrow_one_stops_only_its_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let switches = KillSwitches::open(dir.path()).expect("open");
        let v2 = scope(Some("2.0"), None);
        let never = switches.resolve("p", &v2);
        assert_eq!((never.state, never.scope), (SwitchState::Enabled, None));

        let disabled = set(SwitchState::Disabled, v2.clone(), Some("bad release"), 10);
        assert!(switches.set("p", disabled.clone()).expect("set").is_some());
        // The same change again writes nothing.
        assert!(switches.set("p", disabled).expect("again").is_none());
        assert_eq!(switches.resolve("p", &v2).state, SwitchState::Disabled);
        assert_eq!(
            switches.resolve("p", &scope(Some("1.0"), None)).state,
            SwitchState::Enabled
        );
        // Another project is not affected.
        assert_eq!(switches.resolve("q", &v2).state, SwitchState::Enabled);
        // Running as v2 with a prompt version: still covered by the version's switch.
        let v2_p7 = scope(Some("2.0"), Some("p7"));
        assert_eq!(
            switches.resolve("p", &v2_p7).scope,
            Some(v2.clone()),
            "the version's switch answers"
        );

        switches
            .set(
                "p",
                set(
                    SwitchState::Disabled,
                    scope(None, None),
                    Some("all off"),
                    20,
                ),
            )
            .expect("agent");
        let answer = switches.resolve("p", &v2_p7);
        assert_eq!(answer.reason.as_deref(), Some("all off"), "broadest first");

        // Re-enabled everywhere: the narrowest switch set answers, enabled.
        for s in [scope(None, None), v2.clone()] {
            switches
                .set("p", set(SwitchState::Enabled, s, None, 30))
                .expect("enable");
        }
        let answer = switches.resolve("p", &v2_p7);
        assert_eq!(
            (answer.state, answer.scope),
            (SwitchState::Enabled, Some(v2))
        );

        // Kept across a restart, and the answer's tag with it.
        let tag = switches.resolve("p", &v2_p7).etag();
        drop(switches);
        let reopened = KillSwitches::open(dir.path()).expect("reopen");
        assert_eq!(reopened.resolve("p", &v2_p7).etag(), tag);
        assert_eq!(reopened.list("p").len(), 2);
    }

    #[test]
    fn bad_requests_name_their_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let switches = KillSwitches::open(dir.path()).expect("open");
        let field = |r: Result<Option<KillSwitch>, StoreError>| match r {
            Err(StoreError::Eval(EvalError::Invalid { field, .. })) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let no_reason = set(SwitchState::Disabled, scope(None, None), None, 1);
        assert_eq!(field(switches.set("p", no_reason)), "reason");
        let long = "x".repeat(MAX_REASON_BYTES + 1);
        let too_long = set(SwitchState::Disabled, scope(None, None), Some(&long), 1);
        assert_eq!(field(switches.set("p", too_long)), "reason");
        let name = |r: Result<Scope, EvalError>| match r {
            Err(EvalError::Invalid { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(name(Scope::new("", None, None)), "agent");
        assert_eq!(
            name(Scope::new("a", Some(&"v".repeat(300)), None)),
            "agent_version"
        );
        assert_eq!(name(Scope::new("a", None, Some(""))), "prompt_version");
    }
}
