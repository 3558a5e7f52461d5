//! Decoding of OTLP trace exports: each span becomes a [`DraftSpan`], read by the mapping of
//! docs/api.md ("OTLP attribute mapping").
//!
//! * **Where a field is found.** Its source attributes are tried in the order of the table, first
//!   on the span, then on the resource: resource attributes are span attributes of lower
//!   priority, so a span attribute under any of a field's names beats every resource attribute.
//!   A value that cannot be read as what the field needs (a token count of `"many"`, an empty
//!   string, a list where a name belongs) counts as absent, and the next name is tried.
//! * **What is kept.** An attribute whose value went into a column is consumed; every other one
//!   (resource attributes included, unless the span has the same key) is kept, rendered as text
//!   (arrays and maps as JSON, bytes as hex), in `attr_keys` / `attr_values`. The attributes that
//!   decide the kind are kept too, since the kind is coarser than they are (`chat` and
//!   `embeddings` are both `model`). Raw user ids are never kept, under any of their names.
//! * **Kind.** A value that names no kind Vigil has (Langfuse's `span` or `event`,
//!   OpenInference's `CHAIN`) does not decide; the next rule does.
//! * **Tool calls.** A tool span's input is its arguments and its output its result (falling
//!   back to the generic input/output names); `tool_args_hash` hashes that input.
//! * **Model version.** `vigil.model.version`; else the response model when the request model
//!   differs from it (`gpt-4o` asked, `gpt-4o-2024-08-06` served).
//! * **Langfuse usage.** `usage_details` holds disjoint buckets (its `input` excludes cache
//!   reads and writes, its `output` excludes reasoning); Vigil's counts include them, so the
//!   buckets are added up. `cost_details` gives its `total`, else the sum of its entries.
//! * **Beyond the table.** Run tags from `vigil.run.tags` / `langfuse.trace.tags`; a shadow run
//!   from `vigil.shadow = true` (the run tag `vigil.shadow`); the error type
//!   and message of an error span from its `exception` event when the attributes and the status
//!   lack them; a parent id of eight zero bytes means no parent.

use foldhash::HashMap;
use std::fmt::Write as _;

use vigil_proto::otlp::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{KeyValue, any_value::Value},
    trace::v1::{Span, status::StatusCode},
};
use vigil_schemas::{
    Outcome, SpanKind, SpanRow, SpanStatus,
    limits::{FieldError, Limits},
    prices::usd_to_nanos,
};

use crate::{
    draft::{DraftOtlp, DraftSpan, ItemKind, RawUserId, Rejected, RunContext},
    native::COST_SOURCE_SDK,
    validate,
};

// Attributes that decide the kind (read, never consumed).
const LANGFUSE_TYPE: &str = "langfuse.observation.type";
const OPENINFERENCE_KIND: &str = "openinference.span.kind";
const OPERATION_NAME: &str = "gen_ai.operation.name";

const RESPONSE_MODEL: &str = "gen_ai.response.model";
const REQUEST_MODEL: &str = "gen_ai.request.model";
const MODEL: &[&str] = &[
    RESPONSE_MODEL,
    REQUEST_MODEL,
    "llm.model_name",
    "langfuse.observation.model.name",
];
const MODEL_VERSION: &[&str] = &["vigil.model.version"];
const PROVIDER: &[&str] = &[
    "gen_ai.provider.name",
    "gen_ai.system",
    "llm.provider",
    "llm.system",
];

const USAGE_DETAILS: &str = "langfuse.observation.usage_details";
const COST_DETAILS: &str = "langfuse.observation.cost_details";
const INPUT_TOKENS: &[&str] = &[
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    USAGE_DETAILS,
];
const OUTPUT_TOKENS: &[&str] = &[
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    USAGE_DETAILS,
];
const CACHED_INPUT_TOKENS: &[&str] = &[
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
    USAGE_DETAILS,
];
const CACHE_WRITE_TOKENS: &[&str] = &[
    "gen_ai.usage.cache_creation.input_tokens",
    "llm.token_count.prompt_details.cache_write",
    USAGE_DETAILS,
];
const REASONING_TOKENS: &[&str] = &[
    "gen_ai.usage.reasoning.output_tokens",
    "llm.token_count.completion_details.reasoning",
    USAGE_DETAILS,
];
const COST: &[&str] = &[COST_DETAILS, "llm.cost.total"];

const TOOL_NAME: &[&str] = &["gen_ai.tool.name", "tool.name"];
const TOOL_CALL_ID: &[&str] = &["gen_ai.tool.call.id", "tool.id"];
const TOOL_MARKERS: &[&str] = &[
    "gen_ai.tool.name",
    "tool.name",
    "gen_ai.tool.call.id",
    "tool.id",
];
const TOOL_ARGUMENTS: &[&str] = &[
    "gen_ai.tool.call.arguments",
    "tool.parameters",
    "input.value",
];
const TOOL_RESULT: &[&str] = &["gen_ai.tool.call.result", "output.value"];
const TOOL_VERSION: &[&str] = &["vigil.tool.version", "gen_ai.tool.version"];
const RETRY_COUNT: &[&str] = &["vigil.tool.retry_count"];

const PROMPT_ID: &[&str] = &["vigil.prompt.id", "langfuse.observation.prompt.name"];
const PROMPT_VERSION: &[&str] = &[
    "vigil.prompt.version",
    "langfuse.observation.prompt.version",
];
const INPUT: &[&str] = &[
    "gen_ai.input.messages",
    "input.value",
    "langfuse.observation.input",
];
const OUTPUT: &[&str] = &[
    "gen_ai.output.messages",
    "output.value",
    "langfuse.observation.output",
];
const ERROR_TYPE: &[&str] = &["error.type"];

const AGENT_NAME: &[&str] = &["gen_ai.agent.name", "agent.name"];
const AGENT_VERSION: &[&str] = &["gen_ai.agent.version"];
const SESSION: &[&str] = &[
    "gen_ai.conversation.id",
    "session.id",
    "langfuse.session.id",
];
const RAW_USER: &[&str] = validate::RAW_USER_ATTRIBUTES;
const USER_HASH: &[&str] = &["vigil.user.hash"];
const TASK_TYPE: &[&str] = &["vigil.task.type"];
const OUTCOME: &[&str] = &["vigil.run.outcome"];
const ENVIRONMENT: &[&str] = &[
    "deployment.environment.name",
    "deployment.environment",
    "langfuse.environment",
];
const RELEASE: &[&str] = &["service.version", "langfuse.release"];
const CLASSIFICATION: &[&str] = &["vigil.data.classification"];
const RETENTION: &[&str] = &["vigil.retention"];
const AUDIT_REF: &[&str] = &["vigil.audit.ref"];
/// Not in the table: run tags, from Vigil's own name or the Langfuse SDK's.
const TAGS: &[&str] = &["vigil.run.tags", "langfuse.trace.tags"];
/// Not in the table: a shadow run (`true`, as a boolean or as text).
const SHADOW: &[&str] = &["vigil.shadow"];

const EXCEPTION_EVENT: &str = "exception";
const EXCEPTION_TYPE: &str = "exception.type";
const EXCEPTION_MESSAGE: &str = "exception.message";

/// Spans in a request, to refuse an oversized request before decoding it.
pub fn count_spans(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

/// Converts an OTLP export into draft spans. A span that fails validation is reported with its
/// 0-based index across the whole request (all resource and scope spans, in order); the others
/// are kept. `now_ns` stamps `ingested_at_ns` and is the clock times are checked against.
pub fn decode_otlp(request: ExportTraceServiceRequest, limits: &Limits, now_ns: i64) -> DraftOtlp {
    let mut out = DraftOtlp::default();
    let mut index = 0usize;
    for resource_spans in &request.resource_spans {
        let resource: &[KeyValue] = resource_spans
            .resource
            .as_ref()
            .map_or(&[], |r| r.attributes.as_slice());
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                match decode_span(span, resource, limits, now_ns) {
                    Ok(draft) => out.spans.push(draft),
                    Err(error) => out.rejected.push(Rejected {
                        item: ItemKind::Span,
                        index,
                        error,
                    }),
                }
                index += 1;
            }
        }
    }
    out
}

