//! Decoding of the native `vigil.v1` API: runs, spans and scores become draft rows, each checked
//! and bounded on its own. An invalid item is reported with its list and its index in that list;
//! valid items of the same request are kept.

use sha2::{Digest, Sha256};
use vigil_proto::v1::{self, score::Value as ScoreValue};
use vigil_schemas::{
    Outcome, RunRow, ScoreRow, SpanKind, SpanRow, SpanStatus,
    limits::{FieldError, Limits, check_name},
    prices::usd_to_nanos,
};

use crate::{
    draft::{DraftNative, DraftRun, ItemKind, RawUserId, Rejected},
    validate,
};

/// `cost_source` of a cost the client reported.
pub const COST_SOURCE_SDK: &str = "sdk";

/// Length of a derived score id in hexadecimal characters.
const SCORE_ID_HEX_LEN: usize = 32;

/// Runs + spans + scores in a request, to refuse an oversized request before decoding it.
pub fn count_items(request: &v1::ExportRequest) -> usize {
    request.runs.len() + request.spans.len() + request.scores.len()
}

/// Converts a native request into drafts; `now_ns` stamps `ingested_at_ns` and is the clock the
/// timestamps are checked against.
pub fn decode_native(request: v1::ExportRequest, limits: &Limits, now_ns: i64) -> DraftNative {
    let mut out = DraftNative::default();
    for (index, run) in request.runs.into_iter().enumerate() {
        match decode_run(run, limits, now_ns) {
            Ok(draft) => out.runs.push(draft),
            Err(error) => out.rejected.push(Rejected {
                item: ItemKind::Run,
                index,
                error,
            }),
        }
    }
    for (index, span) in request.spans.into_iter().enumerate() {
        match decode_span(span, limits, now_ns) {
            Ok(row) => out.spans.push(row),
            Err(error) => out.rejected.push(Rejected {
                item: ItemKind::Span,
                index,
                error,
            }),
        }
    }
    for (index, score) in request.scores.into_iter().enumerate() {
        match decode_score(score, limits, now_ns) {
            Ok(row) => out.scores.push(row),
            Err(error) => out.rejected.push(Rejected {
                item: ItemKind::Score,
                index,
                error,
            }),
        }
    }
    out
}

fn decode_run(run: v1::Run, limits: &Limits, now_ns: i64) -> Result<DraftRun, FieldError> {
    let outcome = match v1::Outcome::try_from(run.outcome) {
        Ok(v1::Outcome::Success) => Outcome::Success,
        Ok(v1::Outcome::Failure) => Outcome::Failure,
        Ok(v1::Outcome::Partial) => Outcome::Partial,
        Ok(v1::Outcome::Timeout) => Outcome::Timeout,
        Ok(v1::Outcome::Cancelled) => Outcome::Cancelled,
        // Not stated: a run that reports an error failed, otherwise it succeeded (the rule OTLP
        // root spans follow).
        Ok(v1::Outcome::Unspecified) if run.error_message.is_empty() => Outcome::Success,
        Ok(v1::Outcome::Unspecified) => Outcome::Failure,
        Err(_) => return Err(unknown_enum("run.outcome", run.outcome)),
    };
    let raw_user_id = if run.user_id.is_empty() {
        None
    } else {
        // The reason names the length only, never the id.
        check_name("run.user_id", &run.user_id, limits)?;
        Some(RawUserId(run.user_id))
    };
    let mut row = RunRow {
        project_id: String::new(),
        trace_id: run.trace_id,
        session_id: run.session_id,
        user_hash: run.user_hash,
        task_type: run.task_type,
        agent_name: run.agent_name,
        agent_version: run.agent_version,
        environment: run.environment,
        release: run.release,
        start_time_ns: run.start_time_unix_nano,
        end_time_ns: run.end_time_unix_nano,
        outcome,
        error_message: run.error_message,
        input: run.input,
        output: run.output,
        tags: non_empty(run.tags),
        classification: non_empty(run.classification),
        retention: run.retention,
        audit_ref: run.audit_ref,
        synthesized: false,
        ingested_at_ns: now_ns,
    };
    validate::check_run(&row, limits, now_ns)?;
    validate::bound_run(&mut row, limits);
    if run.shadow {
        row.mark_shadow();
    }
    Ok(DraftRun { row, raw_user_id })
}

