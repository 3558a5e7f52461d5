//! Field limits. Every rejection names the field and the limit, e.g.
//! `span.attributes: 10000 attributes, the limit is 512`.
//!
//! Identifiers and names over their limit are refused (silently shortening an id would merge or
//! split runs). Free text — inputs, outputs, messages, attribute values — is cut at its limit on a
//! character boundary and the span gets a `vigil.truncated` attribute naming the fields cut, as
//! OpenTelemetry SDKs do with their attribute length limits.

use serde::{Deserialize, Serialize};

/// Configurable limits, with defaults that suit one machine. `[limits]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body (gRPC message or HTTP body, after decompression), in bytes.
    pub max_message_bytes: usize,
    /// Most spans (OTLP) or runs + spans + scores (native) in one request.
    pub max_items_per_request: usize,
    /// Most attributes on one span (resource attributes included).
    pub max_attributes_per_span: usize,
    /// Longest identifier or name (ids, names, models, tools, versions, keys), in bytes.
    pub max_name_bytes: usize,
    /// Longest attribute value kept, in bytes; longer ones are truncated.
    pub max_attribute_value_bytes: usize,
    /// Longest input / output / message kept, in bytes; longer ones are truncated.
    pub max_content_bytes: usize,
    /// Most tags or classification labels on a run.
    pub max_tags: usize,
    /// How far in the future a timestamp may be (clock skew), in seconds.
    pub max_future_skew_secs: i64,
    /// How old a timestamp may be, in days.
    pub max_age_days: i64,
    /// Longest span or run, in days.
    pub max_duration_days: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 16 * 1024 * 1024,
            max_items_per_request: 10_000,
            max_attributes_per_span: 512,
            max_name_bytes: 256,
            max_attribute_value_bytes: 16 * 1024,
            max_content_bytes: 64 * 1024,
            max_tags: 64,
            max_future_skew_secs: 3600,
            max_age_days: 365,
            max_duration_days: 7,
        }
    }
}

/// One invalid field of one item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// Dotted path, e.g. `span.trace_id`.
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary; returns whether it cut.
pub fn truncate_utf8(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// Refuses a name longer than the limit.
pub fn check_name(field: &str, value: &str, limits: &Limits) -> Result<(), FieldError> {
    if value.len() > limits.max_name_bytes {
        return Err(FieldError::new(
            field,
            format!(
                "{} bytes, the limit is {}",
                value.len(),
                limits.max_name_bytes
            ),
        ));
    }
    Ok(())
}

/// Checks a lowercase-hex identifier of an exact length (32 for traces, 16 for spans).
pub fn check_hex_id(field: &str, value: &str, len: usize) -> Result<(), FieldError> {
    if value.len() != len || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FieldError::new(
            field,
            format!(
                "must be {len} hexadecimal characters, got {:?}",
                shorten(value)
            ),
        ));
    }
    if value.bytes().all(|b| b == b'0') {
        return Err(FieldError::new(field, "must not be all zeros"));
    }
    Ok(())
}

/// Checks a start/end pair against the clock: not before start, not decades off, not too long.
pub fn check_times(
    field: &str,
    start_ns: i64,
    end_ns: i64,
    now_ns: i64,
    limits: &Limits,
) -> Result<(), FieldError> {
    use crate::time::{NANOS_PER_DAY, NANOS_PER_SECOND, rfc3339};
    let oldest = now_ns.saturating_sub(limits.max_age_days.saturating_mul(NANOS_PER_DAY));
    let newest =
        now_ns.saturating_add(limits.max_future_skew_secs.saturating_mul(NANOS_PER_SECOND));
    if start_ns <= 0 {
        return Err(FieldError::new(
            format!("{field}.start_time"),
            "is missing (zero)",
        ));
    }
    for (name, ts) in [("start_time", start_ns), ("end_time", end_ns)] {
        if ts < oldest {
            return Err(FieldError::new(
                format!("{field}.{name}"),
                format!(
                    "{} is more than {} days in the past",
                    rfc3339(ts),
                    limits.max_age_days
                ),
            ));
        }
        if ts > newest {
            return Err(FieldError::new(
                format!("{field}.{name}"),
                format!(
                    "{} is more than {} s in the future",
                    rfc3339(ts),
                    limits.max_future_skew_secs
                ),
            ));
        }
    }
    if end_ns < start_ns {
        return Err(FieldError::new(
            format!("{field}.end_time"),
            "is before start_time",
        ));
    }
    if end_ns - start_ns > limits.max_duration_days.saturating_mul(NANOS_PER_DAY) {
        return Err(FieldError::new(
            format!("{field}.end_time"),
            format!(
                "the duration exceeds the limit of {} days",
                limits.max_duration_days
            ),
        ));
    }
    Ok(())
}

fn shorten(value: &str) -> String {
    let mut s = value.to_string();
    if truncate_utf8(&mut s, 40) {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NANOS_PER_SECOND;

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut s = "héllo".to_string();
        assert!(truncate_utf8(&mut s, 2));
        assert_eq!(s, "h");
        let mut short = "ok".to_string();
        assert!(!truncate_utf8(&mut short, 2));
    }

    #[test]
    fn hex_ids_are_checked() {
        assert!(check_hex_id("span.trace_id", &"ab".repeat(16), 32).is_ok());
        let err = check_hex_id("span.trace_id", "xyz", 32).unwrap_err();
        assert_eq!(err.field, "span.trace_id");
        assert!(check_hex_id("span.span_id", &"0".repeat(16), 16).is_err());
    }

    #[test]
    fn times_name_the_field_and_the_limit() {
        let l = Limits::default();
        let now = 1_800_000_000 * NANOS_PER_SECOND;
        assert!(check_times("span", now - 10, now, now, &l).is_ok());
        let e = check_times("span", now, now - 1, now, &l).unwrap_err();
        assert_eq!(e.field, "span.end_time");
        let e = check_times("span", 1, 2, now, &l).unwrap_err();
        assert!(e.reason.contains("365 days"), "{e}");
        let e = check_times(
            "span",
            now + 7200 * NANOS_PER_SECOND,
            now + 7200 * NANOS_PER_SECOND,
            now,
            &l,
        )
        .unwrap_err();
        assert!(e.reason.contains("future"), "{e}");
    }
}
