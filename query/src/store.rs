//! The read contract both stores implement, and the shapes it answers with.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vigil_schemas::{Outcome, RunRow, ScoreRow, SpanRow};

use crate::{
    audit::{
        AffectedPlan, AffectedRun, AffectedSummary, DayRuns, DigestRow, SessionPage,
        SessionPageRequest,
    },
    cursor::Cursor,
    error::QueryError,
    metrics::{MetricAnswer, MetricPlan},
    rollup::RunRollup,
    sessions::{SessionFilter, SessionList},
};

/// `list_runs` page size when the caller names none.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page `list_runs` returns; larger requests are served this many.
pub const MAX_LIMIT: usize = 1000;

/// One run with everything attached to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    /// `None` when spans arrived but the run itself (its root, or a synthesized run) did not.
    pub run: Option<RunRow>,
    /// Tree order: depth-first from the roots, siblings by start time.
    pub spans: Vec<SpanRow>,
    /// By time, then score id.
    pub scores: Vec<ScoreRow>,
}

/// A run and its scores ([`TraceStore::runs_with_scores`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunWithScores {
    pub run: RunRow,
    /// By time, then score id.
    pub scores: Vec<ScoreRow>,
}

/// One page of `list_runs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunPage {
    /// Newest first: by start time, then trace id, both descending.
    pub runs: Vec<RunRow>,
    /// Pass it back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Which runs `list_runs` returns. Every field that is set must match (exact, case-sensitive
/// text, except `outcome`, which is one of the outcome names in any case).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunFilter {
    /// Runs that started at or after this instant (ns since the epoch)…
    pub from_ns: Option<i64>,
    /// …and strictly before this one.
    pub to_ns: Option<i64>,
    pub session_id: Option<String>,
    pub user_hash: Option<String>,
    /// The agent's name.
    pub agent: Option<String>,
    pub task_type: Option<String>,
    pub outcome: Option<String>,
    /// Runs with at least one span of this model.
    pub model: Option<String>,
    /// Runs with at least one span of this prompt version.
    pub prompt_version: Option<String>,
    pub environment: Option<String>,
}

impl RunFilter {
    /// Checks the filter and returns its outcome, parsed.
    pub(crate) fn validate(&self) -> Result<Option<Outcome>, QueryError> {
        if let (Some(from), Some(to)) = (self.from_ns, self.to_ns)
            && to < from
        {
            return Err(QueryError::invalid("to", "must not be before from"));
        }
        self.outcome
            .as_deref()
            .map(|text| {
                Outcome::parse(text).ok_or_else(|| {
                    let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
                    QueryError::invalid(
                        "outcome",
                        format!("unknown outcome {text:?}; one of {}", names.join(", ")),
                    )
                })
            })
            .transpose()
    }

    /// Whether the time range can hold no run at all.
    pub(crate) fn is_empty_range(&self) -> bool {
        matches!((self.from_ns, self.to_ns), (Some(from), Some(to)) if to <= from)
    }
}

/// A `list_runs` request, checked: what every store works from.
pub(crate) struct ListRequest {
    pub limit: usize,
    pub outcome: Option<Outcome>,
    pub cursor: Option<Cursor>,
}

/// A text column of a run that the run list filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunColumn {
    SessionId,
    UserHash,
    AgentName,
    TaskType,
    Environment,
    Outcome,
}

impl RunColumn {
    pub(crate) fn name(self) -> &'static str {
        match self {
            RunColumn::SessionId => "session_id",
            RunColumn::UserHash => "user_hash",
            RunColumn::AgentName => "agent_name",
            RunColumn::TaskType => "task_type",
            RunColumn::Environment => "environment",
            RunColumn::Outcome => "outcome",
        }
    }

    fn of(self, run: &RunRow) -> &str {
        match self {
            RunColumn::SessionId => &run.session_id,
            RunColumn::UserHash => &run.user_hash,
            RunColumn::AgentName => &run.agent_name,
            RunColumn::TaskType => &run.task_type,
            RunColumn::Environment => &run.environment,
            RunColumn::Outcome => run.outcome.as_str(),
        }
    }
}

/// One run-level condition of a run-list request. The run list is filtered by these alone (and
/// by the span-level `model` and `prompt_version`): each store renders them in its own terms
/// (ClickHouse SQL, DataFusion expressions), and [`RunCondition::holds`] checks a run in Rust.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RunCondition<'a> {
    /// The column equals the text.
    Equals(RunColumn, &'a str),
    /// Started at or after this instant (ns).
    StartsFrom(i64),
    /// Started strictly before this instant (ns).
    StartsBefore(i64),
    /// Comes after the cursor's position, newest first: an earlier start, or the same start
    /// and a smaller trace id (or the same one, when `inclusive`).
    After { cursor: &'a Cursor, inclusive: bool },
}

impl RunCondition<'_> {
    pub(crate) fn holds(&self, run: &RunRow) -> bool {
        match self {
            RunCondition::Equals(column, value) => column.of(run) == *value,
            RunCondition::StartsFrom(from) => run.start_time_ns >= *from,
            RunCondition::StartsBefore(to) => run.start_time_ns < *to,
            RunCondition::After { cursor, inclusive } => cursor.admits(run, *inclusive),
        }
    }
}

