//! `vigil wal drain`: writes what another node acknowledged but did not store to the store, from
//! that node's data directory, when the node will not come back (its machine is gone, its disk
//! moved to another). The same batcher as `vigil serve` reads the WAL from its checkpoint and
//! writes each batch to ClickHouse; the drain ends when the checkpoint reaches the end of the
//! log. A key written twice (the node stored part of a batch before it died) is read once, as
//! after any replay.
//!
//! The audit entries the node had not shipped to ClickHouse yet are shipped too, so that its
//! chain is whole in the store.
//!
//! The data directory is locked while a server runs on it (`<data dir>/serve.lock`), so a drain
//! never races a living node.

use std::{fs::File, path::Path, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use vigil_access::audit::AuditLog;
use vigil_collector::{
    batcher::{Batcher, BatcherConfig},
    sink::{ClickHouseSink, Sink},
    telemetry::IngestTelemetry,
    wal::{Wal, WalConfig},
};

use crate::{
    config::{Config, StoreKind},
    experiment_links::LinkingSink,
};

/// The lock a running server holds on its data directory.
pub const SERVE_LOCK: &str = "serve.lock";

/// What a drain wrote.
#[derive(Debug, Serialize)]
pub struct Drained {
    /// The log's checkpoint before and after, and its end.
    pub from_lsn: u64,
    pub to_lsn: u64,
    pub bytes: u64,
    /// The node's audit chain, and the entries of it shipped now.
    pub audit_chain: Option<String>,
    pub audit_entries_shipped: u64,
}

/// Takes the data directory's lock, held by `vigil serve` for as long as it runs: `None` when
/// a process holds it.
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<Option<File>> {
    let path = data_dir.join(SERVE_LOCK);
    let file = File::create(&path).with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Drains `config.data_dir`'s WAL into the configured ClickHouse store.
pub async fn drain(config: &Config) -> anyhow::Result<Drained> {
    if config.store.kind != StoreKind::Clickhouse {
        bail!(
            "the embedded store lives in its data directory: start `vigil serve` on it instead \
             of draining it"
        );
    }
    let data_dir = &config.data_dir;
    let wal_dir = data_dir.join("wal");
    if !wal_dir.is_dir() {
        bail!("{} holds no write-ahead log", data_dir.display());
    }
    let Some(_lock) = lock_data_dir(data_dir)? else {
        bail!(
            "a vigil serve is running on {} (it holds {SERVE_LOCK}): stop it, or let it store \
             its log itself",
            data_dir.display()
        );
    };
    let wal = Arc::new(Wal::open(WalConfig {
        segment_bytes: config.wal.segment_bytes,
        fsync: config.wal.fsync,
        ..WalConfig::new(&wal_dir)
    })?);
    let from_lsn = wal.checkpoint_lsn();
    let end_lsn = wal.durable_lsn();
    let telemetry = Arc::new(IngestTelemetry::new());
    let node = crate::control::node_name(config);
    let evaluation = Arc::new(crate::control::open_evaluation(config, &node)?);
    let sink: Arc<dyn Sink> = Arc::new(LinkingSink::new(
        Arc::new(ClickHouseSink::new(&config.store.clickhouse)),
        evaluation,
    ));
    let stop = CancellationToken::new();
    let batcher = Batcher::new(
        wal.clone(),
        sink,
        BatcherConfig {
            max_rows: config.batcher.max_rows,
            max_delay: Duration::from_millis(50),
            max_in_flight: config.batcher.max_in_flight(StoreKind::Clickhouse),
            ..Default::default()
        },
        telemetry.clone(),
    );
    let writer = tokio::spawn(batcher.run(stop.clone()));
    // The batcher logs each failed write and retries it until the store takes it.
    while wal.checkpoint_lsn() < end_lsn {
        if let Some(record) = telemetry.unreadable_record() {
            stop.cancel();
            let _ = writer.await;
            wal.close();
            bail!(
                "the record at LSN {} cannot be read ({}): see `vigil wal inspect`, then \
                 `vigil wal quarantine --lsn {}` or a binary that reads it",
                record.lsn,
                record.error,
                record.lsn
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let _ = writer.await;
    wal.close();
    let (audit_chain, audit_entries_shipped) = ship_audit(config).await?;
    Ok(Drained {
        from_lsn,
        to_lsn: end_lsn,
        bytes: end_lsn - from_lsn,
        audit_chain,
        audit_entries_shipped,
    })
}

/// Ships what the node's audit log holds beyond the table's copy of its chain.
async fn ship_audit(config: &Config) -> anyhow::Result<(Option<String>, u64)> {
    let dir = config.data_dir.join("audit");
    if !dir.is_dir() {
        return Ok((None, 0));
    }
    let log = Arc::new(AuditLog::open(&dir)?);
    let Some(shared) =
        crate::control::share_audit(config, &crate::control::node_name(config), &log)?
    else {
        return Ok((None, 0));
    };
    let shipped = shared
        .ship()
        .await
        .context("shipping the node's audit entries to ClickHouse")?;
    Ok((Some(shared.chain().to_string()), shipped))
}
