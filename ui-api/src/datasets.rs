//! Datasets over HTTP, the caller's project only: reading needs `read`, every change `admin`
//! and is recorded in the audit log. Every change makes a new version (`vigil_eval::dataset`);
//! an item may be taken from a production run by its trace id.

use std::collections::{BTreeMap, HashSet};

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use vigil_access::{
    audit::{DATASET_CHANGE, DATASET_CREATE},
    keys::{Principal, Role},
};
use vigil_eval::{
    DatasetName, DatasetSummary, EvalError, Item, ItemInput, StoreError, Version,
    dataset::MAX_ITEMS_PER_CHANGE,
};
use vigil_query::{
    cohort::{self, Worst},
    metrics::ShadowRuns,
};
use vigil_schemas::{
    RunRow,
    limits::check_hex_id,
    time::{now_ns, rfc3339},
};

use crate::{
    AppState,
    audit_log::record,
    auth::Caller,
    body::JsonBody,
    error::{ApiError, BadRequest, Internal, NotFound, Unavailable},
    params::QueryParams,
    views::{must_redact, redact_item},
};

/// Items per page when `limit` is not given.
pub const DEFAULT_ITEMS_LIMIT: usize = 1000;
/// The largest `limit`.
pub const MAX_ITEMS_LIMIT: usize = 10_000;

/// A dataset to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDataset {
    /// 1-64 letters, digits, `.`, `_` or `-`, starting with a letter or digit.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    name: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    description: String,
}

/// A dataset as listed.
#[derive(Serialize, ToSchema)]
#[schema(as = Dataset)]
pub struct DatasetView {
    #[serde(flatten)]
    summary: DatasetSummary,
    /// `created_at_ns`, RFC 3339.
    #[schema(format = DateTime)]
    created_at: String,
}

fn dataset_view(summary: DatasetSummary) -> DatasetView {
    DatasetView {
        created_at: rfc3339(summary.created_at_ns),
        summary,
    }
}

/// The project's datasets.
#[derive(Serialize, ToSchema)]
pub struct DatasetList {
    datasets: Vec<DatasetView>,
}

/// A version of a dataset.
#[derive(Serialize, ToSchema)]
#[schema(as = DatasetVersion)]
pub struct VersionView {
    #[serde(flatten)]
    version: Version,
    /// `created_at_ns`, RFC 3339.
    #[schema(format = DateTime)]
    created_at: String,
}

fn version_view(version: Version) -> VersionView {
    VersionView {
        created_at: rfc3339(version.created_at_ns),
        version,
    }
}

/// A dataset and its versions, oldest first.
#[derive(Serialize, ToSchema)]
pub struct DatasetDetail {
    dataset: DatasetView,
    versions: Vec<VersionView>,
}

/// Items to add or change, as one new version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItems {
    #[schema(min_items = 1, max_items = 1000)]
    items: Vec<ItemInput>,
}

/// What a change did.
#[derive(Serialize, ToSchema)]
pub struct DatasetChange {
    /// Whether it made a new version (sending items that are already there changes nothing).
    changed: bool,
    /// The dataset's newest version, made by this change when `changed`.
    version: u32,
    /// Items in that version.
    items: usize,
    added: usize,
    updated: usize,
    deleted: usize,
}

