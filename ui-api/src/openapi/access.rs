//! The access part of the OpenAPI document: API keys, the audit log, and the rate limit every
//! REST operation is subject to.

use serde_json::{Value, json};
use vigil_access::{
    audit::{ACTIONS, CLI_KEY_ID, SYSTEM_KEY_ID, ZERO_HASH},
    keys::{RateLimit, Role},
};

use super::{
    bearer, errors, json_response, object, response_ref, schema_ref, string, text, time, with,
};
use crate::audit_log::{DEFAULT_LIMIT, MAX_LIMIT};

pub(super) const TAG: (&str, &str) = (
    "access",
    "API keys of the caller's project, and the audit log: every key change, rule and silence \
     change, compliance query and erasure, hash-chained (docs/api.md#compliance).",
);

/// Trace export paths: not rate limited (the WAL backlog bounds them).
const NOT_RATE_LIMITED: [&str; 2] = ["/v1/traces", "/api/public/otel/v1/traces"];

pub(super) fn paths() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/api/v1/keys",
            json!({"post": create_key(), "get": list_keys()}),
        ),
        ("/api/v1/keys/{id}", json!({"delete": revoke_key()})),
        ("/api/v1/audit/log", json!({"get": read_audit_log()})),
    ]
}

pub(super) fn parameters() -> Vec<(&'static str, Value)> {
    vec![(
        "key_id",
        json!({
            "name": "id",
            "in": "path",
            "required": true,
            "description": "The key's id, `vk_<16 hex>` (public; not the secret).",
            "schema": {"type": "string"},
            "example": "vk_0123456789abcdef",
        }),
    )]
}

/// The 429 responses: `rate_limited`, and on operations that can also meet a full backlog, both.
pub(super) fn responses() -> Vec<(&'static str, Value)> {
    let retryable = |description: &str| {
        json!({
            "description": description,
            "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
            "content": {"application/json": {"schema": schema_ref("Error")}},
        })
    };
    vec![
        (
            "RateLimited",
            retryable(
                "`rate_limited`: the key is over its rate limit (a token bucket per key: \
                 requests per second and burst, the server's `[rate_limits]` or the key's own); \
                 the message names the limit; retry after `Retry-After` seconds.",
            ),
        ),
        (
            "BacklogFullOrRateLimited",
            retryable(
                "`resource_exhausted` (the write-ahead log's backlog is full) or `rate_limited` \
                 (the key is over its rate limit); retry after `Retry-After` seconds.",
            ),
        ),
    ]
}

/// Every authenticated operation but trace export counts against its key's rate limit.
pub(super) fn add_rate_limit_responses(paths: &mut Value) {
    let Some(paths) = paths.as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if NOT_RATE_LIMITED.contains(&path.as_str()) {
            continue;
        }
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let public = operation["security"].as_array().is_some_and(Vec::is_empty);
            if public {
                continue;
            }
            let responses = &mut operation["responses"];
            responses["429"] = if responses.get("429").is_some() {
                response_ref("BacklogFullOrRateLimited")
            } else {
                response_ref("RateLimited")
            };
        }
    }
}

fn create_key() -> Value {
    json!({
        "tags": ["access"],
        "operationId": "createKey",
        "summary": "Create an API key in the caller's project",
        "description": "The answer holds the secret and the bearer token: they are shown here \
            once and stored nowhere (only a hash is). Recorded in the audit log (`key.create`).",
        "security": bearer(Role::Admin),
        "requestBody": {
            "required": true,
            "content": {"application/json": {
                "schema": schema_ref("ApiKeyInput"),
                "example": {
                    "roles": ["read"],
                    "description": "grafana dashboard",
                    "rate_limit": {"requests_per_second": 20, "burst": 40},
                },
            }},
        },
        "responses": with(errors(&[("400", "BadRequest"), ("500", "Internal")]), "201",
            json_response("Created; the secret is in this answer only.", schema_ref("NewApiKey"))),
    })
}

