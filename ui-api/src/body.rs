//! Request bodies. Every REST endpoint that takes a body takes JSON, so [`JsonBody`] reads it as
//! JSON whether or not the client said so: `curl -d '{…}'` sends
//! `application/x-www-form-urlencoded`, and a client that sends no content type at all means the
//! same. A content type that names another format (XML, protobuf, multipart) is refused with 415,
//! and a body that is not the expected JSON is a 400 naming where it went wrong.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
};
use serde::de::DeserializeOwned;

use crate::{AppState, error::ApiError};

/// A JSON request body, parsed into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.pipeline.limits().max_message_bytes;
        match media_type(request.headers()).as_deref() {
            None | Some("application/json") | Some("application/x-www-form-urlencoded") => {}
            Some(other) if other.ends_with("+json") => {}
            Some(other) => {
                return Err(ApiError::unsupported_media(format!(
                    "content-type {other:?} is not supported; the body is JSON \
                     (send application/json, or no content type)"
                )));
            }
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| body_error(e, limit))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body; the error says where in the document it failed.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let message = if path == "." {
            format!("invalid JSON body: {}", e.inner())
        } else {
            format!("invalid JSON body at {path}: {}", e.inner())
        };
        ApiError::bad_request("body", message)
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request("body", format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// The body could not be read: over the size limit (413) or cut off (400).
pub fn body_error(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(limit)
    } else {
        ApiError::bad_request("body", rejection.body_text())
    }
}

/// The request's media type, lower-cased and without parameters (`; charset=…`).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?;
    let text = value.to_str().unwrap_or("(not text)");
    let essence = text.split(';').next().unwrap_or_default().trim();
    (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
}
