//! Compliance over HTTP (docs/api.md#compliance): affected-session investigations and their
//! exports, user look-ups and erasure. Every answer is written to the audit log *before* it is
//! sent: when the log cannot be written, nothing is answered.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use vigil_access::{audit, keys::Role};
use vigil_collector::{erasure, sink::DeletedRows};
use vigil_query::{
    TraceStore,
    audit::{
        AffectedPlan, AffectedQuery, AffectedRun, DayRuns, SessionPageRequest, export_chunks,
        investigate as run_investigation,
    },
};
use vigil_schemas::time::{now_ns, rfc3339};

use crate::{
    AppState,
    audit_log::record,
    auth::Caller,
    body::JsonBody,
    error::{ApiError, BadRequest, Internal, Unavailable},
    params::QueryParams,
};

/// The longest raw user id a look-up takes.
pub const MAX_USER_ID_BYTES: usize = 1024;

/// `?format=` of an investigation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatParam {
    /// `json` (default): totals, days and one page of sessions. `csv` or `ndjson`: every affected
    /// run, streamed.
    #[param(inline, value_type = Option<FormatName>)]
    format: Option<String>,
}

/// The names [`ExportFormat::parse`] reads (tested).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum FormatName {
    Json,
    Csv,
    Ndjson,
}

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExportFormat {
    Csv,
    Ndjson,
}

impl ExportFormat {
    /// `None`: the JSON summary and one page of sessions.
    fn parse(param: Option<&str>) -> Result<Option<ExportFormat>, ApiError> {
        match param {
            None | Some("json") => Ok(None),
            Some("csv") => Ok(Some(ExportFormat::Csv)),
            Some("ndjson") => Ok(Some(ExportFormat::Ndjson)),
            Some(other) => Err(ApiError::bad_request(
                "format",
                format!("unknown format {other:?}; one of json, csv, ndjson"),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Ndjson => "ndjson",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Ndjson => "application/x-ndjson",
        }
    }
}

/// The JSON answer of an investigation.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AffectedAnswer)]
pub struct AffectedView {
    /// Affected runs.
    pub runs: u64,
    /// Distinct non-empty session ids.
    pub sessions: u64,
    /// Distinct non-empty user hashes.
    pub users: u64,
    /// Start of the first affected run; null without any.
    #[schema(format = DateTime, required = true)]
    pub first_seen: Option<String>,
    /// Start of the last affected run; null without any.
    #[schema(format = DateTime, required = true)]
    pub last_seen: Option<String>,
    /// UTC days with affected runs, oldest first.
    pub by_day: Vec<DayView>,
    /// Sessions (with their user) by first run, then session id.
    pub items: Vec<SessionView>,
    /// Pass it as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// The audit log entry (`seq`) that records this answer.
    pub audit_entry: u64,
}

/// One UTC day of an investigation.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AffectedDay)]
pub struct DayView {
    /// `YYYY-MM-DD` (UTC).
    #[schema(format = Date)]
    pub day: String,
    /// Affected runs that started that day.
    pub runs: u64,
    /// Their distinct non-empty session ids.
    pub sessions: u64,
    /// Their distinct non-empty user hashes.
    pub users: u64,
}

/// One session (and user) of an investigation.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AffectedSession)]
pub struct SessionView {
    pub session_id: String,
    pub user_hash: String,
    /// Affected runs of the session and user.
    pub runs: u64,
    /// Start of its first affected run.
    #[schema(format = DateTime)]
    pub first_seen: String,
    /// Start of its last affected run.
    #[schema(format = DateTime)]
    pub last_seen: String,
}

/// One affected run, as an export holds it (no inputs or outputs).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AffectedRun)]
pub struct ExportedRun<'a> {
    trace_id: &'a str,
    session_id: &'a str,
    user_hash: &'a str,
    agent: &'a str,
    agent_version: &'a str,
    task_type: &'a str,
    environment: &'a str,
    release: &'a str,
    /// The run's start.
    #[schema(format = DateTime)]
    start_time: String,
    /// The run's end.
    #[schema(format = DateTime)]
    end_time: String,
    outcome: &'a str,
    /// In CSV: the labels joined with `;`.
    classification: &'a [String],
    retention: &'a str,
    audit_ref: &'a str,
}

impl<'a> From<&'a AffectedRun> for ExportedRun<'a> {
    fn from(run: &'a AffectedRun) -> Self {
        ExportedRun {
            trace_id: &run.trace_id,
            session_id: &run.session_id,
            user_hash: &run.user_hash,
            agent: &run.agent_name,
            agent_version: &run.agent_version,
            task_type: &run.task_type,
            environment: &run.environment,
            release: &run.release,
            start_time: rfc3339(run.start_time_ns),
            end_time: rfc3339(run.end_time_ns),
            outcome: &run.outcome,
            classification: &run.classification,
            retention: &run.retention,
            audit_ref: &run.audit_ref,
        }
    }
}

