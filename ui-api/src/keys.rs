//! API keys over HTTP (role `admin`, the caller's project only): `POST /api/v1/keys` (the secret
//! is in this answer and nowhere else), `GET /api/v1/keys`, `DELETE /api/v1/keys/{id}`. The key
//! registry is the one `vigil keys` uses; every change is in the audit log.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use vigil_access::{
    audit::{KEY_CREATE, KEY_REVOKE},
    keys::{KeySpec, KeyView, RateLimit, Role},
};

use crate::{
    AppState,
    audit_log::record,
    auth::Caller,
    body::JsonBody,
    error::{ApiError, BadRequest, Internal, NotFound, Unavailable},
};

/// A key to create, in the caller's project.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiKeyInput)]
pub struct CreateKey {
    #[schema(value_type = Vec<Role>, min_items = 1)]
    roles: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 1024)]
    description: String,
    /// The key's own limit; absent: the server's default (`[rate_limits]`).
    rate_limit: Option<RateLimit>,
}

/// A new key: the secret and the token are in this answer only.
#[derive(Serialize, ToSchema)]
#[schema(as = NewApiKey)]
pub struct NewKey {
    #[serde(flatten)]
    key: KeyView,
    /// Shown once. Basic authentication is `base64(<id>:<secret>)`.
    secret: String,
    /// Shown once: `Authorization: Bearer <token>`.
    token: String,
}

/// The project's keys.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyId {
    /// The key's id, `vk_<16 hex>` (public; not the secret).
    #[param(example = "vk_0123456789abcdef")]
    id: String,
}

/// Create an API key in the caller's project
///
/// The answer holds the secret and the bearer token: they are shown here once and stored nowhere
/// (only a hash is). Recorded in the audit log (`key.create`).
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "access",
    operation_id = "createKey",
    request_body(content = CreateKey, example = json!({
        "roles": ["read"],
        "description": "grafana dashboard",
        "rate_limit": {"requests_per_second": 20, "burst": 40},
    })),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 201, body = NewKey, description = "Created; the secret is in this answer only."),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<NewKey>), ApiError> {
    let principal = caller.require(Role::Admin)?;
    let spec = KeySpec {
        project_id: principal.project_id.clone(),
        roles: Role::parse_list(&body.roles)?,
        description: body.description,
        rate_limit: body.rate_limit,
    };
    let key = state.keys.create_key(spec).await?;
    let view = key.record.public_view();
    record(&state, principal, KEY_CREATE, json!(view), 1).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewKey {
            key: view,
            secret: key.secret,
            token: key.token,
        }),
    ))
}

/// The project's API keys
///
/// Revoked keys included. Never a secret or its hash.
#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "access",
    operation_id = "listKeys",
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, body = KeyList, description = "The keys."),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<KeyList>, ApiError> {
    let principal = caller.require(Role::Admin)?;
    let all = state.keys.list().await?;
    let keys = all
        .iter()
        .filter(|k| k.project_id == principal.project_id)
        .map(|k| k.public_view())
        .collect();
    Ok(Json(KeyList { keys }))
}

/// Revoke an API key
///
/// The key is refused (401) from its next request on. Revoking a revoked key keeps its first
/// revocation time. A key of another project is not found (404). Recorded in the audit log
/// (`key.revoke`).
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "access",
    operation_id = "revokeKey",
    params(KeyId),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, body = KeyView, description = "The revoked key."),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(KeyId { id }): Path<KeyId>,
) -> Result<Json<KeyView>, ApiError> {
    let principal = caller.require(Role::Admin)?;
    let revoked = state
        .keys
        .revoke_in_project(&principal.project_id, &id)
        .await?;
    let view = revoked.public_view();
    record(&state, principal, KEY_REVOKE, json!(view), 1).await?;
    Ok(Json(view))
}
