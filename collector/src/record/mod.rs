//! What a WAL record holds: one [`IngestBatch`], in a versioned format that later versions of
//! Vigil keep reading, so that upgrading with a non-empty WAL loses nothing.
//!
//! A record written today is `b"VWAL"`, the format number, then the format's bytes:
//!
//! | format | since | bytes |
//! |---|---|---|
//! | 1 | the first release | bincode of the row types of that release, with no prefix at all |
//! | 2 | this release | protobuf `vigil.wal.v1.Batch` (`proto/proto/vigil/wal/v1/record.proto`) |
//!
//! Format 2 is self-describing in the way that matters for upgrades: fields are numbered, a field
//! a reader does not know is skipped, a field a record lacks takes its default. Adding a row
//! field is therefore a new field number in the `.proto` file and a line in `format2.rs`.
//!
//! A format-1 record cannot be mistaken for a prefixed one: it starts with the run count as a
//! little-endian u64, and `b"VWAL"` read that way is over a billion runs, far more than the
//! largest record the WAL accepts could hold.

mod format1;
mod format2;

use vigil_schemas::IngestBatch;

/// The first bytes of every record since format 2.
pub const MAGIC: &[u8; 4] = b"VWAL";

/// A record format Vigil can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// bincode of the first release's row types; read, never written.
    Bincode1,
    /// protobuf `vigil.wal.v1.Batch`.
    Protobuf2,
}

impl RecordFormat {
    /// The format new records are written in.
    pub const CURRENT: RecordFormat = RecordFormat::Protobuf2;

    pub fn number(self) -> u8 {
        match self {
            RecordFormat::Bincode1 => 1,
            RecordFormat::Protobuf2 => 2,
        }
    }

    /// The format of a payload and the bytes after its prefix.
    pub fn of(payload: &[u8]) -> Result<(RecordFormat, &[u8]), RecordError> {
        let Some(rest) = payload.strip_prefix(MAGIC) else {
            return Ok((RecordFormat::Bincode1, payload));
        };
        match rest.split_first() {
            Some((2, body)) => Ok((RecordFormat::Protobuf2, body)),
            Some((&number, _)) => Err(RecordError::UnknownFormat(number)),
            None => Err(RecordError::Malformed {
                format: None,
                reason: "the record ends after its prefix".into(),
            }),
        }
    }
}

impl std::fmt::Display for RecordFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordFormat::Bincode1 => f.write_str("1 (bincode)"),
            RecordFormat::Protobuf2 => f.write_str("2 (protobuf vigil.wal.v1.Batch)"),
        }
    }
}

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error(
        "record format {0} is newer than this binary knows (it reads formats 1 and 2); run the \
         version of Vigil that wrote it"
    )]
    UnknownFormat(u8),
    #[error("the record is not valid{}: {reason}", format.map(|f| format!(" format {f}")).unwrap_or_default())]
    Malformed {
        format: Option<RecordFormat>,
        reason: String,
    },
}

/// The format number a payload claims, known to this binary or not (`None`: it ends inside its
/// prefix).
pub fn claimed_format(payload: &[u8]) -> Option<u8> {
    match payload.strip_prefix(MAGIC) {
        None => Some(RecordFormat::Bincode1.number()),
        Some(rest) => rest.first().copied(),
    }
}

/// Encodes a batch in the current format, and gives the batch back (its rows move through the
/// message, so nothing is copied but the bytes written).
pub fn encode_owned(batch: IngestBatch) -> (Vec<u8>, IngestBatch) {
    let (body, batch) = format2::encode(batch);
    let mut payload = Vec::with_capacity(MAGIC.len() + 1 + body.len());
    payload.extend_from_slice(MAGIC);
    payload.push(RecordFormat::CURRENT.number());
    payload.extend_from_slice(&body);
    (payload, batch)
}

/// Encodes a copy of a batch in the current format.
pub fn encode(batch: &IngestBatch) -> Vec<u8> {
    encode_owned(batch.clone()).0
}

