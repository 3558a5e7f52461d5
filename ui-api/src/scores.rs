//! `POST /api/v1/scores`: feedback and evaluations, through the same pipeline as native ingest.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_proto::v1;

use crate::{
    AppState,
    auth::Caller,
    body::JsonBody,
    error::{ApiError, BadRequest, TooManyRequests, Unavailable},
};

/// A score as sent: exactly one of `value`, `bool_value`, `string_value`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreInput {
    /// The score's id; when absent, derived from trace_id, span_id, name and source, so that a
    /// retried request writes the same score.
    #[serde(default)]
    id: Option<String>,
    /// The run scored.
    #[schema(pattern = "^[0-9a-fA-F]{32}$")]
    trace_id: String,
    /// The span scored, when not the whole run.
    #[serde(default)]
    #[schema(pattern = "^[0-9a-fA-F]{16}$")]
    span_id: Option<String>,
    /// What is scored, e.g. `user_feedback`, `faithfulness`.
    name: String,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    bool_value: Option<bool>,
    #[serde(default)]
    #[schema(min_length = 1)]
    string_value: Option<String>,
    /// Who scored: `api` (the default), `user`, an evaluator's name.
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

/// What was accepted.
#[derive(Serialize, ToSchema)]
pub struct ScoreAccepted {
    /// Scores accepted (1).
    accepted: u64,
}

/// Record a score or user feedback
///
/// Goes through the same ingest pipeline as the native API: the score is durable when this
/// answers.
#[utoipa::path(
    post,
    path = "/api/v1/scores",
    tag = "ingest",
    operation_id = "createScore",
    request_body(content = ScoreInput, example = json!({
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "name": "user_feedback",
        "bool_value": true,
        "comment": "solved my problem",
    })),
    security(("bearerAuth" = ["ingest"])),
    responses(
        (status = 200, body = ScoreAccepted, description = "The score was accepted."),
        (status = 400, response = BadRequest),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<ScoreInput>,
) -> Result<Json<ScoreAccepted>, ApiError> {
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
    Ok(Json(ScoreAccepted {
        accepted: response.accepted_scores.into(),
    }))
}
