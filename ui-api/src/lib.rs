//! Vigil's HTTP surface on :4318: OTLP/HTTP ingest (also at the Langfuse-compatible path), the
//! REST API under `/api/v1`, `/healthz`, `/readyz` and `/metrics`, and the web UI at `/`.
//!
//! Handlers are thin: authenticate, parse, call the ingest pipeline or the trace store, map the
//! error. The router is built by [`app`] so tests can drive it without a socket.

mod alerts;
mod audit_log;
mod auth;
mod body;
mod cohorts;
mod compliance;
mod datasets;
mod error;
mod experiments;
mod headers;
mod keys;
mod kill_switch;
mod metrics;
mod openapi;
mod ops;
mod otlp_http;
mod params;
pub mod rate_limit;
mod runs;
mod scores;
pub mod served;
pub mod telemetry;
mod views;
pub mod web;

use std::sync::Arc;

use axum::{
    Router,
    routing::{delete, get, post, put},
};
use prometheus_client::registry::Registry;
use vigil_access::{audit::AuditLog, keys::KeyStore};
use vigil_alerts::AlertEngine;
use vigil_collector::{pipeline::IngestPipeline, sink::Deleter};
use vigil_query::TraceStore;

pub use crate::{
    error::ApiError,
    rate_limit::RateLimiter,
    served::{Component, Components},
    telemetry::ApiTelemetry,
};

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Arc<IngestPipeline>,
    pub store: Arc<dyn TraceStore>,
    pub keys: Arc<KeyStore>,
    pub alerts: Arc<AlertEngine>,
    /// Evaluation datasets and experiments (`<data dir>/datasets.jsonl` and
    /// `experiments.jsonl`, or the log every node shares).
    pub evaluation: Arc<vigil_eval::Evaluation>,
    /// Kill switches agents poll (`<data dir>/kill_switches.jsonl`).
    pub kill_switches: Arc<vigil_eval::kill_switch::KillSwitches>,
    /// Deletes from the store: erasure (and the retention job, run by the binary).
    pub deleter: Arc<dyn Deleter>,
    /// The hash-chained audit log (`<data dir>/audit`).
    pub audit: Arc<AuditLog>,
    /// On ClickHouse, the audit log's chain as shipped to the store, beside every other node's.
    pub shared_audit: Option<Arc<vigil_access::shared_audit::SharedAudit>>,
    /// Per-key limits of the REST API.
    pub rate_limits: Arc<RateLimiter>,
    /// Failed authentications by source address.
    pub failed_auth: Arc<vigil_access::throttle::FailedAuth>,
    /// This surface's own figures (requests by route, the store's health at scrape time).
    pub telemetry: Arc<ApiTelemetry>,
    /// Every figure `/metrics` shows: the binary registers each part's (ingest, WAL, alerting,
    /// this surface, the process) once at start.
    pub registry: Arc<Registry>,
    /// What this process runs: requests for the others are answered 404 (`served.rs`).
    pub components: Components,
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let body_limit = state.pipeline.limits().max_message_bytes;
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/traces", post(otlp_http::export))
        .route("/api/public/otel/v1/traces", post(otlp_http::export))
        .route("/api/public/projects", get(ops::projects))
        .route("/api/v1/runs", get(runs::list))
        .route("/api/v1/runs/{trace_id}", get(runs::get_one))
        .route("/api/v1/sessions", get(runs::list_sessions))
        .route("/api/v1/sessions/{session_id}", get(runs::session))
        .route("/api/v1/scores", post(scores::create))
        .route("/api/v1/metrics/query", post(metrics::query))
        .route("/api/v1/alert-rules", get(alerts::list_rules))
        .route(
            "/api/v1/alert-rules/{name}",
            put(alerts::put_rule)
                .get(alerts::get_rule)
                .delete(alerts::delete_rule),
        )
        .route("/api/v1/alerts", get(alerts::list_alerts))
        .route(
            "/api/v1/silences",
            post(alerts::create_silence).get(alerts::list_silences),
        )
        .route(
            "/api/v1/silences/{id}",
            get(alerts::get_silence).delete(alerts::expire_silence),
        )
        .route(
            "/api/v1/datasets",
            post(datasets::create).get(datasets::list),
        )
        .route("/api/v1/datasets/{name}", get(datasets::get_one))
        .route(
            "/api/v1/datasets/{name}/items",
            post(datasets::add_items).get(datasets::items),
        )
        .route(
            "/api/v1/datasets/{name}/items/worst",
            post(datasets::add_worst),
        )
        .route(
            "/api/v1/datasets/{name}/items/{item_id}",
            delete(datasets::delete_item),
        )
        .route(
            "/api/v1/experiments",
            post(experiments::create).get(experiments::list),
        )
        .route(
            "/api/v1/experiments/compare",
            post(experiments::compare_two),
        )
        .route("/api/v1/experiments/{id}", get(experiments::get_one))
        .route("/api/v1/cohorts/compare", post(cohorts::compare))
        .route(
            "/api/v1/experiments/{id}/items",
            post(experiments::link).get(experiments::items),
        )
        .route("/api/v1/kill-switch", get(kill_switch::list))
        .route(
            "/api/v1/kill-switch/{agent}",
            get(kill_switch::get_one).put(kill_switch::put_one),
        )
        .route("/api/v1/keys", post(keys::create).get(keys::list))
        .route("/api/v1/keys/{id}", delete(keys::revoke))
        .route("/api/v1/audit/log", get(audit_log::read))
        .route("/api/v1/audit/verify", get(audit_log::verify_chain))
        .route("/api/v1/audit/affected", post(compliance::affected))
        .route("/api/v1/audit/user-lookup", post(compliance::user_lookup))
        .route("/api/v1/users/{user_hash}", delete(compliance::erase_user))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/whoami", get(ops::whoami))
        .route("/api/v1/prices", get(ops::prices))
        .fallback(web::serve)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            served::only_served,
        ))
        .layer(axum::middleware::map_response(headers::secure))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::track,
        ))
        .with_state(state)
}
