//! [`ClickHouseStore`]: the [`TraceStore`] over the ClickHouse tables (design in
//! `schemas/CLICKHOUSE.md`).
//!
//! * SQL text is made only of the constant fragments below; every value from a request travels
//!   as a bound parameter (the client escapes it), never as text spliced into a statement.
//! * Newest version per key without `FINAL`: small answers (one trace, one session) fetch every
//!   version of their keys through the primary key and pick the newest in memory, as the
//!   embedded store does ([`crate::versions`]). The run list ranks in ClickHouse: the candidate
//!   traces are those with *any* version matching the filter; for each, its newest version across
//!   all days is taken (`ORDER BY ingested_at_ns DESC … LIMIT 1 BY trace_id`), and the filter is
//!   applied again to that version. So an older version never matches in place of a newer one,
//!   and a newer version in another day's partition is always seen.
//! * The same queries run on one server and over a cluster's `Distributed` tables: a trace's
//!   rows share a shard, and sub-queries read the local shard (`distributed_product_mode`).

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use async_trait::async_trait;
use clickhouse::{Client, RowOwned, RowRead};
use vigil_schemas::{
    RunRow, ScoreRow, SpanRow,
    clickhouse::{
        ClickHouseConfig, is_not_migrated, is_transient,
        rows::{RunRecord, ScoreRecord, SpanRecord},
        schema::{SEAL_BLOCK, SEALS_TABLE},
    },
    layout::Table,
    time::day_of,
};

use crate::{
    audit::{
        AffectedPlan, AffectedRun, AffectedSummary, DayCount, DayRuns, DigestRow, SessionItem,
        SessionPage, SessionPageRequest, compile::AuditSql, summary_of,
    },
    error::QueryError,
    metrics::{
        MetricAnswer, MetricPlan, Subject,
        answer::assemble,
        compile::{Dialect, Statement, compile, days_read},
        rows::{AggregateRecord, Aggregates, StatementLog, from_records},
    },
    newest::{NO_SEALS, SealedDay, Seals, newest_per_key},
    rollup::{RollupRecord, RunRollup, rollup_sql},
    run_list::{self, Candidate, ListQuery, RunVersions},
    sessions::{self, SessionFilter, SessionList, SessionRecord, SessionSummary, sessions_sql},
    sql::{Placeholders, Sql, Value},
    store::{RunCondition, RunDetail, RunFilter, RunPage, RunWithScores, TraceStore},
    versions::{newest, run_detail, runs_with_scores},
};

/// The `clickhouse` crate binds `?` placeholders.
const Q: Placeholders = Placeholders::Question;
/// Traces looked up by id in one statement.
const TRACES_PER_LOOK_UP: usize = 1000;

/// The read side of the ClickHouse store.
pub struct ClickHouseStore {
    client: Client,
    /// A query not answered within this fails as unavailable (a stalled server must not hang
    /// the API).
    timeout: Duration,
    /// Whether days may be sealed: on one server (a cluster's shards are not sealed yet).
    sealing: bool,
}

/// Settings of the aggregate statements (metrics, investigations, the session list).
/// ClickHouse 18.16 runs a sub-query of `IN` once more to look the set up in the primary key,
/// and again for each nested level; these sets hold random trace ids, which the key cannot
/// narrow anyway. Measured on 1,000,000 runs / 10,000,000 spans: one investigation statement
/// took 12 s with the look-up, 0.8 s without; the tool error rate by tool over a sealed day and
/// a fresh remainder 3.6 s with it, 1.3 s without.
const AGGREGATE_SETTINGS: &[(&str, &str)] = &[("use_index_for_in_with_subqueries", "0")];

/// `health()` answers within this, whatever the query timeout: `/readyz` and `/metrics` call it.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

impl ClickHouseStore {
    /// A store reading the configured database (created by the migrations).
    pub fn new(config: &ClickHouseConfig) -> ClickHouseStore {
        ClickHouseStore {
            client: config.client(),
            timeout: config.timeout(),
            sealing: config.cluster.is_none(),
        }
    }

