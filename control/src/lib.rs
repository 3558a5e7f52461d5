//! What Vigil nodes share when the store is ClickHouse: the control state (API keys, alert
//! rules, silences, the alert and notification state, kill switches), the lease that makes one
//! alerting node of many the one that pages ([`lease`]), and a log every node appends to in one
//! order ([`shared_log`]), for the evaluation state.
//!
//! State is a set of **records**, each a `(kind, key)` with a JSON body, kept in one table
//! (`vigil_control`, created by the migrations). A change writes a new **version** of a record,
//! never an update in place; the newest version wins, and a deleted record is a version without a
//! body. Versions are nanosecond numbers above both the writer's clock and the version the
//! writer read, so a change made on a node whose clock is behind still supersedes what it saw.
//!
//! Every node keeps the records it uses in memory and asks the table, about once a second, for
//! a [`Fingerprint`] of each kind; when it changed, it reads the kind again. Where the table is:
//! on one server, that server; on a replicated cluster, every server holds a replica of it (all
//! shards' servers are its replicas), and a node reads its own; on a cluster without replicas,
//! the first node of `nodes`.

pub mod lease;
pub mod shared_log;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use vigil_schemas::{
    clickhouse::{ClickHouseConfig, is_transient, schema::CONTROL_TABLE},
    time::now_ns,
};

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An API key (`vigil_access::keys::KeyRecord`), by id.
    Key,
    /// An alert rule created through the API, by `<project>/<name>`.
    AlertRule,
    /// A silence, by `<project>/<id>`.
    Silence,
    /// The alert and notification state, as the lease holder that wrote it saw it, by its
    /// lease token (zero-padded, so that the newest holder's sorts last).
    AlertState,
    /// A kill switch (`vigil_eval::kill_switch::KillSwitch`), by project and scope.
    KillSwitch,
    /// An entry of a node's audit chain, as written in its log, by `<chain>/<seq, 20 digits>`.
    AuditEntry,
    /// An entry of the [`shared_log`] (datasets and experiments), by `<seq, 20 digits>/<id>`.
    LogEntry,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::AlertRule => "alert_rule",
            Kind::Silence => "silence",
            Kind::AlertState => "alert_state",
            Kind::KillSwitch => "kill_switch",
            Kind::AuditEntry => "audit_entry",
            Kind::LogEntry => "log_entry",
        }
    }
}

/// The newest version of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub version: i64,
    /// The node that wrote this version.
    pub node: String,
    /// The record's JSON; `None` once it was deleted.
    pub body: Option<String>,
}

/// Changes whenever a version of a record of a kind is written (or merged away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Row, Deserialize)]
pub struct Fingerprint {
    versions: u64,
    digest: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    /// ClickHouse did not answer, or answered an error worth retrying.
    #[error("the shared control state is unavailable: {0}")]
    Unavailable(String),
    /// ClickHouse refused the statement (a table that was never migrated, …).
    #[error("the shared control state refused: {0}")]
    Refused(String),
    /// A change whose outcome is not known: it was sent, and no answer said whether it was
    /// made (the coordination service went away in between). Reading tells.
    #[error("the shared control state did not say whether the change was made: {0}")]
    Unknown(String),
}

impl From<clickhouse::error::Error> for ControlError {
    fn from(error: clickhouse::error::Error) -> ControlError {
        if is_transient(&error) {
            ControlError::Unavailable(error.to_string())
        } else {
            ControlError::Refused(error.to_string())
        }
    }
}

#[derive(Row, Serialize, Deserialize)]
struct Version {
    kind: String,
    key: String,
    version: i64,
    node: String,
    deleted: u8,
    body: String,
}

/// The table of shared records, seen from one node.
pub struct ControlTable {
    client: Client,
    /// Who writes: recorded with each version (which node made a change).
    node: String,
}

impl ControlTable {
    /// The table where `config` keeps it; `node` names this process in what it writes.
    pub fn new(config: &ClickHouseConfig, node: &str) -> ControlTable {
        ControlTable {
            client: config.control_client(),
            node: node.to_string(),
        }
    }

    /// This node, as it signs what it writes.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The newest version of every record of `kind` that is not deleted, by key.
    pub async fn load(&self, kind: Kind) -> Result<Vec<Record>, ControlError> {
        self.load_prefix(kind, "").await
    }

    /// [`Self::load`], of the records whose key starts with `prefix`.
    pub async fn load_prefix(&self, kind: Kind, prefix: &str) -> Result<Vec<Record>, ControlError> {
        self.load_where(kind, "startsWith(key, ?)", prefix).await
    }

