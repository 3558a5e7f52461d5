//! API keys over HTTP (role `admin`, the caller's project only): `POST /api/v1/keys` (the secret
//! is in this answer and nowhere else), `GET /api/v1/keys`, `DELETE /api/v1/keys/{id}`. The key
//! registry is the one `vigil keys` uses; every change is in the audit log.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_access::{
    audit::{KEY_CREATE, KEY_REVOKE},
    keys::{KeySpec, RateLimit, Role},
};

use crate::{AppState, audit_log::record, auth::Caller, body::JsonBody, error::ApiError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    roles: Vec<String>,
    #[serde(default)]
    description: String,
    /// `None`: the server's default (`[rate_limits]`).
    rate_limit: Option<RateLimit>,
}

/// `POST /api/v1/keys`: 201 with the key, its `secret` and `token` (shown once).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = caller.require(Role::Admin)?;
    let spec = KeySpec {
        project_id: principal.project_id.clone(),
        roles: Role::parse_list(&body.roles)?,
        description: body.description,
        rate_limit: body.rate_limit,
    };
    let keys = state.keys.clone();
    let key = tokio::task::spawn_blocking(move || keys.create_key(spec))
        .await
        .map_err(|e| ApiError::internal(format!("key creation did not finish: {e}")))??;
    let view = key.record.public_view();
    record(&state, principal, KEY_CREATE, view.clone(), 1).await?;
    let mut answer = view;
    answer["secret"] = json!(key.secret);
    answer["token"] = json!(key.token);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `GET /api/v1/keys`: the project's keys, revoked ones included; never a secret or its hash.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Admin)?;
    let keys = state.keys.clone();
    let all = tokio::task::spawn_blocking(move || keys.list())
        .await
        .map_err(|e| ApiError::internal(format!("key listing did not finish: {e}")))??;
    let views: Vec<Value> = all
        .iter()
        .filter(|k| k.project_id == principal.project_id)
        .map(|k| k.public_view())
        .collect();
    Ok(Json(json!({"keys": views})))
}

/// `DELETE /api/v1/keys/{id}`: revoked at once; 404 for a key of another project.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Admin)?;
    let keys = state.keys.clone();
    let project = principal.project_id.clone();
    let revoked = tokio::task::spawn_blocking(move || keys.revoke_in_project(&project, &id))
        .await
        .map_err(|e| ApiError::internal(format!("key revocation did not finish: {e}")))??;
    let view = revoked.public_view();
    record(&state, principal, KEY_REVOKE, view.clone(), 1).await?;
    Ok(Json(view))
}
