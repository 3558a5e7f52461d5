//! [`EmbeddedStore`]: the [`TraceStore`] over the embedded store's day-partitioned Parquet files
//! (layout in `vigil_schemas::layout`), queried with DataFusion.
//!
//! * Each table is a DataFusion listing table over `store/<table>/`, with `day` as a hive
//!   partition column, so a time range reads only its days. The runtime's list-files cache is
//!   off: every query lists the directories again and sees a file the moment it is renamed into
//!   place (half-written `*.parquet.tmp` files never match the extension).
//! * Queries are built with the DataFrame/Expr API only; no SQL text is ever assembled.
//! * Newest version per key, everywhere. Small answers (one trace, one session, one page of
//!   runs) fetch every stored version of their keys and pick the newest in memory
//!   ([`crate::versions`]).
//! * Aggregates (metrics, compliance, session and rollup lists) are SQL statements, each run in a
//!   session of its own that lists the store once: besides the raw tables it registers
//!   `<table>_sealed` (each partition's sealed file) and `<table>_fresh` (the other files, but
//!   superseded sealed ones), so that the statement de-duplicates only the fresh rows and the
//!   sealed rows of the same traces ([`crate::newest`]), and all its parts read the same files.
//! * The run list is [`crate::run_list`]'s: this store reads its candidates with a filtered
//!   scan and a top-k sort, and a run's versions by trace id.
//! * A run's newest version is looked for in the range's days widened by one day on each side:
//!   a newer version of a run whose start time moved to a day just outside the range (a
//!   synthesized run replaced by its real root across midnight) takes the run out of the page.

use std::{
    collections::{HashMap, HashSet},
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use datafusion::{
    arrow::{
        array::{Array, Int64Array, ListArray, RecordBatch, StringArray},
        compute::cast,
        datatypes::DataType,
        error::ArrowError,
    },
    catalog::TableProvider,
    common::{DFSchema, JoinType, ScalarValue},
    datasource::{
        ViewTable,
        listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl},
    },
    error::DataFusionError,
    execution::context::SQLOptions,
    execution::runtime_env::RuntimeEnvBuilder,
    functions_window::expr_fn::row_number,
    logical_expr::{EmptyRelation, ExprFunctionExt, LogicalPlan, utils::conjunction},
    prelude::{DataFrame, Expr, SessionConfig, SessionContext, col, lit},
};
use futures_util::{StreamExt, TryStreamExt, stream};
use vigil_schemas::{
    RunRow,
    arrow::{runs_from_batch, scores_from_batch, spans_from_batch},
    layout::{
        DATA_FILE_EXTENSION, EmbeddedLayout, PARTITION_COLUMN, PartitionFiles, Table, is_data_file,
        parse_partition_dir_name,
    },
    time::{day_of, day_string},
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
        compile::{Dialect, Statement, compile},
        percentile::exact_percentiles_udaf,
        rows::{Aggregates, StatementLog, aggregate_names, from_batches},
    },
    newest::{NO_SEALS, Part, Seals, Source},
    rollup::{ROLLUP_COLUMNS, RunRollup, rollup_sql},
    run_list::{self, Candidate, ListQuery, RunVersions},
    sessions::{
        self, OUTCOME_COLUMNS, SessionFilter, SessionList, SessionRecord, SessionSummary,
        sessions_sql,
    },
    sql::{Sql, Value},
    store::{RunCondition, RunDetail, RunFilter, RunPage, RunWithScores, TraceStore},
    unordered_parquet::UnorderedParquet,
    versions::{newest, run_detail, runs_with_scores},
};

const VERSION_RANK: &str = "__version_rank";
const MATCHED_TRACE: &str = "__matched_trace_id";

/// The most traces one look-up statement names. DataFusion narrows a read to the pages holding
/// its keys (by the page index of the sorted trace ids) only for an `IN` list of at most 20
/// values: `datafusion.execution.parquet.max_in_list_size` reaches the row-group statistics but
/// not the page index. A look-up of more traces is made as several statements, at once.
const LOOK_UP_TRACES: usize = 20;

/// Chunks of a look-up made at once, at most (a session of a thousand runs is 50 chunks).
const LOOK_UPS_AT_ONCE: usize = 4;

/// How many times a statement is run, each over a new listing, while files vanish under it.
/// Merged files are deleted a grace period after their merge, by the compaction passes that
/// follow, so a burst of merges (every partition of a day sealed at once) can overtake a
/// statement several times in a row; it is answered "unavailable, retry" only after this many.
const QUERY_ATTEMPTS: usize = 10;

