//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route [`crate::app`] serves.
//!
//! The document is built from the code wherever the code holds the names: metric and field names
//! come from the metric catalog, outcomes, span kinds and statuses from the row types, roles from
//! the key store, limits from the query crate, and the redaction labels from [`crate::views`].
//! The tests check that every route of `app()` is documented, that every documented operation
//! answers as documented (authentication, role, status, content type), and that the documented
//! views have exactly the properties the views serialize.

mod access;
mod alerting;
mod compliance;

use std::sync::LazyLock;

use axum::Json;
use serde_json::{Map, Value, json};
use vigil_access::keys::Role;
use vigil_query::{
    DEFAULT_LIMIT, MAX_LIMIT,
    metrics::{
        Field, Metric, Subject,
        request::{
            MAX_BUCKETS, MAX_FILTER_VALUE_BYTES, MAX_FILTER_VALUES, MAX_GROUP_BY, MAX_METRICS,
            MAX_RANGE_DAYS,
        },
    },
};
use vigil_schemas::{Outcome, SpanKind, SpanStatus};

use crate::views::{REDACTED, SENSITIVE};

/// The document, built once.
static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// Serves the document; no key needed.
pub async fn document() -> Json<&'static Value> {
    Json(&*DOCUMENT)
}

/// An example trace id, used wherever one is shown.
const EXAMPLE_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn build() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": info(),
        "servers": [{"url": "/", "description": "the HTTP listener (port 4318 by default)"}],
        "tags": [
            {
                "name": "operations",
                "description": "Liveness, readiness, Prometheus metrics, this document.",
            },
            {
                "name": "ingest",
                "description": "OTLP/HTTP trace export (also at the Langfuse-compatible path) \
                    and scores.",
            },
            {
                "name": "runs",
                "description": "Runs with their spans and scores, run lists, sessions.",
            },
            {"name": "metrics", "description": "Aggregates over runs, model calls and tool calls."},
            {"name": alerting::TAG.0, "description": alerting::TAG.1},
            {"name": compliance::TAG.0, "description": compliance::TAG.1},
            {"name": access::TAG.0, "description": access::TAG.1},
        ],
        "paths": paths(),
        "components": {
            "securitySchemes": security_schemes(),
            "schemas": schemas(),
            "parameters": parameters(),
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before retrying this retryable refusal.",
                    "schema": {"type": "integer", "minimum": 0},
                },
            },
            "responses": error_responses(),
        },
    })
}

fn info() -> Value {
    let roles: Vec<String> = Role::ALL
        .iter()
        .map(|r| format!("`{}` ({})", r.as_str(), role_description(*r)))
        .collect();
    json!({
        "title": "Vigil",
        "version": env!("CARGO_PKG_VERSION"),
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        "description": format!(
            "Vigil collects traces of LLM agents and answers questions about their runs. This \
             document covers the HTTP listener; the gRPC services on port 4317 (native \
             `vigil.v1.IngestService`, OTLP `TraceService`) are not described here.\n\n\
             Authentication: `Authorization: Bearer <key>`. An operation's security requirement \
             lists the role its key must hold; a key holding `admin` holds every role. Roles: {}. \
             A missing or invalid key is answered 401, a key without the role 403.\n\n\
             Errors are `{{\"error\": {{\"code\", \"message\", \"field\"}}}}`; retryable refusals \
             (429, 503) carry `Retry-After`.",
            roles.join(", ")
        ),
    })
}

fn role_description(role: Role) -> &'static str {
    match role {
        Role::Ingest => "send traces and scores, nothing else",
        Role::Read => "read runs, sessions and metrics",
        Role::Audit => "see the content of runs classified sensitive, unredacted",
        Role::Admin => "every role",
    }
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

fn paths() -> Value {
    let mut paths = json!({
        "/healthz": {"get": healthz()},
        "/readyz": {"get": readyz()},
        "/metrics": {"get": prometheus()},
        "/v1/traces": {"post": otlp_export(
            "exportTraces",
            "OTLP/HTTP trace export",
            "The OpenTelemetry collector endpoint for OTLP/HTTP.",
        )},
        "/api/public/otel/v1/traces": {"post": otlp_export(
            "exportTracesLangfuse",
            "OTLP/HTTP trace export at the Langfuse path",
            "The same handler as `/v1/traces`, at the path Langfuse SDKs send to, so an \
             application instrumented for Langfuse can point its base URL at Vigil unchanged.",
        )},
        "/api/public/projects": {"get": projects()},
        "/api/v1/runs": {"get": list_runs()},
        "/api/v1/runs/{trace_id}": {"get": get_run()},
        "/api/v1/sessions/{session_id}": {"get": get_session()},
        "/api/v1/scores": {"post": create_score()},
        "/api/v1/metrics/query": {"post": query_metrics()},
        "/api/v1/openapi.json": {"get": openapi()},
    });
    for (path, item) in alerting::paths() {
        paths[path] = item;
    }
    for (path, item) in access::paths().into_iter().chain(compliance::paths()) {
        paths[path] = item;
    }
    access::add_rate_limit_responses(&mut paths);
    paths
}

/// Needs no key.
fn public() -> Value {
    json!([])
}