fn decode_span(span: v1::Span, limits: &Limits, now_ns: i64) -> Result<SpanRow, FieldError> {
    validate::check_attribute_count(span.attributes.len(), limits)?;
    let status = match v1::SpanStatus::try_from(span.status) {
        Ok(v1::SpanStatus::Unset) => SpanStatus::Unset,
        Ok(v1::SpanStatus::Ok) => SpanStatus::Ok,
        Ok(v1::SpanStatus::Error) => SpanStatus::Error,
        Err(_) => return Err(unknown_enum("span.status", span.status)),
    };
    let has_model = span.model.as_ref().is_some_and(|m| !m.model.is_empty());
    let has_tool = span.tool.as_ref().is_some_and(|t| !t.name.is_empty());
    let kind = match v1::SpanKind::try_from(span.kind) {
        Ok(v1::SpanKind::Model) => SpanKind::Model,
        Ok(v1::SpanKind::Tool) => SpanKind::Tool,
        Ok(v1::SpanKind::Retrieval) => SpanKind::Retrieval,
        Ok(v1::SpanKind::Agent) => SpanKind::Agent,
        Ok(v1::SpanKind::Other) => SpanKind::Other,
        // Not stated: infer it from what the span carries, as OTLP spans are read.
        Ok(v1::SpanKind::Unspecified) if has_tool => SpanKind::Tool,
        Ok(v1::SpanKind::Unspecified) if has_model => SpanKind::Model,
        Ok(v1::SpanKind::Unspecified) => SpanKind::Other,
        Err(_) => return Err(unknown_enum("span.kind", span.kind)),
    };
    // A raw user id belongs in `Run.user_id`, where it is hashed; under an attribute it is dropped.
    let (attr_keys, attr_values) = span
        .attributes
        .into_iter()
        .filter(|a| !validate::RAW_USER_ATTRIBUTES.contains(&a.key.as_str()))
        .map(|a| (a.key, a.value))
        .unzip();
    let mut row = SpanRow {
        project_id: String::new(),
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_span_id: span.parent_span_id,
        kind,
        name: span.name,
        start_time_ns: span.start_time_unix_nano,
        end_time_ns: span.end_time_unix_nano,
        status,
        error_type: span.error_type,
        status_message: span.status_message,
        input: span.input,
        output: span.output,
        attr_keys,
        attr_values,
        ingested_at_ns: now_ns,
        ..Default::default()
    };
    if let Some(model) = span.model {
        row.provider = model.provider;
        row.model = model.model;
        row.model_version = model.model_version;
        row.prompt_id = model.prompt_id;
        row.prompt_version = model.prompt_version;
        row.input_tokens = model.input_tokens;
        row.output_tokens = model.output_tokens;
        row.cached_input_tokens = model.cached_input_tokens;
        row.cache_write_tokens = model.cache_write_tokens;
        row.reasoning_tokens = model.reasoning_tokens;
        if let Some(usd) = model.cost_usd {
            let nanos = usd_to_nanos(usd).ok_or_else(|| {
                FieldError::new(
                    "span.model.cost_usd",
                    format!("{usd} is not a non-negative number of dollars"),
                )
            })?;
            row.cost_nanos = Some(nanos);
            COST_SOURCE_SDK.clone_into(&mut row.cost_source);
        }
    }
    if let Some(tool) = span.tool {
        row.tool_name = tool.name;
        row.tool_version = tool.version;
        row.tool_call_id = tool.call_id;
        row.retry_count = tool.retry_count;
        // Hashed over the full text, before bounding; the arguments are the call's input.
        row.tool_args_hash = validate::args_hash(&tool.arguments);
        if !tool.arguments.is_empty() {
            row.input = tool.arguments;
        }
    }
    validate::check_span(&row, limits, now_ns)?;
    validate::bound_span(&mut row, limits);
    Ok(row)
}