/// Decodes a record of any format this binary reads.
pub fn decode(payload: &[u8]) -> Result<IngestBatch, RecordError> {
    let (format, body) = RecordFormat::of(payload)?;
    let malformed = |reason: String| RecordError::Malformed {
        format: Some(format),
        reason,
    };
    match format {
        RecordFormat::Bincode1 => format1::decode(body).map_err(malformed),
        RecordFormat::Protobuf2 => format2::decode(body).map_err(malformed),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use vigil_schemas::{Outcome, RunRow, ScoreRow, SpanKind, SpanRow, SpanStatus};

    use super::*;

    /// A batch with every field of every row set to a value unlike its default.
    pub(crate) fn full_batch() -> IngestBatch {
        let run = RunRow {
            project_id: "p".into(),
            trace_id: "t1".into(),
            session_id: "s".into(),
            user_hash: "u".into(),
            task_type: "refund".into(),
            agent_name: "agent".into(),
            agent_version: "1.2".into(),
            environment: "prod".into(),
            release: "r7".into(),
            start_time_ns: -5,
            end_time_ns: 1_700_000_000_000_000_000,
            outcome: Outcome::Timeout,
            error_message: "boom".into(),
            input: "in ✓".into(),
            output: "out".into(),
            tags: vec!["a".into(), "b".into()],
            classification: vec!["pii".into()],
            retention: "30d".into(),
            audit_ref: "ref".into(),
            synthesized: true,
            ingested_at_ns: 42,
        };
        let span = SpanRow {
            project_id: "p".into(),
            trace_id: "t1".into(),
            span_id: "sp".into(),
            parent_span_id: "root".into(),
            kind: SpanKind::Tool,
            name: "search".into(),
            start_time_ns: 1,
            end_time_ns: 2,
            status: SpanStatus::Error,
            error_type: "Timeout".into(),
            status_message: "slow".into(),
            input: "{}".into(),
            output: "[]".into(),
            attr_keys: vec!["k".into()],
            attr_values: vec!["v".into()],
            provider: "openai".into(),
            model: "gpt".into(),
            model_version: "2026-01".into(),
            prompt_id: "pr".into(),
            prompt_version: "v7".into(),
            input_tokens: u64::MAX,
            output_tokens: 3,
            cached_input_tokens: 4,
            cache_write_tokens: 5,
            reasoning_tokens: 6,
            cost_nanos: Some(-7),
            cost_source: "sdk".into(),
            tool_name: "search".into(),
            tool_version: "3".into(),
            tool_call_id: "call".into(),
            tool_args_hash: "hash".into(),
            retry_count: 9,
            ingested_at_ns: 43,
        };
        let score = ScoreRow {
            project_id: "p".into(),
            trace_id: "t1".into(),
            score_id: "sc".into(),
            span_id: "sp".into(),
            name: "helpful".into(),
            value: Some(0.25),
            bool_value: Some(false),
            string_value: "meh".into(),
            source: "api".into(),
            comment: "c".into(),
            time_ns: 10,
            ingested_at_ns: 44,
        };
        IngestBatch {
            runs: vec![run, RunRow::default()],
            spans: vec![span, SpanRow::default()],
            scores: vec![score, ScoreRow::default()],
        }
    }

    #[test]
    fn the_current_format_round_trips_every_field() {
        let batch = full_batch();
        let (payload, given_back) = encode_owned(batch.clone());
        assert_eq!(given_back, batch);
        assert_eq!(&payload[..4], MAGIC);
        assert_eq!(payload[4], 2);
        assert_eq!(decode(&payload).unwrap(), batch);
    }

    /// Every value of every row enum survives the wire.
    #[test]
    fn every_enum_value_round_trips() {
        let statuses = [SpanStatus::Unset, SpanStatus::Ok, SpanStatus::Error];
        let batch = IngestBatch {
            runs: Outcome::ALL
                .into_iter()
                .map(|outcome| RunRow {
                    outcome,
                    ..Default::default()
                })
                .collect(),
            spans: SpanKind::ALL
                .into_iter()
                .zip(statuses.into_iter().cycle())
                .map(|(kind, status)| SpanRow {
                    kind,
                    status,
                    ..Default::default()
                })
                .collect(),
            scores: Vec::new(),
        };
        assert_eq!(decode(&encode(&batch)).unwrap(), batch);
    }

    #[test]
    fn a_newer_format_is_refused_by_number() {
        let mut payload = encode(&full_batch());
        payload[4] = 9;
        assert_eq!(decode(&payload), Err(RecordError::UnknownFormat(9)));
        assert!(matches!(
            decode(b"VWAL"),
            Err(RecordError::Malformed { format: None, .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for payload in [
            &b"VWAL\x02\xff\xff\xff"[..],
            &b"\x01\x00\x00\x00\x00\x00\x00\x00"[..],
            &b""[..],
            &b"VWAL\x02\x08\x01"[..],
        ] {
            let _ = decode(payload);
        }
        // An outcome number this binary does not know is refused, not read as a default.
        let mut batch = vigil_proto::wal::v1::Batch::default();
        batch.runs.push(vigil_proto::wal::v1::Run {
            outcome: 99,
            ..Default::default()
        });
        let mut payload = b"VWAL\x02".to_vec();
        payload.extend(prost::Message::encode_to_vec(&batch));
        let error = decode(&payload).unwrap_err().to_string();
        assert!(error.contains("outcome 99"), "{error}");
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_panic_the_decoder(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode(&bytes);
            let mut prefixed = b"VWAL\x02".to_vec();
            prefixed.extend(&bytes);
            let _ = decode(&prefixed);
        }
    }
}