/// A bearer key holding `role`.
fn bearer(role: Role) -> Value {
    json!([{"bearerAuth": [role.as_str()]}])
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn response_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

/// 401 and 403 (every authenticated operation), and the `extra` (status, response name) pairs.
fn errors(extra: &[(&str, &str)]) -> Map<String, Value> {
    let mut map = Map::new();
    for (status, name) in [("401", "Unauthorized"), ("403", "Forbidden")]
        .iter()
        .chain(extra)
    {
        map.insert((*status).into(), response_ref(name));
    }
    map
}

/// `responses` with one more.
fn with(mut responses: Map<String, Value>, status: &str, response: Value) -> Map<String, Value> {
    responses.insert(status.into(), response);
    responses
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn healthz() -> Value {
    json!({
        "tags": ["operations"],
        "operationId": "healthz",
        "summary": "Liveness",
        "description": "Answers while the process runs.",
        "security": public(),
        "responses": {"200": json_response("The process answers.", schema_ref("Health"))},
    })
}

fn readyz() -> Value {
    json!({
        "tags": ["operations"],
        "operationId": "readyz",
        "summary": "Readiness",
        "description": "Ready while the write-ahead log accepts appends, so acknowledged data is \
            safe whatever the store does. A store that is down makes the collector `degraded` \
            (it keeps accepting; the backlog grows) but not unready; a full backlog makes it \
            `not_ready` (503), and so does a WAL record the store's writer cannot read (it \
            stops there until an operator runs `vigil wal quarantine`).",
        "security": public(),
        "responses": {
            "200": json_response("Ready or degraded.", schema_ref("Readiness")),
            "503": json_response(
                "Not ready: the write-ahead log's backlog is full, or the store's writer is \
                 stopped at a record it cannot read.",
                schema_ref("Readiness"),
            ),
        },
    })
}

fn prometheus() -> Value {
    json!({
        "tags": ["operations"],
        "operationId": "prometheusMetrics",
        "summary": "Vigil's own metrics, OpenMetrics text format",
        "description": "Ingested and rejected items and acknowledgement latency, WAL figures, \
            store writes and health, HTTP requests and their latency by route, alerting, \
            process figures; in the OpenMetrics 1.0 text format, which Prometheus scrapes.",
        "security": public(),
        "responses": {
            "200": {
                "description": "OpenMetrics text exposition.",
                "content": {"application/openmetrics-text": {"schema": {"type": "string"}}},
            },
        },
    })
}

fn otlp_export(operation_id: &str, summary: &str, description: &str) -> Value {
    json!({
        "tags": ["ingest"],
        "operationId": operation_id,
        "summary": summary,
        "description": format!(
            "{description} The body is an OTLP `ExportTraceServiceRequest`, protobuf or JSON, \
             optionally gzip-compressed; the answer uses the request's encoding. Invalid spans \
             are reported in `partialSuccess` (`rejectedSpans`, `errorMessage`) while the valid \
             ones of the same request are kept. Besides a bearer key, Basic authentication with \
             `base64(<key id>:<secret>)` is accepted, for SDKs that can send nothing else."
        ),
        "security": [
            {"bearerAuth": [Role::Ingest.as_str()]},
            {"basicAuth": [Role::Ingest.as_str()]},
        ],
        "parameters": [{
            "name": "Content-Encoding",
            "in": "header",
            "required": false,
            "description": "`gzip` for a compressed body; the decompressed size counts against \
                the body size limit.",
            "schema": {"type": "string", "enum": ["gzip", "identity"]},
        }],
        "requestBody": {
            "required": true,
            "description": "OTLP `ExportTraceServiceRequest`, as protobuf \
                (`application/x-protobuf`; `application/protobuf` is accepted too) or as \
                OTLP/JSON.",
            "content": {
                "application/x-protobuf": {},
                "application/json": {
                    "schema": schema_ref("OtlpExportRequest"),
                    "example": otlp_example(),
                },
            },
        },
        "responses": {
            "200": {
                "description": "The request was made durable. Spans that were invalid are \
                    counted in `partialSuccess`; the others are kept.",
                "content": {
                    "application/x-protobuf": {},
                    "application/json": {"schema": schema_ref("OtlpExportResponse")},
                },
            },
            "400": response_ref("BadRequest"),
            "401": response_ref("Unauthorized"),
            "403": response_ref("Forbidden"),
            "413": response_ref("PayloadTooLarge"),
            "415": response_ref("UnsupportedMediaType"),
            "429": response_ref("TooManyRequests"),
            "503": response_ref("Unavailable"),
        },
    })
}

fn otlp_example() -> Value {
    let attribute = |key: &str, value: &str| json!({"key": key, "value": {"stringValue": value}});
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                attribute("service.name", "support-bot"),
                attribute("deployment.environment.name", "production"),
            ]},
            "scopeSpans": [{
                "scope": {"name": "example"},
                "spans": [
                    {
                        "traceId": EXAMPLE_TRACE_ID,
                        "spanId": "b7ad6b7169203331",
                        "name": "invoke_agent support-bot",
                        "kind": 1,
                        "startTimeUnixNano": "1795428000000000000",
                        "endTimeUnixNano": "1795428002500000000",
                        "attributes": [
                            attribute("gen_ai.operation.name", "invoke_agent"),
                            attribute("gen_ai.agent.name", "support-bot"),
                            attribute("session.id", "session-42"),
                        ],
                        "status": {"code": 1},
                    },
                    {
                        "traceId": EXAMPLE_TRACE_ID,
                        "spanId": "00f067aa0ba902b7",
                        "parentSpanId": "b7ad6b7169203331",
                        "name": "chat gpt-4o",
                        "kind": 3,
                        "startTimeUnixNano": "1795428000100000000",
                        "endTimeUnixNano": "1795428002000000000",
                        "attributes": [
                            attribute("gen_ai.operation.name", "chat"),
                            attribute("gen_ai.request.model", "gpt-4o"),
                            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "812"}},
                            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "96"}},
                        ],
                    },
                ],
            }],
        }],
    })
}

fn projects() -> Value {
    json!({
        "tags": ["ingest"],
        "operationId": "listProjects",
        "summary": "The key's project (Langfuse SDK credential check)",
        "description": "What the Langfuse SDKs call to check their credentials: the project the \
            key belongs to. Any valid key, whatever its roles; Basic authentication is accepted \
            as on the OTLP paths.",
        "security": [{"bearerAuth": []}, {"basicAuth": []}],
        "responses": {
            "200": json_response("The key's project.", schema_ref("ProjectList")),
            "401": response_ref("Unauthorized"),
        },
    })
}

fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": schema,
    })
}

fn list_runs() -> Value {
    let text = json!({"type": "string"});
    let parameters = vec![
        query_parameter(
            "from",
            "Runs that started at or after this instant (RFC 3339).",
            json!({"type": "string", "format": "date-time"}),
        ),
        query_parameter(
            "to",
            "Runs that started strictly before this instant (RFC 3339); not before `from`.",
            json!({"type": "string", "format": "date-time"}),
        ),
        query_parameter("session_id", "Runs of this session.", text.clone()),
        query_parameter(
            "user_hash",
            "Runs of this user (the hash, as runs carry it).",
            text.clone(),
        ),
        query_parameter("agent", "Runs of this agent (its name).", text.clone()),
        query_parameter("task_type", "Runs of this task type.", text.clone()),
        query_parameter(
            "outcome",
            "Runs that ended this way (any case).",
            schema_ref("Outcome"),
        ),
        query_parameter(
            "model",
            "Runs with at least one span of this model.",
            text.clone(),
        ),
        query_parameter(
            "prompt_version",
            "Runs with at least one span of this prompt version.",
            text.clone(),
        ),
        query_parameter("environment", "Runs of this environment.", text.clone()),
        query_parameter(
            "limit",
            &format!("Page size; larger values are served {MAX_LIMIT}."),
            json!({"type": "integer", "minimum": 1, "default": DEFAULT_LIMIT}),
        ),
        query_parameter(
            "cursor",
            "The `next_cursor` of the previous page, to get the next one.",
            text,
        ),
    ];
    json!({
        "tags": ["runs"],
        "operationId": "listRuns",
        "summary": "List runs",
        "description": "Runs matching every filter given (exact, case-sensitive text but for \
            `outcome`), newest first (by start time, then trace id), a page at a time. An \
            unknown query parameter is refused.",
        "security": bearer(Role::Read),
        "parameters": parameters,
        "responses": {
            "200": json_response("A page of runs.", schema_ref("RunPage")),
            "400": response_ref("BadRequest"),
            "401": response_ref("Unauthorized"),
            "403": response_ref("Forbidden"),
            "500": response_ref("Internal"),
            "503": response_ref("Unavailable"),
        },
    })
}

fn get_run() -> Value {
    json!({
        "tags": ["runs"],
        "operationId": "getRun",
        "summary": "One run with its spans and scores",
        "security": bearer(Role::Read),
        "parameters": [{"$ref": "#/components/parameters/trace_id"}],
        "responses": {
            "200": json_response(
                "The run (null when only spans arrived so far), its spans in tree order \
                 (depth-first, siblings by start time), its scores by time.",
                schema_ref("RunDetail"),
            ),
            "400": response_ref("BadRequest"),
            "401": response_ref("Unauthorized"),
            "403": response_ref("Forbidden"),
            "404": response_ref("NotFound"),
            "500": response_ref("Internal"),
            "503": response_ref("Unavailable"),
        },
    })
}

