//! Newest-version selection for rows already fetched into memory (small results: one trace, one
//! session, one page), by the rule every read follows: [`Versioned`] (key and version columns of
//! [`Table`](vigil_schemas::layout::Table)).

use std::collections::HashMap;

use vigil_schemas::{RunRow, ScoreRow, SpanRow, layout::Versioned};

use crate::{
    store::{RunDetail, RunWithScores},
    tree::tree_order,
};

/// The rows that are the newest version of their key, in no particular order.
pub(crate) fn newest<T: Versioned>(rows: Vec<T>) -> Vec<T> {
    let mut best: HashMap<Vec<String>, T> = HashMap::with_capacity(rows.len());
    for row in rows {
        match best.get(&row.key()) {
            Some(kept) if kept.version() >= row.version() => {}
            _ => {
                best.insert(row.key(), row);
            }
        }
    }
    best.into_values().collect()
}

/// One trace's answer from every stored version of its rows: the newest run, the newest spans in
/// tree order, the newest scores by time; `None` when there is neither run nor span.
pub(crate) fn run_detail(
    runs: Vec<RunRow>,
    spans: Vec<SpanRow>,
    scores: Vec<ScoreRow>,
) -> Option<RunDetail> {
    let run = newest(runs).into_iter().next();
    let spans = tree_order(newest(spans));
    if run.is_none() && spans.is_empty() {
        return None;
    }
    let scores = newest_scores_in_time_order(scores);
    Some(RunDetail { run, spans, scores })
}

/// Several traces' runs and scores from every stored version of them: each newest run with its
/// newest scores by time, by trace id.
pub(crate) fn runs_with_scores(
    runs: Vec<RunRow>,
    scores: Vec<ScoreRow>,
) -> HashMap<String, RunWithScores> {
    let mut by_trace: HashMap<String, RunWithScores> = newest(runs)
        .into_iter()
        .map(|run| {
            let scores = Vec::new();
            (run.trace_id.clone(), RunWithScores { run, scores })
        })
        .collect();
    for score in newest_scores_in_time_order(scores) {
        if let Some(run) = by_trace.get_mut(&score.trace_id) {
            run.scores.push(score);
        }
    }
    by_trace
}

/// The newest version of each score, by time, then score id.
fn newest_scores_in_time_order(scores: Vec<ScoreRow>) -> Vec<ScoreRow> {
    let mut scores = newest(scores);
    scores.sort_by(|a, b| (a.time_ns, &a.score_id).cmp(&(b.time_ns, &b.score_id)));
    scores
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
        let mut kept = newest(vec![
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

    #[test]
    fn each_newest_run_gets_its_newest_scores_by_time() {
        let run = |trace: &str, ingested: i64| RunRow {
            trace_id: trace.into(),
            ingested_at_ns: ingested,
            ..Default::default()
        };
        let score = |trace: &str, id: &str, time: i64, ingested: i64| ScoreRow {
            trace_id: trace.into(),
            score_id: id.into(),
            time_ns: time,
            ingested_at_ns: ingested,
            ..Default::default()
        };
        let runs = runs_with_scores(
            vec![run("a", 1), run("a", 2), run("b", 1)],
            vec![
                score("a", "late", 9, 1),
                score("a", "early", 5, 1),
                score("a", "early", 7, 2),
                score("b", "x", 1, 1),
                // A score of a trace whose run has not arrived: no run, no entry.
                score("c", "y", 1, 1),
            ],
        );
        assert_eq!(runs.len(), 2);
        assert_eq!(runs["a"].run.ingested_at_ns, 2);
        let a: Vec<(&str, i64)> = runs["a"]
            .scores
            .iter()
            .map(|s| (s.score_id.as_str(), s.time_ns))
            .collect();
        assert_eq!(a, [("early", 7), ("late", 9)]);
        assert_eq!(runs["b"].scores.len(), 1);
    }
}
