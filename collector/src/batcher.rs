//! Moves acknowledged data from the WAL to the store in large batches.
//!
//! It reads the log from the checkpoint, merges records until `max_rows` rows or `max_delay`
//! since the first one, and writes the merged batch to the sink. Up to `max_in_flight` batches
//! are written at once (while the store works on one, the next is gathered and sent); the
//! checkpoint advances past a batch only when it and every batch before it are written, so it
//! never passes a row the store has not confirmed. A failed write is retried with back-off,
//! forever: acknowledged data is never dropped; meanwhile the WAL absorbs new data until its
//! backlog limit. On shutdown it writes what it has read and stops; anything left is replayed on
//! the next start.
//!
//! A record it cannot read (see `record.rs`) is never skipped on its own: the batcher writes
//! what came before it and stops there, saying so, until the operator quarantines the record
//! (`quarantine.rs`).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use vigil_schemas::IngestBatch;

use crate::{
    quarantine::Quarantine,
    record,
    sink::Sink,
    telemetry::{IngestTelemetry, UnreadableRecord},
    wal::{Attachment, Wal, WalReader},
};

#[derive(Debug, Clone)]
pub struct BatcherConfig {
    /// Write once this many rows are gathered…
    pub max_rows: usize,
    /// …or this long after the first one arrived (bounds how stale reads can be).
    pub max_delay: Duration,
    /// Batches being written at once (at least 1).
    pub max_in_flight: usize,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        BatcherConfig {
            max_rows: 25_000,
            max_delay: Duration::from_millis(500),
            max_in_flight: 1,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

const READ_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// How often a batcher stopped at an unreadable record looks for its quarantine.
const UNREADABLE_RETRY: Duration = Duration::from_secs(1);

pub struct Batcher {
    wal: Arc<Wal>,
    sink: Arc<dyn Sink>,
    config: BatcherConfig,
    telemetry: Arc<IngestTelemetry>,
}

impl Batcher {
    pub fn new(
        wal: Arc<Wal>,
        sink: Arc<dyn Sink>,
        config: BatcherConfig,
        telemetry: Arc<IngestTelemetry>,
    ) -> Batcher {
        Batcher {
            wal,
            sink,
            config,
            telemetry,
        }
    }

    /// Runs until `shutdown`; then flushes what is durable and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut reader = self.wal.reader();
        // A permit per batch between its gathering and its retirement: at most
        // `max_in_flight` batches are being written or waiting to be retired.
        let permits = Arc::new(Semaphore::new(self.config.max_in_flight.max(1)));
        let (to_commit, in_order) = mpsc::unbounded_channel();
        let committer = tokio::spawn(commit_in_order(self.wal.clone(), in_order));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            if !shutdown.is_cancelled() {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = reader.wait_readable(Duration::from_secs(1)) => {}
                }
            }
            let Some((batch, end_lsn)) = self.gather(&mut reader, &shutdown).await else {
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            };
            let writer = Writer {
                sink: self.sink.clone(),
                config: self.config.clone(),
                telemetry: self.telemetry.clone(),
            };
            let shutdown = shutdown.clone();
            let write = InFlight {
                task: tokio::spawn(async move { writer.write_until_done(batch, &shutdown).await }),
                end_lsn,
                _permit: permit,
            };
            if to_commit.send(write).is_err() {
                break;
            }
        }
        // Everything durable is read (or the store was given up on at shutdown): let the
        // writes in flight finish and be retired.
        drop(to_commit);
        let _ = committer.await;
    }

    /// Reads until the batch is full, the delay passed, or nothing more is durable on shutdown.
    async fn gather(
        &self,
        reader: &mut WalReader,
        shutdown: &CancellationToken,
    ) -> Option<(IngestBatch, u64)> {
        let mut batch = IngestBatch::default();
        let mut end_lsn = None;
        let deadline = Instant::now() + self.config.max_delay;
        let quarantine = Quarantine::of_wal(self.wal.dir());
        loop {
            let records = match reader.read(READ_CHUNK_BYTES) {
                Ok(records) => records,
                Err(e) => {
                    tracing::error!(error = %e, "reading the wal failed");
                    tokio::time::sleep(self.config.initial_backoff).await;
                    break;
                }
            };
            let mut stopped = false;
            for record in records {
                let (start, end) = (record.start_lsn, record.end_lsn);
                match decode(record.payload, record.attachment) {
                    Ok(part) => {
                        batch.extend(part);
                        self.record_readable();
                    }
                    Err(_) if quarantine.contains(start) => {
                        tracing::warn!(lsn = start, "passing a quarantined wal record");
                        self.record_readable();
                    }
                    Err(error) => {
                        self.record_unreadable(start, error);
                        reader.rewind_to(start);
                        stopped = true;
                        break;
                    }
                }
                end_lsn = Some(end);
            }
            if stopped {
                // Write what came before it; come back to it after a pause.
                if end_lsn.is_none() {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(UNREADABLE_RETRY) => {}
                    }
                }
                break;
            }
            let now = Instant::now();
            if batch.rows() >= self.config.max_rows
                || now >= deadline
                || end_lsn.is_none() && shutdown.is_cancelled()
            {
                break;
            }
            if shutdown.is_cancelled() {
                if reader.position() >= self.wal.durable_lsn() {
                    break;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = reader.wait_readable(deadline - now) => {}
            }
        }
        end_lsn.map(|lsn| (batch, lsn))
    }

    /// Stops at the record at `lsn`: loudly, once.
    fn record_unreadable(&self, lsn: u64, error: String) {
        let record = UnreadableRecord { lsn, error };
        let before = self.telemetry.set_unreadable(Some(record.clone()));
        if before.is_none_or(|b| b.lsn != lsn) {
            tracing::error!(
                lsn,
                error = %record.error,
                "the store's writer is stopped at a wal record it cannot read; nothing after it \
                 is written until it is read by a newer binary or set aside with \
                 `vigil wal quarantine --lsn {lsn}` (see `vigil wal inspect`)"
            );
        }
    }

    fn record_readable(&self) {
        if !self.telemetry.stopped_at_unreadable() {
            return;
        }
        if let Some(past) = self.telemetry.set_unreadable(None) {
            tracing::warn!(
                lsn = past.lsn,
                "the store's writer moved past the unreadable wal record"
            );
        }
    }
}