    /// The aggregates of each statement of a metric plan.
    async fn metric_rows(
        &self,
        project_id: &str,
        plan: &MetricPlan,
    ) -> Result<Vec<(Subject, Vec<Aggregates>)>, QueryError> {
        let mut answers = Vec::new();
        // Each statement reads its days' seals ([`Seals::scope`]).
        let seals = self.seals(Some(days_read(plan))).await?;
        for Statement { subject, sql } in compile(plan, project_id, Dialect::ClickHouse, &seals) {
            let log = StatementLog::start(&sql);
            let rows = self
                .fetch_with::<AggregateRecord>(sql, AGGREGATE_SETTINGS)
                .await?;
            let rows = from_records(subject, rows)?;
            log.answered(subject, &rows);
            answers.push((subject, rows));
        }
        Ok(answers)
    }

    /// The client, for engines that aggregate over the store.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn fetch<T: RowOwned + RowRead>(&self, sql: Sql) -> Result<Vec<T>, QueryError> {
        self.fetch_with(sql, &[]).await
    }

    /// [`Self::fetch`] with per-query settings.
    async fn fetch_with<T: RowOwned + RowRead>(
        &self,
        sql: Sql,
        settings: &[(&str, &str)],
    ) -> Result<Vec<T>, QueryError> {
        let mut query = self.client.query(&sql.text);
        for (name, value) in settings {
            query = query.with_setting(*name, *value);
        }
        for value in sql.values {
            query = match value {
                Value::Text(text) => query.bind(text),
                Value::Int(n) => query.bind(n),
            };
        }
        within(self.timeout, query.fetch_all::<T>()).await
    }

    /// The sealed days between `first` and `last` (every day when `None`), as this query sees
    /// them: read once, before its statements ([`Seals`]). A server not yet migrated to sealed
    /// days (or to their block numbers) has none. Each day is marked clean when nothing is to be
    /// de-duplicated there: no part of the raw day reaches past the block number its seal
    /// recorded (no row was inserted since; `system.parts`, no row read) and no key crosses
    /// midnight.
    async fn seals(&self, days: Option<(i64, i64)>) -> Result<Seals, QueryError> {
        if !self.sealing {
            return Ok(NO_SEALS.clone());
        }
        let (first, last) = days.unwrap_or((i64::MIN, i64::MAX));
        let mut sql = Sql::new(
            Q,
            "SELECT table_name, day, max(generation), toInt64(toUInt32(argMax(watermark, generation))), argMax(crossday_rows, generation), argMax(",
        );
        sql.push(SEAL_BLOCK);
        sql.push(", generation), toInt64(toUInt32(now())) FROM ");
        sql.push(SEALS_TABLE);
        sql.push(" WHERE day >= ");
        sql.int(first);
        sql.push(" AND day <= ");
        sql.int(last);
        sql.push(" GROUP BY table_name, day");
        let (rows, parts) = tokio::try_join!(
            self.fetch::<(String, i64, u64, i64, u64, i64, i64)>(sql),
            self.raw_days()
        )
        .or_else(|e| match e {
            QueryError::Store(message) if is_not_migrated(&message) => Ok((Vec::new(), Vec::new())),
            e => Err(e),
        })?;
        let Some(read_at) = rows.first().map(|row| row.6) else {
            return Ok(NO_SEALS.clone());
        };
        let days: Vec<(Table, SealedDay)> = rows
            .into_iter()
            .filter_map(
                |(table, day, generation, watermark, crossday_rows, block, _)| {
                    let table = Table::named(&table)?;
                    let inserted_since = parts
                        .iter()
                        .any(|p| p.table == table && p.day == day && p.block > block);
                    let day = SealedDay {
                        day,
                        generation,
                        watermark,
                        clean: crossday_rows == 0 && block >= 0 && !inserted_since,
                    };
                    Some((table, day))
                },
            )
            .collect();
        let data_days = parts.iter().map(|p| (p.table, p.day)).collect();
        Ok(Seals::new(days, data_days, read_at))
    }

    /// The days each table has raw rows in (its partitions), with the highest block number of
    /// their parts (`system.parts`, no data read).
    async fn raw_days(&self) -> Result<Vec<RawDay>, QueryError> {
        let sql = Sql::new(
            Q,
            "SELECT table, partition, toInt64(max(max_block_number)) FROM system.parts \
             WHERE database = currentDatabase() AND table IN ('runs', 'spans', 'scores') AND active \
             GROUP BY table, partition",
        );
        let partitions: Vec<(String, String, i64)> = self.fetch(sql).await?;
        Ok(partitions
            .into_iter()
            .filter_map(|(table, partition, block)| {
                Some(RawDay {
                    table: Table::named(&table)?,
                    day: partition.trim_matches('\'').parse().ok()?,
                    block,
                })
            })
            .collect())
    }

    /// The seals an investigation reads: its days, widened by one on each side.
    async fn audit_seals(&self, plan: &AffectedPlan) -> Result<Seals, QueryError> {
        let days = plan
            .range
            .map(|(from, to)| (day_of(from) - 1, day_of(to - 1) + 1));
        self.seals(days).await
    }

    /// Every version of these traces' rows in `table`.
    async fn trace_rows<T: RowOwned + RowRead>(
        &self,
        table: &'static str,
        project_id: &str,
        trace_ids: &[String],
    ) -> Result<Vec<T>, QueryError> {
        if trace_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(Q, "SELECT ?fields FROM ");
        sql.push(table);
        sql.push(" WHERE project_id = ");
        sql.text(project_id);
        sql.push(" AND trace_id IN (");
        sql.texts(trace_ids);
        sql.push(")");
        self.fetch(sql).await
    }
}

