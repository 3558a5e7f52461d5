//! Newest-version selection for rows already fetched into memory (small results: one trace, one
//! session, one page). The order is [`Table::version_order`](vigil_schemas::layout::Table):
//! `ingested_at_ns`, then end and start time (runs, spans) or time (scores), all descending.

use std::{collections::HashMap, hash::Hash};

use vigil_schemas::{RunRow, ScoreRow, SpanRow};

use crate::{store::RunDetail, tree::tree_order};

/// The rows that are the newest version of their key, in no particular order.
fn newest<T, K, V>(rows: Vec<T>, key: impl Fn(&T) -> K, version: impl Fn(&T) -> V) -> Vec<T>
where
    K: Eq + Hash,
    V: Ord,
{
    let mut best: HashMap<K, T> = HashMap::with_capacity(rows.len());
    for row in rows {
        match best.get(&key(&row)) {
            Some(kept) if version(kept) >= version(&row) => {}
            _ => {
                best.insert(key(&row), row);
            }
        }
    }
    best.into_values().collect()
}

/// Runs are keyed by (project, trace); callers fetch one project at a time.
pub(crate) fn newest_runs(rows: Vec<RunRow>) -> Vec<RunRow> {
    newest(
        rows,
        |r| (r.project_id.clone(), r.trace_id.clone()),
        |r| (r.ingested_at_ns, r.end_time_ns, r.start_time_ns),
    )
}

pub(crate) fn newest_spans(rows: Vec<SpanRow>) -> Vec<SpanRow> {
    newest(
        rows,
        |s| (s.project_id.clone(), s.trace_id.clone(), s.span_id.clone()),
        |s| (s.ingested_at_ns, s.end_time_ns, s.start_time_ns),
    )
}

pub(crate) fn newest_scores(rows: Vec<ScoreRow>) -> Vec<ScoreRow> {
    newest(
        rows,
        |s| (s.project_id.clone(), s.trace_id.clone(), s.score_id.clone()),
        |s| (s.ingested_at_ns, s.time_ns),
    )
}

/// One trace's answer from every stored version of its rows: the newest run, the newest spans in
/// tree order, the newest scores by time; `None` when there is neither run nor span.
pub(crate) fn run_detail(
    runs: Vec<RunRow>,
    spans: Vec<SpanRow>,
    scores: Vec<ScoreRow>,
) -> Option<RunDetail> {
    let run = newest_runs(runs).into_iter().next();
    let spans = tree_order(newest_spans(spans));
    if run.is_none() && spans.is_empty() {
        return None;
    }
    let mut scores = newest_scores(scores);
    scores.sort_by(|a, b| (a.time_ns, &a.score_id).cmp(&(b.time_ns, &b.score_id)));
    Some(RunDetail { run, spans, scores })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_version_of_each_key() {
        let run = |trace: &str, ingested: i64, end: i64| RunRow {
            trace_id: trace.into(),
            ingested_at_ns: ingested,
            end_time_ns: end,
            ..Default::default()
        };
        let mut kept = newest_runs(vec![
            run("a", 1, 0),
            run("a", 3, 0),
            run("b", 2, 5),
            run("a", 2, 9),
            run("b", 2, 7),
        ]);
        kept.sort_by(|x, y| x.trace_id.cmp(&y.trace_id));
        assert_eq!(
            kept.iter()
                .map(|r| (r.trace_id.as_str(), r.ingested_at_ns, r.end_time_ns))
                .collect::<Vec<_>>(),
            vec![("a", 3, 0), ("b", 2, 7)]
        );
    }
}
