//! Query strings. [`QueryParams`] parses one into `T`; one that does not fit (an unknown value,
//! a parameter given twice, a number that is not one) is a 400 in the API's JSON error shape,
//! never axum's plain-text rejection.

use axum::{
    extract::{FromRequestParts, Query},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A query string, parsed into `T`.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(params)| QueryParams(params))
            .map_err(|e| ApiError::bad_request("query", e.body_text()))
    }
}