#[async_trait]
impl TraceStore for ClickHouseStore {
    async fn get_run(
        &self,
        project_id: &str,
        trace_id: &str,
    ) -> Result<Option<RunDetail>, QueryError> {
        let trace = [trace_id.to_string()];
        let (runs, spans, scores) = tokio::try_join!(
            self.trace_rows::<RunRecord>("runs", project_id, &trace),
            self.trace_rows::<SpanRecord>("spans", project_id, &trace),
            self.trace_rows::<ScoreRecord>("scores", project_id, &trace),
        )?;
        Ok(run_detail(
            runs.into_iter().map(RunRow::from).collect(),
            spans.into_iter().map(SpanRow::from).collect(),
            scores.into_iter().map(ScoreRow::from).collect(),
        ))
    }

    async fn runs_with_scores(
        &self,
        project_id: &str,
        trace_ids: &[String],
    ) -> Result<HashMap<String, RunWithScores>, QueryError> {
        let (mut runs, mut scores) = (Vec::new(), Vec::new());
        for chunk in trace_ids.chunks(TRACES_PER_LOOK_UP) {
            let (some_runs, some_scores) = tokio::try_join!(
                self.trace_rows::<RunRecord>("runs", project_id, chunk),
                self.trace_rows::<ScoreRecord>("scores", project_id, chunk),
            )?;
            runs.extend(some_runs.into_iter().map(RunRow::from));
            scores.extend(some_scores.into_iter().map(ScoreRow::from));
        }
        Ok(runs_with_scores(runs, scores))
    }