/// Runs, sessions and users a model, prompt or tool version touched
///
/// A run is affected when it started in [`from`, `to`), its run fields match the run filters,
/// it made a model call matching every model-call filter and a tool call matching every
/// tool-call filter (each in its newest version). Totals, first and last seen, per-day counts
/// and the sessions (with their users) a page at a time; exact on both stores. Recorded in the
/// audit log (`audit.affected`, or `audit.export` for csv and ndjson) before the answer is sent.
#[utoipa::path(
    post,
    path = "/api/v1/audit/affected",
    tag = "compliance",
    operation_id = "investigateAffected",
    params(FormatParam),
    request_body(content = AffectedQuery, example = json!({
        "from": "2026-11-01T00:00:00Z",
        "to": "2026-11-24T00:00:00Z",
        "filters": {"prompt_id": ["refund-policy"], "prompt_version": ["v7"]},
        "limit": 100,
    })),
    security(("bearerAuth" = ["audit"])),
    responses(
        (
            status = 200,
            description = "With `format=json`: the investigation. With `csv` (RFC 4180, a header \
                line; a value a spreadsheet would run as a formula is quoted and prefixed with \
                `'`) or `ndjson` (one `AffectedRun` per line): every affected run by start time, \
                streamed about 20000 runs at a time, so the server's memory does not grow with \
                the export. A failure mid-stream cuts the transfer (no final chunk), never a short \
                file that looks whole.",
            headers(
                ("Vigil-Audit-Entry" = u64, description = "Exports: the audit entry's `seq`."),
                ("Vigil-Affected-Runs" = u64, description = "Exports: how many runs the export \
                    holds (counted when it began)."),
            ),
            content(
                (AffectedView = "application/json"),
                (String = "text/csv"),
                (ExportedRun = "application/x-ndjson"),
            ),
        ),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn affected(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<FormatParam>,
    JsonBody(query): JsonBody<AffectedQuery>,
) -> Result<Response, ApiError> {
    let principal = caller.require(Role::Audit)?;
    let format = ExportFormat::parse(params.format.as_deref())?;
    let (plan, page) = query.plan()?;
    let project = principal.project_id.clone();
    let mut parameters = json!({"from": query.from, "to": query.to, "filters": query.filters});
    match format {
        None => {
            parameters["limit"] = json!(page.limit);
            parameters["cursor"] = json!(query.cursor);
            let view = investigate(&state, &project, &plan, &page).await?;
            let entry = record(
                &state,
                principal,
                audit::AUDIT_AFFECTED,
                parameters,
                view.runs,
            )
            .await?;
            Ok(Json(AffectedView {
                audit_entry: entry.seq,
                ..view
            })
            .into_response())
        }
        Some(format) => {
            parameters["format"] = json!(format.name());
            let days = state.store.affected_days(&project, &plan).await?;
            let runs = days.iter().map(|d| d.runs).sum();
            let entry = record(&state, principal, audit::AUDIT_EXPORT, parameters, runs).await?;
            Ok(export(
                state.store.clone(),
                project,
                plan,
                &days,
                format,
                entry.seq,
            ))
        }
    }
}

/// A look-up: one person, by the id the application knows them by.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UserLookupRequest)]
pub struct LookupRequest {
    /// The person's id as the application knows it; hashed here, never stored or logged.
    #[schema(min_length = 1, max_length = 1024)]
    pub user_id: String,
    /// Sessions per page; more than 1000 is served as 1000.
    #[serde(default)]
    #[schema(minimum = 1, default = 100)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A person's hash and sessions.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UserLookup)]
pub struct LookupView {
    /// The id, hashed with the server's key.
    pub user_hash: String,
    #[serde(flatten)]
    pub found: AffectedView,
}

/// Find one person's sessions by their raw id
///
/// The raw id is hashed with the server's key exactly as at ingest; it is never stored or
/// logged, only its hash (`audit.user_lookup`).
#[utoipa::path(
    post,
    path = "/api/v1/audit/user-lookup",
    tag = "compliance",
    operation_id = "lookUpUser",
    request_body(content = LookupRequest, example = json!({"user_id": "customer-8841"})),
    security(("bearerAuth" = ["audit"])),
    responses(
        (status = 200, body = LookupView, description = "The hash and that person's sessions."),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn user_lookup(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<LookupRequest>,
) -> Result<Json<LookupView>, ApiError> {
    let principal = caller.require(Role::Audit)?;
    if request.user_id.is_empty() || request.user_id.len() > MAX_USER_ID_BYTES {
        return Err(ApiError::bad_request(
            "user_id",
            format!("must be between 1 and {MAX_USER_ID_BYTES} bytes"),
        ));
    }
    let page = SessionPageRequest::new(request.limit, request.cursor.as_deref())?;
    let user_hash = state.pipeline.enricher().hasher().hash(&request.user_id);
    let plan = AffectedPlan::of_user(&user_hash);
    let project = &principal.project_id;
    let found = investigate(&state, project, &plan, &page).await?;
    let parameters = json!({"user_hash": user_hash, "limit": page.limit, "cursor": request.cursor});
    let entry = record(
        &state,
        principal,
        audit::AUDIT_USER_LOOKUP,
        parameters,
        found.runs,
    )
    .await?;
    Ok(Json(LookupView {
        user_hash,
        found: AffectedView {
            audit_entry: entry.seq,
            ..found
        },
    }))
}

/// How long an erasure waits for the store to take everything the WAL acknowledged.
const ERASURE_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest user hash an erasure takes (SDKs may send their own hashes).
pub const MAX_USER_HASH_BYTES: usize = 1024;

/// What `DELETE /api/v1/users/{user_hash}` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureReceipt {
    pub user_hash: String,
    /// When the erasure finished (RFC 3339).
    #[schema(format = DateTime)]
    pub erased_at: String,
    /// Stored rows deleted, every version counted.
    pub deleted: DeletedRows,
    /// Write-ahead log segments deleted once the store held their records.
    pub wal_segments_deleted: usize,
    /// The audit log entry (`seq`) recording the erasure.
    pub audit_entry: u64,
    /// That entry's hash.
    pub audit_hash: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserHashParam {
    /// The user's hash as stored (from a look-up or an investigation), at most 1024 bytes.
    #[param(
        max_length = 1024,
        example = "4f1c0c2d8b0e4a51b8f7e7c0d5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6"
    )]
    user_hash: String,
}

/// Erase one person's runs, spans and scores
///
/// Every trace with a run (in any version) of this user hash loses all its runs, spans and
/// scores: Parquet files are rewritten atomically, or ClickHouse mutations are waited on and
/// verified. Everything acknowledged before the call is first written to the store, and the
/// write-ahead log segments that held it are deleted. Answers only when all of it is done; a 503
/// means it could not finish (the store is down or behind): nothing is reported erased, run it
/// again. Recorded in the audit log (`user.erase`), whose entries keep the hash.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{user_hash}",
    tag = "compliance",
    operation_id = "eraseUser",
    params(UserHashParam),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, body = ErasureReceipt, description = "Erased: the receipt."),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn erase_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(UserHashParam { user_hash }): Path<UserHashParam>,
) -> Result<Json<ErasureReceipt>, ApiError> {
    let principal = caller.require(Role::Admin)?;
    if user_hash.is_empty() || user_hash.len() > MAX_USER_HASH_BYTES {
        return Err(ApiError::bad_request(
            "user_hash",
            format!("must be between 1 and {MAX_USER_HASH_BYTES} bytes"),
        ));
    }
    let erased = erasure::erase_user(
        state.pipeline.wal(),
        state.deleter.as_ref(),
        &principal.project_id,
        &user_hash,
        ERASURE_DRAIN_TIMEOUT,
    )
    .await?;
    let parameters = json!({
        "user_hash": user_hash,
        "deleted": erased.deleted,
        "wal_segments_deleted": erased.wal_segments_deleted,
    });
    let entry = record(
        &state,
        principal,
        audit::USER_ERASE,
        parameters,
        erased.deleted.runs,
    )
    .await?;
    Ok(Json(ErasureReceipt {
        user_hash,
        erased_at: rfc3339(now_ns()),
        deleted: erased.deleted,
        wal_segments_deleted: erased.wal_segments_deleted,
        audit_entry: entry.seq,
        audit_hash: entry.hash,
    }))
}