/// A page of a version's items, ordered by id.
#[derive(Serialize, ToSchema)]
pub struct DatasetItems {
    dataset: String,
    version: u32,
    /// Items in the version.
    total: usize,
    items: Vec<Item>,
    /// Pass as `offset` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_offset: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DatasetPath {
    /// The dataset's name.
    #[param(example = "support-golden")]
    name: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ItemPath {
    /// The dataset's name.
    #[param(example = "support-golden")]
    name: String,
    /// The item's id.
    #[param(example = "refund-1")]
    item_id: String,
}

/// Which items to read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemsParams {
    /// The version (default: the newest).
    version: Option<u32>,
    /// Items to skip.
    #[serde(default)]
    offset: usize,
    /// Items per page (default 1000, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

pub(crate) fn name_of(text: &str) -> Result<DatasetName, ApiError> {
    DatasetName::parse("name", text).map_err(|e| store_error(e.into()))
}

pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Eval(EvalError::Invalid { field, reason }) => {
            let message = format!("{field}: {reason}");
            ApiError::bad_request(field, message)
        }
        StoreError::Eval(e @ EvalError::NotFound(_)) => ApiError::not_found(e.to_string()),
        StoreError::Eval(e @ EvalError::Exists(_)) => ApiError::conflict(e.to_string()),
        e @ (StoreError::Io { .. } | StoreError::Unreadable { .. }) => {
            ApiError::internal(e.to_string())
        }
        StoreError::Shared(e) => e.into(),
    }
}

/// Create a dataset
///
/// An empty dataset (version 0) in the caller's project. Recorded in the audit log
/// (`dataset.create`).
#[utoipa::path(
    post,
    path = "/api/v1/datasets",
    tag = "evaluation",
    operation_id = "createDataset",
    request_body(content = CreateDataset, example = json!({
        "name": "support-golden",
        "description": "30 tasks every support-bot release must pass",
    })),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 201, body = DatasetView, description = "Created."),
        (status = 400, response = BadRequest),
        (status = 409, description = "A dataset of that name exists."),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateDataset>,
) -> Result<(StatusCode, Json<DatasetView>), ApiError> {
    let principal = caller.require(Role::Admin)?.clone();
    let name = name_of(&body.name)?;
    let summary = state
        .evaluation
        .create_dataset(
            &principal.project_id,
            name,
            body.description,
            now_ns(),
            &principal.key_id,
        )
        .await
        .map_err(store_error)?;
    record(
        &state,
        &principal,
        DATASET_CREATE,
        json!({"name": summary.name, "description": summary.description}),
        1,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(dataset_view(summary))))
}

/// The project's datasets
#[utoipa::path(
    get,
    path = "/api/v1/datasets",
    tag = "evaluation",
    operation_id = "listDatasets",
    security(("bearerAuth" = ["read"])),
    responses((status = 200, body = DatasetList, description = "The datasets, by name.")),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<DatasetList>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let datasets = state.evaluation.datasets.list(&principal.project_id);
    Ok(Json(DatasetList {
        datasets: datasets.into_iter().map(dataset_view).collect(),
    }))
}

/// A dataset and its versions
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{name}",
    tag = "evaluation",
    operation_id = "getDataset",
    params(DatasetPath),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = DatasetDetail, description = "The dataset; versions oldest first."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(DatasetPath { name }): Path<DatasetPath>,
) -> Result<Json<DatasetDetail>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let name = name_of(&name)?;
    let (summary, versions) = state
        .evaluation
        .datasets
        .get(&principal.project_id, &name)
        .map_err(store_error)?;
    Ok(Json(DatasetDetail {
        dataset: dataset_view(summary),
        versions: versions.into_iter().map(version_view).collect(),
    }))
}

/// A version's items
///
/// Ordered by id, a page at a time. The input and expected output of an item classified `pii`,
/// `phi`, `financial` or `confidential` read `[redacted]` unless the key has the `audit` role.
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{name}/items",
    tag = "evaluation",
    operation_id = "listDatasetItems",
    params(DatasetPath, ItemsParams),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = DatasetItems, description = "A page of the version's items."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    ),
)]
pub async fn items(
    State(state): State<AppState>,
    caller: Caller,
    Path(DatasetPath { name }): Path<DatasetPath>,
    QueryParams(params): QueryParams<ItemsParams>,
) -> Result<Json<DatasetItems>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let limit = params.limit.unwrap_or(DEFAULT_ITEMS_LIMIT);
    if !(1..=MAX_ITEMS_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            format!("limit must be 1-{MAX_ITEMS_LIMIT}"),
        ));
    }
    let name = name_of(&name)?;
    let (version, all) = state
        .evaluation
        .datasets
        .items(&principal.project_id, &name, params.version)
        .map_err(store_error)?;
    let total = all.len();
    let end = params.offset.saturating_add(limit).min(total);
    let items = all
        .into_iter()
        .skip(params.offset)
        .take(limit)
        .map(|item| redacted(item, principal))
        .collect();
    Ok(Json(DatasetItems {
        dataset: name.to_string(),
        version,
        total,
        items,
        next_offset: (end < total).then_some(end),
    }))
}

