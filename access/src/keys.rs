//! API keys: one project each, with roles; stored hashed in `<data dir>/keys.json`, or, when the
//! store is ClickHouse, in the control table every node shares (`vigil-control`), so that a key
//! created or revoked on one node holds on all of them.
//!
//! A key is shown once, at creation, as `vk_<id>_<secret>` (the bearer token). OTLP clients that
//! can only do Basic auth send `base64(<key id>:<secret>)`, where the key id is `vk_<id>`. Secrets
//! are 192 random bits, so a plain SHA-256 of the secret is a safe verifier (as for GitHub tokens);
//! comparisons are constant-time. Every process that authenticates reloads the file when it
//! changes, so `vigil keys create` works while the server runs; changes are made under an
//! exclusive lock on `<file>.lock`, so the CLI and the server (`POST /api/v1/keys`) never lose
//! each other's changes. Shared keys are read from memory and re-read by [`KeyStore::refresh`],
//! which the server calls about once a second; a change is written to the table before it is
//! acknowledged, as a new version of the key's record.
//!
//! A key may carry its own REST rate limit ([`RateLimit`]); keys without one get the server's
//! default.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::SystemTime,
};

use base64::Engine;
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use vigil_control::{ControlError, ControlTable, Fingerprint, Kind};
use vigil_schemas::time::{now_ns, rfc3339};

use crate::files::write_private_file;

const TOKEN_PREFIX: &str = "vk_";

/// What a key may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Send traces and scores; nothing else.
    Ingest,
    /// Read runs, sessions and metrics.
    Read,
    /// Compliance queries and unredacted content.
    Audit,
    /// Everything, including key management and erasure.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Ingest, Role::Read, Role::Audit, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Audit => "audit",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text.trim())
    }

    /// Role names, as the CLI (`--role`) and the API (`roles`) take them; at least one.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<BTreeSet<Role>, KeyError> {
        let mut roles = BTreeSet::new();
        for name in names {
            let role = Role::parse(name.as_ref())
                .ok_or_else(|| KeyError::UnknownRole(name.as_ref().to_string()))?;
            roles.insert(role);
        }
        if roles.is_empty() {
            return Err(KeyError::NoRoles);
        }
        Ok(roles)
    }
}

/// A token bucket: refilled at `requests_per_second`, holding at most `burst` requests. Counts
/// every REST request of the key (not trace export).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// From one a day (1/86400) to 1,000,000.
    #[schema(minimum = 0.000011574074074074073, maximum = 1000000)]
    pub requests_per_second: f64,
    #[schema(minimum = 1, maximum = 1000000)]
    pub burst: u32,
}

impl RateLimit {
    /// The slowest refill accepted: one request a day.
    pub const MIN_REQUESTS_PER_SECOND: f64 = 1.0 / 86_400.0;
    pub const MAX_REQUESTS_PER_SECOND: f64 = 1_000_000.0;
    pub const MAX_BURST: u32 = 1_000_000;

    /// Checks the bounds; the error names the field (`requests_per_second`, `burst`) and limit.
    pub fn validate(&self) -> Result<(), KeyError> {
        let rps = self.requests_per_second;
        if !(Self::MIN_REQUESTS_PER_SECOND..=Self::MAX_REQUESTS_PER_SECOND).contains(&rps) {
            return Err(KeyError::BadRateLimit {
                field: "requests_per_second",
                message: format!(
                    "{rps} is outside {} (one a day) ..= {}",
                    Self::MIN_REQUESTS_PER_SECOND,
                    Self::MAX_REQUESTS_PER_SECOND
                ),
            });
        }
        if !(1..=Self::MAX_BURST).contains(&self.burst) {
            return Err(KeyError::BadRateLimit {
                field: "burst",
                message: format!("{} is outside 1..={}", self.burst, Self::MAX_BURST),
            });
        }
        Ok(())
    }
}

