//! `POST /api/v1/metrics/query`: the metric engine over HTTP (docs/api.md#metrics-query). The
//! request is checked into a plan before any store is asked; every refusal is a 400 naming the
//! request field.

use axum::{Json, extract::State};
use vigil_access::keys::Role;
use vigil_query::metrics::{MetricAnswer, MetricQuery};

use crate::{AppState, auth::Caller, body::JsonBody, error::ApiError};

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
