// The span tree and its waterfall, from the spans of one run. Pure, unit-tested.

export interface SpanLike {
  span_id: string;
  parent_span_id: string;
  start_time_ns: number;
  end_time_ns: number;
  kind: string;
  status: string;
  tool_name: string;
  tool_args_hash: string;
}

export interface Row<S extends SpanLike> {
  span: S;
  depth: number;
  /** Bar start and width in percent of the run's time span. */
  offset: number;
  width: number;
  /** A tool call with the same tool and arguments as an earlier one of this run. */
  repeated: boolean;
}

/**
 * Depth-first rows, children by start time (then id), the way the API orders them. Every span is
 * shown once: one whose parent is not among the spans (or whose ancestors form a cycle) at the
 * top level.
 */
export function buildRows<S extends SpanLike>(spans: S[]): Row<S>[] {
  if (spans.length === 0) return [];
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map<string, S[]>();
  const roots: S[] = [];
  for (const span of spans) {
    if (span.parent_span_id && ids.has(span.parent_span_id) && span.parent_span_id !== span.span_id) {
      const list = children.get(span.parent_span_id) ?? [];
      list.push(span);
      children.set(span.parent_span_id, list);
    } else {
      roots.push(span);
    }
  }
  const byStart = (a: S, b: S) =>
    a.start_time_ns - b.start_time_ns || (a.span_id < b.span_id ? -1 : a.span_id > b.span_id ? 1 : 0);
  const start = Math.min(...spans.map((s) => s.start_time_ns));
  const end = Math.max(...spans.map((s) => s.end_time_ns));
  const total = Math.max(end - start, 1);
  // Repeated tool calls: the same tool and arguments as a call that started earlier.
  const repeatedIds = new Set<string>();
  const seenCalls = new Set<string>();
  for (const span of spans.filter((s) => s.kind === "tool" && s.tool_args_hash).sort(byStart)) {
    const call = `${span.tool_name}\u0000${span.tool_args_hash}`;
    if (seenCalls.has(call)) repeatedIds.add(span.span_id);
    seenCalls.add(call);
  }
  const rows: Row<S>[] = [];
  const visited = new Set<string>();
  const visit = (span: S, depth: number) => {
    if (visited.has(span.span_id)) return;
    visited.add(span.span_id);
    const repeated = repeatedIds.has(span.span_id);
    rows.push({
      span,
      depth,
      offset: ((span.start_time_ns - start) / total) * 100,
      width: (Math.max(span.end_time_ns - span.start_time_ns, 0) / total) * 100,
      repeated,
    });
    for (const child of (children.get(span.span_id) ?? []).sort(byStart)) visit(child, depth + 1);
  };
  for (const root of roots.sort(byStart)) visit(root, 0);
  // Spans whose parents form a cycle are reachable from no root: shown at the top level too.
  for (const span of [...spans].sort(byStart)) visit(span, 0);
  return rows;
}