fn decode_score(score: v1::Score, limits: &Limits, now_ns: i64) -> Result<ScoreRow, FieldError> {
    let score_id = if score.score_id.is_empty() {
        derived_score_id(&score)
    } else {
        score.score_id
    };
    let mut row = ScoreRow {
        project_id: String::new(),
        trace_id: score.trace_id,
        score_id,
        span_id: score.span_id,
        name: score.name,
        value: None,
        bool_value: None,
        string_value: String::new(),
        source: score.source,
        comment: score.comment,
        time_ns: if score.time_unix_nano == 0 {
            now_ns
        } else {
            score.time_unix_nano
        },
        ingested_at_ns: now_ns,
    };
    match score.value {
        Some(ScoreValue::Numeric(v)) => row.value = Some(v),
        Some(ScoreValue::Boolean(b)) => {
            row.bool_value = Some(b);
            row.value = Some(if b { 1.0 } else { 0.0 });
        }
        Some(ScoreValue::Text(text)) if text.is_empty() => {
            return Err(FieldError::new("score.value", "the text value is empty"));
        }
        Some(ScoreValue::Text(text)) => row.string_value = text,
        None => {
            return Err(FieldError::new(
                "score.value",
                "exactly one of numeric, boolean or text is required",
            ));
        }
    }
    validate::check_score(&row, limits, now_ns)?;
    validate::bound_score(&mut row, limits);
    Ok(row)
}

/// A score id derived from what identifies the score, so that a retried request (with the same
/// time, or with none) writes the same key: the first 32 hexadecimal characters of SHA-256 over
/// the length-prefixed trace id, span id, name, source and the time as sent.
fn derived_score_id(score: &v1::Score) -> String {
    let mut hasher = Sha256::new();
    for part in [&score.trace_id, &score.span_id, &score.name, &score.source] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update(score.time_unix_nano.to_le_bytes());
    let mut hex = hex::encode(hasher.finalize());
    hex.truncate(SCORE_ID_HEX_LEN);
    hex
}

fn unknown_enum(field: &str, value: i32) -> FieldError {
    FieldError::new(field, format!("{value} is not a known value"))
}

