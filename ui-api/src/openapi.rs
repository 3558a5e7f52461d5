//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route [`crate::app`] serves,
//! derived from the handlers (`#[utoipa::path]`) and the types they take and answer
//! (`ToSchema`, `IntoParams`).
//!
//! What the types cannot say is filled in by [`Finish`] from the code's own lists: the roles, the
//! security schemes, the Langfuse path (the same handler as `/v1/traces`) and the rate limit every
//! REST operation is subject to. Names of metrics and fields come from the metric catalog
//! (`vigil_query::metrics::openapi`). The tests check that every route of `app()` is documented,
//! that every documented operation answers as documented (authentication, role, status, content
//! type), and that the views serialize exactly the documented properties.

use std::sync::LazyLock;

use axum::Json;
use serde_json::Value;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        self, Ref, RefOr,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use vigil_access::keys::Role;

use crate::{
    alerts, audit_log, cohorts, compliance, datasets,
    error::{
        BacklogFullOrRateLimited, BadRequest, Conflict, ErrorBody, Forbidden, Internal, NotFound,
        NotServed, PayloadTooLarge, RateLimited, TooManyRequests, Unauthorized, Unavailable,
        UnsupportedMediaType,
    },
    experiments, keys, kill_switch, metrics, ops, otlp_http, runs, scores,
};

/// The document, built once.
static DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| match serde_json::to_value(ApiDoc::openapi()) {
        Ok(document) => document,
        Err(e) => panic!("the OpenAPI document does not serialize: {e}"),
    });

/// This document
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, body = Object, description = "The OpenAPI 3.1 document.")),
)]
pub async fn document() -> Json<&'static Value> {
    Json(&*DOCUMENT)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vigil",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/", description = "the HTTP listener (port 4318 by default)")),
    tags(
        (name = "operations", description = "Liveness, readiness, Prometheus metrics, this document."),
        (name = "ingest", description = "OTLP/HTTP trace export (also at the Langfuse-compatible path) and scores."),
        (name = "runs", description = "Runs with their spans and scores, run lists, sessions."),
        (name = "metrics", description = "Aggregates over runs, model calls and tool calls."),
        (name = "alerting", description = "Alert rules over the metrics, the alerts they raise, and silences (docs/api.md#alerting)."),
        (name = "compliance", description = "Which runs, sessions and (hashed) users a model version, prompt version, tool version… touched, and since when; exports of every such run; look-ups and erasure of one person. Every answer is written to the audit log before it is sent."),
        (name = "evaluation", description = "Datasets: versioned sets of tasks with expected outputs, some taken from production runs; experiments: a dataset version run by a system version, each item's run linked, evaluated and summed up (docs/api.md#evaluation)."),
        (name = "access", description = "API keys of the caller's project, and the audit log: every key change, rule and silence change, compliance query and erasure, hash-chained (docs/api.md#compliance)."),
    ),
    paths(
        ops::healthz,
        ops::readyz,
        ops::metrics,
        otlp_http::export,
        ops::projects,
        ops::whoami,
        ops::prices,
        runs::list,
        runs::get_one,
        runs::session,
        runs::list_sessions,
        scores::create,
        metrics::query,
        alerts::list_rules,
        alerts::get_rule,
        alerts::put_rule,
        alerts::delete_rule,
        alerts::list_alerts,
        alerts::create_silence,
        alerts::list_silences,
        alerts::get_silence,
        alerts::expire_silence,
        keys::create,
        keys::list,
        keys::revoke,
        audit_log::read,
        audit_log::verify_chain,
        compliance::affected,
        compliance::user_lookup,
        compliance::erase_user,
        datasets::create,
        datasets::list,
        datasets::get_one,
        datasets::items,
        datasets::add_items,
        datasets::add_worst,
        datasets::delete_item,
        experiments::create,
        experiments::list,
        experiments::get_one,
        experiments::items,
        experiments::link,
        experiments::compare_two,
        cohorts::compare,
        kill_switch::get_one,
        kill_switch::put_one,
        kill_switch::list,
        document,
    ),
    components(schemas(ErrorBody, otlp_http::ContentEncoding), responses(
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        NotServed,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        TooManyRequests,
        Unavailable,
        Internal,
        RateLimited,
        BacklogFullOrRateLimited,
    )),
    modifiers(&Finish),
)]
struct ApiDoc;