/// The summary and one page of sessions (the audit entry is filled in by the caller).
async fn investigate(
    state: &AppState,
    project: &str,
    plan: &AffectedPlan,
    page: &SessionPageRequest,
) -> Result<AffectedView, ApiError> {
    let (summary, sessions) = run_investigation(state.store.as_ref(), project, plan, page).await?;
    Ok(AffectedView {
        runs: summary.runs,
        sessions: summary.sessions,
        users: summary.users,
        first_seen: summary.first_seen_ns.map(rfc3339),
        last_seen: summary.last_seen_ns.map(rfc3339),
        by_day: summary
            .by_day
            .iter()
            .map(|d| DayView {
                day: vigil_schemas::time::day_string(d.day),
                runs: d.runs,
                sessions: d.sessions,
                users: d.users,
            })
            .collect(),
        items: sessions
            .items
            .into_iter()
            .map(|s| SessionView {
                session_id: s.session_id,
                user_hash: s.user_hash,
                runs: s.runs,
                first_seen: rfc3339(s.first_seen_ns),
                last_seen: rfc3339(s.last_seen_ns),
            })
            .collect(),
        next_cursor: sessions.next_cursor,
        audit_entry: 0,
    })
}

/// Every affected run, streamed one chunk of the range at a time ([`export_chunks`]): the
/// memory an export holds is one chunk, whatever its size. A chunk that fails ends the body
/// abruptly (no final chunk), so the client sees a broken transfer, never a short file that
/// looks whole.
fn export(
    store: Arc<dyn TraceStore>,
    project: String,
    plan: AffectedPlan,
    days: &[DayRuns],
    format: ExportFormat,
    audit_entry: u64,
) -> Response {
    let runs: u64 = days.iter().map(|d| d.runs).sum();
    let header = match format {
        ExportFormat::Csv => Some(csv_header().map_err(vigil_query::QueryError::Store)),
        ExportFormat::Ndjson => None,
    };
    let chunks = stream::iter(export_chunks(days)).then(move |(from, to)| {
        let (store, project, plan) = (store.clone(), project.clone(), plan.within(from, to));
        async move {
            let runs = store.affected_runs(&project, &plan).await?;
            encode(&runs, format).map_err(vigil_query::QueryError::Store)
        }
    });
    let body = stream::iter(header).chain(chunks);
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let disposition = match format {
        ExportFormat::Csv => "attachment; filename=\"affected-runs.csv\"",
        ExportFormat::Ndjson => "attachment; filename=\"affected-runs.ndjson\"",
    };
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(disposition),
    );
    headers.insert("vigil-audit-entry", HeaderValue::from(audit_entry));
    headers.insert("vigil-affected-runs", HeaderValue::from(runs));
    response
}

