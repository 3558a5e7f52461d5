//! Alerting's durable state in the control table every node shares (the ClickHouse store):
//! rules created through the API, silences, and the alert and notification state.
//!
//! - A rule is a record of its own, by `<project>/<name>`; so is a silence, by `<project>/<id>`.
//!   Any node changes them; every node reads them again when their fingerprint changes.
//! - The alert and notification state (alert instances, resolved alerts not reported yet, the
//!   notification log, each rule's last evaluation) has one writer: the node that evaluates,
//!   the holder of the alerting lease. It writes under its lease token, a record per token
//!   (zero-padded, so that they sort as numbers): a paused former holder that wakes up and
//!   writes again writes under its own, older token, never over the newer holder's state. A
//!   node that takes over reads the state of the highest token.
//!
//! A node's own files (`<data dir>/alerts/`) from before the state was shared are imported at
//! its first read, then renamed `*.imported`.

use std::{
    collections::HashMap,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
};

use parking_lot::Mutex;
use serde::{Serialize, de::DeserializeOwned};
use vigil_control::{ControlError, ControlTable, Fingerprint, Kind, Record, lease::Token};

use crate::{rule::RuleSpec, silence::Silence};

/// The kinds of record alerting keeps, in the order a refresh reads them.
pub const KINDS: [Kind; 3] = [Kind::AlertRule, Kind::Silence, Kind::AlertState];

/// Alerting's view of the control table.
pub struct SharedState {
    table: ControlTable,
    /// The fingerprint of each kind when it was last read.
    seen: Mutex<HashMap<Kind, Fingerprint>>,
    /// The version of the state this node last wrote, by key: the next is above it, whatever
    /// the clock did.
    written: Mutex<Option<(String, i64)>>,
    /// Whether this node's own files were imported (at its first read).
    imported: AtomicBool,
}

/// A rule as kept: with its project, which a rule's own serialization leaves out.
#[derive(Serialize)]
pub struct SavedRule<'a> {
    pub project: &'a str,
    #[serde(flatten)]
    pub spec: &'a RuleSpec,
}

impl SharedState {
    pub fn new(table: ControlTable) -> SharedState {
        SharedState {
            table,
            seen: Mutex::new(HashMap::new()),
            written: Mutex::new(None),
            imported: AtomicBool::new(false),
        }
    }

    /// The records of `kind` when they changed since they were last read; `None` when not.
    pub async fn changed(&self, kind: Kind) -> Result<Option<Vec<Record>>, ControlError> {
        let fingerprint = self.table.fingerprint(kind).await?;
        if self.seen.lock().get(&kind) == Some(&fingerprint) {
            return Ok(None);
        }
        let records = self.table.load(kind).await?;
        self.seen.lock().insert(kind, fingerprint);
        Ok(Some(records))
    }

    /// Makes the next [`Self::changed`] of `kind` read it whatever its fingerprint: what this
    /// node holds in memory may differ from the table (a change it could not write).
    pub fn forget(&self, kind: Kind) {
        self.seen.lock().remove(&kind);
    }

    /// Writes (or with `None` deletes) the rule `<project>/<name>`.
    pub async fn put_rule(
        &self,
        project: &str,
        name: &str,
        spec: Option<&RuleSpec>,
    ) -> Result<(), ControlError> {
        let body = spec.map(|spec| json(&SavedRule { project, spec }));
        self.replace(Kind::AlertRule, &rule_key(project, name), body, true)
            .await
    }

    pub async fn put_silence(&self, silence: &Silence) -> Result<(), ControlError> {
        self.replace(
            Kind::Silence,
            &silence_key(silence),
            Some(json(silence)),
            true,
        )
        .await
    }

    /// A new version of one record, above the one there is; with `overwrite` false, only when
    /// there is none.
    async fn replace(
        &self,
        kind: Kind,
        key: &str,
        body: Option<String>,
        overwrite: bool,
    ) -> Result<(), ControlError> {
        let read = match self.table.get(kind, key).await? {
            Some(_) if !overwrite => return Ok(()),
            found => found.map(|r| r.version),
        };
        let written = self.table.put(kind, key, read, body.as_deref()).await;
        if written.is_err() {
            self.forget(kind);
        }
        written.map(|_| ())
    }

    /// The state of the highest token, with that token.
    pub async fn newest_state(&self) -> Result<Option<(Token, String)>, ControlError> {
        Ok(newest_state(self.table.load(Kind::AlertState).await?))
    }

