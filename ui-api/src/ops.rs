//! Operations endpoints: liveness, readiness, Prometheus metrics, and the Langfuse SDK's
//! project check.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use prometheus_client::encoding::text::encode;
use serde_json::json;

use crate::{ApiError, AppState, auth::Caller};

/// Alive: the process answers.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready: the WAL accepts appends, so acknowledged data is safe whatever the store does. The
/// store's state is reported beside it: a store that is down makes the collector `degraded`
/// (it keeps accepting, the backlog grows) but not unready; a full backlog makes it unready, and
/// so does a WAL record the store's writer cannot read (it stops there until an operator acts).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let wal = state.pipeline.wal();
    let accepting = !wal.is_full();
    let unreadable = state.pipeline.telemetry().unreadable_record();
    let store = state.store.health().await;
    let stats = wal.stats();
    let ready = accepting && unreadable.is_none();
    let status = match (ready, store.is_ok()) {
        (false, _) => "not_ready",
        (true, false) => "degraded",
        (true, true) => "ready",
    };
    let mut wal_state = json!({"accepting": accepting, "backlog_bytes": stats.backlog_bytes});
    if let Some(record) = unreadable {
        wal_state["unreadable_record"] = json!({
            "lsn": record.lsn,
            "error": record.error,
            "action": format!(
                "the store's writer is stopped at this record; see `vigil wal inspect`, then run \
                 a binary that reads it or `vigil wal quarantine --lsn {} --reason …`",
                record.lsn
            ),
        });
    }
    let body = json!({
        "status": status,
        "wal": wal_state,
        "store": match &store { Ok(()) => json!({"ok": true}), Err(e) => json!({"ok": false, "error": e.to_string()}) },
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Prometheus metrics, in the OpenMetrics text format (which Prometheus asks for and reads).
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

/// `GET /api/public/projects`: what the Langfuse SDKs call to check their credentials.
pub async fn projects(caller: Caller) -> impl IntoResponse {
    let project = caller.0.project_id;
    Json(json!({"data": [{"id": project, "name": project}]}))
}