fn get_session() -> Value {
    json!({
        "tags": ["runs"],
        "operationId": "getSession",
        "summary": "A session's runs",
        "security": bearer(Role::Read),
        "parameters": [{"$ref": "#/components/parameters/session_id"}],
        "responses": {
            "200": json_response(
                "The session's runs in time order (start time, then trace id).",
                schema_ref("Session"),
            ),
            "401": response_ref("Unauthorized"),
            "403": response_ref("Forbidden"),
            "404": response_ref("NotFound"),
            "500": response_ref("Internal"),
            "503": response_ref("Unavailable"),
        },
    })
}

fn create_score() -> Value {
    json!({
        "tags": ["ingest"],
        "operationId": "createScore",
        "summary": "Record a score or user feedback",
        "description": "Goes through the same ingest pipeline as the native API: the score is \
            durable when this answers.",
        "security": bearer(Role::Ingest),
        "requestBody": {
            "required": true,
            "content": {"application/json": {
                "schema": schema_ref("ScoreInput"),
                "example": {
                    "trace_id": EXAMPLE_TRACE_ID,
                    "name": "user_feedback",
                    "bool_value": true,
                    "comment": "solved my problem",
                },
            }},
        },
        "responses": {
            "200": json_response("The score was accepted.", schema_ref("ScoreAccepted")),
            "400": response_ref("BadRequest"),
            "401": response_ref("Unauthorized"),
            "403": response_ref("Forbidden"),
            "429": response_ref("TooManyRequests"),
            "503": response_ref("Unavailable"),
        },
    })
}

fn query_metrics() -> Value {
    json!({
        "tags": ["metrics"],
        "operationId": "queryMetrics",
        "summary": "Metrics over runs, model calls and tool calls",
        "description": "The request is checked before any store is asked; every refusal is a 400 \
            naming the request field and saying why (an unknown name, a grouping a metric cannot \
            honour, a range too long, too many buckets).",
        "security": bearer(Role::Read),
        "requestBody": {
            "required": true,
            "content": {"application/json": {
                "schema": schema_ref("MetricQuery"),
                "example": {
                    "from": "2026-11-23T00:00:00Z",
                    "to": "2026-11-24T00:00:00Z",
                    "metrics": ["runs", "completion_rate", "run_latency_p99_ms", "cost_usd"],
                    "group_by": ["agent"],
                    "filters": {"environment": ["production"]},
                    "step": "1h",
                },
            }},
        },
        "responses": {
            "200": {
                "description": "One row per group (and bucket).",
                "content": {"application/json": {
                    "schema": schema_ref("MetricAnswer"),
                    "example": {"rows": [{
                        "agent": "support-bot",
                        "bucket": "2026-11-23T10:00:00Z",
                        "runs": 120,
                        "completion_rate": 0.9167,
                        "run_latency_p99_ms": 20512.5,
                        "cost_usd": 3.41,
                        "unpriced_model_calls": 0,
                    }]},
                }},
            },
            "400": response_ref("BadRequest"),
            "401": response_ref("Unauthorized"),
            "403": response_ref("Forbidden"),
            "500": response_ref("Internal"),
            "503": response_ref("Unavailable"),
        },
    })
}

fn openapi() -> Value {
    json!({
        "tags": ["operations"],
        "operationId": "openapi",
        "summary": "This document",
        "security": public(),
        "responses": {
            "200": json_response("The OpenAPI 3.1 document.", json!({"type": "object"})),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Components
// ---------------------------------------------------------------------------------------------

fn security_schemes() -> Value {
    json!({
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key, `vk_<id>_<secret>`, shown once when it is created. A key \
                belongs to one project; every answer is about that project only. The roles an \
                operation needs are listed in its security requirement.",
        },
        "basicAuth": {
            "type": "http",
            "scheme": "basic",
            "description": "`base64(<key id>:<secret>)`, where the key id is `vk_<id>`: for OTLP \
                SDKs that can only send Basic authentication.",
        },
    })
}

fn parameters() -> Value {
    let mut parameters = json!({
        "trace_id": {
            "name": "trace_id",
            "in": "path",
            "required": true,
            "description": "The run's trace id: 32 hexadecimal characters (any case).",
            "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
            "example": EXAMPLE_TRACE_ID,
        },
        "session_id": {
            "name": "session_id",
            "in": "path",
            "required": true,
            "description": "The session id, as the runs carry it.",
            "schema": {"type": "string"},
            "example": "session-42",
        },
    });
    for (name, parameter) in alerting::parameters()
        .into_iter()
        .chain(access::parameters())
        .chain(compliance::parameters())
    {
        parameters[name] = parameter;
    }
    parameters
}

fn error_responses() -> Value {
    let error = |description: &str| json_response(description, schema_ref("Error"));
    let retryable = |description: &str| {
        json!({
            "description": description,
            "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
            "content": {"application/json": {"schema": schema_ref("Error")}},
        })
    };
    let mut responses = json!({
        "BadRequest": error(
            "`invalid_argument`: the request is wrong; `field` names the part at fault and \
             `message` says why.",
        ),
        "Unauthorized": error("`unauthenticated`: no API key, or not a valid one."),
        "Forbidden": error("`permission_denied`: the key lacks the role this operation needs."),
        "NotFound": error("`not_found`: nothing of this project has this id."),
        "Conflict": error(
            "`conflict`: the change clashes with the server's configuration (a rule of the \
             rules file cannot be changed through the API).",
        ),
        "PayloadTooLarge": error(
            "`payload_too_large`: the body, after decompression, exceeds the server's limit.",
        ),
        "UnsupportedMediaType": error(
            "`unsupported_media_type`: a content type or content encoding the endpoint does not \
             take.",
        ),
        "TooManyRequests": retryable(
            "`resource_exhausted`: the write-ahead log's backlog is full; retry after \
             `Retry-After` seconds.",
        ),
        "Unavailable": retryable(
            "`unavailable`: the collector cannot make data durable, or the store cannot answer, \
             right now; retry after `Retry-After` seconds.",
        ),
        "Internal": error(
            "`internal`: a failure on Vigil's side; the server log has the details.",
        ),
    });
    for (name, response) in access::responses() {
        responses[name] = response;
    }
    responses
}

fn schemas() -> Value {
    let mut schemas = Map::new();
    let mut add = |name: &str, schema: Value| {
        schemas.insert(name.to_string(), schema);
    };
    add("Error", error_schema());
    add("Health", health_schema());
    add("Readiness", readiness_schema());
    add("ProjectList", project_list_schema());
    add("OtlpExportRequest", otlp_request_schema());
    add("OtlpExportResponse", otlp_response_schema());
    add(
        "Outcome",
        json!({
            "type": "string",
            "description": "How a run ended.",
            "enum": Outcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        }),
    );
    add(
        "SpanKind",
        json!({
            "type": "string",
            "enum": SpanKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        }),
    );
    let span_statuses =
        [SpanStatus::Unset, SpanStatus::Ok, SpanStatus::Error].map(SpanStatus::as_str);
    add(
        "SpanStatus",
        json!({
            "type": "string",
            "description": "The span's status, as OpenTelemetry defines it.",
            "enum": span_statuses,
        }),
    );
    add("Run", run_schema());
    add("Span", span_schema());
    add("Score", score_schema());
    add(
        "RunDetail",
        object(vec![
            (
                "run",
                json!({"oneOf": [schema_ref("Run"), {"type": "null"}]}),
            ),
            (
                "spans",
                json!({"type": "array", "items": schema_ref("Span")}),
            ),
            (
                "scores",
                json!({"type": "array", "items": schema_ref("Score")}),
            ),
        ]),
    );
    add(
        "RunPage",
        object(vec![
            (
                "runs",
                json!({
                    "type": "array",
                    "items": schema_ref("Run"),
                    "description": "Newest first.",
                }),
            ),
            (
                "next_cursor",
                json!({
                    "type": ["string", "null"],
                    "description": "Pass it as `cursor` for the next page; null on the last page.",
                }),
            ),
        ]),
    );
    add(
        "Session",
        object(vec![
            ("session_id", json!({"type": "string"})),
            ("runs", json!({"type": "array", "items": schema_ref("Run")})),
        ]),
    );
    add("ScoreInput", score_input_schema());
    add(
        "ScoreAccepted",
        object(vec![(
            "accepted",
            json!({"type": "integer", "minimum": 0, "description": "Scores accepted (1)."}),
        )]),
    );
    add(
        "MetricName",
        json!({
            "type": "string",
            "description": "A metric (definitions in docs/design.md#metric-definitions).",
            "enum": Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>(),
        }),
    );
    add(
        "FieldName",
        json!({
            "type": "string",
            "description": field_names_description(),
            "enum": Field::ALL.iter().map(|f| f.name()).collect::<Vec<_>>(),
        }),
    );
    add("MetricQuery", metric_query_schema());
    add(
        "MetricAnswer",
        object(vec![(
            "rows",
            json!({
                "type": "array",
                "items": schema_ref("MetricRow"),
                "description": "By group, then bucket.",
            }),
        )]),
    );
    add("MetricRow", metric_row_schema());
    for (name, schema) in alerting::schemas()
        .into_iter()
        .chain(access::schemas())
        .chain(compliance::schemas())
    {
        add(name, schema);
    }
    Value::Object(schemas)
}

/// An object schema whose properties are all always present.
fn object(properties: Vec<(&str, Value)>) -> Value {
    let required: Vec<&str> = properties.iter().map(|(name, _)| *name).collect();
    let properties: Map<String, Value> = properties
        .into_iter()
        .map(|(name, schema)| (name.to_string(), schema))
        .collect();
    json!({"type": "object", "required": required, "properties": properties})
}

fn text(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn uint() -> Value {
    json!({"type": "integer", "minimum": 0})
}

fn count(description: &str) -> Value {
    json!({"type": "integer", "minimum": 0, "description": description})
}

fn nanos(description: &str) -> Value {
    json!({"type": "integer", "format": "int64", "description": description})
}

fn time(description: &str) -> Value {
    json!({"type": "string", "format": "date-time", "description": description})
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "field"],
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "Machine-readable; the same for the same kind of failure.",
                        "enum": [
                            "invalid_argument", "unauthenticated", "permission_denied",
                            "not_found", "conflict", "payload_too_large", "unsupported_media_type",
                            "resource_exhausted", "rate_limited", "unavailable", "internal",
                        ],
                    },
                    "message": text(
                        "For people: what was wrong, and the limit when one was passed.",
                    ),
                    "field": {
                        "type": ["string", "null"],
                        "description": "The request field at fault (`trace_id`, `metrics`, \
                            `score.name`, `body`…), when one is.",
                    },
                },
            },
        },
        "examples": [{"error": {
            "code": "invalid_argument",
            "message": "metrics: unknown metric \"p99\"; one of runs, completed_runs, …",
            "field": "metrics",
        }}],
    })
}