    /// Another node that wrote the state under `token`, this node's, after this node did, as
    /// the newest version in `records` (the alert state's) says: two nodes evaluate and page.
    pub fn other_writer(&self, records: &[Record], token: Token) -> Option<String> {
        let key = state_key(token);
        if self.written.lock().as_ref().is_none_or(|(k, _)| *k != key) {
            // Not written here yet: the newest may be the former writer's.
            return None;
        }
        records
            .iter()
            .find(|r| r.key == key)
            .filter(|r| r.node != self.table.node())
            .map(|r| r.node.clone())
    }

    /// Writes the state under `token`. The first write under a token deletes the states of
    /// the tokens below it: their holders are gone (a failure to is told, not returned).
    pub async fn write_state(&self, token: Token, body: &str) -> Result<(), ControlError> {
        let key = state_key(token);
        let read = self
            .written
            .lock()
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v);
        let record = self
            .table
            .put(Kind::AlertState, &key, read, Some(body))
            .await?;
        *self.written.lock() = Some((key, record.version));
        if read.is_none()
            && let Err(e) = self.drop_states_before(token).await
        {
            tracing::warn!(error = %e, "the former holders' alert states stay");
        }
        Ok(())
    }

    /// Deletes the states of tokens below `token`.
    async fn drop_states_before(&self, token: Token) -> Result<(), ControlError> {
        for record in self.table.load(Kind::AlertState).await? {
            if record.key.parse::<Token>().is_ok_and(|t| t < token) {
                self.table
                    .put(Kind::AlertState, &record.key, Some(record.version), None)
                    .await?;
            }
        }
        Ok(())
    }

    /// Once, at this node's first read: imports what it kept in `dir` before the state was
    /// shared: rules and silences the table does not have, and the alert state when the table
    /// has none. Each file imported is renamed `<name>.imported`.
    pub async fn import_once(&self, dir: &Path) -> Result<(), ControlError> {
        if self.imported.load(Ordering::SeqCst) {
            return Ok(());
        }
        let unreadable = |e: std::io::Error| ControlError::Refused(e.to_string());
        let rules: Vec<RuleSpec> = read_json(&dir.join("rules.json"))
            .map_err(unreadable)?
            .unwrap_or_default();
        let silences: Vec<Silence> = read_json(&dir.join("silences.json"))
            .map_err(unreadable)?
            .unwrap_or_default();
        let state = std::fs::read_to_string(dir.join("state.json")).ok();
        for spec in &rules {
            let body = json(&SavedRule {
                project: &spec.project,
                spec,
            });
            let key = rule_key(&spec.project, &spec.name);
            self.replace(Kind::AlertRule, &key, Some(body), false)
                .await?;
        }
        for silence in &silences {
            let body = json(silence);
            self.replace(Kind::Silence, &silence_key(silence), Some(body), false)
                .await?;
        }
        if let Some(state) = &state
            && self.newest_state().await?.is_none()
        {
            self.write_state(0, state).await?;
        }
        for (name, imported) in [
            ("rules.json", !rules.is_empty()),
            ("silences.json", !silences.is_empty()),
            ("state.json", state.is_some()),
        ] {
            let file = dir.join(name);
            if imported && let Err(e) = std::fs::rename(&file, dir.join(format!("{name}.imported")))
            {
                tracing::warn!(file = %file.display(), error = %e, "an imported alerting file could not be renamed; it will be imported again (nothing is overwritten)");
            }
        }
        self.imported.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// Of the alert state's records, the state of the highest token, with that token.
pub fn newest_state(records: Vec<Record>) -> Option<(Token, String)> {
    records
        .into_iter()
        .filter_map(|r| Some((r.key.parse::<Token>().ok()?, r.body?)))
        .max_by_key(|(token, _)| *token)
}

fn rule_key(project: &str, name: &str) -> String {
    format!("{project}/{name}")
}

fn silence_key(silence: &Silence) -> String {
    format!("{}/{}", silence.project, silence.id)
}

/// The key of the state written under `token`: zero-padded, so that keys sort as tokens.
fn state_key(token: Token) -> String {
    format!("{token:020}")
}

/// A JSON file of the data directory; `None` when there is none.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("a rule or silence serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_keys_sort_as_their_tokens() {
        let mut tokens = [0, 9, 10, 4_294_967_296, 12_884_901_890, Token::MAX];
        let mut keys: Vec<String> = tokens.iter().map(|t| state_key(*t)).collect();
        keys.sort();
        tokens.sort();
        let parsed: Vec<Token> = keys.iter().map(|k| k.parse().unwrap()).collect();
        assert_eq!(parsed, tokens);
    }
}
