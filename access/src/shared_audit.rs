//! The audit log across nodes (the ClickHouse store). Every node keeps its own hash chain in its
//! data directory, as on one node ([`crate::audit`]), and ships each entry, as it reads it from
//! its log, to the control table every node shares (`Kind::AuditEntry`, by `<chain>/<seq>`), about
//! once a second and from where the table's copy ends. A chain is named once per data directory
//! (`<data dir>/audit/chain`: the node's name and a random suffix), so a node whose name changes
//! keeps its chain, and two data directories never share one.
//!
//! What this gives:
//!
//! - **No entry lost with a node.** An entry is durable in its node's log when the audited
//!   action is acknowledged, and in ClickHouse about a second later; the entries of a node that
//!   will not come back are shipped by `vigil wal drain` on its data directory.
//! - **Every chain checked together.** [`verify_all`] checks each chain in the table as
//!   `vigil audit verify` checks a log, and [`compare`] finds where a node's own log no longer
//!   matches what it shipped: a log rewritten after the fact, even with every hash recomputed,
//!   differs from the copy other machines hold.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use parking_lot::Mutex;
use vigil_control::{ControlError, ControlTable, Kind};

use crate::{
    audit::{AuditEntry, AuditError, AuditLog, TamperKind, Tampering, check_chain},
    files::write_private_file,
};

