//! Kill switches over HTTP (`vigil_eval::kill_switch`), the caller's project only. Agents poll
//! `GET /api/v1/kill-switch/{agent}` before they run: any key that may send traces (`ingest`) or
//! read (`read`) may ask; the answer carries an `ETag`, and `If-None-Match` with it answers 304
//! with no body while nothing changed. Setting a switch needs `admin` (`If-Match` makes the change
//! conditional on the answer the caller saw) and is recorded in the audit log.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use vigil_access::{audit::KILL_SWITCH_SET, keys::Role};
use vigil_eval::kill_switch::{
    KillSwitch, Scope, SetSwitch, SwitchAnswer, SwitchSource, SwitchState,
};
use vigil_schemas::time::{now_ns, rfc3339};

use crate::{
    AppState,
    audit_log::record,
    auth::Caller,
    body::JsonBody,
    datasets::store_error,
    error::{ApiError, BadRequest, Internal},
    params::QueryParams,
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AgentPath {
    /// The agent's name, as its runs report it.
    #[param(example = "support-bot")]
    agent: String,
}

/// Which version of the agent is asking.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunningAs {
    /// The agent version about to run; switches set for it apply too.
    agent_version: Option<String>,
    /// The prompt version about to be used; switches set for it apply too.
    prompt_version: Option<String>,
}

/// A switch to set.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSwitch {
    state: SwitchState,
    /// Required when disabling.
    #[schema(max_length = 1024)]
    reason: Option<String>,
    /// Narrows the switch to one agent version.
    #[schema(max_length = 256, min_length = 1)]
    agent_version: Option<String>,
    /// Narrows the switch to one prompt version.
    #[schema(max_length = 256, min_length = 1)]
    prompt_version: Option<String>,
}

/// A switch as listed.
#[derive(Serialize, ToSchema)]
#[schema(as = KillSwitchView)]
pub struct SwitchView {
    #[serde(flatten)]
    switch: KillSwitch,
    /// `since_ns`, RFC 3339.
    #[schema(format = DateTime)]
    since: String,
}

/// The project's switches.
#[derive(Serialize, ToSchema)]
pub struct KillSwitchList {
    /// By agent, then agent version, then prompt version.
    switches: Vec<SwitchView>,
}

fn scope_of(
    agent: &str,
    agent_version: Option<&str>,
    prompt_version: Option<&str>,
) -> Result<Scope, ApiError> {
    Scope::new(agent, agent_version, prompt_version).map_err(|e| store_error(e.into()))
}

/// The `ETag` header of an answer's tag.
fn etag(tag: &str) -> [(header::HeaderName, HeaderValue); 1] {
    let tag = HeaderValue::from_str(tag).expect("a hex tag is a header value");
    [(header::ETAG, tag)]
}

/// Whether an `If-None-Match` / `If-Match` header names `etag` (or is `*`).
fn names(headers: &HeaderMap, name: header::HeaderName, etag: &str) -> Option<bool> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(
        value
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag),
    )
}

/// May this agent run?
///
/// The broadest disabled switch that covers the agent (its own, its version's, its prompt
/// version's, both) answers; when none is disabled, the narrowest switch set for it, or
/// `enabled` with nulls when none was ever set. Cheap (memory only): poll it. Send the `ETag`
/// back in `If-None-Match` to get a 304 while nothing changed.
#[utoipa::path(
    get,
    path = "/api/v1/kill-switch/{agent}",
    tag = "evaluation",
    operation_id = "getKillSwitch",
    params(AgentPath, RunningAs),
    security(("bearerAuth" = ["ingest"]), ("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = SwitchAnswer, description = "The agent's switch.",
         headers(("ETag" = String, description = "Send it in If-None-Match."))),
        (status = 304, description = "Unchanged since the ETag in If-None-Match."),
        (status = 400, response = BadRequest),
    ),
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(AgentPath { agent }): Path<AgentPath>,
    QueryParams(running): QueryParams<RunningAs>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = if caller.0.has(Role::Ingest) {
        &caller.0
    } else {
        caller.require(Role::Read)?
    };
    let scope = scope_of(
        &agent,
        running.agent_version.as_deref(),
        running.prompt_version.as_deref(),
    )?;
    let answer = state.kill_switches.resolve(&principal.project_id, &scope);
    let tag = answer.etag();
    if names(&headers, header::IF_NONE_MATCH, &tag) == Some(true) {
        return Ok((StatusCode::NOT_MODIFIED, etag(&tag)).into_response());
    }
    Ok((etag(&tag), Json(answer)).into_response())
}

