//! `POST /api/v1/metrics/query`: the metric engine over HTTP (API.md). The request is checked
//! into a plan before any store is asked; every refusal is a 400 naming the request field.

use axum::{Json, extract::State};
use vigil_query::metrics::{MetricAnswer, MetricQuery};
use vigil_schemas::keys::Role;

use crate::{AppState, auth::Caller, error::ApiError};

pub async fn query(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<MetricQuery>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<MetricAnswer>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let Json(query) = body.map_err(|e| ApiError::bad_request("body", e.body_text()))?;
    let plan = query.plan()?;
    let answer = state.store.metrics(&principal.project_id, &plan).await?;
    Ok(Json(answer))
}
