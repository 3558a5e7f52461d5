//! The kill switches every node shares when the store is ClickHouse: agents poll whichever node
//! the load balancer picks, and each must answer the same.
//!
//! Each node keeps its switches as on one node (memory, and its own log, so that it answers from
//! what it last saw while ClickHouse is away), and a switch is also a record of the control
//! table (`Kind::KillSwitch`, by project and scope). About once a second each node compares: a
//! switch set later on another node is taken here ([`KillSwitches::adopt`]), one set later here
//! is written to the table. A change is acknowledged once it is in the node's log and reaches
//! the other nodes at the next comparison after ClickHouse has it: within about a second, or
//! once ClickHouse is back. Two nodes that set the same switch keep the one set last.

use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use vigil_control::{ControlError, ControlTable, Fingerprint, Kind};

use crate::{
    kill_switch::{KillSwitch, KillSwitches, later},
    log::StoreError,
};

/// A switch as the control table keeps it.
#[derive(Serialize, Deserialize)]
struct Shared {
    project: String,
    switch: KillSwitch,
}

/// What was compared last.
#[derive(Default)]
struct Compared {
    fingerprint: Option<Fingerprint>,
    local_changes: u64,
}

/// A node's switches, compared with the shared ones.
pub struct SharedSwitches {
    switches: Arc<KillSwitches>,
    table: ControlTable,
    compared: Mutex<Compared>,
}

#[derive(Debug, thiserror::Error)]
pub enum SharingError {
    #[error(transparent)]
    Shared(#[from] ControlError),
    #[error("keeping a shared kill switch: {0}")]
    Store(#[from] StoreError),
}

impl SharedSwitches {
    pub fn new(switches: Arc<KillSwitches>, table: ControlTable) -> SharedSwitches {
        SharedSwitches {
            switches,
            table,
            compared: Mutex::new(Compared::default()),
        }
    }

    /// Compares this node's switches with the shared ones when either changed: takes what was
    /// set later elsewhere, writes what was set later here.
    pub async fn refresh(&self) -> Result<(), SharingError> {
        let local_changes = self.switches.local_changes();
        let fingerprint = self.table.fingerprint(Kind::KillSwitch).await?;
        {
            let compared = self.compared.lock();
            if compared.fingerprint == Some(fingerprint) && compared.local_changes == local_changes
            {
                return Ok(());
            }
        }
        let mut theirs: std::collections::HashMap<String, (i64, Shared)> = self
            .table
            .load(Kind::KillSwitch)
            .await?
            .into_iter()
            .filter_map(|r| {
                let shared: Shared = serde_json::from_str(r.body.as_deref()?).ok()?;
                Some((r.key, (r.version, shared)))
            })
            .collect();
        let mut wrote = false;
        for (project, ours) in self.switches.all() {
            let key = key(&project, &ours);
            match theirs.remove(&key) {
                Some((_, shared)) if later(&shared.switch, &ours) => {
                    self.switches.adopt(&project, shared.switch)?;
                }
                Some((_, shared)) if shared.switch == ours => {}
                found => {
                    let body = serde_json::to_string(&Shared {
                        project,
                        switch: ours,
                    })
                    .expect("a switch serializes");
                    let read = found.map(|(version, _)| version);
                    self.table
                        .put(Kind::KillSwitch, &key, read, Some(&body))
                        .await?;
                    wrote = true;
                }
            }
        }
        for (_, (_, shared)) in theirs {
            self.switches.adopt(&shared.project, shared.switch)?;
        }
        let fingerprint = if wrote {
            self.table.fingerprint(Kind::KillSwitch).await?
        } else {
            fingerprint
        };
        *self.compared.lock() = Compared {
            fingerprint: Some(fingerprint),
            local_changes,
        };
        Ok(())
    }
}

/// A switch's record key: its project and scope.
fn key(project: &str, switch: &KillSwitch) -> String {
    serde_json::to_string(&(project, &switch.scope)).expect("a scope serializes")
}
