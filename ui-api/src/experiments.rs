//! Experiments over HTTP, the caller's project only: creating one and linking runs to its items
//! needs `ingest` (what runs the dataset, a CI job, sends its traces with the same key); reading
//! needs `read`. What an experiment reports is computed from its items' runs at each read
//! (`vigil_eval::experiment`), so runs and scores that arrive later count at once.

use std::collections::{BTreeSet, HashMap};

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};

use utoipa::{IntoParams, ToSchema};
use vigil_access::keys::{Principal, Role};
use vigil_eval::{
    compare::{Comparison, compare},
    experiment::{ItemResult, RunFacts, Summary, item_result, summarize},
    experiments::{Experiment, ExperimentSpec, ExperimentWithItems, Link},
};
use vigil_query::{RunRollup, RunWithScores};
use vigil_schemas::time::{now_ns, rfc3339};

use crate::{
    AppState,
    auth::Caller,
    body::JsonBody,
    datasets::{name_of, store_error},
    error::{ApiError, BadRequest, NotFound, Unavailable},
    params::QueryParams,
    views::{must_redact, redact, redact_item},
};

/// Runs read (and their calls rolled up) per store request.
const RUNS_PER_REQUEST: usize = 1000;

/// An experiment as shown.
#[derive(Serialize, ToSchema)]
#[schema(as = Experiment)]
pub struct ExperimentView {
    #[serde(flatten)]
    experiment: Experiment,
    /// `created_at_ns`, RFC 3339.
    #[schema(format = DateTime)]
    created_at: String,
}

fn experiment_view(experiment: Experiment) -> ExperimentView {
    ExperimentView {
        created_at: rfc3339(experiment.created_at_ns),
        experiment,
    }
}

/// The project's experiments, newest first.
#[derive(Serialize, ToSchema)]
pub struct ExperimentList {
    experiments: Vec<ExperimentView>,
}

/// An experiment and what its items' runs add up to.
#[derive(Serialize, ToSchema)]
pub struct ExperimentReport {
    experiment: ExperimentView,
    summary: Summary,
}

/// Each item of the experiment's dataset version with its run's result, by item id.
#[derive(Serialize, ToSchema)]
pub struct ExperimentItems {
    items: Vec<ItemResult>,
}

/// Runs to link to items.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRuns {
    #[schema(min_items = 1, max_items = 1000)]
    items: Vec<Link>,
}

/// What linking did.
#[derive(Serialize, ToSchema)]
pub struct Linked {
    /// Items of the experiment with a run linked, now.
    linked: usize,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ExperimentPath {
    /// The experiment's id.
    #[param(example = "exp_0123456789abcdef")]
    id: String,
}

/// Which experiments to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this dataset's.
    dataset: Option<String>,
}

/// Create an experiment
///
/// Pins a version of a dataset (the newest unless given) and says which system version runs it.
/// Then run each item and link its run: send the trace, and `POST
/// /api/v1/experiments/{id}/items`.
#[utoipa::path(
    post,
    path = "/api/v1/experiments",
    tag = "evaluation",
    operation_id = "createExperiment",
    request_body(content = ExperimentSpec, example = json!({
        "name": "support-bot prompt v8",
        "dataset": "support-golden",
        "system": {"agent_version": "1.5.0", "prompt_version": "support-bot@v8", "model": "gpt-4o"},
        "evaluators": [
            {"type": "exact_match", "name": "exact"},
            {"type": "contains", "name": "mentions_30_days", "value": "30 days"},
        ],
    })),
    security(("bearerAuth" = ["ingest"])),
    responses(
        (status = 201, body = ExperimentView, description = "Created."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<ExperimentSpec>,
) -> Result<(StatusCode, Json<ExperimentView>), ApiError> {
    let principal = caller.require(Role::Ingest)?.clone();
    let experiment = state
        .evaluation
        .create_experiment(&principal.project_id, spec, now_ns(), &principal.key_id)
        .await
        .map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(experiment_view(experiment))))
}

/// The project's experiments
#[utoipa::path(
    get,
    path = "/api/v1/experiments",
    tag = "evaluation",
    operation_id = "listExperiments",
    params(ListParams),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = ExperimentList, description = "Newest first."),
        (status = 400, response = BadRequest),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ExperimentList>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let dataset = params.dataset.as_deref().map(name_of).transpose()?;
    let experiments = state
        .evaluation
        .experiments
        .list(&principal.project_id, dataset.as_ref());
    Ok(Json(ExperimentList {
        experiments: experiments.into_iter().map(experiment_view).collect(),
    }))
}