fn decode_span(
    span: &Span,
    resource: &[KeyValue],
    limits: &Limits,
    now_ns: i64,
) -> Result<DraftSpan, FieldError> {
    validate::check_attribute_count(span.attributes.len() + resource.len(), limits)?;
    let mut attrs = Attributes::new(&span.attributes, resource);
    let kind = decide_kind(&attrs);

    let mut row = SpanRow {
        trace_id: hex::encode(&span.trace_id),
        span_id: hex::encode(&span.span_id),
        parent_span_id: parent_id(&span.parent_span_id),
        kind,
        name: span.name.clone(),
        start_time_ns: timestamp(span.start_time_unix_nano),
        end_time_ns: timestamp(span.end_time_unix_nano),
        ingested_at_ns: now_ns,
        ..Default::default()
    };

    // Status and error.
    let status = span.status.as_ref();
    row.status = match status.map(|s| StatusCode::try_from(s.code)) {
        Some(Ok(StatusCode::Error)) => SpanStatus::Error,
        Some(Ok(StatusCode::Ok)) => SpanStatus::Ok,
        _ => SpanStatus::Unset,
    };
    let exception = span
        .events
        .iter()
        .find(|e| e.name == EXCEPTION_EVENT)
        .map(|e| e.attributes.as_slice())
        .unwrap_or_default();
    if row.status == SpanStatus::Error {
        row.status_message = status.map(|s| s.message.clone()).unwrap_or_default();
        if row.status_message.is_empty() {
            row.status_message = event_text(exception, EXCEPTION_MESSAGE).unwrap_or_default();
        }
    }
    row.error_type = attrs.take(ERROR_TYPE, text).unwrap_or_default();
    if row.error_type.is_empty() && row.status == SpanStatus::Error {
        row.error_type = event_text(exception, EXCEPTION_TYPE).unwrap_or_default();
    }

    // Model call.
    let response_model = attrs.peek(&[RESPONSE_MODEL], text);
    let request_model = attrs.peek(&[REQUEST_MODEL], text);
    row.model = attrs.take(MODEL, text).unwrap_or_default();
    row.model_version = attrs
        .take(MODEL_VERSION, text)
        .or_else(|| match (response_model, request_model) {
            // The response names the version actually served (`gpt-4o-2024-08-06` for `gpt-4o`).
            (Some(response), Some(request)) if response != request => Some(response),
            _ => None,
        })
        .unwrap_or_default();
    row.provider = attrs.take(PROVIDER, text).unwrap_or_default();
    row.prompt_id = attrs.take(PROMPT_ID, text).unwrap_or_default();
    row.prompt_version = attrs.take(PROMPT_VERSION, text).unwrap_or_default();
    row.input_tokens = attrs
        .take_keyed(INPUT_TOKENS, |k, v| tokens(k, v, |u| u.input))
        .unwrap_or_default();
    row.output_tokens = attrs
        .take_keyed(OUTPUT_TOKENS, |k, v| tokens(k, v, |u| u.output))
        .unwrap_or_default();
    row.cached_input_tokens = attrs
        .take_keyed(CACHED_INPUT_TOKENS, |k, v| tokens(k, v, |u| u.cached_input))
        .unwrap_or_default();
    row.cache_write_tokens = attrs
        .take_keyed(CACHE_WRITE_TOKENS, |k, v| tokens(k, v, |u| u.cache_write))
        .unwrap_or_default();
    row.reasoning_tokens = attrs
        .take_keyed(REASONING_TOKENS, |k, v| tokens(k, v, |u| u.reasoning))
        .unwrap_or_default();
    if let Some(nanos) = attrs.take_keyed(COST, cost_nanos) {
        row.cost_nanos = Some(nanos);
        COST_SOURCE_SDK.clone_into(&mut row.cost_source);
    }

    // Tool call.
    row.tool_name = attrs.take(TOOL_NAME, text).unwrap_or_default();
    row.tool_call_id = attrs.take(TOOL_CALL_ID, text).unwrap_or_default();
    row.tool_version = attrs.take(TOOL_VERSION, text).unwrap_or_default();
    row.retry_count = attrs
        .take(RETRY_COUNT, |v| {
            count(v).and_then(|n| u32::try_from(n).ok())
        })
        .unwrap_or_default();

    // Input and output: a tool call's are its arguments and result.
    if kind == SpanKind::Tool {
        row.input = attrs.take(TOOL_ARGUMENTS, content).unwrap_or_default();
        row.output = attrs.take(TOOL_RESULT, content).unwrap_or_default();
    }
    if row.input.is_empty() {
        row.input = attrs.take(INPUT, content).unwrap_or_default();
    }
    if row.output.is_empty() {
        row.output = attrs.take(OUTPUT, content).unwrap_or_default();
    }
    if kind == SpanKind::Tool {
        // Hashed over the full text, before bounding. A tool span without an arguments
        // attribute (a Langfuse tool observation) was called with its input.
        row.tool_args_hash = validate::args_hash(&row.input);
    }

    // Run-level fields.
    let run = RunContext {
        session_id: attrs.take(SESSION, text).unwrap_or_default(),
        raw_user_id: attrs.take(RAW_USER, text).map(RawUserId),
        user_hash: attrs.take(USER_HASH, text).unwrap_or_default(),
        task_type: attrs.take(TASK_TYPE, text).unwrap_or_default(),
        agent_name: attrs.take(AGENT_NAME, text).unwrap_or_default(),
        agent_version: attrs.take(AGENT_VERSION, text).unwrap_or_default(),
        environment: attrs.take(ENVIRONMENT, text).unwrap_or_default(),
        release: attrs.take(RELEASE, text).unwrap_or_default(),
        outcome: attrs.take(OUTCOME, |v| text(v).and_then(|t| Outcome::parse(&t))),
        classification: attrs.take(CLASSIFICATION, labels).unwrap_or_default(),
        retention: attrs.take(RETENTION, text).unwrap_or_default(),
        audit_ref: attrs.take(AUDIT_REF, text).unwrap_or_default(),
        tags: attrs.take(TAGS, labels).unwrap_or_default(),
        shadow: attrs.take(SHADOW, flag).unwrap_or_default(),
    };

    // A raw user id is never stored: the names that lost (or could not be read) go too.
    attrs.consume_all(RAW_USER);

    (row.attr_keys, row.attr_values) = attrs.unmapped();
    validate::check_span(&row, limits, now_ns)?;
    validate::check_context(&run, limits)?;
    validate::bound_span(&mut row, limits);
    Ok(DraftSpan { row, run })
}

/// The kind, decided in the order of docs/api.md#span-kind. A value that names no kind Vigil has
/// (Langfuse's `span` or `event`, OpenInference's `CHAIN`, an unknown operation) does not decide:
/// the next rule is tried.
fn decide_kind(attrs: &Attributes<'_>) -> SpanKind {
    let langfuse = attrs.peek(&[LANGFUSE_TYPE], |v| {
        text(v).and_then(|t| match t.to_ascii_lowercase().as_str() {
            "generation" | "embedding" => Some(SpanKind::Model),
            "tool" => Some(SpanKind::Tool),
            "agent" => Some(SpanKind::Agent),
            "retriever" => Some(SpanKind::Retrieval),
            _ => None,
        })
    });
    let openinference = || {
        attrs.peek(&[OPENINFERENCE_KIND], |v| {
            text(v).and_then(|t| match t.to_ascii_uppercase().as_str() {
                "LLM" | "EMBEDDING" => Some(SpanKind::Model),
                "TOOL" => Some(SpanKind::Tool),
                "AGENT" => Some(SpanKind::Agent),
                "RETRIEVER" | "RERANKER" => Some(SpanKind::Retrieval),
                _ => None,
            })
        })
    };
    let operation = || {
        attrs.peek(&[OPERATION_NAME], |v| {
            text(v).and_then(|t| match t.to_ascii_lowercase().as_str() {
                "chat" | "text_completion" | "generate_content" | "embeddings" => {
                    Some(SpanKind::Model)
                }
                "execute_tool" => Some(SpanKind::Tool),
                "invoke_agent" | "create_agent" | "invoke_workflow" => Some(SpanKind::Agent),
                "retrieval" => Some(SpanKind::Retrieval),
                _ => None,
            })
        })
    };
    let tool = || attrs.peek(TOOL_MARKERS, text).map(|_| SpanKind::Tool);
    let model = || attrs.peek(MODEL, text).map(|_| SpanKind::Model);
    langfuse
        .or_else(openinference)
        .or_else(operation)
        .or_else(tool)
        .or_else(model)
        .unwrap_or(SpanKind::Other)
}

/// The span's and the resource's attributes, one entry per key: a span attribute hides a resource
/// attribute of the same key, and the first of duplicated keys wins.
struct Attributes<'a> {
    entries: Vec<Entry<'a>>,
    by_key: HashMap<&'a str, usize>,
}

struct Entry<'a> {
    key: &'a str,
    value: Option<&'a Value>,
    from_span: bool,
    consumed: bool,
}

impl<'a> Attributes<'a> {
    fn new(span: &'a [KeyValue], resource: &'a [KeyValue]) -> Self {
        let mut attrs = Attributes {
            entries: Vec::with_capacity(span.len() + resource.len()),
            by_key: HashMap::with_capacity_and_hasher(
                span.len() + resource.len(),
                Default::default(),
            ),
        };
        for (list, from_span) in [(span, true), (resource, false)] {
            for kv in list {
                if attrs.by_key.contains_key(kv.key.as_str()) {
                    continue;
                }
                attrs.by_key.insert(kv.key.as_str(), attrs.entries.len());
                attrs.entries.push(Entry {
                    key: &kv.key,
                    value: kv.value.as_ref().and_then(|v| v.value.as_ref()),
                    from_span,
                    consumed: false,
                });
            }
        }
        attrs
    }

