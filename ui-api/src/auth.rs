//! Authentication as an extractor: a handler that takes a [`Caller`] only runs for a valid key.

use axum::{extract::FromRequestParts, http::request::Parts};
use vigil_schemas::keys::{Principal, Role};

use crate::{AppState, error::ApiError};

/// The authenticated caller.
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
        parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| state.keys.authenticate_header(v))
            .map(Caller)
            .ok_or_else(ApiError::unauthenticated)
    }
}