/// The OTLP/HTTP path Langfuse SDKs send to; the same handler as `/v1/traces`.
const LANGFUSE_TRACES: &str = "/api/public/otel/v1/traces";

/// Trace export paths: not rate limited (the WAL backlog bounds them).
const NOT_RATE_LIMITED: [&str; 2] = ["/v1/traces", LANGFUSE_TRACES];

/// What the derives cannot say; see the module's documentation.
struct Finish;

impl Modify for Finish {
    fn modify(&self, document: &mut openapi::OpenApi) {
        document.info.description = Some(description());
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key, `vk_<id>_<secret>`, shown once when it is created. A key \
                         belongs to one project; every answer is about that project only. The \
                         roles an operation needs are listed in its security requirement.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basicAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "`base64(<key id>:<secret>)`, where the key id is `vk_<id>`: for OTLP \
                         SDKs that can only send Basic authentication.",
                    ))
                    .build(),
            ),
        );
        open_the_rule_in_its_view(components);
        add_langfuse_path(&mut document.paths);
        add_security_responses(&mut document.paths);
    }
}

/// `AlertRuleView` is an `AlertRule` with what the server adds (`#[serde(flatten)]`, an `allOf`
/// of the two). As a request body a rule takes no unknown field (`additionalProperties: false`),
/// but under `allOf` that would refuse the added fields of every answer: the view holds a copy
/// of the rule's schema without it.
fn open_the_rule_in_its_view(components: &mut openapi::Components) {
    use openapi::schema::Schema;
    let Some(RefOr::T(Schema::Object(rule))) = components.schemas.get("AlertRule") else {
        return;
    };
    let mut open = rule.clone();
    open.additional_properties = None;
    if let Some(RefOr::T(Schema::AllOf(view))) = components.schemas.get_mut("AlertRuleView") {
        for part in &mut view.items {
            if matches!(part, RefOr::Ref(r) if r.ref_location == "#/components/schemas/AlertRule") {
                *part = RefOr::T(Schema::Object(open.clone()));
            }
        }
    }
}

fn description() -> String {
    let roles: Vec<String> = Role::ALL
        .iter()
        .map(|r| format!("`{}` ({})", r.as_str(), role_description(*r)))
        .collect();
    format!(
        "Vigil collects traces of LLM agents and answers questions about their runs. This \
         document covers the HTTP listener; the gRPC services on port 4317 (native \
         `vigil.v1.IngestService`, OTLP `TraceService`) are not described here.\n\n\
         Authentication: `Authorization: Bearer <key>`. An operation's security requirement \
         lists the role its key must hold; a key holding `admin` holds every role. Roles: {}. \
         A missing or invalid key is answered 401, a key without the role 403. Operations \
         without a security requirement need no key.\n\n\
         Errors are `{{\"error\": {{\"code\", \"message\", \"field\"}}}}`; retryable refusals \
         (429, 503) carry `Retry-After`.",
        roles.join(", ")
    )
}

fn role_description(role: Role) -> &'static str {
    match role {
        Role::Ingest => "send traces and scores, nothing else",
        Role::Read => "read runs, sessions and metrics",
        Role::Audit => "see the content of runs classified sensitive, unredacted",
        Role::Admin => "every role",
    }
}

/// The Langfuse path: `/v1/traces`' operation under its own id.
fn add_langfuse_path(paths: &mut openapi::Paths) {
    let Some(mut item) = paths.paths.get("/v1/traces").cloned() else {
        return;
    };
    if let Some(operation) = item.post.as_mut() {
        operation.operation_id = Some("exportTracesLangfuse".into());
        operation.summary = Some("OTLP/HTTP trace export at the Langfuse path".into());
    }
    paths.paths.insert(LANGFUSE_TRACES.into(), item);
}