/// The chain's name, in the audit directory.
pub const CHAIN_FILE: &str = "chain";
/// Entries shipped in one insert at most.
const SHIP_BATCH: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum SharedAuditError {
    #[error(transparent)]
    Log(#[from] AuditError),
    #[error(transparent)]
    Shared(#[from] ControlError),
    #[error("the shared audit entry {key} is unreadable: {message}")]
    Unreadable { key: String, message: String },
}

/// A node's audit log, shipped to the control table.
pub struct SharedAudit {
    log: Arc<AuditLog>,
    table: ControlTable,
    chain: String,
    /// The last seq the table has, once read.
    shipped: Mutex<Option<u64>>,
}

impl SharedAudit {
    /// `log`'s chain (named `<node>-<random>` the first time), shipped to `table`.
    pub fn open(
        log: Arc<AuditLog>,
        table: ControlTable,
        node: &str,
    ) -> Result<SharedAudit, AuditError> {
        let chain = chain_name(log.dir(), node)?;
        Ok(SharedAudit {
            log,
            table,
            chain,
            shipped: Mutex::new(None),
        })
    }

    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Every chain in the table, and this node's log (its entries `local`, in order) against
    /// the copy it shipped.
    pub async fn verify(&self, local: &[AuditEntry]) -> Result<Verified, SharedAuditError> {
        verify_all(&self.table, Some(&self.chain), local).await
    }

    /// Ships the entries the table does not have yet; how many.
    pub async fn ship(&self) -> Result<u64, SharedAuditError> {
        let known = *self.shipped.lock();
        let mut shipped = match known {
            Some(seq) => seq,
            None => shipped_entries(&self.table, &self.chain)
                .await?
                .last()
                .map_or(0, |e| e.seq),
        };
        let mut count = 0;
        loop {
            let entries = self.log.read(None, None, Some(shipped), SHIP_BATCH)?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                break;
            };
            let records: Vec<(String, String)> = entries
                .iter()
                .map(|e| {
                    let body = serde_json::to_string(e).expect("an entry serializes");
                    (entry_key(&self.chain, e.seq), body)
                })
                .collect();
            self.table.put_new(Kind::AuditEntry, &records).await?;
            count += records.len() as u64;
            shipped = last;
            *self.shipped.lock() = Some(shipped);
        }
        *self.shipped.lock() = Some(shipped);
        Ok(count)
    }
}

/// What a check of every shipped chain found.
#[derive(Debug, Clone)]
pub struct Verified {
    pub chains: Vec<ChainReport>,
    /// This node's chain, when it has one.
    pub own: Option<OwnChain>,
}

impl Verified {
    pub fn is_valid(&self) -> bool {
        self.chains.iter().all(|c| c.tampering.is_none())
            && self.own.as_ref().is_none_or(|o| o.differs.is_none())
    }
}

/// A node's own log against the copy it shipped.
#[derive(Debug, Clone)]
pub struct OwnChain {
    pub chain: String,
    /// Entries in the table, and in the node's log.
    pub shipped: u64,
    pub local: u64,
    /// Where the log no longer matches the copy; `None` when it holds every shipped entry as
    /// shipped.
    pub differs: Option<Tampering>,
}

/// Every chain in the table (read once), each checked from its first entry, and `own` (a
/// node's chain, whose log holds `local`) against its copy.
pub async fn verify_all(
    table: &ControlTable,
    own: Option<&str>,
    local: &[AuditEntry],
) -> Result<Verified, SharedAuditError> {
    let chains = chains_with_prefix(table, "").await?;
    let own = own.map(|chain| {
        let shipped = chains.get(chain).map_or(&[][..], Vec::as_slice);
        OwnChain {
            chain: chain.to_string(),
            shipped: shipped.len() as u64,
            local: local.len() as u64,
            differs: compare(local, shipped),
        }
    });
    let chains = chains
        .into_iter()
        .map(|(chain, entries)| {
            let last = entries.last();
            ChainReport {
                tampering: check_chain(&entries),
                entries: entries.len() as u64,
                last_seq: last.map_or(0, |e| e.seq),
                last_hash: last.map_or_else(String::new, |e| e.hash.clone()),
                chain,
            }
        })
        .collect();
    Ok(Verified { chains, own })
}

/// One chain as the table holds it, checked.
#[derive(Debug, Clone)]
pub struct ChainReport {
    pub chain: String,
    pub entries: u64,
    pub last_seq: u64,
    pub last_hash: String,
    pub tampering: Option<Tampering>,
}

/// The shipped copy of one chain, in order.
pub async fn shipped_entries(
    table: &ControlTable,
    chain: &str,
) -> Result<Vec<AuditEntry>, SharedAuditError> {
    let mut chains = chains_with_prefix(table, &format!("{chain}/")).await?;
    Ok(chains.remove(chain).unwrap_or_default())
}

/// The shipped entries whose key starts with `prefix`, by chain, each chain in seq order.
async fn chains_with_prefix(
    table: &ControlTable,
    prefix: &str,
) -> Result<BTreeMap<String, Vec<AuditEntry>>, SharedAuditError> {
    let mut chains: BTreeMap<String, Vec<AuditEntry>> = BTreeMap::new();
    for record in table.load_prefix(Kind::AuditEntry, prefix).await? {
        let (chain, entry) = parse(&record.key, record.body.as_deref())?;
        chains.entry(chain).or_default().push(entry);
    }
    for entries in chains.values_mut() {
        entries.sort_by_key(|e| e.seq);
    }
    Ok(chains)
}

/// Where a node's own log (`local`, in order) no longer matches the copy it shipped: the first
/// entry that differs or that the log lost. `None` when every shipped entry is in the log as
/// shipped (the log may have more, not shipped yet).
pub fn compare(local: &[AuditEntry], shipped: &[AuditEntry]) -> Option<Tampering> {
    for (i, copy) in shipped.iter().enumerate() {
        let detail = match local.get(i) {
            Some(entry) if entry == copy => continue,
            Some(_) => {
                "the entry differs from the copy shipped to ClickHouse: the log was changed after it was written"
            }
            None => {
                "the log no longer has this entry, which was shipped to ClickHouse: its end was removed"
            }
        };
        return Some(Tampering {
            line: i as u64 + 1,
            seq: copy.seq,
            kind: TamperKind::Shipped,
            detail: detail.into(),
        });
    }
    None
}

/// The chain named in the audit directory `dir`, if it was named.
pub fn chain_of(dir: &Path) -> Result<Option<String>, AuditError> {
    let path = dir.join(CHAIN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(name) if !name.trim().is_empty() => Ok(Some(name.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::Io { path, source }),
    }
}

/// The chain named in `dir`, named now when it has none.
fn chain_name(dir: &Path, node: &str) -> Result<String, AuditError> {
    if let Some(name) = chain_of(dir)? {
        return Ok(name);
    }
    let path = dir.join(CHAIN_FILE);
    let name = format!("{node}-{}", hex::encode(rand::random::<[u8; 4]>()));
    write_private_file(&path, name.as_bytes()).map_err(|source| AuditError::Io { path, source })?;
    Ok(name)
}

fn entry_key(chain: &str, seq: u64) -> String {
    format!("{chain}/{seq:020}")
}

fn parse(key: &str, body: Option<&str>) -> Result<(String, AuditEntry), SharedAuditError> {
    let unreadable = |message: String| SharedAuditError::Unreadable {
        key: key.to_string(),
        message,
    };
    let (chain, _) = key
        .rsplit_once('/')
        .ok_or_else(|| unreadable("no chain in the key".into()))?;
    let entry: AuditEntry =
        serde_json::from_str(body.unwrap_or_default()).map_err(|e| unreadable(e.to_string()))?;
    Ok((chain.to_string(), entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditRecord;

    fn entries(n: u64) -> Vec<AuditEntry> {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path().join("audit")).unwrap();
        for i in 0..n {
            log.append(AuditRecord {
                project_id: "p".into(),
                key_id: "k".into(),
                action: crate::audit::KEY_CREATE.into(),
                parameters: serde_json::json!({"i": i}),
                result_count: 1,
            })
            .unwrap();
        }
        log.read(None, None, None, 1_000).unwrap()
    }

    #[test]
    fn a_log_that_differs_from_its_shipped_copy_is_found() {
        let shipped = entries(4);
        // Not all shipped yet: fine.
        assert_eq!(compare(&shipped, &shipped[..2]), None);
        assert_eq!(compare(&shipped, &shipped), None);
        // The local log lost its end.
        let found = compare(&shipped[..3], &shipped).unwrap();
        assert_eq!((found.seq, found.kind), (4, TamperKind::Shipped));
        // The local log rewritten from entry 2 on, every hash recomputed: a valid chain that
        // is not the one shipped.
        let mut rewritten = shipped.clone();
        rewritten[1].parameters = serde_json::json!({"i": 99});
        let found = compare(&rewritten, &shipped).unwrap();
        assert_eq!(found.seq, 2);
    }

    #[test]
    fn a_chain_kept_elsewhere_is_checked_like_a_log() {
        let mut chain = entries(3);
        assert_eq!(check_chain(&chain), None);
        chain[2].result_count = 7;
        assert_eq!(check_chain(&chain).unwrap().kind, TamperKind::Hash);
        chain.remove(1);
        assert_eq!(check_chain(&chain).unwrap().kind, TamperKind::Sequence);
    }

    #[test]
    fn a_chain_is_named_once_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = chain_name(dir.path(), "host:4318").unwrap();
        assert!(first.starts_with("host:4318-"), "{first}");
        assert_eq!(chain_name(dir.path(), "other:1").unwrap(), first);
        let (chain, _) = parse(
            &entry_key(&first, 7),
            Some(&serde_json::to_string(&entries(1)[0]).unwrap()),
        )
        .unwrap();
        assert_eq!(chain, first);
    }
}
