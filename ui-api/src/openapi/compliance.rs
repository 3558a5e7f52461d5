//! The compliance part of the OpenAPI document: affected-session investigations and their
//! exports, user look-ups, erasure (handlers in `crate::compliance`).

use serde_json::{Map, Value, json};
use vigil_access::keys::Role;
use vigil_query::{
    MAX_LIMIT,
    audit::{EXPORT_CHUNK_RUNS, request::MAX_AUDIT_RANGE_DAYS},
};

use super::{
    bearer, count, errors, filters_schema, json_response, object, schema_ref, string, text, time,
    with,
};
use crate::compliance::{MAX_USER_HASH_BYTES, MAX_USER_ID_BYTES};

pub(super) const TAG: (&str, &str) = (
    "compliance",
    "Which runs, sessions and (hashed) users a model version, prompt version, tool version… \
     touched, and since when; exports of every such run; look-ups and erasure of one person. \
     Every answer is written to the audit log before it is sent.",
);

pub(super) fn paths() -> Vec<(&'static str, Value)> {
    vec![
        ("/api/v1/audit/affected", json!({"post": affected()})),
        ("/api/v1/audit/user-lookup", json!({"post": user_lookup()})),
        ("/api/v1/users/{user_hash}", json!({"delete": erase_user()})),
    ]
}

pub(super) fn parameters() -> Vec<(&'static str, Value)> {
    vec![
        (
            "user_hash",
            json!({
                "name": "user_hash",
                "in": "path",
                "required": true,
                "description": format!(
                    "The user's hash as stored (from a look-up or an investigation), at most \
                     {MAX_USER_HASH_BYTES} bytes."
                ),
                "schema": {"type": "string"},
                "example": "4f1c0c2d8b0e4a51b8f7e7c0d5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6",
            }),
        ),
        (
            "export_format",
            json!({
                "name": "format",
                "in": "query",
                "required": false,
                "description": "`json` (default): totals, days and one page of sessions. `csv` \
                    or `ndjson`: every affected run, streamed.",
                "schema": {"type": "string", "enum": ["json", "csv", "ndjson"], "default": "json"},
            }),
        ),
    ]
}

/// The error responses of every compliance operation, with its 200.
fn responses(ok: Value) -> Map<String, Value> {
    let failures = [
        ("400", "BadRequest"),
        ("500", "Internal"),
        ("503", "Unavailable"),
    ];
    with(errors(&failures), "200", ok)
}

fn affected() -> Value {
    let ok = json!({
            "description": format!(
                "With `format=json`: the investigation. With `csv` (RFC 4180, a header line; a \
                 value a spreadsheet would run as a formula is quoted and prefixed with `'`) or \
                 `ndjson` (one `AffectedRun` per line): every affected run by start time, \
                 streamed about {EXPORT_CHUNK_RUNS} runs at a time, so the server's memory does \
                 not grow with the export. A failure mid-stream cuts the transfer (no final \
                 chunk), never a short file that looks whole. Exports carry `Vigil-Audit-Entry` \
                 and `Vigil-Affected-Runs` headers."
            ),
            "headers": {
                "Vigil-Audit-Entry": {"description": "Exports: the audit entry's `seq`.",
                    "schema": {"type": "integer"}},
                "Vigil-Affected-Runs": {"description": "Exports: how many runs the export holds \
                    (counted when it began).", "schema": {"type": "integer"}},
            },
            "content": {
                "application/json": {"schema": schema_ref("AffectedAnswer")},
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": schema_ref("AffectedRun")},
            },
    });
    json!({
        "tags": ["compliance"],
        "operationId": "investigateAffected",
        "summary": "Runs, sessions and users a model, prompt or tool version touched",
        "description": "A run is affected when it started in [`from`, `to`), its run fields \
            match the run filters, it made a model call matching every model-call filter and a \
            tool call matching every tool-call filter (each in its newest version). Totals, \
            first and last seen, per-day counts and the sessions (with their users) a page at a \
            time; exact on both stores. Recorded in the audit log (`audit.affected`, or \
            `audit.export` for csv and ndjson) before the answer is sent.",
        "security": bearer(Role::Audit),
        "parameters": [{"$ref": "#/components/parameters/export_format"}],
        "requestBody": {
            "required": true,
            "content": {"application/json": {
                "schema": schema_ref("AffectedQuery"),
                "example": {
                    "from": "2026-11-01T00:00:00Z",
                    "to": "2026-11-24T00:00:00Z",
                    "filters": {"prompt_id": ["refund-policy"], "prompt_version": ["v7"]},
                    "limit": 100,
                },
            }},
        },
        "responses": responses(ok),
    })
}

fn user_lookup() -> Value {
    let ok = json_response(
        "The hash and that person's sessions.",
        schema_ref("UserLookup"),
    );
    json!({
        "tags": ["compliance"],
        "operationId": "lookUpUser",
        "summary": "Find one person's sessions by their raw id",
        "description": "The raw id is hashed with the server's key exactly as at ingest; it is \
            never stored or logged, only its hash (`audit.user_lookup`).",
        "security": bearer(Role::Audit),
        "requestBody": {
            "required": true,
            "content": {"application/json": {
                "schema": schema_ref("UserLookupRequest"),
                "example": {"user_id": "customer-8841"},
            }},
        },
        "responses": responses(ok),
    })
}

