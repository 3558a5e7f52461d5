//! Alerting over HTTP (docs/api.md#alerting): rules (`/api/v1/alert-rules`), active alerts
//! (`/api/v1/alerts`) and silences (`/api/v1/silences`). Reading needs `read`; changing rules
//! and silences needs `admin`. Everything is scoped to the key's project. Every change made
//! here is recorded in the audit log (rule put / delete, silence create / expire).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use vigil_access::{
    audit::{ALERT_RULE_DELETE, ALERT_RULE_PUT, SILENCE_CREATE, SILENCE_EXPIRE},
    keys::Role,
};
use vigil_alerts::{
    RuleChangeError, SaveError, SilenceChangeError,
    rule::RuleSpec,
    silence::{SilenceSpec, SilenceView},
    views::{AlertView, RuleView},
};

use crate::{
    AppState,
    audit_log::record,
    auth::Caller,
    body::JsonBody,
    error::{ApiError, BadRequest, Conflict, NotFound, Unavailable},
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RuleName {
    /// The rule's name (its `alertname`): letters, digits, `_`, `-`, `.`, `:`.
    #[param(pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "run-error-spike")]
    name: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SilenceId {
    /// The silence's id.
    #[param(example = "8c1f0e2a9b7d4c6e8f0a1b2c3d4e5f60")]
    id: String,
}

/// The project's alert rules.
#[derive(Serialize, ToSchema)]
pub struct RuleList {
    rules: Vec<RuleView>,
}

/// A deleted rule's name.
#[derive(Serialize, ToSchema)]
pub struct RuleDeleted {
    deleted: String,
}

/// The project's pending and firing alerts.
#[derive(Serialize, ToSchema)]
pub struct AlertList {
    alerts: Vec<AlertView>,
}

/// The project's silences.
#[derive(Serialize, ToSchema)]
pub struct SilenceList {
    silences: Vec<SilenceView>,
}

/// The project's alert rules
///
/// Rules from the rules file (`source: file`, changed by editing the file; it is reloaded on
/// change and on SIGHUP) and from this API (`source: api`), each with the outcome of its last
/// evaluation and its alert counts.
#[utoipa::path(
    get,
    path = "/api/v1/alert-rules",
    tag = "alerting",
    operation_id = "listAlertRules",
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = RuleList, description = "The rules."),
    ),
)]
pub async fn list_rules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<RuleList>, ApiError> {
    let principal = caller.require(Role::Read)?;
    Ok(Json(RuleList {
        rules: state.alerts.rules(&principal.project_id),
    }))
}

/// One alert rule
#[utoipa::path(
    get,
    path = "/api/v1/alert-rules/{name}",
    tag = "alerting",
    operation_id = "getAlertRule",
    params(RuleName),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = RuleView, description = "The rule."),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(RuleName { name }): Path<RuleName>,
) -> Result<Json<RuleView>, ApiError> {
    let principal = caller.require(Role::Read)?;
    state
        .alerts
        .rule(&principal.project_id, &name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no alert rule named {name:?}")))
}

/// Create or replace an alert rule
///
/// Checked whole before it is stored; a refusal is a 400 naming the field (`metric`,
/// `group_by`, `window`, `op`, `threshold`, `annotations.summary`, …) and saying why. A rule of
/// the rules file cannot be replaced here (409). Replacing a rule keeps its alerts.
#[utoipa::path(
    put,
    path = "/api/v1/alert-rules/{name}",
    tag = "alerting",
    operation_id = "putAlertRule",
    params(RuleName),
    request_body(content = RuleSpec, example = json!({
        "metric": "completion_rate",
        "group_by": ["agent"],
        "filters": {"environment": ["production"]},
        "window": "10m",
        "op": "<",
        "threshold": 0.85,
        "for": "5m",
        "labels": {"severity": "page"},
        "annotations": {"summary": "{{ $labels.agent }} completes {{ $value }} of its runs"},
    })),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, body = RuleView, description = "Replaced."),
        (status = 201, body = RuleView, description = "Created."),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn put_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(RuleName { name }): Path<RuleName>,
    JsonBody(mut spec): JsonBody<Map<String, Value>>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
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
        .await
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

/// Delete an alert rule
///
/// Its firing alerts resolve (and are notified as resolved).
#[utoipa::path(
    delete,
    path = "/api/v1/alert-rules/{name}",
    tag = "alerting",
    operation_id = "deleteAlertRule",
    params(RuleName),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, body = RuleDeleted, description = "Deleted."),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn delete_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(RuleName { name }): Path<RuleName>,
) -> Result<Json<RuleDeleted>, ApiError> {
    let principal = caller.require(Role::Admin)?;
    match state.alerts.delete_rule(&principal.project_id, &name).await {
        Ok(true) => {
            record(
                &state,
                principal,
                ALERT_RULE_DELETE,
                json!({"name": name}),
                1,
            )
            .await?;
            Ok(Json(RuleDeleted { deleted: name }))
        }
        Ok(false) => Err(ApiError::not_found(format!("no alert rule named {name:?}"))),
        Err(e) => Err(rule_change_error(e)),
    }
}

