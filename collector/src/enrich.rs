//! Enrichment: what the collector adds to a validated item before it is written.
//!
//! * Raw end-user ids become an HMAC-SHA256 under the server's secret, and the raw id is dropped.
//!   Nothing here logs or stores a raw id; the compliance API hashes a raw id with the same
//!   [`UserHasher`] to look a person up.
//! * Model calls without an SDK-reported cost are priced from the [`PriceCatalog`] at the time of
//!   the call; a model the catalog does not price stays unpriced (`None`), never zero.

use std::{fs, io, path::Path};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use vigil_schemas::{
    RunRow, SpanRow,
    prices::{PriceCatalog, TokenUsage},
};

use crate::draft::{DraftRun, RunContext};

type HmacSha256 = Hmac<Sha256>;

/// Length of a generated server secret, in bytes.
pub const SECRET_BYTES: usize = 32;

/// `cost_source` of a cost computed from the price catalog.
pub const COST_SOURCE_CATALOG: &str = "catalog";

/// Hashes raw end-user ids: lowercase hex of HMAC-SHA256 keyed with the server secret.
#[derive(Clone)]
pub struct UserHasher {
    mac: HmacSha256,
}

impl std::fmt::Debug for UserHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserHasher(<secret>)")
    }
}

impl UserHasher {
    pub fn new(secret: &[u8]) -> Self {
        let mac = match HmacSha256::new_from_slice(secret) {
            Ok(mac) => mac,
            // HMAC hashes keys longer than a block and pads shorter ones: every length is valid.
            Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
        };
        UserHasher { mac }
    }

    /// The hash of one raw user id, as 64 lowercase hexadecimal characters.
    pub fn hash(&self, raw: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(raw.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Reads the secret (hexadecimal, at least 32 bytes) from `path`, or, when the file does not
    /// exist, generates 32 random bytes and writes them there, readable by the owner only.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match fs::read_to_string(path) {
            Ok(text) => {
                let secret = hex::decode(text.trim()).map_err(|_| invalid_secret(path))?;
                if secret.len() < SECRET_BYTES {
                    return Err(invalid_secret(path));
                }
                warn_if_readable_by_others(path);
                Ok(UserHasher::new(&secret))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut secret = [0u8; SECRET_BYTES];
                rand::rng().fill_bytes(&mut secret);
                if let Some(dir) = path.parent()
                    && !dir.as_os_str().is_empty()
                {
                    fs::create_dir_all(dir)?;
                }
                let mut text = hex::encode(secret);
                text.push('\n');
                vigil_access::files::write_private_file(path, text.as_bytes())?;
                tracing::info!(path = %path.display(), "created the user-hash secret");
                Ok(UserHasher::new(&secret))
            }
            Err(e) => Err(e),
        }
    }
}

fn invalid_secret(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: the user-hash secret must be at least {} hexadecimal characters ({SECRET_BYTES} bytes)",
            path.display(),
            SECRET_BYTES * 2
        ),
    )
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the user-hash secret is readable by other users; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Hashes users and prices model calls.
#[derive(Debug, Clone)]
pub struct Enricher {
    hasher: UserHasher,
    catalog: PriceCatalog,
}

impl Enricher {
    pub fn new(hasher: UserHasher, catalog: PriceCatalog) -> Self {
        Enricher { hasher, catalog }
    }

    pub fn hasher(&self) -> &UserHasher {
        &self.hasher
    }

    pub fn catalog(&self) -> &PriceCatalog {
        &self.catalog
    }

    /// Prices a span that carries a model and no SDK-reported cost, at its start time; fills the
    /// provider from the catalog when the SDK did not name one. A cost the SDK reported wins; a
    /// model the catalog cannot price is left unpriced (`cost_nanos = None`, empty source).
    pub fn enrich_span(&self, row: &mut SpanRow) {
        if row.model.is_empty() {
            return;
        }
        if row.provider.is_empty()
            && let Some(provider) = self.catalog.provider_of(&row.model)
        {
            provider.clone_into(&mut row.provider);
        }
        if row.cost_nanos.is_some() {
            return;
        }
        let usage = TokenUsage {
            input: row.input_tokens,
            output: row.output_tokens,
            cached_input: row.cached_input_tokens,
            cache_write: row.cache_write_tokens,
            reasoning: row.reasoning_tokens,
        };
        match self
            .catalog
            .cost_nanos(&row.model, row.start_time_ns, &usage)
        {
            Some(cost) => {
                row.cost_nanos = Some(cost);
                COST_SOURCE_CATALOG.clone_into(&mut row.cost_source);
            }
            None => row.cost_source.clear(),
        }
    }

    /// Replaces a raw user id by its hash; the raw id is dropped.
    pub fn enrich_context(&self, ctx: &mut RunContext) {
        if let Some(raw) = ctx.raw_user_id.take() {
            ctx.user_hash = self.hasher.hash(&raw.0);
        }
    }