fn redacted(mut item: Item, principal: &Principal) -> Item {
    if must_redact(&item.classification, principal) {
        redact_item(&mut item.input, &mut item.expected_output);
    }
    item
}

/// Add or change items
///
/// One new version holding the items sent (an item with the id of an existing one replaces it).
/// An item with `source_trace_id` and no `input` is taken from that production run: its input,
/// its output as the expected output (unless one is given), its classification, and its agent,
/// agent version and outcome as metadata (unless metadata is given). Sending items that are
/// already there changes nothing and makes no version. Recorded in the audit log
/// (`dataset.change`).
#[utoipa::path(
    post,
    path = "/api/v1/datasets/{name}/items",
    tag = "evaluation",
    operation_id = "addDatasetItems",
    params(DatasetPath),
    request_body(content = AddItems, example = json!({
        "items": [
            {"id": "refund-1", "input": {"question": "Can I get a refund after 40 days?"},
             "expected_output": "No: refunds are possible within 30 days.",
             "metadata": {"category": "billing"}},
        ],
    })),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, body = DatasetChange, description = "The version made, or the newest one when nothing changed."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn add_items(
    State(state): State<AppState>,
    caller: Caller,
    Path(DatasetPath { name }): Path<DatasetPath>,
    JsonBody(body): JsonBody<AddItems>,
) -> Result<Json<DatasetChange>, ApiError> {
    let principal = caller.require(Role::Admin)?.clone();
    if body.items.is_empty() {
        return Err(ApiError::bad_request(
            "items",
            format!("items: give 1 to {MAX_ITEMS_PER_CHANGE} items"),
        ));
    }
    let name = name_of(&name)?;
    // Refuse a missing dataset before reading any run.
    state
        .evaluation
        .datasets
        .summary(&principal.project_id, &name)
        .map_err(store_error)?;
    let mut items = Vec::with_capacity(body.items.len());
    for (i, input) in body.items.into_iter().enumerate() {
        let field = format!("items[{i}]");
        let input = from_source_run(&state, &principal.project_id, input, &field).await?;
        items.push(input.into_item(&field).map_err(|e| store_error(e.into()))?);
    }
    let ids: Vec<String> = items.iter().map(|item| item.id.clone()).collect();
    change(
        &state,
        &principal,
        name,
        items,
        Vec::new(),
        json!({"items": ids}),
    )
    .await
}

/// The week's worst production runs, to add as items.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddWorst {
    /// Runs that *started* in [`from`, `to`) are looked at.
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
    by: Worst,
    /// How many to add (default 5).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// Which runs, as metric filters (e.g. `{"agent": ["support-bot"]}`).
    #[serde(default)]
    #[schema(schema_with = vigil_query::metrics::openapi::filters_schema)]
    filters: BTreeMap<String, Vec<String>>,
}

/// The most worst runs one request adds.
pub const MAX_WORST: usize = 100;

/// What adding the worst runs did.
#[derive(Serialize, ToSchema)]
pub struct WorstAdded {
    #[serde(flatten)]
    change: DatasetChange,
    /// The runs added, worst first.
    trace_ids: Vec<String>,
}

