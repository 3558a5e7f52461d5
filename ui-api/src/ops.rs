//! Operations endpoints: liveness, readiness, Prometheus metrics, and the Langfuse SDK's
//! project check.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use prometheus_client::encoding::text::encode;
use serde::Serialize;
use utoipa::ToSchema;

use vigil_schemas::prices::CatalogView;

use crate::{ApiError, AppState, auth::Caller};

/// Liveness: whether the process answers.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(inline)]
    status: HealthStatus,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum HealthStatus {
    Ok,
}

/// Liveness
///
/// Answers while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses((status = 200, body = Health, description = "The process answers.")),
)]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

/// Whether the collector can take data, and why not.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    status: ReadyStatus,
    wal: WalReadiness,
    store: StoreHealth,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReadyStatus {
    Ready,
    Degraded,
    NotReady,
}

#[derive(Serialize, ToSchema)]
struct WalReadiness {
    /// Whether appends are accepted (the backlog is not full).
    accepting: bool,
    /// Bytes in the WAL not yet confirmed by the store.
    backlog_bytes: u64,
    /// Present while the store's writer is stopped at a WAL record it cannot read (the status
    /// is then `not_ready`).
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable_record: Option<UnreadableRecord>,
}

#[derive(Serialize, ToSchema)]
struct UnreadableRecord {
    /// Where the record starts in the log.
    lsn: u64,
    error: String,
    /// What the operator can do.
    action: String,
}

#[derive(Serialize, ToSchema)]
struct StoreHealth {
    /// Whether the store answers a health query now.
    ok: bool,
    /// Why not, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Readiness
///
/// Ready while the write-ahead log accepts appends, so acknowledged data is safe whatever the
/// store does. A store that is down makes the collector `degraded` (it keeps accepting; the
/// backlog grows) but not unready; a full backlog makes it `not_ready` (503), and so does a WAL
/// record the store's writer cannot read (it stops there until an operator runs
/// `vigil wal quarantine`).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, body = Readiness, description = "Ready or degraded."),
        (status = 503, body = Readiness, description = "Not ready: the write-ahead log's backlog \
            is full, or the store's writer is stopped at a record it cannot read."),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let wal = state.pipeline.wal();
    let accepting = !wal.is_full();
    let unreadable = state.pipeline.telemetry().unreadable_record();
    let store = state.store.health().await;
    let stats = wal.stats();
    let ready = accepting && unreadable.is_none();
    let status = match (ready, store.is_ok()) {
        (false, _) => ReadyStatus::NotReady,
        (true, false) => ReadyStatus::Degraded,
        (true, true) => ReadyStatus::Ready,
    };
    let unreadable_record = unreadable.map(|record| UnreadableRecord {
        lsn: record.lsn,
        error: record.error,
        action: format!(
            "the store's writer is stopped at this record; see `vigil wal inspect`, then run a \
             binary that reads it or `vigil wal quarantine --lsn {} --reason …`",
            record.lsn
        ),
    });
    let body = Readiness {
        status,
        wal: WalReadiness {
            accepting,
            backlog_bytes: stats.backlog_bytes,
            unreadable_record,
        },
        store: StoreHealth {
            ok: store.is_ok(),
            error: store.err().map(|e| e.to_string()),
        },
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Vigil's own metrics, OpenMetrics text format
///
/// Ingested and rejected items and acknowledgement latency, WAL figures, store writes and
/// health, HTTP requests and their latency by route, alerting, process figures; in the
/// OpenMetrics 1.0 text format, which Prometheus scrapes.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "prometheusMetrics",
    responses((
        status = 200,
        description = "OpenMetrics text exposition.",
        body = String,
        content_type = "application/openmetrics-text",
    )),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let store_up = state.store.health().await.is_ok();
    state.telemetry.store_up.set(i64::from(store_up));
    let mut out = String::with_capacity(16 * 1024);
    if let Err(e) = encode(&mut out, &state.registry) {
        return ApiError::internal(format!("encoding /metrics failed: {e}")).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// Who a key is: what the web UI shows and hides by.
#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    /// This server's version.
    server_version: &'static str,
    /// The key's public id.
    key_id: String,
    project_id: String,
    /// The roles it holds (`admin` holds every role).
    roles: Vec<vigil_access::keys::Role>,
}

/// The calling key: its id, project and roles
///
/// Any valid key, whatever its roles.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "access",
    operation_id = "whoami",
    security(("bearerAuth" = [])),
    responses((status = 200, body = WhoAmI, description = "The key.")),
)]
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    let principal = caller.0;
    Json(WhoAmI {
        server_version: env!("CARGO_PKG_VERSION"),
        key_id: principal.key_id,
        project_id: principal.project_id,
        roles: principal.roles.into_iter().collect(),
    })
}

/// The price catalog in force
///
/// Every model the collector prices calls of (the built-in catalog with the operator's
/// `[[pricing.models]]` applied), with its prices by date, in USD per million tokens.
#[utoipa::path(
    get,
    path = "/api/v1/prices",
    tag = "metrics",
    operation_id = "prices",
    security(("bearerAuth" = ["read"])),
    responses((status = 200, body = CatalogView, description = "The catalog.")),
)]
pub async fn prices(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CatalogView>, ApiError> {
    caller.require(vigil_access::keys::Role::Read)?;
    Ok(Json(state.pipeline.enricher().catalog().view()))
}

/// The projects a key sees: its own.
#[derive(Serialize, ToSchema)]
pub struct ProjectList {
    data: Vec<Project>,
}

#[derive(Serialize, ToSchema)]
struct Project {
    /// The key's project id.
    id: String,
    /// The same as `id`.
    name: String,
}

/// The key's project (Langfuse SDK credential check)
///
/// What the Langfuse SDKs call to check their credentials: the project the key belongs to. Any
/// valid key, whatever its roles; Basic authentication is accepted as on the OTLP paths.
#[utoipa::path(
    get,
    path = "/api/public/projects",
    tag = "ingest",
    operation_id = "listProjects",
    security(("bearerAuth" = []), ("basicAuth" = [])),
    responses(
        (status = 200, body = ProjectList, description = "The key's project."),
    ),
)]
pub async fn projects(caller: Caller) -> Json<ProjectList> {
    let project = caller.0.project_id;
    Json(ProjectList {
        data: vec![Project {
            id: project.clone(),
            name: project,
        }],
    })
}