fn rule_change_error(e: RuleChangeError) -> ApiError {
    match e {
        RuleChangeError::Invalid(e) => ApiError::bad_request(e.field, e.message),
        RuleChangeError::FromFile(_) => ApiError::conflict(e.to_string()),
        RuleChangeError::Save(e) => save_error(e),
    }
}

fn save_error(e: SaveError) -> ApiError {
    match e {
        SaveError::Shared(e) => ApiError::from(e),
        SaveError::Io(e) => ApiError::internal(format!("saving the change failed: {e}")),
    }
}

/// Pending and firing alerts
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerting",
    operation_id = "listAlerts",
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = AlertList, description = "The alerts."),
    ),
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AlertList>, ApiError> {
    let principal = caller.require(Role::Read)?;
    Ok(Json(AlertList {
        alerts: state.alerts.alerts(&principal.project_id),
    }))
}

/// Silence alerts
///
/// Alertmanager's semantics: while active (`starts_at` ≤ now < `ends_at`), every alert of the
/// project whose labels match all the matchers is not notified. A silence whose matchers all
/// match an empty label set is refused: it would mute everything.
#[utoipa::path(
    post,
    path = "/api/v1/silences",
    tag = "alerting",
    operation_id = "createSilence",
    request_body(content = SilenceSpec, example = json!({
        "matchers": [
            {"name": "alertname", "op": "=", "value": "run-error-spike"},
            {"name": "agent", "op": "=~", "value": "support-.*"},
        ],
        "duration": "2h",
        "comment": "deploying the fix",
        "created_by": "alice",
    })),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 201, body = SilenceView, description = "Created."),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create_silence(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<SilenceSpec>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    let principal = caller.require(Role::Admin)?;
    let silence = state
        .alerts
        .create_silence(&principal.project_id, &principal.key_id, spec)
        .await
        .map_err(|e| match e {
            SilenceChangeError::Invalid(e) => ApiError::bad_request(e.field, e.message),
            SilenceChangeError::Save(e) => save_error(e),
        })?;
    record(&state, principal, SILENCE_CREATE, json!(silence), 1).await?;
    Ok((StatusCode::CREATED, Json(silence)))
}

/// Silences, newest first
///
/// Pending, active, and expired in the last 5 days.
#[utoipa::path(
    get,
    path = "/api/v1/silences",
    tag = "alerting",
    operation_id = "listSilences",
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = SilenceList, description = "The silences."),
    ),
)]
pub async fn list_silences(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SilenceList>, ApiError> {
    let principal = caller.require(Role::Read)?;
    Ok(Json(SilenceList {
        silences: state.alerts.silences(&principal.project_id),
    }))
}

/// One silence
#[utoipa::path(
    get,
    path = "/api/v1/silences/{id}",
    tag = "alerting",
    operation_id = "getSilence",
    params(SilenceId),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = SilenceView, description = "The silence."),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get_silence(
    State(state): State<AppState>,
    caller: Caller,
    Path(SilenceId { id }): Path<SilenceId>,
) -> Result<Json<SilenceView>, ApiError> {
    let principal = caller.require(Role::Read)?;
    state
        .alerts
        .silence(&principal.project_id, &id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no silence with id {id:?}")))
}

/// Expire a silence now
///
/// Its end becomes now; it stays listed, as expired, for 5 days.
#[utoipa::path(
    delete,
    path = "/api/v1/silences/{id}",
    tag = "alerting",
    operation_id = "expireSilence",
    params(SilenceId),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, body = SilenceView, description = "The expired silence."),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn expire_silence(
    State(state): State<AppState>,
    caller: Caller,
    Path(SilenceId { id }): Path<SilenceId>,
) -> Result<Json<SilenceView>, ApiError> {
    let principal = caller.require(Role::Admin)?;
    match state
        .alerts
        .expire_silence(&principal.project_id, &id)
        .await
    {
        Ok(true) => {
            let silence = state
                .alerts
                .silence(&principal.project_id, &id)
                .ok_or_else(|| ApiError::internal(format!("silence {id:?} vanished on expiry")))?;
            record(&state, principal, SILENCE_EXPIRE, json!(silence), 1).await?;
            Ok(Json(silence))
        }
        Ok(false) => Err(ApiError::not_found(format!("no silence with id {id:?}"))),
        Err(e) => Err(save_error(e)),
    }
}
