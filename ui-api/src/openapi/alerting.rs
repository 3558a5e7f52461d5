//! The alerting part of the OpenAPI document: rules, alerts, silences.

use serde_json::{Value, json};
use vigil_access::keys::Role;
use vigil_alerts::rule::SAME_WINDOW_LAST_7D;

use super::{bearer, errors, json_response, object, schema_ref, string, text, with};

pub(super) const TAG: (&str, &str) = (
    "alerting",
    "Alert rules over the metrics, the alerts they raise, and silences (docs/api.md#alerting).",
);

pub(super) fn paths() -> Vec<(&'static str, Value)> {
    vec![
        ("/api/v1/alert-rules", json!({"get": list_rules()})),
        (
            "/api/v1/alert-rules/{name}",
            json!({"get": get_rule(), "put": put_rule(), "delete": delete_rule()}),
        ),
        ("/api/v1/alerts", json!({"get": list_alerts()})),
        (
            "/api/v1/silences",
            json!({"get": list_silences(), "post": create_silence()}),
        ),
        (
            "/api/v1/silences/{id}",
            json!({"get": get_silence(), "delete": expire_silence()}),
        ),
    ]
}

pub(super) fn parameters() -> Vec<(&'static str, Value)> {
    vec![
        (
            "rule_name",
            json!({
                "name": "name",
                "in": "path",
                "required": true,
                "description": "The rule's name (its `alertname`): letters, digits, `_`, `-`, `.`, `:`.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
                "example": "run-error-spike",
            }),
        ),
        (
            "silence_id",
            json!({
                "name": "id",
                "in": "path",
                "required": true,
                "description": "The silence's id.",
                "schema": {"type": "string"},
                "example": "8c1f0e2a9b7d4c6e8f0a1b2c3d4e5f60",
            }),
        ),
    ]
}

fn list_rules() -> Value {
    json!({
        "tags": ["alerting"],
        "operationId": "listAlertRules",
        "summary": "The project's alert rules",
        "description": "Rules from the rules file (`source: file`, changed by editing the file; \
            it is reloaded on change and on SIGHUP) and from this API (`source: api`), each with \
            the outcome of its last evaluation and its alert counts.",
        "security": bearer(Role::Read),
        "responses": with(errors(&[]), "200", json_response("The rules.", object(vec![(
            "rules", json!({"type": "array", "items": schema_ref("AlertRuleView")}),
        )]))),
    })
}

fn get_rule() -> Value {
    json!({
        "tags": ["alerting"],
        "operationId": "getAlertRule",
        "summary": "One alert rule",
        "security": bearer(Role::Read),
        "parameters": [{"$ref": "#/components/parameters/rule_name"}],
        "responses": with(errors(&[("404", "NotFound")]), "200",
            json_response("The rule.", schema_ref("AlertRuleView"))),
    })
}

fn put_rule() -> Value {
    json!({
        "tags": ["alerting"],
        "operationId": "putAlertRule",
        "summary": "Create or replace an alert rule",
        "description": "Checked whole before it is stored; a refusal is a 400 naming the field \
            (`metric`, `group_by`, `window`, `op`, `threshold`, `annotations.summary`, …) and \
            saying why. A rule of the rules file cannot be replaced here (409). Replacing a rule \
            keeps its alerts.",
        "security": bearer(Role::Admin),
        "parameters": [{"$ref": "#/components/parameters/rule_name"}],
        "requestBody": {
            "required": true,
            "content": {"application/json": {
                "schema": schema_ref("AlertRule"),
                "example": {
                    "metric": "completion_rate",
                    "group_by": ["agent"],
                    "filters": {"environment": ["production"]},
                    "window": "10m",
                    "op": "<",
                    "threshold": 0.85,
                    "for": "5m",
                    "labels": {"severity": "page"},
                    "annotations": {"summary": "{{ $labels.agent }} completes {{ $value }} of its runs"},
                },
            }},
        },
        "responses": with(
            with(errors(&[("400", "BadRequest"), ("409", "Conflict")]), "201",
                json_response("Created.", schema_ref("AlertRuleView"))),
            "200", json_response("Replaced.", schema_ref("AlertRuleView")),
        ),
    })
}

fn delete_rule() -> Value {
    json!({
        "tags": ["alerting"],
        "operationId": "deleteAlertRule",
        "summary": "Delete an alert rule",
        "description": "Its firing alerts resolve (and are notified as resolved).",
        "security": bearer(Role::Admin),
        "parameters": [{"$ref": "#/components/parameters/rule_name"}],
        "responses": with(errors(&[("404", "NotFound"), ("409", "Conflict")]), "200",
            json_response("Deleted.", object(vec![("deleted", string())]))),
    })
}