/// The export's columns.
const CSV_COLUMNS: [&str; 14] = [
    "trace_id",
    "session_id",
    "user_hash",
    "agent",
    "agent_version",
    "task_type",
    "environment",
    "release",
    "start_time",
    "end_time",
    "outcome",
    "classification",
    "retention",
    "audit_ref",
];

fn csv_header() -> Result<Vec<u8>, String> {
    let mut writer = csv_writer();
    writer
        .write_record(CSV_COLUMNS)
        .map_err(|e| e.to_string())?;
    writer.into_inner().map_err(|e| e.to_string())
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new())
}

/// One chunk of the export, encoded.
fn encode(runs: &[AffectedRun], format: ExportFormat) -> Result<Vec<u8>, String> {
    match format {
        ExportFormat::Csv => {
            let mut writer = csv_writer();
            for run in runs {
                for field in csv_record(run) {
                    writer
                        .write_field(defused(&field).as_bytes())
                        .map_err(|e| e.to_string())?;
                }
                writer
                    .write_record(None::<&[u8]>)
                    .map_err(|e| e.to_string())?;
            }
            writer.into_inner().map_err(|e| e.to_string())
        }
        ExportFormat::Ndjson => {
            let mut out = Vec::with_capacity(runs.len() * 256);
            for run in runs {
                serde_json::to_writer(&mut out, &ExportedRun::from(run))
                    .map_err(|e| e.to_string())?;
                out.push(b'\n');
            }
            Ok(out)
        }
    }
}

/// A run's fields, in [`CSV_COLUMNS`] order.
fn csv_record(run: &AffectedRun) -> [String; 14] {
    [
        run.trace_id.clone(),
        run.session_id.clone(),
        run.user_hash.clone(),
        run.agent_name.clone(),
        run.agent_version.clone(),
        run.task_type.clone(),
        run.environment.clone(),
        run.release.clone(),
        rfc3339(run.start_time_ns),
        rfc3339(run.end_time_ns),
        run.outcome.clone(),
        run.classification.join(";"),
        run.retention.clone(),
        run.audit_ref.clone(),
    ]
}

/// A value a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab or carriage return
/// first) is prefixed with `'` (OWASP's advice on CSV injection); the `csv` crate quotes the
/// rest as RFC 4180 asks.
fn defused(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}").into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        let mut writer = csv_writer();
        let values = [
            "plain",
            "a,b",
            "say \"hi\"",
            "line\nbreak",
            "=HYPERLINK(\"x\")",
            "-1",
        ];
        for value in values {
            writer.write_field(defused(value).as_bytes()).unwrap();
        }
        writer.write_record(None::<&[u8]>).unwrap();
        let out = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"line\nbreak\",\"'=HYPERLINK(\"\"x\"\")\",'-1\n"
        );
    }

    #[test]
    fn formats_parse_and_unknown_ones_name_the_field() {
        assert_eq!(ExportFormat::parse(None).unwrap(), None);
        assert_eq!(
            ExportFormat::parse(Some("csv")).unwrap(),
            Some(ExportFormat::Csv)
        );
        assert_eq!(
            ExportFormat::parse(Some("xml"))
                .unwrap_err()
                .field
                .as_deref(),
            Some("format")
        );
    }
}