/// What every operation's security requirement implies, said once here rather than in each:
/// - one that needs a key answers 401 without a valid one, and 403 when its key lacks the role
///   the requirement names;
/// - every one that needs a key but trace export counts against the key's rate limit: its 429 is
///   `RateLimited`, or `BacklogFullOrRateLimited` where a full backlog answers 429 too;
/// - one without a requirement gets an empty one: it needs no key.
fn add_security_responses(paths: &mut openapi::Paths) {
    let response = |name: &str| RefOr::Ref(Ref::new(format!("#/components/responses/{name}")));
    for (path, item) in paths.paths.iter_mut() {
        let rate_limited = !NOT_RATE_LIMITED.contains(&path.as_str());
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let requirements = operation.security.get_or_insert_with(Vec::new);
            if requirements.is_empty() {
                continue;
            }
            let names_a_role = serde_json::to_value(&*requirements)
                .ok()
                .and_then(|value| value.as_array().cloned())
                .into_iter()
                .flatten()
                .flat_map(|requirement| requirement.as_object().cloned())
                .flat_map(|schemes| schemes.into_iter().map(|(_, roles)| roles))
                .any(|roles| roles.as_array().is_some_and(|r| !r.is_empty()));
            let responses = &mut operation.responses.responses;
            responses.insert("401".into(), response("Unauthorized"));
            if names_a_role {
                responses.insert("403".into(), response("Forbidden"));
            }
            if rate_limited {
                let name = if responses.contains_key("429") {
                    "BacklogFullOrRateLimited"
                } else {
                    "RateLimited"
                };
                responses.insert("429".into(), response(name));
            }
        }
    }
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

    use serde_json::json;
    use vigil_access::audit::{AuditRecord, KEY_CREATE};
    use vigil_query::metrics::{Field, Metric};

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
            "/api/v1/sessions",
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
            "/api/v1/datasets",
            "/api/v1/datasets/{name}",
            "/api/v1/datasets/{name}/items",
            "/api/v1/datasets/{name}/items/worst",
            "/api/v1/datasets/{name}/items/{item_id}",
            "/api/v1/experiments",
            "/api/v1/experiments/{id}",
            "/api/v1/experiments/{id}/items",
            "/api/v1/experiments/compare",
            "/api/v1/cohorts/compare",
            "/api/v1/kill-switch",
            "/api/v1/kill-switch/{agent}",
            "/api/v1/audit/log",
            "/api/v1/audit/verify",
            "/api/v1/audit/affected",
            "/api/v1/audit/user-lookup",
            "/api/v1/users/{user_hash}",
            "/api/v1/openapi.json",
            "/api/v1/whoami",
            "/api/v1/prices",
        ]);
        assert_eq!(paths, expected);

        let mut operation_ids = BTreeSet::new();
        for (path, method) in documented_operations() {
            let operation = &parsed["paths"][&path][&method];
            let id = operation["operationId"].as_str().unwrap();
            assert!(operation_ids.insert(id.to_string()), "{id} is used twice");
            assert!(
                operation["security"].is_null() || operation["security"].is_array(),
                "{method} {path}: security is not a list"
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

    /// The properties of a schema, through `$ref` and `allOf`, and which of them are required.
    fn shape(schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
        let schema = resolve(schema);
        let mut properties = BTreeSet::new();
        let mut required = BTreeSet::new();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            let (p, r) = shape(part);
            properties.extend(p);
            required.extend(r);
        }
        if let Some(map) = schema["properties"].as_object() {
            properties.extend(map.keys().cloned());
        }
        for name in schema["required"].as_array().into_iter().flatten() {
            required.insert(name.as_str().unwrap().to_string());
        }
        (properties, required)
    }

    fn component(name: &str) -> &'static Value {
        let schema = &DOCUMENT["components"]["schemas"][name];
        assert!(schema.is_object(), "no schema {name}");
        schema
    }

    #[tokio::test]
    async fn the_views_have_exactly_the_documented_properties() {
        let principal = Principal {
            key_id: "vk_test".into(),
            project_id: "p".into(),
            roles: BTreeSet::from([Role::Read]),
        };
        let dir = std::env::temp_dir().join(format!("vigil-api-views-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let keys = KeyStore::open(dir.join("keys.json")).unwrap();
        let key = keys
            .create_key(vigil_access::keys::KeySpec {
                project_id: "p".into(),
                roles: BTreeSet::from([Role::Read]),
                description: String::new(),
                rate_limit: None,
            })
            .await
            .unwrap();
        let entry = AuditLog::open(dir.join("audit"))
            .unwrap()
            .append(AuditRecord {
                project_id: "p".into(),
                key_id: "cli".into(),
                action: KEY_CREATE.into(),
                parameters: json!({}),
                result_count: 1,
            })
            .unwrap();
        let _ = std::fs::remove_dir_all(dir);
        let silence = vigil_alerts::silence::Silence {
            id: "s".into(),
            project: "p".into(),
            matchers: Vec::new(),
            starts_at_ns: 0,
            ends_at_ns: 1,
            comment: String::new(),
            created_by: String::new(),
            key_id: "vk_test".into(),
            updated_at_ns: 0,
        };
        let views = [
            ("Run", json!(run_view(RunRow::default(), &principal))),
            (
                "RunSummary",
                json!(crate::views::run_summary_view(
                    RunRow::default(),
                    None,
                    &principal
                )),
            ),
            (
                "RunCalls",
                json!(crate::views::run_summary_view(RunRow::default(), None, &principal).calls),
            ),
            ("Span", json!(span_view(SpanRow::default(), false))),
            ("Score", json!(score_view(ScoreRow::default()))),
            ("Silence", json!(silence.view(0))),
            ("ApiKey", json!(key.record.public_view())),
            ("AuditEntry", json!(entry)),
        ];
        for (name, value) in views {
            let (documented, required) = shape(component(name));
            let served: BTreeSet<String> = value.as_object().unwrap().keys().cloned().collect();
            assert_eq!(documented, served, "{name}");
            assert_eq!(required, served, "{name}: every property is always sent");
        }
    }

    #[test]
    fn limits_in_the_document_are_the_code_s() {
        let schemas = &DOCUMENT["components"]["schemas"];
        let rate_limit = &schemas["RateLimit"]["properties"];
        use vigil_access::keys::RateLimit;
        assert_eq!(
            rate_limit["requests_per_second"]["minimum"].as_f64(),
            Some(RateLimit::MIN_REQUESTS_PER_SECOND)
        );
        assert_eq!(
            rate_limit["requests_per_second"]["maximum"].as_f64(),
            Some(RateLimit::MAX_REQUESTS_PER_SECOND)
        );
        assert_eq!(rate_limit["burst"]["maximum"], json!(RateLimit::MAX_BURST));
        assert_eq!(
            schemas["ApiKeyInput"]["properties"]["description"]["maxLength"],
            json!(vigil_access::keys::MAX_DESCRIPTION_BYTES)
        );
        let silence = &schemas["SilenceInput"]["properties"];
        assert_eq!(
            silence["matchers"]["maxItems"],
            json!(vigil_alerts::silence::MAX_MATCHERS)
        );
        assert_eq!(
            silence["comment"]["maxLength"],
            json!(vigil_alerts::silence::MAX_COMMENT_CHARS)
        );
        assert_eq!(
            schemas["UserLookupRequest"]["properties"]["user_id"]["maxLength"],
            json!(crate::compliance::MAX_USER_ID_BYTES)
        );
        let parameter = |path: &str, method: &str, name: &str| {
            DOCUMENT["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap()["schema"]
                .clone()
        };
        let erase = parameter("/api/v1/users/{user_hash}", "delete", "user_hash");
        assert_eq!(
            erase["maxLength"],
            json!(crate::compliance::MAX_USER_HASH_BYTES)
        );
        let limit = parameter("/api/v1/runs", "get", "limit");
        assert_eq!(limit["default"], json!(vigil_query::DEFAULT_LIMIT));
        let limit = parameter("/api/v1/audit/log", "get", "limit");
        assert_eq!(limit["default"], json!(crate::audit_log::DEFAULT_LIMIT));
        assert_eq!(limit["maximum"], json!(crate::audit_log::MAX_LIMIT));
        assert!(
            DOCUMENT["paths"]["/api/v1/runs"]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(&vigil_query::MAX_LIMIT.to_string())))
        );
    }

    #[test]
    fn every_rest_operation_but_trace_export_can_be_rate_limited() {
        for (path, item) in DOCUMENT["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let public = operation["security"].as_array().is_none_or(Vec::is_empty);
                let limited = operation["responses"]["429"]["$ref"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("RateLimited"));
                let expected = !public && !NOT_RATE_LIMITED.contains(&path.as_str());
                assert_eq!(limited, expected, "{method} {path}");
            }
        }
    }

    #[test]
    fn every_error_code_is_documented() {
        let error = resolve(&DOCUMENT["components"]["schemas"]["Error"]["properties"]["error"]);
        let documented = enum_names(&error["properties"]["code"]);
        assert_eq!(
            documented,
            crate::error::ERROR_CODES
                .into_iter()
                .collect::<BTreeSet<_>>()
        );
        let errors = [
            ApiError::bad_request("f", "m"),
            ApiError::unauthenticated(),
            ApiError::forbidden("read"),
            ApiError::not_found("x"),
            ApiError::not_served("x"),
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
            let kill_switches =
                Arc::new(vigil_eval::kill_switch::KillSwitches::open(&dir).unwrap());
            let audit = Arc::new(AuditLog::open(dir.join("audit")).unwrap());
            let alerts = AlertEngine::open(
                AlertingSettings::default(),
                &dir,
                store.clone(),
                kill_switches.clone(),
                audit.clone(),
                None,
            )
            .unwrap();
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
                evaluation: Arc::new(vigil_eval::Evaluation::open(&dir).unwrap()),
                kill_switches,
                deleter: sink,
                audit,
                shared_audit: None,
                rate_limits: Arc::new(RateLimiter::new(None)),
                failed_auth: Arc::new(vigil_access::throttle::FailedAuth::new(None)),
                telemetry: Arc::new(crate::ApiTelemetry::default()),
                registry: Arc::new(prometheus_client::registry::Registry::default()),
                components: crate::Component::ALL.into(),
            };
            Fixture {
                dir,
                wal,
                state,
                stop,
            }
        }

        async fn key(&self, roles: BTreeSet<Role>) -> String {
            let key = self.state.keys.create("p", roles, "test").await;
            key.unwrap().token
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
        for (name, value) in crate::headers::ALWAYS
            .into_iter()
            .chain(crate::headers::UNLESS_SET)
        {
            assert_eq!(
                response.headers().get(&name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{what}: {name}"
            );
        }
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
            .await
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
        let (_, required) = shape(component("AlertRuleView"));
        assert!(required.contains("source"), "{required:?}");
        for field in required {
            assert!(view.get(&field).is_some(), "{field} is missing from {view}");
        }
    }

    /// What the document bounds, the API refuses: a change of no items (minItems 1); a null
    /// `step` is accepted, as the document says (one bucket).
    #[tokio::test]
    async fn the_documented_bounds_are_the_validated_ones() {
        let fixture = Fixture::new("bounds");
        let state = &fixture.state;
        let (status, _) = raw(
            state,
            Method::POST,
            "/api/v1/datasets",
            None,
            r#"{"name": "d"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let uri = "/api/v1/datasets/d/items";
        let (status, answer) = raw(state, Method::POST, uri, None, r#"{"items": []}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["field"], "items", "{answer}");
        let min_items = &component("AddItems")["properties"]["items"]["minItems"];
        assert_eq!(min_items, 1);
        let query = r#"{"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "metrics": ["runs"], "step": null}"#;
        let (status, answer) = raw(state, Method::POST, "/api/v1/metrics/query", None, query).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let step = &component("MetricQuery")["properties"]["step"]["type"];
        assert_eq!(step, &serde_json::json!(["string", "null"]));
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
            let requirements = operation["security"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
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
            let key = fixture.key(granted).await;
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
                let key = fixture.key(others).await;
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
