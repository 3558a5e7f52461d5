//! Reading runs: one run with its spans and scores, a filtered list with a cursor, a session.

use axum::{
    Json,
    extract::{Path, State},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigil_access::keys::{Principal, Role};
use vigil_query::{RunFilter, RunRollup, sessions::SessionFilter};
use vigil_schemas::{
    Outcome, RunRow,
    time::{parse_rfc3339, rfc3339},
};

use crate::{
    AppState,
    auth::Caller,
    error::{ApiError, BadRequest, Internal, NotFound, Unavailable},
    params::QueryParams,
    views::{
        RunSummaryView, RunView, ScoreView, SpanView, may_see_classified, must_redact,
        run_summary_view, run_view, score_view, span_view,
    },
};

/// The run (null when only spans arrived so far), its spans in tree order (depth-first, siblings
/// by start time), its scores by time.
#[derive(Serialize, ToSchema)]
pub struct RunDetail {
    #[schema(required = true)]
    run: Option<RunView>,
    spans: Vec<SpanView>,
    scores: Vec<ScoreView>,
}

/// A page of runs.
#[derive(Serialize, ToSchema)]
pub struct RunPage {
    /// Newest first.
    runs: Vec<RunSummaryView>,
    /// Pass it as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A session's runs.
#[derive(Serialize, ToSchema)]
pub struct Session {
    session_id: String,
    runs: Vec<RunSummaryView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TraceIdParam {
    /// The run's trace id: 32 hexadecimal characters (any case).
    #[param(
        pattern = "^[0-9a-fA-F]{32}$",
        example = "0af7651916cd43dd8448eb211c80319c"
    )]
    trace_id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionIdParam {
    /// The session id, as the runs carry it.
    #[param(example = "session-42")]
    session_id: String,
}

/// One run with its spans and scores
#[utoipa::path(
    get,
    path = "/api/v1/runs/{trace_id}",
    tag = "runs",
    operation_id = "getRun",
    params(TraceIdParam),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = RunDetail, description = "The run, its spans and its scores."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(TraceIdParam { trace_id }): Path<TraceIdParam>,
) -> Result<Json<RunDetail>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let trace_id = trace_id.to_ascii_lowercase();
    if trace_id.len() != 32 || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "trace_id",
            "must be 32 hexadecimal characters",
        ));
    }
    let detail = state
        .store
        .get_run(&principal.project_id, &trace_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run with trace_id {trace_id}")))?;
    // Spans whose run is not known yet (its root span has not come) have no classification to
    // go by: their content is shown only to those who may see any classified content.
    let redact = match &detail.run {
        Some(run) => must_redact(&run.classification, principal),
        None => !may_see_classified(principal),
    };
    Ok(Json(RunDetail {
        run: detail.run.map(|r| run_view(r, principal)),
        spans: detail
            .spans
            .into_iter()
            .map(|s| span_view(s, redact))
            .collect(),
        scores: detail.scores.into_iter().map(score_view).collect(),
    }))
}

/// The filters of the run list and its page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Runs that started at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Runs that started strictly before this instant (RFC 3339); not before `from`.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Runs of this session.
    session_id: Option<String>,
    /// Runs of this user (the hash, as runs carry it).
    user_hash: Option<String>,
    /// Runs of this agent (its name).
    agent: Option<String>,
    /// Runs of this task type.
    task_type: Option<String>,
    /// Runs that ended this way (any case).
    #[param(value_type = Option<Outcome>)]
    outcome: Option<String>,
    /// Runs with at least one span of this model.
    model: Option<String>,
    /// Runs with at least one span of this prompt version.
    prompt_version: Option<String>,
    /// Runs of this environment.
    environment: Option<String>,
    /// Page size; larger values are served 1000.
    #[param(minimum = 1, default = 100)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page, to get the next one.
    cursor: Option<String>,
}

/// The filters of the session list and its page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SessionListParams {
    /// Sessions with a run that started at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Sessions with a run that started strictly before this instant (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// Sessions with a run of this agent.
    agent: Option<String>,
    /// Sessions of this user (the hash).
    user_hash: Option<String>,
    /// Page size; larger values are served 1000.
    #[param(minimum = 1, default = 100)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A session of the list: its runs (those matching the filters) counted and their calls summed.
#[derive(Serialize, ToSchema)]
pub struct SessionSummary {
    session_id: String,
    user_hash: String,
    runs: u64,
    /// Start of its first run.
    #[schema(format = DateTime)]
    first_seen: String,
    /// Start of its last run.
    #[schema(format = DateTime)]
    last_seen: String,
    /// Runs by outcome.
    outcomes: OutcomeCounts,
    /// Its runs' calls, summed (as each run's `calls`).
    calls: RunRollup,
}

