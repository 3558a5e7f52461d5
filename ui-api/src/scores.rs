//! `POST /api/v1/scores`: feedback and evaluations, through the same pipeline as native ingest.

use axum::{Json, extract::State};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_proto::v1;

use crate::{AppState, auth::Caller, body::JsonBody, error::ApiError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreInput {
    #[serde(default)]
    id: Option<String>,
    trace_id: String,
    #[serde(default)]
    span_id: Option<String>,
    name: String,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    bool_value: Option<bool>,
    #[serde(default)]
    string_value: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<ScoreInput>,
) -> Result<Json<Value>, ApiError> {
    let value = match (input.value, input.bool_value, input.string_value) {
        (Some(v), None, None) => v1::score::Value::Numeric(v),
        (None, Some(b), None) => v1::score::Value::Boolean(b),
        (None, None, Some(s)) => v1::score::Value::Text(s),
        _ => {
            return Err(ApiError::bad_request(
                "value",
                "give exactly one of value, bool_value, string_value",
            ));
        }
    };
    let request = v1::ExportRequest {
        scores: vec![v1::Score {
            score_id: input.id.unwrap_or_default(),
            trace_id: input.trace_id,
            span_id: input.span_id.unwrap_or_default(),
            name: input.name,
            value: Some(value),
            source: input.source.unwrap_or_else(|| "api".into()),
            comment: input.comment.unwrap_or_default(),
            time_unix_nano: 0,
        }],
        ..Default::default()
    };
    let response = state.pipeline.export_native(&caller.0, request).await?;
    if let Some(rejection) = response.rejections.first() {
        return Err(ApiError::bad_request(
            rejection.field.clone(),
            format!("{}: {}", rejection.field, rejection.reason),
        ));
    }
    Ok(Json(json!({"accepted": response.accepted_scores})))
}
