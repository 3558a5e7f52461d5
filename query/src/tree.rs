//! Span tree order: depth-first from the roots, siblings by start time.

use std::collections::HashMap;

use vigil_schemas::SpanRow;

/// Orders a trace's spans depth-first from its roots, siblings (and roots) by start time then
/// span id. A span whose parent is not among the spans counts as a root; spans caught in a
/// parent cycle (bad input) come last, each followed by its subtree, so none is ever dropped.
pub(crate) fn tree_order(mut spans: Vec<SpanRow>) -> Vec<SpanRow> {
    spans.sort_by(|a, b| (a.start_time_ns, &a.span_id).cmp(&(b.start_time_ns, &b.span_id)));
    let position: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match position.get(span.parent_span_id.as_str()) {
            Some(&parent) if !span.parent_span_id.is_empty() && parent != i => {
                children[parent].push(i);
            }
            _ => roots.push(i),
        }
    }
    let mut visited = vec![false; spans.len()];
    let mut order = Vec::with_capacity(spans.len());
    let mut walk = |start: usize, order: &mut Vec<usize>| {
        // Iterative: a trace may be deeper than the stack.
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue;
            }
            order.push(i);
            stack.extend(children[i].iter().rev().filter(|&&c| !visited[c]));
        }
    };
    for root in roots {
        walk(root, &mut order);
    }
    for i in 0..spans.len() {
        walk(i, &mut order);
    }
    let mut slots: Vec<Option<SpanRow>> = spans.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, start: i64) -> SpanRow {
        SpanRow {
            span_id: id.into(),
            parent_span_id: parent.into(),
            start_time_ns: start,
            ..Default::default()
        }
    }

    fn ids(spans: &[SpanRow]) -> Vec<&str> {
        spans.iter().map(|s| s.span_id.as_str()).collect()
    }

    #[test]
    fn orders_depth_first_with_siblings_by_start() {
        let spans = vec![
            span("c2", "root", 30),
            span("g1", "c1", 25),
            span("c1", "root", 20),
            span("root", "", 10),
            span("orphan", "missing", 5),
            span("g0", "c1", 21),
        ];
        let ordered = tree_order(spans);
        assert_eq!(
            ids(&ordered),
            vec!["orphan", "root", "c1", "g0", "g1", "c2"]
        );
    }

    #[test]
    fn keeps_spans_caught_in_cycles_and_survives_deep_traces() {
        let spans = vec![
            span("a", "b", 1),
            span("b", "a", 2),
            span("self", "self", 0),
        ];
        let ordered = tree_order(spans);
        assert_eq!(ids(&ordered), vec!["self", "a", "b"]);

        let deep: Vec<SpanRow> = (0..200_000)
            .map(|i| {
                span(
                    &format!("s{i}"),
                    &if i == 0 {
                        String::new()
                    } else {
                        format!("s{}", i - 1)
                    },
                    i,
                )
            })
            .collect();
        assert_eq!(tree_order(deep).len(), 200_000);
    }
}
