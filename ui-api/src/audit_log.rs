//! The audit log over HTTP: [`record`], which handlers call after an audited action, and
//! `GET /api/v1/audit/log` (role `audit`), the caller's project's entries.
//!
//! What is recorded: actions that took effect (a change made, a compliance answer given), never
//! refusals. A change is recorded after it is made; if the record cannot be written the client
//! gets a 500 and the server log says the change is unaudited. An answer (compliance queries,
//! reading this log) is recorded before it is sent: no record, no answer.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use vigil_access::{
    audit::{ALL_PROJECTS, AUDIT_LOG_READ, AuditEntry, AuditError, AuditRecord, Tampering, verify},
    keys::{Principal, Role},
    shared_audit::SharedAuditError,
};
use vigil_schemas::time::parse_rfc3339;

use crate::{
    AppState,
    auth::Caller,
    error::{ApiError, BadRequest, Internal, Unavailable},
    params::QueryParams,
};

/// Entries per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 1000;

/// Appends `action` by `caller` to the audit log, off the async threads (it fsyncs).
pub(crate) async fn record(
    state: &AppState,
    caller: &Principal,
    action: &str,
    parameters: Value,
    result_count: u64,
) -> Result<AuditEntry, ApiError> {
    let audit = state.audit.clone();
    let record = AuditRecord {
        project_id: caller.project_id.clone(),
        key_id: caller.key_id.clone(),
        action: action.to_string(),
        parameters,
        result_count,
    };
    tokio::task::spawn_blocking(move || audit.append(record))
        .await
        .map_err(|e| ApiError::internal(format!("audit append did not finish: {e}")))?
        .map_err(|e| {
            tracing::error!(action, key_id = %caller.key_id, error = %e, "audit record not written");
            audit_error(e)
        })
}

