//! The metric engine's part of the OpenAPI document. Metric and field names, the row of an
//! answer and the filter object all come from the catalog, so the document cannot name a metric
//! the engine does not have, nor miss one it has.

use std::borrow::Cow;

use serde_json::{Map, Value, json};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{RefOr, schema::Schema},
};
use vigil_schemas::{Outcome, openapi::from_json};

use super::{
    Field, Metric, MetricAnswer, Subject,
    request::{
        MAX_BUCKETS, MAX_FILTER_VALUE_BYTES, MAX_FILTER_VALUES, MAX_GROUP_BY, MAX_METRICS,
        MAX_RANGE_DAYS,
    },
};

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

impl PartialSchema for Metric {
    fn schema() -> RefOr<Schema> {
        let of = |subject: Subject| {
            Metric::ALL
                .iter()
                .filter(|m| m.subject() == subject)
                .map(|m| m.name())
                .collect::<Vec<_>>()
        };
        from_json(json!({
            "type": "string",
            "description": "A metric (definitions in docs/design.md#metric-definitions). \
                `x-model-call` and `x-tool-call` list the metrics of model and tool calls; the \
                others are metrics of runs.",
            "enum": Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "x-model-call": of(Subject::ModelCall),
            "x-tool-call": of(Subject::ToolCall),
        }))
    }
}

impl ToSchema for Metric {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("MetricName")
    }
}

impl PartialSchema for Field {
    fn schema() -> RefOr<Schema> {
        let of = |subject: Subject| {
            Field::ALL
                .iter()
                .filter(|f| f.subject() == subject)
                .map(|f| f.name())
                .collect::<Vec<_>>()
        };
        let quoted = |subject: Subject| {
            of(subject)
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        from_json(json!({
            "type": "string",
            "description": format!(
                "A field metrics are grouped and filtered by. {} are properties of a model call \
                 (`x-model-call`), {} of a tool call (`x-tool-call`), the others of the run. A \
                 tool-call metric cannot be grouped or filtered by a model-call field, nor a \
                 model-call metric by a tool-call field; grouping by a model-call field and a \
                 tool-call field together is refused for every metric.",
                quoted(Subject::ModelCall),
                quoted(Subject::ToolCall),
            ),
            "enum": Field::ALL.iter().map(|f| f.name()).collect::<Vec<_>>(),
            "x-model-call": of(Subject::ModelCall),
            "x-tool-call": of(Subject::ToolCall),
        }))
    }
}

impl ToSchema for Field {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FieldName")
    }
}

/// `MetricQuery.metrics`.
pub(super) fn metrics_schema() -> RefOr<Schema> {
    let costs = [Metric::CostUsd, Metric::CostPerRunUsd]
        .iter()
        .map(|m| format!("`{m}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    from_json(json!({
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_METRICS,
        "items": reference("MetricName"),
        "description": format!(
            "Answered in the order asked, each once. Asking for {costs} adds `{}`: a cost is \
             never read without the count of calls it could not price.",
            Metric::UnpricedModelCalls
        ),
    }))
}

/// `MetricQuery.group_by`.
pub(super) fn group_by_schema() -> RefOr<Schema> {
    from_json(json!({
        "type": "array",
        "maxItems": MAX_GROUP_BY,
        "uniqueItems": true,
        "items": reference("FieldName"),
        "default": [],
        "description": "One row per combination of values, keys in this order.",
    }))
}

/// `MetricQuery.to`.
pub(super) fn to_schema() -> RefOr<Schema> {
    from_json(json!({
        "type": "string",
        "format": "date-time",
        "description": format!("After `from`; the range covers at most {MAX_RANGE_DAYS} days."),
    }))
}

/// `MetricQuery.step`.
pub(super) fn step_schema() -> RefOr<Schema> {
    from_json(json!({
        "type": ["string", "null"],
        "pattern": "^[0-9]+(ns|us|ms|s|m|h|d|w)$",
        "description": format!(
            "Cut the range into buckets of this length (at least 1s, e.g. `1m`, `1h`, `1d`), \
             aligned to the Unix epoch; at most {MAX_BUCKETS} buckets. Absent or null: one \
             bucket, the whole range."
        ),
    }))
}

/// Field → accepted values: the filters of metric queries and compliance investigations.
pub fn filters_schema() -> RefOr<Schema> {
    let outcomes: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    let mut properties = Map::new();
    properties.insert(
        Field::Outcome.name().to_string(),
        json!({
            "type": "array",
            "items": {"type": "string", "enum": outcomes},
            "minItems": 1,
            "maxItems": MAX_FILTER_VALUES,
        }),
    );
    from_json(json!({
        "type": "object",
        "propertyNames": {
            "type": "string",
            "enum": Field::ALL.iter().map(|f| f.name()).collect::<Vec<_>>(),
        },
        "properties": properties,
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
    }))
}

/// One row of an answer: the `group_by` fields, `bucket` with `step`, then every metric asked
/// for; its properties are named by the catalog.
pub struct MetricRowSchema;

impl PartialSchema for MetricRowSchema {
    fn schema() -> RefOr<Schema> {
        let mut properties = Map::new();
        for field in Field::ALL {
            properties.insert(
                field.name().to_string(),
                json!({
                    "type": "string",
                    "description": format!(
                        "The group's `{field}` (with `group_by` only); `\"\"` for the runs \
                         without one."
                    ),
                }),
            );
        }
        properties.insert(
            "bucket".to_string(),
            json!({
                "type": "string",
                "format": "date-time",
                "description": "Start of the bucket (with `step` only).",
            }),
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
                        "`{metric}`, {unit}; null when there was nothing to measure (a ratio \
                         over nothing, a percentile of no values, a cost of unpriced calls only)."
                    ),
                }),
            );
        }
        from_json(json!({
            "type": "object",
            "description": "One group (and bucket): the `group_by` fields, `bucket` with `step`, \
                then every metric asked for. Counts and sums are integers; rates, means, \
                milliseconds and USD are numbers.",
            "additionalProperties": false,
            "properties": properties,
        }))
    }
}

impl ToSchema for MetricRowSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("MetricRow")
    }
}

impl PartialSchema for MetricAnswer {
    fn schema() -> RefOr<Schema> {
        from_json(json!({
            "type": "object",
            "required": ["rows"],
            "properties": {
                "rows": {
                    "type": "array",
                    "items": reference("MetricRow"),
                    "description": "By group, then bucket.",
                },
            },
        }))
    }
}

impl ToSchema for MetricAnswer {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((MetricRowSchema::name().into(), MetricRowSchema::schema()));
    }
}
