//! A log every node appends to and reads in the same order: for state whose changes must not
//! race (two nodes making version 8 of one dataset at once must not both succeed), which the
//! control table alone cannot order, having no compare-and-set.
//!
//! The entries are control-table records (`Kind::LogEntry`, by `<seq, 20 digits>/<entry id>`),
//! each naming the entry before it. The log's **head** — the sequence number and id of its last
//! entry — is one znode in ZooKeeper (or ClickHouse Keeper), and an append is a compare-and-set
//! of it:
//!
//! 1. read the head (and its znode version), and the entries up to it;
//! 2. make the change against the state they give, and write it as an entry after the head;
//! 3. move the head to it, if the znode still has the version read.
//!
//! When another node appended in between, step 3 fails and nothing happened: the entry written
//! in step 2 is never reached from the head, and the change is made again against the newer
//! state. A writer paused anywhere cannot append over a later one. Readers follow the chain back
//! from the head; an entry not on it (a lost race, a writer that died before step 3) is ignored.

use std::{collections::HashMap, time::Duration};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;
use zookeeper_client::{Acls, Client, CreateMode, SessionState};

use crate::{ControlError, ControlTable, Kind};

/// Where one entry is: its place in the log and its id (among the entries written for that
/// place, the one the log kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub seq: u64,
    pub entry: String,
}

/// The head as read, with the version of its znode (the compare of the compare-and-set).
#[derive(Debug, Clone)]
pub struct Head {
    pub position: Position,
    znode_version: i32,
}

/// What an append did.
#[derive(Debug)]
pub enum Appended {
    /// The entry is the log's last, at this position.
    At(Position),
    /// Another node appended after the head read: nothing happened; read again and retry.
    Raced,
}

/// An entry as stored: the event and the entry before it.
#[derive(Serialize, Deserialize)]
struct Stored {
    previous: String,
    event: Value,
}

/// One log, seen from one node.
pub struct SharedLog {
    table: ControlTable,
    servers: String,
    /// The head's znode, e.g. `/vigil/<database>/evaluation`.
    path: String,
    session_timeout: Duration,
    client: Mutex<Option<Client>>,
}

impl SharedLog {
    /// The log whose head is the znode `path` on ZooKeeper `servers` (`host:port[,…]`), and
    /// whose entries are in `table`.
    pub fn new(
        table: ControlTable,
        servers: &str,
        path: &str,
        session_timeout: Duration,
    ) -> SharedLog {
        SharedLog {
            table,
            servers: servers.to_string(),
            path: path.to_string(),
            session_timeout,
            client: Mutex::new(None),
        }
    }

    /// The head's znode.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The log's head, as ZooKeeper has it now (an empty log's is sequence 0).
    pub async fn head(&self) -> Result<Head, ControlError> {
        let client = self.client().await?;
        let read = async {
            client.sync(&self.path).await?;
            client.get_data(&self.path).await
        };
        let (data, stat) = self.answer(read).await?;
        let text = String::from_utf8_lossy(&data);
        let (seq, entry) = text.split_once(' ').unwrap_or((&text, ""));
        let seq = seq.parse().map_err(|_| {
            ControlError::Refused(format!("{}: {text:?} is not a log head", self.path))
        })?;
        Ok(Head {
            position: Position {
                seq,
                entry: entry.to_string(),
            },
            znode_version: stat.version,
        })
    }

    /// The events after `from` up to `head`, oldest first, each with its position; `None`
    /// while some are not readable yet (a ClickHouse replica behind the one written to).
    pub async fn read(
        &self,
        from: &Position,
        head: &Position,
    ) -> Result<Option<Vec<(Position, Value)>>, ControlError> {
        if head.seq <= from.seq {
            return Ok(Some(Vec::new()));
        }
        let records = self
            .table
            .load_from(Kind::LogEntry, &format!("{:020}", from.seq + 1))
            .await?;
        let mut entries: HashMap<String, Stored> = HashMap::new();
        for record in records {
            let Some(body) = record.body else { continue };
            let stored = serde_json::from_str(&body)
                .map_err(|e| ControlError::Refused(format!("log entry {}: {e}", record.key)))?;
            entries.insert(record.key, stored);
        }
        let mut events = Vec::new();
        let mut at = head.clone();
        while at.seq > from.seq {
            let Some(stored) = entries.remove(&key(&at)) else {
                return Ok(None);
            };
            let previous = Position {
                seq: at.seq - 1,
                entry: stored.previous,
            };
            events.push((std::mem::replace(&mut at, previous), stored.event));
        }
        if at != *from {
            return Err(ControlError::Refused(format!(
                "{}: entry {} is not the one this node read there ({})",
                self.path, at.seq, from.entry
            )));
        }
        events.reverse();
        Ok(Some(events))
    }

