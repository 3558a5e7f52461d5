//! Checks and bounds shared by both decoders.
//!
//! Identifiers and names over their limit are refused; free text (inputs, outputs, messages,
//! attribute values) is cut on a character boundary and the span records which fields were cut
//! in its `vigil.truncated` attribute. Every error names the field and the limit, e.g.
//! `span.name: 300 bytes, the limit is 256`.

use sha2::{Digest, Sha256};
use vigil_schemas::limits::{
    FieldError, Limits, check_hex_id, check_name, check_times, truncate_utf8,
};
use vigil_schemas::{RunRow, ScoreRow, SpanRow};

use crate::draft::RunContext;

/// The attribute listing the fields of a span that were cut to their limit.
pub const TRUNCATED_ATTRIBUTE: &str = "vigil.truncated";
/// The smallest bound of the `vigil.truncated` marker.
const MIN_MARKER_BYTES: usize = 1024;

/// Attributes that carry a raw end-user id (docs/api.md#run-fields). Their values are never stored
/// as attributes: OTLP decoding takes the id into the run context (to be hashed), and both decoders
/// drop whatever else is under these names.
pub const RAW_USER_ATTRIBUTES: &[&str] = &["user.id", "langfuse.user.id", "enduser.id"];

/// Length of a trace id in hexadecimal characters.
pub const TRACE_ID_HEX_LEN: usize = 32;
/// Length of a span id in hexadecimal characters.
pub const SPAN_ID_HEX_LEN: usize = 16;
/// Length of a tool-argument hash in hexadecimal characters (64 bits of SHA-256).
pub const ARGS_HASH_HEX_LEN: usize = 16;

/// The hash of a tool call's arguments used for loop detection: the first 16 hexadecimal
/// characters of the SHA-256 of the text, or empty when there are no arguments.
///
/// Computed over the full text, before any truncation, so that two long argument lists that
/// differ only past the content limit still hash apart.
pub fn args_hash(arguments: &str) -> String {
    if arguments.is_empty() {
        return String::new();
    }
    let mut hex = hex::encode(Sha256::digest(arguments.as_bytes()));
    hex.truncate(ARGS_HASH_HEX_LEN);
    hex
}

/// Cuts a span's free text to its limits: `input`, `output` and `status_message` to
/// `max_content_bytes`, every attribute value to `max_attribute_value_bytes`. The names of the
/// cut fields (`input`, `output`, `status_message`, `attributes.<key>`) are appended,
/// comma-separated, to the span's `vigil.truncated` attribute.
pub fn bound_span(row: &mut SpanRow, limits: &Limits) {
    let mut cut: Vec<String> = Vec::new();
    for (name, text) in [
        ("input", &mut row.input),
        ("output", &mut row.output),
        ("status_message", &mut row.status_message),
    ] {
        if truncate_utf8(text, limits.max_content_bytes) {
            cut.push(name.to_string());
        }
    }
    for (key, value) in row.attr_keys.iter().zip(row.attr_values.iter_mut()) {
        if key != TRUNCATED_ATTRIBUTE && truncate_utf8(value, limits.max_attribute_value_bytes) {
            cut.push(format!("attributes.{key}"));
        }
    }
    if cut.is_empty() {
        return;
    }
    let list = cut.join(",");
    match row.attr_keys.iter().position(|k| k == TRUNCATED_ATTRIBUTE) {
        Some(i) => {
            let value = &mut row.attr_values[i];
            if !value.is_empty() {
                value.push(',');
            }
            value.push_str(&list);
        }
        None => {
            row.attr_keys.push(TRUNCATED_ATTRIBUTE.to_string());
            row.attr_values.push(list);
        }
    }
    if let Some(i) = row.attr_keys.iter().position(|k| k == TRUNCATED_ATTRIBUTE) {
        bound_marker(&mut row.attr_values[i], limits);
    }
}

