//! The control state by store: on the embedded store, files in the data directory; on
//! ClickHouse, the control table every node shares (`vigil-control`), which this process reads
//! at start and polls afterwards. API keys so far.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use vigil_access::keys::KeyStore;
use vigil_control::ControlTable;

use crate::config::{Config, StoreKind};

/// How often a node asks the control table whether anything changed.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long a first start waits for ClickHouse to read the shared keys, when this node knows no
/// key of its own to go on with.
const FIRST_READ_DEADLINE: Duration = Duration::from_secs(60);

/// The key registry: `<data dir>/keys.json`, or with the ClickHouse store the shared one
/// (mirrored to that file). `node` names this process in what it writes.
pub fn open_keys(config: &Config, node: &str) -> anyhow::Result<KeyStore> {
    let file = config.data_dir.join("keys.json");
    Ok(match config.store.kind {
        StoreKind::Embedded => KeyStore::open(file)?,
        StoreKind::Clickhouse => {
            KeyStore::shared(ControlTable::new(&config.store.clickhouse, node), file)?
        }
    })
}

/// Reads the shared keys before the server takes requests (importing first the keys this node
/// kept in its data directory that are not shared yet). A node that knows keys (it read them
/// before) goes on with them when ClickHouse does not answer; one that knows none waits for it,
/// up to a minute. Whether the shared keys were read.
pub async fn read_shared_keys(keys: &KeyStore) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + FIRST_READ_DEADLINE;
    let mut delay = Duration::from_millis(100);
    loop {
        match keys.refresh().await {
            Ok(()) => break,
            Err(e) if !keys.list_known().is_empty() => {
                tracing::warn!(error = %e, "the shared keys could not be read: going on with the keys last seen");
                return Ok(false);
            }
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e).context(
                    "the API keys are shared in ClickHouse, which did not answer for a minute; \
                     a node's first start needs it",
                );
            }
            Err(e) => {
                tracing::info!(error = %e, "waiting for ClickHouse to read the shared keys");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    Ok(true)
}

/// Polls the shared keys every [`POLL_INTERVAL`].
pub fn spawn_key_refresh(
    keys: Arc<KeyStore>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            match keys.refresh().await {
                Ok(()) => {
                    if failing {
                        tracing::info!("the shared keys are read again");
                        failing = false;
                    }
                }
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "the shared keys could not be read: keeping the keys last seen");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    })
}

/// This process, as the control table records who made a change: `<host>:<HTTP port>`.
pub fn node_name(config: &Config) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "vigil".into());
    let port = config
        .server
        .http_listen
        .rsplit(':')
        .next()
        .unwrap_or_default();
    format!("{host}:{port}")
}