/// Add the worst production runs
///
/// The guide's weekly loop: the `limit` worst runs that started in [`from`, `to`) and pass the
/// filters, by `failure` (failed, then completed with a failed call; then the most negative
/// feedback, then the longest) or by `feedback` (the most negative feedback, then the lowest
/// share of positive feedback, then the longest), leaving out runs the dataset's newest version
/// already holds. Each becomes an item: the run's input, no expected output (a person writes
/// what it should have answered), and as metadata its agent, agent version, outcome and
/// `observed_output`, the answer it gave. One new version. Recorded in the audit log
/// (`dataset.change`).
#[utoipa::path(
    post,
    path = "/api/v1/datasets/{name}/items/worst",
    tag = "evaluation",
    operation_id = "addWorstRuns",
    params(DatasetPath),
    request_body(content = AddWorst, example = json!({
        "from": "2026-11-27T00:00:00Z", "to": "2026-12-04T00:00:00Z",
        "by": "failure", "limit": 5, "filters": {"agent": ["support-bot"]},
    })),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, body = WorstAdded, description = "The version made, and the runs it took."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn add_worst(
    State(state): State<AppState>,
    caller: Caller,
    Path(DatasetPath { name }): Path<DatasetPath>,
    JsonBody(body): JsonBody<AddWorst>,
) -> Result<Json<WorstAdded>, ApiError> {
    let principal = caller.require(Role::Admin)?.clone();
    let name = name_of(&name)?;
    let limit = body.limit.unwrap_or(5);
    if !(1..=MAX_WORST).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            format!("limit: must be 1-{MAX_WORST}"),
        ));
    }
    let (_, held) = state
        .evaluation
        .datasets
        .items(&principal.project_id, &name, None)
        .map_err(store_error)?;
    let known: HashSet<String> = held.into_iter().filter_map(|i| i.source_trace_id).collect();
    let plan = cohort::plan(&body.from, &body.to, &body.filters, ShadowRuns::Exclude)?;
    let runs = state
        .store
        .cohort_runs(&principal.project_id, &plan)
        .await?;
    let picked = cohort::worst(runs, body.by, limit, &known);
    let mut items = Vec::with_capacity(picked.len());
    for (i, run) in picked.iter().enumerate() {
        let field = format!("runs[{i}]");
        let source = source_run(&state, &principal.project_id, &run.trace_id, &field).await?;
        let mut metadata = run_metadata(&source);
        metadata.insert("observed_output".into(), content(&source.output));
        let input = taken_from(
            &source,
            ItemInput {
                source_trace_id: Some(run.trace_id.clone()),
                // What it should have answered is for a person to write.
                expected_output: Some(Value::Null),
                metadata: Some(metadata),
                ..ItemInput::default()
            },
        );
        items.push(input.into_item(&field).map_err(|e| store_error(e.into()))?);
    }
    let trace_ids: Vec<String> = picked.into_iter().map(|r| r.trace_id).collect();
    let Json(change) = change(
        &state,
        &principal,
        name,
        items,
        Vec::new(),
        json!({"worst": {"by": body.by, "from": body.from, "to": body.to, "filters": body.filters}, "runs": trace_ids}),
    )
    .await?;
    Ok(Json(WorstAdded { change, trace_ids }))
}

/// Delete an item
///
/// One new version without it. Recorded in the audit log (`dataset.change`).
#[utoipa::path(
    delete,
    path = "/api/v1/datasets/{name}/items/{item_id}",
    tag = "evaluation",
    operation_id = "deleteDatasetItem",
    params(ItemPath),
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, body = DatasetChange, description = "The version made."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn delete_item(
    State(state): State<AppState>,
    caller: Caller,
    Path(ItemPath { name, item_id }): Path<ItemPath>,
) -> Result<Json<DatasetChange>, ApiError> {
    let principal = caller.require(Role::Admin)?.clone();
    let name = name_of(&name)?;
    let parameters = json!({"deleted": [item_id]});
    change(
        &state,
        &principal,
        name,
        Vec::new(),
        vec![item_id],
        parameters,
    )
    .await
}

