//! The one mapping from every error a handler meets to an HTTP response:
//! `{"error": {"code", "message", "field"}}`, with `Retry-After` on retryable refusals.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::{
    ToResponse, ToSchema,
    openapi::{
        ContentBuilder, RefOr, Response as ResponseDoc, ResponseBuilder,
        header::HeaderBuilder,
        schema::{ObjectBuilder, Type},
    },
};
use vigil_access::keys::KeyError;
use vigil_collector::{erasure::ErasureError, error::IngestError};
use vigil_control::ControlError;
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

    /// A path of a component this process does not run (`vigil serve --components`).
    pub fn not_served(message: impl Into<String>) -> ApiError {
        ApiError {
            code: "not_served",
            ..ApiError::not_found(message)
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

    /// The caller's address failed to authenticate too often (`[rate_limits]
    /// failed_auth_per_second`).
    pub fn auth_throttled(secs: u64) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!(
                "too many failed authentications from this address; retry in {secs} s"
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

impl From<ControlError> for ApiError {
    /// A change to the shared control state that ClickHouse (or ZooKeeper) did not take, or
    /// did not say whether it took.
    fn from(e: ControlError) -> ApiError {
        let outcome = match e {
            ControlError::Unavailable(_) => "nothing was changed, retry later",
            ControlError::Unknown(_) => {
                "the change may have been made: read the state before retrying"
            }
            ControlError::Refused(_) => return ApiError::internal(e.to_string()),
        };
        tracing::warn!(error = %e, "the shared control state is unavailable");
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: format!("{e}; {outcome}"),
            field: None,
            retry_after_secs: Some(1),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> ApiError {
        match (&e, e.field()) {
            (KeyError::NotFound(id), _) => {
                ApiError::not_found(format!("no key with id {id:?} in this project"))
            }
            (KeyError::Shared(e @ ControlError::Unavailable(_)), _) => ApiError::from(e.clone()),
            (_, Some(field)) => ApiError::bad_request(field, e.to_string()),
            (_, None) => ApiError::internal(format!("key registry: {e}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Every `code` an error can carry (each [`ApiError`] constructor's, tested).
pub const ERROR_CODES: [&str; 12] = [
    "invalid_argument",
    "unauthenticated",
    "permission_denied",
    "not_found",
    "not_served",
    "conflict",
    "payload_too_large",
    "unsupported_media_type",
    "resource_exhausted",
    "rate_limited",
    "unavailable",
    "internal",
];

/// Every error answer's body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    as = Error,
    example = json!({"error": {
        "code": "invalid_argument",
        "message": "metrics: unknown metric \"p99\"; one of runs, completed_runs, …",
        "field": "metrics",
    }})
)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
struct ErrorDetail {
    /// Machine-readable; the same for the same kind of failure.
    #[schema(schema_with = code_schema)]
    code: &'static str,
    /// For people: what was wrong, and the limit when one was passed.
    message: String,
    /// The request field at fault (`trace_id`, `metrics`, `score.name`, `body`…), when one is.
    #[schema(required = true)]
    field: Option<String>,
}

fn code_schema() -> RefOr<utoipa::openapi::schema::Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Machine-readable; the same for the same kind of failure.",
        ))
        .enum_values(Some(ERROR_CODES))
        .into()
}

/// The error answers operations refer to: `(name, description, retryable)`. A retryable one
/// carries `Retry-After`.
macro_rules! error_responses {
    ($($name:ident: $description:literal, $retryable:literal;)*) => {
        $(
            #[doc = $description]
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<ResponseDoc>) {
                    (stringify!($name), error_response($description, $retryable))
                }
            }
        )*
    };
}

fn error_response(description: &str, retryable: bool) -> RefOr<ResponseDoc> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "Error",
            ))))
            .build(),
    );
    if retryable {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some(
                    "Seconds to wait before retrying this retryable refusal.",
                ))
                .build(),
        );
    }
    response.build().into()
}

error_responses! {
    BadRequest: "`invalid_argument`: the request is wrong; `field` names the part at fault and \
        `message` says why.", false;
    Unauthorized: "`unauthenticated`: no API key, or not a valid one.", false;
    Forbidden: "`permission_denied`: the key lacks the role this operation needs.", false;
    NotFound: "`not_found`: nothing of this project has this id.", false;
    NotServed: "`not_served`: this node does not run the component that serves the path \
        (`vigil serve --components`); the message names what it runs.", false;
    Conflict: "`conflict`: the change clashes with the server's configuration (a rule of the \
        rules file cannot be changed through the API).", false;
    PayloadTooLarge: "`payload_too_large`: the body, after decompression, exceeds the server's \
        limit.", false;
    UnsupportedMediaType: "`unsupported_media_type`: a content type or content encoding the \
        endpoint does not take.", false;
    TooManyRequests: "`resource_exhausted`: the write-ahead log's backlog is full; or \
        `rate_limited`: the caller's address failed to authenticate too often; retry after \
        `Retry-After` seconds.", true;
    Unavailable: "`unavailable`: the collector cannot make data durable, or the store cannot \
        answer, right now; retry after `Retry-After` seconds.", true;
    Internal: "`internal`: a failure on Vigil's side; the server log has the details.", false;
    RateLimited: "`rate_limited`: the key is over its rate limit (a token bucket per key: \
        requests per second and burst, the server's `[rate_limits]` or the key's own; the \
        message names the limit), or the caller's address failed to authenticate too often; \
        retry after `Retry-After` seconds.", true;
    BacklogFullOrRateLimited: "`resource_exhausted` (the write-ahead log's backlog is full) or \
        `rate_limited` (the key is over its rate limit, or the caller's address failed to \
        authenticate too often); retry after `Retry-After` seconds.", true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_shared_change_says_whether_it_was_made() {
        let unavailable = ApiError::from(ControlError::Unavailable("down".into()));
        assert_eq!(
            (unavailable.status, unavailable.code),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        assert!(
            unavailable
                .message
                .ends_with("nothing was changed, retry later"),
            "{}",
            unavailable.message
        );
        let unknown = ApiError::from(ControlError::Unknown("no answer".into()));
        assert_eq!(
            (unknown.status, unknown.retry_after_secs),
            (StatusCode::SERVICE_UNAVAILABLE, Some(1))
        );
        assert!(
            unknown.message.contains("may have been made"),
            "{}",
            unknown.message
        );
        let refused = ApiError::from(ControlError::Refused("no table".into()));
        assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
