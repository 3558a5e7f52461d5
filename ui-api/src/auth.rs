//! Authentication as an extractor: a handler that takes a [`Caller`] only runs for a valid key
//! that is within its rate limit ([`crate::rate_limit`]); [`IngestCaller`], for trace export, is
//! not rate limited. Both refuse an address that failed to authenticate too often
//! ([`vigil_access::throttle::FailedAuth`]) before looking at its credential.

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use vigil_access::{
    keys::{KeyRecord, Principal, Role},
    throttle::AuthRefusal,
};
use vigil_transport::ClientAddr;

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
    // The peer's address, when the server was started with it (not in in-process tests).
    let address = parts
        .extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map(|ConnectInfo(ClientAddr(address))| address.ip());
    state
        .failed_auth
        .guard(address, || {
            parts
                .headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| state.keys.authenticate_header_key(v))
        })
        .map_err(|refusal| match refusal {
            AuthRefusal::Unauthenticated => ApiError::unauthenticated(),
            AuthRefusal::TooManyFailures(wait) => ApiError::auth_throttled(wait.secs()),
        })
}