/// `look_up` of every chunk of [`LOOK_UP_TRACES`] traces, [`LOOK_UPS_AT_ONCE`] at a time; their
/// answers together.
async fn by_chunks<'a, F, Fut, I, C>(trace_ids: &'a [String], look_up: F) -> Result<C, QueryError>
where
    F: FnMut(&'a [String]) -> Fut,
    Fut: Future<Output = Result<I, QueryError>>,
    I: IntoIterator,
    C: FromIterator<I::Item>,
{
    let look_ups: Vec<Fut> = trace_ids.chunks(LOOK_UP_TRACES).map(look_up).collect();
    let answers: Vec<I> = stream::iter(look_ups)
        .buffered(LOOK_UPS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(answers.into_iter().flatten().collect())
}

/// The embedded store's read side.
pub struct EmbeddedStore {
    layout: EmbeddedLayout,
    ctx: SessionContext,
}

impl EmbeddedStore {
    /// The aggregates of each statement of a metric plan.
    async fn metric_rows(
        &self,
        project_id: &str,
        plan: &MetricPlan,
    ) -> Result<Vec<(Subject, Vec<Aggregates>)>, QueryError> {
        let mut answers = Vec::new();
        for Statement { subject, sql } in compile(plan, project_id, Dialect::DataFusion, &NO_SEALS)
        {
            let names = aggregate_names(subject);
            let log = StatementLog::start(&sql);
            let rows = from_batches(&self.run_sql(sql).await?, &names)?;
            log.answered(subject, &rows);
            answers.push((subject, rows));
        }
        Ok(answers)
    }

    /// Opens the store under `data_dir`, creating its directories when missing (an empty store
    /// answers empty results).
    pub fn open(data_dir: impl AsRef<Path>) -> Result<EmbeddedStore, QueryError> {
        let layout = EmbeddedLayout::new(data_dir);
        layout.create_dirs().map_err(|source| QueryError::Io {
            path: layout.root().to_path_buf(),
            source,
        })?;
        // No list-files cache: files appear (writes) and disappear (compaction) all the time.
        let runtime = RuntimeEnvBuilder::new()
            .with_object_list_cache_limit(0)
            .build_arc()?;
        let mut config = SessionConfig::new();
        // Evaluate key predicates while decoding, so that a trace look-up decodes only its rows.
        config.options_mut().execution.parquet.pushdown_filters = true;
        config.options_mut().execution.parquet.reorder_filters = true;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.register_udaf(exact_percentiles_udaf());
        for table in Table::ALL {
            let dir = layout.table_dir(table);
            let path = dir.to_str().ok_or_else(|| {
                QueryError::Unavailable(format!("{} is not a UTF-8 path", dir.display()))
            })?;
            let url = ListingTableUrl::parse(path)?;
            let options = ListingOptions::new(Arc::new(UnorderedParquet::default()))
                .with_file_extension(DATA_FILE_EXTENSION)
                .with_table_partition_cols(vec![(PARTITION_COLUMN.to_string(), DataType::Utf8)]);
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(table.schema());
            ctx.register_table(table.name(), Arc::new(ListingTable::try_new(config)?))?;
        }
        Ok(EmbeddedStore { layout, ctx })
    }

    pub fn layout(&self) -> &EmbeddedLayout {
        &self.layout
    }

    /// The DataFusion session, with the tables `runs`, `spans` and `scores` registered (raw:
    /// every stored version; see [`Self::newest_rows`]).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The newest version of every row of a project in `table`, read from the partitions that
    /// may hold rows of [`from_ns`, `to_ns`) by their time column (filter on that column
    /// yourself: the partitions are whole days). For engines that aggregate over the store.
    pub async fn newest_rows(
        &self,
        table: Table,
        project_id: &str,
        from_ns: Option<i64>,
        to_ns: Option<i64>,
    ) -> Result<DataFrame, QueryError> {
        let days = Days::of(from_ns, to_ns);
        let df = self.scan(table, project_id, days, None).await?;
        Ok(newest_versions(df, table)?)
    }

    /// `table`'s rows of a project within `days`, with an extra predicate.
    async fn scan(
        &self,
        table: Table,
        project_id: &str,
        days: Days,
        predicate: Option<Expr>,
    ) -> Result<DataFrame, QueryError> {
        let mut filters = vec![col("project_id").eq(lit(project_id))];
        filters.extend(days.predicates());
        filters.extend(predicate);
        let df = self.ctx.table(table.name()).await?;
        match conjunction(filters) {
            Some(filter) => Ok(df.filter(filter)?),
            None => Ok(df),
        }
    }

    /// Every stored version of the rows matching a predicate, decoded.
    async fn fetch<T>(
        &self,
        table: Table,
        project_id: &str,
        days: Days,
        predicate: Expr,
        decode: fn(&RecordBatch) -> Result<Vec<T>, ArrowError>,
    ) -> Result<Vec<T>, QueryError> {
        let df = self.scan(table, project_id, days, Some(predicate)).await?;
        let mut rows = Vec::new();
        for batch in collect(df).await? {
            rows.extend(decode(&conform(table, &batch)?)?);
        }
        Ok(rows)
    }

    /// Every stored version of the given runs.
    async fn runs_by_trace(
        &self,
        project_id: &str,
        trace_ids: &[String],
        days: Days,
    ) -> Result<Vec<RunRow>, QueryError> {
        self.rows_by_trace(Table::Runs, project_id, trace_ids, days, runs_from_batch)
            .await
    }

    /// Every stored version of the rows of `table` of the given traces.
    async fn rows_by_trace<T>(
        &self,
        table: Table,
        project_id: &str,
        trace_ids: &[String],
        days: Days,
        decode: fn(&RecordBatch) -> Result<Vec<T>, ArrowError>,
    ) -> Result<Vec<T>, QueryError> {
        by_chunks(trace_ids, |chunk| {
            let list = chunk.iter().map(|t| lit(t.as_str())).collect();
            let predicate = col("trace_id").in_list(list, false);
            self.fetch(table, project_id, days, predicate, decode)
        })
        .await
    }
}

#[async_trait]
impl TraceStore for EmbeddedStore {
    async fn get_run(
        &self,
        project_id: &str,
        trace_id: &str,
    ) -> Result<Option<RunDetail>, QueryError> {
        let key = || col("trace_id").eq(lit(trace_id));
        let all = Days::default();
        let (runs, spans, scores) = tokio::try_join!(
            self.fetch(Table::Runs, project_id, all, key(), runs_from_batch),
            self.fetch(Table::Spans, project_id, all, key(), spans_from_batch),
            self.fetch(Table::Scores, project_id, all, key(), scores_from_batch),
        )?;
        Ok(run_detail(runs, spans, scores))
    }

    async fn runs_with_scores(
        &self,
        project_id: &str,
        trace_ids: &[String],
    ) -> Result<HashMap<String, RunWithScores>, QueryError> {
        let all = Days::default();
        let (runs, scores) = tokio::try_join!(
            self.runs_by_trace(project_id, trace_ids, all),
            self.rows_by_trace(Table::Scores, project_id, trace_ids, all, scores_from_batch),
        )?;
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
        let sql = sessions_sql(
            Dialect::DataFusion,
            &NO_SEALS,
            project_id,
            filter,
            limit,
            cursor.as_ref(),
        );
        let mut records = Vec::new();
        for batch in self.run_sql(sql).await? {
            let ids = strings(&batch, "session_id")?;
            let users = strings(&batch, "session_user")?;
            let runs = int64s_cast(&batch, "session_runs")?;
            let (first, last) = (
                int64s_cast(&batch, "first_seen")?,
                int64s_cast(&batch, "last_seen")?,
            );
            let outcomes = OUTCOME_COLUMNS
                .iter()
                .map(|c| int64s_cast(&batch, c))
                .collect::<Result<Vec<_>, _>>()?;
            let traces = string_lists(&batch, "traces")?;
            for (i, (session_id, traces)) in ids.into_iter().zip(traces).enumerate() {
                records.push(SessionRecord {
                    session_id,
                    session_user: users[i].clone(),
                    session_runs: runs[i],
                    first_seen: first[i],
                    last_seen: last[i],
                    success_runs: outcomes[0][i],
                    failure_runs: outcomes[1][i],
                    partial_runs: outcomes[2][i],
                    timeout_runs: outcomes[3][i],
                    cancelled_runs: outcomes[4][i],
                    traces,
                });
            }
        }
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
        let batches: Vec<RecordBatch> = by_chunks(trace_ids, |chunk| {
            self.run_sql_reading(
                rollup_sql(Dialect::DataFusion, project_id, chunk),
                Reading::LookUp,
            )
        })
        .await?;
        let mut rollups = HashMap::new();
        for batch in batches {
            let traces = strings(&batch, "trace_id")?;
            let columns = ROLLUP_COLUMNS
                .iter()
                .map(|c| int64s_cast(&batch, c))
                .collect::<Result<Vec<_>, _>>()?;
            for (i, trace_id) in traces.into_iter().enumerate() {
                let values = std::array::from_fn(|c| columns[c][i]);
                rollups.insert(trace_id, RunRollup::from_columns(values));
            }
        }
        Ok(rollups)
    }

    async fn session(&self, project_id: &str, session_id: &str) -> Result<Vec<RunRow>, QueryError> {
        // Every run that ever had this session in some version…
        let candidates = self
            .scan(
                Table::Runs,
                project_id,
                Days::default(),
                Some(col("session_id").eq(lit(session_id))),
            )
            .await?
            .select_columns(&["trace_id"])?
            .distinct()?;
        let mut traces = Vec::new();
        for batch in collect(candidates).await? {
            traces.extend(strings(&batch, "trace_id")?);
        }
        // …kept when its newest version still has it.
        let mut runs: Vec<RunRow> = newest(
            self.runs_by_trace(project_id, &traces, Days::default())
                .await?,
        )
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
        let (totals, days) = tokio::try_join!(
            self.audit(project_id, plan, |a| a.summary()),
            self.audit(project_id, plan, |a| a.by_day())
        )?;
        let (totals, days) = (integer_rows(&totals)?, integer_rows(&days)?);
        let totals = totals.first().cloned().unwrap_or_default();
        let by_day = days
            .iter()
            .map(|d| DayCount {
                day: d[0],
                runs: d[1] as u64,
                sessions: d[2] as u64,
                users: d[3] as u64,
            })
            .collect();
        Ok(summary_of(&totals, by_day))
    }

    async fn affected_days(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
    ) -> Result<Vec<DayRuns>, QueryError> {
        let days = self.audit(project_id, plan, |a| a.day_runs()).await?;
        Ok(integer_rows(&days)?
            .into_iter()
            .map(|row| DayRuns {
                day: row[0],
                runs: row[1].max(0) as u64,
            })
            .collect())
    }

    async fn affected_sessions(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
        page: &SessionPageRequest,
    ) -> Result<SessionPage, QueryError> {
        let mut items = Vec::new();
        for batch in self.audit(project_id, plan, |a| a.sessions(page)).await? {
            let sessions = strings(&batch, "session_id")?;
            let users = strings(&batch, "user_hash")?;
            let runs = int64s_cast(&batch, "runs")?;
            let first = int64s_cast(&batch, "first_seen")?;
            let last = int64s_cast(&batch, "last_seen")?;
            for i in 0..batch.num_rows() {
                items.push(SessionItem {
                    session_id: sessions[i].clone(),
                    user_hash: users[i].clone(),
                    runs: runs[i] as u64,
                    first_seen_ns: first[i],
                    last_seen_ns: last[i],
                });
            }
        }
        Ok(SessionPage::from_items(items, page.limit))
    }

    async fn affected_digest(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
        cap: usize,
    ) -> Result<Option<Vec<DigestRow>>, QueryError> {
        let mut rows = Vec::new();
        for batch in self.audit(project_id, plan, |a| a.digest(cap)).await? {
            let (sessions, users) = (
                strings(&batch, "session_id")?,
                strings(&batch, "user_hash")?,
            );
            let (days, runs) = (int64s_cast(&batch, "day")?, int64s_cast(&batch, "runs")?);
            let first = int64s_cast(&batch, "first_seen")?;
            let last = int64s_cast(&batch, "last_seen")?;
            for i in 0..batch.num_rows() {
                rows.push(DigestRow {
                    day: days[i],
                    session_id: sessions[i].clone(),
                    user_hash: users[i].clone(),
                    runs: runs[i] as u64,
                    first_seen: first[i],
                    last_seen: last[i],
                });
            }
        }
        Ok((rows.len() <= cap).then_some(rows))
    }

    async fn affected_runs(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
    ) -> Result<Vec<AffectedRun>, QueryError> {
        let mut runs = Vec::new();
        for batch in self.audit(project_id, plan, |a| a.runs()).await? {
            runs.extend(affected_runs_from(&batch)?);
        }
        Ok(runs)
    }

    async fn health(&self) -> Result<(), QueryError> {
        for table in Table::ALL {
            let dir = self.layout.table_dir(table);
            drop(
                tokio::fs::read_dir(&dir)
                    .await
                    .map_err(|source| QueryError::Io { path: dir, source })?,
            );
        }
        Ok(())
    }
}

impl EmbeddedStore {
    /// Runs a read-only statement written in the DataFusion dialect, its values bound, in a
    /// session of its own over the files listed now. Merged files are deleted after a grace
    /// period, so a file may vanish under a long statement: it is run again over a new listing
    /// when a file was not found, or when one of its listed files is gone once it finished (a
    /// table over named files finds nothing, silently, for a file deleted before it was
    /// planned; files are never written again under the same name, so a file still there at
    /// the end was there throughout).
    async fn run_sql(&self, sql: Sql) -> Result<Vec<RecordBatch>, QueryError> {
        self.run_sql_reading(sql, Reading::Scan).await
    }

    /// [`Self::run_sql`], reading the files as `reading` says.
    async fn run_sql_reading(
        &self,
        sql: Sql,
        reading: Reading,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        self.run_listed(|_| sql.clone(), reading).await
    }

    /// A compliance statement of `plan`, written for the sealed days of the listing it runs
    /// over: where every day it reads is sealed and clean, it reads the sealed runs in place.
    async fn audit(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
        statement: impl Fn(&AuditSql) -> Sql,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let compile =
            |seals: &Seals| statement(&AuditSql::new(plan, project_id, Dialect::DataFusion, seals));
        self.run_listed(compile, Reading::Scan).await
    }

    /// [`Self::run_sql_reading`] of the statement `compile` writes for the sealed days of each
    /// listing it is run over ([`Seals::listed`]).
    async fn run_listed(
        &self,
        compile: impl Fn(&Seals) -> Sql,
        reading: Reading,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let mut attempt = 1;
        loop {
            let (ctx, files, seals) = self.statement_context(reading).await?;
            let sql = compile(&seals);
            let params: Vec<ScalarValue> = sql
                .values
                .into_iter()
                .map(|value| match value {
                    Value::Text(text) => ScalarValue::Utf8(Some(text)),
                    Value::Int(n) => ScalarValue::Int64(Some(n)),
                })
                .collect();
            let df = ctx
                .sql_with_options(&sql.text, read_only)
                .await?
                .with_param_values(params)?;
            let last = attempt == QUERY_ATTEMPTS;
            match df.collect().await {
                Err(e) if !last && is_not_found(&e) => {
                    tracing::debug!(error = %e, "a store file vanished during a query; retrying");
                }
                Err(e) => return Err(vanished(e)),
                Ok(batches) => match files.iter().find(|path| !path.exists()) {
                    None => return Ok(batches),
                    Some(gone) if !last => {
                        tracing::debug!(file = %gone.display(), "a store file vanished during a query; retrying");
                    }
                    Some(gone) => {
                        return Err(QueryError::Unavailable(format!(
                            "the store changed under the query {QUERY_ATTEMPTS} times ({} vanished); try again",
                            gone.display()
                        )));
                    }
                },
            }
            attempt += 1;
        }
    }

    /// A session for one statement: the raw tables, and each table's sealed and fresh files as
    /// listed now; those files; and the sealed days they make.
    async fn statement_context(
        &self,
        reading: Reading,
    ) -> Result<(SessionContext, Vec<PathBuf>, Seals), QueryError> {
        let mut config = self.ctx.copied_config();
        config.options_mut().execution.parquet.pushdown_filters = reading == Reading::LookUp;
        if reading == Reading::Scan {
            // Twice as many partitions as cores and larger batches: the decoding of one
            // partition overlaps the hashing of another (cost by model over 10,000,000 sealed
            // spans: 1.55 s with one partition per core and 8,192-row batches, 1.03 s so).
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            config = config
                .with_target_partitions(2 * cores)
                .with_batch_size(32 * 1024);
        }
        let ctx = SessionContext::new_with_config_rt(config, self.ctx.runtime_env());
        ctx.register_udaf(exact_percentiles_udaf());
        let layout = self.layout.clone();
        let listed = tokio::task::spawn_blocking(move || {
            Table::ALL.map(|table| (table, TableFiles::list(&layout, table)))
        })
        .await
        .map_err(|e| QueryError::Unavailable(format!("listing the store failed: {e}")))?;
        let mut all = Vec::new();
        let (mut sealed_days, mut data_days) = (Vec::new(), Vec::new());
        for (table, files) in listed {
            let files = files?;
            sealed_days.extend(files.sealed_days);
            data_days.extend(files.data_days);
            ctx.register_table(table.name(), self.ctx.table_provider(table.name()).await?)?;
            for (part, paths) in [(Part::Sealed, files.sealed), (Part::Fresh, files.fresh)] {
                ctx.register_table(
                    Source {
                        table,
                        part,
                        seals: None,
                    }
                    .name(),
                    files_table(table, &paths)?,
                )?;
                all.extend(paths);
            }
        }
        Ok((ctx, all, Seals::listed(sealed_days, data_days)))
    }
}

/// The rows of an answer whose every column is an integer.
fn integer_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<i64>>, QueryError> {
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<Vec<i64>> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| int64s_cast(batch, f.name()))
            .collect::<Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i]).collect());
        }
    }
    Ok(rows)
}

