import { useState } from "preact/hooks";
import { Link, useLocation } from "wouter-preact";
import { api, unwrap, type RunSummary } from "../api/client";
import { Badge, Load, Pager } from "../components";
import { count, duration, time, usd } from "../lib/format";
import { useLoad, useQueryParams } from "../lib/hooks";
import { markData, useDrawnMeasure } from "../lib/perf";
import { PRESETS, bounds } from "../lib/range";
import { LookUpUser } from "./user";

/** The filters of the run list, as the URL and the API name them. */
const FILTERS = [
  ["agent", "Agent"],
  ["task_type", "Task type"],
  ["outcome", "Outcome"],
  ["environment", "Environment"],
  ["model", "Model"],
  ["prompt_version", "Prompt version"],
  ["session_id", "Session"],
  ["user_hash", "User"],
] as const;

type FilterName = (typeof FILTERS)[number][0];

const PAGE_SIZE = 50;
const REFRESH_MS = 10_000;

export function RunsPage() {
  const [params, setParams] = useQueryParams();
  const [, navigate] = useLocation();
  const [autoRefresh, setAutoRefresh] = useState(false);
  const { from, to } = bounds(params);
  const query = {
    from,
    to,
    limit: PAGE_SIZE,
    cursor: params.cursor || undefined,
    ...Object.fromEntries(FILTERS.map(([name]) => [name, params[name] || undefined])),
  };
  const loaded = useLoad(
    () =>
      unwrap(api.GET("/api/v1/runs", { params: { query } })).then((page) => {
        markData("runs");
        return page;
      }),
    [JSON.stringify(query)],
    autoRefresh ? REFRESH_MS : undefined,
  );
  useDrawnMeasure("runs", loaded.state === "ready");
  const filterBy = (name: FilterName, value: string) => setParams({ [name]: value, cursor: null });
  const [jump, setJump] = useState("");

  return (
    <section>
      <h1>Runs</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          const data = new FormData(e.currentTarget as HTMLFormElement);
          const changes: Record<string, string | null> = { cursor: null };
          for (const [name] of FILTERS) changes[name] = String(data.get(name) ?? "");
          setParams(changes);
        }}
      >
        <label>
          Time
          <select
            value={params.range ?? (params.from || params.to ? "custom" : "")}
            onChange={(e) => {
              const range = (e.target as HTMLSelectElement).value;
              setParams({ range: range === "custom" ? null : range || null, cursor: null });
            }}
          >
            <option value="">all time</option>
            {Object.keys(PRESETS).map((p) => (
              <option value={p}>last {p}</option>
            ))}
            <option value="custom">custom</option>
          </select>
        </label>
        {!params.range && (
          <>
            <label>
              From
              <input
                name="from"
                value={params.from ?? ""}
                placeholder="RFC 3339, UTC"
                onChange={(e) => setParams({ from: (e.target as HTMLInputElement).value, cursor: null })}
              />
            </label>
            <label>
              To
              <input
                name="to"
                value={params.to ?? ""}
                placeholder="RFC 3339, UTC"
                onChange={(e) => setParams({ to: (e.target as HTMLInputElement).value, cursor: null })}
              />
            </label>
          </>
        )}
        {FILTERS.map(([name, label]) => (
          <label key={`${name}=${params[name] ?? ""}`}>
            {label}
            <input name={name} defaultValue={params[name] ?? ""} />
          </label>
        ))}
        <button type="submit">Filter</button>
        <label class="inline">
          <input
            type="checkbox"
            checked={autoRefresh}
            onChange={(e) => setAutoRefresh((e.target as HTMLInputElement).checked)}
          />
          Auto-refresh
        </label>
      </form>
      <form
        class="jump"
        onSubmit={(e) => {
          e.preventDefault();
          if (jump.trim()) navigate(`/runs/${jump.trim().toLowerCase()}`);
        }}
      >
        <input
          aria-label="Trace id"
          placeholder="Go to trace id"
          value={jump}
          onInput={(e) => setJump((e.target as HTMLInputElement).value)}
        />
      </form>
      <LookUpUser />
      {params.user_hash && (
        <p>
          <Link href={`/users/${encodeURIComponent(params.user_hash)}`}>This user's page</Link>
        </p>
      )}
      <Load loaded={loaded}>
        {(page) =>
          page.runs.length === 0 && !params.cursor ? (
            <EmptyRuns filtered={FILTERS.some(([n]) => params[n]) || !!from || !!to} />
          ) : (
            <>
              <RunTable runs={page.runs} filterBy={filterBy} />
              <Pager cursor={params.cursor} next={page.next_cursor} go={(cursor) => setParams({ cursor })} />
            </>
          )
        }
      </Load>
    </section>
  );
}

