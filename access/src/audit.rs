//! The audit log: who did what, when, with which parameters and how many results. Append-only and
//! hash-chained, in `<data dir>/audit/` (directory 0700, files 0600).
//!
//! # Files
//!
//! - `audit.log`: one JSON line per [`AuditEntry`], `seq` 1, 2, 3, … in order.
//! - `head`: `{"seq": n, "hash": "…"}` of the last acknowledged entry, replaced atomically (temp
//!   file, fsync, rename); during an append it also announces the entry being written
//!   (`"pending": {"seq": n + 1, "hash": "…"}`). The chain alone cannot tell a log whose end was
//!   cut off from a shorter log, nor an entry appended by Vigil from one appended by hand; the
//!   head can.
//!
//! # The chain
//!
//! `hash = hex(SHA-256(prev_hash ‖ canonical))`, where `prev_hash` is the previous entry's `hash`
//! (64 zeros for the first entry) and `canonical` is the JSON array
//! `[seq, time, time_ns, project_id, key_id, action, parameters, result_count]` without
//! whitespace, object keys sorted at every depth. Every field of an entry is covered: the
//! other fields by `canonical`, `prev_hash` as the prefix, `hash` by the check itself. [`verify`]
//! also checks that `seq` rises by one from 1, that `time` is `time_ns` rendered and that time
//! never goes back, so a changed field, a removed, inserted or moved entry and a removed end are
//! all found, and the first bad entry is named by its line and the `seq` expected there.
//!
//! # Appending
//!
//! [`AuditLog::append`] takes an exclusive `flock` on `audit.log` (the CLI appends while the
//! server runs), reads the last complete line, checks it against its hash and against the head,
//! announces the new entry in the head, writes the line with one `write`, `fdatasync`s it, then
//! replaces the head with the new entry; the entry is durable when `append` returns. Time never goes back: an entry's `time_ns` is the later of now
//! and the previous entry's.
//!
//! A log that fails those checks is not appended to ([`AuditError::Inconsistent`]): chaining a new
//! entry onto a cut-off end and moving the head would erase the evidence of the cut.
//!
//! # Crashes
//!
//! - Torn last line: a crash in the middle of a `write` can leave bytes after the last newline.
//!   Such bytes were never acknowledged (the newline is written with the entry, the head is moved
//!   only after the `fdatasync`), so [`verify`] and [`AuditLog::read`] ignore them (the report
//!   counts them in `torn_tail_bytes`) and the next append cuts them off before writing. If the
//!   head says that entry was acknowledged, it is not a torn write but a removed end, and is
//!   reported as such.
//! - A crash after the line is written but before the head is replaced leaves the head one entry
//!   behind, announcing the last entry as pending: [`verify`] accepts exactly that entry
//!   (`head_lags`) and the next append moves the head. An entry beyond the head that was not
//!   announced is reported: it was not appended by Vigil.
//!
//! # What it proves
//!
//! The chain finds any change made without recomputing every later hash and the head. Someone
//! who can write the data directory and recomputes them all is not detected by the files alone:
//! keep the head hash [`verify`] reports (`vigil audit verify` prints it) somewhere else and
//! compare it later.
//!
//! Reading is a linear scan of the file.