    /// Appends `event` after `head` (read by [`Self::head`], every entry up to it applied), if
    /// it is still the head.
    pub async fn append(&self, head: &Head, event: Value) -> Result<Appended, ControlError> {
        let position = Position {
            seq: head.position.seq + 1,
            entry: format!("{:016x}", rand::rng().random::<u64>()),
        };
        let stored = Stored {
            previous: head.position.entry.clone(),
            event,
        };
        let body = serde_json::to_string(&stored)
            .map_err(|e| ControlError::Refused(format!("a log entry: {e}")))?;
        self.table
            .put(Kind::LogEntry, &key(&position), None, Some(&body))
            .await?;
        let client = self.client().await?;
        let data = format!("{} {}", position.seq, position.entry);
        match self
            .answer(client.set_data(&self.path, data.as_bytes(), Some(head.znode_version)))
            .await
        {
            Ok(_) => Ok(Appended::At(position)),
            Err(ControlError::Refused(_)) => Ok(Appended::Raced),
            // No answer: whether the head moved is learnt by reading it.
            Err(unavailable) => match self.head().await {
                Ok(now) if now.position == position => Ok(Appended::At(position)),
                Ok(now) if now.znode_version == head.znode_version => Err(unavailable),
                Ok(_) => Ok(Appended::Raced),
                Err(_) => Err(ControlError::Unknown(format!(
                    "ZooKeeper did not say whether log entry {} was appended ({})",
                    position.seq, self.path
                ))),
            },
        }
    }

    /// A client with a sound session: the one kept, or a new one (the head's znode created
    /// when missing).
    async fn client(&self) -> Result<Client, ControlError> {
        let mut kept = self.client.lock().await;
        if let Some(client) = kept.as_ref()
            && client.state() == SessionState::SyncConnected
        {
            return Ok(client.clone());
        }
        *kept = None;
        let connect = Client::connector()
            .with_session_timeout(self.session_timeout)
            .with_connection_timeout(self.session_timeout)
            .connect(&self.servers);
        let client = self.answer(connect).await?;
        let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
        if let Some((parent, _)) = self.path.rsplit_once('/')
            && !parent.is_empty()
        {
            self.answer(client.mkdir(parent, &options)).await?;
        }
        match self
            .answer(client.create(&self.path, b"0 ", &options))
            .await
        {
            Ok(_) | Err(ControlError::Refused(_)) => {}
            Err(unavailable) => return Err(unavailable),
        }
        *kept = Some(client.clone());
        Ok(client)
    }

    /// ZooKeeper's answer within the session timeout: refused when it said no (a version that
    /// moved, a znode that exists), unavailable when it did not answer.
    async fn answer<T>(
        &self,
        ask: impl Future<Output = Result<T, zookeeper_client::Error>>,
    ) -> Result<T, ControlError> {
        use zookeeper_client::Error as Zk;
        match tokio::time::timeout(self.session_timeout, ask).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e @ (Zk::BadVersion | Zk::NodeExists))) => Err(ControlError::Refused(format!(
                "ZooKeeper, {}: {e}",
                self.path
            ))),
            Ok(Err(e)) => {
                self.client.try_lock().map(|mut kept| kept.take()).ok();
                Err(ControlError::Unavailable(format!(
                    "ZooKeeper, {}: {e}",
                    self.path
                )))
            }
            Err(_) => Err(ControlError::Unavailable(format!(
                "ZooKeeper did not answer within {:?} ({})",
                self.session_timeout, self.path
            ))),
        }
    }
}

/// The record key of the entry at `position`.
fn key(position: &Position) -> String {
    format!("{:020}/{}", position.seq, position.entry)
}
