//! The run list, the same way on every store, without ranking the versions of every run in the
//! range: read the stored versions that match the filters by position (start time, then trace
//! id, newest first: a filtered scan and a top-k sort), fetch every version of just those runs,
//! and keep a candidate only when it is its run's newest version. An older version can then
//! never match a filter its newer version no longer does, nor stand where the run no longer is.
//! While the page is not full, read again from the last position, twice as many.
//!
//! The model and prompt-version filters are checked on the newest versions of the candidates'
//! spans. The first candidates are read by position alone and probed (a look-up of their spans
//! by trace id, which the stores index); once a page has needed more than [`SPAN_PROBES`] of
//! them (a rare value), candidates are read only among the runs having a span, in any version,
//! that matches (a scan of the spans).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use vigil_schemas::{RunRow, layout::Versioned};

use crate::{
    cursor::Cursor,
    error::QueryError,
    store::{ListRequest, RunCondition, RunFilter, RunPage},
    versions::newest,
};

/// How many candidates a page probes for its span filters before it reads candidates by them.
pub(crate) const SPAN_PROBES: usize = 128;

/// A stored version of a run that matches the run list's filters (read as is from ClickHouse).
#[derive(Debug, Clone, serde::Deserialize, clickhouse::Row)]
pub(crate) struct Candidate {
    pub trace_id: String,
    pub start_time_ns: i64,
    /// The values of [`vigil_schemas::layout::Table::version_order`], in that order.
    pub version: Vec<i64>,
}

/// One run-list request as the stores see it.
pub(crate) struct ListQuery<'a> {
    pub project_id: &'a str,
    pub filter: &'a RunFilter,
    pub request: &'a ListRequest,
    /// `(span column, value)`: the run must have a span whose newest version has it.
    pub span_filters: Vec<(&'static str, &'a str)>,
}

/// What the run list asks of a store.
#[async_trait]
pub(crate) trait RunVersions: Sync {
    /// Up to `wanted` stored run versions that pass `conditions` and, when `by_spans`, have for
    /// each span filter a span (in any version) matching it; by position, newest first.
    async fn candidates(
        &self,
        query: &ListQuery<'_>,
        conditions: &[RunCondition<'_>],
        wanted: usize,
        by_spans: bool,
    ) -> Result<Vec<Candidate>, QueryError>;

    /// Every stored version of these runs (wherever the query's runs may have moved).
    async fn run_versions(
        &self,
        query: &ListQuery<'_>,
        traces: &[String],
    ) -> Result<Vec<RunRow>, QueryError>;

    /// Of these traces, those having, for each span filter, a span whose newest version
    /// matches it.
    async fn with_matching_spans(
        &self,
        query: &ListQuery<'_>,
        traces: &[String],
    ) -> Result<HashSet<String>, QueryError>;
}

/// One page of the run list, newest first.
pub(crate) async fn list_runs(
    store: &impl RunVersions,
    project_id: &str,
    filter: &RunFilter,
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<RunPage, QueryError> {
    let Some(request) = filter.prepare(limit, cursor)? else {
        return Ok(RunPage::empty());
    };
    let limit = request.limit;
    let query = ListQuery {
        project_id,
        filter,
        request: &request,
        span_filters: [
            ("model", &filter.model),
            ("prompt_version", &filter.prompt_version),
        ]
        .into_iter()
        .filter_map(|(column, wanted)| wanted.as_deref().map(|value| (column, value)))
        .collect(),
    };
    let conditions = request.conditions(filter);

    let mut runs: Vec<RunRow> = Vec::new();
    let mut listed = HashSet::new();
    let mut resume: Option<Cursor> = None;
    let mut wanted = limit + 1;
    loop {
        let mut round = conditions.clone();
        round.extend(resume.as_ref().map(|cursor| RunCondition::After {
            cursor,
            inclusive: true,
        }));
        let by_spans = !query.span_filters.is_empty() && wanted > SPAN_PROBES;
        let candidates = store.candidates(&query, &round, wanted, by_spans).await?;
        let exhausted = candidates.len() < wanted;

        let mut traces: Vec<String> = candidates.iter().map(|c| c.trace_id.clone()).collect();
        traces.sort();
        traces.dedup();
        let mut newest_runs: HashMap<String, RunRow> =
            newest(store.run_versions(&query, &traces).await?)
                .into_iter()
                .map(|run| (run.trace_id.clone(), run))
                .collect();
        let with_spans = if query.span_filters.is_empty() {
            None
        } else {
            Some(store.with_matching_spans(&query, &traces).await?)
        };
        for candidate in &candidates {
            let Some(run) = newest_runs.get(&candidate.trace_id) else {
                continue;
            };
            let keep = run.version() == candidate.version
                && conditions.iter().all(|c| c.holds(run))
                && with_spans
                    .as_ref()
                    .is_none_or(|t| t.contains(&candidate.trace_id))
                && listed.insert(candidate.trace_id.clone());
            if keep {
                runs.extend(newest_runs.remove(&candidate.trace_id));
            }
        }
        if runs.len() > limit || exhausted {
            break;
        }
        // The last position again: its other versions may not all have been read.
        resume = candidates
            .last()
            .map(|c| Cursor::at(c.start_time_ns, &c.trace_id));
        wanted *= 2;
    }
    // `limit` is at least 1, so a page longer than it has a last run.
    let next_cursor = (runs.len() > limit).then(|| {
        let last = &runs[limit - 1];
        Cursor::at(last.start_time_ns, &last.trace_id).encode()
    });
    runs.truncate(limit);
    Ok(RunPage { runs, next_cursor })
}
