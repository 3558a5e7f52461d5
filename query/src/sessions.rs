//! The session list: sessions by their last run, newest first, a page at a time, counted over
//! the newest version of each run. Both stores run the same statement, each in its dialect.

use crate::{
    cursor::Cursor,
    error::QueryError,
    metrics::{
        Dialect,
        compile::{count_if, integer},
    },
    newest::{Seals, Source, newest_versions},
    sql::{Placeholders, Sql},
    store::page_size,
};
use vigil_schemas::{Outcome, layout::Table};

/// Which sessions `list_sessions` returns: those with a run (in its newest version) that
/// matches every filter set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Runs that started at or after this instant.
    pub from_ns: Option<i64>,
    /// Runs that started strictly before this instant.
    pub to_ns: Option<i64>,
    pub agent: Option<String>,
    pub user_hash: Option<String>,
}

/// One session of the list, over its runs that match the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub session_id: String,
    /// The session's user (the greatest hash, should a session have had several).
    pub user_hash: String,
    pub runs: u64,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    /// Runs by outcome, in [`Outcome::ALL`]'s order.
    pub outcomes: [u64; 5],
    /// The runs' trace ids (for their calls' rollups).
    pub trace_ids: Vec<String>,
}

/// A page of sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionList {
    pub sessions: Vec<SessionSummary>,
    pub next_cursor: Option<String>,
}

/// A row of [`sessions_sql`]'s answer, as ClickHouse sends it. No alias is named as a column of
/// `runs`: ClickHouse would read the alias inside the aggregates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, clickhouse::Row)]
pub(crate) struct SessionRecord {
    pub session_id: String,
    pub session_user: String,
    pub session_runs: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub success_runs: i64,
    pub failure_runs: i64,
    pub partial_runs: i64,
    pub timeout_runs: i64,
    pub cancelled_runs: i64,
    pub traces: Vec<String>,
}

/// The answer's outcome columns, in [`Outcome::ALL`]'s order.
pub(crate) const OUTCOME_COLUMNS: [&str; 5] = [
    "success_runs",
    "failure_runs",
    "partial_runs",
    "timeout_runs",
    "cancelled_runs",
];

impl From<SessionRecord> for SessionSummary {
    fn from(r: SessionRecord) -> Self {
        let count = |n: i64| n.max(0) as u64;
        SessionSummary {
            session_id: r.session_id,
            user_hash: r.session_user,
            runs: count(r.session_runs),
            first_seen_ns: r.first_seen,
            last_seen_ns: r.last_seen,
            outcomes: [
                r.success_runs,
                r.failure_runs,
                r.partial_runs,
                r.timeout_runs,
                r.cancelled_runs,
            ]
            .map(count),
            trace_ids: r.traces,
        }
    }
}

/// The page after `cursor`: one more session than `limit`, to know whether more remain.
pub(crate) fn sessions_sql(
    dialect: Dialect,
    seals: &Seals,
    project_id: &str,
    filter: &SessionFilter,
    limit: usize,
    cursor: Option<&Cursor>,
) -> Sql {
    let placeholders = match dialect {
        Dialect::ClickHouse => Placeholders::Question,
        Dialect::DataFusion => Placeholders::Numbered,
    };
    let mut sql = Sql::new(
        placeholders,
        "SELECT session_id, max(user_hash) AS session_user, ",
    );
    integer(&mut sql, dialect, |sql| sql.push("count(*)"));
    sql.push(" AS session_runs, min(start_time_ns) AS first_seen, max(start_time_ns) AS last_seen");
    // In OUTCOME_COLUMNS' order.
    let outcomes: [fn(&mut Sql, Dialect); 5] = [
        |sql, d| count_if(sql, d, "outcome = 'success'"),
        |sql, d| count_if(sql, d, "outcome = 'failure'"),
        |sql, d| count_if(sql, d, "outcome = 'partial'"),
        |sql, d| count_if(sql, d, "outcome = 'timeout'"),
        |sql, d| count_if(sql, d, "outcome = 'cancelled'"),
    ];
    debug_assert_eq!(Outcome::ALL.len(), outcomes.len());
    for (count, column) in outcomes.iter().zip(OUTCOME_COLUMNS) {
        sql.push(", ");
        count(&mut sql, dialect);
        sql.push(" AS ");
        sql.push(column);
    }
    sql.push(match dialect {
        Dialect::ClickHouse => ", groupArray(trace_id) AS traces FROM ",
        Dialect::DataFusion => ", array_agg(trace_id) AS traces FROM ",
    });
    let columns = [
        "session_id",
        "user_hash",
        "start_time_ns",
        "outcome",
        "agent_name",
    ];
    let rows_of = |sql: &mut Sql, source: Source| {
        source.rows(sql, |sql| {
            sql.push("project_id = ");
            sql.text(project_id);
        });
    };
    newest_versions(
        &mut sql,
        dialect,
        seals.scope(None),
        Table::Runs,
        &columns,
        rows_of,
        None,
    );
    sql.push(" AS r WHERE session_id != ''");
    if let Some(from) = filter.from_ns {
        sql.push(" AND start_time_ns >= ");
        sql.int(from);
    }
    if let Some(to) = filter.to_ns {
        sql.push(" AND start_time_ns < ");
        sql.int(to);
    }
    if let Some(agent) = &filter.agent {
        sql.push(" AND agent_name = ");
        sql.text(agent);
    }
    if let Some(user) = &filter.user_hash {
        sql.push(" AND user_hash = ");
        sql.text(user);
    }
    sql.push(" GROUP BY session_id");
    if let Some(cursor) = cursor {
        sql.push(" HAVING max(start_time_ns) < ");
        sql.int(cursor.start_time_ns);
        sql.push(" OR (max(start_time_ns) = ");
        sql.int(cursor.start_time_ns);
        sql.push(" AND session_id < ");
        sql.text(&cursor.trace_id);
        sql.push(")");
    }
    sql.push(" ORDER BY last_seen DESC, session_id DESC LIMIT ");
    sql.int(limit as i64 + 1);
    sql
}

/// The page of `limit` sessions from `rows` (one more than `limit` means more remain).
pub(crate) fn page(mut sessions: Vec<SessionSummary>, limit: usize) -> SessionList {
    let next_cursor = if sessions.len() > limit {
        sessions.truncate(limit);
        sessions
            .last()
            .map(|s| Cursor::at(s.last_seen_ns, &s.session_id).encode())
    } else {
        None
    };
    SessionList {
        sessions,
        next_cursor,
    }
}

/// The page size and the position after which it starts, checked.
pub(crate) fn position(
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<(usize, Option<Cursor>), QueryError> {
    Ok((page_size(limit)?, cursor.map(Cursor::decode).transpose()?))
}
