//! Sinks: the write side of the stores. The batcher hands a sink large merged batches read from
//! the WAL and advances the WAL checkpoint only after [`Sink::write`] returned `Ok`.
//!
//! The contract every sink keeps:
//! * `Ok` means every row of the batch is durable in the store (for the embedded store: the
//!   files and their directory entries are fsync'd).
//! * An error means nothing is known: some rows may be stored, others not. The caller writes the
//!   whole batch again; storing a row twice is harmless, because rows are keyed and every read
//!   keeps the newest version of a key.

use std::{path::PathBuf, sync::Arc, time::Duration};

use async_trait::async_trait;
use datafusion::{arrow::error::ArrowError, parquet::errors::ParquetError};
use tokio::{task::JoinHandle, time::MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use vigil_schemas::{IngestBatch, layout::Table};

pub mod clickhouse;
pub mod deletion;
pub mod embedded;

pub use clickhouse::{ClickHouseSink, SealConfig, SealStats};
pub use deletion::{Cutoffs, DELETION_ORDER, DeletedRows, Deleter, Doomed};
pub use embedded::{CompactionConfig, CompactionStats, EmbeddedSink, EmbeddedSinkConfig};

/// Runs `pass` every `interval` (at least 10 ms), the first time one interval after the start,
/// until `shutdown`: a sink's background work (compaction, sealing). A pass that overruns delays
/// the next one rather than bunching them.
pub(crate) fn spawn_every<F, Fut>(
    interval: Duration,
    shutdown: CancellationToken,
    mut pass: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let interval = interval.max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            pass().await;
        }
    })
}

/// Where acknowledged data goes.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Stores every row of `batch`, durably, before returning `Ok`.
    /// The batch is shared so that a retry after an error costs no copy.
    async fn write(&self, batch: Arc<IngestBatch>) -> Result<(), SinkError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A file-system operation failed (disk full, permissions, a vanished directory).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing or reading a Parquet file failed.
    #[error("parquet file {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    /// Rows could not be turned into a record batch: a bug or a schema mismatch, not transient.
    #[error("{table} rows do not fit the table schema: {source}")]
    Encode {
        table: Table,
        #[source]
        source: ArrowError,
    },
    /// A stored file or record is not what this version of Vigil writes.
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// A remote store cannot be reached or is overloaded.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A remote store refused the data itself; sending it again will not help.
    #[error("the store rejected the batch: {0}")]
    Rejected(String),
    /// The sink's own machinery failed (a worker task panicked or was cancelled).
    #[error("internal sink error: {0}")]
    Internal(String),
}

impl SinkError {
    /// Whether writing the same batch again may succeed (the batcher retries either way, with
    /// back-off; this decides how loudly to complain and what health to report).
    pub fn is_retryable(&self) -> bool {
        match self {
            SinkError::Io { .. } | SinkError::Parquet { .. } | SinkError::Unavailable(_) => true,
            SinkError::Encode { .. }
            | SinkError::Corrupt { .. }
            | SinkError::Rejected(_)
            | SinkError::Internal(_) => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SinkError {
        let path = path.into();
        move |source| SinkError::Io { path, source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>) -> impl Fn(String) -> SinkError {
        let path = path.into();
        move |message| SinkError::Corrupt {
            path: path.clone(),
            message,
        }
    }

    pub(crate) fn parquet(path: impl Into<PathBuf>) -> impl FnOnce(ParquetError) -> SinkError {
        let path = path.into();
        move |source| SinkError::Parquet { path, source }
    }
}