/// Makes one version of `upserts` and `deletes`, and records it.
async fn change(
    state: &AppState,
    principal: &Principal,
    name: DatasetName,
    upserts: Vec<Item>,
    deletes: Vec<String>,
    mut parameters: Value,
) -> Result<Json<DatasetChange>, ApiError> {
    let version = state
        .evaluation
        .change_dataset(
            &principal.project_id,
            &name,
            upserts,
            deletes,
            now_ns(),
            &principal.key_id,
        )
        .await
        .map_err(store_error)?;
    let Some(version) = version else {
        let summary = state
            .evaluation
            .datasets
            .summary(&principal.project_id, &name)
            .map_err(store_error)?;
        return Ok(Json(DatasetChange {
            changed: false,
            version: summary.latest_version,
            items: summary.items,
            added: 0,
            updated: 0,
            deleted: 0,
        }));
    };
    if let Some(fields) = parameters.as_object_mut() {
        fields.insert("name".into(), json!(name));
        fields.insert("version".into(), json!(version.version));
    }
    let count = (version.added + version.updated + version.deleted) as u64;
    record(state, principal, DATASET_CHANGE, parameters, count).await?;
    Ok(Json(DatasetChange {
        changed: true,
        version: version.version,
        items: version.items,
        added: version.added,
        updated: version.updated,
        deleted: version.deleted,
    }))
}

/// Fills an item sent with `source_trace_id` and no `input` from that run's newest version.
async fn from_source_run(
    state: &AppState,
    project: &str,
    input: ItemInput,
    field: &str,
) -> Result<ItemInput, ApiError> {
    let (Some(trace_id), None) = (&input.source_trace_id, &input.input) else {
        return Ok(input);
    };
    let trace_id = trace_id.to_ascii_lowercase();
    check_hex_id(&format!("{field}.source_trace_id"), &trace_id, 32)
        .map_err(|e| ApiError::bad_request(e.field.clone(), e.to_string()))?;
    let run = source_run(state, project, &trace_id, field).await?;
    Ok(taken_from(&run, input))
}

/// A production run, for an item taken from it; refused as `<field>.source_trace_id` when the
/// project has no such run.
async fn source_run(
    state: &AppState,
    project: &str,
    trace_id: &str,
    field: &str,
) -> Result<RunRow, ApiError> {
    state
        .store
        .get_run(project, trace_id)
        .await?
        .and_then(|detail| detail.run)
        .ok_or_else(|| {
            ApiError::bad_request(
                format!("{field}.source_trace_id"),
                format!("{field}.source_trace_id: no run with trace_id {trace_id} in this project"),
            )
        })
}

/// `input` with what it leaves out taken from `run`: its input, its output as the expected
/// output, its classification, and its agent, version and outcome as metadata.
fn taken_from(run: &RunRow, mut input: ItemInput) -> ItemInput {
    input.input = Some(content(&run.input));
    if input.expected_output.is_none() && !run.output.is_empty() {
        input.expected_output = Some(content(&run.output));
    }
    if input.classification.is_none() {
        input.classification = Some(run.classification.clone());
    }
    if input.metadata.is_none() {
        input.metadata = Some(run_metadata(run));
    }
    input
}

/// A run's input or output as an item's: the JSON it holds when it is a JSON object or array,
/// else the text.
fn content(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ (Value::Object(_) | Value::Array(_))) => value,
        _ => Value::String(text.to_string()),
    }
}

fn run_metadata(run: &RunRow) -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("agent".into(), json!(run.agent_name));
    metadata.insert("agent_version".into(), json!(run.agent_version));
    metadata.insert("outcome".into(), json!(run.outcome));
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_content_keeps_json_documents_and_text() {
        assert_eq!(content(r#"{"q": 1}"#), json!({"q": 1}));
        assert_eq!(content("[1, 2]"), json!([1, 2]));
        assert_eq!(content("42"), json!("42"));
        assert_eq!(content("hello"), json!("hello"));
        assert_eq!(content(""), json!(""));
    }
}
