//! Schemas of the OpenAPI document that are built from the code's own lists (metric names,
//! audit actions, …) rather than derived from a type's fields.

use serde_json::Value;
use utoipa::openapi::{RefOr, schema::Schema};

/// A schema written as JSON Schema: for the few whose parts come from lists in the code.
///
/// # Panics
/// When `value` is not a schema utoipa can represent: a fault of the code, found by any test
/// that builds the document.
pub fn from_json(value: Value) -> RefOr<Schema> {
    match serde_json::from_value(value.clone()) {
        Ok(schema) => schema,
        Err(e) => panic!("not an OpenAPI schema ({e}): {value}"),
    }
}