/// The marker is cut at a whole field name, to at least [`MIN_MARKER_BYTES`] even when the
/// attribute limit is smaller: a marker cut mid-name would say nothing.
fn bound_marker(marker: &mut String, limits: &Limits) {
    let max = limits.max_attribute_value_bytes.max(MIN_MARKER_BYTES);
    if truncate_utf8(marker, max) {
        let end = marker.rfind(',').unwrap_or(0);
        marker.truncate(end);
    }
}

/// Cuts a run's free text (`error_message`, `input`, `output`) to `max_content_bytes`; returns
/// the names of the fields cut. Runs have no attributes to record them in.
pub fn bound_run(row: &mut RunRow, limits: &Limits) -> Vec<&'static str> {
    let mut cut = Vec::new();
    for (name, text) in [
        ("error_message", &mut row.error_message),
        ("input", &mut row.input),
        ("output", &mut row.output),
    ] {
        if truncate_utf8(text, limits.max_content_bytes) {
            cut.push(name);
        }
    }
    cut
}

/// Cuts a score's free text: `comment` to `max_content_bytes`, `string_value` to
/// `max_attribute_value_bytes`; returns the names of the fields cut.
pub fn bound_score(row: &mut ScoreRow, limits: &Limits) -> Vec<&'static str> {
    let mut cut = Vec::new();
    if truncate_utf8(&mut row.comment, limits.max_content_bytes) {
        cut.push("comment");
    }
    if truncate_utf8(&mut row.string_value, limits.max_attribute_value_bytes) {
        cut.push("string_value");
    }
    cut
}

/// Checks a span row: ids, times, names, attributes, cost.
pub fn check_span(row: &SpanRow, limits: &Limits, now_ns: i64) -> Result<(), FieldError> {
    check_hex_id("span.trace_id", &row.trace_id, TRACE_ID_HEX_LEN)?;
    check_hex_id("span.span_id", &row.span_id, SPAN_ID_HEX_LEN)?;
    if !row.parent_span_id.is_empty() {
        check_hex_id("span.parent_span_id", &row.parent_span_id, SPAN_ID_HEX_LEN)?;
        if row.parent_span_id == row.span_id {
            return Err(FieldError::new(
                "span.parent_span_id",
                "is the span's own id",
            ));
        }
    }
    check_span_times("span", row.start_time_ns, row.end_time_ns, now_ns, limits)?;
    for (field, value) in [
        ("span.name", &row.name),
        ("span.error_type", &row.error_type),
        ("span.provider", &row.provider),
        ("span.model", &row.model),
        ("span.model_version", &row.model_version),
        ("span.prompt_id", &row.prompt_id),
        ("span.prompt_version", &row.prompt_version),
        ("span.tool_name", &row.tool_name),
        ("span.tool_version", &row.tool_version),
        ("span.tool_call_id", &row.tool_call_id),
    ] {
        check_name(field, value, limits)?;
    }
    check_attribute_count(row.attr_keys.len(), limits)?;
    for key in &row.attr_keys {
        check_attribute_key(key, limits)?;
    }
    if let Some(cost) = row.cost_nanos
        && cost < 0
    {
        return Err(FieldError::new("span.cost", "must not be negative"));
    }
    Ok(())
}

/// Checks a run row: id, times, names, tags and classification labels.
pub fn check_run(row: &RunRow, limits: &Limits, now_ns: i64) -> Result<(), FieldError> {
    check_hex_id("run.trace_id", &row.trace_id, TRACE_ID_HEX_LEN)?;
    check_span_times("run", row.start_time_ns, row.end_time_ns, now_ns, limits)?;
    for (field, value) in [
        ("run.session_id", &row.session_id),
        ("run.user_hash", &row.user_hash),
        ("run.task_type", &row.task_type),
        ("run.agent_name", &row.agent_name),
        ("run.agent_version", &row.agent_version),
        ("run.environment", &row.environment),
        ("run.release", &row.release),
        ("run.retention", &row.retention),
        ("run.audit_ref", &row.audit_ref),
    ] {
        check_name(field, value, limits)?;
    }
    check_labels("run.tags", &row.tags, "tags", limits)?;
    check_labels("run.classification", &row.classification, "labels", limits)?;
    Ok(())
}