fn health_schema() -> Value {
    object(vec![("status", json!({"type": "string", "const": "ok"}))])
}

fn readiness_schema() -> Value {
    object(vec![
        (
            "status",
            json!({"type": "string", "enum": ["ready", "degraded", "not_ready"]}),
        ),
        (
            "wal",
            json!({
                "type": "object",
                "required": ["accepting", "backlog_bytes"],
                "properties": {
                    "accepting": {
                        "type": "boolean",
                        "description": "Whether appends are accepted (the backlog is not full).",
                    },
                    "backlog_bytes": count("Bytes in the WAL not yet confirmed by the store."),
                    "unreadable_record": {
                        "type": "object",
                        "description": "Present while the store's writer is stopped at a WAL \
                            record it cannot read (the status is then `not_ready`).",
                        "required": ["lsn", "error", "action"],
                        "properties": {
                            "lsn": count("Where the record starts in the log."),
                            "error": {"type": "string"},
                            "action": {"type": "string", "description": "What the operator can do."},
                        },
                    },
                },
            }),
        ),
        (
            "store",
            json!({
                "type": "object",
                "required": ["ok"],
                "properties": {
                    "ok": {
                        "type": "boolean",
                        "description": "Whether the store answers a health query now.",
                    },
                    "error": text("Why not, when it does not."),
                },
            }),
        ),
    ])
}

fn project_list_schema() -> Value {
    object(vec![(
        "data",
        json!({
            "type": "array",
            "items": object(vec![
                ("id", text("The key's project id.")),
                ("name", text("The same as `id`.")),
            ]),
        }),
    )])
}

fn otlp_request_schema() -> Value {
    json!({
        "type": "object",
        "description": "An OTLP/JSON `ExportTraceServiceRequest`: ids as hexadecimal strings, \
            64-bit integers as strings or numbers, enums as integers.",
        "properties": {"resourceSpans": {"type": "array", "items": {"type": "object"}}},
        "externalDocs": {
            "description": "OTLP/HTTP and its JSON encoding",
            "url": "https://opentelemetry.io/docs/specs/otlp/#otlphttp",
        },
    })
}

fn otlp_response_schema() -> Value {
    object(vec![(
        "partialSuccess",
        json!({
            "description": "Null when every span was accepted.",
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {
                        "rejectedSpans": {"type": "integer", "format": "int64", "minimum": 0},
                        "errorMessage": text("The first rejections: span index, field and reason."),
                    },
                },
            ],
        }),
    )])
}

fn redaction_note() -> String {
    format!(
        "Replaced by `{REDACTED}` when the run is classified {} and the key lacks `{}`.",
        SENSITIVE
            .iter()
            .map(|label| format!("`{label}`"))
            .collect::<Vec<_>>()
            .join(", "),
        Role::Audit.as_str()
    )
}

fn run_schema() -> Value {
    let redacted = redaction_note();
    let mut schema = object(vec![
        ("project_id", string()),
        ("trace_id", text("32 lowercase hexadecimal characters.")),
        ("session_id", text("Empty when the run has no session.")),
        (
            "user_hash",
            text("HMAC-SHA256 of the user id under the server's key, hex; never the raw id."),
        ),
        ("task_type", string()),
        ("agent_name", string()),
        ("agent_version", string()),
        ("environment", string()),
        ("release", string()),
        ("start_time_ns", nanos("Start, ns since the Unix epoch.")),
        ("end_time_ns", nanos("End, ns since the Unix epoch.")),
        ("outcome", schema_ref("Outcome")),
        ("error_message", string()),
        ("input", text(&redacted)),
        ("output", text(&redacted)),
        ("tags", json!({"type": "array", "items": string()})),
        (
            "classification",
            json!({
                "type": "array",
                "items": string(),
                "description": "Data classification labels.",
            }),
        ),
        ("retention", string()),
        ("audit_ref", string()),
        (
            "synthesized",
            json!({
                "type": "boolean",
                "description": "True when no root span arrived and the run was built from its \
                    children.",
            }),
        ),
        (
            "ingested_at_ns",
            nanos("When the collector accepted this version of the run."),
        ),
        ("start_time", time("`start_time_ns`, RFC 3339.")),
        ("end_time", time("`end_time_ns`, RFC 3339.")),
        ("duration_ms", json!({"type": "number"})),
    ]);
    schema["description"] = json!("One agent run (one trace). Absent text is the empty string.");
    schema
}