function RunTable({
  runs,
  filterBy,
}: {
  runs: RunSummary[];
  filterBy: (name: FilterName, value: string) => void;
}) {
  const cell = (name: FilterName, value: string) =>
    value ? (
      <button
        class="cell-filter"
        title={`Only runs with ${name} = ${value}`}
        onClick={() => filterBy(name, value)}
      >
        {value}
      </button>
    ) : (
      <span class="muted">—</span>
    );
  return (
    <table class="runs">
      <thead>
        <tr>
          <th>Start (UTC)</th>
          <th>Agent</th>
          <th>Task type</th>
          <th>Outcome</th>
          <th class="num">Duration</th>
          <th class="num">Cost</th>
          <th class="num" title="Input / output tokens of the run's model calls">
            Tokens in / out
          </th>
          <th class="num" title="Model calls / tool calls">
            Calls
          </th>
          <th class="num" title="Failed model and tool calls">
            Errors
          </th>
          <th>Environment</th>
          <th>Session</th>
          <th>User</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((run) => (
          <tr key={run.trace_id}>
            <td>
              <Link href={`/runs/${run.trace_id}`}>{time(run.start_time)}</Link>
            </td>
            <td>{cell("agent", run.agent_name)}</td>
            <td>{cell("task_type", run.task_type)}</td>
            <td>
              <Badge kind={run.outcome}>{run.outcome}</Badge>
              {run.silent_partial_failure && (
                <Badge kind="partial">
                  <span title="Ended success, but a model or tool call failed">silent failure</span>
                </Badge>
              )}
            </td>
            <td class="num">{duration(run.duration_ms)}</td>
            <td
              class="num"
              title={
                run.calls.unpriced_model_calls
                  ? `${run.calls.unpriced_model_calls} model calls unpriced`
                  : undefined
              }
            >
              {usd(run.calls.cost_usd)}
              {run.calls.unpriced_model_calls > 0 && run.calls.cost_usd !== null && "*"}
            </td>
            <td class="num">
              {count(run.calls.input_tokens)} / {count(run.calls.output_tokens)}
            </td>
            <td class="num">
              {run.calls.model_calls} / {run.calls.tool_calls}
            </td>
            <td class="num">{run.calls.failed_calls || ""}</td>
            <td>{cell("environment", run.environment)}</td>
            <td>{cell("session_id", run.session_id)}</td>
            <td class="hash">{cell("user_hash", run.user_hash)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function EmptyRuns({ filtered }: { filtered: boolean }) {
  if (filtered) return <p class="empty">No runs match these filters.</p>;
  const origin = window.location.origin;
  const grpc = `${window.location.protocol}//${window.location.hostname}:4317`;
  return (
    <div class="empty">
      <p>
        No runs yet. Point an OpenTelemetry SDK at Vigil (a key with the <code>ingest</code> role):
      </p>
      <pre class="content">{`OTEL_EXPORTER_OTLP_ENDPOINT=${grpc}
OTEL_EXPORTER_OTLP_PROTOCOL=grpc
OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20<key>"

# or OTLP/HTTP:
OTEL_EXPORTER_OTLP_ENDPOINT=${origin}
OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`}</pre>
      <p>or a Langfuse SDK:</p>
      <pre class="content">{`LANGFUSE_HOST=${origin}
LANGFUSE_PUBLIC_KEY=<key id, vk_…>
LANGFUSE_SECRET_KEY=<key secret>`}</pre>
      <p>
        or try it with demo data: <code>vigil demo</code>.
      </p>
    </div>
  );
}
