import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Link } from "wouter-preact";
import { api, unwrap, type Run, type Score, type Span } from "../api/client";
import { Badge, Content, Load, Payload } from "../components";
import { count, duration, time, usd } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { markData, useDrawnMeasure } from "../lib/perf";
import { buildRows, type Row } from "../lib/tree";

export function RunDetailPage({ traceId }: { traceId: string }) {
  const loaded = useLoad(
    () =>
      unwrap(api.GET("/api/v1/runs/{trace_id}", { params: { path: { trace_id: traceId } } })).then(
        (detail) => {
          markData("run");
          return detail;
        },
      ),
    [traceId],
  );
  useDrawnMeasure("run", loaded.state === "ready");
  return (
    <section>
      <Load loaded={loaded}>
        {(detail) => (
          <RunDetail traceId={traceId} run={detail.run} spans={detail.spans} scores={detail.scores} />
        )}
      </Load>
    </section>
  );
}

function RunDetail({
  traceId,
  run,
  spans,
  scores,
}: {
  traceId: string;
  run: Run | null;
  spans: Span[];
  scores: Score[];
}) {
  const rows = useMemo(() => buildRows(spans), [spans]);
  const [selected, setSelected] = useState<string | null>(rows[0]?.span.span_id ?? null);
  const span = rows.find((r) => r.span.span_id === selected)?.span;
  const tokens = spans.reduce(
    (t, s) => ({
      input: t.input + s.input_tokens,
      output: t.output + s.output_tokens,
      cached: t.cached + s.cached_input_tokens,
      reasoning: t.reasoning + s.reasoning_tokens,
    }),
    { input: 0, output: 0, cached: 0, reasoning: 0 },
  );
  const priced = spans.filter((s) => s.cost_usd !== null);
  const cost = priced.reduce((sum, s) => sum + (s.cost_usd ?? 0), 0);
  const prompts = [
    ...new Set(spans.filter((s) => s.prompt_version).map((s) => `${s.prompt_id}@${s.prompt_version}`)),
  ];
  return (
    <>
      <h1>
        Run <code>{traceId}</code>
      </h1>
      {run ? (
        <dl class="header">
          <dt>Outcome</dt>
          <dd>
            <Badge kind={run.outcome}>{run.outcome}</Badge> {run.error_message}
          </dd>
          <dt>Started</dt>
          <dd>{time(run.start_time)}</dd>
          <dt>Duration</dt>
          <dd>{duration(run.duration_ms)}</dd>
          <dt>Cost</dt>
          <dd>
            {priced.length > 0 ? usd(cost) : "—"}
            {priced.length < spans.filter((s) => s.kind === "model").length && (
              <span class="muted"> (some model calls unpriced)</span>
            )}
          </dd>
          <dt>Tokens</dt>
          <dd>
            <Tokens {...tokens} />
          </dd>
          <dt>Agent</dt>
          <dd>
            {run.agent_name} {run.agent_version}
          </dd>
          <dt>Task type</dt>
          <dd>{run.task_type || "—"}</dd>
          <dt>Prompt versions</dt>
          <dd>{prompts.join(", ") || "—"}</dd>
          <dt>Environment / release</dt>
          <dd>
            {run.environment || "—"} / {run.release || "—"}
          </dd>
          <dt>Classification</dt>
          <dd>{run.classification.join(", ") || "—"}</dd>
          <dt>Retention</dt>
          <dd>{run.retention || "—"}</dd>
          <dt>Session</dt>
          <dd>
            {run.session_id ? (
              <Link href={`/sessions/${encodeURIComponent(run.session_id)}`}>{run.session_id}</Link>
            ) : (
              "—"
            )}
          </dd>
          <dt>User</dt>
          <dd class="hash">
            {run.user_hash ? (
              <Link href={`/users/${encodeURIComponent(run.user_hash)}`}>{run.user_hash}</Link>
            ) : (
              "—"
            )}
          </dd>
        </dl>
      ) : (
        <p class="muted">
          Only spans have arrived for this trace so far; the run is built when its root span comes.
        </p>
      )}
      <div class="trace">
        <Waterfall rows={rows} selected={selected} select={setSelected} />
        {span && <SpanPanel span={span} classification={run?.classification} />}
      </div>
      <h2>Scores</h2>
      {scores.length === 0 ? (
        <p class="muted">No scores.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Value</th>
              <th>Source</th>
              <th>Span</th>
              <th>Comment</th>
              <th>Time</th>
            </tr>
          </thead>
          <tbody>
            {scores.map((s) => (
              <tr key={s.score_id}>
                <td>{s.name}</td>
                <td>
                  {s.bool_value !== null ? String(s.bool_value) : s.value !== null ? s.value : s.string_value}
                </td>
                <td>{s.source}</td>
                <td class="hash">{s.span_id || "run"}</td>
                <td>{s.comment}</td>
                <td>{time(s.time)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

function Tokens(t: { input: number; output: number; cached: number; reasoning: number }) {
  return (
    <>
      {count(t.input)} in · {count(t.output)} out · {count(t.cached)} cached · {count(t.reasoning)} reasoning
    </>
  );
}

/** Rows are this tall (CSS `.span-row`), so a long run draws only the rows in view. */
const ROW_HEIGHT = 26;
/** Runs up to this many spans draw every row; longer ones only those in view (and a margin). */
const DRAW_ALL_BELOW = 300;
const MARGIN_ROWS = 30;

function Waterfall({
  rows,
  selected,
  select,
}: {
  rows: Row<Span>[];
  selected: string | null;
  select: (id: string) => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 800 });
  const windowed = rows.length > DRAW_ALL_BELOW;
  const first = windowed ? Math.max(0, Math.floor(view.top / ROW_HEIGHT) - MARGIN_ROWS) : 0;
  const last = windowed
    ? Math.min(rows.length, Math.ceil((view.top + view.height) / ROW_HEIGHT) + MARGIN_ROWS)
    : rows.length;
  const [focusing, setFocusing] = useState<string | null>(null);
  useEffect(() => {
    if (!focusing) return;
    box.current?.querySelector<HTMLElement>(`[data-span-id="${focusing}"]`)?.focus();
    setFocusing(null);
  }, [focusing, first, last]);
  // Up and down arrows move the selection (and the focus) along the tree; Home and End jump.
  const onKeyDown = (e: KeyboardEvent) => {
    const at = rows.findIndex((r) => r.span.span_id === selected);
    const to =
      e.key === "ArrowDown"
        ? at + 1
        : e.key === "ArrowUp"
          ? at - 1
          : e.key === "Home"
            ? 0
            : e.key === "End"
              ? rows.length - 1
              : null;
    if (to === null || to < 0 || to >= rows.length) return;
    e.preventDefault();
    const element = box.current;
    if (element) {
      const top = to * ROW_HEIGHT;
      if (top < element.scrollTop) element.scrollTop = top;
      else if (top + ROW_HEIGHT > element.scrollTop + element.clientHeight) {
        element.scrollTop = top + ROW_HEIGHT - element.clientHeight;
      }
      setView({ top: element.scrollTop, height: element.clientHeight });
    }
    const id = rows[to].span.span_id;
    select(id);
    setFocusing(id);
  };
  return (
    <div
      class="waterfall"
      role="tree"
      aria-label="Spans"
      data-rows={rows.length}
      ref={box}
      onKeyDown={onKeyDown}
      onScroll={(e) => {
        const element = e.currentTarget as HTMLDivElement;
        if (windowed) setView({ top: element.scrollTop, height: element.clientHeight });
      }}
    >
      {first > 0 && <div style={{ height: `${first * ROW_HEIGHT}px` }} />}
      {rows.slice(first, last).map(({ span, depth, offset, width, repeated }) => (
        <button
          key={span.span_id}
          role="treeitem"
          aria-selected={span.span_id === selected}
          class={`span-row${span.span_id === selected ? " selected" : ""}${span.status === "error" ? " failed" : ""}`}
          data-span-id={span.span_id}
          onClick={() => select(span.span_id)}
        >
          <span class="span-name" style={{ paddingLeft: `${depth * 14}px` }}>
            <Badge kind={span.kind}>{span.kind}</Badge>
            {repeated && <Badge kind="repeated">repeated</Badge>} {span.name}
          </span>
          <span class="bar-track">
            <span
              class="bar"
              data-offset={offset.toFixed(3)}
              data-width={width.toFixed(3)}
              style={{ left: `${offset}%`, width: `max(${width}%, 1px)` }}
            />
          </span>
          <span class="span-duration">{duration(span.duration_ms)}</span>
        </button>
      ))}
      {last < rows.length && <div style={{ height: `${(rows.length - last) * ROW_HEIGHT}px` }} />}
    </div>
  );
}

function SpanPanel({ span, classification }: { span: Span; classification?: string[] }) {
  const io = (label: string, text: string) => (
    <div>
      <h3>{label}</h3>
      <Payload text={text} classification={classification} />
    </div>
  );
  return (
    <aside class="span-panel" aria-label="Selected span">
      <h2>{span.name}</h2>
      <dl>
        <dt>Kind / status</dt>
        <dd>
          {span.kind} / <Badge kind={span.status}>{span.status}</Badge> {span.error_type}{" "}
          {span.status_message}
        </dd>
        <dt>Duration</dt>
        <dd>{duration(span.duration_ms)}</dd>
        {span.model && (
          <>
            <dt>Model</dt>
            <dd>
              {span.provider} {span.model} {span.model_version}
            </dd>
            <dt>Tokens</dt>
            <dd>
              <Tokens
                input={span.input_tokens}
                output={span.output_tokens}
                cached={span.cached_input_tokens}
                reasoning={span.reasoning_tokens}
              />
            </dd>
            <dt>Cost</dt>
            <dd>
              {usd(span.cost_usd)} {span.cost_source && <span class="muted">({span.cost_source})</span>}
            </dd>
          </>
        )}
        {span.prompt_version && (
          <>
            <dt>Prompt</dt>
            <dd>
              {span.prompt_id} {span.prompt_version}
            </dd>
          </>
        )}
        {span.tool_name && (
          <>
            <dt>Tool</dt>
            <dd>
              {span.tool_name} {span.tool_version} {span.retry_count > 0 && `(retry ${span.retry_count})`}
            </dd>
          </>
        )}
      </dl>
      {io("Input", span.input)}
      {io("Output", span.output)}
      <h3>Attributes</h3>
      {Object.keys(span.attributes).length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <table class="attributes">
          <tbody>
            {Object.entries(span.attributes).map(([k, v]) => (
              <tr key={k}>
                <th>{k}</th>
                <td>
                  <Content text={v} classification={classification} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </aside>
  );
}
