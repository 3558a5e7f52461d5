//! The ClickHouse sink: each merged batch becomes one RowBinary `INSERT` per table, the three
//! sent concurrently (so at most three requests per collector are in flight), each bounded by
//! the configured timeout. `Ok` means ClickHouse answered 200 to all three: the rows are in its
//! parts on disk (and, on a cluster, on every shard: `insert_distributed_sync`). Only then does
//! the batcher advance the WAL checkpoint.
//!
//! After a failure the batcher writes the same batch again. Rows the failed attempt did store
//! are stored twice; every read keeps one version per key, and `ReplacingMergeTree` folds the
//! copies on its next merge.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use clickhouse::{Client, RowWrite};
use vigil_schemas::{
    IngestBatch,
    clickhouse::{
        ClickHouseConfig, is_transient,
        rows::{RunInsert, ScoreInsert, SpanInsert},
    },
    layout::Table,
};

use super::{Sink, SinkError};

mod deletion;
mod seal;

pub use seal::{SealConfig, SealStats};

pub struct ClickHouseSink {
    client: Client,
    timeout: Duration,
    /// For deletions, which run on every node's storage tables.
    config: ClickHouseConfig,
    /// Held by a seal's copy and by deletions: a copy never brings back rows a deletion
    /// removed while it ran.
    maintenance: tokio::sync::Mutex<()>,
}

impl ClickHouseSink {
    pub fn new(config: &ClickHouseConfig) -> ClickHouseSink {
        ClickHouseSink {
            client: config.client(),
            timeout: config.timeout(),
            config: config.clone(),
            maintenance: tokio::sync::Mutex::new(()),
        }
    }

    /// Inserts `rows` into `table` as one `INSERT`; nothing to do for none.
    async fn insert<'a, T: RowWrite>(
        &self,
        table: Table,
        rows: impl ExactSizeIterator<Item = T::Value<'a>> + Send,
    ) -> Result<(), SinkError> {
        let count = rows.len();
        if count == 0 {
            return Ok(());
        }
        let send = async {
            let mut insert = self.client.insert::<T>(table.name()).await?;
            for row in rows {
                insert.write(&row).await?;
            }
            insert.end().await
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(result) => result.map_err(|e| classify(table, e)),
            Err(_) => Err(SinkError::Unavailable(format!(
                "inserting {count} rows into {table} took longer than {:?}",
                self.timeout
            ))),
        }
    }
}

#[async_trait]
impl Sink for ClickHouseSink {
    async fn write(&self, batch: Arc<IngestBatch>) -> Result<(), SinkError> {
        tokio::try_join!(
            self.insert::<RunInsert>(Table::Runs, batch.runs.iter().map(RunInsert::from)),
            self.insert::<SpanInsert>(Table::Spans, batch.spans.iter().map(SpanInsert::from)),
            self.insert::<ScoreInsert>(Table::Scores, batch.scores.iter().map(ScoreInsert::from)),
        )?;
        Ok(())
    }
}

/// Whether a failed insert may succeed later (the server is down, overloaded, a shard is
/// away) or never will (a missing table, a type mismatch: a schema that was not migrated).
fn classify(table: Table, error: clickhouse::error::Error) -> SinkError {
    let message = format!("{table}: {error}");
    if is_transient(&error) {
        SinkError::Unavailable(message)
    } else if matches!(error, clickhouse::error::Error::BadResponse(_)) {
        SinkError::Rejected(message)
    } else {
        SinkError::Internal(message)
    }
}