/// How a statement reads the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Most of what it reads counts (aggregates): predicates are evaluated after decoding.
    /// Evaluating them while decoding made such scans 2-3x slower (tool error rate by tool over
    /// 10,000,000 sealed spans: 680 ms with, 237 ms without; BENCHMARKS.md).
    Scan,
    /// A few keys (one page's rollups): predicates are evaluated while decoding, so that only
    /// the matching rows' other columns are decoded.
    LookUp,
}

/// A table's files as one statement reads them.
struct TableFiles {
    /// Each partition's sealed file.
    sealed: Vec<PathBuf>,
    /// Every other data file but superseded sealed ones.
    fresh: Vec<PathBuf>,
    /// `(table, day, clean)` of each partition with a sealed file, clean when no other data
    /// file lies beside it (nothing fresh, no key across midnight), as [`Seals::listed`] takes.
    sealed_days: Vec<(Table, i64, bool)>,
    /// `(table, day)` of each partition with a data file.
    data_days: Vec<(Table, i64)>,
}

impl TableFiles {
    fn list(layout: &EmbeddedLayout, table: Table) -> Result<TableFiles, QueryError> {
        let mut files = TableFiles {
            sealed: Vec::new(),
            fresh: Vec::new(),
            sealed_days: Vec::new(),
            data_days: Vec::new(),
        };
        let table_dir = layout.table_dir(table);
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| QueryError::Io { path, source }
        };
        for partition in fs::read_dir(&table_dir).map_err(io_error(&table_dir))? {
            let partition = partition.map_err(io_error(&table_dir))?;
            let Some(day) = partition
                .file_name()
                .to_str()
                .and_then(parse_partition_dir_name)
            else {
                continue;
            };
            let names: Vec<String> = match fs::read_dir(partition.path()) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|name| is_data_file(name))
                    .collect(),
                // Dropped by retention since the table was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&partition.path())(e)),
            };
            let classified = PartitionFiles::classify(names, String::as_str);
            if classified.sealed.is_some() {
                files
                    .sealed_days
                    .push((table, day, classified.fresh.is_empty()));
            }
            if classified.sealed.is_some() || !classified.fresh.is_empty() {
                files.data_days.push((table, day));
            }
            let dir = partition.path();
            files
                .sealed
                .extend(classified.sealed.map(|name| dir.join(name)));
            files
                .fresh
                .extend(classified.fresh.iter().map(|name| dir.join(name)));
        }
        Ok(files)
    }
}