fn list_alerts() -> Value {
    json!({
        "tags": ["alerting"],
        "operationId": "listAlerts",
        "summary": "Pending and firing alerts",
        "security": bearer(Role::Read),
        "responses": with(errors(&[]), "200", json_response("The alerts.", object(vec![(
            "alerts", json!({"type": "array", "items": schema_ref("Alert")}),
        )]))),
    })
}

fn list_silences() -> Value {
    json!({
        "tags": ["alerting"],
        "operationId": "listSilences",
        "summary": "Silences, newest first",
        "description": "Pending, active, and expired in the last 5 days.",
        "security": bearer(Role::Read),
        "responses": with(errors(&[]), "200", json_response("The silences.", object(vec![(
            "silences", json!({"type": "array", "items": schema_ref("Silence")}),
        )]))),
    })
}

fn create_silence() -> Value {
    json!({
        "tags": ["alerting"],
        "operationId": "createSilence",
        "summary": "Silence alerts",
        "description": "Alertmanager's semantics: while active (`starts_at` ≤ now < `ends_at`), \
            every alert of the project whose labels match all the matchers is not notified. A \
            silence whose matchers all match an empty label set is refused: it would mute \
            everything.",
        "security": bearer(Role::Admin),
        "requestBody": {
            "required": true,
            "content": {"application/json": {
                "schema": schema_ref("SilenceInput"),
                "example": {
                    "matchers": [
                        {"name": "alertname", "op": "=", "value": "run-error-spike"},
                        {"name": "agent", "op": "=~", "value": "support-.*"},
                    ],
                    "ends_at": "2099-01-01T00:00:00Z",
                    "comment": "deploying the fix",
                    "created_by": "alice",
                },
            }},
        },
        "responses": with(errors(&[("400", "BadRequest")]), "201",
            json_response("Created.", schema_ref("Silence"))),
    })
}

fn get_silence() -> Value {
    json!({
        "tags": ["alerting"],
        "operationId": "getSilence",
        "summary": "One silence",
        "security": bearer(Role::Read),
        "parameters": [{"$ref": "#/components/parameters/silence_id"}],
        "responses": with(errors(&[("404", "NotFound")]), "200",
            json_response("The silence.", schema_ref("Silence"))),
    })
}

fn expire_silence() -> Value {
    json!({
        "tags": ["alerting"],
        "operationId": "expireSilence",
        "summary": "Expire a silence now",
        "description": "Its end becomes now; it stays listed, as expired, for 5 days.",
        "security": bearer(Role::Admin),
        "parameters": [{"$ref": "#/components/parameters/silence_id"}],
        "responses": with(errors(&[("404", "NotFound")]), "200",
            json_response("The expired silence.", schema_ref("Silence"))),
    })
}

fn duration(description: &str) -> Value {
    json!({"type": "string", "pattern": "^[0-9]+(ns|us|ms|s|m|h|d|w)$", "description": description})
}

fn labels(description: &str) -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}, "description": description})
}

fn rule_properties() -> Vec<(&'static str, Value)> {
    vec![
        (
            "name",
            json!({"type": "string", "description": "As in the path (may be left out)."}),
        ),
        ("metric", schema_ref("MetricName")),
        (
            "filters",
            json!({
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "description": "Field → accepted values, as in a metric query.",
            }),
        ),
        (
            "group_by",
            json!({"type": "array", "items": schema_ref("FieldName"),
            "description": "One alert per group of these fields."}),
        ),
        (
            "window",
            duration("The metric is computed over this window before each evaluation."),
        ),
        (
            "interval",
            duration(
                "How often the rule is evaluated (default `alerting.evaluation_interval`, 1m). Evaluations are aligned to multiples of it.",
            ),
        ),
        (
            "op",
            json!({"type": "string", "enum": [">", ">=", "<", "<="], "description": "Threshold rules."}),
        ),
        (
            "threshold",
            json!({"type": "number", "description": "Threshold rules."}),
        ),
        (
            "baseline",
            json!({"type": "string", "enum": [SAME_WINDOW_LAST_7D],
            "description": "Anomaly rules: the baseline is the mean of the metric over the same window on each of the previous 7 days that had a value."}),
        ),
        (
            "ratio_above",
            json!({"type": "number", "exclusiveMinimum": 0,
            "description": "Anomaly rules: active while value > ratio_above × baseline."}),
        ),
        (
            "min_baseline",
            json!({"type": "number", "minimum": 0,
            "description": "Anomaly rules: a smaller baseline never makes the rule active (default 0)."}),
        ),
        (
            "for",
            duration(
                "How long the condition must hold before the alert fires; pending until then (default 0s).",
            ),
        ),
        (
            "keep_firing_for",
            duration(
                "How long a firing alert keeps firing after the condition stops holding (default 0s).",
            ),
        ),
        (
            "no_data",
            json!({"type": "string", "enum": ["ok", "firing", "keep_state"],
            "description": "A group without a value: the condition fails (`ok`, default), holds (`firing`), or nothing changes (`keep_state`)."}),
        ),
        ("labels", labels("Added to every alert of the rule.")),
        (
            "annotations",
            labels(
                "Templated: `{{ $value }}`, `{{ $threshold }}`, `{{ $baseline }}`, `{{ $labels.<name> }}`.",
            ),
        ),
        (
            "receivers",
            json!({"type": "array", "items": {"type": "string"},
            "description": "Receivers of the rules file; every receiver when empty."}),
        ),
    ]
}

pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let mut rule = json!({"type": "object", "additionalProperties": false,
        "required": ["metric", "window"], "properties": {}});
    for (name, schema) in rule_properties() {
        rule["properties"][name] = schema;
    }
    let mut view = rule.clone();
    view["required"] = json!(["name", "metric", "window", "source", "health", "alerts"]);
    if let Some(view) = view.as_object_mut() {
        view.remove("additionalProperties");
    }
    for (name, schema) in [
        ("source", json!({"type": "string", "enum": ["file", "api"]})),
        (
            "health",
            json!({"type": "string", "enum": ["unknown", "ok", "error"],
            "description": "How the last evaluation went (`unknown` before the first)."}),
        ),
        (
            "last_evaluation",
            json!({"type": ["string", "null"], "format": "date-time"}),
        ),
        ("last_evaluation_ms", json!({"type": "number"})),
        ("last_error", json!({"type": ["string", "null"]})),
        (
            "alerts",
            object(vec![("pending", super::uint()), ("firing", super::uint())]),
        ),
    ] {
        view["properties"][name] = schema;
    }
    let matcher = object(vec![
        ("name", text("Label name.")),
        (
            "op",
            json!({"type": "string", "enum": ["=", "!=", "=~", "!~"],
            "description": "Regular expressions are anchored (default `=`)."}),
        ),
        ("value", string()),
    ]);
    vec![
        ("AlertRule", rule),
        ("AlertRuleView", view),
        (
            "Alert",
            object(vec![
                ("rule", string()),
                (
                    "fingerprint",
                    text("Stable identity of the label set, as in the webhook."),
                ),
                (
                    "state",
                    json!({"type": "string", "enum": ["pending", "firing"]}),
                ),
                (
                    "labels",
                    labels("`alertname`, the rule's labels, the group's fields."),
                ),
                ("annotations", labels("Rendered at the last evaluation.")),
                (
                    "active_since",
                    json!({"type": "string", "format": "date-time",
                "description": "When the condition started holding."}),
                ),
                (
                    "fired_at",
                    json!({"type": ["string", "null"], "format": "date-time",
                "description": "`startsAt` of the webhook; null while pending."}),
                ),
                ("value", json!({"type": ["number", "null"]})),
                ("baseline", json!({"type": ["number", "null"]})),
                (
                    "silenced_by",
                    json!({"type": "array", "items": {"type": "string"},
                "description": "Ids of the active silences that mute it."}),
                ),
            ]),
        ),
        ("Matcher", matcher),
        (
            "SilenceInput",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["matchers"],
                "description": "Give `ends_at` or `duration`, not both.",
                "properties": {
                    "matchers": {"type": "array", "items": schema_ref("Matcher"), "minItems": 1},
                    "starts_at": {"type": "string", "format": "date-time", "description": "Default: now."},
                    "ends_at": {"type": "string", "format": "date-time"},
                    "duration": {
                        "type": "string",
                        "description": "How long from `starts_at`, e.g. `30m` or `2h` (units ns, us, ms, s, m, h, d, w).",
                    },
                    "comment": {"type": "string"},
                    "created_by": {"type": "string"},
                },
            }),
        ),
        (
            "Silence",
            object(vec![
                ("id", string()),
                (
                    "matchers",
                    json!({"type": "array", "items": schema_ref("Matcher")}),
                ),
                (
                    "starts_at",
                    json!({"type": "string", "format": "date-time"}),
                ),
                ("ends_at", json!({"type": "string", "format": "date-time"})),
                ("comment", string()),
                ("created_by", string()),
                ("key_id", text("The API key that created it.")),
                (
                    "updated_at",
                    json!({"type": "string", "format": "date-time"}),
                ),
                (
                    "state",
                    json!({"type": "string", "enum": ["pending", "active", "expired"]}),
                ),
            ]),
        ),
    ]
}