/// What a new key is made of.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub project_id: String,
    pub roles: BTreeSet<Role>,
    pub description: String,
    /// `None`: the server's default.
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("keys file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keys file {path}: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("shared keys: {0}")]
    Shared(#[from] ControlError),
    #[error("shared key {id}: {source}")]
    SharedCorrupt {
        id: String,
        source: serde_json::Error,
    },
    #[error("no key with id {0:?}")]
    NotFound(String),
    #[error("a key needs at least one role")]
    NoRoles,
    #[error("project id {0:?} must be 1-64 characters of [A-Za-z0-9_.-]")]
    BadProject(String),
    #[error("unknown role {0:?}: expected one of ingest, read, audit, admin")]
    UnknownRole(String),
    #[error("description: {0} bytes, the limit is {MAX_DESCRIPTION_BYTES}")]
    DescriptionTooLong(usize),
    #[error("rate_limit.{field}: {message}")]
    BadRateLimit {
        field: &'static str,
        message: String,
    },
}

impl KeyError {
    /// The request field at fault, for errors that are the caller's.
    pub fn field(&self) -> Option<String> {
        match self {
            KeyError::NoRoles | KeyError::UnknownRole(_) => Some("roles".into()),
            KeyError::BadProject(_) => Some("project_id".into()),
            KeyError::DescriptionTooLong(_) => Some("description".into()),
            KeyError::BadRateLimit { field, .. } => Some(format!("rate_limit.{field}")),
            KeyError::Io { .. }
            | KeyError::Corrupt { .. }
            | KeyError::Shared(_)
            | KeyError::SharedCorrupt { .. }
            | KeyError::NotFound(_) => None,
        }
    }
}

/// The longest key description.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;

/// A stored key: everything but the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// `vk_<16 hex>`: public, safe to log.
    pub id: String,
    pub project_id: String,
    pub roles: BTreeSet<Role>,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
    pub description: String,
    pub created_at_ns: i64,
    pub revoked_at_ns: Option<i64>,
    /// This key's REST rate limit; `None`: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

impl KeyRecord {
    pub fn principal(&self) -> Principal {
        Principal {
            key_id: self.id.clone(),
            project_id: self.project_id.clone(),
            roles: self.roles.clone(),
        }
    }

    /// The key as the API shows it and the audit log records it: no secret, no hash.
    pub fn public_view(&self) -> KeyView {
        KeyView {
            id: self.id.clone(),
            project_id: self.project_id.clone(),
            roles: self.roles.iter().copied().collect(),
            description: self.description.clone(),
            created_at: rfc3339(self.created_at_ns),
            revoked_at: self.revoked_at_ns.map(rfc3339),
            rate_limit: self.rate_limit,
        }
    }
}

/// An API key as the API shows it: never the secret or its hash.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ApiKey)]
pub struct KeyView {
    /// `vk_<16 hex>`: public, safe to log.
    pub id: String,
    pub project_id: String,
    pub roles: Vec<Role>,
    pub description: String,
    /// When the key was created (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it was revoked; null while it works.
    #[schema(format = DateTime, required = true)]
    pub revoked_at: Option<String>,
    /// The key's own limit; null: the server's default.
    #[schema(required = true)]
    pub rate_limit: Option<RateLimit>,
}

/// Who is calling: the outcome of a successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub project_id: String,
    pub roles: BTreeSet<Role>,
}

impl Principal {
    /// `admin` holds every role.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }
}

/// A newly created key, with its secret: shown once.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub record: KeyRecord,
    /// The full bearer token, `vk_<id>_<secret>`.
    pub token: String,
    pub secret: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeysFile {
    keys: Vec<KeyRecord>,
}

/// What was read last.
#[derive(Default)]
struct Loaded {
    /// The file's modification time, or the shared records' fingerprint, when read.
    seen: Option<Seen>,
    keys: Vec<KeyRecord>,
}

#[derive(PartialEq)]
enum Seen {
    File(SystemTime),
    Shared(Fingerprint),
}

/// Where the keys are kept.
enum Backing {
    /// `keys.json` in the data directory.
    File(PathBuf),
    /// The control table every node shares, mirrored to `keys.json` in the data directory, so
    /// that a node restarted while ClickHouse is down still knows the keys it last saw.
    Shared {
        table: Box<ControlTable>,
        mirror: PathBuf,
        /// Whether the mirror's keys were imported (at the first read of the table).
        imported: AtomicBool,
    },
}

/// The key registry.
pub struct KeyStore {
    backing: Backing,
    loaded: Mutex<Loaded>,
}

