//! The one mapping from every error a handler meets to an HTTP response:
//! `{"error": {"code", "message", "field"}}`, with `Retry-After` on retryable refusals.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;
use vigil_access::keys::KeyError;
use vigil_collector::{erasure::ErasureError, error::IngestError};
use vigil_query::{ErrorKind, QueryError};

use crate::rate_limit::Refusal;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_argument",
            message: message.into(),
            field: Some(field.into()),
            retry_after_secs: None,
        }
    }

    pub fn unauthenticated() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: "missing or invalid API key (Authorization: Bearer <key>)".into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn forbidden(role: &str) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "permission_denied",
            message: format!("this key lacks the {role} role"),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: what.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        tracing::error!(message = %message.into(), "request failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "the request failed; the server log has the details".into(),
            field: None,
            retry_after_secs: None,
        }
    }

    /// 429: the key is over its REST rate limit.
    pub fn rate_limited(key_id: &str, refusal: Refusal) -> ApiError {
        let secs = refusal.retry_after_secs;
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!(
                "key {key_id} is over its rate limit of {} requests/s with a burst of {}; \
                 retry in {secs} s",
                refusal.limit.requests_per_second, refusal.limit.burst
            ),
            field: None,
            retry_after_secs: Some(secs),
        }
    }

    pub fn unsupported_media(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("the request body exceeds the limit of {limit} bytes"),
            field: Some("body".into()),
            retry_after_secs: None,
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(e.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: e.code(),
            message: e.to_string(),
            field: e.field().map(str::to_string),
            retry_after_secs: e.retry_after_secs(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        let (status, code, message, retry_after_secs) = match e.kind() {
            ErrorKind::InvalidArgument => (
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                e.to_string(),
                None,
            ),
            ErrorKind::Unavailable => {
                tracing::warn!(error = %e, "store unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store could not answer; retry later".to_string(),
                    Some(1),
                )
            }
            ErrorKind::Internal => {
                tracing::error!(error = %e, "query failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the query failed; the server log has the details".to_string(),
                    None,
                )
            }
        };
        ApiError {
            status,
            code,
            message,
            field: e.field().map(str::to_string),
            retry_after_secs,
        }
    }
}

impl From<ErasureError> for ApiError {
    fn from(e: ErasureError) -> ApiError {
        if e.is_retryable() {
            tracing::warn!(error = %e, "erasure could not finish");
            ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "unavailable",
                message: format!(
                    "the erasure could not finish: {e}; nothing was reported erased, run it again"
                ),
                field: None,
                retry_after_secs: Some(5),
            }
        } else {
            ApiError::internal(format!("erasure failed: {e}"))
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> ApiError {
        match (&e, e.field()) {
            (KeyError::NotFound(id), _) => {
                ApiError::not_found(format!("no key with id {id:?} in this project"))
            }
            (_, Some(field)) => ApiError::bad_request(field, e.to_string()),
            (_, None) => ApiError::internal(format!("key registry: {e}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "field": self.field}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
