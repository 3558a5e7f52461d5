//! The ingest path's figures for `/metrics`, kept in `prometheus-client` metrics and registered
//! once into the server's registry ([`IngestTelemetry::register`]). Names end in their unit;
//! labels are bounded (item kind, protocol, refusal reason, the field of a rejection).

use std::{collections::BTreeSet, fmt, sync::Arc, time::Duration};

use parking_lot::Mutex;
use prometheus_client::{
    collector::Collector,
    encoding::{
        DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    },
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

use crate::{draft::ItemKind, wal::Wal};

/// The protocol of an export request.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Protocol {
    Native,
    Otlp,
}

/// Why a request was refused with a retryable status.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Refusal {
    BacklogFull,
    Unavailable,
}

/// Label values in snake case, as the metric names are.
fn label(encoder: &mut LabelValueEncoder, text: &str) -> Result<(), fmt::Error> {
    fmt::Write::write_str(encoder, text)
}

impl EncodeLabelValue for ItemKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        label(encoder, self.as_str())
    }
}

impl EncodeLabelValue for Protocol {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        label(
            encoder,
            match self {
                Protocol::Native => "native",
                Protocol::Otlp => "otlp",
            },
        )
    }
}

impl EncodeLabelValue for Refusal {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        label(
            encoder,
            match self {
                Refusal::BacklogFull => "backlog_full",
                Refusal::Unavailable => "unavailable",
            },
        )
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: ItemKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: Protocol,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: Refusal,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabel {
    field: String,
}

/// At most this many distinct `field` labels of rejections; the rest count as `other`.
const MAX_REJECTION_LABELS: usize = 64;

/// Seconds from 0.5 ms to about 16 s, doubling: acknowledgements (an fsync is about a
/// millisecond) and store writes (a large ClickHouse insert takes seconds).
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 16)
}

#[derive(Debug)]
pub struct IngestTelemetry {
    items: Family<KindLabel, Counter>,
    requests: Family<ProtocolLabel, Counter>,
    refused: Family<ReasonLabel, Counter>,
    rejected: Family<FieldLabel, Counter>,
    rejected_fields: Mutex<BTreeSet<String>>,
    acknowledgements: Family<ProtocolLabel, Histogram>,
    runs_synthesized: Counter,
    sink_rows_written: Counter,
    sink_write_errors: Counter,
    sink_writes: Histogram,
    /// 1 when the last sink write succeeded (or none failed yet), 0 while it is failing.
    sink_up: Gauge,
    /// 1 while `unreadable_record` is set: `/metrics` reads it, the batcher checks it cheaply.
    unreadable: Gauge,
    /// The WAL record the batcher stopped at because it cannot read it (see `quarantine.rs`).
    unreadable_record: Mutex<Option<UnreadableRecord>>,
}

/// A WAL record the batcher cannot read and will not pass until it is quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRecord {
    pub lsn: u64,
    pub error: String,
}

impl Default for IngestTelemetry {
    fn default() -> Self {
        IngestTelemetry::new()
    }
}

impl IngestTelemetry {
    pub fn new() -> IngestTelemetry {
        let telemetry = IngestTelemetry {
            items: Family::default(),
            requests: Family::default(),
            refused: Family::default(),
            rejected: Family::default(),
            rejected_fields: Mutex::default(),
            acknowledgements: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            runs_synthesized: Counter::default(),
            sink_rows_written: Counter::default(),
            sink_write_errors: Counter::default(),
            sink_writes: Histogram::new(latency_buckets()),
            sink_up: Gauge::default(),
            unreadable: Gauge::default(),
            unreadable_record: Mutex::default(),
        };
        telemetry.sink_up.set(1);
        // Every label value from the start, so a counter reads 0 rather than being absent.
        for kind in [ItemKind::Run, ItemKind::Span, ItemKind::Score] {
            let _ = telemetry.items.get_or_create(&KindLabel { kind });
        }
        for protocol in [Protocol::Native, Protocol::Otlp] {
            let _ = telemetry
                .requests
                .get_or_create(&ProtocolLabel { protocol });
        }
        for reason in [Refusal::BacklogFull, Refusal::Unavailable] {
            let _ = telemetry.refused.get_or_create(&ReasonLabel { reason });
        }
        telemetry
    }