    async fn list_runs(
        &self,
        project_id: &str,
        filter: &RunFilter,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<RunPage, QueryError> {
        run_list::list_runs(self, project_id, filter, limit, cursor).await
    }

    async fn list_sessions(
        &self,
        project_id: &str,
        filter: &SessionFilter,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<SessionList, QueryError> {
        let (limit, cursor) = sessions::position(limit, cursor)?;
        let seals = self.seals(None).await?;
        let sql = sessions_sql(
            Dialect::ClickHouse,
            &seals,
            project_id,
            filter,
            limit,
            cursor.as_ref(),
        );
        let records = self
            .fetch_with::<SessionRecord>(sql, AGGREGATE_SETTINGS)
            .await?;
        Ok(sessions::page(
            records.into_iter().map(SessionSummary::from).collect(),
            limit,
        ))
    }

    async fn run_rollups(
        &self,
        project_id: &str,
        trace_ids: &[String],
    ) -> Result<HashMap<String, RunRollup>, QueryError> {
        if trace_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = rollup_sql(Dialect::ClickHouse, project_id, trace_ids);
        let records = self.fetch::<RollupRecord>(sql).await?;
        Ok(records
            .into_iter()
            .map(<(String, RunRollup)>::from)
            .collect())
    }

    async fn session(&self, project_id: &str, session_id: &str) -> Result<Vec<RunRow>, QueryError> {
        let mut sql = Sql::new(Q, "SELECT ?fields FROM runs WHERE project_id = ");
        sql.text(project_id);
        sql.push(" AND trace_id IN (SELECT trace_id FROM runs WHERE project_id = ");
        sql.text(project_id);
        sql.push(" AND session_id = ");
        sql.text(session_id);
        sql.push(")");
        let versions = self.fetch::<RunRecord>(sql).await?;
        let mut runs: Vec<RunRow> = newest(versions.into_iter().map(RunRow::from).collect())
            .into_iter()
            .filter(|r| r.session_id == session_id)
            .collect();
        runs.sort_by(|a, b| (a.start_time_ns, &a.trace_id).cmp(&(b.start_time_ns, &b.trace_id)));
        Ok(runs)
    }

    async fn metrics(
        &self,
        project_id: &str,
        plan: &MetricPlan,
    ) -> Result<MetricAnswer, QueryError> {
        Ok(assemble(plan, self.metric_rows(project_id, plan).await?))
    }

    async fn cohort_runs(
        &self,
        project_id: &str,
        plan: &MetricPlan,
    ) -> Result<Vec<vigil_schemas::CohortRun>, QueryError> {
        Ok(crate::cohort::facts(
            self.metric_rows(project_id, plan).await?,
        ))
    }

    async fn affected_summary(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
    ) -> Result<AffectedSummary, QueryError> {
        let seals = self.audit_seals(plan).await?;
        let audit = AuditSql::new(plan, project_id, Dialect::ClickHouse, &seals);
        let (totals, days) = tokio::try_join!(
            self.fetch_with::<TotalsRecord>(audit.summary(), AGGREGATE_SETTINGS),
            self.fetch_with::<DayCount>(audit.by_day(), AGGREGATE_SETTINGS)
        )?;
        let totals = totals
            .first()
            .map(|t| {
                vec![
                    t.runs as i64,
                    t.sessions as i64,
                    t.users as i64,
                    t.first_seen,
                    t.last_seen,
                ]
            })
            .unwrap_or_default();
        Ok(summary_of(&totals, days))
    }

    async fn affected_days(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
    ) -> Result<Vec<DayRuns>, QueryError> {
        let seals = self.audit_seals(plan).await?;
        let audit = AuditSql::new(plan, project_id, Dialect::ClickHouse, &seals);
        self.fetch_with(audit.day_runs(), AGGREGATE_SETTINGS).await
    }

    async fn affected_sessions(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
        page: &SessionPageRequest,
    ) -> Result<SessionPage, QueryError> {
        let seals = self.audit_seals(plan).await?;
        let audit = AuditSql::new(plan, project_id, Dialect::ClickHouse, &seals);
        let items = self
            .fetch_with::<SessionItem>(audit.sessions(page), AGGREGATE_SETTINGS)
            .await?;
        Ok(SessionPage::from_items(items, page.limit))
    }

    async fn affected_runs(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
    ) -> Result<Vec<AffectedRun>, QueryError> {
        let seals = self.audit_seals(plan).await?;
        let audit = AuditSql::new(plan, project_id, Dialect::ClickHouse, &seals);
        self.fetch_with::<AffectedRun>(audit.runs(), AGGREGATE_SETTINGS)
            .await
    }

    async fn affected_digest(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
        cap: usize,
    ) -> Result<Option<Vec<DigestRow>>, QueryError> {
        let seals = self.audit_seals(plan).await?;
        let audit = AuditSql::new(plan, project_id, Dialect::ClickHouse, &seals);
        let rows: Vec<DigestRow> = self
            .fetch_with(audit.digest(cap), AGGREGATE_SETTINGS)
            .await?;
        Ok((rows.len() <= cap).then_some(rows))
    }

    async fn health(&self) -> Result<(), QueryError> {
        let timeout = self.timeout.min(HEALTH_TIMEOUT);
        within(timeout, self.client.query("SELECT 1").execute()).await
    }
}

/// A day of a raw table with rows: its partition, and the highest block number of its parts.
struct RawDay {
    table: Table,
    day: i64,
    block: i64,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct TotalsRecord {
    runs: u64,
    sessions: u64,
    users: u64,
    first_seen: i64,
    last_seen: i64,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct TraceRecord {
    trace_id: String,
}

#[async_trait]
impl RunVersions for ClickHouseStore {
    async fn candidates(
        &self,
        query: &ListQuery<'_>,
        conditions: &[RunCondition<'_>],
        wanted: usize,
        by_spans: bool,
    ) -> Result<Vec<Candidate>, QueryError> {
        let mut sql = Sql::new(Q, "SELECT trace_id, start_time_ns, [");
        sql.list(Table::Runs.version_order(), "");
        sql.push("] AS version FROM runs WHERE project_id = ");
        sql.text(query.project_id);
        for condition in conditions {
            sql.push(" AND ");
            run_condition(&mut sql, condition);
        }
        for (column, value) in query.span_filters.iter().filter(|_| by_spans) {
            sql.push(" AND trace_id IN (SELECT trace_id FROM spans WHERE project_id = ");
            sql.text(query.project_id);
            sql.push(" AND ");
            sql.push(column);
            sql.push(" = ");
            sql.text(value);
            sql.push(")");
        }
        sql.push(" ORDER BY start_time_ns DESC, trace_id DESC LIMIT ");
        sql.int(wanted as i64);
        self.fetch::<Candidate>(sql).await
    }

    async fn run_versions(
        &self,
        query: &ListQuery<'_>,
        traces: &[String],
    ) -> Result<Vec<RunRow>, QueryError> {
        Ok(self
            .trace_rows::<RunRecord>("runs", query.project_id, traces)
            .await?
            .into_iter()
            .map(RunRow::from)
            .collect())
    }

    async fn with_matching_spans(
        &self,
        query: &ListQuery<'_>,
        traces: &[String],
    ) -> Result<HashSet<String>, QueryError> {
        if traces.is_empty() {
            return Ok(HashSet::new());
        }
        let mut sql = Sql::new(Q, "SELECT trace_id FROM (SELECT trace_id");
        for (column, _) in &query.span_filters {
            sql.push(", ");
            sql.push(column);
        }
        sql.push(" FROM spans WHERE project_id = ");
        sql.text(query.project_id);
        sql.push(" AND trace_id IN (");
        sql.texts(traces);
        sql.push(")");
        newest_per_key(&mut sql, Table::Spans);
        sql.push(") GROUP BY trace_id HAVING 1 = 1");
        for (column, value) in &query.span_filters {
            sql.push(" AND countIf(");
            sql.push(column);
            sql.push(" = ");
            sql.text(value);
            sql.push(") > 0");
        }
        Ok(self
            .fetch::<TraceRecord>(sql)
            .await?
            .into_iter()
            .map(|r| r.trace_id)
            .collect())
    }
}

/// Runs a request, failing as unavailable when ClickHouse does not answer in time.
async fn within<T>(
    timeout: Duration,
    request: impl Future<Output = clickhouse::error::Result<T>>,
) -> Result<T, QueryError> {
    match tokio::time::timeout(timeout, request).await {
        Ok(result) => result.map_err(store_error),
        Err(_) => Err(QueryError::Unavailable(format!(
            "clickhouse did not answer within {timeout:?}"
        ))),
    }
}

/// A ClickHouse failure in the query service's terms: a server that is down, slow or
/// overloaded is `Unavailable` (503, retry); anything else is a bug or a schema mismatch.
fn store_error(error: clickhouse::error::Error) -> QueryError {
    if is_transient(&error) {
        QueryError::Unavailable(error.to_string())
    } else {
        QueryError::Store(error.to_string())
    }
}

/// One run-list condition in ClickHouse SQL.
fn run_condition(sql: &mut Sql, condition: &RunCondition) {
    match condition {
        RunCondition::Equals(column, value) => {
            sql.push(column.name());
            sql.push(" = ");
            sql.text(value);
        }
        RunCondition::StartsFrom(from) => {
            sql.push("start_time_ns >= ");
            sql.int(*from);
        }
        RunCondition::StartsBefore(to) => {
            sql.push("start_time_ns < ");
            sql.int(*to);
        }
        RunCondition::After { cursor, inclusive } => {
            sql.push("(start_time_ns < ");
            sql.int(cursor.start_time_ns);
            sql.push(" OR (start_time_ns = ");
            sql.int(cursor.start_time_ns);
            sql.push(if *inclusive {
                " AND trace_id <= "
            } else {
                " AND trace_id < "
            });
            sql.text(&cursor.trace_id);
            sql.push("))");
        }
    }
}