    /// Index and value of the first of `keys` (span first, then resource) that `read` accepts.
    fn find<T>(
        &self,
        keys: &[&str],
        read: impl Fn(&str, &Value) -> Option<T>,
    ) -> Option<(usize, T)> {
        for from_span in [true, false] {
            for key in keys {
                let Some(&i) = self.by_key.get(key) else {
                    continue;
                };
                let entry = &self.entries[i];
                if entry.from_span != from_span {
                    continue;
                }
                if let Some(found) = entry.value.and_then(|v| read(key, v)) {
                    return Some((i, found));
                }
            }
        }
        None
    }

    /// Reads a field without consuming its attribute.
    fn peek<T>(&self, keys: &[&str], read: impl Fn(&Value) -> Option<T>) -> Option<T> {
        self.find(keys, |_, v| read(v)).map(|(_, t)| t)
    }

    /// Reads a field and consumes the attribute it came from.
    fn take<T>(&mut self, keys: &[&str], read: impl Fn(&Value) -> Option<T>) -> Option<T> {
        self.take_keyed(keys, |_, v| read(v))
    }

    /// Like `take`, for fields whose names are read differently (a JSON object among numbers).
    fn take_keyed<T>(
        &mut self,
        keys: &[&str],
        read: impl Fn(&str, &Value) -> Option<T>,
    ) -> Option<T> {
        let (i, found) = self.find(keys, read)?;
        self.entries[i].consumed = true;
        Some(found)
    }

    /// Consumes every attribute of these names, read or not.
    fn consume_all(&mut self, keys: &[&str]) {
        for key in keys {
            if let Some(&i) = self.by_key.get(key) {
                self.entries[i].consumed = true;
            }
        }
    }

    /// The attributes not consumed, span's first, values rendered as text.
    fn unmapped(&self) -> (Vec<String>, Vec<String>) {
        self.entries
            .iter()
            .filter(|e| !e.consumed)
            .map(|e| {
                (
                    e.key.to_string(),
                    e.value.map(render_text).unwrap_or_default(),
                )
            })
            .unzip()
    }
}

fn parent_id(bytes: &[u8]) -> String {
    // Some exporters send eight zero bytes instead of nothing for a root span.
    if bytes.iter().all(|&b| b == 0) {
        String::new()
    } else {
        hex::encode(bytes)
    }
}

fn timestamp(unix_nano: u64) -> i64 {
    // Past i64 is centuries away: the time check refuses it.
    i64::try_from(unix_nano).unwrap_or(i64::MAX)
}

fn event_text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .and_then(text)
}

// ---- readers: a value as what a field needs, or `None` when it cannot be read so ----

/// A name or identifier: scalars as text; empty strings and structures are absent.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(s) if s.is_empty() => None,
        Value::ArrayValue(_) | Value::KvlistValue(_) | Value::StringValueStrindex(_) => None,
        Value::BytesValue(b) if b.is_empty() => None,
        other => Some(render_text(other)),
    }
}