use std::{
    fmt,
    fs::{self, File},
    io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use vigil_schemas::time::{now_ns, rfc3339};

use crate::files::write_private_file;

/// The entries, one JSON line each.
pub const LOG_FILE: &str = "audit.log";
/// The last acknowledged entry's seq and hash.
pub const HEAD_FILE: &str = "head";
/// `prev_hash` of the first entry.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The longest entry (one JSON line, newline included).
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// `key_id` of actions taken through the `vigil` CLI on the data directory.
pub const CLI_KEY_ID: &str = "cli";
/// `key_id` of actions Vigil takes by itself (retention, the first start's admin key).
pub const SYSTEM_KEY_ID: &str = "system";
/// `project_id` of actions about every project (retention); every project's auditors see them.
pub const ALL_PROJECTS: &str = "*";

// Actions recorded across Vigil.
/// `POST /api/v1/audit/affected`: which sessions and users a filter affects.
pub const AUDIT_AFFECTED: &str = "audit.affected";
/// The affected runs streamed as CSV or NDJSON.
pub const AUDIT_EXPORT: &str = "audit.export";
/// `POST /api/v1/audit/user-lookup`.
pub const AUDIT_USER_LOOKUP: &str = "audit.user_lookup";
/// `GET /api/v1/audit/log`: reading this log.
pub const AUDIT_LOG_READ: &str = "audit.log_read";
/// `DELETE /api/v1/users/{user_hash}`.
pub const USER_ERASE: &str = "user.erase";
/// Data deleted by the retention policy.
pub const RETENTION_DELETE: &str = "retention.delete";
/// An API key created (API, CLI, or the first start's admin key).
pub const KEY_CREATE: &str = "key.create";
/// An API key revoked.
pub const KEY_REVOKE: &str = "key.revoke";
/// An alert rule created or replaced through the API.
pub const ALERT_RULE_PUT: &str = "alert_rule.put";
/// An alert rule deleted through the API.
pub const ALERT_RULE_DELETE: &str = "alert_rule.delete";
/// A silence created.
pub const SILENCE_CREATE: &str = "silence.create";
/// A silence expired.
pub const SILENCE_EXPIRE: &str = "silence.expire";
/// A WAL record that cannot be read set aside by `vigil wal quarantine`.
pub const WAL_QUARANTINE: &str = "wal.quarantine";
/// A dataset created.
pub const DATASET_CREATE: &str = "dataset.create";
/// A dataset's items added, changed or deleted: a new version.
pub const DATASET_CHANGE: &str = "dataset.change";
/// A kill switch set, by a person or by an alert rule.
pub const KILL_SWITCH_SET: &str = "kill_switch.set";

/// Every action name above.
pub const ACTIONS: [&str; 16] = [
    AUDIT_AFFECTED,
    AUDIT_EXPORT,
    AUDIT_USER_LOOKUP,
    AUDIT_LOG_READ,
    USER_ERASE,
    RETENTION_DELETE,
    KEY_CREATE,
    KEY_REVOKE,
    ALERT_RULE_PUT,
    ALERT_RULE_DELETE,
    SILENCE_CREATE,
    SILENCE_EXPIRE,
    WAL_QUARANTINE,
    DATASET_CREATE,
    DATASET_CHANGE,
    KILL_SWITCH_SET,
];

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A line that is not an entry, met while reading.
    #[error("audit log {path}, line {line}: {message}")]
    Corrupt {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// The end of the log does not check out: nothing is appended to it.
    #[error(
        "audit log {path}: {message}; nothing is appended until it is repaired (run `vigil audit verify`)"
    )]
    Inconsistent { path: PathBuf, message: String },
    #[error("audit record {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// What to record: the log adds seq, time and the chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    pub project_id: String,
    /// The caller's API key id; [`CLI_KEY_ID`] or [`SYSTEM_KEY_ID`] otherwise.
    pub key_id: String,
    /// One of the action constants of this module.
    pub action: String,
    /// What an auditor needs to know about the request: names, ids, filters. Never a secret.
    pub parameters: Value,
    /// How many things the action returned or changed.
    pub result_count: u64,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// 1 for the first entry of the log, then one more for each.
    #[schema(minimum = 1)]
    pub seq: u64,
    /// `time_ns` as RFC 3339, nanoseconds, UTC.
    #[schema(format = DateTime)]
    pub time: String,
    /// ns since the Unix epoch; never decreases along the log.
    pub time_ns: i64,
    pub project_id: String,
    /// The caller's API key id; `cli` for the `vigil` CLI, `system` for Vigil itself (the first
    /// start's admin key, retention).
    pub key_id: String,
    #[schema(schema_with = action_schema)]
    pub action: String,
    /// What the action was asked: names, ids, roles, filters. Never a secret.
    pub parameters: Value,
    /// How many things the action returned or changed.
    pub result_count: u64,
    /// The previous entry's `hash`; 64 zeros for the first entry.
    pub prev_hash: String,
    /// Hex SHA-256 of `prev_hash` followed by the JSON array [seq, time, time_ns, project_id,
    /// key_id, action, parameters, result_count], compact, object keys sorted.
    pub hash: String,
}

/// What was done: one of [`ACTIONS`].
fn action_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    vigil_schemas::openapi::from_json(serde_json::json!({
        "type": "string",
        "enum": ACTIONS,
        "description": "What was done.",
    }))
}

impl AuditEntry {
    /// The hash this entry must carry, computed from its other fields.
    pub fn expected_hash(&self) -> String {
        let mut canonical = String::with_capacity(256);
        canonical.push('[');
        for (i, value) in [
            Value::from(self.seq),
            Value::from(self.time.as_str()),
            Value::from(self.time_ns),
            Value::from(self.project_id.as_str()),
            Value::from(self.key_id.as_str()),
            Value::from(self.action.as_str()),
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                canonical.push(',');
            }
            write_canonical(value, &mut canonical);
        }
        canonical.push(',');
        write_canonical(&self.parameters, &mut canonical);
        canonical.push(',');
        canonical.push_str(&self.result_count.to_string());
        canonical.push(']');
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(canonical.as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// Compact JSON with object keys sorted at every depth.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The `head` file: the last acknowledged entry (seq 0 and [`ZERO_HASH`] before the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
    /// The entry an append in progress is writing (seq + 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingEntry>,
}

/// A point of the chain published outside Vigil: the hash of entry `seq`. A log rewritten after
/// the point was published, even whole with every hash recomputed, no longer has that hash at
/// that entry; `vigil audit verify --expect SEQ:HASH` checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
}

impl std::str::FromStr for Checkpoint {
    type Err = String;