impl KeyStore {
    /// Opens (or starts) the registry in the file at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<KeyStore, KeyError> {
        let store = KeyStore {
            backing: Backing::File(path.into()),
            loaded: Mutex::default(),
        };
        store.refresh_file()?;
        Ok(store)
    }

    /// The registry every node shares, in `table`, with the keys last seen (`mirror`, the
    /// data directory's `keys.json`) until [`Self::refresh`] reads the table.
    pub fn shared(table: ControlTable, mirror: PathBuf) -> Result<KeyStore, KeyError> {
        let keys = read_file(&mirror)?.keys;
        Ok(KeyStore {
            backing: Backing::Shared {
                table: Box::new(table),
                mirror,
                imported: AtomicBool::new(false),
            },
            loaded: Mutex::new(Loaded { seen: None, keys }),
        })
    }

    /// Where the keys are, for messages: the file, or the shared table.
    pub fn location(&self) -> String {
        match &self.backing {
            Backing::File(path) => path.display().to_string(),
            Backing::Shared { .. } => "the shared control table in ClickHouse".into(),
        }
    }

    /// Whether these are the keys every node shares (in ClickHouse).
    pub fn is_shared(&self) -> bool {
        matches!(self.backing, Backing::Shared { .. })
    }

    /// The keys as last read, without reading again.
    pub fn list_known(&self) -> Vec<KeyRecord> {
        self.loaded.lock().keys.clone()
    }

    /// Copies the keys of the mirror (`keys.json`) that the shared table does not hold, once,
    /// before the table is first read: a node that kept its keys in its data directory before
    /// they were shared brings them along (same ids, secrets and revocations).
    async fn import_mirror(&self, table: &ControlTable, mirror: &Path) -> Result<(), KeyError> {
        let mut imported = 0;
        for key in read_file(mirror)?.keys {
            if table.get(Kind::Key, &key.id).await?.is_none() {
                table
                    .put(Kind::Key, &key.id, None, Some(&encode(&key)?))
                    .await?;
                imported += 1;
            }
        }
        if imported > 0 {
            tracing::info!(
                keys = imported,
                "imported this node's keys into the shared keys"
            );
        }
        Ok(())
    }

    /// All keys, revoked ones included.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        self.refresh().await?;
        Ok(self.loaded.lock().keys.clone())
    }

    /// Creates a key with the server's default rate limit; see [`KeyStore::create_key`].
    pub async fn create(
        &self,
        project_id: &str,
        roles: BTreeSet<Role>,
        description: &str,
    ) -> Result<NewKey, KeyError> {
        self.create_key(KeySpec {
            project_id: project_id.to_string(),
            roles,
            description: description.to_string(),
            rate_limit: None,
        })
        .await
    }

    /// Creates a key and saves it; the returned secret is not stored anywhere. The one way keys
    /// are made, for the CLI and the API alike.
    pub async fn create_key(&self, spec: KeySpec) -> Result<NewKey, KeyError> {
        let KeySpec {
            project_id,
            roles,
            description,
            rate_limit,
        } = spec;
        let project_id = project_id.as_str();
        if roles.is_empty() {
            return Err(KeyError::NoRoles);
        }
        if description.len() > MAX_DESCRIPTION_BYTES {
            return Err(KeyError::DescriptionTooLong(description.len()));
        }
        if let Some(limit) = &rate_limit {
            limit.validate()?;
        }
        if project_id.is_empty()
            || project_id.len() > 64
            || !project_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(KeyError::BadProject(project_id.to_string()));
        }
        let mut id_bytes = [0u8; 8];
        let mut secret_bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut id_bytes);
        rand::rng().fill_bytes(&mut secret_bytes);
        let id = format!("{TOKEN_PREFIX}{}", hex::encode(id_bytes));
        let secret = hex::encode(secret_bytes);
        let record = KeyRecord {
            id: id.clone(),
            project_id: project_id.to_string(),
            roles,
            secret_sha256: sha256_hex(&secret),
            description,
            created_at_ns: now_ns(),
            revoked_at_ns: None,
            rate_limit,
        };
        match &self.backing {
            Backing::File(path) => self.update_file(path, |keys| {
                keys.push(record.clone());
                Ok(())
            })?,
            Backing::Shared { table, .. } => {
                table
                    .put(Kind::Key, &record.id, None, Some(&encode(&record)?))
                    .await?;
                self.loaded.lock().keys.push(record.clone());
            }
        }
        Ok(NewKey {
            token: format!("{id}_{secret}"),
            record,
            secret,
        })
    }

    /// Revokes a key; it stops working at the next authentication. Revoking a revoked key keeps
    /// its first revocation time.
    pub async fn revoke(&self, id: &str) -> Result<KeyRecord, KeyError> {
        self.revoke_where(id, |_| true).await
    }

    /// Revokes a key of `project_id`; a key of another project is [`KeyError::NotFound`].
    pub async fn revoke_in_project(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<KeyRecord, KeyError> {
        self.revoke_where(id, |k| k.project_id == project_id).await
    }

    async fn revoke_where(
        &self,
        id: &str,
        allowed: impl Fn(&KeyRecord) -> bool,
    ) -> Result<KeyRecord, KeyError> {
        let not_found = || KeyError::NotFound(id.to_string());
        match &self.backing {
            Backing::File(path) => {
                let mut revoked = None;
                self.update_file(path, |keys| {
                    let key = keys
                        .iter_mut()
                        .find(|k| k.id == id && allowed(k))
                        .ok_or_else(not_found)?;
                    key.revoked_at_ns.get_or_insert_with(now_ns);
                    revoked = Some(key.clone());
                    Ok(())
                })?;
                revoked.ok_or_else(not_found)
            }
            Backing::Shared { table, .. } => {
                // The newest version, read from the table rather than memory, so that the
                // revocation supersedes it whatever this node has seen.
                let record = table.get(Kind::Key, id).await?.ok_or_else(not_found)?;
                let mut key = decode(id, record.body.as_deref().ok_or_else(not_found)?)?;
                if !allowed(&key) {
                    return Err(not_found());
                }
                if key.revoked_at_ns.is_none() {
                    key.revoked_at_ns = Some(now_ns());
                    table
                        .put(Kind::Key, id, Some(record.version), Some(&encode(&key)?))
                        .await?;
                }
                let mut loaded = self.loaded.lock();
                match loaded.keys.iter_mut().find(|k| k.id == id) {
                    Some(known) => *known = key.clone(),
                    None => loaded.keys.push(key.clone()),
                }
                Ok(key)
            }
        }
    }

    /// Checks a bearer token (`vk_<id>_<secret>`).
    pub fn authenticate_bearer(&self, token: &str) -> Option<Principal> {
        self.bearer_key(token).map(|k| k.principal())
    }

    /// Checks a Basic credential: `base64(<key id>:<secret>)`.
    pub fn authenticate_basic(&self, encoded: &str) -> Option<Principal> {
        self.basic_key(encoded).map(|k| k.principal())
    }

    /// Checks an `Authorization` header value, Bearer or Basic.
    pub fn authenticate_header(&self, value: &str) -> Option<Principal> {
        self.authenticate_header_key(value).map(|k| k.principal())
    }

    /// [`KeyStore::authenticate_header`], answering with the whole key (its rate limit too).
    pub fn authenticate_header_key(&self, value: &str) -> Option<KeyRecord> {
        let (scheme, credential) = value.trim().split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            self.bearer_key(credential)
        } else if scheme.eq_ignore_ascii_case("basic") {
            self.basic_key(credential)
        } else {
            None
        }
    }

    fn bearer_key(&self, token: &str) -> Option<KeyRecord> {
        let token = token.trim();
        let rest = token.strip_prefix(TOKEN_PREFIX)?;
        let (id_hex, secret) = rest.split_once('_')?;
        self.authenticate(&format!("{TOKEN_PREFIX}{id_hex}"), secret)
    }

    fn basic_key(&self, encoded: &str) -> Option<KeyRecord> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        self.authenticate(id, secret)
    }

    fn authenticate(&self, id: &str, secret: &str) -> Option<KeyRecord> {
        // A failed refresh keeps the keys loaded last: an unreadable file must not lock all out.
        // Shared keys are as the last `refresh` read them.
        let _ = self.refresh_file();
        let loaded = self.loaded.lock();
        let key = loaded
            .keys
            .iter()
            .find(|k| k.id == id && k.revoked_at_ns.is_none())?;
        constant_time_eq(key.secret_sha256.as_bytes(), sha256_hex(secret).as_bytes())
            .then(|| key.clone())
    }

    /// Reads the keys again if they changed since they were read: the file by its modification
    /// time, the shared table by its fingerprint (one small query).
    pub async fn refresh(&self) -> Result<(), KeyError> {
        let (table, mirror, imported) = match &self.backing {
            Backing::File(_) => return self.refresh_file(),
            Backing::Shared {
                table,
                mirror,
                imported,
            } => (table, mirror, imported),
        };
        if !imported.load(Ordering::Acquire) {
            match self.import_mirror(table, mirror).await {
                Ok(()) => {}
                // The table did not answer: the next refresh tries again.
                Err(e @ (KeyError::Shared(_) | KeyError::SharedCorrupt { .. })) => return Err(e),
                // A mirror that cannot be read brings nothing; the table's keys are the truth.
                Err(e) => {
                    tracing::warn!(error = %e, "the keys of the data directory were not imported")
                }
            }
            imported.store(true, Ordering::Release);
        }
        let seen = Some(Seen::Shared(table.fingerprint(Kind::Key).await?));
        if self.loaded.lock().seen == seen {
            return Ok(());
        }
        let keys = table
            .load(Kind::Key)
            .await?
            .into_iter()
            .filter_map(|record| Some(decode(&record.key, &record.body?)))
            .collect::<Result<Vec<_>, _>>()?;
        // The mirror only serves a restart while ClickHouse is down: failing to write it (a
        // full disk) must not keep this node from the table's keys.
        if let Err(e) = write_file(mirror, &KeysFile { keys: keys.clone() }) {
            tracing::warn!(error = %e, "the mirror of the shared keys was not written");
        }
        *self.loaded.lock() = Loaded { seen, keys };
        Ok(())
    }

    /// [`Self::refresh`] of the file (nothing for shared keys).
    fn refresh_file(&self) -> Result<(), KeyError> {
        let Backing::File(path) = &self.backing else {
            return Ok(());
        };
        let modified = match fs::metadata(path) {
            Ok(meta) => meta.modified().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(KeyError::Io {
                    path: path.clone(),
                    source,
                });
            }
        };
        let seen = modified.map(Seen::File);
        let mut loaded = self.loaded.lock();
        if seen.is_some() && loaded.seen == seen {
            return Ok(());
        }
        loaded.keys = read_file(path)?.keys;
        loaded.seen = seen;
        Ok(())
    }

    /// Read-modify-write of the file, replaced atomically (temp file, fsync, rename), under an
    /// exclusive lock on `<file>.lock` so that two processes never lose each other's change.
    fn update_file(
        &self,
        path: &Path,
        change: impl FnOnce(&mut Vec<KeyRecord>) -> Result<(), KeyError>,
    ) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let lock_path = path.with_extension("lock");
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let lock = options.open(&lock_path).map_err(io)?;
        lock.lock().map_err(io)?; // released when `lock` is closed
        let mut file = read_file(path)?;
        change(&mut file.keys)?;
        write_file(path, &file)?;
        let mut loaded = self.loaded.lock();
        loaded.keys = file.keys;
        loaded.seen = fs::metadata(path)
            .ok()
            .and_then(|m| m.modified().ok())
            .map(Seen::File);
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<KeysFile, KeyError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| KeyError::Corrupt {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeysFile::default()),
        Err(source) => Err(KeyError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces the file atomically (temp file, fsync, rename), readable by its owner only.
fn write_file(path: &Path, file: &KeysFile) -> Result<(), KeyError> {
    let json = serde_json::to_vec_pretty(file).map_err(|source| KeyError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    write_private_file(path, &json).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A key as a shared record's body.
fn encode(key: &KeyRecord) -> Result<String, KeyError> {
    serde_json::to_string(key).map_err(|source| KeyError::SharedCorrupt {
        id: key.id.clone(),
        source,
    })
}

fn decode(id: &str, body: &str) -> Result<KeyRecord, KeyError> {
    serde_json::from_str(body).map_err(|source| KeyError::SharedCorrupt {
        id: id.to_string(),
        source,
    })
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn roles(list: &[Role]) -> BTreeSet<Role> {
        list.iter().copied().collect()
    }

    #[tokio::test]
    async fn create_authenticate_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path().join("keys.json")).unwrap();
        let key = store
            .create("default", roles(&[Role::Ingest]), "sdk")
            .await
            .unwrap();
        let p = store.authenticate_bearer(&key.token).unwrap();
        assert_eq!(p.project_id, "default");
        assert!(p.has(Role::Ingest) && !p.has(Role::Read));

        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", key.record.id, key.secret));
        assert!(
            store
                .authenticate_header(&format!("Basic {basic}"))
                .is_some()
        );
        assert!(
            store
                .authenticate_bearer(&format!("{}x", key.token))
                .is_none()
        );

        // A second handle on the same file (another process) sees the revocation.
        let other = KeyStore::open(dir.path().join("keys.json")).unwrap();
        other.revoke(&key.record.id).await.unwrap();
        assert!(other.authenticate_bearer(&key.token).is_none());
        let raw = fs::read_to_string(dir.path().join("keys.json")).unwrap();
        assert!(!raw.contains(&key.secret), "the secret must not be stored");
    }

    #[tokio::test]
    async fn keys_carry_rate_limits_and_revocation_is_per_project() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path().join("keys.json")).unwrap();
        let limit = RateLimit {
            requests_per_second: 0.5,
            burst: 3,
        };
        let key = store
            .create_key(KeySpec {
                project_id: "a".into(),
                roles: roles(&[Role::Read]),
                description: "dashboard".into(),
                rate_limit: Some(limit),
            })
            .await
            .unwrap();
        let found = store
            .authenticate_header_key(&format!("Bearer {}", key.token))
            .unwrap();
        assert_eq!(found.rate_limit, Some(limit));
        assert_eq!(found.principal().project_id, "a");

        let view = serde_json::to_value(key.record.public_view()).unwrap();
        let text = view.to_string();
        assert!(!text.contains(&key.secret) && !text.contains(&key.record.secret_sha256));
        assert_eq!(view["roles"], serde_json::json!(["read"]));
        assert_eq!(view["rate_limit"]["burst"], 3);

        assert!(matches!(
            store.revoke_in_project("b", &key.record.id).await,
            Err(KeyError::NotFound(_))
        ));
        assert!(store.authenticate_bearer(&key.token).is_some());
        let revoked = store.revoke_in_project("a", &key.record.id).await.unwrap();
        assert!(revoked.revoked_at_ns.is_some());
        assert!(store.authenticate_bearer(&key.token).is_none());
    }

    #[test]
    fn rate_limits_and_roles_are_checked() {
        let bad = |rps: f64, burst: u32| {
            RateLimit {
                requests_per_second: rps,
                burst,
            }
            .validate()
            .unwrap_err()
        };
        assert_eq!(
            bad(0.0, 1).field().as_deref(),
            Some("rate_limit.requests_per_second")
        );
        assert_eq!(
            bad(f64::NAN, 1).field().as_deref(),
            Some("rate_limit.requests_per_second")
        );
        let err = bad(1.0, 0);
        assert_eq!(err.field().as_deref(), Some("rate_limit.burst"));
        assert!(err.to_string().contains("1..=1000000"), "{err}");
        assert_eq!(
            Role::parse_list(&["read", "audit"]).unwrap(),
            roles(&[Role::Read, Role::Audit])
        );
        assert!(matches!(
            Role::parse_list(&["reader"]),
            Err(KeyError::UnknownRole(_))
        ));
        assert!(matches!(
            Role::parse_list::<&str>(&[]),
            Err(KeyError::NoRoles)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creations_from_two_handles_all_survive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let store = KeyStore::open(&path).unwrap();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        store.create("p", roles(&[Role::Read]), "").await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let all = KeyStore::open(&path).unwrap().list().await.unwrap();
        assert_eq!(all.len(), 20);
    }

    #[tokio::test]
    async fn refuses_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path().join("keys.json")).unwrap();
        assert!(matches!(
            store.create("p", BTreeSet::new(), "").await,
            Err(KeyError::NoRoles)
        ));
        assert!(matches!(
            store.create("no spaces", roles(&[Role::Read]), "").await,
            Err(KeyError::BadProject(_))
        ));
        assert!(store.authenticate_header("Token abc").is_none());
        assert!(store.authenticate_header("Basic !!!").is_none());
    }
}