/// An experiment and its figures
///
/// Over the items whose run is there: completion rate, each evaluator's pass rate, the mean of
/// each score, cost per item, latency percentiles (exact), tool calls per item; and how many items
/// are still pending or not run.
#[utoipa::path(
    get,
    path = "/api/v1/experiments/{id}",
    tag = "evaluation",
    operation_id = "getExperiment",
    params(ExperimentPath),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = ExperimentReport, description = "The experiment and its figures."),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(ExperimentPath { id }): Path<ExperimentPath>,
) -> Result<Json<ExperimentReport>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let (experiment, results) = results(&state, &principal.project_id, &id).await?;
    Ok(Json(ExperimentReport {
        experiment: experiment_view(experiment),
        summary: summarize(&results),
    }))
}

/// An experiment's items with their results
///
/// Each item of the pinned dataset version: its run, output, outcome, each evaluator's verdict,
/// its scores, cost, latency and tool calls. Content (input, expected output, output) of an item
/// or run classified `pii`, `phi`, `financial` or `confidential` reads `[redacted]` unless the key
/// has `audit`.
#[utoipa::path(
    get,
    path = "/api/v1/experiments/{id}/items",
    tag = "evaluation",
    operation_id = "listExperimentItems",
    params(ExperimentPath),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = ExperimentItems, description = "The items, by id."),
        (status = 404, response = NotFound),
    ),
)]
pub async fn items(
    State(state): State<AppState>,
    caller: Caller,
    Path(ExperimentPath { id }): Path<ExperimentPath>,
) -> Result<Json<ExperimentItems>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let (_, results) = results(&state, &principal.project_id, &id).await?;
    Ok(Json(ExperimentItems {
        items: results
            .into_iter()
            .map(|r| redacted(r, principal))
            .collect(),
    }))
}

/// Link runs to items
///
/// Each run executes one item of the experiment's dataset version; linking an item again
/// replaces its run (a retried item).
#[utoipa::path(
    post,
    path = "/api/v1/experiments/{id}/items",
    tag = "evaluation",
    operation_id = "linkExperimentRuns",
    params(ExperimentPath),
    request_body(content = LinkRuns, example = json!({
        "items": [{"item_id": "refund-1", "trace_id": "0af7651916cd43dd8448eb211c80319c"}],
    })),
    security(("bearerAuth" = ["ingest"])),
    responses(
        (status = 200, body = Linked, description = "Linked."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn link(
    State(state): State<AppState>,
    caller: Caller,
    Path(ExperimentPath { id }): Path<ExperimentPath>,
    JsonBody(body): JsonBody<LinkRuns>,
) -> Result<Json<Linked>, ApiError> {
    let principal = caller.require(Role::Ingest)?.clone();
    let linked = state
        .evaluation
        .link(&principal.project_id, &id, body.items)
        .await
        .map_err(store_error)?;
    Ok(Json(Linked { linked }))
}

/// Two experiments to compare.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    /// The experiment compared with (e.g. the current release's).
    baseline: String,
    /// The experiment compared (e.g. the change); it must run the same dataset version.
    candidate: String,
    /// The significance level of the verdicts (default 0.05), in (0, 0.5].
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0, maximum = 0.5)]
    alpha: Option<f64>,
}

/// The significance level asked for: 0.05 by default, in (0, 0.5].
pub(crate) fn alpha_of(alpha: Option<f64>) -> Result<f64, ApiError> {
    let alpha = alpha.unwrap_or(0.05);
    if alpha > 0.0 && alpha <= 0.5 {
        Ok(alpha)
    } else {
        Err(ApiError::bad_request("alpha", "alpha: must be in (0, 0.5]"))
    }
}

/// The comparison's answer.
#[derive(Serialize, ToSchema)]
pub struct ComparisonReport {
    baseline: ExperimentView,
    candidate: ExperimentView,
    /// Each experiment's own figures over all its items (as `GET /api/v1/experiments/{id}`),
    /// from the same read as the comparison.
    baseline_summary: Summary,
    candidate_summary: Summary,
    #[serde(flatten)]
    comparison: Comparison,
}

