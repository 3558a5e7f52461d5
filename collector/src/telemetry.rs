//! Counters of the ingest path, rendered in Prometheus text format on `/metrics`.
//! Names end in their unit; labels are bounded (item kind, protocol, the field of a rejection).

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
};

use parking_lot::Mutex;

#[derive(Debug, Default)]
pub struct IngestTelemetry {
    pub runs_accepted: AtomicU64,
    pub spans_accepted: AtomicU64,
    pub scores_accepted: AtomicU64,
    pub requests_native: AtomicU64,
    pub requests_otlp: AtomicU64,
    pub requests_refused_backlog: AtomicU64,
    pub requests_refused_unavailable: AtomicU64,
    /// Rejected items by the field at fault; bounded because fields are a fixed vocabulary
    /// (anything else is folded into "other").
    rejected: Mutex<BTreeMap<String, u64>>,
    pub runs_synthesized: AtomicU64,
    pub sink_rows_written: AtomicU64,
    pub sink_batches_written: AtomicU64,
    pub sink_write_errors: AtomicU64,
    pub sink_write_seconds_micros: AtomicU64,
    /// 1 when the last sink write succeeded (or none failed yet), 0 while it is failing.
    pub sink_healthy: AtomicU64,
    /// The WAL record the batcher stopped at because it cannot read it (see `quarantine.rs`).
    pub unreadable_record: Mutex<Option<UnreadableRecord>>,
}

/// A WAL record the batcher cannot read and will not pass until it is quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRecord {
    pub lsn: u64,
    pub error: String,
}

const MAX_REJECTION_LABELS: usize = 64;

impl IngestTelemetry {
    pub fn new() -> IngestTelemetry {
        let t = IngestTelemetry::default();
        t.sink_healthy.store(1, Ordering::Relaxed);
        t
    }

    pub fn count_rejection(&self, field: &str) {
        let mut rejected = self.rejected.lock();
        let known = rejected.contains_key(field) || rejected.len() < MAX_REJECTION_LABELS;
        let label = if known
            && field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            field
        } else {
            "other"
        };
        *rejected.entry(label.to_string()).or_default() += 1;
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Appends this telemetry in Prometheus text exposition format.
    pub fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter_family(
            out,
            "vigil_ingested_items_total",
            "Items accepted and made durable.",
            "kind",
            &[
                ("run", get(&self.runs_accepted)),
                ("span", get(&self.spans_accepted)),
                ("score", get(&self.scores_accepted)),
            ],
        );
        counter_family(
            out,
            "vigil_ingest_requests_total",
            "Export requests handled, by protocol.",
            "protocol",
            &[
                ("native", get(&self.requests_native)),
                ("otlp", get(&self.requests_otlp)),
            ],
        );
        counter_family(
            out,
            "vigil_ingest_refused_requests_total",
            "Export requests refused with a retryable status.",
            "reason",
            &[
                ("backlog_full", get(&self.requests_refused_backlog)),
                ("unavailable", get(&self.requests_refused_unavailable)),
            ],
        );
        let rejected = self.rejected.lock();
        let pairs: Vec<(&str, u64)> = rejected.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        counter_family(
            out,
            "vigil_ingest_rejected_items_total",
            "Items rejected by validation, by the field at fault.",
            "field",
            &pairs,
        );
        gauge(
            out,
            "vigil_runs_synthesized_total",
            "counter",
            "Runs built for traces whose root span never came.",
            get(&self.runs_synthesized),
        );
        gauge(
            out,
            "vigil_sink_rows_written_total",
            "counter",
            "Rows written to the store.",
            get(&self.sink_rows_written),
        );
        gauge(
            out,
            "vigil_sink_batches_written_total",
            "counter",
            "Batches written to the store.",
            get(&self.sink_batches_written),
        );
        gauge(
            out,
            "vigil_sink_write_errors_total",
            "counter",
            "Failed store writes (retried).",
            get(&self.sink_write_errors),
        );
        let _ = writeln!(
            out,
            "# HELP vigil_sink_write_seconds_total Time spent in store writes."
        );
        let _ = writeln!(out, "# TYPE vigil_sink_write_seconds_total counter");
        let _ = writeln!(
            out,
            "vigil_sink_write_seconds_total {:.6}",
            get(&self.sink_write_seconds_micros) as f64 / 1e6
        );
        gauge(
            out,
            "vigil_sink_up",
            "gauge",
            "1 when the store accepts writes.",
            get(&self.sink_healthy),
        );
        gauge(
            out,
            "vigil_wal_unreadable_record",
            "gauge",
            "1 while the store's writer is stopped at a WAL record it cannot read \
             (`vigil wal inspect`).",
            u64::from(self.unreadable_record.lock().is_some()),
        );
    }
}

fn counter_family(out: &mut String, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (value, count) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

/// One unlabelled sample with its HELP and TYPE lines.
pub fn gauge(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}