    /// `SEQ:HASH`, as `vigil audit head` prints it.
    fn from_str(text: &str) -> Result<Checkpoint, String> {
        let (seq, hash) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?} is not SEQ:HASH"))?;
        let seq = seq
            .parse()
            .map_err(|_| format!("{seq:?} is not an entry number"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{hash:?} is not a SHA-256 in hex (64 characters)"));
        }
        Ok(Checkpoint {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// An entry announced in the head before it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingEntry {
    pub seq: u64,
    pub hash: String,
}

/// The audit log in one directory. `Send + Sync`; share it as `Arc<AuditLog>`.
pub struct AuditLog {
    dir: PathBuf,
    /// Appends of this process queue here rather than on the file lock.
    appending: Mutex<()>,
}

impl AuditLog {
    /// Opens the log in `dir` (`<data dir>/audit`), creating the directory (0700) if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<AuditLog, AuditError> {
        let dir = dir.into();
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&dir).map_err(|source| AuditError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(AuditLog {
            dir,
            appending: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Appends an entry; it is durable (fsync'd) when this returns. Safe across processes.
    pub fn append(&self, record: AuditRecord) -> Result<AuditEntry, AuditError> {
        for (field, value) in [
            ("project_id", &record.project_id),
            ("key_id", &record.key_id),
            ("action", &record.action),
        ] {
            if value.is_empty() {
                return Err(AuditError::Invalid {
                    field,
                    message: "must not be empty".into(),
                });
            }
        }
        let path = self.log_path();
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        let _in_process = self.appending.lock();
        let mut options = fs::OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(io)?;
        // Released when `file` is closed, on every path out of here.
        file.lock().map_err(io)?;
        self.append_locked(&mut file, record)
    }

    fn append_locked(
        &self,
        file: &mut File,
        record: AuditRecord,
    ) -> Result<AuditEntry, AuditError> {
        let path = self.log_path();
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        let inconsistent = |message: String| AuditError::Inconsistent {
            path: path.clone(),
            message,
        };
        let tail = read_tail(file).map_err(io)?;
        let last = match &tail.last_line {
            None => None,
            Some(line) => {
                let entry: AuditEntry = serde_json::from_slice(line).map_err(|e| {
                    inconsistent(format!("the last complete line is not an entry: {e}"))
                })?;
                if entry.expected_hash() != entry.hash {
                    return Err(inconsistent(format!(
                        "the last entry (seq {}) does not match its hash",
                        entry.seq
                    )));
                }
                Some(entry)
            }
        };
        let head = read_head(&self.dir)?;
        if let HeadCheck::Mismatch(message) = check_head(head.as_ref(), last.as_ref()) {
            return Err(inconsistent(message));
        }
        if tail.len > tail.complete_len {
            // A torn write of an entry that was never acknowledged (see the module docs).
            file.set_len(tail.complete_len).map_err(io)?;
        }

        let time_ns = last.as_ref().map_or(now_ns(), |l| now_ns().max(l.time_ns));
        let mut entry = AuditEntry {
            seq: last.as_ref().map_or(1, |l| l.seq + 1),
            time: rfc3339(time_ns),
            time_ns,
            project_id: record.project_id,
            key_id: record.key_id,
            action: record.action,
            parameters: record.parameters,
            result_count: record.result_count,
            prev_hash: last.map_or_else(|| ZERO_HASH.to_string(), |l| l.hash),
            hash: String::new(),
        };
        entry.hash = entry.expected_hash();
        let mut line = serde_json::to_vec(&entry).map_err(|e| AuditError::Invalid {
            field: "parameters",
            message: e.to_string(),
        })?;
        line.push(b'\n');
        if line.len() > MAX_ENTRY_BYTES {
            return Err(AuditError::Invalid {
                field: "parameters",
                message: format!(
                    "the entry would be {} bytes, the limit is {MAX_ENTRY_BYTES}",
                    line.len()
                ),
            });
        }
        self.write_head(&Head {
            seq: entry.seq - 1,
            hash: entry.prev_hash.clone(),
            pending: Some(PendingEntry {
                seq: entry.seq,
                hash: entry.hash.clone(),
            }),
        })?;
        file.write_all(&line).map_err(io)?;
        file.sync_data().map_err(io)?;
        // Also makes the log's own directory entry durable: the head is in the same directory.
        self.write_head(&Head {
            seq: entry.seq,
            hash: entry.hash.clone(),
            pending: None,
        })?;
        Ok(entry)
    }

    fn write_head(&self, head: &Head) -> Result<(), AuditError> {
        let path = self.dir.join(HEAD_FILE);
        let json = serde_json::to_vec(head).map_err(|e| AuditError::Invalid {
            field: "head",
            message: e.to_string(),
        })?;
        write_private_file(&path, &json).map_err(|source| AuditError::Io { path, source })
    }

    /// The last acknowledged entry as a checkpoint to publish (seq 0 and [`ZERO_HASH`] before
    /// the first).
    pub fn checkpoint(&self) -> Result<Checkpoint, AuditError> {
        Ok(match read_head(&self.dir)? {
            Some(head) => Checkpoint {
                seq: head.seq,
                hash: head.hash,
            },
            None => Checkpoint {
                seq: 0,
                hash: ZERO_HASH.to_string(),
            },
        })
    }

    /// The hash the log holds at `seq` (none when it holds no such entry; [`ZERO_HASH`] at 0).
    pub fn hash_at(&self, seq: u64) -> Result<Option<String>, AuditError> {
        if seq == 0 {
            return Ok(Some(ZERO_HASH.to_string()));
        }
        let entry = self.read(None, None, Some(seq - 1), 1)?;
        Ok(entry.into_iter().find(|e| e.seq == seq).map(|e| e.hash))
    }

    /// Entries with `from_ns <= time_ns < to_ns` and `seq > after`, in log order, at most `limit`.
    pub fn read(
        &self,
        from_ns: Option<i64>,
        to_ns: Option<i64>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        self.read_matching(from_ns, to_ns, after, limit, |_| true)
    }

    /// [`AuditLog::read`], keeping only the entries `keep` accepts (e.g. one project's).
    pub fn read_matching(
        &self,
        from_ns: Option<i64>,
        to_ns: Option<i64>,
        after: Option<u64>,
        limit: usize,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        let path = self.log_path();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(AuditError::Io { path, source }),
        };
        let mut entries = Vec::new();
        if limit == 0 {
            return Ok(entries);
        }
        let mut lines = Lines::new(file);
        while let Some(line) = lines.next_line().map_err(|source| AuditError::Io {
            path: path.clone(),
            source,
        })? {
            let Line::Complete(number, bytes) = line else {
                break; // torn, or being written right now
            };
            let entry: AuditEntry =
                serde_json::from_slice(bytes).map_err(|e| AuditError::Corrupt {
                    path: path.clone(),
                    line: number,
                    message: format!("not an audit entry: {e}"),
                })?;
            if after.is_some_and(|a| entry.seq <= a)
                || from_ns.is_some_and(|f| entry.time_ns < f)
                || to_ns.is_some_and(|t| entry.time_ns >= t)
                || !keep(&entry)
            {
                continue;
            }
            entries.push(entry);
            if entries.len() >= limit {
                break;
            }
        }
        Ok(entries)
    }
}

/// Where the first problem was found and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TamperKind {
    /// A line that is not an entry.
    Unreadable,
    /// An entry where another seq belongs: one removed, inserted or moved.
    Sequence,
    /// `prev_hash` is not the previous entry's hash.
    Chain,
    /// The hash does not match the entry's fields: a field was changed.
    Hash,
    /// `time` is not `time_ns`, or time goes back.
    Time,
    /// The head records entries the log no longer has: its end was removed.
    Truncated,
    /// The head file is missing, unreadable, or names an entry the log does not end with.
    Head,
    /// The entry differs from the copy shipped to ClickHouse, or the log lost it
    /// ([`crate::shared_audit`]).
    Shipped,
}

/// The first bad entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tampering {
    /// 1-based line of `audit.log` (in an intact log, line n holds seq n).
    pub line: u64,
    /// The seq that belongs on that line.
    pub seq: u64,
    pub kind: TamperKind,
    pub detail: String,
}

impl fmt::Display for Tampering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} (entry seq {}): {}",
            self.line, self.seq, self.detail
        )
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked and found good (all of them when the log is valid).
    pub entries: u64,
    /// Seq of the last good entry; 0 when there is none.
    pub last_seq: u64,
    /// Hash of the last good entry ([`ZERO_HASH`] when there is none): keep it to compare later.
    pub last_hash: String,
    /// What the head file says, when it says anything.
    pub head: Option<Head>,
    /// The head is one entry behind, announcing the last entry as pending: an append was
    /// interrupted after writing its entry.
    pub head_lags: bool,
    /// Bytes after the last line end: a write torn by a crash, never acknowledged, ignored.
    pub torn_tail_bytes: u64,
    /// The first problem; `None` when the log is intact.
    pub tampering: Option<Tampering>,
}