fn span_schema() -> Value {
    let mut schema = object(vec![
        ("project_id", string()),
        ("trace_id", string()),
        ("span_id", text("16 lowercase hexadecimal characters.")),
        ("parent_span_id", text("Empty for the root span.")),
        ("kind", schema_ref("SpanKind")),
        ("name", string()),
        ("start_time_ns", nanos("Start, ns since the Unix epoch.")),
        ("end_time_ns", nanos("End, ns since the Unix epoch.")),
        ("status", schema_ref("SpanStatus")),
        ("error_type", string()),
        ("status_message", string()),
        ("input", text(&redaction_note())),
        ("output", text(&redaction_note())),
        ("attr_keys", emptied_attribute_list()),
        ("attr_values", emptied_attribute_list()),
        ("provider", string()),
        ("model", string()),
        ("model_version", string()),
        ("prompt_id", string()),
        ("prompt_version", string()),
        ("input_tokens", uint()),
        ("output_tokens", uint()),
        ("cached_input_tokens", uint()),
        ("cache_write_tokens", uint()),
        ("reasoning_tokens", uint()),
        (
            "cost_nanos",
            json!({
                "type": ["integer", "null"],
                "format": "int64",
                "description": "Cost in nano-dollars; null when the model has no price.",
            }),
        ),
        (
            "cost_source",
            text(
                "`sdk` (reported by the client), `catalog` (computed at ingest) or empty \
                 (unpriced).",
            ),
        ),
        ("tool_name", string()),
        ("tool_version", string()),
        ("tool_call_id", string()),
        (
            "tool_args_hash",
            text("Hash of the tool arguments, for loop detection; empty when there were none."),
        ),
        ("retry_count", uint()),
        (
            "ingested_at_ns",
            nanos("When the collector accepted this version of the span."),
        ),
        ("start_time", time("`start_time_ns`, RFC 3339.")),
        ("end_time", time("`end_time_ns`, RFC 3339.")),
        ("duration_ms", json!({"type": "number"})),
        (
            "cost_usd",
            json!({"type": ["number", "null"], "description": "`cost_nanos` in USD."}),
        ),
        (
            "attributes",
            json!({
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": format!(
                    "Attributes not mapped to a field, values as text. {}",
                    redaction_note()
                ),
            }),
        ),
    ]);
    schema["description"] =
        json!("One step of a run: a model call, a tool call, a retrieval, an agent step.");
    schema
}

/// `attr_keys` / `attr_values`: the view moves them into `attributes`.
fn emptied_attribute_list() -> Value {
    json!({
        "type": "array",
        "items": string(),
        "maxItems": 0,
        "description": "Always empty here: see `attributes`.",
    })
}

fn score_schema() -> Value {
    object(vec![
        ("project_id", string()),
        ("trace_id", string()),
        ("score_id", string()),
        (
            "span_id",
            text("Empty when the score is about the whole run."),
        ),
        ("name", string()),
        (
            "value",
            json!({
                "type": ["number", "null"],
                "description": "Numeric value; booleans are 1.0 / 0.0 here as well.",
            }),
        ),
        ("bool_value", json!({"type": ["boolean", "null"]})),
        ("string_value", string()),
        ("source", string()),
        ("comment", string()),
        (
            "time_ns",
            nanos("When the score was given, ns since the Unix epoch."),
        ),
        (
            "ingested_at_ns",
            nanos("When the collector accepted this version of the score."),
        ),
        ("time", time("`time_ns`, RFC 3339.")),
    ])
}

fn score_input_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["trace_id", "name"],
        "description": "Exactly one of `value`, `bool_value`, `string_value`.",
        "properties": {
            "id": text("The score's id; when absent, derived from trace_id, span_id, name and \
                source, so that a retried request writes the same score."),
            "trace_id": {
                "type": "string",
                "pattern": "^[0-9a-fA-F]{32}$",
                "description": "The run scored.",
            },
            "span_id": {
                "type": "string",
                "pattern": "^[0-9a-fA-F]{16}$",
                "description": "The span scored, when not the whole run.",
            },
            "name": text("What is scored, e.g. `user_feedback`, `faithfulness`."),
            "value": {"type": "number"},
            "bool_value": {"type": "boolean"},
            "string_value": {"type": "string", "minLength": 1},
            "source": {
                "type": "string",
                "default": "api",
                "description": "Who scored: `api`, `user`, an evaluator's name.",
            },
            "comment": {"type": "string"},
        },
        "oneOf": [
            {"required": ["value"]},
            {"required": ["bool_value"]},
            {"required": ["string_value"]},
        ],
    })
}

/// Which fields belong to model calls and tool calls, from the catalog.
fn field_names_description() -> String {
    let of = |subject: Subject| {
        Field::ALL
            .iter()
            .filter(|f| f.subject() == subject)
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "A field metrics are grouped and filtered by. {} are properties of a model call, {} of \
         a tool call, the others of the run. A tool-call metric cannot be grouped or filtered by \
         a model-call field, nor a model-call metric by a tool-call field; grouping by a \
         model-call field and a tool-call field together is refused for every metric.",
        of(Subject::ModelCall),
        of(Subject::ToolCall),
    )
}

/// Field → accepted values: the filters of metric queries and compliance investigations.
fn filters_schema() -> Value {
    let outcomes: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    let mut filter_properties = Map::new();
    filter_properties.insert(
        Field::Outcome.name().to_string(),
        json!({
            "type": "array",
            "items": {"type": "string", "enum": outcomes},
            "minItems": 1,
            "maxItems": MAX_FILTER_VALUES,
        }),
    );
    json!({
        "type": "object",
        "propertyNames": schema_ref("FieldName"),
        "properties": filter_properties,
        "additionalProperties": {
            "type": "array",
            "items": {"type": "string", "maxLength": MAX_FILTER_VALUE_BYTES},
            "minItems": 1,
            "maxItems": MAX_FILTER_VALUES,
        },
        "default": {},
        "description": format!(
            "Field → accepted values (any of them), 1 to {MAX_FILTER_VALUES} per field, each at \
             most {MAX_FILTER_VALUE_BYTES} bytes."
        ),
    })
}

fn metric_query_schema() -> Value {
    let costs = [Metric::CostUsd, Metric::CostPerRunUsd]
        .iter()
        .map(|m| format!("`{m}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["from", "to", "metrics"],
        "properties": {
            "from": time("Runs and calls that *started* in [`from`, `to`) are counted."),
            "to": time(&format!(
                "After `from`; the range covers at most {MAX_RANGE_DAYS} days."
            )),
            "metrics": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_METRICS,
                "items": schema_ref("MetricName"),
                "description": format!(
                    "Answered in the order asked, each once. Asking for {costs} adds `{}`: a \
                     cost is never read without the count of calls it could not price.",
                    Metric::UnpricedModelCalls
                ),
            },
            "group_by": {
                "type": "array",
                "maxItems": MAX_GROUP_BY,
                "uniqueItems": true,
                "items": schema_ref("FieldName"),
                "default": [],
                "description": "One row per combination of values, keys in this order.",
            },
            "filters": filters_schema(),
            "step": {
                "type": "string",
                "pattern": "^[0-9]+(ns|us|ms|s|m|h|d|w)$",
                "description": format!(
                    "Cut the range into buckets of this length (at least 1s, e.g. `1m`, `1h`, \
                     `1d`), aligned to the Unix epoch; at most {MAX_BUCKETS} buckets."
                ),
            },
        },
    })
}