fn audit_error(e: AuditError) -> ApiError {
    match e {
        AuditError::Invalid { field, message } => ApiError::bad_request(field, message),
        other => ApiError::internal(format!("audit log: {other}")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Entries at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Entries strictly before this instant (RFC 3339); after `from`.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Entries per page.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of the audit log.
#[derive(Serialize, ToSchema)]
pub struct AuditLogPage {
    entries: Vec<AuditEntry>,
    /// Pass it as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

fn time_param(field: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            parse_rfc3339(v).ok_or_else(|| {
                ApiError::bad_request(field, format!("{v:?} is not an RFC 3339 time"))
            })
        })
        .transpose()
}

/// What a check of one chain found.
#[derive(Serialize, ToSchema)]
pub struct ChainCheck {
    /// Whether every entry checks out, from the first to the head.
    valid: bool,
    /// Entries checked and found good (all of them when valid).
    entries: u64,
    /// Seq of the last good entry; 0 when there is none.
    last_seq: u64,
    /// Hash of the last good entry: keep it to compare later.
    last_hash: String,
    /// The first problem; null when valid.
    #[schema(required = true)]
    tampering: Option<Tampering>,
}

/// What a check of the whole chain found.
#[derive(Serialize, ToSchema)]
pub struct AuditVerification {
    /// This node's log, from its files (`valid` is false too when a shipped chain is not).
    #[serde(flatten)]
    check: ChainCheck,
    /// On the ClickHouse store: every node's chain as shipped to the store (this node's among
    /// them), each checked from its first entry. Absent on the embedded store.
    #[serde(skip_serializing_if = "Option::is_none")]
    chains: Option<Vec<ShippedChain>>,
    /// On the ClickHouse store: this node's log against the copy it shipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    own_chain: Option<OwnChainView>,
}

/// A node's chain as shipped to ClickHouse, checked.
#[derive(Serialize, ToSchema)]
pub struct ShippedChain {
    /// The chain's name: the node's, and a random suffix given once per data directory.
    chain: String,
    #[serde(flatten)]
    check: ChainCheck,
}

/// This node's log against the copy of its chain in ClickHouse.
#[derive(Serialize, ToSchema)]
pub struct OwnChainView {
    chain: String,
    /// Entries in ClickHouse, and in the node's log (which may hold some not shipped yet).
    shipped: u64,
    local: u64,
    /// Where the log no longer matches the copy (changed after it was shipped, or its end
    /// removed); null when it holds every shipped entry as shipped.
    #[schema(required = true)]
    differs: Option<Tampering>,
}

/// Verify the audit log's chain
///
/// Checks every entry of the log (of every project: the chain runs through all of them) from
/// the first to the head, as `vigil audit verify` does, and says where the first problem is. On
/// the ClickHouse store it also checks every node's chain as shipped to the store, and this
/// node's log against its copy. It reveals no entry's content, and is not itself recorded.
#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "access",
    operation_id = "verifyAuditLog",
    security(("bearerAuth" = ["audit"])),
    responses(
        (status = 200, body = AuditVerification, description = "What the check found."),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn verify_chain(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AuditVerification>, ApiError> {
    caller.require(Role::Audit)?;
    let dir = state.audit.dir().to_path_buf();
    let report = tokio::task::spawn_blocking(move || verify(&dir))
        .await
        .map_err(|e| ApiError::internal(format!("audit verification did not finish: {e}")))?
        .map_err(audit_error)?;
    let mut answer = AuditVerification {
        check: ChainCheck {
            valid: report.is_valid(),
            entries: report.entries,
            last_seq: report.last_seq,
            last_hash: report.last_hash,
            tampering: report.tampering,
        },
        chains: None,
        own_chain: None,
    };
    if let Some(shared) = &state.shared_audit {
        let audit = state.audit.clone();
        let local = tokio::task::spawn_blocking(move || audit.read(None, None, None, usize::MAX))
            .await
            .map_err(|e| ApiError::internal(format!("reading the audit log did not finish: {e}")))?
            .map_err(audit_error)?;
        let verified = shared.verify(&local).await.map_err(|e| match e {
            SharedAuditError::Shared(e) => ApiError::from(e),
            SharedAuditError::Log(e) => audit_error(e),
            e @ SharedAuditError::Unreadable { .. } => ApiError::internal(e.to_string()),
        })?;
        answer.check.valid &= verified.is_valid();
        answer.chains = Some(
            verified
                .chains
                .into_iter()
                .map(|c| ShippedChain {
                    chain: c.chain,
                    check: ChainCheck {
                        valid: c.tampering.is_none(),
                        entries: c.entries,
                        last_seq: c.last_seq,
                        last_hash: c.last_hash,
                        tampering: c.tampering,
                    },
                })
                .collect(),
        );
        answer.own_chain = verified.own.map(|o| OwnChainView {
            chain: o.chain,
            shipped: o.shipped,
            local: o.local,
            differs: o.differs,
        });
    }
    Ok(Json(answer))
}

/// The project's audit log
///
/// Entries of the caller's project in log order (oldest first), a page at a time. Each entry
/// carries the previous entry's hash and its own: the chain runs through the entries of every
/// project, so `prev_hash` may name an entry of another project; `vigil audit verify` checks the
/// whole chain. Reading is itself recorded (`audit.log_read`), before the answer is sent. An
/// unknown query parameter is refused.
#[utoipa::path(
    get,
    path = "/api/v1/audit/log",
    tag = "access",
    operation_id = "readAuditLog",
    params(LogParams),
    security(("bearerAuth" = ["audit"])),
    responses(
        (status = 200, body = AuditLogPage, description = "A page of entries."),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
    ),
)]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<LogParams>,
) -> Result<Json<AuditLogPage>, ApiError> {
    let principal = caller.require(Role::Audit)?;
    let from = time_param("from", &params.from)?;
    let to = time_param("to", &params.to)?;
    if let (Some(from), Some(to)) = (from, to)
        && to <= from
    {
        return Err(ApiError::bad_request("to", "must be after from"));
    }
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            format!("{limit} is outside 1..={MAX_LIMIT}"),
        ));
    }
    let after = params
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<u64>()
                .map_err(|_| ApiError::bad_request("cursor", "not a cursor this endpoint returned"))
        })
        .transpose()?;

    let audit = state.audit.clone();
    let project = principal.project_id.clone();
    let mut entries = tokio::task::spawn_blocking(move || {
        audit.read_matching(from, to, after, limit + 1, |e| {
            e.project_id == project || e.project_id == ALL_PROJECTS
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("audit read did not finish: {e}")))?
    .map_err(audit_error)?;
    let next_cursor = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    let parameters = json!({
        "from": params.from,
        "to": params.to,
        "limit": limit,
        "cursor": params.cursor,
    });
    record(
        &state,
        principal,
        AUDIT_LOG_READ,
        parameters,
        entries.len() as u64,
    )
    .await?;
    Ok(Json(AuditLogPage {
        entries,
        next_cursor,
    }))
}
