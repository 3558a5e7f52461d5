//! A person's erasure: every run, span and score of their traces leaves the store, and no
//! write-ahead log segment that held them stays on disk.
//!
//! 1. The WAL's current segment is sealed: everything acknowledged before the erasure lies in
//!    segments wholly before the seal.
//! 2. Once the batcher has written all of it to the store (the checkpoint passes the seal),
//!    those segments are deleted.
//! 3. The store deletes the traces ([`Deleter`]: Parquet files rewritten atomically, or
//!    ClickHouse mutations waited on and verified).
//!
//! A failure at any step leaves the erasure incomplete and reports it; running it again is safe.

use std::time::Duration;

use serde::Serialize;

use crate::{
    sink::{DeletedRows, Deleter, Doomed, SinkError},
    wal::{Wal, WalError},
};

/// What an erasure removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// Stored rows deleted (every version counts).
    pub deleted: DeletedRows,
    /// WAL segments deleted once the store held their records.
    pub wal_segments_deleted: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Store(#[from] SinkError),
}

impl ErasureError {
    /// Whether running the erasure again later may succeed (the store is down or behind).
    pub fn is_retryable(&self) -> bool {
        match self {
            ErasureError::Wal(WalError::CheckpointTimeout { .. }) => true,
            ErasureError::Wal(_) => false,
            ErasureError::Store(e) => e.is_retryable(),
        }
    }
}

/// Erases one user of one project; waits at most `drain_timeout` for the store to catch up
/// with the WAL.
pub async fn erase_user(
    wal: &Wal,
    deleter: &dyn Deleter,
    project_id: &str,
    user_hash: &str,
    drain_timeout: Duration,
) -> Result<Erased, ErasureError> {
    let sealed = wal.seal().await?;
    let wal_segments_deleted = wal.purge_through(sealed, drain_timeout).await?;
    let doomed = Doomed::User {
        project_id: project_id.to_string(),
        user_hash: user_hash.to_string(),
    };
    let deleted = deleter.delete(&doomed, false).await?;
    Ok(Erased {
        deleted,
        wal_segments_deleted,
    })
}