    /// Adds every figure to `registry` (names as `/metrics` shows them, less `_total`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "vigil_ingested_items",
            "Items accepted and made durable.",
            self.items.clone(),
        );
        registry.register(
            "vigil_ingest_requests",
            "Export requests handled, by protocol.",
            self.requests.clone(),
        );
        registry.register(
            "vigil_ingest_refused_requests",
            "Export requests refused with a retryable status.",
            self.refused.clone(),
        );
        registry.register(
            "vigil_ingest_rejected_items",
            "Items rejected by validation, by the field at fault.",
            self.rejected.clone(),
        );
        registry.register_with_unit(
            "vigil_ingest_ack_latency",
            "From the start of an export request to its acknowledgement (durable in the WAL).",
            Unit::Seconds,
            self.acknowledgements.clone(),
        );
        registry.register(
            "vigil_runs_synthesized",
            "Runs built for traces whose root span never came.",
            self.runs_synthesized.clone(),
        );
        registry.register(
            "vigil_sink_rows_written",
            "Rows written to the store.",
            self.sink_rows_written.clone(),
        );
        registry.register(
            "vigil_sink_write_errors",
            "Failed store writes (retried).",
            self.sink_write_errors.clone(),
        );
        registry.register_with_unit(
            "vigil_sink_write",
            "Store writes that succeeded, by how long each took (its count is the batches written).",
            Unit::Seconds,
            self.sink_writes.clone(),
        );
        registry.register(
            "vigil_sink_up",
            "1 when the store accepts writes.",
            self.sink_up.clone(),
        );
        registry.register(
            "vigil_wal_unreadable_record",
            "1 while the store's writer is stopped at a WAL record it cannot read (`vigil wal \
             inspect`).",
            self.unreadable.clone(),
        );
    }

    pub fn request(&self, protocol: Protocol) {
        self.requests
            .get_or_create(&ProtocolLabel { protocol })
            .inc();
    }

    /// Items made durable.
    pub fn accepted(&self, kind: ItemKind, n: usize) {
        self.items
            .get_or_create(&KindLabel { kind })
            .inc_by(n as u64);
    }

    /// An export request acknowledged, `took` after it arrived.
    pub fn acknowledged(&self, protocol: Protocol, took: Duration) {
        self.acknowledgements
            .get_or_create(&ProtocolLabel { protocol })
            .observe(took.as_secs_f64());
    }

    pub fn refused(&self, reason: Refusal) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn rejected(&self, field: &str) {
        let mut fields = self.rejected_fields.lock();
        let known = fields.contains(field) || fields.len() < MAX_REJECTION_LABELS;
        let label = if known
            && field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            fields.insert(field.to_string());
            field
        } else {
            "other"
        };
        self.rejected
            .get_or_create(&FieldLabel {
                field: label.to_string(),
            })
            .inc();
    }

    pub fn synthesized(&self, runs: usize) {
        self.runs_synthesized.inc_by(runs as u64);
    }

    pub fn sink_wrote(&self, rows: usize, took: Duration) {
        self.sink_rows_written.inc_by(rows as u64);
        self.sink_writes.observe(took.as_secs_f64());
        self.sink_up.set(1);
    }

    pub fn sink_failed(&self) {
        self.sink_write_errors.inc();
        self.sink_up.set(0);
    }

    /// The WAL record the batcher is stopped at, if any.
    pub fn unreadable_record(&self) -> Option<UnreadableRecord> {
        self.unreadable_record.lock().clone()
    }

    pub fn stopped_at_unreadable(&self) -> bool {
        self.unreadable.get() != 0
    }

    /// The batcher stopped at, or moved past, a record it cannot read.
    pub fn set_unreadable(&self, record: Option<UnreadableRecord>) -> Option<UnreadableRecord> {
        self.unreadable.set(i64::from(record.is_some()));
        std::mem::replace(&mut *self.unreadable_record.lock(), record)
    }
}

/// Writes one metric read at scrape time (a [`ConstGauge`] or [`ConstCounter`]) with its
/// description: what a [`Collector`] does for each figure.
pub fn encode_const(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// The WAL's figures, read from the log at each scrape.
pub struct WalFigures(pub Arc<Wal>);

impl fmt::Debug for WalFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WalFigures")
    }
}

impl Collector for WalFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = self.0.stats();
        let gauge = |n: u64| ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
        for (name, help, value) in [
            (
                "vigil_wal_backlog_bytes",
                "Bytes in the WAL not yet confirmed by the store.",
                stats.backlog_bytes,
            ),
            (
                "vigil_wal_durable_bytes",
                "Log position up to which data is fsync'd.",
                stats.durable_lsn,
            ),
            (
                "vigil_wal_segments",
                "WAL segment files on disk.",
                stats.segments,
            ),
        ] {
            encode_const(&mut encoder, name, help, gauge(value))?;
        }
        for (name, help, value) in [
            (
                "vigil_wal_appends",
                "Records appended to the WAL.",
                stats.appends,
            ),
            (
                "vigil_wal_fsyncs",
                "fsync calls of the WAL (group commits).",
                stats.fsyncs,
            ),
        ] {
            encode_const(&mut encoder, name, help, ConstCounter::new(value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn figures_read_as_prometheus_names() {
        let telemetry = IngestTelemetry::new();
        let mut registry = Registry::default();
        telemetry.register(&mut registry);
        telemetry.request(Protocol::Otlp);
        telemetry.accepted(ItemKind::Run, 2);
        telemetry.accepted(ItemKind::Span, 5);
        telemetry.acknowledged(Protocol::Otlp, Duration::from_millis(3));
        telemetry.rejected("span.name");
        for i in 0..MAX_REJECTION_LABELS + 5 {
            telemetry.rejected(&format!("f{i}"));
        }
        telemetry.rejected("bad label\"");
        telemetry.sink_failed();
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            "vigil_ingested_items_total{kind=\"span\"} 5",
            "vigil_ingest_requests_total{protocol=\"otlp\"} 1",
            "vigil_ingest_requests_total{protocol=\"native\"} 0",
            "vigil_ingest_rejected_items_total{field=\"span.name\"} 1",
            "vigil_ingest_rejected_items_total{field=\"other\"} 7",
            "vigil_ingest_ack_latency_seconds_count{protocol=\"otlp\"} 1",
            "vigil_sink_write_errors_total 1",
            "vigil_sink_up 0",
        ] {
            assert!(text.contains(line), "{line} is missing from\n{text}");
        }
    }
}