/// Compare two experiments
///
/// Item by item over the items whose run is there in both: completion and each evaluator's pass
/// rate (McNemar's exact test, Wilson intervals), each score's mean, cost, latency and tool calls
/// per item (Wilcoxon signed-rank test), each with a verdict (`improved`, `regressed`,
/// `no_significant_change`) at `alpha`; then the items whose result changed, newly failing
/// first.
#[utoipa::path(
    post,
    path = "/api/v1/experiments/compare",
    tag = "evaluation",
    operation_id = "compareExperiments",
    request_body(content = CompareRequest, example = json!({
        "baseline": "exp_0123456789abcdef", "candidate": "exp_fedcba9876543210", "alpha": 0.05,
    })),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = ComparisonReport, description = "The comparison."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    ),
)]
pub async fn compare_two(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CompareRequest>,
) -> Result<Json<ComparisonReport>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let alpha = alpha_of(body.alpha)?;
    let (baseline, base_results) = results(&state, &principal.project_id, &body.baseline).await?;
    let (candidate, cand_results) = results(&state, &principal.project_id, &body.candidate).await?;
    if (&baseline.dataset, baseline.dataset_version)
        != (&candidate.dataset, candidate.dataset_version)
    {
        return Err(ApiError::bad_request(
            "candidate",
            format!(
                "candidate: runs dataset {} version {}, the baseline dataset {} version {}: \
                 only experiments on the same items compare",
                candidate.dataset,
                candidate.dataset_version,
                baseline.dataset,
                baseline.dataset_version
            ),
        ));
    }
    let (baseline_summary, candidate_summary) =
        (summarize(&base_results), summarize(&cand_results));
    let mut comparison = compare(&base_results, &cand_results, alpha);
    for change in &mut comparison.items {
        change.baseline = redacted(change.baseline.clone(), principal);
        change.candidate = redacted(change.candidate.clone(), principal);
    }
    Ok(Json(ComparisonReport {
        baseline: experiment_view(baseline),
        candidate: experiment_view(candidate),
        baseline_summary,
        candidate_summary,
        comparison,
    }))
}

/// The experiment and each item's result, its linked run read from the store.
async fn results(
    state: &AppState,
    project: &str,
    id: &str,
) -> Result<(Experiment, Vec<ItemResult>), ApiError> {
    let ExperimentWithItems {
        experiment,
        items,
        links,
        evaluators,
    } = state
        .evaluation
        .experiments
        .view(project, id)
        .map_err(store_error)?;
    let traces: Vec<String> = links
        .values()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rollups: HashMap<String, RunRollup> = HashMap::new();
    let mut runs: HashMap<String, RunWithScores> = HashMap::new();
    for chunk in traces.chunks(RUNS_PER_REQUEST) {
        let (some_rollups, some_runs) = tokio::try_join!(
            state.store.run_rollups(project, chunk),
            state.store.runs_with_scores(project, chunk),
        )?;
        rollups.extend(some_rollups);
        runs.extend(some_runs);
    }
    let results = items
        .iter()
        .map(|item| {
            let trace_id = links.get(&item.id).map(String::as_str);
            let facts = trace_id.and_then(|t| Some(run_facts(runs.get(t)?, rollups.get(t))));
            item_result(item, trace_id, facts.as_ref(), &evaluators)
        })
        .collect();
    Ok((experiment, results))
}

/// What the results need of a run.
fn run_facts(
    RunWithScores { run, scores }: &RunWithScores,
    rollup: Option<&RunRollup>,
) -> RunFacts {
    let rollup = rollup.cloned().unwrap_or_default();
    RunFacts {
        outcome: run.outcome,
        output: run.output.clone(),
        duration_ns: run.duration_ns(),
        cost_nanos: (rollup.unpriced_model_calls == 0).then_some(rollup.cost_nanos),
        tool_calls: rollup.tool_calls,
        scores: scores
            .iter()
            .filter_map(|s| {
                let value = s.value.or(s.bool_value.map(|b| f64::from(u8::from(b))))?;
                Some((s.name.clone(), value))
            })
            .collect(),
        classification: run.classification.clone(),
    }
}

fn redacted(mut result: ItemResult, principal: &Principal) -> ItemResult {
    if must_redact(&result.classification, principal) {
        redact_item(&mut result.input, &mut result.expected_output);
        if let Some(output) = result.output.as_mut() {
            redact(output);
        }
    }
    result
}