fn erase_user() -> Value {
    let ok = json_response("Erased: the receipt.", schema_ref("ErasureReceipt"));
    json!({
        "tags": ["compliance"],
        "operationId": "eraseUser",
        "summary": "Erase one person's runs, spans and scores",
        "description": "Every trace with a run (in any version) of this user hash loses all its \
            runs, spans and scores: Parquet files are rewritten atomically, or ClickHouse \
            mutations are waited on and verified. Everything acknowledged before the call is \
            first written to the store, and the write-ahead log segments that held it are \
            deleted. Answers only when all of it is done; a 503 means it could not finish (the \
            store is down or behind): nothing is reported erased, run it again. Recorded in the \
            audit log (`user.erase`), whose entries keep the hash.",
        "security": bearer(Role::Admin),
        "parameters": [{"$ref": "#/components/parameters/user_hash"}],
        "responses": responses(ok),
    })
}

fn sessions_page() -> Vec<(&'static str, Value)> {
    let maybe_time = |description: &str| json!({"type": ["string", "null"], "format": "date-time", "description": description});
    vec![
        ("runs", count("Affected runs.")),
        ("sessions", count("Distinct non-empty session ids.")),
        ("users", count("Distinct non-empty user hashes.")),
        (
            "first_seen",
            maybe_time("Start of the first affected run; null without any."),
        ),
        (
            "last_seen",
            maybe_time("Start of the last affected run; null without any."),
        ),
        (
            "by_day",
            json!({"type": "array", "items": schema_ref("AffectedDay"),
                "description": "UTC days with affected runs, oldest first."}),
        ),
        (
            "items",
            json!({"type": "array", "items": schema_ref("AffectedSession"),
                "description": "Sessions (with their user) by first run, then session id."}),
        ),
        (
            "next_cursor",
            json!({"type": ["string", "null"],
                "description": "Pass it as `cursor` for the next page; null on the last page."}),
        ),
        (
            "audit_entry",
            json!({"type": "integer", "description": "The audit entry (`seq`) of this answer."}),
        ),
    ]
}

fn page_fields() -> Vec<(&'static str, Value)> {
    vec![
        (
            "limit",
            json!({"type": "integer", "minimum": 1, "default": 100,
                "description": format!("Sessions per page; more than {MAX_LIMIT} is served as {MAX_LIMIT}.")}),
        ),
        ("cursor", text("`next_cursor` of the previous page.")),
    ]
}

pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let mut query = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["from", "to"],
        "properties": {
            "from": time("Runs that *started* in [`from`, `to`) are investigated."),
            "to": time(&format!("After `from`; at most {MAX_AUDIT_RANGE_DAYS} days later.")),
            "filters": filters_schema(),
        },
    });
    for (name, schema) in page_fields() {
        query["properties"][name] = schema;
    }
    let mut lookup_request = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["user_id"],
        "properties": {
            "user_id": {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID_BYTES,
                "description": "The person's id as the application knows it."},
        },
    });
    for (name, schema) in page_fields() {
        lookup_request["properties"][name] = schema;
    }
    let mut lookup = sessions_page();
    lookup.insert(
        0,
        ("user_hash", text("The id, hashed with the server's key.")),
    );
    let rows = |description: &str| count(description);
    vec![
        ("AffectedQuery", query),
        ("AffectedAnswer", object(sessions_page())),
        (
            "AffectedDay",
            object(vec![
                ("day", json!({"type": "string", "format": "date"})),
                ("runs", count("Affected runs that started that day.")),
                ("sessions", count("Their distinct non-empty session ids.")),
                ("users", count("Their distinct non-empty user hashes.")),
            ]),
        ),
        (
            "AffectedSession",
            object(vec![
                ("session_id", string()),
                ("user_hash", string()),
                ("runs", count("Affected runs of the session and user.")),
                ("first_seen", time("Start of its first affected run.")),
                ("last_seen", time("Start of its last affected run.")),
            ]),
        ),
        (
            "AffectedRun",
            object(vec![
                ("trace_id", string()),
                ("session_id", string()),
                ("user_hash", string()),
                ("agent", string()),
                ("agent_version", string()),
                ("task_type", string()),
                ("environment", string()),
                ("release", string()),
                ("start_time", time("The run's start.")),
                ("end_time", time("The run's end.")),
                ("outcome", string()),
                (
                    "classification",
                    json!({"type": "array", "items": {"type": "string"},
                        "description": "In CSV: the tags joined with `;`."}),
                ),
                ("retention", string()),
                ("audit_ref", string()),
            ]),
        ),
        ("UserLookupRequest", lookup_request),
        ("UserLookup", object(lookup)),
        (
            "DeletedRows",
            object(vec![
                ("runs", rows("Run rows (every stored version).")),
                ("spans", rows("Span rows (every stored version).")),
                ("scores", rows("Score rows (every stored version).")),
            ]),
        ),
        (
            "ErasureReceipt",
            object(vec![
                ("user_hash", string()),
                ("erased_at", time("When the erasure finished.")),
                ("deleted", schema_ref("DeletedRows")),
                (
                    "wal_segments_deleted",
                    count("Write-ahead log segments deleted once the store held their records."),
                ),
                (
                    "audit_entry",
                    json!({"type": "integer", "description": "The audit entry (`seq`) recording the erasure."}),
                ),
                ("audit_hash", text("That entry's hash.")),
            ]),
        ),
    ]
}