fn metric_row_schema() -> Value {
    let mut properties = Map::new();
    for field in Field::ALL {
        properties.insert(
            field.name().to_string(),
            json!({
                "type": "string",
                "description": format!(
                    "The group's `{field}` (with `group_by` only); `\"\"` for the runs without one."
                ),
            }),
        );
    }
    properties.insert(
        "bucket".to_string(),
        time("Start of the bucket (with `step` only)."),
    );
    for metric in Metric::ALL {
        let unit = match metric.percentile() {
            Some(p) => format!("p{p} latency of {}, in ms", metric.subject().describe()),
            None => format!("over {}", metric.subject().describe()),
        };
        properties.insert(
            metric.name().to_string(),
            json!({
                "type": ["number", "null"],
                "description": format!(
                    "`{metric}`, {unit}; null when there was nothing to measure (a ratio over \
                     nothing, a percentile of no values, a cost of unpriced calls only)."
                ),
            }),
        );
    }
    json!({
        "type": "object",
        "description": "One group (and bucket): the `group_by` fields, `bucket` with `step`, then \
            every metric asked for. Counts and sums are integers; rates, means, milliseconds and \
            USD are numbers.",
        "additionalProperties": false,
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, path::PathBuf, sync::Arc};

    use axum::{
        body::Body,
        http::{Method, Request, StatusCode, header},
    };
    use tower::ServiceExt;
    use vigil_access::{
        audit::AuditLog,
        keys::{KeyStore, Principal},
    };
    use vigil_alerts::{AlertEngine, AlertingSettings};
    use vigil_collector::{
        assemble::{AssemblerConfig, RunAssembler},
        enrich::{Enricher, UserHasher},
        error::IngestError,
        pipeline::IngestPipeline,
        telemetry::IngestTelemetry,
        wal::{Wal, WalConfig, WalError},
    };
    use vigil_query::{EmbeddedStore, QueryError};
    use vigil_schemas::{
        RunRow, ScoreRow, SpanRow,
        limits::{FieldError, Limits},
        prices::PriceCatalog,
        time::now_ns,
    };

    use super::*;
    use crate::{
        ApiError, AppState, RateLimiter, app,
        views::{run_view, score_view, span_view},
    };

    const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

    /// `(path, method)` of every operation in the document.
    fn documented_operations() -> BTreeSet<(String, String)> {
        let mut operations = BTreeSet::new();
        for (path, item) in DOCUMENT["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
                operations.insert((path.clone(), method.clone()));
            }
        }
        operations
    }

    /// `(path, method)` of every `.route("…", method(…)…)` in lib.rs.
    fn routes_of_app() -> BTreeSet<(String, String)> {
        let source = include_str!("lib.rs");
        assert!(
            !source.contains(".nest(") && !source.contains(".merge("),
            "app() nests or merges routers: teach this test to read them"
        );
        let mut routes = BTreeSet::new();
        let mut rest = source;
        while let Some(start) = rest.find(".route(") {
            rest = &rest[start + ".route(".len()..];
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap();
            let call = &rest[..end];
            let path = call.split('"').nth(1).unwrap();
            let mut methods = 0;
            for method in METHODS {
                for (i, _) in call.match_indices(&format!("{method}(")) {
                    let before = call[..i].chars().next_back();
                    if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        routes.insert((path.to_string(), method.to_string()));
                        methods += 1;
                    }
                }
            }
            assert!(methods > 0, "no method found in .route({call})");
            rest = &rest[end..];
        }
        routes
    }

    fn resolve(value: &Value) -> &Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => DOCUMENT
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{reference} does not resolve")),
            None => value,
        }
    }

    fn enum_names(schema: &Value) -> BTreeSet<&str> {
        resolve(schema)["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_document_is_openapi_3_1_json_whose_references_resolve() {
        let text = serde_json::to_string(&*DOCUMENT).unwrap();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["openapi"], "3.1.0");
        let paths: BTreeSet<&str> = parsed["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected = BTreeSet::from([
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/traces",
            "/api/public/otel/v1/traces",
            "/api/public/projects",
            "/api/v1/runs",
            "/api/v1/runs/{trace_id}",
            "/api/v1/sessions/{session_id}",
            "/api/v1/scores",
            "/api/v1/metrics/query",
            "/api/v1/alert-rules",
            "/api/v1/alert-rules/{name}",
            "/api/v1/alerts",
            "/api/v1/silences",
            "/api/v1/silences/{id}",
            "/api/v1/keys",
            "/api/v1/keys/{id}",
            "/api/v1/audit/log",
            "/api/v1/audit/affected",
            "/api/v1/audit/user-lookup",
            "/api/v1/users/{user_hash}",
            "/api/v1/openapi.json",
        ]);
        assert_eq!(paths, expected);

        let mut operation_ids = BTreeSet::new();
        for (path, method) in documented_operations() {
            let operation = &parsed["paths"][&path][&method];
            let id = operation["operationId"].as_str().unwrap();
            assert!(operation_ids.insert(id.to_string()), "{id} is used twice");
            assert!(
                operation["security"].is_array(),
                "{method} {path}: no security"
            );
            assert!(
                !operation["responses"].as_object().unwrap().is_empty(),
                "{method} {path}: no responses"
            );
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let parameter = resolve(parameter);
                if parameter["in"] == "path" {
                    let name = parameter["name"].as_str().unwrap();
                    assert!(path.contains(&format!("{{{name}}}")), "{path}: {name}");
                }
            }
        }

        fn check_refs(value: &Value, at: &str) {
            match value {
                Value::Object(map) => {
                    if let Some(reference) = map.get("$ref") {
                        let reference = reference.as_str().unwrap();
                        assert!(
                            DOCUMENT
                                .pointer(reference.trim_start_matches('#'))
                                .is_some(),
                            "{at}: {reference} does not resolve"
                        );
                    }
                    for (key, child) in map {
                        check_refs(child, &format!("{at}/{key}"));
                    }
                }
                Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        check_refs(child, &format!("{at}/{i}"));
                    }
                }
                _ => {}
            }
        }
        check_refs(&parsed, "#");
    }

    #[test]
    fn every_route_of_app_is_documented() {
        let routes = routes_of_app();
        assert!(routes.len() >= 12, "{routes:?}");
        let documented = documented_operations();
        let undocumented: Vec<_> = routes.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "not in openapi.rs: {undocumented:?}"
        );
        let not_routed: Vec<_> = documented.difference(&routes).collect();
        assert!(
            not_routed.is_empty(),
            "documented but not routed: {not_routed:?}"
        );
    }

    #[test]
    fn every_metric_and_field_name_is_in_the_metric_query_schema() {
        let schemas = &DOCUMENT["components"]["schemas"];
        let query = &schemas["MetricQuery"]["properties"];
        let metric_names: BTreeSet<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        let field_names: BTreeSet<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(enum_names(&query["metrics"]["items"]), metric_names);
        assert_eq!(enum_names(&query["group_by"]["items"]), field_names);
        assert_eq!(enum_names(&query["filters"]["propertyNames"]), field_names);

        let row: BTreeSet<&str> = schemas["MetricRow"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: BTreeSet<&str> = metric_names.union(&field_names).copied().collect();
        expected.insert("bucket");
        assert_eq!(row, expected);
        // No metric shares a name with a field or with `bucket`: a row could not tell them apart.
        assert_eq!(row.len(), Metric::ALL.len() + Field::ALL.len() + 1);
        assert_eq!(
            query["group_by"]["maxItems"],
            json!(vigil_query::metrics::request::MAX_GROUP_BY)
        );
    }

    #[test]
    fn the_views_have_exactly_the_documented_properties() {
        let principal = Principal {
            key_id: "vk_test".into(),
            project_id: "p".into(),
            roles: BTreeSet::from([Role::Read]),
        };
        let views = [
            (
                "Run",
                serde_json::to_value(run_view(RunRow::default(), &principal)).unwrap(),
            ),
            (
                "Span",
                serde_json::to_value(span_view(SpanRow::default(), false)).unwrap(),
            ),
            (
                "Score",
                serde_json::to_value(score_view(ScoreRow::default())).unwrap(),
            ),
            (
                "Silence",
                vigil_alerts::silence::Silence {
                    id: "s".into(),
                    project: "p".into(),
                    matchers: Vec::new(),
                    starts_at_ns: 0,
                    ends_at_ns: 1,
                    comment: String::new(),
                    created_by: String::new(),
                    key_id: "vk_test".into(),
                    updated_at_ns: 0,
                }
                .view(0),
            ),
        ];
        for (name, value) in views {
            let schema = &DOCUMENT["components"]["schemas"][name];
            let documented: BTreeSet<&String> =
                schema["properties"].as_object().unwrap().keys().collect();
            let served: BTreeSet<&String> = value.as_object().unwrap().keys().collect();
            assert_eq!(documented, served, "{name}");
            let required: BTreeSet<&str> = schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(
                required.len(),
                served.len(),
                "{name}: every property is always sent"
            );
        }
    }

    #[test]
    fn every_error_code_is_documented() {
        let error = &DOCUMENT["components"]["schemas"]["Error"]["properties"]["error"];
        let documented = enum_names(&error["properties"]["code"]);
        let errors = [
            ApiError::bad_request("f", "m"),
            ApiError::unauthenticated(),
            ApiError::forbidden("read"),
            ApiError::not_found("x"),
            ApiError::unsupported_media("x"),
            ApiError::conflict("x"),
            ApiError::internal("x"),
            ApiError::too_large(1),
            ApiError::from(QueryError::Unavailable("down".into())),
            ApiError::from(QueryError::Store("bad".into())),
            ApiError::from(IngestError::Unauthenticated),
            ApiError::from(IngestError::PermissionDenied("ingest")),
            ApiError::from(IngestError::InvalidRequest(FieldError::new("f", "m"))),
            ApiError::from(IngestError::Backlog(WalError::BacklogFull {
                backlog_bytes: 2,
                limit_bytes: 1,
            })),
            ApiError::from(IngestError::Unavailable(WalError::Closed)),
            ApiError::rate_limited(
                "vk_test",
                crate::rate_limit::Refusal {
                    limit: vigil_access::keys::RateLimit {
                        requests_per_second: 1.0,
                        burst: 1,
                    },
                    retry_after_secs: 1,
                },
            ),
        ];
        for error in errors {
            assert!(documented.contains(error.code), "{}", error.code);
            let responses = &DOCUMENT["components"]["responses"];
            let described = responses.as_object().unwrap().values().any(|r| {
                r["description"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("`{}`", error.code))
            });
            assert!(described, "no error response describes {}", error.code);
            if error.retry_after_secs.is_some() {
                assert!(
                    [
                        StatusCode::TOO_MANY_REQUESTS,
                        StatusCode::SERVICE_UNAVAILABLE
                    ]
                    .contains(&error.status),
                    "{}",
                    error.code
                );
            }
        }
    }

    struct Fixture {
        dir: PathBuf,
        wal: Arc<Wal>,
        state: AppState,
        stop: tokio_util::sync::CancellationToken,
    }

    impl Fixture {
        fn new(name: &str) -> Fixture {
            let dir = std::env::temp_dir()
                .join(format!("vigil-api-openapi-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let wal = Arc::new(Wal::open(WalConfig::new(dir.join("wal"))).unwrap());
            let pipeline = Arc::new(IngestPipeline::new(
                Limits::default(),
                Enricher::new(UserHasher::new(b"test"), PriceCatalog::builtin().unwrap()),
                RunAssembler::new(AssemblerConfig::default()),
                wal.clone(),
                Arc::new(IngestTelemetry::new()),
            ));
            let store: Arc<dyn vigil_query::TraceStore> =
                Arc::new(EmbeddedStore::open(&dir).unwrap());
            let alerts =
                AlertEngine::open(AlertingSettings::default(), &dir, store.clone()).unwrap();
            // A batcher, so that what the examples send reaches the store (an erasure waits
            // for it).
            let sink = Arc::new(
                vigil_collector::sink::EmbeddedSink::open(&dir, Default::default()).unwrap(),
            );
            let batcher = vigil_collector::batcher::Batcher::new(
                wal.clone(),
                sink.clone(),
                Default::default(),
                Arc::new(IngestTelemetry::new()),
            );
            let stop = tokio_util::sync::CancellationToken::new();
            tokio::spawn(batcher.run(stop.clone()));
            let state = AppState {
                pipeline,
                store,
                keys: Arc::new(KeyStore::open(dir.join("keys.json")).unwrap()),
                alerts,
                deleter: sink,
                audit: Arc::new(AuditLog::open(dir.join("audit")).unwrap()),
                rate_limits: Arc::new(RateLimiter::new(None)),
                telemetry: Arc::new(crate::ApiTelemetry::default()),
                registry: Arc::new(prometheus_client::registry::Registry::default()),
            };
            Fixture {
                dir,
                wal,
                state,
                stop,
            }
        }

        fn key(&self, roles: BTreeSet<Role>) -> String {
            self.state.keys.create("p", roles, "test").unwrap().token
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.stop.cancel();
            self.wal.close();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A request for an operation: path parameters and body from the document's examples, with
    /// OTLP times moved to now so that the example is not too old to be accepted.
    fn example_request(
        path: &str,
        method: &str,
        operation: &Value,
        key: Option<&str>,
    ) -> Request<Body> {
        let mut uri = path.to_string();
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let parameter = resolve(parameter);
            if parameter["in"] == "path" {
                let name = parameter["name"].as_str().unwrap();
                let example = parameter["example"].as_str().unwrap();
                uri = uri.replace(&format!("{{{name}}}"), example);
            }
        }
        let mut request = Request::builder()
            .method(Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap())
            .uri(uri);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let example = &operation["requestBody"]["content"]["application/json"]["example"];
        if example.is_null() {
            return request.body(Body::empty()).unwrap();
        }
        let mut body = example.clone();
        let newest = unix_nanos(&body).into_iter().max();
        if let Some(newest) = newest {
            shift_otlp_times(&mut body, now_ns() - 1_000_000_000 - newest);
        }
        request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    /// Every `…UnixNano` time in an OTLP/JSON value.
    fn unix_nanos(value: &Value) -> Vec<i64> {
        match value {
            Value::Object(map) => map
                .iter()
                .flat_map(|(key, child)| match child.as_str().map(str::parse::<i64>) {
                    Some(Ok(ns)) if key.ends_with("UnixNano") => vec![ns],
                    _ => unix_nanos(child),
                })
                .collect(),
            Value::Array(items) => items.iter().flat_map(unix_nanos).collect(),
            _ => Vec::new(),
        }
    }

    fn shift_otlp_times(value: &mut Value, by_ns: i64) {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    match child.as_str().map(str::parse::<i64>) {
                        Some(Ok(ns)) if key.ends_with("UnixNano") => {
                            *child = json!((ns + by_ns).to_string());
                        }
                        _ => shift_otlp_times(child, by_ns),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| shift_otlp_times(v, by_ns)),
            _ => {}
        }
    }

    /// Sends the request; checks the status and content type are documented; returns both and
    /// the body.
    async fn send(
        state: &AppState,
        operation: &Value,
        request: Request<Body>,
    ) -> (StatusCode, Value) {
        let what = format!("{} {}", request.method(), request.uri());
        let response = app(state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let media_type = response.headers().get(header::CONTENT_TYPE).map(|v| {
            v.to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim()
                .to_string()
        });
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let documented = resolve(&operation["responses"][status.as_str()]);
        assert!(
            documented.is_object(),
            "{what}: answered {status}, which is not documented: {}",
            String::from_utf8_lossy(&body)
        );
        if let (Some(content), Some(media_type)) = (documented["content"].as_object(), &media_type)
        {
            assert!(
                content.contains_key(media_type),
                "{what}: {status} as {media_type}, documented {:?}",
                content.keys().collect::<Vec<_>>()
            );
        }
        let json = if media_type.as_deref() == Some("application/json") {
            serde_json::from_slice(&body).unwrap()
        } else {
            Value::Null
        };
        (status, json)
    }

    /// Sends `body` as-is to `uri` with an admin key; the status and the JSON answer.
    async fn raw(
        state: &AppState,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let key = state
            .keys
            .create("p", BTreeSet::from([Role::Admin]), "raw")
            .unwrap()
            .token;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = app(state.clone())
            .oneshot(request.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Bodies of every JSON shape but the expected one are a 400 naming the body, never a
    /// panic; a rule put answers the documented view, under the path's name.
    #[tokio::test]
    async fn a_body_of_the_wrong_shape_is_refused_not_panicked_on() {
        let fixture = Fixture::new("shapes");
        let state = &fixture.state;
        let uri = "/api/v1/alert-rules/p99";
        for body in [
            "[null, null]",
            "null",
            "\"rule\"",
            "7",
            "[\"p99\", \"default\", \"runs\", \"5m\"]",
            "{\"metric\": \"runs\", \"window\": 5}",
            "{\"metric\": ",
        ] {
            let (status, answer) = raw(state, Method::PUT, uri, None, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
            assert_eq!(answer["error"]["field"], "body", "{body}: {answer}");
        }
        let rule = r#"{"metric": "runs", "window": "5m", "op": ">", "threshold": 1}"#;
        let (status, view) = raw(state, Method::PUT, uri, None, rule).await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
        assert_eq!(view["name"], "p99");
        assert_eq!(view["metric"], "runs");
        let document = &*DOCUMENT;
        let required = &document["components"]["schemas"]["AlertRuleView"]["required"];
        for field in required.as_array().unwrap() {
            let field = field.as_str().unwrap();
            assert!(view.get(field).is_some(), "{field} is missing from {view}");
        }
    }

    /// A JSON body is read as JSON without a content type and with curl's form type; a type
    /// that names another format is 415.
    #[tokio::test]
    async fn a_json_body_needs_no_content_type() {
        let fixture = Fixture::new("content-types");
        let state = &fixture.state;
        let query = r#"{"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "metrics": ["runs"]}"#;
        for content_type in [
            None,
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("application/x-www-form-urlencoded"),
            Some("application/merge-patch+json"),
        ] {
            let (status, answer) = raw(
                state,
                Method::POST,
                "/api/v1/metrics/query",
                content_type,
                query,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{content_type:?}: {answer}");
        }
        for content_type in [
            "text/xml",
            "multipart/form-data; boundary=x",
            "application/x-protobuf",
        ] {
            let (status, answer) = raw(
                state,
                Method::POST,
                "/api/v1/metrics/query",
                Some(content_type),
                query,
            )
            .await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "unsupported_media_type");
        }
    }

    #[tokio::test]
    async fn every_documented_operation_is_served_as_documented() {
        let fixture = Fixture::new("operations");
        let state = &fixture.state;
        let non_admin: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| *r != Role::Admin)
            .collect();
        for (path, method) in documented_operations() {
            let operation = &DOCUMENT["paths"][&path][&method];
            let requirements = operation["security"].as_array().unwrap();
            let roles: BTreeSet<Role> = requirements
                .iter()
                .flat_map(|r| r.as_object().unwrap().values())
                .flat_map(|scopes| scopes.as_array().unwrap())
                .map(|role| Role::parse(role.as_str().unwrap()).unwrap())
                .collect();
            let what = format!("{method} {path}");

            // Without a key: served when public, refused 401 otherwise.
            let (status, _) = send(
                state,
                operation,
                example_request(&path, &method, operation, None),
            )
            .await;
            if requirements.is_empty() {
                assert!(status.is_success(), "{what}: {status} without a key");
                continue;
            }
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");

            // With the documented roles (any role when none is named): the example is served.
            let granted = if roles.is_empty() {
                BTreeSet::from([Role::Read])
            } else {
                roles.clone()
            };
            let key = fixture.key(granted);
            let (status, body) = send(
                state,
                operation,
                example_request(&path, &method, operation, Some(&key)),
            )
            .await;
            assert!(
                status.is_success() || status == StatusCode::NOT_FOUND,
                "{what}: {status} {body}"
            );
            if let Some(partial) = body.get("partialSuccess") {
                assert!(
                    partial.is_null(),
                    "{what}: the example was not fully accepted: {partial}"
                );
            }

            // With every other role but admin: refused 403.
            if !roles.is_empty() {
                let others = non_admin
                    .iter()
                    .copied()
                    .filter(|r| !roles.contains(r))
                    .collect();
                let key = fixture.key(others);
                let (status, body) = send(
                    state,
                    operation,
                    example_request(&path, &method, operation, Some(&key)),
                )
                .await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
            }
        }
    }

    #[tokio::test]
    async fn the_served_document_is_the_built_one_and_the_checked_in_copy() {
        let fixture = Fixture::new("served");
        let operation = &DOCUMENT["paths"]["/api/v1/openapi.json"]["get"];
        let request = Request::get("/api/v1/openapi.json")
            .body(Body::empty())
            .unwrap();
        let (status, served) = send(&fixture.state, operation, request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(served, *DOCUMENT);

        // ui-api/openapi.json is the same document, for readers and client generators; a change
        // to the API shows in its diff. VIGIL_UPDATE_OPENAPI=1 rewrites it.
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
        if std::env::var_os("VIGIL_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, pretty).unwrap();
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        let checked_in: Value = serde_json::from_str(&checked_in).unwrap_or(Value::Null);
        assert!(
            checked_in == served,
            "{} is not the served document: rewrite it with \
             VIGIL_UPDATE_OPENAPI=1 cargo test -p vigil-api openapi",
            path.display()
        );
    }
}