    /// [`Self::load`], of the records whose key sorts at or after `from`.
    pub async fn load_from(&self, kind: Kind, from: &str) -> Result<Vec<Record>, ControlError> {
        self.load_where(kind, "key >= ?", from).await
    }

    async fn load_where(
        &self,
        kind: Kind,
        key_condition: &str,
        key: &str,
    ) -> Result<Vec<Record>, ControlError> {
        let sql = format!(
            "SELECT kind, key, version, node, deleted, body FROM {CONTROL_TABLE} \
             WHERE kind = ? AND {key_condition} \
             ORDER BY key, version DESC, node DESC LIMIT 1 BY key"
        );
        let versions: Vec<Version> = self
            .client
            .query(&sql)
            .bind(kind.as_str())
            .bind(key)
            .fetch_all()
            .await?;
        Ok(versions
            .into_iter()
            .filter(|v| v.deleted == 0)
            .map(Version::into_record)
            .collect())
    }

    /// The newest version of one record (a deleted one too: its version orders the next).
    pub async fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>, ControlError> {
        let sql = format!(
            "SELECT kind, key, version, node, deleted, body FROM {CONTROL_TABLE} \
             WHERE kind = ? AND key = ? ORDER BY version DESC, node DESC LIMIT 1"
        );
        let version: Option<Version> = self
            .client
            .query(&sql)
            .bind(kind.as_str())
            .bind(key)
            .fetch_optional()
            .await?;
        Ok(version.map(Version::into_record))
    }

    /// Writes a version of a record above `read` (the version the change was made from, if
    /// any): `body`, or `None` to delete it. Durable on ClickHouse when it returns.
    pub async fn put(
        &self,
        kind: Kind,
        key: &str,
        read: Option<i64>,
        body: Option<&str>,
    ) -> Result<Record, ControlError> {
        let version = next_version(read, now_ns());
        let mut insert = self.client.insert::<Version>(CONTROL_TABLE).await?;
        insert
            .write(&Version {
                kind: kind.as_str().to_string(),
                key: key.to_string(),
                version,
                node: self.node.clone(),
                deleted: u8::from(body.is_none()),
                body: body.unwrap_or_default().to_string(),
            })
            .await?;
        insert.end().await?;
        Ok(Record {
            key: key.to_string(),
            version,
            node: self.node.clone(),
            body: body.map(str::to_string),
        })
    }

    /// Writes new records (first versions), in one insert: all or none of them.
    pub async fn put_new(
        &self,
        kind: Kind,
        records: &[(String, String)],
    ) -> Result<(), ControlError> {
        if records.is_empty() {
            return Ok(());
        }
        let version = next_version(None, now_ns());
        let mut insert = self.client.insert::<Version>(CONTROL_TABLE).await?;
        for (key, body) in records {
            insert
                .write(&Version {
                    kind: kind.as_str().to_string(),
                    key: key.clone(),
                    version,
                    node: self.node.clone(),
                    deleted: 0,
                    body: body.clone(),
                })
                .await?;
        }
        insert.end().await?;
        Ok(())
    }

    /// The fingerprint of `kind`'s versions: reading it is one small aggregate.
    pub async fn fingerprint(&self, kind: Kind) -> Result<Fingerprint, ControlError> {
        let sql = format!(
            "SELECT count(), sum(cityHash64(key, version, node)) FROM {CONTROL_TABLE} WHERE kind = ?"
        );
        Ok(self
            .client
            .query(&sql)
            .bind(kind.as_str())
            .fetch_one()
            .await?)
    }
}

impl Version {
    fn into_record(self) -> Record {
        Record {
            key: self.key,
            version: self.version,
            node: self.node,
            body: (self.deleted == 0).then_some(self.body),
        }
    }
}

/// The version a change made from version `read` (none: a new record) gets at `now`: above
/// both, so that a writer whose clock is behind still supersedes what it read.
fn next_version(read: Option<i64>, now: i64) -> i64 {
    now.max(read.map_or(i64::MIN, |v| v.saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_supersedes_what_it_read_whatever_the_clock() {
        assert_eq!(next_version(None, 1_000), 1_000);
        // The clock ahead of what was read: the clock.
        assert_eq!(next_version(Some(500), 1_000), 1_000);
        // The clock behind (another node wrote the version read, from a faster clock).
        assert_eq!(next_version(Some(5_000), 1_000), 5_001);
        assert_eq!(next_version(Some(i64::MAX), 1_000), i64::MAX);
    }
}