/// A batch being written: its task (true once the store took it) and where it ends in the log.
struct InFlight {
    task: JoinHandle<bool>,
    end_lsn: u64,
    _permit: OwnedSemaphorePermit,
}

/// Retires writes in log order the moment each is done, advancing the checkpoint past it: never
/// past a batch the store has not taken, nor past an earlier one still being written. After a
/// write gave up (shutdown before the store took it) nothing more is retired; the rest is
/// replayed from the WAL on the next start.
async fn commit_in_order(wal: Arc<Wal>, mut in_order: mpsc::UnboundedReceiver<InFlight>) {
    let mut gave_up = false;
    while let Some(write) = in_order.recv().await {
        let written = write.task.await.unwrap_or(false);
        gave_up |= !written;
        if gave_up {
            continue;
        }
        if let Err(e) = wal.advance_checkpoint(write.end_lsn) {
            tracing::error!(error = %e, "could not advance the wal checkpoint");
        }
    }
}

/// One batch's write, on its own task.
struct Writer {
    sink: Arc<dyn Sink>,
    config: BatcherConfig,
    telemetry: Arc<IngestTelemetry>,
}

impl Writer {
    /// Writes with back-off until the store takes it; false when shut down before it did.
    async fn write_until_done(&self, batch: IngestBatch, shutdown: &CancellationToken) -> bool {
        if batch.is_empty() {
            return true;
        }
        let rows = batch.rows();
        let batch = Arc::new(batch);
        let mut backoff = self.config.initial_backoff;
        loop {
            let started = Instant::now();
            match self.sink.write(batch.clone()).await {
                Ok(()) => {
                    self.telemetry.sink_wrote(rows, started.elapsed());
                    return true;
                }
                Err(e) => {
                    self.telemetry.sink_failed();
                    tracing::warn!(error = %e, rows, retry_in_ms = backoff.as_millis() as u64, "store write failed; retrying");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }
}

/// A record's batch: its attachment when the pipeline left one, else its payload decoded.
fn decode(payload: Vec<u8>, attachment: Option<Attachment>) -> Result<IngestBatch, String> {
    match attachment.map(|a| a.downcast::<IngestBatch>()) {
        Some(Ok(shared)) => Ok(Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone())),
        Some(Err(_)) => Err("the attachment is not an ingest batch".into()),
        None => record::decode(&payload).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use tokio::sync::Notify;
    use vigil_schemas::RunRow;

    use super::*;
    use crate::{sink::SinkError, wal::WalConfig};

    /// Holds the write of the batch with run `slow` until released; others return at once.
    struct OutOfOrderSink {
        slow_started: AtomicUsize,
        release: Notify,
        written: AtomicUsize,
    }

    #[async_trait]
    impl Sink for OutOfOrderSink {
        async fn write(&self, batch: Arc<IngestBatch>) -> Result<(), SinkError> {
            if batch.runs.iter().any(|r| r.trace_id == "slow") {
                self.slow_started.fetch_add(1, Ordering::SeqCst);
                self.release.notified().await;
            }
            self.written.fetch_add(batch.rows(), Ordering::SeqCst);
            Ok(())
        }
    }

    fn record(trace_id: &str) -> Vec<u8> {
        record::encode(&IngestBatch {
            runs: vec![RunRow {
                trace_id: trace_id.into(),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn the_checkpoint_never_passes_an_unfinished_earlier_write() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(WalConfig::new(dir.path())).unwrap());
        let first_end = wal.append(record("slow")).await.unwrap();
        let sink = Arc::new(OutOfOrderSink {
            slow_started: AtomicUsize::new(0),
            release: Notify::new(),
            written: AtomicUsize::new(0),
        });
        let batcher = Batcher::new(
            wal.clone(),
            sink.clone(),
            BatcherConfig {
                max_rows: 1,
                max_delay: Duration::from_millis(10),
                max_in_flight: 2,
                ..Default::default()
            },
            Arc::new(IngestTelemetry::new()),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(batcher.run(shutdown.clone()));

        // The second batch is written while the first is still in flight…
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.slow_started.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the first write never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let second_end = wal.append(record("fast")).await.unwrap();
        while sink.written.load(Ordering::SeqCst) < 1 {
            assert!(Instant::now() < deadline, "the second write never happened");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // …but the checkpoint waits for the first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(wal.checkpoint_lsn(), 0);

        sink.release.notify_one();
        while wal.checkpoint_lsn() < second_end {
            assert!(Instant::now() < deadline, "the checkpoint did not move");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(first_end < second_end);
        assert_eq!(sink.written.load(Ordering::SeqCst), 2);
        shutdown.cancel();
        task.await.unwrap();
    }

    /// Keeps every batch it is given.
    #[derive(Default)]
    struct CollectingSink {
        batches: parking_lot::Mutex<Vec<IngestBatch>>,
    }

    #[async_trait]
    impl Sink for CollectingSink {
        async fn write(&self, batch: Arc<IngestBatch>) -> Result<(), SinkError> {
            self.batches.lock().push((*batch).clone());
            Ok(())
        }
    }

    impl CollectingSink {
        fn rows(&self) -> IngestBatch {
            let mut all = IngestBatch::default();
            for batch in self.batches.lock().iter() {
                all.extend(batch.clone());
            }
            all
        }
    }

    fn start(
        wal: &Arc<Wal>,
        sink: &Arc<CollectingSink>,
        telemetry: &Arc<IngestTelemetry>,
    ) -> (CancellationToken, JoinHandle<()>) {
        let batcher = Batcher::new(
            wal.clone(),
            sink.clone(),
            BatcherConfig {
                max_delay: Duration::from_millis(10),
                ..Default::default()
            },
            telemetry.clone(),
        );
        let shutdown = CancellationToken::new();
        (shutdown.clone(), tokio::spawn(batcher.run(shutdown)))
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A WAL written by the release before record formats were versioned (format 1, bincode)
    /// is replayed by this one: every field of every row, and nothing before the checkpoint.
    #[tokio::test]
    // `..Default::default()` on complete rows: the fields a later release adds.
    #[allow(clippy::needless_update)]
    async fn a_wal_left_by_the_format_1_release_is_replayed_field_by_field() {
        use vigil_schemas::{Outcome, ScoreRow, SpanKind, SpanRow, SpanStatus};

        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wal-format1");
        let dir = tempfile::tempdir().unwrap();
        for file in ["00000000000000000000.wal", "checkpoint"] {
            std::fs::copy(fixture.join(file), dir.path().join(file)).unwrap();
        }
        let wal = Arc::new(Wal::open(WalConfig::new(dir.path())).unwrap());
        let sink = Arc::new(CollectingSink::default());
        let telemetry = Arc::new(IngestTelemetry::new());
        let (shutdown, task) = start(&wal, &sink, &telemetry);
        let end = wal.durable_lsn();
        wait_for("the replay", || wal.checkpoint_lsn() == end).await;
        shutdown.cancel();
        task.await.unwrap();

        // The fixture's rows, written out by hand (fixtures/wal-format1/README.md); fields a
        // later release adds take their defaults.
        let expected = IngestBatch {
            runs: vec![
                RunRow {
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
                    input: "in \u{2713}".into(),
                    output: "out".into(),
                    tags: vec!["a".into(), "b".into()],
                    classification: vec!["pii".into()],
                    retention: "30d".into(),
                    audit_ref: "ref".into(),
                    synthesized: true,
                    ingested_at_ns: 42,
                    ..Default::default()
                },
                RunRow::default(),
            ],
            spans: vec![
                SpanRow {
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
                    ..Default::default()
                },
                SpanRow::default(),
            ],
            scores: vec![
                ScoreRow {
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
                    ..Default::default()
                },
                ScoreRow::default(),
                ScoreRow {
                    project_id: "p".into(),
                    trace_id: "t1".into(),
                    score_id: "late".into(),
                    name: "thumbs".into(),
                    value: Some(1.0),
                    bool_value: Some(true),
                    source: "user".into(),
                    time_ns: 11,
                    ingested_at_ns: 45,
                    ..Default::default()
                },
            ],
        };
        assert_eq!(sink.rows(), expected);
        assert!(telemetry.unreadable_record().is_none());
    }

    /// A record this binary cannot read stops the writer there (what came before is written),
    /// until it is quarantined; then the rest follows.
    #[tokio::test]
    async fn an_unreadable_record_stops_the_writer_until_it_is_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(WalConfig::new(dir.path())).unwrap());
        let before = wal.append(record("before")).await.unwrap();
        let unreadable_end = wal
            .append(b"VWAL\x09from the future".to_vec())
            .await
            .unwrap();
        wal.append(record("after")).await.unwrap();
        let sink = Arc::new(CollectingSink::default());
        let telemetry = Arc::new(IngestTelemetry::new());
        let (shutdown, task) = start(&wal, &sink, &telemetry);

        wait_for("the stop", || telemetry.unreadable_record().is_some()).await;
        wait_for("the checkpoint", || wal.checkpoint_lsn() == before).await;
        let stopped_at = telemetry.unreadable_record().unwrap();
        assert_eq!(stopped_at.lsn, before);
        assert!(stopped_at.error.contains("format 9"), "{stopped_at:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let trace_ids = |sink: &CollectingSink| -> Vec<String> {
            sink.rows().runs.into_iter().map(|r| r.trace_id).collect()
        };
        assert_eq!(trace_ids(&sink), ["before"]);
        assert_eq!(
            wal.checkpoint_lsn(),
            before,
            "nothing is skipped on its own"
        );

        crate::quarantine::quarantine(dir.path(), before, "test", "now".into(), |_| Ok(()))
            .unwrap();
        wait_for("the rest", || trace_ids(&sink) == ["before", "after"]).await;
        wait_for("the checkpoint", || {
            wal.checkpoint_lsn() == wal.durable_lsn()
        })
        .await;
        assert!(wal.checkpoint_lsn() > unreadable_end);
        assert!(telemetry.unreadable_record().is_none());
        shutdown.cancel();
        task.await.unwrap();
    }
}