impl VerifyReport {
    pub fn is_valid(&self) -> bool {
        self.tampering.is_none()
    }
}

/// Checks the whole log in `dir`. `Ok` also when tampering is found: the report says where.
pub fn verify(dir: &Path) -> Result<VerifyReport, AuditError> {
    let path = dir.join(LOG_FILE);
    let io = |source| AuditError::Io {
        path: path.clone(),
        source,
    };
    let mut report = VerifyReport {
        entries: 0,
        last_seq: 0,
        last_hash: ZERO_HASH.to_string(),
        head: None,
        head_lags: false,
        torn_tail_bytes: 0,
        tampering: None,
    };
    let head = match read_head(dir) {
        Ok(head) => head,
        Err(AuditError::Corrupt { message, .. }) => {
            report.tampering = Some(Tampering {
                line: 1,
                seq: 1,
                kind: TamperKind::Head,
                detail: format!("the head file is unreadable: {message}"),
            });
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    report.head = head.clone();

    let mut last: Option<AuditEntry> = None;
    match File::open(&path) {
        Ok(file) => {
            let mut lines = Lines::new(file);
            while let Some(line) = lines.next_line().map_err(io)? {
                let (number, bytes) = match line {
                    Line::Complete(number, bytes) => (number, bytes),
                    Line::Torn(len) => {
                        report.torn_tail_bytes = len;
                        break;
                    }
                };
                let expected = report.last_seq + 1;
                let found = |kind, detail: String| Tampering {
                    line: number,
                    seq: expected,
                    kind,
                    detail,
                };
                let entry: AuditEntry = match serde_json::from_slice(bytes) {
                    Ok(entry) => entry,
                    Err(e) => {
                        report.tampering = Some(found(
                            TamperKind::Unreadable,
                            format!("not an audit entry: {e}"),
                        ));
                        return Ok(report);
                    }
                };
                if let Some(problem) = check_entry(&entry, last.as_ref(), expected) {
                    report.tampering = Some(found(problem.0, problem.1));
                    return Ok(report);
                }
                report.entries += 1;
                report.last_seq = entry.seq;
                report.last_hash = entry.hash.clone();
                last = Some(entry);
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(io(source)),
    }

    match check_head(head.as_ref(), last.as_ref()) {
        HeadCheck::Current => {}
        HeadCheck::Lags => report.head_lags = true,
        HeadCheck::Mismatch(detail) => {
            let (kind, seq) = match &head {
                Some(h) if h.seq > report.last_seq => (TamperKind::Truncated, report.last_seq + 1),
                Some(h) if h.seq < report.last_seq => (TamperKind::Head, h.seq + 1),
                _ => (TamperKind::Head, report.last_seq.max(1)),
            };
            let torn = if report.torn_tail_bytes > 0 {
                format!(
                    " ({} bytes after the last line end are not a complete entry)",
                    report.torn_tail_bytes
                )
            } else {
                String::new()
            };
            report.tampering = Some(Tampering {
                line: seq,
                seq,
                kind,
                detail: format!("{detail}{torn}"),
            });
        }
    }
    Ok(report)
}

/// Checks a chain of entries given in order (a copy of a log kept elsewhere: entry `i` stands on
/// "line" `i + 1`): the first bad entry, if any, as [`verify`] names it.
pub fn check_chain<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> Option<Tampering> {
    let mut previous: Option<&AuditEntry> = None;
    for (i, entry) in entries.into_iter().enumerate() {
        let expected = i as u64 + 1;
        if let Some((kind, detail)) = check_entry(entry, previous, expected) {
            return Some(Tampering {
                line: expected,
                seq: expected,
                kind,
                detail,
            });
        }
        previous = Some(entry);
    }
    None
}

/// The first thing wrong with `entry`, found at the place of seq `expected` after `previous`.
fn check_entry(
    entry: &AuditEntry,
    previous: Option<&AuditEntry>,
    expected: u64,
) -> Option<(TamperKind, String)> {
    if entry.seq != expected {
        let why = if entry.seq > expected {
            format!("entry {expected} is missing or was moved")
        } else {
            "an entry was inserted, repeated or moved".to_string()
        };
        return Some((
            TamperKind::Sequence,
            format!("seq {} where {expected} belongs: {why}", entry.seq),
        ));
    }
    let prev_hash = previous.map_or(ZERO_HASH, |p| p.hash.as_str());
    if entry.prev_hash != prev_hash {
        return Some((
            TamperKind::Chain,
            "prev_hash is not the hash of the entry before it: the entry or the one before it \
             was changed or replaced"
                .into(),
        ));
    }
    if entry.expected_hash() != entry.hash {
        return Some((
            TamperKind::Hash,
            "the hash does not match the entry's fields: a field was changed".into(),
        ));
    }
    if entry.time != rfc3339(entry.time_ns) {
        return Some((
            TamperKind::Time,
            format!("time {:?} is not time_ns {}", entry.time, entry.time_ns),
        ));
    }
    if let Some(previous) = previous
        && entry.time_ns < previous.time_ns
    {
        return Some((
            TamperKind::Time,
            format!(
                "time_ns {} is before the previous entry's {}",
                entry.time_ns, previous.time_ns
            ),
        ));
    }
    None
}

enum HeadCheck {
    Current,
    /// One entry behind: an append stopped between its fsync and the head's replacement.
    Lags,
    Mismatch(String),
}

fn check_head(head: Option<&Head>, last: Option<&AuditEntry>) -> HeadCheck {
    let Some(head) = head else {
        return match last {
            None => HeadCheck::Current,
            Some(last) => HeadCheck::Mismatch(format!(
                "the head file is missing but the log has {} entries",
                last.seq
            )),
        };
    };
    let (last_seq, last_hash) = last.map_or((0, ZERO_HASH), |l| (l.seq, l.hash.as_str()));
    let announced = head.pending.as_ref().is_some_and(|p| {
        last.is_some_and(|l| p.seq == l.seq && p.hash == l.hash && l.prev_hash == head.hash)
    });
    if head.seq == last_seq && head.hash == last_hash {
        HeadCheck::Current
    } else if announced && head.seq + 1 == last_seq {
        HeadCheck::Lags
    } else if head.seq > last_seq {
        HeadCheck::Mismatch(format!(
            "the log ends at seq {last_seq} but the head records seq {}: entries {}..={} were \
             removed from the end",
            head.seq,
            last_seq + 1,
            head.seq
        ))
    } else if head.seq == last_seq {
        HeadCheck::Mismatch(format!(
            "the last entry (seq {last_seq}) is not the one the head records: it was replaced"
        ))
    } else {
        HeadCheck::Mismatch(format!(
            "the head records seq {} but the log goes on to seq {last_seq}: entries after seq \
             {} were not appended by Vigil",
            head.seq, head.seq
        ))
    }
}

fn read_head(dir: &Path) -> Result<Option<Head>, AuditError> {
    let path = dir.join(HEAD_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AuditError::Corrupt {
                path,
                line: 1,
                message: e.to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::Io { path, source }),
    }
}

/// The end of the log file.
struct Tail {
    len: u64,
    /// Bytes up to and including the last newline.
    complete_len: u64,
    /// The last complete line, without its newline.
    last_line: Option<Vec<u8>>,
}

fn read_tail(file: &mut File) -> io::Result<Tail> {
    let len = file.metadata()?.len();
    let complete_len = rfind_newline(file, len)?.map_or(0, |at| at + 1);
    if complete_len == 0 {
        return Ok(Tail {
            len,
            complete_len,
            last_line: None,
        });
    }
    let start = rfind_newline(file, complete_len - 1)?.map_or(0, |at| at + 1);
    let mut line = vec![0u8; (complete_len - 1 - start) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut line)?;
    Ok(Tail {
        len,
        complete_len,
        last_line: Some(line),
    })
}

/// Offset of the last `\n` before `end`.
fn rfind_newline(file: &mut File, mut end: u64) -> io::Result<Option<u64>> {
    const CHUNK: u64 = 8192;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

enum Line<'a> {
    /// A line (1-based number) without its newline.
    Complete(u64, &'a [u8]),
    /// This many bytes at the end with no newline after them.
    Torn(u64),
}

/// The log's lines, numbered from 1.
struct Lines {
    reader: BufReader<File>,
    buf: Vec<u8>,
    number: u64,
}

impl Lines {
    fn new(file: File) -> Lines {
        Lines {
            reader: BufReader::with_capacity(64 * 1024, file),
            buf: Vec::new(),
            number: 0,
        }
    }

    fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        if self.buf.last() != Some(&b'\n') {
            return Ok(Some(Line::Torn(n as u64)));
        }
        self.number += 1;
        Ok(Some(Line::Complete(self.number, &self.buf[..n - 1])))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn record(i: u64) -> AuditRecord {
        AuditRecord {
            project_id: if i.is_multiple_of(3) { "other" } else { "p" }.into(),
            key_id: format!("vk_{i:016x}"),
            action: ACTIONS[(i as usize) % ACTIONS.len()].into(),
            parameters: json!({"i": i, "name": format!("rule-{i}"), "nested": {"b": [1, 2.5], "a": null}}),
            result_count: i * 7,
        }
    }

    fn log_with(n: u64) -> (tempfile::TempDir, AuditLog) {
        let tmp = tempfile::tempdir().unwrap();
        let log = AuditLog::open(tmp.path().join("audit")).unwrap();
        for i in 0..n {
            log.append(record(i)).unwrap();
        }
        (tmp, log)
    }

    #[test]
    fn a_published_checkpoint_finds_a_log_rewritten_whole() {
        let (tmp, log) = log_with(5);
        let published = log.checkpoint().unwrap();
        assert_eq!(published.seq, 5);
        assert_eq!(
            log.hash_at(5).unwrap().as_deref(),
            Some(published.hash.as_str())
        );
        assert_eq!(
            published.to_string().parse::<Checkpoint>(),
            Ok(published.clone())
        );
        // Rewritten from scratch with one record changed: a valid chain, another hash at 5.
        fs::remove_dir_all(log.dir()).unwrap();
        let rewritten = AuditLog::open(tmp.path().join("audit")).unwrap();
        for i in 0..5 {
            let mut changed = record(i);
            changed.result_count += u64::from(i == 2);
            rewritten.append(changed).unwrap();
        }
        assert!(verify(rewritten.dir()).unwrap().is_valid());
        assert_ne!(rewritten.hash_at(5).unwrap(), Some(published.hash));
        assert_eq!(rewritten.hash_at(6).unwrap(), None);
        assert_eq!(rewritten.hash_at(0).unwrap().as_deref(), Some(ZERO_HASH));
        for bad in ["5", "x:00", &format!("5:{}", "g".repeat(64))] {
            assert!(bad.parse::<Checkpoint>().is_err(), "{bad}");
        }
    }

    fn lines(log: &AuditLog) -> Vec<String> {
        fs::read_to_string(log.log_path())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write_lines(log: &AuditLog, lines: &[String]) {
        let mut text = lines.join("\n");
        if !lines.is_empty() {
            text.push('\n');
        }
        fs::write(log.log_path(), text).unwrap();
    }

    fn tampering(log: &AuditLog) -> Tampering {
        let report = verify(log.dir()).unwrap();
        match report.tampering {
            Some(found) => found,
            None => panic!("not detected: {report:?}"),
        }
    }

    #[test]
    fn entries_are_chained_and_read_back() {
        let (_tmp, log) = log_with(5);
        let all = log.read(None, None, None, 100).unwrap();
        assert_eq!(all.len(), 5);
        let mut prev = ZERO_HASH.to_string();
        for (i, entry) in all.iter().enumerate() {
            assert_eq!(entry.seq, i as u64 + 1);
            assert_eq!(entry.prev_hash, prev);
            assert_eq!(entry.hash.len(), 64);
            assert_eq!(entry.time, rfc3339(entry.time_ns));
            assert_eq!(entry.result_count, i as u64 * 7);
            prev = entry.hash.clone();
        }
        assert!(all.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));

        // Paging, limits, time ranges, a filter.
        let page = log.read(None, None, Some(2), 2).unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
        let from = all[1].time_ns;
        let to = all[3].time_ns;
        let ranged = log.read(Some(from), Some(to), None, 100).unwrap();
        assert!(ranged.iter().all(|e| e.time_ns >= from && e.time_ns < to));
        assert!(ranged.iter().any(|e| e.seq == 2));
        assert!(!ranged.iter().any(|e| e.seq >= 4));
        let mine = log
            .read_matching(None, None, None, 100, |e| e.project_id == "p")
            .unwrap();
        assert_eq!(mine.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3, 5]);
        assert!(log.read(None, None, None, 0).unwrap().is_empty());

        let report = verify(log.dir()).unwrap();
        assert!(report.is_valid(), "{report:?}");
        assert_eq!(report.entries, 5);
        assert_eq!(report.last_seq, 5);
        assert_eq!(report.last_hash, all[4].hash);
        assert_eq!(
            report.head,
            Some(Head {
                seq: 5,
                hash: all[4].hash.clone(),
                pending: None,
            })
        );
    }

    #[test]
    fn the_hash_is_sha256_of_prev_hash_and_the_canonical_fields() {
        let (_tmp, log) = log_with(1);
        let entry = &log.read(None, None, None, 1).unwrap()[0];
        // Computed here independently: keys sorted, no whitespace.
        let canonical = format!(
            "[1,{:?},{},\"other\",\"vk_0000000000000000\",\"audit.affected\",\
             {{\"i\":0,\"name\":\"rule-0\",\"nested\":{{\"a\":null,\"b\":[1,2.5]}}}},0]",
            entry.time, entry.time_ns
        );
        let expected = hex::encode(Sha256::digest(format!("{ZERO_HASH}{canonical}")));
        assert_eq!(entry.hash, expected);
    }

    #[test]
    fn an_empty_or_missing_log_is_valid() {
        let tmp = tempfile::tempdir().unwrap();
        let report = verify(&tmp.path().join("nothing")).unwrap();
        assert!(report.is_valid());
        assert_eq!((report.entries, report.last_seq), (0, 0));
        let log = AuditLog::open(tmp.path().join("audit")).unwrap();
        assert!(log.read(None, None, None, 10).unwrap().is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(log.dir()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
            log.append(record(1)).unwrap();
            let mode = fs::metadata(log.log_path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn appends_from_many_handles_and_threads_form_one_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("audit");
        let shared = Arc::new(AuditLog::open(&dir).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                // Two threads share a handle, two open their own, as another process would.
                let log = if t % 2 == 0 {
                    shared.clone()
                } else {
                    Arc::new(AuditLog::open(&dir).unwrap())
                };
                std::thread::spawn(move || {
                    for i in 0..15 {
                        log.append(record(t * 100 + i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let report = verify(&dir).unwrap();
        assert!(report.is_valid(), "{report:?}");
        assert_eq!(report.entries, 60);
    }

    #[test]
    fn a_torn_last_line_is_ignored_then_cut_off() {
        let (_tmp, log) = log_with(3);
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(log.log_path())
            .unwrap();
        file.write_all(b"{\"seq\":4,\"time\":\"20").unwrap();
        drop(file);
        let report = verify(log.dir()).unwrap();
        assert!(report.is_valid(), "{report:?}");
        assert_eq!(report.torn_tail_bytes, 19);
        assert_eq!(log.read(None, None, None, 10).unwrap().len(), 3);

        let entry = log.append(record(9)).unwrap();
        assert_eq!(entry.seq, 4);
        let report = verify(log.dir()).unwrap();
        assert!(report.is_valid(), "{report:?}");
        assert_eq!((report.entries, report.torn_tail_bytes), (4, 0));
    }

    #[test]
    fn a_head_one_announced_entry_behind_is_a_crash_and_is_repaired() {
        let (_tmp, log) = log_with(3);
        let all = log.read(None, None, None, 10).unwrap();
        let write_head = |head: &Head| {
            fs::write(log.dir().join(HEAD_FILE), serde_json::to_vec(head).unwrap()).unwrap()
        };
        // The crash: entry 3 written, the head still announcing it.
        write_head(&Head {
            seq: 2,
            hash: all[1].hash.clone(),
            pending: Some(PendingEntry {
                seq: 3,
                hash: all[2].hash.clone(),
            }),
        });
        let report = verify(log.dir()).unwrap();
        assert!(report.is_valid() && report.head_lags, "{report:?}");
        log.append(record(3)).unwrap();
        let report = verify(log.dir()).unwrap();
        assert!(report.is_valid() && !report.head_lags, "{report:?}");
        assert_eq!(report.head.unwrap().seq, 4);

        // An entry announced but never written: nothing to see.
        let (_tmp, log) = log_with(2);
        let all = log.read(None, None, None, 10).unwrap();
        write_head(&Head {
            seq: 2,
            hash: all[1].hash.clone(),
            pending: Some(PendingEntry {
                seq: 3,
                hash: "ab".repeat(32),
            }),
        });
        assert!(verify(log.dir()).unwrap().is_valid());
        assert_eq!(log.append(record(5)).unwrap().seq, 3);
        // Before the first entry: the head announces seq 1 after seq 0.
        let (_tmp, log) = log_with(0);
        write_head(&Head {
            seq: 0,
            hash: ZERO_HASH.into(),
            pending: Some(PendingEntry {
                seq: 1,
                hash: "ab".repeat(32),
            }),
        });
        assert!(verify(log.dir()).unwrap().is_valid());
        assert_eq!(log.append(record(5)).unwrap().seq, 1);
    }

    #[test]
    fn an_entry_appended_by_hand_is_found_even_with_a_correct_hash() {
        let (_tmp, log) = log_with(3);
        let last = log.read(None, None, None, 10).unwrap().pop().unwrap();
        let mut forged = AuditEntry {
            seq: 4,
            time: rfc3339(last.time_ns + 1),
            time_ns: last.time_ns + 1,
            action: KEY_REVOKE.into(),
            prev_hash: last.hash.clone(),
            hash: String::new(),
            ..last
        };
        forged.hash = forged.expected_hash();
        let mut all = lines(&log);
        all.push(serde_json::to_string(&forged).unwrap());
        write_lines(&log, &all);
        let found = tampering(&log);
        assert_eq!(
            (found.kind, found.line, found.seq),
            (TamperKind::Head, 4, 4)
        );
        assert!(log.append(record(1)).is_err());
    }

    #[test]
    fn a_cut_off_end_is_found_and_not_appended_to() {
        let (_tmp, log) = log_with(4);
        let mut kept = lines(&log);
        kept.truncate(2);
        write_lines(&log, &kept);
        let found = tampering(&log);
        assert_eq!(
            (found.kind, found.line, found.seq),
            (TamperKind::Truncated, 3, 3)
        );
        assert!(found.detail.contains("3..=4"), "{found}");
        let refused = log.append(record(1)).unwrap_err();
        assert!(
            matches!(refused, AuditError::Inconsistent { .. }),
            "{refused}"
        );
        // Nothing was written: the evidence stays.
        assert_eq!(lines(&log).len(), 2);
        assert_eq!(tampering(&log).kind, TamperKind::Truncated);

        // Cutting into the last line: its remains are not an entry, the head still says 4.
        let (_tmp, log) = log_with(4);
        let len = fs::metadata(log.log_path()).unwrap().len();
        let file = fs::OpenOptions::new()
            .write(true)
            .open(log.log_path())
            .unwrap();
        file.set_len(len - 1).unwrap();
        let found = tampering(&log);
        assert_eq!((found.kind, found.line), (TamperKind::Truncated, 4));
        assert!(log.append(record(1)).is_err());

        // Emptied, or the head removed.
        let (_tmp, log) = log_with(2);
        fs::write(log.log_path(), "").unwrap();
        assert_eq!(tampering(&log).kind, TamperKind::Truncated);
        let (_tmp, log) = log_with(2);
        fs::remove_file(log.dir().join(HEAD_FILE)).unwrap();
        assert_eq!(tampering(&log).kind, TamperKind::Head);
        fs::write(log.dir().join(HEAD_FILE), "nonsense").unwrap();
        assert_eq!(tampering(&log).kind, TamperKind::Head);
    }

    #[test]
    fn a_changed_last_entry_is_not_appended_to() {
        let (_tmp, log) = log_with(2);
        let mut all = lines(&log);
        all[1] = all[1].replace("\"result_count\":7", "\"result_count\":8");
        write_lines(&log, &all);
        assert_eq!(tampering(&log).kind, TamperKind::Hash);
        assert!(matches!(
            log.append(record(5)),
            Err(AuditError::Inconsistent { .. })
        ));
    }

    #[test]
    fn records_are_checked() {
        let (_tmp, log) = log_with(0);
        let mut bad = record(1);
        bad.action = String::new();
        assert!(matches!(
            log.append(bad),
            Err(AuditError::Invalid {
                field: "action",
                ..
            })
        ));
        let mut big = record(1);
        big.parameters = json!({"filter": "x".repeat(MAX_ENTRY_BYTES)});
        let err = log.append(big).unwrap_err();
        assert!(err.to_string().contains("the limit is 65536"), "{err}");
        assert!(verify(log.dir()).unwrap().is_valid());
    }

    #[test]
    fn a_line_that_is_not_an_entry_is_named_by_read_and_verify() {
        let (_tmp, log) = log_with(3);
        let mut all = lines(&log);
        all[1] = "not json".into();
        write_lines(&log, &all);
        let found = tampering(&log);
        assert_eq!((found.kind, found.line), (TamperKind::Unreadable, 2));
        let err = log.read(None, None, None, 10).unwrap_err();
        assert!(matches!(err, AuditError::Corrupt { line: 2, .. }), "{err}");
    }

    /// The ways to change one field of a stored entry.
    const FIELDS: [&str; 10] = [
        "seq",
        "time",
        "time_ns",
        "project_id",
        "key_id",
        "action",
        "parameters",
        "result_count",
        "prev_hash",
        "hash",
    ];

    fn changed(field: &str, value: &Value) -> Value {
        match field {
            "seq" | "time_ns" | "result_count" => json!(value.as_i64().unwrap() + 1),
            "parameters" => json!({"i": 12345}),
            "time" => json!(value.as_str().unwrap().replacen('2', "1", 1)),
            "prev_hash" | "hash" => {
                let text = value.as_str().unwrap();
                let flipped = if text.starts_with('0') { "1" } else { "0" };
                json!(format!("{flipped}{}", &text[1..]))
            }
            _ => json!(format!("{}x", value.as_str().unwrap())),
        }
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Field {
            entry: usize,
            field: usize,
        },
        Delete {
            entry: usize,
        },
        Swap {
            a: usize,
            b: usize,
        },
        Duplicate {
            entry: usize,
        },
        Truncate {
            keep: usize,
        },
        /// A correctly chained entry added at the end, by hand.
        Forge,
    }

    fn mutation(n: usize) -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (0..n, 0..FIELDS.len()).prop_map(|(entry, field)| Mutation::Field { entry, field }),
            (0..n).prop_map(|entry| Mutation::Delete { entry }),
            (0..n, 0..n)
                .prop_filter("two entries", |(a, b)| a != b)
                .prop_map(|(a, b)| Mutation::Swap {
                    a: a.min(b),
                    b: a.max(b)
                }),
            (0..n).prop_map(|entry| Mutation::Duplicate { entry }),
            (0..n).prop_map(|keep| Mutation::Truncate { keep }),
            Just(Mutation::Forge),
        ]
    }

    fn case() -> impl Strategy<Value = (usize, Mutation)> {
        (2usize..9).prop_flat_map(|n| (Just(n), mutation(n)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn every_tampering_is_found_at_its_first_bad_line((n, mutation) in case()) {
            let (_tmp, log) = log_with(n as u64);
            let mut all = lines(&log);
            prop_assert!(verify(log.dir()).unwrap().is_valid());
            // The 1-based line of the first bad entry, as the test computes it.
            let expected_line = match &mutation {
                Mutation::Field { entry, field } => {
                    let mut value: Value = serde_json::from_str(&all[*entry]).unwrap();
                    let name = FIELDS[*field];
                    value[name] = changed(name, &value[name]);
                    all[*entry] = value.to_string();
                    *entry + 1
                }
                Mutation::Delete { entry } => {
                    all.remove(*entry);
                    *entry + 1
                }
                Mutation::Swap { a, b } => {
                    all.swap(*a, *b);
                    *a + 1
                }
                Mutation::Duplicate { entry } => {
                    let copy = all[*entry].clone();
                    all.insert(*entry + 1, copy);
                    *entry + 2
                }
                Mutation::Truncate { keep } => {
                    all.truncate(*keep);
                    *keep + 1
                }
                Mutation::Forge => {
                    let last: AuditEntry = serde_json::from_str(&all[n - 1]).unwrap();
                    let mut forged = AuditEntry {
                        seq: last.seq + 1,
                        prev_hash: last.hash.clone(),
                        ..last
                    };
                    forged.hash = forged.expected_hash();
                    all.push(serde_json::to_string(&forged).unwrap());
                    n + 1
                }
            };
            write_lines(&log, &all);
            let found = tampering(&log);
            prop_assert_eq!(found.line, expected_line as u64, "{:?}: {}", mutation, found);
        }

        #[test]
        fn an_untouched_log_is_valid(n in 0u64..12) {
            let (_tmp, log) = log_with(n);
            let report = verify(log.dir()).unwrap();
            prop_assert!(report.is_valid(), "{:?}", report);
            prop_assert_eq!(report.entries, n);
        }
    }
}
