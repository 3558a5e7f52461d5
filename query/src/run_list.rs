//! The run list, the same way on every store, without ranking the versions of every run in the
//! range: read the stored versions that match the filters by position (start time, then trace
//! id, newest first: a filtered scan and a top-k sort), fetch every version of just those runs,
//! and keep a candidate only when it is its run's newest version. An older version can then
//! never match a filter its newer version no longer does, nor stand where the run no longer is.
//! While the page is not full, read again from the last position, twice as many.
//!
//! The model and prompt-version filters are checked on the newest versions of the candidates'
//! spans. The first candidates are read by position alone and probed (a look-up of their spans
//! by trace id, which the stores index). Candidates are read only among the runs having a span,
//! in any version, that matches (a scan of the spans) once probing looks futile for the value:
//! when a page has needed more than [`SPAN_PROBES`] of them, or when a round kept too few runs
//! for the next, twice as many probes at the same rate, to fill the page (a rare value: one
//! round of probes instead of two before the scan).

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
    let spans_filtered = !query.span_filters.is_empty();
    let mut by_spans = false;
    loop {
        let mut round = conditions.clone();
        round.extend(resume.as_ref().map(|cursor| RunCondition::After {
            cursor,
            inclusive: true,
        }));
        by_spans |= spans_filtered && wanted > SPAN_PROBES;
        let kept_before = runs.len();
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
        // The next round reads twice as many: at this round's rate, would they fill the page?
        let kept = runs.len() - kept_before;
        by_spans |= spans_filtered && 2 * kept < limit + 1 - runs.len();
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Runs in memory, one version each, run `i` calling model `m{i % every}`; records how
    /// each round read its candidates.
    struct Runs {
        runs: Vec<RunRow>,
        every: usize,
        rounds: Mutex<Vec<(usize, bool)>>,
    }

    impl Runs {
        fn new(count: usize, every: usize) -> Runs {
            let runs = (0..count)
                .map(|i| RunRow {
                    trace_id: format!("t{i:05}"),
                    start_time_ns: i as i64,
                    ..Default::default()
                })
                .collect();
            Runs {
                runs,
                every,
                rounds: Mutex::new(Vec::new()),
            }
        }

        fn model(&self, trace_id: &str) -> String {
            let i: usize = trace_id[1..].parse().unwrap();
            format!("m{}", i % self.every)
        }

        fn calls(&self, trace_id: &str, query: &ListQuery<'_>) -> bool {
            let model = self.model(trace_id);
            query.span_filters.iter().all(|(_, value)| model == *value)
        }
    }

    #[async_trait]
    impl RunVersions for Runs {
        async fn candidates(
            &self,
            query: &ListQuery<'_>,
            conditions: &[RunCondition<'_>],
            wanted: usize,
            by_spans: bool,
        ) -> Result<Vec<Candidate>, QueryError> {
            self.rounds.lock().unwrap().push((wanted, by_spans));
            let mut matching: Vec<&RunRow> = self
                .runs
                .iter()
                .filter(|run| conditions.iter().all(|c| c.holds(run)))
                .filter(|run| !by_spans || self.calls(&run.trace_id, query))
                .collect();
            matching.sort_by(|a, b| {
                (b.start_time_ns, &b.trace_id).cmp(&(a.start_time_ns, &a.trace_id))
            });
            Ok(matching
                .into_iter()
                .take(wanted)
                .map(|run| Candidate {
                    trace_id: run.trace_id.clone(),
                    start_time_ns: run.start_time_ns,
                    version: run.version(),
                })
                .collect())
        }

        async fn run_versions(
            &self,
            _: &ListQuery<'_>,
            traces: &[String],
        ) -> Result<Vec<RunRow>, QueryError> {
            Ok(self
                .runs
                .iter()
                .filter(|run| traces.contains(&run.trace_id))
                .cloned()
                .collect())
        }

        async fn with_matching_spans(
            &self,
            query: &ListQuery<'_>,
            traces: &[String],
        ) -> Result<HashSet<String>, QueryError> {
            Ok(traces
                .iter()
                .filter(|trace| self.calls(trace, query))
                .cloned()
                .collect())
        }
    }

    /// The page of runs calling `model`, and how its rounds read their candidates.
    async fn page(runs: &Runs, model: &str) -> (Vec<String>, Vec<(usize, bool)>) {
        let filter = RunFilter {
            model: Some(model.into()),
            ..Default::default()
        };
        let page = list_runs(runs, "p", &filter, Some(50), None).await.unwrap();
        let traces = page.runs.into_iter().map(|run| run.trace_id).collect();
        (traces, runs.rounds.lock().unwrap().clone())
    }

    /// Expected independently: the newest 50 runs whose index is `model`'s residue.
    fn newest_calling(count: usize, every: usize, residue: usize) -> Vec<String> {
        (0..count)
            .rev()
            .filter(|i| i % every == residue)
            .take(50)
            .map(|i| format!("t{i:05}"))
            .collect()
    }

    #[tokio::test]
    async fn a_common_value_is_probed_and_a_rare_one_read_by_its_spans_after_one_round() {
        // Every second run: 51 probes keep 25 or 26, twice as many would fill the page.
        let common = Runs::new(10_000, 2);
        let (traces, rounds) = page(&common, "m1").await;
        assert_eq!(traces, newest_calling(10_000, 2, 1));
        assert_eq!(rounds, vec![(51, false), (102, false)]);

        // One run in 100: 51 probes keep at most one, so the next round reads by the spans.
        let rare = Runs::new(10_000, 100);
        let (traces, rounds) = page(&rare, "m7").await;
        assert_eq!(traces, newest_calling(10_000, 100, 7));
        assert_eq!(rounds, vec![(51, false), (102, true)]);
    }
}
