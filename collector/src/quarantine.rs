//! WAL records the batcher cannot read: finding them, and setting them aside deliberately.
//!
//! The batcher never skips a record on its own. When one cannot be decoded (a format newer than
//! the binary, a damaged payload whose checksum still matched), it writes everything before the
//! record, then stops there and says so: an error in the log, `/readyz` unready, and
//! `vigil_wal_unreadable_record_lsn` in `/metrics`. The WAL keeps accepting until its backlog is
//! full; nothing acknowledged is lost.
//!
//! The operator looks with `vigil wal inspect` and either runs a binary that reads the record,
//! or sets it aside with `vigil wal quarantine --lsn N --reason …`: the record's bytes are
//! copied to `<wal dir>/quarantine/<lsn>.record` (mode 0600, kept, never deleted by Vigil), the action is
//! written to the audit log, and only then `<lsn>.json` is written, which is what the batcher
//! looks for before it moves past a record it cannot read. A running server notices within
//! seconds; a stopped one on its next start.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use vigil_access::files::write_private_file;

use crate::{
    record,
    wal::{self, StoredLog, WalError},
};

/// The quarantine's directory inside the WAL directory.
pub const QUARANTINE_DIR: &str = "quarantine";

/// One quarantined record, as `<lsn>.json` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// Where the record started in the log.
    pub lsn: u64,
    pub end_lsn: u64,
    pub payload_bytes: usize,
    /// The format number its prefix names (1 for unprefixed records).
    pub format: Option<u8>,
    /// Why it could not be read.
    pub error: String,
    /// The operator's reason.
    pub reason: String,
    pub quarantined_at: String,
    /// The file holding the payload, relative to the quarantine directory.
    pub payload_file: String,
}

/// The quarantined records of one WAL directory.
#[derive(Debug, Clone)]
pub struct Quarantine {
    dir: PathBuf,
}

impl Quarantine {
    pub fn of_wal(wal_dir: &Path) -> Quarantine {
        Quarantine {
            dir: wal_dir.join(QUARANTINE_DIR),
        }
    }

    /// Whether the record starting at `lsn` was set aside.
    pub fn contains(&self, lsn: u64) -> bool {
        self.entry_path(lsn).exists()
    }

    /// Every quarantined record, by LSN.
    pub fn entries(&self) -> io::Result<Vec<QuarantineEntry>> {
        let mut entries = Vec::new();
        let listing = match fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(entries),
            Err(e) => return Err(e),
        };
        for file in listing {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let entry = serde_json::from_slice(&fs::read(&path)?)
                    .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
                entries.push(entry);
            }
        }
        entries.sort_by_key(|e: &QuarantineEntry| e.lsn);
        Ok(entries)
    }

    /// Step one: the payload, kept byte for byte. Returns its file name.
    fn keep_payload(&self, lsn: u64, payload: &[u8]) -> io::Result<String> {
        fs::create_dir_all(&self.dir)?;
        let name = format!("{lsn:020}.record");
        write_private_file(&self.dir.join(&name), payload)?;
        Ok(name)
    }

    /// Step two, after the audit log has the action: the entry, which makes the batcher skip
    /// the record.
    fn commit(&self, entry: &QuarantineEntry) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
        write_private_file(&self.entry_path(entry.lsn), &json)
    }

    fn entry_path(&self, lsn: u64) -> PathBuf {
        self.dir.join(format!("{lsn:020}.json"))
    }
}

/// One record after the checkpoint, as [`inspect`] sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordReport {
    pub lsn: u64,
    pub end_lsn: u64,
    pub payload_bytes: usize,
    pub format: Option<u8>,
    /// Rows, when the record can be read.
    pub runs: usize,
    pub spans: usize,
    pub scores: usize,
    /// Why it cannot be read.
    pub error: Option<String>,
    pub quarantined: bool,
}

/// The state of a WAL directory, for `vigil wal inspect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    pub checkpoint_lsn: u64,
    pub end_lsn: u64,
    pub segments: usize,
    pub records: usize,
    /// Every record that cannot be read, and the one asked for (`--lsn`), whatever its state.
    pub reported: Vec<RecordReport>,
    /// Where the whole records stop short of the files' end, and why.
    pub corruption: Option<(u64, String)>,
    pub quarantined: Vec<QuarantineEntry>,
}

/// Reads every record after the checkpoint of the WAL in `wal_dir`, without writing anything.
pub fn inspect(wal_dir: &Path, focus: Option<u64>) -> Result<Inspection, WalError> {
    let quarantine = Quarantine::of_wal(wal_dir);
    let mut records = 0;
    let mut reported = Vec::new();
    let stored: StoredLog = wal::read_stored(wal_dir, |lsn, end_lsn, payload| {
        records += 1;
        let report = report(lsn, end_lsn, payload, &quarantine);
        if report.error.is_some() || focus == Some(lsn) {
            reported.push(report);
        }
    })?;
    let quarantined = quarantine.entries().map_err(|source| WalError::Io {
        path: wal_dir.join(QUARANTINE_DIR),
        source,
    })?;
    Ok(Inspection {
        checkpoint_lsn: stored.checkpoint_lsn,
        end_lsn: stored.end_lsn,
        segments: stored.segments.len(),
        records,
        reported,
        corruption: stored.corruption,
        quarantined,
    })
}

