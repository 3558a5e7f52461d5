//! Operations endpoints: liveness, readiness, Prometheus metrics, and the Langfuse SDK's
//! project check.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde_json::json;
use vigil_collector::telemetry::gauge;

use crate::{AppState, auth::Caller};

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
    let unreadable = state.pipeline.telemetry().unreadable_record.lock().clone();
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

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    state.pipeline.telemetry().render(&mut out);
    let wal = state.pipeline.wal().stats();
    gauge(
        &mut out,
        "vigil_wal_backlog_bytes",
        "gauge",
        "Bytes in the WAL not yet confirmed by the store.",
        wal.backlog_bytes,
    );
    gauge(
        &mut out,
        "vigil_wal_durable_bytes",
        "counter",
        "Log position up to which data is fsync'd.",
        wal.durable_lsn,
    );
    gauge(
        &mut out,
        "vigil_wal_segments",
        "gauge",
        "WAL segment files on disk.",
        wal.segments,
    );
    gauge(
        &mut out,
        "vigil_wal_appends_total",
        "counter",
        "Records appended to the WAL.",
        wal.appends,
    );
    gauge(
        &mut out,
        "vigil_wal_fsyncs_total",
        "counter",
        "fsync calls of the WAL (group commits).",
        wal.fsyncs,
    );
    gauge(
        &mut out,
        "vigil_store_up",
        "gauge",
        "1 when the store answers a health query now.",
        u64::from(state.store.health().await.is_ok()),
    );
    gauge(
        &mut out,
        "vigil_api_rate_limited_total",
        "counter",
        "REST requests refused (429) because their key was over its rate limit.",
        state.rate_limits.refused(),
    );
    (state.extra_metrics)(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// `GET /api/public/projects`: what the Langfuse SDKs call to check their credentials.
pub async fn projects(caller: Caller) -> impl IntoResponse {
    let project = caller.0.project_id;
    Json(json!({"data": [{"id": project, "name": project}]}))
}
