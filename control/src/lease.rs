//! A lease held in ZooKeeper (or ClickHouse Keeper): of all the processes that campaign for it,
//! one holds it at a time. Vigil's alerting nodes campaign for one, so that exactly one of them
//! evaluates rules and pages on-call.
//!
//! The recipe is ZooKeeper's lock: each candidate creates an ephemeral sequential znode under
//! the lease's path and holds the lease once its znode is the lowest. The znode lives as long as
//! the candidate's session: a process that dies (or stops answering) loses it when ZooKeeper
//! expires the session, `session_timeout` later, and the next candidate takes over.
//!
//! **Fencing.** A holder that was paused (a stop signal, a long GC-like stall, a partition)
//! may not know yet that its session expired. Each holding is numbered by a **token**, the
//! creation zxid of its znode, which only grows from one holder to the next. Before an
//! irreversible act a holder calls [`Lease::confirm`], a round trip to ZooKeeper that fails
//! once its znode is gone; and it hands the token on (a webhook header, the key of the state it
//! writes), so that what it reaches can refuse a token older than one it saw.
//!
//! A holder steps down as soon as its connection to ZooKeeper is not sound (disconnected,
//! expired), without waiting to learn whether the session survived: it campaigns again with a
//! new session.

use std::{sync::Arc, time::Duration};

use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;
use zookeeper_client::{
    Acls, Client, CreateMode, LockOptions, LockPrefix, OwnedLockClient, SessionState,
};

/// The number of one holding of a lease: larger for every later holder.
pub type Token = i64;

/// Where a lease is and how long a silent holder keeps it.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// ZooKeeper's servers: `host:port[,host:port…]`, as ClickHouse's `<zookeeper>` lists them.
    pub servers: String,
    /// The lease's znode, e.g. `/vigil/<database>/alerting`; created when missing.
    pub path: String,
    /// How long ZooKeeper keeps the session of a holder it no longer hears from: the longest a
    /// dead holder keeps the lease (the server bounds it by its own `minSessionTimeout` and
    /// `maxSessionTimeout`).
    pub session_timeout: Duration,
    /// Who campaigns: written into the candidate's znode, for operators.
    pub node: String,
}

/// The current holding, kept for [`Lease::confirm`].
struct Holding {
    lock: OwnedLockClient,
    token: Token,
}

/// This process's campaign for a lease, running until its shutdown.
#[derive(Clone)]
pub struct Lease {
    token: watch::Receiver<Option<Token>>,
    holding: Arc<Mutex<Option<Holding>>>,
    settings: Arc<LeaseSettings>,
}

impl Lease {
    /// Starts campaigning (a task of its own) until `shutdown`, when a holding is given up.
    pub fn campaign(settings: LeaseSettings, shutdown: CancellationToken) -> Lease {
        let (sender, token) = watch::channel(None);
        let lease = Lease {
            token,
            holding: Arc::new(Mutex::new(None)),
            settings: Arc::new(settings),
        };
        tokio::spawn(lease.clone().run(sender, shutdown));
        lease
    }

    /// The token of the holding this process believes it has, if any.
    pub fn token(&self) -> Option<Token> {
        *self.token.borrow()
    }

    /// Whether this process still holds the lease numbered `token`, asked of ZooKeeper itself
    /// (after a `sync`, so a server that lags the leader cannot answer from the past). False
    /// when ZooKeeper does not answer within the session timeout.
    pub async fn confirm(&self, token: Token) -> bool {
        let holding = self.holding.lock().await;
        let Some(holding) = holding.as_ref().filter(|h| h.token == token) else {
            return false;
        };
        let client = holding.lock.client();
        let path = holding.lock.lock_path();
        let ask = async {
            client.sync(path).await?;
            client.check_stat(path).await
        };
        matches!(
            tokio::time::timeout(self.settings.session_timeout, ask).await,
            Ok(Ok(Some(stat))) if stat.czxid == token
        )
    }

    async fn run(self, sender: watch::Sender<Option<Token>>, shutdown: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.hold_once(&sender, &shutdown).await {
                Ok(()) => delay = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, path = %self.settings.path, "the alerting lease: campaigning again");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One session: connect, wait for the lease, hold it while the session is sound.
    async fn hold_once(
        &self,
        sender: &watch::Sender<Option<Token>>,
        shutdown: &CancellationToken,
    ) -> Result<(), zookeeper_client::Error> {
        let settings = &self.settings;
        let client = Client::connector()
            .with_session_timeout(settings.session_timeout)
            .with_connection_timeout(settings.session_timeout)
            .connect(&settings.servers)
            .await?;
        if client.session_timeout() != settings.session_timeout {
            // The server bounds it by its minSessionTimeout and maxSessionTimeout.
            tracing::warn!(
                asked_ms = settings.session_timeout.as_millis() as u64,
                granted_ms = client.session_timeout().as_millis() as u64,
                "ZooKeeper granted another session timeout: a dead holder keeps the lease that long"
            );
        }
        let mut session = client.state_watcher();
        let prefix = LockPrefix::new_curator(&settings.path, "holder-")?;
        let options = LockOptions::new(Acls::anyone_all())
            .with_ancestor_options(CreateMode::Persistent.with_acls(Acls::anyone_all()))?;
        let lock = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            lock = client.lock(prefix, settings.node.as_bytes(), options) => lock?.into_owned(),
        };
        let token = client
            .check_stat(lock.lock_path())
            .await?
            .ok_or(zookeeper_client::Error::NoNode)?
            .czxid;
        *self.holding.lock().await = Some(Holding { lock, token });
        sender.send_replace(Some(token));
        tracing::info!(token, path = %settings.path, "holding the alerting lease");
        let lost = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break None,
                state = session.changed() => if state != SessionState::SyncConnected {
                    break Some(state);
                },
            }
        };
        sender.send_replace(None);
        // Dropping the lock deletes its znode when the session still can.
        self.holding.lock().await.take();
        match lost {
            None => {
                tracing::info!(token, "the alerting lease is given up");
                Ok(())
            }
            Some(state) => {
                tracing::warn!(token, %state, "the alerting lease is lost: the ZooKeeper session is not sound");
                Err(zookeeper_client::Error::ConnectionLoss)
            }
        }
    }
}