/// Set a kill switch
///
/// Sets the agent's switch, or (with `agent_version` and/or `prompt_version`) the switch of
/// that version only. Disabling needs a reason. With `If-Match`, the change is made only if
/// the switch set for exactly this scope still answers with that `ETag` (412 otherwise).
/// Answers what an agent running as that scope is now told. Recorded in the audit log
/// (`kill_switch.set`).
#[utoipa::path(
    put,
    path = "/api/v1/kill-switch/{agent}",
    tag = "evaluation",
    operation_id = "setKillSwitch",
    params(AgentPath),
    request_body(content = PutSwitch, example = json!({
        "state": "disabled",
        "reason": "v8 prompt loops on refunds",
        "prompt_version": "v8",
    })),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, body = SwitchAnswer, description = "What an agent running as that scope is told now.",
         headers(("ETag" = String))),
        (status = 400, response = BadRequest),
        (status = 412, description = "If-Match did not match the switch's current answer."),
        (status = 500, response = Internal),
    ),
)]
pub async fn put_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(AgentPath { agent }): Path<AgentPath>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PutSwitch>,
) -> Result<Response, ApiError> {
    let principal = caller.require(Role::Admin)?.clone();
    let scope = scope_of(
        &agent,
        body.agent_version.as_deref(),
        body.prompt_version.as_deref(),
    )?;
    let project = principal.project_id.clone();
    let before = state.kill_switches.resolve(&project, &scope);
    if names(&headers, header::IF_MATCH, &before.etag()) == Some(false) {
        return Err(ApiError {
            status: StatusCode::PRECONDITION_FAILED,
            code: "failed_precondition",
            message: format!(
                "the switch changed: it answers {} now; read it again",
                before.etag()
            ),
            field: None,
            retry_after_secs: None,
        });
    }
    let change = SetSwitch {
        scope: scope.clone(),
        state: body.state,
        reason: body.reason.clone(),
        source: SwitchSource::Api {
            key_id: principal.key_id.clone(),
        },
        at_ns: now_ns(),
    };
    let switches = state.kill_switches.clone();
    let set_in = project.clone();
    let changed = tokio::task::spawn_blocking(move || switches.set(&set_in, change))
        .await
        .map_err(|e| ApiError::internal(format!("kill switch call did not finish: {e}")))?
        .map_err(store_error)?;
    if changed.is_some() {
        record(
            &state,
            &principal,
            KILL_SWITCH_SET,
            json!({"scope": scope, "state": body.state, "reason": body.reason}),
            1,
        )
        .await?;
    }
    let answer = state.kill_switches.resolve(&project, &scope);
    Ok((etag(&answer.etag()), Json(answer)).into_response())
}

/// The project's kill switches
#[utoipa::path(
    get,
    path = "/api/v1/kill-switch",
    tag = "evaluation",
    operation_id = "listKillSwitches",
    security(("bearerAuth" = ["read"])),
    responses((status = 200, body = KillSwitchList, description = "Every switch ever set, as last set.")),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<KillSwitchList>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let switches = state.kill_switches.list(&principal.project_id);
    Ok(Json(KillSwitchList {
        switches: switches
            .into_iter()
            .map(|switch| SwitchView {
                since: rfc3339(switch.since_ns),
                switch,
            })
            .collect(),
    }))
}