fn list_keys() -> Value {
    json!({
        "tags": ["access"],
        "operationId": "listKeys",
        "summary": "The project's API keys",
        "description": "Revoked keys included. Never a secret or its hash.",
        "security": bearer(Role::Admin),
        "responses": with(errors(&[("500", "Internal")]), "200",
            json_response("The keys.", object(vec![(
                "keys", json!({"type": "array", "items": schema_ref("ApiKey")}),
            )]))),
    })
}

fn revoke_key() -> Value {
    json!({
        "tags": ["access"],
        "operationId": "revokeKey",
        "summary": "Revoke an API key",
        "description": "The key is refused (401) from its next request on. Revoking a revoked \
            key keeps its first revocation time. A key of another project is not found (404). \
            Recorded in the audit log (`key.revoke`).",
        "security": bearer(Role::Admin),
        "parameters": [{"$ref": "#/components/parameters/key_id"}],
        "responses": with(errors(&[("404", "NotFound"), ("500", "Internal")]), "200",
            json_response("The revoked key.", schema_ref("ApiKey"))),
    })
}

fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
        "schema": schema})
}

fn read_audit_log() -> Value {
    let date_time = json!({"type": "string", "format": "date-time"});
    json!({
        "tags": ["access"],
        "operationId": "readAuditLog",
        "summary": "The project's audit log",
        "description": "Entries of the caller's project in log order (oldest first), a page at a \
            time. Each entry carries the previous entry's hash and its own: the chain runs \
            through the entries of every project, so `prev_hash` may name an entry of another \
            project; `vigil audit verify` checks the whole chain. Reading is itself recorded \
            (`audit.log_read`), before the answer is sent. An unknown query parameter is refused.",
        "security": bearer(Role::Audit),
        "parameters": [
            query_parameter("from", "Entries at or after this instant (RFC 3339).", date_time.clone()),
            query_parameter("to", "Entries strictly before this instant (RFC 3339); after `from`.", date_time),
            query_parameter("limit", &format!("Entries per page (default {DEFAULT_LIMIT})."),
                json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT})),
            query_parameter("cursor", "`next_cursor` of the previous page.", string()),
        ],
        "responses": with(errors(&[("400", "BadRequest"), ("500", "Internal")]), "200",
            json_response("A page of entries.", schema_ref("AuditLogPage"))),
    })
}

fn rate_limit_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["requests_per_second", "burst"],
        "description": "A token bucket: refilled at `requests_per_second`, holding at most `burst` \
            requests. Counts every REST request of the key (not trace export).",
        "properties": {
            "requests_per_second": {
                "type": "number",
                "minimum": RateLimit::MIN_REQUESTS_PER_SECOND,
                "maximum": RateLimit::MAX_REQUESTS_PER_SECOND,
            },
            "burst": {"type": "integer", "minimum": 1, "maximum": RateLimit::MAX_BURST},
        },
    })
}

fn key_properties() -> Vec<(&'static str, Value)> {
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    vec![
        ("id", text("`vk_<16 hex>`: public, safe to log.")),
        ("project_id", string()),
        (
            "roles",
            json!({"type": "array", "items": {"type": "string", "enum": roles}}),
        ),
        ("description", string()),
        ("created_at", time("When the key was created.")),
        (
            "revoked_at",
            json!({"type": ["string", "null"], "format": "date-time",
                "description": "When it was revoked; null while it works."}),
        ),
        (
            "rate_limit",
            json!({"oneOf": [schema_ref("RateLimit"), {"type": "null"}],
                "description": "The key's own limit; null: the server's default."}),
        ),
    ]
}

pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let mut new_key = key_properties();
    new_key.push((
        "secret",
        text("Shown once. Basic authentication is `base64(<id>:<secret>)`."),
    ));
    new_key.push((
        "token",
        text("Shown once: `Authorization: Bearer <token>`."),
    ));
    vec![
        ("RateLimit", rate_limit_schema()),
        (
            "ApiKeyInput",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["roles"],
                "properties": {
                    "roles": {"type": "array", "minItems": 1,
                        "items": {"type": "string", "enum": roles}},
                    "description": {"type": "string", "maxLength": vigil_access::keys::MAX_DESCRIPTION_BYTES},
                    "rate_limit": schema_ref("RateLimit"),
                },
            }),
        ),
        ("ApiKey", object(key_properties())),
        ("NewApiKey", object(new_key)),
        ("AuditEntry", audit_entry_schema()),
        (
            "AuditLogPage",
            object(vec![
                (
                    "entries",
                    json!({"type": "array", "items": schema_ref("AuditEntry")}),
                ),
                (
                    "next_cursor",
                    json!({"type": ["string", "null"],
                        "description": "Pass it as `cursor` for the next page; null on the last page."}),
                ),
            ]),
        ),
    ]
}

fn audit_entry_schema() -> Value {
    let mut schema = object(vec![
        (
            "seq",
            json!({"type": "integer", "minimum": 1,
                "description": "1 for the first entry of the log, then one more for each."}),
        ),
        ("time", time("`time_ns`, RFC 3339 with nanoseconds.")),
        (
            "time_ns",
            json!({"type": "integer", "format": "int64",
                "description": "ns since the Unix epoch; never decreases along the log."}),
        ),
        ("project_id", string()),
        (
            "key_id",
            text(&format!(
                "The caller's API key id; `{CLI_KEY_ID}` for the `vigil` CLI, `{SYSTEM_KEY_ID}` \
                 for Vigil itself (the first start's admin key, retention)."
            )),
        ),
        ("action", json!({"type": "string", "enum": ACTIONS})),
        (
            "parameters",
            json!({"description": "What the action was asked: names, ids, roles, filters. Never a secret."}),
        ),
        (
            "result_count",
            json!({"type": "integer", "minimum": 0,
                "description": "How many things the action returned or changed."}),
        ),
        (
            "prev_hash",
            text(&format!(
                "The previous entry's `hash`; `{ZERO_HASH}` for the first entry."
            )),
        ),
        (
            "hash",
            text(
                "Hex SHA-256 of `prev_hash` followed by the JSON array [seq, time, time_ns, \
                 project_id, key_id, action, parameters, result_count], compact, object keys \
                 sorted.",
            ),
        ),
    ]);
    schema["description"] = json!("One audit log entry.");
    schema
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;
    use vigil_access::{
        audit::{AuditLog, AuditRecord, KEY_CREATE},
        keys::{KeySpec, KeyStore},
    };

    use super::super::DOCUMENT;
    use super::*;

    fn documented(name: &str) -> BTreeSet<String> {
        DOCUMENT["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    fn served(value: &Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn the_key_and_audit_views_have_exactly_the_documented_properties() {
        let dir = tempfile_dir();
        let keys = KeyStore::open(dir.join("keys.json")).unwrap();
        let key = keys
            .create_key(KeySpec {
                project_id: "p".into(),
                roles: BTreeSet::from([Role::Read]),
                description: String::new(),
                rate_limit: None,
            })
            .unwrap();
        assert_eq!(documented("ApiKey"), served(&key.record.public_view()));

        let audit = AuditLog::open(dir.join("audit")).unwrap();
        let entry = audit
            .append(AuditRecord {
                project_id: "p".into(),
                key_id: "cli".into(),
                action: KEY_CREATE.into(),
                parameters: json!({}),
                result_count: 1,
            })
            .unwrap();
        assert_eq!(
            documented("AuditEntry"),
            served(&serde_json::to_value(entry).unwrap())
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-api-access-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn every_rest_operation_but_trace_export_can_be_rate_limited() {
        for (path, item) in DOCUMENT["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let public = operation["security"].as_array().unwrap().is_empty();
                let limited = operation["responses"]["429"]["$ref"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("RateLimited"));
                let expected = !public && !NOT_RATE_LIMITED.contains(&path.as_str());
                assert_eq!(limited, expected, "{method} {path}");
            }
        }
    }
}
