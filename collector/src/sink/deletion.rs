//! Deleting stored data: a person's erasure and the retention policies. Both come down to
//! "remove every version of these traces' runs, spans and scores", where the traces are those
//! with a run (in any version) that [`Doomed`] picks; retention also drops whole days.
//!
//! Each sink implements [`Deleter`] for its store; every call can be a dry run that only counts.

use async_trait::async_trait;
use serde::Serialize;
use vigil_schemas::layout::Table;

use super::SinkError;

/// The order tables are deleted from: the runs are what picks the traces, so they go last, and a
/// deletion cut short (kill -9, a store gone) still finds every trace it has left to delete when
/// it is run again.
pub const DELETION_ORDER: [Table; 3] = [Table::Spans, Table::Scores, Table::Runs];

/// Which traces a deletion removes: those having a run, in any version, that matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Doomed {
    /// One person's runs in one project.
    User {
        project_id: String,
        user_hash: String,
    },
    /// Runs past their retention policy, in every project.
    Expired(Cutoffs),
}

/// When runs expire: a run whose `retention` names a policy expires when it started before
/// that policy's cutoff; any other run (no policy, or one the config does not name) before the
/// default cutoff. `None` keeps such runs forever.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cutoffs {
    /// Policy name → cutoff (ns since the epoch); `None`: kept forever.
    pub named: Vec<(String, Option<i64>)>,
    pub default: Option<i64>,
    /// Runs that started before this are left alone: their whole days are dropped instead
    /// ([`Deleter::drop_days_before`]), so a dry run counts each row once.
    pub from_ns: Option<i64>,
}

impl Cutoffs {
    /// The cutoff of a run's policy.
    pub fn cutoff_of(&self, retention: &str) -> Option<i64> {
        match self.named.iter().find(|(name, _)| name == retention) {
            Some((_, cutoff)) => *cutoff,
            None => self.default,
        }
    }

    /// Whether a run with this policy, started then, has expired.
    pub fn expired(&self, retention: &str, start_time_ns: i64) -> bool {
        self.from_ns.is_none_or(|from| start_time_ns >= from)
            && self
                .cutoff_of(retention)
                .is_some_and(|cutoff| start_time_ns < cutoff)
    }

    /// The latest cutoff of all: no run started at or after it can have expired.
    pub fn latest(&self) -> Option<i64> {
        self.named
            .iter()
            .filter_map(|(_, c)| *c)
            .chain(self.default)
            .max()
    }
}

impl Doomed {
    /// Whether a run (one version of it) picks its trace.
    pub fn picks(&self, project_id: &str, user_hash: &str, retention: &str, start: i64) -> bool {
        match self {
            Doomed::User {
                project_id: project,
                user_hash: user,
            } => project_id == project && user_hash == user,
            Doomed::Expired(cutoffs) => cutoffs.expired(retention, start),
        }
    }
}

/// Rows (every stored version counts) deleted, or that a dry run would delete, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeletedRows {
    /// Run rows (every stored version).
    pub runs: u64,
    /// Span rows (every stored version).
    pub spans: u64,
    /// Score rows (every stored version).
    pub scores: u64,
}

impl DeletedRows {
    pub fn add(&mut self, table: Table, rows: u64) {
        match table {
            Table::Runs => self.runs += rows,
            Table::Spans => self.spans += rows,
            Table::Scores => self.scores += rows,
        }
    }

    pub fn total(&self) -> u64 {
        self.runs + self.spans + self.scores
    }
}

impl std::ops::AddAssign for DeletedRows {
    fn add_assign(&mut self, other: DeletedRows) {
        self.runs += other.runs;
        self.spans += other.spans;
        self.scores += other.scores;
    }
}

/// Deletes from a store. Returns only once the deletion is durable and verified (the rows can
/// no longer be read); with `dry_run` nothing changes and the counts say what would go.
#[async_trait]
pub trait Deleter: Send + Sync {
    /// Removes every version of the runs, spans and scores of the traces `doomed` picks.
    async fn delete(&self, doomed: &Doomed, dry_run: bool) -> Result<DeletedRows, SinkError>;

    /// Drops the whole day partitions (UTC days since the epoch) before `day`, in every table.
    async fn drop_days_before(&self, day: i64, dry_run: bool) -> Result<DeletedRows, SinkError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_pick_the_runs_policy_or_the_default() {
        let cutoffs = Cutoffs {
            named: vec![("short".into(), Some(100)), ("legal_hold".into(), None)],
            default: Some(50),
            from_ns: None,
        };
        assert!(cutoffs.expired("short", 99));
        assert!(!cutoffs.expired("short", 100));
        assert!(!cutoffs.expired("legal_hold", i64::MIN));
        assert!(cutoffs.expired("", 49));
        assert!(cutoffs.expired("unknown", 49));
        assert!(!cutoffs.expired("unknown", 50));
        assert_eq!(cutoffs.latest(), Some(100));
        let later = Cutoffs {
            from_ns: Some(40),
            ..cutoffs.clone()
        };
        assert!(!later.expired("", 39));
        assert!(later.expired("", 40));
        let forever = Cutoffs::default();
        assert!(!forever.expired("", i64::MIN));
        assert_eq!(forever.latest(), None);
    }
}