/// A yes or no: a boolean, or the text `true` / `false` in any case.
fn flag(value: &Value) -> Option<bool> {
    match value {
        Value::BoolValue(b) => Some(*b),
        Value::StringValue(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::StringValue(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Free text (input, output, arguments): strings as they are, structures as JSON.
fn content(value: &Value) -> Option<String> {
    match value {
        Value::StringValueStrindex(_) => None,
        other => Some(render_text(other)).filter(|s| !s.is_empty()),
    }
}

/// A non-negative count: an integer, a whole or rounded float, or a numeric string.
fn count(value: &Value) -> Option<u64> {
    match value {
        Value::IntValue(i) => u64::try_from(*i).ok(),
        Value::DoubleValue(d) => float_count(*d),
        Value::StringValue(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(float_count))
        }
        _ => None,
    }
}

fn float_count(d: f64) -> Option<u64> {
    // Not NaN, not negative, within u64 (where `as` would saturate).
    (0.0..1.8e19).contains(&d).then(|| d.round() as u64)
}

/// A number (USD): an integer, a float or a numeric string.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::IntValue(i) => Some(*i as f64),
        Value::DoubleValue(d) => Some(*d).filter(|d| d.is_finite()),
        Value::StringValue(s) => s.trim().parse::<f64>().ok().filter(|d| d.is_finite()),
        _ => None,
    }
}

/// Labels: a string array, or one comma-separated string. Blank labels are dropped.
fn labels(value: &Value) -> Option<Vec<String>> {
    let list: Vec<String> = match value {
        Value::ArrayValue(array) => array
            .values
            .iter()
            .filter_map(|v| v.value.as_ref().and_then(text))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Value::StringValue(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    (!list.is_empty()).then_some(list)
}

/// A token count, from a plain attribute or from Langfuse's `usage_details` object.
fn tokens(key: &str, value: &Value, pick: fn(&UsageDetails) -> Option<u64>) -> Option<u64> {
    if key == USAGE_DETAILS {
        json_object(value).and_then(|o| pick(&UsageDetails::from_json(&o)))
    } else {
        count(value)
    }
}

/// An SDK-reported cost in nano-dollars: Langfuse's `cost_details` object (its `total`, else the
/// sum of its entries) or a number of dollars.
fn cost_nanos(key: &str, value: &Value) -> Option<i64> {
    let usd = if key == COST_DETAILS {
        let object = json_object(value)?;
        match object.get("total").and_then(json_number) {
            Some(total) => total,
            None => {
                let parts: Vec<f64> = object.values().filter_map(json_number).collect();
                if parts.is_empty() {
                    return None;
                }
                parts.iter().sum()
            }
        }
    } else {
        number(value)?
    };
    usd_to_nanos(usd)
}

/// Token counts from Langfuse's `usage_details`. Langfuse keeps usage in disjoint buckets (its
/// `input` excludes cache reads and writes, its `output` excludes reasoning) and prices each;
/// Vigil counts all input in `input_tokens` and all output in `output_tokens` (the OpenTelemetry
/// GenAI convention), so the buckets are added up. `total` is ignored.
#[derive(Debug, Default, PartialEq, Eq)]
struct UsageDetails {
    input: Option<u64>,
    output: Option<u64>,
    cached_input: Option<u64>,
    cache_write: Option<u64>,
    reasoning: Option<u64>,
}

impl UsageDetails {
    fn from_json(object: &serde_json::Map<String, serde_json::Value>) -> Self {
        fn add(slot: &mut Option<u64>, n: u64) {
            *slot = Some(slot.unwrap_or(0).saturating_add(n));
        }
        let mut u = UsageDetails::default();
        let (mut plain_input, mut plain_output) = (None, None);
        for (key, value) in object {
            let Some(n) = json_number(value).and_then(float_count) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if key.contains("total") {
                continue;
            } else if key.contains("cache_read") || key.contains("cached") {
                add(&mut u.cached_input, n);
            } else if key.contains("cache_creation") || key.contains("cache_write") {
                add(&mut u.cache_write, n);
            } else if key.contains("reasoning") {
                add(&mut u.reasoning, n);
            } else if key.starts_with("input") || key.starts_with("prompt") {
                add(&mut plain_input, n);
            } else if key.starts_with("output") || key.starts_with("completion") {
                add(&mut plain_output, n);
            }
        }
        for part in [plain_input, u.cached_input, u.cache_write]
            .into_iter()
            .flatten()
        {
            add(&mut u.input, part);
        }
        for part in [plain_output, u.reasoning].into_iter().flatten() {
            add(&mut u.output, part);
        }
        u
    }
}

/// A JSON object given as a JSON string or as an OTLP key/value list.
fn json_object(value: &Value) -> Option<serde_json::Map<String, serde_json::Value>> {
    let parsed = match value {
        Value::StringValue(s) => serde_json::from_str(s).ok()?,
        Value::KvlistValue(_) => to_json(Some(value)),
        _ => return None,
    };
    match parsed {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

fn json_number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|n| n.is_finite())
}

fn to_json(value: Option<&Value>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        None | Some(Value::StringValueStrindex(_)) => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Some(Value::BytesValue(b)) => J::String(hex::encode(b)),
        Some(Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|v| to_json(v.value.as_ref())).collect())
        }
        Some(Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|e| {
                    (
                        e.key.clone(),
                        to_json(e.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
    }
}

// ---- rendering: any value as text; structures as JSON, keys in their order ----

/// An attribute value as text: strings as they are, numbers and booleans in their usual form,
/// bytes as lowercase hex, arrays and key/value lists as JSON.
fn render_text(value: &Value) -> String {
    match value {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => render_f64(*d),
        Value::BytesValue(b) => hex::encode(b),
        Value::StringValueStrindex(_) => String::new(),
        Value::ArrayValue(_) | Value::KvlistValue(_) => {
            let mut out = String::new();
            write_json(Some(value), &mut out);
            out
        }
    }
}

/// A float as text: whole numbers without a fraction (`3`), others in their shortest exact form,
/// with an exponent when very large or small (`0.25`, `1e300`), so a value stays short. Finite
/// values come out as valid JSON numbers.
fn render_f64(d: f64) -> String {
    if d.is_finite() && d.fract() == 0.0 && d.abs() < 1e16 {
        format!("{d}")
    } else {
        format!("{d:?}")
    }
}

fn write_json(value: Option<&Value>, out: &mut String) {
    match value {
        None | Some(Value::StringValueStrindex(_)) => out.push_str("null"),
        Some(Value::StringValue(s)) => write_json_string(s, out),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        // JSON has no NaN or infinity: those are written as strings, so nothing is lost.
        Some(Value::DoubleValue(d)) if d.is_finite() => out.push_str(&render_f64(*d)),
        Some(Value::DoubleValue(d)) => write_json_string(&render_f64(*d), out),
        Some(Value::BytesValue(b)) => write_json_string(&hex::encode(b), out),
        Some(Value::ArrayValue(array)) => {
            out.push('[');
            for (i, v) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(v.value.as_ref(), out);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(list)) => {
            out.push('{');
            for (i, kv) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(&kv.key, out);
                out.push(':');
                write_json(kv.value.as_ref().and_then(|v| v.value.as_ref()), out);
            }
            out.push('}');
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};
    use vigil_proto::otlp::{
        common::v1::{AnyValue, ArrayValue, KeyValueList},
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Status, span::Event},
    };
    use vigil_schemas::time::{NANOS_PER_DAY, NANOS_PER_SECOND};

    use super::*;

    const NOW: i64 = 1_800_000_000 * NANOS_PER_SECOND;
    const TRACE: [u8; 16] = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    const SPAN: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

    fn s(v: &str) -> Value {
        Value::StringValue(v.to_string())
    }

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn array(values: Vec<Value>) -> Value {
        Value::ArrayValue(ArrayValue {
            values: values
                .into_iter()
                .map(|v| AnyValue { value: Some(v) })
                .collect(),
        })
    }

    fn kvlist(entries: Vec<(&str, Value)>) -> Value {
        Value::KvlistValue(KeyValueList {
            values: entries.into_iter().map(|(k, v)| kv(k, v)).collect(),
        })
    }

    fn span(attributes: Vec<KeyValue>) -> Span {
        Span {
            trace_id: TRACE.to_vec(),
            span_id: SPAN.to_vec(),
            parent_span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
            name: "step".into(),
            start_time_unix_nano: (NOW - 3 * NANOS_PER_SECOND) as u64,
            end_time_unix_nano: (NOW - NANOS_PER_SECOND) as u64,
            attributes,
            ..Default::default()
        }
    }

    fn request(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn decode_with(span_attrs: Vec<KeyValue>, resource: Vec<KeyValue>) -> DraftSpan {
        decode_span_ok(span(span_attrs), resource)
    }

    fn decode_span_ok(span: Span, resource: Vec<KeyValue>) -> DraftSpan {
        let mut out = decode_otlp(request(resource, vec![span]), &Limits::default(), NOW);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        out.spans.remove(0)
    }

    fn decode_attrs(span_attrs: Vec<KeyValue>) -> DraftSpan {
        decode_with(span_attrs, Vec::new())
    }

    /// Proves a table row: for every source name, (1) it wins over all names after it, whatever
    /// their order in the span; (2) it is read from the resource when the span lacks it; (3) the
    /// last name on the span beats the first name on the resource; (4) the winner is consumed and
    /// the losers are kept as attributes.
    fn first_found_wins(
        keys: &[&str],
        extra: &[KeyValue],
        make: impl Fn(usize) -> Value,
        read: impl Fn(&DraftSpan) -> String,
        expect: impl Fn(usize) -> String,
    ) {
        for i in 0..keys.len() {
            let mut attrs: Vec<KeyValue> = (i..keys.len())
                .rev()
                .map(|j| kv(keys[j], make(j)))
                .collect();
            attrs.extend_from_slice(extra);
            let d = decode_attrs(attrs);
            assert_eq!(read(&d), expect(i), "{} should win", keys[i]);
            assert_eq!(
                d.row.attribute(keys[i]),
                None,
                "{} should be consumed",
                keys[i]
            );
            for loser in &keys[i + 1..] {
                assert!(d.row.attribute(loser).is_some(), "{loser} should be kept");
            }

            let d = decode_with(extra.to_vec(), vec![kv(keys[i], make(i))]);
            assert_eq!(read(&d), expect(i), "{} from the resource", keys[i]);
        }
        let last = keys.len() - 1;
        let mut attrs = vec![kv(keys[last], make(last))];
        attrs.extend_from_slice(extra);
        let d = decode_with(attrs, vec![kv(keys[0], make(0))]);
        assert_eq!(
            read(&d),
            expect(last),
            "the span's {} beats the resource's {}",
            keys[last],
            keys[0]
        );
    }

    fn text_row(keys: &[&str], extra: &[KeyValue], read: impl Fn(&DraftSpan) -> String) {
        first_found_wins(
            keys,
            extra,
            |j| s(&format!("v{j}")),
            read,
            |i| format!("v{i}"),
        );
    }

    fn count_row(keys: &[&str], read: impl Fn(&DraftSpan) -> u64) {
        first_found_wins(
            keys,
            &[],
            |j| Value::IntValue(10 + j as i64),
            |d| read(d).to_string(),
            |i| (10 + i).to_string(),
        );
    }

    // ---- the mapping table, row by row ----

    #[test]
    fn model() {
        text_row(MODEL, &[], |d| d.row.model.clone());
    }

    #[test]
    fn provider() {
        text_row(PROVIDER, &[], |d| d.row.provider.clone());
    }

    #[test]
    fn input_tokens() {
        count_row(&INPUT_TOKENS[..3], |d| d.row.input_tokens);
        let d = decode_attrs(vec![
            kv(USAGE_DETAILS, s(r#"{"input":10,"output":5,"total":15}"#)),
            kv("llm.token_count.prompt", Value::IntValue(7)),
        ]);
        assert_eq!(d.row.input_tokens, 7, "usage_details is the last name");
        assert_eq!(d.row.output_tokens, 5);
    }

    #[test]
    fn output_tokens() {
        count_row(&OUTPUT_TOKENS[..3], |d| d.row.output_tokens);
    }

    #[test]
    fn cached_input_tokens() {
        count_row(&CACHED_INPUT_TOKENS[..3], |d| d.row.cached_input_tokens);
    }

    #[test]
    fn cache_write_tokens() {
        count_row(&CACHE_WRITE_TOKENS[..2], |d| d.row.cache_write_tokens);
    }

    #[test]
    fn reasoning_tokens() {
        count_row(&REASONING_TOKENS[..2], |d| d.row.reasoning_tokens);
    }

    #[test]
    fn token_counts_accept_floats_and_strings_and_skip_garbage() {
        let d = decode_attrs(vec![
            kv("gen_ai.usage.input_tokens", s("many")),
            kv("gen_ai.usage.prompt_tokens", s(" 42 ")),
            kv("gen_ai.usage.output_tokens", Value::DoubleValue(7.0)),
            kv("gen_ai.usage.cache_read.input_tokens", Value::IntValue(-3)),
        ]);
        assert_eq!(d.row.input_tokens, 42);
        assert_eq!(d.row.output_tokens, 7);
        assert_eq!(d.row.cached_input_tokens, 0);
        // Unreadable values are kept, not lost.
        assert_eq!(d.row.attribute("gen_ai.usage.input_tokens"), Some("many"));
        assert_eq!(
            d.row.attribute("gen_ai.usage.cache_read.input_tokens"),
            Some("-3")
        );
    }

    #[test]
    fn langfuse_usage_details_are_parsed() {
        let d = decode_attrs(vec![kv(
            USAGE_DETAILS,
            s(r#"{"input":10,"output":5,"total":15}"#),
        )]);
        assert_eq!((d.row.input_tokens, d.row.output_tokens), (10, 5));
        assert_eq!(d.row.attribute(USAGE_DETAILS), None);

        // Langfuse's buckets are disjoint: cache reads/writes add to the input, reasoning to
        // the output.
        let d = decode_attrs(vec![kv(
            USAGE_DETAILS,
            s(
                r#"{"input":100,"cache_read_input_tokens":50,"cache_creation_input_tokens":20,
                 "output":30,"output_reasoning_tokens":12,"total":212}"#,
            ),
        )]);
        let r = &d.row;
        assert_eq!(
            (
                r.input_tokens,
                r.cached_input_tokens,
                r.cache_write_tokens,
                r.output_tokens,
                r.reasoning_tokens
            ),
            (170, 50, 20, 42, 12)
        );

        // A key/value list works as well as a JSON string.
        let d = decode_attrs(vec![kv(
            USAGE_DETAILS,
            kvlist(vec![
                ("input", Value::IntValue(3)),
                ("output", Value::DoubleValue(4.0)),
            ]),
        )]);
        assert_eq!((d.row.input_tokens, d.row.output_tokens), (3, 4));

        // Not JSON: ignored and kept.
        let d = decode_attrs(vec![kv(USAGE_DETAILS, s("{oops"))]);
        assert_eq!(d.row.input_tokens, 0);
        assert_eq!(d.row.attribute(USAGE_DETAILS), Some("{oops"));
    }

    #[test]
    fn sdk_cost() {
        let d = decode_attrs(vec![kv(COST_DETAILS, s(r#"{"total":0.0012}"#))]);
        assert_eq!(d.row.cost_nanos, Some(1_200_000));
        assert_eq!(d.row.cost_source, "sdk");

        let d = decode_attrs(vec![kv("llm.cost.total", Value::DoubleValue(0.5))]);
        assert_eq!(d.row.cost_nanos, Some(500_000_000));
        assert_eq!(d.row.cost_source, "sdk");

        // First found wins, in either order, and from the resource.
        let d = decode_attrs(vec![
            kv("llm.cost.total", Value::DoubleValue(0.5)),
            kv(COST_DETAILS, s(r#"{"total":0.25}"#)),
        ]);
        assert_eq!(d.row.cost_nanos, Some(250_000_000));
        assert_eq!(d.row.attribute("llm.cost.total"), Some("0.5"));
        let d = decode_with(vec![], vec![kv("llm.cost.total", Value::IntValue(2))]);
        assert_eq!(d.row.cost_nanos, Some(2_000_000_000));

        // Without a total, the entries are summed.
        let d = decode_attrs(vec![kv(
            COST_DETAILS,
            s(r#"{"input":0.001,"output":0.002}"#),
        )]);
        assert_eq!(d.row.cost_nanos, Some(3_000_000));

        // Negative or unreadable: no cost, nothing invented.
        let d = decode_attrs(vec![kv("llm.cost.total", Value::DoubleValue(-1.0))]);
        assert_eq!((d.row.cost_nanos, d.row.cost_source.as_str()), (None, ""));
        let d = decode_attrs(vec![]);
        assert_eq!((d.row.cost_nanos, d.row.cost_source.as_str()), (None, ""));
    }

    #[test]
    fn tool_name_and_call_id() {
        text_row(TOOL_NAME, &[], |d| d.row.tool_name.clone());
        text_row(TOOL_CALL_ID, &[], |d| d.row.tool_call_id.clone());
    }

    #[test]
    fn tool_arguments_and_result() {
        let tool = [kv(OPERATION_NAME, s("execute_tool"))];
        text_row(TOOL_ARGUMENTS, &tool, |d| d.row.input.clone());
        text_row(TOOL_RESULT, &tool, |d| d.row.output.clone());
    }

    #[test]
    fn tool_arguments_are_hashed_and_structured_ones_rendered_as_json() {
        let d = decode_attrs(vec![
            kv("gen_ai.tool.name", s("weather")),
            kv(
                "gen_ai.tool.call.arguments",
                kvlist(vec![("city", s("Paris")), ("days", Value::IntValue(3))]),
            ),
            kv("vigil.tool.retry_count", Value::IntValue(2)),
        ]);
        let args = r#"{"city":"Paris","days":3}"#;
        assert_eq!(d.row.kind, SpanKind::Tool);
        assert_eq!(d.row.input, args);
        assert_eq!(
            d.row.tool_args_hash,
            hex::encode(Sha256::digest(args.as_bytes()))[..16]
        );
        assert_eq!(d.row.retry_count, 2);

        let none = decode_attrs(vec![kv("gen_ai.tool.name", s("now"))]);
        assert_eq!(none.row.tool_args_hash, "");

        // Not a tool span: `input.value` is the input and there is no argument hash.
        let llm = decode_attrs(vec![
            kv(OPENINFERENCE_KIND, s("LLM")),
            kv("input.value", s("hi")),
        ]);
        assert_eq!(
            (llm.row.input.as_str(), llm.row.tool_args_hash.as_str()),
            ("hi", "")
        );
    }

    #[test]
    fn tool_version_and_retry_count() {
        text_row(TOOL_VERSION, &[], |d| d.row.tool_version.clone());
        count_row(RETRY_COUNT, |d| u64::from(d.row.retry_count));
    }

    #[test]
    fn agent_name_and_version() {
        text_row(AGENT_NAME, &[], |d| d.run.agent_name.clone());
        text_row(AGENT_VERSION, &[], |d| d.run.agent_version.clone());
    }

    #[test]
    fn session() {
        text_row(SESSION, &[], |d| d.run.session_id.clone());
    }

    #[test]
    fn raw_user() {
        let raw = |d: &DraftSpan| d.run.raw_user_id.clone().unwrap_or_default().0;
        for (i, key) in RAW_USER.iter().enumerate() {
            let attrs = (i..RAW_USER.len())
                .rev()
                .map(|j| kv(RAW_USER[j], s(&format!("person{j}"))));
            let d = decode_with(attrs.collect(), vec![kv(RAW_USER[0], s("resource-person"))]);
            assert_eq!(raw(&d), format!("person{i}"), "{key} should win");
            let d = decode_with(vec![], vec![kv(key, s("resource-person"))]);
            assert_eq!(raw(&d), "resource-person");
        }
        let d = decode_attrs(vec![kv("user.id", s("alice@example.com"))]);
        assert_eq!(
            d.run.raw_user_id,
            Some(RawUserId("alice@example.com".into()))
        );
        assert_eq!(d.run.user_hash, "");

        // Raw ids are never kept as attributes: not the losers, not the resource's, not the
        // unreadable ones.
        let d = decode_with(
            vec![
                kv("user.id", s("alice")),
                kv("langfuse.user.id", s("bob")),
                kv("enduser.id", array(vec![s("carol")])),
            ],
            vec![kv("enduser.id", s("dave")), kv("user.id", s("erin"))],
        );
        assert_eq!(raw(&d), "alice");
        let kept = format!("{:?} {:?}", d.row.attr_keys, d.row.attr_values);
        for name in ["alice", "bob", "carol", "dave", "erin"] {
            assert!(!kept.contains(name), "{name} leaked: {kept}");
        }
        let d = decode_attrs(vec![kv("user.id", kvlist(vec![("id", s("frank"))]))]);
        assert_eq!(d.run.raw_user_id, None);
        assert!(!format!("{:?}", d.row.attr_values).contains("frank"));
    }

    #[test]
    fn hashed_user() {
        text_row(USER_HASH, &[], |d| d.run.user_hash.clone());
        assert_eq!(
            decode_attrs(vec![kv("vigil.user.hash", s("ab12"))])
                .run
                .raw_user_id,
            None
        );
    }

    #[test]
    fn prompt_id_and_version() {
        text_row(PROMPT_ID, &[], |d| d.row.prompt_id.clone());
        text_row(PROMPT_VERSION, &[], |d| d.row.prompt_version.clone());
        // Langfuse sends the version as an integer.
        let d = decode_attrs(vec![kv(
            "langfuse.observation.prompt.version",
            Value::IntValue(3),
        )]);
        assert_eq!(d.row.prompt_version, "3");
    }

    #[test]
    fn input_and_output() {
        text_row(INPUT, &[], |d| d.row.input.clone());
        text_row(OUTPUT, &[], |d| d.row.output.clone());
    }

    #[test]
    fn structured_messages_are_rendered_as_json() {
        let message = kvlist(vec![
            ("role", s("user")),
            (
                "parts",
                array(vec![kvlist(vec![
                    ("type", s("text")),
                    ("content", s("say \"hi\"\n")),
                ])]),
            ),
        ]);
        let d = decode_attrs(vec![
            kv("gen_ai.input.messages", array(vec![message])),
            kv("gen_ai.output.messages", s(r#"[{"role":"assistant"}]"#)),
        ]);
        let expected = r#"[{"role":"user","parts":[{"type":"text","content":"say \"hi\"\n"}]}]"#;
        assert_eq!(d.row.input, expected);
        let parsed: serde_json::Value = serde_json::from_str(&d.row.input).unwrap();
        assert_eq!(parsed[0]["parts"][0]["content"], "say \"hi\"\n");
        assert_eq!(d.row.output, r#"[{"role":"assistant"}]"#);
    }

    #[test]
    fn task_type_retention_audit_ref() {
        text_row(TASK_TYPE, &[], |d| d.run.task_type.clone());
        text_row(RETENTION, &[], |d| d.run.retention.clone());
        text_row(AUDIT_REF, &[], |d| d.run.audit_ref.clone());
    }

    #[test]
    fn environment_and_release() {
        text_row(ENVIRONMENT, &[], |d| d.run.environment.clone());
        text_row(RELEASE, &[], |d| d.run.release.clone());
    }

    #[test]
    fn error_type() {
        text_row(ERROR_TYPE, &[], |d| d.row.error_type.clone());
    }

    #[test]
    fn outcome() {
        first_found_wins(
            OUTCOME,
            &[],
            |_| s("Partial"),
            |d| format!("{:?}", d.run.outcome),
            |_| "Some(Partial)".into(),
        );
        let d = decode_attrs(vec![kv("vigil.run.outcome", s("exploded"))]);
        assert_eq!(d.run.outcome, None);
        assert_eq!(d.row.attribute("vigil.run.outcome"), Some("exploded"));
        assert_eq!(decode_attrs(vec![]).run.outcome, None);
    }

    #[test]
    fn classification() {
        let d = decode_attrs(vec![kv(
            "vigil.data.classification",
            array(vec![s("pii"), s(" "), s("financial")]),
        )]);
        assert_eq!(
            d.run.classification,
            vec!["pii".to_string(), "financial".to_string()]
        );
        let d = decode_attrs(vec![kv("vigil.data.classification", s("pii, phi ,"))]);
        assert_eq!(
            d.run.classification,
            vec!["pii".to_string(), "phi".to_string()]
        );
        let d = decode_with(
            vec![],
            vec![kv("vigil.data.classification", s("confidential"))],
        );
        assert_eq!(d.run.classification, vec!["confidential".to_string()]);
        let d = decode_with(
            vec![kv("vigil.data.classification", array(vec![s("phi")]))],
            vec![kv("vigil.data.classification", s("confidential"))],
        );
        assert_eq!(d.run.classification, vec!["phi".to_string()]);
    }

    #[test]
    fn tags() {
        text_row(TAGS, &[], |d| d.run.tags.join(","));
        let d = decode_attrs(vec![kv(
            "langfuse.trace.tags",
            array(vec![s("beta"), s("eu")]),
        )]);
        assert_eq!(d.run.tags, vec!["beta".to_string(), "eu".to_string()]);
    }

    #[test]
    fn shadow_runs() {
        for (value, shadow) in [
            (Value::BoolValue(true), true),
            (s("true"), true),
            (s("TRUE"), true),
            (Value::BoolValue(false), false),
            (s("false"), false),
            (s("yes"), false),
        ] {
            let d = decode_attrs(vec![kv("vigil.shadow", value.clone())]);
            assert_eq!(d.run.shadow, shadow, "{value:?}");
            // Read into the run, never kept as an attribute of the span.
            assert_eq!(
                d.row.attribute("vigil.shadow").is_some(),
                !shadow && value == s("yes")
            );
        }
        assert!(!decode_attrs(vec![]).run.shadow);
    }

    #[test]
    fn model_version() {
        // The response model wins the model; it is the version when it differs from the request.
        let d = decode_attrs(vec![
            kv(REQUEST_MODEL, s("gpt-4o")),
            kv(RESPONSE_MODEL, s("gpt-4o-2024-08-06")),
        ]);
        assert_eq!(d.row.model, "gpt-4o-2024-08-06");
        assert_eq!(d.row.model_version, "gpt-4o-2024-08-06");
        assert_eq!(d.row.attribute(REQUEST_MODEL), Some("gpt-4o"));

        let same = decode_attrs(vec![
            kv(REQUEST_MODEL, s("gpt-4o")),
            kv(RESPONSE_MODEL, s("gpt-4o")),
        ]);
        assert_eq!(same.row.model_version, "");

        let explicit = decode_attrs(vec![
            kv(REQUEST_MODEL, s("gpt-4o")),
            kv(RESPONSE_MODEL, s("gpt-4o-2024-08-06")),
            kv("vigil.model.version", s("2024-08-06-ft")),
        ]);
        assert_eq!(explicit.row.model_version, "2024-08-06-ft");
        text_row(MODEL_VERSION, &[], |d| d.row.model_version.clone());
    }

    // ---- kind ----

    fn kind_of(attrs: Vec<KeyValue>) -> SpanKind {
        decode_attrs(attrs).row.kind
    }

    #[test]
    fn kind_decision_order() {
        // 1. langfuse.observation.type beats everything after it.
        assert_eq!(
            kind_of(vec![
                kv(OPENINFERENCE_KIND, s("TOOL")),
                kv(OPERATION_NAME, s("invoke_agent")),
                kv(LANGFUSE_TYPE, s("generation")),
            ]),
            SpanKind::Model
        );
        // 2. openinference.span.kind beats gen_ai.operation.name.
        assert_eq!(
            kind_of(vec![
                kv(OPERATION_NAME, s("chat")),
                kv(OPENINFERENCE_KIND, s("AGENT"))
            ]),
            SpanKind::Agent
        );
        // 3. gen_ai.operation.name beats the tool and model markers.
        assert_eq!(
            kind_of(vec![
                kv("gen_ai.tool.name", s("t")),
                kv(REQUEST_MODEL, s("m")),
                kv(OPERATION_NAME, s("retrieval")),
            ]),
            SpanKind::Retrieval
        );
        // 4. A tool marker beats a model name.
        assert_eq!(
            kind_of(vec![kv(REQUEST_MODEL, s("m")), kv("tool.id", s("c1"))]),
            SpanKind::Tool
        );
        // 5. A model name.
        assert_eq!(kind_of(vec![kv("llm.model_name", s("m"))]), SpanKind::Model);
        // 6. Otherwise other.
        assert_eq!(kind_of(vec![kv("http.method", s("GET"))]), SpanKind::Other);
        // Values that name no kind fall through to the next rule.
        assert_eq!(
            kind_of(vec![
                kv(LANGFUSE_TYPE, s("span")),
                kv(OPENINFERENCE_KIND, s("TOOL"))
            ]),
            SpanKind::Tool
        );
        assert_eq!(
            kind_of(vec![
                kv(OPENINFERENCE_KIND, s("CHAIN")),
                kv(OPERATION_NAME, s("create_agent"))
            ]),
            SpanKind::Agent
        );
        assert_eq!(
            kind_of(vec![
                kv(OPERATION_NAME, s("something_new")),
                kv("gen_ai.tool.call.id", s("c"))
            ]),
            SpanKind::Tool
        );
        // The kind attributes are kept: they say more than the kind.
        let d = decode_attrs(vec![kv(OPERATION_NAME, s("embeddings"))]);
        assert_eq!(d.row.kind, SpanKind::Model);
        assert_eq!(d.row.attribute(OPERATION_NAME), Some("embeddings"));
        // A resource attribute counts, with lower priority.
        let d = decode_with(
            vec![kv(OPERATION_NAME, s("chat"))],
            vec![kv(LANGFUSE_TYPE, s("tool"))],
        );
        assert_eq!(d.row.kind, SpanKind::Tool);
    }

    #[test]
    fn every_kind_value_maps_as_documented() {
        for (value, kind) in [
            ("generation", SpanKind::Model),
            ("GENERATION", SpanKind::Model),
            ("embedding", SpanKind::Model),
            ("tool", SpanKind::Tool),
            ("agent", SpanKind::Agent),
            ("retriever", SpanKind::Retrieval),
            ("event", SpanKind::Other),
        ] {
            assert_eq!(
                kind_of(vec![kv(LANGFUSE_TYPE, s(value))]),
                kind,
                "langfuse {value}"
            );
        }
        for (value, kind) in [
            ("LLM", SpanKind::Model),
            ("EMBEDDING", SpanKind::Model),
            ("TOOL", SpanKind::Tool),
            ("AGENT", SpanKind::Agent),
            ("RETRIEVER", SpanKind::Retrieval),
            ("RERANKER", SpanKind::Retrieval),
            ("CHAIN", SpanKind::Other),
        ] {
            assert_eq!(
                kind_of(vec![kv(OPENINFERENCE_KIND, s(value))]),
                kind,
                "openinference {value}"
            );
        }
        for (value, kind) in [
            ("chat", SpanKind::Model),
            ("text_completion", SpanKind::Model),
            ("generate_content", SpanKind::Model),
            ("embeddings", SpanKind::Model),
            ("execute_tool", SpanKind::Tool),
            ("invoke_agent", SpanKind::Agent),
            ("create_agent", SpanKind::Agent),
            ("invoke_workflow", SpanKind::Agent),
            ("retrieval", SpanKind::Retrieval),
        ] {
            assert_eq!(
                kind_of(vec![kv(OPERATION_NAME, s(value))]),
                kind,
                "operation {value}"
            );
        }
        for key in TOOL_MARKERS {
            assert_eq!(kind_of(vec![kv(key, s("x"))]), SpanKind::Tool, "{key}");
        }
        for key in MODEL {
            assert_eq!(kind_of(vec![kv(key, s("x"))]), SpanKind::Model, "{key}");
        }
    }

    // ---- status, ids, times ----

    fn with_status(
        code: StatusCode,
        message: &str,
        attrs: Vec<KeyValue>,
        events: Vec<Event>,
    ) -> DraftSpan {
        let mut sp = span(attrs);
        sp.status = Some(Status {
            message: message.into(),
            code: code as i32,
        });
        sp.events = events;
        decode_span_ok(sp, vec![])
    }

    fn exception(kind: &str, message: &str) -> Event {
        Event {
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", s(kind)),
                kv("exception.message", s(message)),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn status() {
        let d = with_status(
            StatusCode::Error,
            "rate limited",
            vec![kv("error.type", s("429"))],
            vec![],
        );
        assert_eq!(d.row.status, SpanStatus::Error);
        assert_eq!(
            (d.row.status_message.as_str(), d.row.error_type.as_str()),
            ("rate limited", "429")
        );

        let d = with_status(
            StatusCode::Error,
            "",
            vec![],
            vec![exception("ValueError", "bad input")],
        );
        assert_eq!(
            (d.row.error_type.as_str(), d.row.status_message.as_str()),
            ("ValueError", "bad input")
        );

        let d = with_status(
            StatusCode::Error,
            "boom",
            vec![kv("error.type", s("timeout"))],
            vec![exception("ValueError", "bad input")],
        );
        assert_eq!(
            (d.row.error_type.as_str(), d.row.status_message.as_str()),
            ("timeout", "boom")
        );

        let d = with_status(
            StatusCode::Ok,
            "ignored",
            vec![],
            vec![exception("Handled", "x")],
        );
        assert_eq!(d.row.status, SpanStatus::Ok);
        assert_eq!(
            (d.row.status_message.as_str(), d.row.error_type.as_str()),
            ("", "")
        );

        let d = with_status(StatusCode::Unset, "", vec![], vec![]);
        assert_eq!(d.row.status, SpanStatus::Unset);
        assert_eq!(decode_attrs(vec![]).row.status, SpanStatus::Unset);
    }

    #[test]
    fn ids_become_lowercase_hex() {
        let d = decode_attrs(vec![]);
        assert_eq!(d.row.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(d.row.span_id, "00f067aa0ba902b7");
        assert_eq!(d.row.parent_span_id, "0102030405060708");
        assert_eq!(d.row.name, "step");
        assert_eq!(d.row.start_time_ns, NOW - 3 * NANOS_PER_SECOND);
        assert_eq!(d.row.end_time_ns, NOW - NANOS_PER_SECOND);
        assert_eq!(d.row.ingested_at_ns, NOW);

        let mut root = span(vec![]);
        root.parent_span_id = Vec::new();
        assert_eq!(decode_span_ok(root, vec![]).row.parent_span_id, "");
        let mut zero_parent = span(vec![]);
        zero_parent.parent_span_id = vec![0; 8];
        assert_eq!(decode_span_ok(zero_parent, vec![]).row.parent_span_id, "");
    }

    fn rejection(sp: Span) -> FieldError {
        let out = decode_otlp(request(vec![], vec![sp]), &Limits::default(), NOW);
        assert!(out.spans.is_empty());
        out.rejected[0].error.clone()
    }

    #[test]
    fn invalid_spans_name_the_field_and_the_limit() {
        let mut sp = span(vec![]);
        sp.trace_id = vec![0xab; 15];
        assert_eq!(rejection(sp).field, "span.trace_id");
        let mut sp = span(vec![]);
        sp.trace_id = vec![0; 16];
        assert_eq!(rejection(sp).reason, "must not be all zeros");
        let mut sp = span(vec![]);
        sp.span_id = Vec::new();
        assert_eq!(rejection(sp).field, "span.span_id");
        let mut sp = span(vec![]);
        sp.parent_span_id = vec![1, 2, 3];
        assert_eq!(rejection(sp).field, "span.parent_span_id");

        let mut sp = span(vec![]);
        sp.end_time_unix_nano = sp.start_time_unix_nano - 1;
        assert_eq!(
            rejection(sp).to_string(),
            "span.end_time: is before start_time"
        );
        let mut sp = span(vec![]);
        sp.start_time_unix_nano = (NOW - 20 * 365 * NANOS_PER_DAY) as u64;
        let e = rejection(sp);
        assert_eq!(e.field, "span.start_time");
        assert!(e.reason.contains("365 days"), "{e}");
        let mut sp = span(vec![]);
        sp.start_time_unix_nano = u64::MAX - 1;
        sp.end_time_unix_nano = u64::MAX;
        assert!(rejection(sp).reason.contains("future"));

        let mut sp = span(vec![]);
        sp.name = "x".repeat(1000);
        assert_eq!(
            rejection(sp).to_string(),
            "span.name: 1000 bytes, the limit is 256"
        );
        let e = rejection(span(vec![kv(REQUEST_MODEL, s(&"m".repeat(300)))]));
        assert_eq!(e.to_string(), "span.model: 300 bytes, the limit is 256");
        let e = rejection(span(vec![kv(&"k".repeat(300), s("v"))]));
        assert_eq!(
            e.to_string(),
            "span.attributes: a key of 300 bytes, the limit is 256"
        );
        let e = rejection(span(vec![kv("session.id", s(&"s".repeat(300)))]));
        assert_eq!(e.field, "run.session_id");
        let many: Vec<Value> = (0..100).map(|i| s(&format!("c{i}"))).collect();
        let e = rejection(span(vec![kv("vigil.data.classification", array(many))]));
        assert_eq!(
            e.to_string(),
            "run.classification: 100 labels, the limit is 64"
        );
    }

    #[test]
    fn ten_thousand_attributes_are_refused() {
        let attrs: Vec<KeyValue> = (0..10_000)
            .map(|i| kv(&format!("k{i}"), Value::IntValue(i)))
            .collect();
        let e = rejection(span(attrs));
        assert_eq!(
            e.to_string(),
            "span.attributes: 10000 attributes, the limit is 512"
        );

        // Resource attributes count too.
        let limits = Limits {
            max_attributes_per_span: 4,
            ..Limits::default()
        };
        let resource = vec![kv("a", s("1")), kv("b", s("2"))];
        let three = span(vec![kv("c", s("3")), kv("d", s("4")), kv("e", s("5"))]);
        let two = span(vec![kv("c", s("3")), kv("d", s("4"))]);
        let out = decode_otlp(request(resource, vec![three, two]), &limits, NOW);
        assert_eq!(out.spans.len(), 1);
        assert_eq!(out.rejected[0].index, 0);
        assert_eq!(out.rejected[0].error.reason, "5 attributes, the limit is 4");
    }

    #[test]
    fn rejections_are_indexed_across_the_whole_request() {
        let bad = || {
            let mut sp = span(vec![]);
            sp.span_id = vec![0; 8];
            sp
        };
        let good = || span(vec![]);
        let req = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![
                        ScopeSpans {
                            spans: vec![good(), bad()],
                            ..Default::default()
                        },
                        ScopeSpans {
                            spans: vec![good()],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                ResourceSpans {
                    resource: None,
                    scope_spans: vec![ScopeSpans {
                        spans: vec![good(), bad(), good()],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        assert_eq!(count_spans(&req), 6);
        let out = decode_otlp(req, &Limits::default(), NOW);
        assert_eq!(out.spans.len(), 4);
        let rejected: Vec<(ItemKind, usize, &str)> = out
            .rejected
            .iter()
            .map(|r| (r.item, r.index, r.error.field.as_str()))
            .collect();
        assert_eq!(
            rejected,
            vec![
                (ItemKind::Span, 1, "span.span_id"),
                (ItemKind::Span, 4, "span.span_id")
            ]
        );
    }

    // ---- unmapped attributes ----

    #[test]
    fn unmapped_attributes_are_kept_as_text() {
        let d = decode_with(
            vec![
                kv("app.count", Value::IntValue(-5)),
                kv("app.ratio", Value::DoubleValue(0.25)),
                kv("app.flag", Value::BoolValue(true)),
                kv("app.blob", Value::BytesValue(vec![0xde, 0xad])),
                kv(
                    "app.list",
                    array(vec![
                        s("a"),
                        Value::IntValue(1),
                        Value::DoubleValue(f64::NAN),
                    ]),
                ),
                kv(
                    "app.map",
                    kvlist(vec![("k", s("v")), ("n", Value::BoolValue(false))]),
                ),
                kv("service.name", s("span-wins")),
                KeyValue {
                    key: "app.empty".into(),
                    value: None,
                    ..Default::default()
                },
            ],
            vec![
                kv("service.name", s("checkout")),
                kv("host.name", s("web-1")),
            ],
        );
        let r = &d.row;
        assert_eq!(r.attribute("app.count"), Some("-5"));
        assert_eq!(r.attribute("app.ratio"), Some("0.25"));
        assert_eq!(r.attribute("app.flag"), Some("true"));
        assert_eq!(r.attribute("app.blob"), Some("dead"));
        assert_eq!(r.attribute("app.list"), Some(r#"["a",1,"NaN"]"#));
        assert_eq!(r.attribute("app.map"), Some(r#"{"k":"v","n":false}"#));
        assert_eq!(r.attribute("app.empty"), Some(""));
        assert_eq!(r.attribute("service.name"), Some("span-wins"));
        assert_eq!(r.attribute("host.name"), Some("web-1"));
        assert_eq!(
            r.attr_keys.iter().filter(|k| *k == "service.name").count(),
            1
        );
        // Span attributes first, in their order, then the resource's.
        assert_eq!(r.attr_keys.first().map(String::as_str), Some("app.count"));
        assert_eq!(r.attr_keys.last().map(String::as_str), Some("host.name"));
    }

    #[test]
    fn floats_render_short_and_as_valid_json() {
        for (d, text) in [
            (3.0, "3"),
            (0.25, "0.25"),
            (1e300, "1e300"),
            (1e-7, "1e-7"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(render_text(&Value::DoubleValue(d)), text);
        }
        let json = render_text(&array(vec![
            Value::DoubleValue(1e300),
            Value::DoubleValue(2.5),
            Value::DoubleValue(f64::INFINITY),
        ]));
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, serde_json::json!([1e300, 2.5, "inf"]));
    }

    #[test]
    fn long_values_are_truncated_and_marked() {
        let limits = Limits {
            max_attribute_value_bytes: 8,
            max_content_bytes: 10,
            ..Limits::default()
        };
        let sp = span(vec![
            kv("app.note", s("ééééééé")), // 14 bytes
            kv("input.value", s("0123456789abc")),
        ]);
        let out = decode_otlp(request(vec![], vec![sp]), &limits, NOW);
        let r = &out.spans[0].row;
        assert_eq!(r.attribute("app.note"), Some("éééé"));
        assert_eq!(r.input, "0123456789");
        assert_eq!(
            r.attribute("vigil.truncated"),
            Some("input,attributes.app.note")
        );
    }

    #[test]
    fn a_full_genai_span() {
        let d = decode_with(
            vec![
                kv(OPERATION_NAME, s("chat")),
                kv("gen_ai.provider.name", s("openai")),
                kv(REQUEST_MODEL, s("gpt-4o")),
                kv("gen_ai.usage.input_tokens", Value::IntValue(1200)),
                kv("gen_ai.usage.output_tokens", Value::IntValue(300)),
                kv(
                    "gen_ai.usage.cache_read.input_tokens",
                    Value::IntValue(1000),
                ),
                kv("gen_ai.conversation.id", s("conv-9")),
                kv("gen_ai.agent.name", s("support-bot")),
                kv("user.id", s("u-1")),
                kv("vigil.run.outcome", s("success")),
            ],
            vec![
                kv("service.name", s("support")),
                kv("service.version", s("2.1.0")),
                kv("deployment.environment.name", s("production")),
            ],
        );
        let (r, c) = (&d.row, &d.run);
        assert_eq!(r.kind, SpanKind::Model);
        assert_eq!(
            (r.provider.as_str(), r.model.as_str()),
            ("openai", "gpt-4o")
        );
        assert_eq!(
            (r.input_tokens, r.output_tokens, r.cached_input_tokens),
            (1200, 300, 1000)
        );
        assert_eq!(r.cost_nanos, None);
        assert_eq!(
            (c.session_id.as_str(), c.agent_name.as_str()),
            ("conv-9", "support-bot")
        );
        assert_eq!(
            (c.environment.as_str(), c.release.as_str()),
            ("production", "2.1.0")
        );
        assert_eq!(c.outcome, Some(Outcome::Success));
        assert_eq!(c.raw_user_id, Some(RawUserId("u-1".into())));
        let mut keys = r.attr_keys.clone();
        keys.sort();
        assert_eq!(
            keys,
            vec![OPERATION_NAME.to_string(), "service.name".to_string()]
        );
    }

    // ---- properties ----

    const KEY_POOL: &[&str] = &[
        LANGFUSE_TYPE,
        OPENINFERENCE_KIND,
        OPERATION_NAME,
        RESPONSE_MODEL,
        REQUEST_MODEL,
        "llm.model_name",
        "langfuse.observation.model.name",
        "vigil.model.version",
        "gen_ai.provider.name",
        "gen_ai.system",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "llm.token_count.prompt",
        USAGE_DETAILS,
        COST_DETAILS,
        "llm.cost.total",
        "gen_ai.tool.name",
        "tool.id",
        "gen_ai.tool.call.arguments",
        "input.value",
        "output.value",
        "gen_ai.input.messages",
        "session.id",
        "user.id",
        "vigil.user.hash",
        "vigil.run.outcome",
        "vigil.data.classification",
        "vigil.tool.retry_count",
        "langfuse.observation.prompt.version",
        "deployment.environment",
        "service.version",
        "error.type",
        "vigil.truncated",
        "app.custom",
        "",
    ];

    fn arb_scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            ".{0,12}".prop_map(Value::StringValue),
            prop::sample::select(vec![
                "chat",
                "TOOL",
                "generation",
                "success",
                "12",
                "-3",
                "1e400",
                "{\"input\":5,\"total\":0.5}",
                "{\"total\":-1}",
                "[1,2]",
                "pii,phi",
                "",
            ])
            .prop_map(|s| Value::StringValue(s.to_string())),
            any::<i64>().prop_map(Value::IntValue),
            any::<f64>().prop_map(Value::DoubleValue),
            any::<bool>().prop_map(Value::BoolValue),
            prop::collection::vec(any::<u8>(), 0..10).prop_map(Value::BytesValue),
            any::<i32>().prop_map(Value::StringValueStrindex),
        ]
    }

    fn arb_value() -> impl Strategy<Value = Option<Value>> {
        let leaf = arb_scalar().boxed();
        let tree = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(array),
                prop::collection::vec(("[a-z]{0,3}", inner), 0..4).prop_map(|entries| {
                    Value::KvlistValue(KeyValueList {
                        values: entries.into_iter().map(|(k, v)| kv(&k, v)).collect(),
                    })
                }),
            ]
        });
        prop::option::weighted(0.95, tree)
    }

    fn arb_attrs() -> impl Strategy<Value = Vec<KeyValue>> {
        let key = prop_oneof![
            4 => prop::sample::select(KEY_POOL.to_vec()).prop_map(str::to_string),
            1 => "[a-z.]{0,8}",
        ];
        prop::collection::vec((key, arb_value()), 0..12).prop_map(|list| {
            list.into_iter()
                .map(|(key, value)| KeyValue {
                    key,
                    value: value.map(|v| AnyValue { value: Some(v) }),
                    ..Default::default()
                })
                .collect()
        })
    }

    fn decode_pair(span_attrs: Vec<KeyValue>, resource: Vec<KeyValue>) -> DraftOtlp {
        decode_otlp(
            request(resource, vec![span(span_attrs)]),
            &Limits::default(),
            NOW,
        )
    }

    proptest! {
        #[test]
        fn arbitrary_spans_never_panic(
            span_attrs in arb_attrs(),
            resource in arb_attrs(),
            trace_id in prop::collection::vec(any::<u8>(), 0..20),
            span_id in prop::collection::vec(any::<u8>(), 0..10),
            start in any::<u64>(),
            end in any::<u64>(),
            code in any::<i32>(),
            name in ".{0,300}",
        ) {
            let sp = Span {
                trace_id,
                span_id,
                name,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: span_attrs,
                status: Some(Status { message: "m".into(), code }),
                ..Default::default()
            };
            let out = decode_otlp(request(resource, vec![sp]), &Limits::default(), NOW);
            prop_assert_eq!(out.spans.len() + out.rejected.len(), 1);
            for d in &out.spans {
                prop_assert_eq!(d.row.attr_keys.len(), d.row.attr_values.len());
            }
        }

        /// A resource attribute whose key the span also has changes nothing.
        #[test]
        fn span_attributes_hide_resource_attributes(span_attrs in arb_attrs(), resource in arb_attrs()) {
            let hidden: Vec<KeyValue> = resource
                .iter()
                .filter(|r| !span_attrs.iter().any(|s| s.key == r.key))
                .cloned()
                .collect();
            prop_assert_eq!(decode_pair(span_attrs.clone(), resource), decode_pair(span_attrs, hidden));
        }

        /// Whatever else is there, a field's value on the span beats any of its names on the
        /// resource.
        #[test]
        fn span_attributes_always_win(
            span_attrs in arb_attrs(),
            resource in arb_attrs(),
            span_key in prop::sample::select(MODEL.to_vec()),
            resource_key in prop::sample::select(MODEL.to_vec()),
            session_key in prop::sample::select(SESSION.to_vec()),
        ) {
            // Only the chosen model name on the span; every model name on the resource.
            let mut span_attrs: Vec<KeyValue> = span_attrs
                .into_iter()
                .filter(|kv| !MODEL.contains(&kv.key.as_str()) && !SESSION.contains(&kv.key.as_str()))
                .collect();
            span_attrs.insert(0, kv(span_key, s("span-model")));
            span_attrs.insert(0, kv(session_key, s("span-session")));
            let mut resource = resource;
            resource.push(kv(resource_key, s("resource-model")));
            resource.push(kv("session.id", s("resource-session")));
            let out = decode_pair(span_attrs, resource);
            prop_assert_eq!(out.rejected.len(), 0, "{:?}", out.rejected);
            prop_assert_eq!(&out.spans[0].row.model, "span-model");
            prop_assert_eq!(&out.spans[0].run.session_id, "span-session");
        }
    }
}