/// Checks the run-level fields an OTLP span carried, with the same rules and field names as a
/// native run.
pub fn check_context(ctx: &RunContext, limits: &Limits) -> Result<(), FieldError> {
    if let Some(raw) = &ctx.raw_user_id {
        // The reason names the length only, never the value.
        check_name("run.user_id", &raw.0, limits)?;
    }
    for (field, value) in [
        ("run.session_id", &ctx.session_id),
        ("run.user_hash", &ctx.user_hash),
        ("run.task_type", &ctx.task_type),
        ("run.agent_name", &ctx.agent_name),
        ("run.agent_version", &ctx.agent_version),
        ("run.environment", &ctx.environment),
        ("run.release", &ctx.release),
        ("run.retention", &ctx.retention),
        ("run.audit_ref", &ctx.audit_ref),
    ] {
        check_name(field, value, limits)?;
    }
    check_labels("run.tags", &ctx.tags, "tags", limits)?;
    check_labels("run.classification", &ctx.classification, "labels", limits)?;
    Ok(())
}

/// Checks a score row: ids, name, source, time, and that it carries a usable value.
pub fn check_score(row: &ScoreRow, limits: &Limits, now_ns: i64) -> Result<(), FieldError> {
    check_hex_id("score.trace_id", &row.trace_id, TRACE_ID_HEX_LEN)?;
    if !row.span_id.is_empty() {
        check_hex_id("score.span_id", &row.span_id, SPAN_ID_HEX_LEN)?;
    }
    if row.score_id.is_empty() {
        return Err(FieldError::new("score.score_id", "is empty"));
    }
    check_name("score.score_id", &row.score_id, limits)?;
    if row.name.trim().is_empty() {
        return Err(FieldError::new("score.name", "is empty"));
    }
    check_name("score.name", &row.name, limits)?;
    check_name("score.source", &row.source, limits)?;
    if let Some(value) = row.value
        && !value.is_finite()
    {
        return Err(FieldError::new(
            "score.value",
            format!("{value} is not a finite number"),
        ));
    }
    if row.value.is_none() && row.bool_value.is_none() && row.string_value.is_empty() {
        return Err(FieldError::new(
            "score.value",
            "exactly one of a numeric, boolean or text value is required",
        ));
    }
    check_times("score", row.time_ns, row.time_ns, now_ns, limits).map_err(|mut e| {
        e.field = "score.time".into();
        e
    })
}

/// Refuses more attributes than the limit: `span.attributes: N attributes, the limit is M`.
pub fn check_attribute_count(count: usize, limits: &Limits) -> Result<(), FieldError> {
    if count > limits.max_attributes_per_span {
        return Err(FieldError::new(
            "span.attributes",
            format!(
                "{count} attributes, the limit is {}",
                limits.max_attributes_per_span
            ),
        ));
    }
    Ok(())
}

/// Refuses an attribute key longer than a name may be.
pub fn check_attribute_key(key: &str, limits: &Limits) -> Result<(), FieldError> {
    if key.len() > limits.max_name_bytes {
        return Err(FieldError::new(
            "span.attributes",
            format!(
                "a key of {} bytes, the limit is {}",
                key.len(),
                limits.max_name_bytes
            ),
        ));
    }
    Ok(())
}

/// `check_times`, with a clear message for a missing end (an unfinished span or run).
fn check_span_times(
    field: &str,
    start_ns: i64,
    end_ns: i64,
    now_ns: i64,
    limits: &Limits,
) -> Result<(), FieldError> {
    if start_ns > 0 && end_ns == 0 {
        return Err(FieldError::new(
            format!("{field}.end_time"),
            "is missing (zero)",
        ));
    }
    check_times(field, start_ns, end_ns, now_ns, limits)
}