fn report(lsn: u64, end_lsn: u64, payload: &[u8], quarantine: &Quarantine) -> RecordReport {
    let format = record::claimed_format(payload);
    let (rows, error) = match record::decode(payload) {
        Ok(batch) => (
            (batch.runs.len(), batch.spans.len(), batch.scores.len()),
            None,
        ),
        Err(e) => ((0, 0, 0), Some(e.to_string())),
    };
    RecordReport {
        lsn,
        end_lsn,
        payload_bytes: payload.len(),
        format,
        runs: rows.0,
        spans: rows.1,
        scores: rows.2,
        error,
        quarantined: quarantine.contains(lsn),
    }
}

/// Why a record cannot be quarantined.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("quarantine {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "no record starts at LSN {0} after the checkpoint (`vigil wal inspect` lists the records \
         that cannot be read)"
    )]
    NoSuchRecord(u64),
    #[error(
        "the record at LSN {0} can be read ({1} rows); only records that cannot be read are \
         quarantined"
    )]
    Readable(u64, usize),
    #[error("the record at LSN {0} is already quarantined")]
    AlreadyQuarantined(u64),
    #[error("--reason: say why the record is set aside")]
    NoReason,
    #[error("the action could not be recorded in the audit log, so nothing was quarantined: {0}")]
    Audit(String),
}

/// Sets the unreadable record at `lsn` aside: its payload is kept, then `audit` is called with
/// the entry (it must record the action durably), then the entry is committed.
pub fn quarantine(
    wal_dir: &Path,
    lsn: u64,
    reason: &str,
    now: String,
    audit: impl FnOnce(&QuarantineEntry) -> Result<(), String>,
) -> Result<QuarantineEntry, QuarantineError> {
    if reason.trim().is_empty() {
        return Err(QuarantineError::NoReason);
    }
    let store = Quarantine::of_wal(wal_dir);
    if store.contains(lsn) {
        return Err(QuarantineError::AlreadyQuarantined(lsn));
    }
    let mut found = None;
    wal::read_stored(wal_dir, |start, end, payload| {
        if start == lsn {
            found = Some((end, payload.to_vec()));
        }
    })?;
    let (end_lsn, payload) = found.ok_or(QuarantineError::NoSuchRecord(lsn))?;
    let error = match record::decode(&payload) {
        Ok(batch) => return Err(QuarantineError::Readable(lsn, batch.rows())),
        Err(e) => e.to_string(),
    };
    let io_error = |source| QuarantineError::Io {
        path: wal_dir.join(QUARANTINE_DIR),
        source,
    };
    let payload_file = store.keep_payload(lsn, &payload).map_err(io_error)?;
    let entry = QuarantineEntry {
        lsn,
        end_lsn,
        payload_bytes: payload.len(),
        format: record::claimed_format(&payload),
        error,
        reason: reason.trim().to_string(),
        quarantined_at: now,
        payload_file,
    };
    audit(&entry).map_err(QuarantineError::Audit)?;
    store.commit(&entry).map_err(io_error)?;
    Ok(entry)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wal::{Wal, WalConfig};

    #[tokio::test]
    async fn only_an_unreadable_record_is_quarantined_and_only_once_audited() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig::new(dir.path())).unwrap();
        let good = record::encode(&record::tests::full_batch());
        let bad_at = wal.append(good.clone()).await.unwrap();
        let bad = b"VWAL\x07future".to_vec();
        let after_bad = wal.append(bad.clone()).await.unwrap();
        wal.append(good).await.unwrap();
        wal.close();

        let seen = inspect(dir.path(), Some(0)).unwrap();
        assert_eq!(seen.records, 3);
        assert_eq!(seen.reported.len(), 2, "{seen:?}");
        assert_eq!(seen.reported[0].runs, 2);
        assert_eq!(seen.reported[1].lsn, bad_at);
        assert_eq!(seen.reported[1].end_lsn, after_bad);
        assert_eq!(seen.reported[1].format, Some(7));
        assert!(
            seen.reported[1]
                .error
                .as_deref()
                .unwrap()
                .contains("format 7")
        );

        let now = || "2026-12-02T00:00:00Z".to_string();
        let refused = quarantine(dir.path(), 0, "x", now(), |_| Ok(()));
        assert!(matches!(refused, Err(QuarantineError::Readable(0, 6))));
        let refused = quarantine(dir.path(), bad_at + 1, "x", now(), |_| Ok(()));
        assert!(matches!(refused, Err(QuarantineError::NoSuchRecord(_))));
        let refused = quarantine(dir.path(), bad_at, " ", now(), |_| Ok(()));
        assert!(matches!(refused, Err(QuarantineError::NoReason)));

        // An audit failure leaves the record where it was.
        let refused = quarantine(dir.path(), bad_at, "x", now(), |_| Err("disk full".into()));
        assert!(matches!(refused, Err(QuarantineError::Audit(_))));
        assert!(!Quarantine::of_wal(dir.path()).contains(bad_at));

        let mut audited = None;
        let entry = quarantine(dir.path(), bad_at, "written by v9", now(), |e| {
            audited = Some(e.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(audited.as_ref(), Some(&entry));
        let store = Quarantine::of_wal(dir.path());
        assert!(store.contains(bad_at));
        assert_eq!(store.entries().unwrap(), vec![entry.clone()]);
        let kept = fs::read(dir.path().join(QUARANTINE_DIR).join(&entry.payload_file)).unwrap();
        assert_eq!(kept, bad);
        assert!(matches!(
            quarantine(dir.path(), bad_at, "again", now(), |_| Ok(())),
            Err(QuarantineError::AlreadyQuarantined(_))
        ));
        assert!(inspect(dir.path(), None).unwrap().reported[0].quarantined);
    }
}