/// A table over exactly these files. None: an empty relation the planner sees as such, so that
/// it drops what only reads it (on a sealed store, the de-duplication of fresh rows and the
/// anti-join against their traces).
fn files_table(table: Table, paths: &[PathBuf]) -> Result<Arc<dyn TableProvider>, QueryError> {
    if paths.is_empty() {
        let empty = LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::new(DFSchema::try_from(table.schema())?),
        });
        return Ok(Arc::new(ViewTable::new(empty, None)));
    }
    let urls = paths
        .iter()
        .map(|path| {
            let text = path.to_str().ok_or_else(|| {
                QueryError::Unavailable(format!("{} is not a UTF-8 path", path.display()))
            })?;
            Ok(ListingTableUrl::parse(text)?)
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    let options = ListingOptions::new(Arc::new(UnorderedParquet::default()))
        .with_file_extension(DATA_FILE_EXTENSION);
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(table.schema());
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// The days a run list reads candidates from: its range, ending by its cursor's day.
fn list_days(query: &ListQuery<'_>) -> Days {
    let days = Days::of(query.filter.from_ns, query.filter.to_ns);
    match &query.request.cursor {
        Some(cursor) => days.ending_by(day_of(cursor.start_time_ns)),
        None => days,
    }
}

/// The days a run's newest version and its spans are looked for in: the list's days widened by
/// one day on each side (see the module docs).
fn nearby_days(query: &ListQuery<'_>) -> Days {
    let days = list_days(query);
    if days.is_bounded() {
        days.widened(1)
    } else {
        days
    }
}

#[async_trait]
impl RunVersions for EmbeddedStore {
    async fn candidates(
        &self,
        query: &ListQuery<'_>,
        conditions: &[RunCondition<'_>],
        wanted: usize,
        by_spans: bool,
    ) -> Result<Vec<Candidate>, QueryError> {
        let span_filters = if by_spans {
            &query.span_filters[..]
        } else {
            &[]
        };
        let mut columns = vec!["trace_id"];
        columns.extend(Table::Runs.version_order());
        if !columns.contains(&"start_time_ns") {
            columns.push("start_time_ns");
        }
        let condition = conjunction(conditions.iter().map(run_condition).collect::<Vec<_>>());
        let mut runs = self
            .scan(Table::Runs, query.project_id, list_days(query), condition)
            .await?;
        for (column, value) in span_filters {
            let matched = self
                .scan(
                    Table::Spans,
                    query.project_id,
                    nearby_days(query),
                    Some(col(*column).eq(lit(*value))),
                )
                .await?
                .select(vec![col("trace_id").alias(MATCHED_TRACE)])?
                .distinct()?;
            runs = runs.join(
                matched,
                JoinType::LeftSemi,
                &["trace_id"],
                &[MATCHED_TRACE],
                None,
            )?;
        }
        let page = runs
            .sort(vec![
                col("start_time_ns").sort(false, false),
                col("trace_id").sort(false, false),
            ])?
            .limit(0, Some(wanted))?
            .select_columns(&columns)?;
        let mut candidates = Vec::new();
        for batch in collect(page).await? {
            let traces = strings(&batch, "trace_id")?;
            let starts = int64s(&batch, "start_time_ns")?;
            let versions: Vec<Vec<i64>> = Table::Runs
                .version_order()
                .iter()
                .map(|column| int64s(&batch, column))
                .collect::<Result<_, _>>()?;
            for (i, (trace_id, start_time_ns)) in traces.into_iter().zip(starts).enumerate() {
                candidates.push(Candidate {
                    trace_id,
                    start_time_ns,
                    version: versions.iter().map(|v| v[i]).collect(),
                });
            }
        }
        Ok(candidates)
    }

    async fn run_versions(
        &self,
        query: &ListQuery<'_>,
        traces: &[String],
    ) -> Result<Vec<RunRow>, QueryError> {
        self.runs_by_trace(query.project_id, traces, nearby_days(query))
            .await
    }

    async fn with_matching_spans(
        &self,
        query: &ListQuery<'_>,
        traces: &[String],
    ) -> Result<HashSet<String>, QueryError> {
        by_chunks(traces, |chunk| self.with_matching_spans_of(query, chunk)).await
    }
}

impl EmbeddedStore {
    /// [`RunVersions::with_matching_spans`] of a few traces, in one statement.
    async fn with_matching_spans_of(
        &self,
        query: &ListQuery<'_>,
        traces: &[String],
    ) -> Result<Vec<String>, QueryError> {
        let mut columns: Vec<&str> = Table::Spans.key_columns().to_vec();
        columns.extend(Table::Spans.version_order());
        columns.extend(query.span_filters.iter().map(|(column, _)| *column));
        let list = traces.iter().map(|t| lit(t.as_str())).collect();
        let spans = self
            .scan(
                Table::Spans,
                query.project_id,
                nearby_days(query),
                Some(col("trace_id").in_list(list, false)),
            )
            .await?
            .select_columns(&columns)?;
        let mut matched = newest_versions(spans, Table::Spans)?;
        for (column, value) in &query.span_filters {
            let having = matched
                .clone()
                .filter(col(*column).eq(lit(*value)))?
                .select(vec![col("trace_id").alias(MATCHED_TRACE)])?
                .distinct()?;
            matched = matched.join(
                having,
                JoinType::LeftSemi,
                &["trace_id"],
                &[MATCHED_TRACE],
                None,
            )?;
        }
        let mut found = Vec::new();
        for batch in collect(matched.select_columns(&["trace_id"])?).await? {
            found.extend(strings(&batch, "trace_id")?);
        }
        Ok(found)
    }
}

/// One run-list condition as a DataFusion expression.
fn run_condition(condition: &RunCondition) -> Expr {
    let start = || col("start_time_ns");
    match condition {
        RunCondition::Equals(column, value) => col(column.name()).eq(lit(*value)),
        RunCondition::StartsFrom(from) => start().gt_eq(lit(*from)),
        RunCondition::StartsBefore(to) => start().lt(lit(*to)),
        RunCondition::After { cursor, inclusive } => {
            let trace = lit(cursor.trace_id.as_str());
            let trace = if *inclusive {
                col("trace_id").lt_eq(trace)
            } else {
                col("trace_id").lt(trace)
            };
            start()
                .lt(lit(cursor.start_time_ns))
                .or(start().eq(lit(cursor.start_time_ns)).and(trace))
        }
    }
}

/// Ranks the versions of each key and keeps the newest (the first by [`Table::version_order`]).
fn newest_versions(df: DataFrame, table: Table) -> Result<DataFrame, DataFusionError> {
    let rank = row_number()
        .partition_by(table.key_columns().iter().map(|c| col(*c)).collect())
        .order_by(
            table
                .version_order()
                .iter()
                .map(|c| col(*c).sort(false, false))
                .collect(),
        )
        .build()?
        .alias(VERSION_RANK);
    df.window(vec![rank])?
        .filter(col(VERSION_RANK).eq(lit(1u64)))?
        .drop_columns(&[VERSION_RANK])
}

/// Runs a query over the raw tables, again while a file vanishes under it (a compaction
/// deleting merged files after their grace period): each run lists the files anew.
async fn collect(df: DataFrame) -> Result<Vec<RecordBatch>, QueryError> {
    for _ in 1..QUERY_ATTEMPTS {
        match df.clone().collect().await {
            Err(e) if is_not_found(&e) => {
                tracing::debug!(error = %e, "a store file vanished during a query; retrying");
            }
            result => return Ok(result?),
        }
    }
    df.collect().await.map_err(vanished)
}

/// A statement's failure in the query service's terms: a file that vanished under it on its
/// last attempt is a store too busy to answer now (503, retry), not a failed query.
fn vanished(error: DataFusionError) -> QueryError {
    if is_not_found(&error) {
        QueryError::Unavailable(format!(
            "store files vanished under the query {QUERY_ATTEMPTS} times; try again ({error})"
        ))
    } else {
        error.into()
    }
}

fn is_not_found(error: &DataFusionError) -> bool {
    use datafusion::object_store::Error as StoreError;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if matches!(
            e.downcast_ref::<StoreError>(),
            Some(StoreError::NotFound { .. })
        ) || e
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::NotFound)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// A batch from a query, with the table's exact column types (DataFusion may read text as
/// views), so the schema conversions can decode it.
fn conform(table: Table, batch: &RecordBatch) -> Result<RecordBatch, QueryError> {
    let schema = table.schema();
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                ArrowError::SchemaError(format!("column {} is missing", field.name()))
            })?;
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, ArrowError>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<String>, QueryError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is missing")))?;
    let column = cast(column, &DataType::Utf8)?;
    let array = column
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is not text")))?;
    Ok(array
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

/// An integer column of any integer type, nulls as 0.
fn int64s_cast(batch: &RecordBatch, name: &str) -> Result<Vec<i64>, QueryError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is missing")))?;
    let column = cast(column, &DataType::Int64)?;
    let array = column
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is not an integer")))?;
    Ok(array.iter().map(Option::unwrap_or_default).collect())
}

/// A column of string lists, each list decoded.
fn string_lists(batch: &RecordBatch, name: &str) -> Result<Vec<Vec<String>>, QueryError> {
    let lists = batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<ListArray>())
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is not a list")))?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let values = cast(&lists.value(i), &DataType::Utf8)?;
        out.push(
            values
                .as_any()
                .downcast_ref::<StringArray>()
                .map(|a| {
                    a.iter()
                        .map(|t| t.unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default(),
        );
    }
    Ok(out)
}

/// Rows of [`EXPORT_COLUMNS`].
fn affected_runs_from(batch: &RecordBatch) -> Result<Vec<AffectedRun>, QueryError> {
    let text = |name| strings(batch, name);
    let (trace, session, user) = (text("trace_id")?, text("session_id")?, text("user_hash")?);
    let (agent, agent_version, task) = (
        text("agent_name")?,
        text("agent_version")?,
        text("task_type")?,
    );
    let (environment, release, outcome) =
        (text("environment")?, text("release")?, text("outcome")?);
    let (retention, audit_ref) = (text("retention")?, text("audit_ref")?);
    let start = int64s_cast(batch, "start_time_ns")?;
    let end = int64s_cast(batch, "end_time_ns")?;
    let mut classification = string_lists(batch, "classification")?.into_iter();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let tags = classification.next().unwrap_or_default();
        rows.push(AffectedRun {
            trace_id: trace[i].clone(),
            session_id: session[i].clone(),
            user_hash: user[i].clone(),
            agent_name: agent[i].clone(),
            agent_version: agent_version[i].clone(),
            task_type: task[i].clone(),
            environment: environment[i].clone(),
            release: release[i].clone(),
            start_time_ns: start[i],
            end_time_ns: end[i],
            outcome: outcome[i].clone(),
            classification: tags,
            retention: retention[i].clone(),
            audit_ref: audit_ref[i].clone(),
        });
    }
    Ok(rows)
}

fn int64s(batch: &RecordBatch, name: &str) -> Result<Vec<i64>, QueryError> {
    let array = batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is missing or mistyped")))?;
    Ok(array.iter().map(Option::unwrap_or_default).collect())
}

/// A range of partition days, each end open when `None`.
#[derive(Debug, Clone, Copy, Default)]
struct Days {
    first: Option<i64>,
    last: Option<i64>,
}

impl Days {
    /// The days that may hold a time in [`from_ns`, `to_ns`).
    fn of(from_ns: Option<i64>, to_ns: Option<i64>) -> Days {
        Days {
            first: from_ns.map(day_of),
            last: to_ns.map(|to| day_of(to.saturating_sub(1))),
        }
    }

    fn ending_by(self, day: i64) -> Days {
        Days {
            last: Some(self.last.map_or(day, |last| last.min(day))),
            ..self
        }
    }

    fn widened(self, by: i64) -> Days {
        Days {
            first: self.first.map(|d| d - by),
            last: self.last.map(|d| d + by),
        }
    }

    fn is_bounded(&self) -> bool {
        self.first.is_some() || self.last.is_some()
    }

    /// Predicates on the partition column (`YYYY-MM-DD` text orders like the days).
    fn predicates(&self) -> Vec<Expr> {
        let day = || col(PARTITION_COLUMN);
        let mut predicates = Vec::new();
        if let Some(first) = self.first {
            predicates.push(day().gt_eq(lit(day_string(first))));
        }
        if let Some(last) = self.last {
            predicates.push(day().lt_eq(lit(day_string(last))));
        }
        predicates
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use datafusion::{object_store, parquet::errors::ParquetError};

    use super::*;

    /// A file deleted between a statement's listing and its read fails in the Parquet reader,
    /// wrapped twice: it is still told apart, so the statement is run again.
    #[test]
    fn a_vanished_file_is_told_apart_however_it_is_wrapped() {
        let not_found = || object_store::Error::NotFound {
            path: "store/spans/day=2026-11-21/part-1.parquet".into(),
            source: Box::new(io::Error::from(io::ErrorKind::NotFound)),
        };
        let in_parquet =
            DataFusionError::ParquetError(Box::new(ParquetError::External(Box::new(not_found()))));
        let in_context = DataFusionError::Context("reading".into(), Box::new(in_parquet));
        let from_store = DataFusionError::ObjectStore(Box::new(not_found()));
        let from_disk = DataFusionError::IoError(io::Error::from(io::ErrorKind::NotFound));
        for error in [in_context, from_store, from_disk] {
            assert!(is_not_found(&error), "{error}");
            assert_eq!(vanished(error).kind(), crate::ErrorKind::Unavailable);
        }
        let other = DataFusionError::Plan("no such column".into());
        assert!(!is_not_found(&other));
        assert_ne!(vanished(other).kind(), crate::ErrorKind::Unavailable);
    }
}
