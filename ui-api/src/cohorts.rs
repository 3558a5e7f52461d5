//! `POST /api/v1/cohorts/compare`: two sets of production runs (canary and production, release A
//! and B, prompt v7 and v8), each chosen by metric filters over one time range, compared with
//! unpaired tests (`vigil_eval::cohort`). Each cohort's runs are read by the metric engine
//! (`vigil_query::cohort`), so a cohort's figures equal a metric query's with its filters.

use std::collections::BTreeMap;

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_access::keys::Role;
use vigil_eval::cohort::{CohortComparison, compare_cohorts};
use vigil_query::{QueryError, cohort, metrics::ShadowRuns};

use crate::{
    AppState,
    auth::Caller,
    body::JsonBody,
    error::{ApiError, BadRequest},
    experiments::alpha_of,
};

/// One cohort: the runs passing every filter.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CohortSpec {
    /// Field → accepted values, as in a metric query (`release`, `prompt_version`,
    /// `environment`, `agent`, `model`, …).
    #[serde(default)]
    #[schema(schema_with = vigil_query::metrics::openapi::filters_schema)]
    filters: BTreeMap<String, Vec<String>>,
    /// Shadow runs (`vigil.shadow = true`) in this cohort: `only` compares them with the runs
    /// they shadowed (the other cohort); when absent, as `include_shadow` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shadow: Option<ShadowRuns>,
}

/// Two cohorts to compare.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CohortsRequest {
    /// Runs that *started* in [`from`, `to`) are compared.
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
    /// What the candidate is compared with (e.g. production).
    baseline: CohortSpec,
    /// e.g. the canary.
    candidate: CohortSpec,
    /// The significance level of the verdicts (default 0.05), in (0, 0.5].
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0, maximum = 0.5)]
    alpha: Option<f64>,
    /// Count shadow runs in a cohort that does not say (default: left out, as on dashboards).
    #[serde(default)]
    include_shadow: bool,
}

/// The comparison, with the cohorts as asked.
#[derive(Serialize, ToSchema)]
pub struct CohortsReport {
    baseline: CohortSpec,
    candidate: CohortSpec,
    #[serde(flatten)]
    comparison: CohortComparison,
}

/// A refusal of one cohort's filters names the cohort (`baseline.filters`).
fn in_cohort(which: &str, e: QueryError) -> ApiError {
    match e.field() {
        Some(field @ ("from" | "to")) => ApiError::bad_request(field, e.to_string()),
        Some(field) => ApiError::bad_request(format!("{which}.{field}"), format!("{which}.{e}")),
        None => e.into(),
    }
}

/// Compare two cohorts of production runs
///
/// The runs of each cohort that started in [`from`, `to`): completion, failure and silent
/// partial failure rates, the feedback positive rate (Fisher's exact test, Wilson intervals),
/// latency p50/p90/p99, cost and tool calls per run (Mann–Whitney U), each with a verdict
/// (`improved`, `regressed`, `no_significant_change`) at `alpha`. Shadow runs are left out of
/// both cohorts unless `include_shadow` or a cohort's own `shadow` asks for them.
#[utoipa::path(
    post,
    path = "/api/v1/cohorts/compare",
    tag = "evaluation",
    operation_id = "compareCohorts",
    request_body(content = CohortsRequest, example = json!({
        "from": "2026-11-23T00:00:00Z", "to": "2026-11-25T00:00:00Z",
        "baseline": {"filters": {"environment": ["production"], "agent": ["support-bot"]}},
        "candidate": {"filters": {"environment": ["canary"], "agent": ["support-bot"]}},
        "alpha": 0.05,
    })),
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, body = CohortsReport, description = "The comparison."),
        (status = 400, response = BadRequest),
    ),
)]
pub async fn compare(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CohortsRequest>,
) -> Result<Json<CohortsReport>, ApiError> {
    let principal = caller.require(Role::Read)?;
    let alpha = alpha_of(body.alpha)?;
    let unsaid = if body.include_shadow {
        ShadowRuns::Include
    } else {
        ShadowRuns::Exclude
    };
    let plan = |which: &str, spec: &CohortSpec| {
        let shadow = spec.shadow.unwrap_or(unsaid);
        cohort::plan(&body.from, &body.to, &spec.filters, shadow).map_err(|e| in_cohort(which, e))
    };
    let (base_plan, cand_plan) = (
        plan("baseline", &body.baseline)?,
        plan("candidate", &body.candidate)?,
    );
    let project = &principal.project_id;
    let (base, cand) = tokio::try_join!(
        state.store.cohort_runs(project, &base_plan),
        state.store.cohort_runs(project, &cand_plan),
    )?;
    let comparison = tokio::task::spawn_blocking(move || compare_cohorts(&base, &cand, alpha))
        .await
        .map_err(|e| ApiError::internal(format!("the comparison did not finish: {e}")))?;
    Ok(Json(CohortsReport {
        baseline: body.baseline,
        candidate: body.candidate,
        comparison,
    }))
}