fn check_labels(
    field: &str,
    labels: &[String],
    noun: &str,
    limits: &Limits,
) -> Result<(), FieldError> {
    if labels.len() > limits.max_tags {
        return Err(FieldError::new(
            field,
            format!("{} {noun}, the limit is {}", labels.len(), limits.max_tags),
        ));
    }
    for label in labels {
        check_name(field, label, limits)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use vigil_schemas::time::{NANOS_PER_DAY, NANOS_PER_SECOND};

    use super::*;

    const NOW: i64 = 1_800_000_000 * NANOS_PER_SECOND;

    fn span() -> SpanRow {
        SpanRow {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            name: "chat".into(),
            start_time_ns: NOW - 2 * NANOS_PER_SECOND,
            end_time_ns: NOW - NANOS_PER_SECOND,
            ..Default::default()
        }
    }

    fn run() -> RunRow {
        RunRow {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            start_time_ns: NOW - 2 * NANOS_PER_SECOND,
            end_time_ns: NOW - NANOS_PER_SECOND,
            ..Default::default()
        }
    }

    fn score() -> ScoreRow {
        ScoreRow {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            score_id: "s1".into(),
            name: "helpfulness".into(),
            value: Some(0.5),
            time_ns: NOW,
            ..Default::default()
        }
    }

    #[test]
    fn args_hash_is_the_sha256_prefix() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(args_hash("abc"), "ba7816bf8f01cfea");
        assert_eq!(args_hash(""), "");
        assert_ne!(args_hash(r#"{"q":"a"}"#), args_hash(r#"{"q":"b"}"#));
    }

    #[test]
    fn a_valid_span_passes() {
        assert_eq!(check_span(&span(), &Limits::default(), NOW), Ok(()));
    }

    #[test]
    fn bad_ids_name_the_field() {
        let l = Limits::default();
        let mut s = span();
        s.trace_id = "xyz".into();
        assert_eq!(check_span(&s, &l, NOW).unwrap_err().field, "span.trace_id");
        let mut s = span();
        s.span_id = "0".repeat(16);
        let e = check_span(&s, &l, NOW).unwrap_err();
        assert_eq!(e.field, "span.span_id");
        assert!(e.reason.contains("zeros"), "{e}");
        let mut s = span();
        s.parent_span_id = "abc".into();
        let e = check_span(&s, &l, NOW).unwrap_err();
        assert_eq!(e.field, "span.parent_span_id");
        assert!(e.reason.contains("16 hexadecimal"), "{e}");
        let mut s = span();
        s.parent_span_id = s.span_id.clone();
        assert_eq!(
            check_span(&s, &l, NOW).unwrap_err().field,
            "span.parent_span_id"
        );
    }

    #[test]
    fn times_are_checked() {
        let l = Limits::default();
        let mut s = span();
        s.end_time_ns = s.start_time_ns - 1;
        let e = check_span(&s, &l, NOW).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("span.end_time", "is before start_time")
        );

        let mut s = span();
        s.end_time_ns = 0;
        let e = check_span(&s, &l, NOW).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("span.end_time", "is missing (zero)")
        );

        let mut s = span();
        s.start_time_ns = NOW - 30 * 365 * NANOS_PER_DAY;
        let e = check_span(&s, &l, NOW).unwrap_err();
        assert_eq!(e.field, "span.start_time");
        assert!(e.reason.contains("365 days"), "{e}");

        let mut s = span();
        s.start_time_ns = NOW + 30 * 365 * NANOS_PER_DAY;
        s.end_time_ns = s.start_time_ns;
        let e = check_span(&s, &l, NOW).unwrap_err();
        assert!(e.reason.contains("3600 s in the future"), "{e}");

        let mut s = span();
        s.start_time_ns = NOW - 10 * NANOS_PER_DAY;
        let e = check_span(&s, &l, NOW).unwrap_err();
        assert!(e.reason.contains("7 days"), "{e}");
    }

    #[test]
    fn oversized_names_name_the_field_and_the_limit() {
        let l = Limits::default();
        let mut s = span();
        s.name = "n".repeat(300);
        let e = check_span(&s, &l, NOW).unwrap_err();
        assert_eq!(e.to_string(), "span.name: 300 bytes, the limit is 256");
        let mut s = span();
        s.model = "m".repeat(257);
        assert_eq!(check_span(&s, &l, NOW).unwrap_err().field, "span.model");
        let mut s = span();
        s.tool_name = "t".repeat(257);
        assert_eq!(check_span(&s, &l, NOW).unwrap_err().field, "span.tool_name");
    }

    #[test]
    fn too_many_attributes_are_refused() {
        let l = Limits::default();
        let mut s = span();
        s.attr_keys = (0..10_000).map(|i| format!("k{i}")).collect();
        s.attr_values = vec![String::new(); 10_000];
        let e = check_span(&s, &l, NOW).unwrap_err();
        assert_eq!(
            e.to_string(),
            "span.attributes: 10000 attributes, the limit is 512"
        );
        let mut s = span();
        s.attr_keys = vec!["k".repeat(300)];
        s.attr_values = vec![String::new()];
        let e = check_span(&s, &l, NOW).unwrap_err();
        assert_eq!(
            e.to_string(),
            "span.attributes: a key of 300 bytes, the limit is 256"
        );
    }

    #[test]
    fn bounding_cuts_on_char_boundaries_and_records_the_fields() {
        let l = Limits {
            max_content_bytes: 5,
            max_attribute_value_bytes: 3,
            ..Limits::default()
        };
        let mut s = span();
        s.input = "héllo wörld".into();
        s.output = "short".into();
        s.status_message = "ééé".into(); // 6 bytes
        s.attr_keys = vec!["a".into(), "b".into()];
        s.attr_values = vec!["ok".into(), "€€".into()];
        bound_span(&mut s, &l);
        assert_eq!(s.input, "héll");
        assert_eq!(s.output, "short");
        assert_eq!(s.status_message, "éé");
        assert_eq!(s.attr_values[..2], ["ok".to_string(), "€".to_string()]);
        assert_eq!(
            s.attribute(TRUNCATED_ATTRIBUTE),
            Some("input,status_message,attributes.b")
        );
    }

    #[test]
    fn bounding_appends_to_an_existing_marker_and_leaves_short_text_alone() {
        let l = Limits {
            max_content_bytes: 4,
            ..Limits::default()
        };
        let mut s = span();
        s.output = "12345".into();
        s.attr_keys = vec![TRUNCATED_ATTRIBUTE.into()];
        s.attr_values = vec!["sdk.prompt".into()];
        bound_span(&mut s, &l);
        assert_eq!(s.attribute(TRUNCATED_ATTRIBUTE), Some("sdk.prompt,output"));
        assert_eq!(s.attr_keys.len(), 1);

        let mut untouched = span();
        untouched.input = "1234".into();
        bound_span(&mut untouched, &l);
        assert!(untouched.attr_keys.is_empty());
    }

    #[test]
    fn a_long_marker_is_cut_at_a_whole_name() {
        let l = Limits {
            max_attribute_value_bytes: 4,
            ..Limits::default()
        };
        let mut s = span();
        for i in 0..200 {
            s.attr_keys.push(format!("key{i}"));
            s.attr_values.push("long value".into());
        }
        bound_span(&mut s, &l);
        let marker = s.attribute(TRUNCATED_ATTRIBUTE).unwrap();
        assert!(marker.len() <= MIN_MARKER_BYTES, "{}", marker.len());
        assert!(marker.starts_with("attributes.key0,attributes.key1,"));
        assert!(
            marker.split(',').all(|f| f.starts_with("attributes.key")),
            "{marker}"
        );
        let last = marker.rsplit(',').next().unwrap();
        assert!(
            last["attributes.key".len()..].parse::<u32>().is_ok(),
            "{last}"
        );
    }

    #[test]
    fn runs_are_checked_and_bounded() {
        let l = Limits::default();
        assert_eq!(check_run(&run(), &l, NOW), Ok(()));
        let mut r = run();
        r.tags = (0..65).map(|i| format!("t{i}")).collect();
        assert_eq!(
            check_run(&r, &l, NOW).unwrap_err().to_string(),
            "run.tags: 65 tags, the limit is 64"
        );
        let mut r = run();
        r.classification = vec!["p".repeat(257)];
        assert_eq!(
            check_run(&r, &l, NOW).unwrap_err().field,
            "run.classification"
        );
        let mut r = run();
        r.session_id = "s".repeat(257);
        assert_eq!(check_run(&r, &l, NOW).unwrap_err().field, "run.session_id");
        let mut r = run();
        r.trace_id = String::new();
        assert_eq!(check_run(&r, &l, NOW).unwrap_err().field, "run.trace_id");
        let mut r = run();
        r.end_time_ns = r.start_time_ns - 1;
        assert_eq!(check_run(&r, &l, NOW).unwrap_err().field, "run.end_time");

        let small = Limits {
            max_content_bytes: 2,
            ..Limits::default()
        };
        let mut r = run();
        r.output = "abc".into();
        r.input = "ab".into();
        assert_eq!(bound_run(&mut r, &small), vec!["output"]);
        assert_eq!(r.output, "ab");
    }

    #[test]
    fn scores_are_checked() {
        let l = Limits::default();
        assert_eq!(check_score(&score(), &l, NOW), Ok(()));
        let mut s = score();
        s.name = " ".into();
        assert_eq!(check_score(&s, &l, NOW).unwrap_err().field, "score.name");
        let mut s = score();
        s.value = None;
        assert_eq!(check_score(&s, &l, NOW).unwrap_err().field, "score.value");
        let mut s = score();
        s.value = Some(f64::NAN);
        assert_eq!(check_score(&s, &l, NOW).unwrap_err().field, "score.value");
        let mut s = score();
        s.time_ns = NOW - 40 * 365 * NANOS_PER_DAY;
        let e = check_score(&s, &l, NOW).unwrap_err();
        assert_eq!(e.field, "score.time");
        assert!(e.reason.contains("365 days"), "{e}");
        let mut s = score();
        s.span_id = "zz".into();
        assert_eq!(check_score(&s, &l, NOW).unwrap_err().field, "score.span_id");

        let mut s = score();
        s.comment = "abcdef".into();
        s.string_value = "xyz".into();
        let small = Limits {
            max_content_bytes: 3,
            max_attribute_value_bytes: 2,
            ..Limits::default()
        };
        assert_eq!(bound_score(&mut s, &small), vec!["comment", "string_value"]);
        assert_eq!((s.comment.as_str(), s.string_value.as_str()), ("abc", "xy"));
    }

    #[test]
    fn context_labels_are_checked() {
        let l = Limits::default();
        let ctx = RunContext {
            classification: (0..100).map(|i| format!("c{i}")).collect(),
            ..Default::default()
        };
        assert_eq!(
            check_context(&ctx, &l).unwrap_err().to_string(),
            "run.classification: 100 labels, the limit is 64"
        );
        let ctx = RunContext {
            raw_user_id: Some(crate::draft::RawUserId("secret-person".repeat(40))),
            ..Default::default()
        };
        let e = check_context(&ctx, &l).unwrap_err();
        assert_eq!(e.field, "run.user_id");
        assert!(!e.reason.contains("secret-person"), "{e}");
    }
}