/// Runs by outcome.
#[derive(Serialize, ToSchema)]
pub struct OutcomeCounts {
    success: u64,
    failure: u64,
    partial: u64,
    timeout: u64,
    cancelled: u64,
}

impl From<[u64; 5]> for OutcomeCounts {
    /// From counts in `Outcome::ALL`'s order.
    fn from([success, failure, partial, timeout, cancelled]: [u64; 5]) -> Self {
        OutcomeCounts {
            success,
            failure,
            partial,
            timeout,
            cancelled,
        }
    }
}

/// A page of sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionPage {
    /// By last run, newest first.
    sessions: Vec<SessionSummary>,
    /// Pass it as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// List sessions
///
/// Sessions (with a non-empty id) by their last run, newest first, a page at a time; each with
/// its runs matching the filters counted by outcome, first and last seen, and their calls summed.
/// An unknown query parameter is refused.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "runs",
    operation_id = "listSessions",
    params(SessionListParams),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = SessionPage, description = "A page of sessions."),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(p): QueryParams<SessionListParams>,
) -> Result<Json<SessionPage>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let filter = SessionFilter {
        from_ns: parse_time("from", p.from)?,
        to_ns: parse_time("to", p.to)?,
        agent: p.agent,
        user_hash: p.user_hash,
    };
    let list = state
        .store
        .list_sessions(&principal.project_id, &filter, p.limit, p.cursor.as_deref())
        .await?;
    let traces: Vec<String> = list
        .sessions
        .iter()
        .flat_map(|s| s.trace_ids.iter().cloned())
        .collect();
    let rollups = state
        .store
        .run_rollups(&principal.project_id, &traces)
        .await?;
    let sessions = list
        .sessions
        .into_iter()
        .map(|s| {
            let mut calls = RunRollup::default();
            for trace in &s.trace_ids {
                if let Some(rollup) = rollups.get(trace) {
                    calls.add(rollup);
                }
            }
            SessionSummary {
                session_id: s.session_id,
                user_hash: s.user_hash,
                runs: s.runs,
                first_seen: rfc3339(s.first_seen_ns),
                last_seen: rfc3339(s.last_seen_ns),
                outcomes: s.outcomes.into(),
                calls,
            }
        })
        .collect();
    Ok(Json(SessionPage {
        sessions,
        next_cursor: list.next_cursor,
    }))
}

/// The runs with their calls rolled up.
async fn summaries(
    state: &AppState,
    principal: &Principal,
    runs: Vec<RunRow>,
) -> Result<Vec<RunSummaryView>, ApiError> {
    let trace_ids: Vec<String> = runs.iter().map(|r| r.trace_id.clone()).collect();
    let rollups = state
        .store
        .run_rollups(&principal.project_id, &trace_ids)
        .await?;
    Ok(runs
        .into_iter()
        .map(|run| {
            let rollup = rollups.get(&run.trace_id);
            run_summary_view(run, rollup, principal)
        })
        .collect())
}

fn parse_time(field: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            parse_rfc3339(&v).ok_or_else(|| {
                ApiError::bad_request(field, format!("{v:?} is not an RFC 3339 time"))
            })
        })
        .transpose()
}

/// List runs
///
/// Runs matching every filter given (exact, case-sensitive text but for `outcome`), newest first
/// (by start time, then trace id), a page at a time, with `next_cursor` while more remain. An
/// unknown query parameter is refused.
#[utoipa::path(
    get,
    path = "/api/v1/runs",
    tag = "runs",
    operation_id = "listRuns",
    params(ListParams),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = RunPage, description = "A page of runs."),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<RunPage>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let filter = RunFilter {
        from_ns: parse_time("from", p.from)?,
        to_ns: parse_time("to", p.to)?,
        session_id: p.session_id,
        user_hash: p.user_hash,
        agent: p.agent,
        task_type: p.task_type,
        outcome: p.outcome,
        model: p.model,
        prompt_version: p.prompt_version,
        environment: p.environment,
    };
    let page = state
        .store
        .list_runs(&principal.project_id, &filter, p.limit, p.cursor.as_deref())
        .await?;
    Ok(Json(RunPage {
        runs: summaries(&state, principal, page.runs).await?,
        next_cursor: page.next_cursor,
    }))
}

/// A session's runs
///
/// The session's runs in time order (start time, then trace id).
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{session_id}",
    tag = "runs",
    operation_id = "getSession",
    params(SessionIdParam),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = Session, description = "The session's runs."),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn session(
    State(state): State<AppState>,
    caller: Caller,
    Path(SessionIdParam { session_id }): Path<SessionIdParam>,
) -> Result<Json<Session>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let runs = state
        .store
        .session(&principal.project_id, &session_id)
        .await?;
    if runs.is_empty() {
        return Err(ApiError::not_found(format!("no session {session_id:?}")));
    }
    Ok(Json(Session {
        session_id,
        runs: summaries(&state, principal, runs).await?,
    }))
}
