//! Authentication as an extractor: a handler that takes a [`Caller`] only runs for a valid key
//! that is within its rate limit ([`crate::rate_limit`]); [`IngestCaller`], for trace export, is
//! not rate limited.

use axum::{extract::FromRequestParts, http::request::Parts};
use vigil_access::keys::{KeyRecord, Principal, Role};

use crate::{AppState, error::ApiError};

/// The authenticated caller of the REST API; the request counted against its rate limit.
pub struct Caller(pub Principal);

impl Caller {
    pub fn require(&self, role: Role) -> Result<&Principal, ApiError> {
        if self.0.has(role) {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden(role.as_str()))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = authenticate(parts, state)?;
        state
            .rate_limits
            .check(&key.id, key.rate_limit)
            .map_err(|refusal| ApiError::rate_limited(&key.id, refusal))?;
        Ok(Caller(key.principal()))
    }
}

/// The authenticated sender of traces (OTLP/HTTP): not rate limited, the WAL backlog bounds it.
pub struct IngestCaller(pub Principal);

impl FromRequestParts<AppState> for IngestCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state).map(|key| IngestCaller(key.principal()))
    }
}

fn authenticate(parts: &Parts, state: &AppState) -> Result<KeyRecord, ApiError> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| state.keys.authenticate_header_key(v))
        .ok_or_else(ApiError::unauthenticated)
}