fn non_empty(labels: Vec<String>) -> Vec<String> {
    labels
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use vigil_schemas::time::{NANOS_PER_DAY, NANOS_PER_SECOND};

    use super::*;

    const NOW: i64 = 1_800_000_000 * NANOS_PER_SECOND;
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn run() -> v1::Run {
        v1::Run {
            trace_id: TRACE.into(),
            session_id: "sess-1".into(),
            user_id: "alice@example.com".into(),
            user_hash: String::new(),
            task_type: "refund".into(),
            agent_name: "support-bot".into(),
            agent_version: "1.2".into(),
            environment: "production".into(),
            release: "r42".into(),
            start_time_unix_nano: NOW - 5 * NANOS_PER_SECOND,
            end_time_unix_nano: NOW - NANOS_PER_SECOND,
            outcome: v1::Outcome::Partial as i32,
            error_message: String::new(),
            input: "help".into(),
            output: "done".into(),
            tags: vec!["a".into(), "".into(), "b".into()],
            classification: vec!["pii".into()],
            retention: "30d".into(),
            audit_ref: "TICKET-1".into(),
            shadow: false,
        }
    }

    fn span() -> v1::Span {
        v1::Span {
            trace_id: TRACE.into(),
            span_id: SPAN.into(),
            parent_span_id: "a3ce929d0e0e4736".into(),
            kind: v1::SpanKind::Model as i32,
            name: "chat gpt-4o".into(),
            start_time_unix_nano: NOW - 3 * NANOS_PER_SECOND,
            end_time_unix_nano: NOW - 2 * NANOS_PER_SECOND,
            status: v1::SpanStatus::Error as i32,
            error_type: "timeout".into(),
            status_message: "deadline".into(),
            input: "hi".into(),
            output: "hello".into(),
            attributes: vec![v1::Attribute {
                key: "k".into(),
                value: "v".into(),
            }],
            model: Some(v1::ModelCall {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                model_version: "gpt-4o-2024-08-06".into(),
                prompt_id: "greeting".into(),
                prompt_version: "3".into(),
                input_tokens: 10,
                output_tokens: 5,
                cached_input_tokens: 2,
                cache_write_tokens: 1,
                reasoning_tokens: 3,
                cost_usd: Some(0.0012),
            }),
            tool: None,
        }
    }

    fn score() -> v1::Score {
        v1::Score {
            score_id: String::new(),
            trace_id: TRACE.into(),
            span_id: String::new(),
            name: "thumbs".into(),
            value: Some(ScoreValue::Boolean(true)),
            source: "user".into(),
            comment: "great".into(),
            time_unix_nano: 0,
        }
    }

    fn decode(request: v1::ExportRequest) -> DraftNative {
        decode_native(request, &Limits::default(), NOW)
    }

    #[test]
    fn a_run_is_converted_field_by_field() {
        let out = decode(v1::ExportRequest {
            runs: vec![run()],
            ..Default::default()
        });
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        let draft = &out.runs[0];
        assert_eq!(
            draft.raw_user_id,
            Some(RawUserId("alice@example.com".into()))
        );
        let r = &draft.row;
        assert_eq!(r.trace_id, TRACE);
        assert_eq!(r.session_id, "sess-1");
        assert_eq!(r.user_hash, "");
        assert_eq!(r.task_type, "refund");
        assert_eq!(
            (r.agent_name.as_str(), r.agent_version.as_str()),
            ("support-bot", "1.2")
        );
        assert_eq!(
            (r.environment.as_str(), r.release.as_str()),
            ("production", "r42")
        );
        assert_eq!(r.outcome, Outcome::Partial);
        assert_eq!(r.tags, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(r.classification, vec!["pii".to_string()]);
        assert_eq!(
            (r.retention.as_str(), r.audit_ref.as_str()),
            ("30d", "TICKET-1")
        );
        assert_eq!(r.ingested_at_ns, NOW);
        assert_eq!(r.duration_ns(), 4 * NANOS_PER_SECOND);
        assert!(!r.is_shadow());
    }

    #[test]
    fn a_shadow_run_carries_the_shadow_tag_once() {
        let mut shadow = run();
        shadow.shadow = true;
        shadow.tags.push(vigil_schemas::SHADOW_TAG.into());
        let out = decode(v1::ExportRequest {
            runs: vec![shadow],
            ..Default::default()
        });
        assert_eq!(out.runs[0].row.tags, ["a", "b", "vigil.shadow"]);
    }

    #[test]
    fn a_pre_hashed_user_is_kept_and_an_unspecified_outcome_follows_the_error() {
        let mut r = run();
        r.user_id = String::new();
        r.user_hash = "abc123".into();
        r.outcome = 0;
        let mut failed = run();
        failed.outcome = 0;
        failed.error_message = "boom".into();
        let out = decode(v1::ExportRequest {
            runs: vec![r, failed],
            ..Default::default()
        });
        assert_eq!(out.runs[0].raw_user_id, None);
        assert_eq!(out.runs[0].row.user_hash, "abc123");
        assert_eq!(out.runs[0].row.outcome, Outcome::Success);
        assert_eq!(out.runs[1].row.outcome, Outcome::Failure);
    }

    #[test]
    fn a_span_is_converted_with_its_model_call() {
        let out = decode(v1::ExportRequest {
            spans: vec![span()],
            ..Default::default()
        });
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        let s = &out.spans[0];
        assert_eq!(s.kind, SpanKind::Model);
        assert_eq!(s.status, SpanStatus::Error);
        assert_eq!(
            (s.error_type.as_str(), s.status_message.as_str()),
            ("timeout", "deadline")
        );
        assert_eq!(
            (s.provider.as_str(), s.model.as_str()),
            ("openai", "gpt-4o")
        );
        assert_eq!(s.model_version, "gpt-4o-2024-08-06");
        assert_eq!(
            (s.prompt_id.as_str(), s.prompt_version.as_str()),
            ("greeting", "3")
        );
        assert_eq!(
            (
                s.input_tokens,
                s.output_tokens,
                s.cached_input_tokens,
                s.cache_write_tokens,
                s.reasoning_tokens
            ),
            (10, 5, 2, 1, 3)
        );
        assert_eq!(s.cost_nanos, Some(1_200_000));
        assert_eq!(s.cost_source, "sdk");
        assert_eq!(s.attribute("k"), Some("v"));
        assert_eq!((s.input.as_str(), s.output.as_str()), ("hi", "hello"));
        assert_eq!(s.ingested_at_ns, NOW);
    }

    #[test]
    fn tool_arguments_become_the_input_and_are_hashed() {
        let args = r#"{"city":"Paris"}"#;
        let mut s = span();
        s.kind = 0;
        s.model = None;
        s.tool = Some(v1::ToolCall {
            name: "weather".into(),
            version: "2".into(),
            call_id: "call_1".into(),
            arguments: args.into(),
            retry_count: 2,
        });
        let out = decode(v1::ExportRequest {
            spans: vec![s],
            ..Default::default()
        });
        let row = &out.spans[0];
        assert_eq!(row.kind, SpanKind::Tool);
        assert_eq!(row.input, args);
        let expected = hex::encode(Sha256::digest(args.as_bytes()));
        assert_eq!(row.tool_args_hash, expected[..16]);
        assert_eq!(
            (row.tool_name.as_str(), row.tool_version.as_str()),
            ("weather", "2")
        );
        assert_eq!((row.tool_call_id.as_str(), row.retry_count), ("call_1", 2));
        assert_eq!(row.cost_nanos, None);
        assert_eq!(row.cost_source, "");
    }

    #[test]
    fn raw_user_ids_in_attributes_are_dropped() {
        let mut s = span();
        s.attributes = ["user.id", "langfuse.user.id", "enduser.id", "app.x"]
            .iter()
            .map(|k| v1::Attribute {
                key: k.to_string(),
                value: "alice".into(),
            })
            .collect();
        let out = decode(v1::ExportRequest {
            spans: vec![s],
            ..Default::default()
        });
        assert_eq!(out.spans[0].attr_keys, vec!["app.x".to_string()]);
    }

    #[test]
    fn an_unspecified_kind_is_inferred() {
        let mut model = span();
        model.kind = 0;
        let mut plain = span();
        plain.kind = 0;
        plain.model = None;
        let out = decode(v1::ExportRequest {
            spans: vec![model, plain],
            ..Default::default()
        });
        assert_eq!(out.spans[0].kind, SpanKind::Model);
        assert_eq!(out.spans[1].kind, SpanKind::Other);
    }

    #[test]
    fn invalid_items_are_rejected_with_kind_index_and_field() {
        let mut bad_run = run();
        bad_run.trace_id = "nope".into();
        let mut bad_outcome = run();
        bad_outcome.outcome = 42;
        let mut bad_kind = span();
        bad_kind.kind = 9;
        let mut bad_status = span();
        bad_status.status = 7;
        let mut bad_cost = span();
        if let Some(m) = bad_cost.model.as_mut() {
            m.cost_usd = Some(-1.0);
        }
        let mut many_attrs = span();
        many_attrs.attributes = (0..10_000)
            .map(|i| v1::Attribute {
                key: format!("k{i}"),
                value: String::new(),
            })
            .collect();
        let mut backwards = span();
        backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
        let mut no_value = score();
        no_value.value = None;
        let mut no_name = score();
        no_name.name = String::new();
        let mut empty_text = score();
        empty_text.value = Some(ScoreValue::Text(String::new()));
        let out = decode(v1::ExportRequest {
            runs: vec![run(), bad_run, bad_outcome],
            spans: vec![
                bad_kind,
                span(),
                bad_status,
                bad_cost,
                many_attrs,
                backwards,
            ],
            scores: vec![no_value, score(), no_name, empty_text],
        });
        assert_eq!(
            (out.runs.len(), out.spans.len(), out.scores.len()),
            (1, 1, 1)
        );
        let got: Vec<(ItemKind, usize, &str)> = out
            .rejected
            .iter()
            .map(|r| (r.item, r.index, r.error.field.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (ItemKind::Run, 1, "run.trace_id"),
                (ItemKind::Run, 2, "run.outcome"),
                (ItemKind::Span, 0, "span.kind"),
                (ItemKind::Span, 2, "span.status"),
                (ItemKind::Span, 3, "span.model.cost_usd"),
                (ItemKind::Span, 4, "span.attributes"),
                (ItemKind::Span, 5, "span.end_time"),
                (ItemKind::Score, 0, "score.value"),
                (ItemKind::Score, 2, "score.name"),
                (ItemKind::Score, 3, "score.value"),
            ]
        );
        assert_eq!(
            out.rejected[5].error.reason,
            "10000 attributes, the limit is 512"
        );
    }

    #[test]
    fn long_user_ids_are_refused_without_echoing_them() {
        let mut r = run();
        r.user_id = "x".repeat(300);
        let out = decode(v1::ExportRequest {
            runs: vec![r],
            ..Default::default()
        });
        let e = &out.rejected[0].error;
        assert_eq!(e.to_string(), "run.user_id: 300 bytes, the limit is 256");
    }

    #[test]
    fn free_text_is_bounded() {
        let limits = Limits {
            max_content_bytes: 4,
            ..Limits::default()
        };
        let mut r = run();
        r.output = "abcdefgh".into();
        let mut s = span();
        s.input = "abcdefgh".into();
        let mut sc = score();
        sc.comment = "abcdefgh".into();
        let out = decode_native(
            v1::ExportRequest {
                runs: vec![r],
                spans: vec![s],
                scores: vec![sc],
            },
            &limits,
            NOW,
        );
        assert_eq!(out.runs[0].row.output, "abcd");
        assert_eq!(out.spans[0].input, "abcd");
        assert_eq!(
            out.spans[0].attribute("vigil.truncated"),
            Some("input,output,status_message")
        );
        assert_eq!(out.scores[0].comment, "abcd");
    }

    #[test]
    fn scores_take_exactly_one_value() {
        let mut numeric = score();
        numeric.value = Some(ScoreValue::Numeric(0.75));
        numeric.score_id = "given".into();
        numeric.time_unix_nano = NOW - NANOS_PER_SECOND;
        let mut text = score();
        text.value = Some(ScoreValue::Text("relevant".into()));
        let mut down = score();
        down.value = Some(ScoreValue::Boolean(false));
        let out = decode(v1::ExportRequest {
            scores: vec![score(), numeric, text, down],
            ..Default::default()
        });
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        let s = &out.scores;
        assert_eq!((s[0].value, s[0].bool_value), (Some(1.0), Some(true)));
        assert_eq!(s[0].time_ns, NOW);
        assert_eq!((s[1].value, s[1].bool_value), (Some(0.75), None));
        assert_eq!(s[1].score_id, "given");
        assert_eq!(s[1].time_ns, NOW - NANOS_PER_SECOND);
        assert_eq!((s[2].value, s[2].string_value.as_str()), (None, "relevant"));
        assert_eq!((s[3].value, s[3].bool_value), (Some(0.0), Some(false)));
    }

    #[test]
    fn derived_score_ids_are_deterministic() {
        let a = decode(v1::ExportRequest {
            scores: vec![score()],
            ..Default::default()
        });
        // A retry, later: the same id even though the time defaulted to another "now".
        let b = decode_native(
            v1::ExportRequest {
                scores: vec![score()],
                ..Default::default()
            },
            &Limits::default(),
            NOW + NANOS_PER_DAY,
        );
        let id = &a.scores[0].score_id;
        assert_eq!(id, &b.scores[0].score_id);
        assert_eq!(id.len(), 32);
        // Computed independently.
        let mut h = Sha256::new();
        for part in [TRACE, "", "thumbs", "user"] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(0i64.to_le_bytes());
        assert_eq!(id, &hex::encode(h.finalize())[..32]);

        let mut other = score();
        other.name = "thumbs2".into();
        let c = decode(v1::ExportRequest {
            scores: vec![other],
            ..Default::default()
        });
        assert_ne!(id, &c.scores[0].score_id);
    }

    #[test]
    fn count_items_counts_every_list() {
        let r = v1::ExportRequest {
            runs: vec![run()],
            spans: vec![span(), span()],
            scores: vec![score(); 3],
        };
        assert_eq!(count_items(&r), 6);
    }
}
