//! `POST /api/v1/metrics/query`: the metric engine over HTTP (docs/api.md#metrics-query). The
//! request is checked into a plan before any store is asked; every refusal is a 400 naming the
//! request field.

use axum::{Json, extract::State};
use vigil_access::keys::Role;
use vigil_query::metrics::{MetricAnswer, MetricQuery};

use crate::{
    AppState,
    auth::Caller,
    body::JsonBody,
    error::{ApiError, BadRequest, Internal, Unavailable},
};

/// Metrics over runs, model calls and tool calls
///
/// The request is checked before any store is asked; every refusal is a 400 naming the request
/// field and saying why (an unknown name, a grouping a metric cannot honour, a range too long,
/// too many buckets).
#[utoipa::path(
    post,
    path = "/api/v1/metrics/query",
    tag = "metrics",
    operation_id = "queryMetrics",
    request_body(content = MetricQuery, example = json!({
        "from": "2026-11-23T00:00:00Z",
        "to": "2026-11-24T00:00:00Z",
        "metrics": ["runs", "completion_rate", "run_latency_p99_ms", "cost_usd"],
        "group_by": ["agent"],
        "filters": {"environment": ["production"]},
        "step": "1h",
    })),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = MetricAnswer, description = "One row per group (and bucket).",
            example = json!({"rows": [{
                "agent": "support-bot",
                "bucket": "2026-11-23T10:00:00Z",
                "runs": 120,
                "completion_rate": 0.9167,
                "run_latency_p99_ms": 20512.5,
                "cost_usd": 3.41,
                "unpriced_model_calls": 0,
            }]})),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn query(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(query): JsonBody<MetricQuery>,
) -> Result<Json<MetricAnswer>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let plan = query.plan()?;
    let answer = state.store.metrics(&principal.project_id, &plan).await?;
    Ok(Json(answer))
}
