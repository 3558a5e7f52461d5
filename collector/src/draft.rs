//! Items between decoding and the WAL: rows plus what must not be stored as is.
//!
//! Decoding (`native`, `otlp`) produces drafts; `validate` checks and bounds them; `enrich` hashes
//! users and prices model calls; `assemble` turns OTLP spans into runs. Only then do they become
//! the plain rows of `vigil_schemas` that the WAL stores.

use vigil_schemas::{Outcome, RunRow, ScoreRow, SpanRow};

/// A raw end-user id as the client sent it. It is hashed by `enrich` and then dropped; its
/// `Debug` never shows the value, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RawUserId(pub String);

impl std::fmt::Debug for RawUserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawUserId(<redacted>)")
    }
}

/// Run-level fields that an OTLP span may carry (on the root, or on any child, or as resource
/// attributes). The root span's values win; children fill in what the root left empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunContext {
    pub session_id: String,
    /// Raw user id, to be hashed; wins over `user_hash` when both are set.
    pub raw_user_id: Option<RawUserId>,
    /// Already hashed id (`vigil.user.hash`), or the hash once `enrich` ran.
    pub user_hash: String,
    pub task_type: String,
    pub agent_name: String,
    pub agent_version: String,
    pub environment: String,
    pub release: String,
    /// `vigil.run.outcome`, when the span said so.
    pub outcome: Option<Outcome>,
    pub classification: Vec<String>,
    pub retention: String,
    pub audit_ref: String,
    pub tags: Vec<String>,
    /// `vigil.shadow = true` on any span of the run: a shadow run.
    pub shadow: bool,
}

impl RunContext {
    /// Fills every empty field of `self` from `other`.
    pub fn fill_from(&mut self, other: &RunContext) {
        fn fill(target: &mut String, source: &str) {
            if target.is_empty() && !source.is_empty() {
                source.clone_into(target);
            }
        }
        fill(&mut self.session_id, &other.session_id);
        if self.raw_user_id.is_none() && self.user_hash.is_empty() {
            self.raw_user_id.clone_from(&other.raw_user_id);
            self.user_hash.clone_from(&other.user_hash);
        }
        fill(&mut self.task_type, &other.task_type);
        fill(&mut self.agent_name, &other.agent_name);
        fill(&mut self.agent_version, &other.agent_version);
        fill(&mut self.environment, &other.environment);
        fill(&mut self.release, &other.release);
        if self.outcome.is_none() {
            self.outcome = other.outcome;
        }
        if self.classification.is_empty() {
            self.classification.clone_from(&other.classification);
        }
        fill(&mut self.retention, &other.retention);
        fill(&mut self.audit_ref, &other.audit_ref);
        if self.tags.is_empty() {
            self.tags.clone_from(&other.tags);
        }
        self.shadow |= other.shadow;
    }
}

/// A span decoded from OTLP: its row, the run-level fields it carried, and its index in the
/// request (for `partial_success` reporting).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DraftSpan {
    pub row: SpanRow,
    pub run: RunContext,
}

/// A run from the native API, with its raw user id not yet hashed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DraftRun {
    pub row: RunRow,
    pub raw_user_id: Option<RawUserId>,
}

/// An item that failed validation: which list, which index, which field, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub item: ItemKind,
    pub index: usize,
    pub error: vigil_schemas::limits::FieldError,
}

/// What an item of a request is (also the `kind` label of `vigil_ingested_items_total`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ItemKind {
    Run,
    Span,
    Score,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Run => "run",
            ItemKind::Span => "span",
            ItemKind::Score => "score",
        }
    }
}

/// A decoded native request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DraftNative {
    pub runs: Vec<DraftRun>,
    pub spans: Vec<SpanRow>,
    pub scores: Vec<ScoreRow>,
    pub rejected: Vec<Rejected>,
}

/// A decoded OTLP request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DraftOtlp {
    pub spans: Vec<DraftSpan>,
    pub rejected: Vec<Rejected>,
}
