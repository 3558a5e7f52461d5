//! The audit log over HTTP: [`record`], which handlers call after an audited action, and
//! `GET /api/v1/audit/log` (role `audit`), the caller's project's entries.
//!
//! What is recorded: actions that took effect (a change made, a compliance answer given), never
//! refusals. A change is recorded after it is made; if the record cannot be written the client
//! gets a 500 and the server log says the change is unaudited. An answer (compliance queries,
//! reading this log) is recorded before it is sent: no record, no answer.

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_access::{
    audit::{ALL_PROJECTS, AUDIT_LOG_READ, AuditEntry, AuditError, AuditRecord},
    keys::{Principal, Role},
};
use vigil_schemas::time::parse_rfc3339;

use crate::{AppState, auth::Caller, error::ApiError};

/// Entries per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 1000;

/// Appends `action` by `caller` to the audit log, off the async threads (it fsyncs).
pub(crate) async fn record(
    state: &AppState,
    caller: &Principal,
    action: &str,
    parameters: Value,
    result_count: u64,
) -> Result<AuditEntry, ApiError> {
    let audit = state.audit.clone();
    let record = AuditRecord {
        project_id: caller.project_id.clone(),
        key_id: caller.key_id.clone(),
        action: action.to_string(),
        parameters,
        result_count,
    };
    tokio::task::spawn_blocking(move || audit.append(record))
        .await
        .map_err(|e| ApiError::internal(format!("audit append did not finish: {e}")))?
        .map_err(|e| {
            tracing::error!(action, key_id = %caller.key_id, error = %e, "audit record not written");
            audit_error(e)
        })
}

fn audit_error(e: AuditError) -> ApiError {
    match e {
        AuditError::Invalid { field, message } => ApiError::bad_request(field, message),
        other => ApiError::internal(format!("audit log: {other}")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn time_param(field: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            parse_rfc3339(v).ok_or_else(|| {
                ApiError::bad_request(field, format!("{v:?} is not an RFC 3339 time"))
            })
        })
        .transpose()
}

/// `GET /api/v1/audit/log?from&to&limit&cursor`: the project's entries in log order, a page at a
/// time; `next_cursor` while more remain. Reading is itself recorded (`audit.log_read`).
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Audit)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    let from = time_param("from", &params.from)?;
    let to = time_param("to", &params.to)?;
    if let (Some(from), Some(to)) = (from, to)
        && to <= from
    {
        return Err(ApiError::bad_request("to", "must be after from"));
    }
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            format!("{limit} is outside 1..={MAX_LIMIT}"),
        ));
    }
    let after = params
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<u64>()
                .map_err(|_| ApiError::bad_request("cursor", "not a cursor this endpoint returned"))
        })
        .transpose()?;

    let audit = state.audit.clone();
    let project = principal.project_id.clone();
    let mut entries = tokio::task::spawn_blocking(move || {
        audit.read_matching(from, to, after, limit + 1, |e| {
            e.project_id == project || e.project_id == ALL_PROJECTS
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("audit read did not finish: {e}")))?
    .map_err(audit_error)?;
    let next_cursor = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    let parameters = json!({
        "from": params.from,
        "to": params.to,
        "limit": limit,
        "cursor": params.cursor,
    });
    record(
        &state,
        principal,
        AUDIT_LOG_READ,
        parameters,
        entries.len() as u64,
    )
    .await?;
    Ok(Json(
        json!({"entries": entries, "next_cursor": next_cursor}),
    ))
}
