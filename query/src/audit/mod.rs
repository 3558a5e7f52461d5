//! Compliance queries: which runs, sessions and (hashed) users a model version, prompt
//! version, tool version… touched, since when, and every one of those runs for an export.
//! The request and its checks are in [`request`], the SQL for both stores in `compile`; each
//! store runs it ([`crate::TraceStore::affected_summary`] and friends).

pub(crate) mod compile;
pub mod request;

use serde::Serialize;

pub use request::{AffectedPlan, AffectedQuery, SessionCursor, SessionPageRequest};

/// Totals of an investigation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AffectedSummary {
    pub runs: u64,
    /// Distinct non-empty session ids.
    pub sessions: u64,
    /// Distinct non-empty user hashes.
    pub users: u64,
    /// Start of the first and of the last affected run (ns); `None` when there is none.
    pub first_seen_ns: Option<i64>,
    pub last_seen_ns: Option<i64>,
    /// By UTC day, oldest first; days without affected runs are left out.
    pub by_day: Vec<DayCount>,
}

/// The summary from its totals row (`runs, sessions, users, first_seen, last_seen`; the
/// times meaningless without runs) and its days.
pub(crate) fn summary_of(totals: &[i64], by_day: Vec<DayCount>) -> AffectedSummary {
    let at = |i: usize| totals.get(i).copied().unwrap_or_default();
    let runs = at(0).max(0) as u64;
    AffectedSummary {
        runs,
        sessions: at(1).max(0) as u64,
        users: at(2).max(0) as u64,
        first_seen_ns: (runs > 0).then(|| at(3)),
        last_seen_ns: (runs > 0).then(|| at(4)),
        by_day,
    }
}

/// One day of an investigation (also ClickHouse's answer row: fields in column order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct DayCount {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub runs: u64,
    pub sessions: u64,
    pub users: u64,
}

/// How many affected runs started on one day (also ClickHouse's answer row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct DayRuns {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub runs: u64,
}

/// One session (and user) of an investigation (also ClickHouse's answer row: fields in column
/// order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct SessionItem {
    pub session_id: String,
    pub user_hash: String,
    pub runs: u64,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
}

/// One page of sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionPage {
    pub items: Vec<SessionItem>,
    pub next_cursor: Option<String>,
}

impl SessionPage {
    /// A page from up to `limit + 1` items: the extra one only says that more follow.
    pub(crate) fn from_items(mut items: Vec<SessionItem>, limit: usize) -> SessionPage {
        let next_cursor = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(|last| {
                SessionCursor {
                    first_seen_ns: last.first_seen_ns,
                    session_id: last.session_id.clone(),
                    user_hash: last.user_hash.clone(),
                }
                .encode()
            })
        });
        SessionPage {
            items,
            next_cursor: next_cursor.flatten(),
        }
    }
}

