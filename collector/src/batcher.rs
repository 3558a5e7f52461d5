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

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use vigil_schemas::IngestBatch;

use crate::{
    sink::Sink,
    telemetry::IngestTelemetry,
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
        loop {
            let records = match reader.read(READ_CHUNK_BYTES) {
                Ok(records) => records,
                Err(e) => {
                    tracing::error!(error = %e, "reading the wal failed");
                    tokio::time::sleep(self.config.initial_backoff).await;
                    break;
                }
            };
            for record in records {
                match decode(record.payload, record.attachment) {
                    Ok(part) => batch.extend(part),
                    Err(e) => {
                        tracing::error!(lsn = record.end_lsn, error = %e, "undecodable wal record skipped")
                    }
                }
                end_lsn = Some(record.end_lsn);
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
                    let t = &self.telemetry;
                    IngestTelemetry::add(&t.sink_rows_written, rows);
                    IngestTelemetry::add(&t.sink_batches_written, 1);
                    t.sink_write_seconds_micros
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    t.sink_healthy.store(1, Ordering::Relaxed);
                    return true;
                }
                Err(e) => {
                    self.telemetry
                        .sink_write_errors
                        .fetch_add(1, Ordering::Relaxed);
                    self.telemetry.sink_healthy.store(0, Ordering::Relaxed);
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
        None => bincode::deserialize(&payload).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::AtomicUsize;

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
        bincode::serialize(&IngestBatch {
            runs: vec![RunRow {
                trace_id: trace_id.into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap()
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
}
