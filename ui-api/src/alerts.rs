//! Alerting over HTTP (docs/api.md#alerting): rules (`/api/v1/alert-rules`), active alerts
//! (`/api/v1/alerts`) and silences (`/api/v1/silences`). Reading needs `read`; changing rules
//! and silences needs `admin`. Everything is scoped to the key's project. Every change made
//! here is recorded in the audit log (rule put / delete, silence create / expire).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde_json::{Map, Value, json};
use vigil_access::{
    audit::{ALERT_RULE_DELETE, ALERT_RULE_PUT, SILENCE_CREATE, SILENCE_EXPIRE},
    keys::Role,
};
use vigil_alerts::{RuleChangeError, rule::RuleSpec, silence::SilenceSpec};

use crate::{AppState, audit_log::record, auth::Caller, body::JsonBody, error::ApiError};

/// `GET /api/v1/alert-rules`
pub async fn list_rules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Read)?;
    Ok(Json(
        json!({"rules": state.alerts.rules(&principal.project_id)}),
    ))
}

/// `GET /api/v1/alert-rules/{name}`
pub async fn get_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Read)?;
    state
        .alerts
        .rule(&principal.project_id, &name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no alert rule named {name:?}")))
}

/// `PUT /api/v1/alert-rules/{name}`: 201 when created, 200 when replaced.
pub async fn put_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(mut spec): JsonBody<Map<String, Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = caller.require(Role::Admin)?;
    // The name is the path's; a body may repeat it, not contradict it.
    match spec.get("name") {
        None => {
            spec.insert("name".into(), json!(name));
        }
        Some(given) if given == &json!(name) => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "name",
                "differs from the name in the path",
            ));
        }
    }
    if spec.get("project").is_some() {
        return Err(ApiError::bad_request(
            "project",
            "a rule belongs to the key's project; leave project out",
        ));
    }
    let spec = Value::Object(spec);
    let rule: RuleSpec = serde_json::from_value(spec.clone())
        .map_err(|e| ApiError::bad_request("body", e.to_string()))?;
    let created = state
        .alerts
        .put_rule(&principal.project_id, rule)
        .map_err(rule_change_error)?;
    let parameters = json!({"name": name, "created": created, "rule": spec});
    record(&state, principal, ALERT_RULE_PUT, parameters, 1).await?;
    let view = state
        .alerts
        .rule(&principal.project_id, &name)
        .ok_or_else(|| ApiError::internal(format!("alert rule {name:?} vanished after its put")))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// `DELETE /api/v1/alert-rules/{name}`: its firing alerts resolve.
pub async fn delete_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Admin)?;
    match state.alerts.delete_rule(&principal.project_id, &name) {
        Ok(true) => {
            record(
                &state,
                principal,
                ALERT_RULE_DELETE,
                json!({"name": name}),
                1,
            )
            .await?;
            Ok(Json(json!({"deleted": name})))
        }
        Ok(false) => Err(ApiError::not_found(format!("no alert rule named {name:?}"))),
        Err(e) => Err(rule_change_error(e)),
    }
}

fn rule_change_error(e: RuleChangeError) -> ApiError {
    match e {
        RuleChangeError::Invalid(e) => ApiError::bad_request(e.field, e.message),
        RuleChangeError::FromFile(_) => ApiError::conflict(e.to_string()),
        RuleChangeError::Io(e) => ApiError::internal(format!("saving the rules failed: {e}")),
    }
}

/// `GET /api/v1/alerts`: pending and firing alerts.
pub async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Read)?;
    Ok(Json(
        json!({"alerts": state.alerts.alerts(&principal.project_id)}),
    ))
}

/// `POST /api/v1/silences`
pub async fn create_silence(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<SilenceSpec>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = caller.require(Role::Admin)?;
    let silence = state
        .alerts
        .create_silence(&principal.project_id, &principal.key_id, spec)
        .map_err(|e| ApiError::bad_request(e.field, e.message))?;
    record(&state, principal, SILENCE_CREATE, silence.clone(), 1).await?;
    Ok((StatusCode::CREATED, Json(silence)))
}

/// `GET /api/v1/silences`
pub async fn list_silences(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Read)?;
    Ok(Json(
        json!({"silences": state.alerts.silences(&principal.project_id)}),
    ))
}

/// `GET /api/v1/silences/{id}`
pub async fn get_silence(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Read)?;
    state
        .alerts
        .silence(&principal.project_id, &id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no silence with id {id:?}")))
}

/// `DELETE /api/v1/silences/{id}`: expires it now; it stays listed as expired.
pub async fn expire_silence(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller.require(Role::Admin)?;
    match state.alerts.expire_silence(&principal.project_id, &id) {
        Ok(true) => {
            let silence = state
                .alerts
                .silence(&principal.project_id, &id)
                .unwrap_or_else(|| json!({"id": id}));
            record(&state, principal, SILENCE_EXPIRE, silence.clone(), 1).await?;
            Ok(Json(silence))
        }
        Ok(false) => Err(ApiError::not_found(format!("no silence with id {id:?}"))),
        Err(e) => Err(ApiError::internal(format!(
            "saving the silences failed: {e}"
        ))),
    }
}