    /// The row of a native run, its raw user id (if any) replaced by the hash.
    pub fn enrich_run(&self, draft: DraftRun) -> RunRow {
        let DraftRun {
            mut row,
            raw_user_id,
        } = draft;
        if let Some(raw) = raw_user_id {
            row.user_hash = self.hasher.hash(&raw.0);
        }
        row
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use vigil_schemas::time::parse_rfc3339;

    use super::*;
    use crate::draft::RawUserId;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let hasher = UserHasher::new(b"Jefe");
        assert_eq!(
            hasher.hash("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_1() {
        // Key = 0x0b repeated 20 times, data = "Hi There".
        let hasher = UserHasher::new(&[0x0b; 20]);
        assert_eq!(
            hasher.hash("Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn the_hasher_never_shows_its_secret() {
        let hasher = UserHasher::new(b"super-secret-key");
        assert!(!format!("{hasher:?}").contains("super"));
    }

    #[test]
    fn the_secret_is_created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("user.key");
        let first = UserHasher::load_or_create(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = UserHasher::load_or_create(&path).unwrap();
        assert_eq!(first.hash("alice"), second.hash("alice"));
        // Independently: the file's secret keys the HMAC.
        let secret = hex::decode(text.trim()).unwrap();
        assert_eq!(UserHasher::new(&secret).hash("alice"), first.hash("alice"));
        // Another directory gets another secret.
        let other = UserHasher::load_or_create(&dir.path().join("other.key")).unwrap();
        assert_ne!(other.hash("alice"), first.hash("alice"));
    }

    #[test]
    fn a_bad_secret_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.key");
        fs::write(&path, "not hex").unwrap();
        let e = UserHasher::load_or_create(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        fs::write(&path, "abcd").unwrap();
        assert!(UserHasher::load_or_create(&path).is_err());
    }

    fn enricher() -> Enricher {
        Enricher::new(UserHasher::new(b"k"), PriceCatalog::builtin().unwrap())
    }

    fn model_span(model: &str) -> SpanRow {
        SpanRow {
            model: model.into(),
            start_time_ns: parse_rfc3339("2026-01-01").unwrap(),
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn catalog_prices_model_calls_and_fills_the_provider() {
        let e = enricher();
        let mut row = model_span("gpt-4o");
        e.enrich_span(&mut row);
        // gpt-4o since 2024-10-01: $2.50 in + $10 out per million tokens.
        assert_eq!(row.cost_nanos, Some(12_500_000_000));
        assert_eq!(row.cost_source, "catalog");
        assert_eq!(row.provider, "openai");
    }

    #[test]
    fn sdk_cost_wins_over_the_catalog() {
        let e = enricher();
        let mut row = model_span("gpt-4o");
        row.cost_nanos = Some(42);
        row.cost_source = "sdk".into();
        row.provider = "azure".into();
        e.enrich_span(&mut row);
        assert_eq!(row.cost_nanos, Some(42));
        assert_eq!(row.cost_source, "sdk");
        assert_eq!(row.provider, "azure");
    }

    #[test]
    fn unknown_models_stay_unpriced() {
        let e = enricher();
        let mut row = model_span("my-own-model-9000");
        e.enrich_span(&mut row);
        assert_eq!(row.cost_nanos, None);
        assert_eq!(row.cost_source, "");
        assert_eq!(row.provider, "");

        let mut no_model = SpanRow::default();
        e.enrich_span(&mut no_model);
        assert_eq!(no_model.cost_nanos, None);
    }

    #[test]
    fn raw_user_ids_are_hashed_and_dropped() {
        let e = enricher();
        let expected = UserHasher::new(b"k").hash("alice@example.com");
        let mut ctx = RunContext {
            raw_user_id: Some(RawUserId("alice@example.com".into())),
            user_hash: "sdk-hash".into(),
            ..Default::default()
        };
        e.enrich_context(&mut ctx);
        assert_eq!(ctx.raw_user_id, None);
        assert_eq!(ctx.user_hash, expected);

        let mut pre_hashed = RunContext {
            user_hash: "sdk-hash".into(),
            ..Default::default()
        };
        e.enrich_context(&mut pre_hashed);
        assert_eq!(pre_hashed.user_hash, "sdk-hash");

        let run = e.enrich_run(DraftRun {
            row: RunRow {
                user_hash: "ignored".into(),
                ..Default::default()
            },
            raw_user_id: Some(RawUserId("alice@example.com".into())),
        });
        assert_eq!(run.user_hash, expected);
        assert!(!format!("{run:?}").contains("alice"));

        let kept = e.enrich_run(DraftRun {
            row: RunRow {
                user_hash: "given".into(),
                ..Default::default()
            },
            raw_user_id: None,
        });
        assert_eq!(kept.user_hash, "given");
    }
}