impl ListRequest {
    /// The run-level conditions of `filter` with this request's outcome and cursor.
    pub(crate) fn conditions<'a>(&'a self, filter: &'a RunFilter) -> Vec<RunCondition<'a>> {
        let mut conditions = Vec::new();
        for (column, wanted) in [
            (RunColumn::SessionId, &filter.session_id),
            (RunColumn::UserHash, &filter.user_hash),
            (RunColumn::AgentName, &filter.agent),
            (RunColumn::TaskType, &filter.task_type),
            (RunColumn::Environment, &filter.environment),
        ] {
            if let Some(value) = wanted {
                conditions.push(RunCondition::Equals(column, value));
            }
        }
        if let Some(outcome) = self.outcome {
            conditions.push(RunCondition::Equals(RunColumn::Outcome, outcome.as_str()));
        }
        conditions.extend(filter.from_ns.map(RunCondition::StartsFrom));
        conditions.extend(filter.to_ns.map(RunCondition::StartsBefore));
        conditions.extend(self.cursor.as_ref().map(|cursor| RunCondition::After {
            cursor,
            inclusive: false,
        }));
        conditions
    }
}

impl RunFilter {
    /// Checks a `list_runs` request; `None` when no run can match (an empty time range).
    pub(crate) fn prepare(
        &self,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Option<ListRequest>, QueryError> {
        let limit = page_size(limit)?;
        let outcome = self.validate()?;
        let cursor = cursor.map(Cursor::decode).transpose()?;
        Ok((!self.is_empty_range()).then_some(ListRequest {
            limit,
            outcome,
            cursor,
        }))
    }
}

impl RunPage {
    pub(crate) fn empty() -> RunPage {
        RunPage {
            runs: Vec::new(),
            next_cursor: None,
        }
    }
}

/// The page size for a requested limit: the default when none, at most [`MAX_LIMIT`].
pub fn page_size(limit: Option<usize>) -> Result<usize, QueryError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(QueryError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
        Some(n) => Ok(n.min(MAX_LIMIT)),
    }
}

/// The read side of a store: trace and session look-ups and the run list. Every answer counts
/// each key once, in its newest version, however many times it was written.
#[async_trait]
pub trait TraceStore: Send + Sync {
    /// A run with its spans and scores; `None` when there is neither the run nor any span.
    async fn get_run(
        &self,
        project_id: &str,
        trace_id: &str,
    ) -> Result<Option<RunDetail>, QueryError>;

    /// Runs matching `filter`, newest first, `limit` at a time (see [`page_size`]), from the
    /// position `cursor` (a previous page's `next_cursor`) on.
    async fn list_runs(
        &self,
        project_id: &str,
        filter: &RunFilter,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<RunPage, QueryError>;

    /// A session's runs in time order (start time, then trace id).
    async fn session(&self, project_id: &str, session_id: &str) -> Result<Vec<RunRow>, QueryError>;

    /// Sessions by their last run (matching `filter`), newest first, `limit` at a time (see
    /// [`page_size`]), from `cursor` (a previous page's `next_cursor`) on.
    async fn list_sessions(
        &self,
        project_id: &str,
        filter: &SessionFilter,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<SessionList, QueryError>;

    /// The newest version of each of these runs, with its scores (newest versions, in time
    /// order) and without its spans, by trace id: an experiment's runs, read at once. A trace
    /// without a stored run is absent.
    async fn runs_with_scores(
        &self,
        project_id: &str,
        trace_ids: &[String],
    ) -> Result<HashMap<String, RunWithScores>, QueryError>;

    /// Each of these runs' calls rolled up ([`RunRollup`]: cost, tokens, calls, failed calls),
    /// for a page of runs; a trace without spans is absent.
    async fn run_rollups(
        &self,
        project_id: &str,
        trace_ids: &[String],
    ) -> Result<HashMap<String, RunRollup>, QueryError>;

    /// The metrics of a validated request (`crate::metrics`), for one project.
    async fn metrics(
        &self,
        project_id: &str,
        plan: &MetricPlan,
    ) -> Result<MetricAnswer, QueryError>;

    /// The facts of every run a per-run plan ([`crate::cohort::plan`]) counts, in no order.
    async fn cohort_runs(
        &self,
        project_id: &str,
        plan: &MetricPlan,
    ) -> Result<Vec<vigil_schemas::CohortRun>, QueryError>;

    /// The runs a compliance investigation finds, folded by day, session and user
    /// ([`crate::audit::investigate`]); `None` when there are more than `cap` such rows.
    async fn affected_digest(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
        cap: usize,
    ) -> Result<Option<Vec<DigestRow>>, QueryError>;

    /// Totals and per-day counts of the runs a compliance investigation finds ([`crate::audit`]).
    async fn affected_summary(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
    ) -> Result<AffectedSummary, QueryError>;

    /// How many of those runs started on each day, by day (an export's plan).
    async fn affected_days(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
    ) -> Result<Vec<DayRuns>, QueryError>;

    /// One page of the sessions (with their users) of those runs.
    async fn affected_sessions(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
        page: &SessionPageRequest,
    ) -> Result<SessionPage, QueryError>;

    /// Every one of those runs, by start time then trace id. Exports call it one chunk of the
    /// range at a time ([`crate::audit::export_chunks`]).
    async fn affected_runs(
        &self,
        project_id: &str,
        plan: &AffectedPlan,
    ) -> Result<Vec<AffectedRun>, QueryError>;

    /// A cheap check that the store can answer.
    async fn health(&self) -> Result<(), QueryError>;
}
