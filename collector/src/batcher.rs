//! Moves acknowledged data from the WAL to the store in large batches.
//!
//! It reads the log from the checkpoint, merges records until `max_rows` rows or `max_delay`
//! since the first one, writes the merged batch to the sink, and only then advances the
//! checkpoint. A failed write is retried with back-off, forever: acknowledged data is never
//! dropped; meanwhile the WAL absorbs new data until its backlog limit. On shutdown it writes what
//! it has read and stops; anything left is replayed on the next start.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
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
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        BatcherConfig {
            max_rows: 25_000,
            max_delay: Duration::from_millis(500),
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
        loop {
            let stopping = shutdown.is_cancelled();
            if !stopping {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = reader.wait_readable(Duration::from_secs(1)) => {}
                }
            }
            let Some((batch, end_lsn)) = self.gather(&mut reader, &shutdown).await else {
                if shutdown.is_cancelled() {
                    return;
                }
                continue;
            };
            if !self.write_until_done(batch, &shutdown).await {
                return;
            }
            if let Err(e) = self.wal.advance_checkpoint(end_lsn) {
                tracing::error!(error = %e, "could not advance the wal checkpoint");
            }
        }
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
