//! Reading runs: one run with its spans and scores, a filtered list with a cursor, a session.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_access::keys::Role;
use vigil_query::RunFilter;
use vigil_schemas::time::parse_rfc3339;

use crate::{
    AppState,
    auth::Caller,
    error::ApiError,
    views::{may_see_classified, must_redact, run_view, score_view, span_view},
};

/// `GET /api/v1/runs/{trace_id}`: the run, its spans in tree order, its scores.
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "run": detail.run.map(|r| run_view(r, principal)),
        "spans": detail.spans.into_iter().map(|s| span_view(s, redact)).collect::<Vec<_>>(),
        "scores": detail.scores.into_iter().map(score_view).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    from: Option<String>,
    to: Option<String>,
    session_id: Option<String>,
    user_hash: Option<String>,
    agent: Option<String>,
    task_type: Option<String>,
    outcome: Option<String>,
    model: Option<String>,
    prompt_version: Option<String>,
    environment: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
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

/// `GET /api/v1/runs?…`: newest first, with `next_cursor` while more remain.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let Query(p) = params.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
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
    Ok(Json(json!({
        "runs": page.runs.into_iter().map(|r| run_view(r, principal)).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

/// `GET /api/v1/sessions/{session_id}`: the session's runs in time order.
pub async fn session(
    State(state): State<AppState>,
    caller: Caller,
    Path(session_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let runs = state
        .store
        .session(&principal.project_id, &session_id)
        .await?;
    if runs.is_empty() {
        return Err(ApiError::not_found(format!("no session {session_id:?}")));
    }
    Ok(Json(json!({
        "session_id": session_id,
        "runs": runs.into_iter().map(|r| run_view(r, principal)).collect::<Vec<_>>(),
    })))
}