/// The affected runs of one day, session and user ([`compile::AuditSql::digest`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, clickhouse::Row)]
pub struct DigestRow {
    pub day: i64,
    pub session_id: String,
    pub user_hash: String,
    pub runs: u64,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// The most digest rows an investigation folds in memory; past it, the store answers the
/// totals, the days and the page of sessions with a statement each.
pub const MAX_DIGEST_ROWS: usize = 250_000;

/// An investigation's answer: the totals and days, and one page of sessions.
pub async fn investigate(
    store: &dyn crate::TraceStore,
    project_id: &str,
    plan: &AffectedPlan,
    page: &SessionPageRequest,
) -> Result<(AffectedSummary, SessionPage), crate::QueryError> {
    investigate_folding_at_most(store, project_id, plan, page, MAX_DIGEST_ROWS).await
}

/// [`investigate`], folding a digest of at most `cap` rows in memory (0: never; tests compare
/// both ways of answering).
pub async fn investigate_folding_at_most(
    store: &dyn crate::TraceStore,
    project_id: &str,
    plan: &AffectedPlan,
    page: &SessionPageRequest,
    cap: usize,
) -> Result<(AffectedSummary, SessionPage), crate::QueryError> {
    if let Some(rows) = store.affected_digest(project_id, plan, cap).await? {
        return Ok(fold_digest(&rows, page));
    }
    let (summary, sessions) = tokio::try_join!(
        store.affected_summary(project_id, plan),
        store.affected_sessions(project_id, plan, page)
    )?;
    Ok((summary, sessions))
}

/// The totals, days and page of sessions of a digest: the same answer the statements give.
pub(crate) fn fold_digest(
    rows: &[DigestRow],
    page: &SessionPageRequest,
) -> (AffectedSummary, SessionPage) {
    use std::collections::{BTreeMap, BTreeSet};

    let nonempty = |s: &String| !s.is_empty();
    let mut sessions = BTreeSet::new();
    let mut users = BTreeSet::new();
    let mut days: BTreeMap<i64, (u64, BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    let mut items: BTreeMap<(&str, &str), SessionItem> = BTreeMap::new();
    for row in rows {
        if nonempty(&row.session_id) {
            sessions.insert(row.session_id.as_str());
        }
        if nonempty(&row.user_hash) {
            users.insert(row.user_hash.as_str());
        }
        let day = days.entry(row.day).or_default();
        day.0 += row.runs;
        if nonempty(&row.session_id) {
            day.1.insert(&row.session_id);
        }
        if nonempty(&row.user_hash) {
            day.2.insert(&row.user_hash);
        }
        let item = items
            .entry((&row.session_id, &row.user_hash))
            .or_insert_with(|| SessionItem {
                session_id: row.session_id.clone(),
                user_hash: row.user_hash.clone(),
                runs: 0,
                first_seen_ns: row.first_seen,
                last_seen_ns: row.last_seen,
            });
        item.runs += row.runs;
        item.first_seen_ns = item.first_seen_ns.min(row.first_seen);
        item.last_seen_ns = item.last_seen_ns.max(row.last_seen);
    }
    let runs: u64 = rows.iter().map(|r| r.runs).sum();
    let summary = AffectedSummary {
        runs,
        sessions: sessions.len() as u64,
        users: users.len() as u64,
        first_seen_ns: rows.iter().map(|r| r.first_seen).min(),
        last_seen_ns: rows.iter().map(|r| r.last_seen).max(),
        by_day: days
            .into_iter()
            .map(|(day, (runs, sessions, users))| DayCount {
                day,
                runs,
                sessions: sessions.len() as u64,
                users: users.len() as u64,
            })
            .collect(),
    };
    let position = |i: &SessionItem| (i.first_seen_ns, i.session_id.clone(), i.user_hash.clone());
    let mut items: Vec<SessionItem> = items
        .into_values()
        .filter(|i| {
            page.after.as_ref().is_none_or(|after| {
                position(i)
                    > (
                        after.first_seen_ns,
                        after.session_id.clone(),
                        after.user_hash.clone(),
                    )
            })
        })
        .collect();
    items.sort_by_key(position);
    items.truncate(page.limit + 1);
    (summary, SessionPage::from_items(items, page.limit))
}

/// One affected run, as exported (no inputs or outputs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct AffectedRun {
    pub trace_id: String,
    pub session_id: String,
    pub user_hash: String,
    pub agent_name: String,
    pub agent_version: String,
    pub task_type: String,
    pub environment: String,
    pub release: String,
    pub start_time_ns: i64,
    pub end_time_ns: i64,
    pub outcome: String,
    pub classification: Vec<String>,
    pub retention: String,
    pub audit_ref: String,
}

/// The most runs one export chunk holds, as counted per day by the summary: the export's
/// memory is bounded by a chunk, whatever the export's size.
pub const EXPORT_CHUNK_RUNS: u64 = 20_000;

/// The time ranges an export reads one after another, each holding about
/// [`EXPORT_CHUNK_RUNS`] runs or fewer by the day counts: quiet days are read together, a busy
/// day is cut into equal parts. Days without runs are skipped.
pub fn export_chunks(days: &[DayRuns]) -> Vec<(i64, i64)> {
    const DAY: i64 = vigil_schemas::time::NANOS_PER_DAY;
    let mut chunks: Vec<(i64, i64)> = Vec::new();
    let mut open: Option<(i64, i64, u64)> = None;
    for day in days {
        let (start, end) = (day.day * DAY, (day.day + 1) * DAY);
        if day.runs > EXPORT_CHUNK_RUNS {
            chunks.extend(open.take().map(|(s, e, _)| (s, e)));
            let parts = day.runs.div_ceil(EXPORT_CHUNK_RUNS) as i64;
            let step = DAY / parts;
            for i in 0..parts {
                let to = if i + 1 == parts {
                    end
                } else {
                    start + (i + 1) * step
                };
                chunks.push((start + i * step, to));
            }
            continue;
        }
        open = match open {
            Some((s, _, runs)) if runs + day.runs <= EXPORT_CHUNK_RUNS => {
                Some((s, end, runs + day.runs))
            }
            previous => {
                chunks.extend(previous.map(|(s, e, _)| (s, e)));
                Some((start, end, day.runs))
            }
        };
    }
    chunks.extend(open.map(|(s, e, _)| (s, e)));
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = vigil_schemas::time::NANOS_PER_DAY;

    fn summary(days: &[(i64, u64)]) -> Vec<DayRuns> {
        days.iter()
            .map(|&(day, runs)| DayRuns { day, runs })
            .collect()
    }

    #[test]
    fn chunks_merge_quiet_days_and_split_busy_ones() {
        let chunks = export_chunks(&summary(&[
            (10, 5),
            (11, 7),
            (13, EXPORT_CHUNK_RUNS),
            (14, 2 * EXPORT_CHUNK_RUNS + 1),
            (20, 1),
        ]));
        assert_eq!(chunks[0], (10 * DAY, 12 * DAY));
        assert_eq!(chunks[1], (13 * DAY, 14 * DAY));
        assert_eq!(chunks.len(), 2 + 3 + 1);
        assert_eq!(chunks[2].0, 14 * DAY);
        assert_eq!(chunks[4].1, 15 * DAY);
        for pair in chunks.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "chunks overlap: {chunks:?}");
        }
        assert_eq!(chunks[5], (20 * DAY, 21 * DAY));
        assert!(export_chunks(&summary(&[])).is_empty());
    }
}
