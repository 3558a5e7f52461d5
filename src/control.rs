//! The control state by store: on the embedded store, files in the data directory; on
//! ClickHouse, the control table every node shares (`vigil-control`), which this process reads
//! at start and polls afterwards: API keys, kill switches, alerting's rules, silences and
//! state (with the alerting lease), datasets and experiments (through the log every node
//! appends to, ordered by ZooKeeper); and the audit chain this node ships to it.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use vigil_access::{
    audit::AuditLog,
    keys::{KeyError, KeyStore},
    shared_audit::{SharedAudit, SharedAuditError},
};
use vigil_alerts::{AlertEngine, Sharing};
use vigil_control::{
    ControlError, ControlTable,
    lease::{Lease, LeaseSettings},
    shared_log::SharedLog,
};
use vigil_eval::{
    Evaluation, StoreError,
    kill_switch::KillSwitches,
    shared_switches::{SharedSwitches, SharingError},
};

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

/// How long a request to ZooKeeper for the shared evaluation log may take.
const EVALUATION_ZOOKEEPER_TIMEOUT: Duration = Duration::from_secs(10);

/// The datasets and experiments: the node's own logs in its data directory, or, with
/// `[evaluation] zookeeper` on ClickHouse, the log every node shares (empty until its first
/// refresh).
pub fn open_evaluation(config: &Config, node: &str) -> anyhow::Result<Evaluation> {
    let ch = &config.store.clickhouse;
    match (&config.store.kind, &config.evaluation.zookeeper) {
        (StoreKind::Clickhouse, Some(zookeeper)) => {
            let path = config
                .evaluation
                .path
                .clone()
                .unwrap_or_else(|| format!("/vigil/{}/evaluation", ch.database));
            let table = ControlTable::new(ch, node);
            let log = SharedLog::new(table, zookeeper, &path, EVALUATION_ZOOKEEPER_TIMEOUT);
            Ok(Evaluation::shared(log, &config.data_dir))
        }
        _ => Evaluation::open(&config.data_dir).context("opening the datasets and experiments"),
    }
}

/// A piece of the shared control state this node keeps in memory and reads again when it
/// changed.
pub trait Polled: Send + Sync + 'static {
    /// What it is, for the log.
    const WHAT: &'static str;
    type Error: std::fmt::Display;
    fn refresh(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl Polled for KeyStore {
    const WHAT: &'static str = "API keys";
    type Error = KeyError;
    fn refresh(&self) -> impl Future<Output = Result<(), KeyError>> + Send {
        KeyStore::refresh(self)
    }
}

impl Polled for SharedAudit {
    const WHAT: &'static str = "the audit log";
    type Error = SharedAuditError;
    async fn refresh(&self) -> Result<(), SharedAuditError> {
        self.ship().await.map(|_| ())
    }
}

impl Polled for SharedSwitches {
    const WHAT: &'static str = "kill switches";
    type Error = SharingError;
    fn refresh(&self) -> impl Future<Output = Result<(), SharingError>> + Send {
        SharedSwitches::refresh(self)
    }
}

impl Polled for Evaluation {
    const WHAT: &'static str = "datasets and experiments";
    type Error = StoreError;
    fn refresh(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        Evaluation::refresh(self)
    }
}

impl Polled for AlertEngine {
    const WHAT: &'static str = "alerting";
    type Error = ControlError;
    fn refresh(&self) -> impl Future<Output = Result<(), ControlError>> + Send {
        AlertEngine::refresh(self)
    }
}

/// Reads `state` again every [`POLL_INTERVAL`], keeping what was last read while that fails.
pub fn spawn_refresh<P: Polled>(
    state: Arc<P>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let what = P::WHAT;
        let mut failing = false;
        loop {
            match state.refresh().await {
                Ok(()) => {
                    if failing {
                        tracing::info!(what, "the shared state is read again");
                        failing = false;
                    }
                }
                Err(e) if !failing => {
                    tracing::warn!(what, error = %e, "the shared state could not be read: keeping what was last seen");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    })
}

/// This node's audit chain, shipped to ClickHouse (`None` on the embedded store).
pub fn share_audit(
    config: &Config,
    node: &str,
    log: &Arc<AuditLog>,
) -> anyhow::Result<Option<Arc<SharedAudit>>> {
    if config.store.kind != StoreKind::Clickhouse {
        return Ok(None);
    }
    let table = ControlTable::new(&config.store.clickhouse, node);
    Ok(Some(Arc::new(SharedAudit::open(log.clone(), table, node)?)))
}

/// The kill switches shared with the other nodes, on ClickHouse.
pub fn share_kill_switches(
    config: &Config,
    node: &str,
    switches: &Arc<KillSwitches>,
) -> Option<Arc<SharedSwitches>> {
    (config.store.kind == StoreKind::Clickhouse).then(|| {
        let table = ControlTable::new(&config.store.clickhouse, node);
        Arc::new(SharedSwitches::new(switches.clone(), table))
    })
}

/// The control state this node shares with the others, for alerting: on ClickHouse, the table,
/// and the alerting lease when this node runs alerting and one is configured (campaigning
/// until `shutdown`).
pub fn alert_sharing(
    config: &Config,
    node: &str,
    runs_alerting: bool,
    shutdown: &CancellationToken,
) -> Option<Sharing> {
    let ch = &config.store.clickhouse;
    match config.store.kind {
        StoreKind::Embedded => None,
        StoreKind::Clickhouse => Some(Sharing {
            table: ControlTable::new(ch, node),
            lease: config
                .alerting
                .lease
                .as_ref()
                .filter(|_| runs_alerting && config.alerting.enabled)
                .map(|lease| {
                    let interval = config.alerting.evaluation_interval.get();
                    if lease.session_timeout.get() > interval {
                        tracing::warn!(
                            session_timeout = %lease.session_timeout,
                            evaluation_interval = %config.alerting.evaluation_interval,
                            "alerting.lease.session_timeout is longer than the evaluation interval: a standby takes over more than two intervals after the holder dies"
                        );
                    }
                    let settings = LeaseSettings {
                        servers: lease.zookeeper.clone(),
                        path: lease
                            .path
                            .clone()
                            .unwrap_or_else(|| format!("/vigil/{}/alerting", ch.database)),
                        session_timeout: lease.session_timeout.get(),
                        node: node.to_string(),
                    };
                    Lease::campaign(settings, shutdown.clone())
                }),
        }),
    }
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
