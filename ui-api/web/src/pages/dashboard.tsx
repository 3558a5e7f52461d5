import { useMemo } from "preact/hooks";
import { api, unwrap, type Schemas } from "../api/client";
import { Chart } from "../chart";
import { Load } from "../components";
import { count, duration, usd } from "../lib/format";
import { loadCatalog, refusedFields } from "../lib/catalog";
import { useLoad, useQueryParams } from "../lib/hooks";
import { PRESETS } from "../lib/range";
import { SHADOW_CHOICES, shadowOf, type ShadowRuns } from "../lib/shadow";
import { type MetricRow, stepFor, toSeries } from "../lib/series";

type MetricName = Schemas["MetricName"];
type FieldName = Schemas["FieldName"];

/** Fields the page groups and filters by. */
const GROUPS: FieldName[] = ["agent", "environment", "release", "task_type", "model", "prompt_version"];
const FILTERS: FieldName[] = ["agent", "environment", "release", "model", "prompt_version", "tool"];

const percent = (v: number) => `${(v * 100).toFixed(1)}%`;
const plain = (v: number) => count(Math.round(v * 100) / 100);
const ms = (v: number) => duration(v);
const dollars = (v: number) => usd(v);

interface Range {
  from: string;
  to: string;
  fromMs: number;
  toMs: number;
}

/** The dashboard's range: a preset counted back from now (default 24 h), or `from` and `to`. */
function rangeOf(params: Record<string, string>): Range {
  if (params.from && params.to && !params.range) {
    return { from: params.from, to: params.to, fromMs: Date.parse(params.from), toMs: Date.parse(params.to) };
  }
  const toMs = Date.now();
  const fromMs = toMs - (PRESETS[params.range ?? "24h"] ?? PRESETS["24h"]);
  return { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), fromMs, toMs };
}

/**
 * The metrics API's rows for these metrics, without the filters the API refuses for them (a
 * tool-call metric is not filtered by a model-call field, nor the reverse), which are `ignored`.
 */
function useMetrics(
  range: Range,
  metrics: MetricName[],
  groupBy: FieldName[],
  filters: Record<string, string[]>,
  shadow: ShadowRuns,
  step?: string,
) {
  const asked = { from: range.from, to: range.to, metrics, group_by: groupBy, filters, shadow, step };
  return useLoad(async () => {
    const ignored = refusedFields(await loadCatalog(), metrics, Object.keys(filters));
    const kept = Object.fromEntries(Object.entries(filters).filter(([f]) => !ignored.includes(f)));
    const answer = await unwrap(api.POST("/api/v1/metrics/query", { body: { ...asked, filters: kept } }));
    return { rows: answer.rows as MetricRow[], ignored };
  }, [JSON.stringify(asked)]);
}

/** Says which of the page's filters a chart could not apply. */
function Ignored({ fields }: { fields: string[] }) {
  if (fields.length === 0) return null;
  return (
    <figcaption class="muted">
      Not filtered by {fields.join(" or ")}: not a property of the calls counted here.
    </figcaption>
  );
}

export function DashboardPage() {
  const [params, setParams] = useQueryParams();
  const range = useMemo(() => rangeOf(params), [params.range, params.from, params.to]);
  const group = (GROUPS as string[]).includes(params.group) ? (params.group as FieldName) : "agent";
  const filters: Record<string, string[]> = {};
  for (const f of FILTERS) if (params[f]) filters[f] = [params[f]];
  const shadow = shadowOf(params.shadow);
  const step = stepFor(range.fromMs, range.toMs);
  const grouped = useMetrics(
    range,
    ["runs", "completion_rate", "silent_partial_failures"],
    [group],
    filters,
    shadow,
    step.name,
  );
  const latency = useMetrics(
    range,
    ["run_latency_p50_ms", "run_latency_p90_ms", "run_latency_p99_ms"],
    [],
    filters,
    shadow,
    step.name,
  );
  const tokens = useMetrics(
    range,
    ["input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"],
    [],
    filters,
    shadow,
    step.name,
  );
  const costs = useMetrics(range, ["cost_usd"], ["model"], filters, shadow, step.name);
  const tools = useMetrics(range, ["tool_error_rate"], ["tool"], filters, shadow, step.name);
  const table = (field: FieldName) =>
    useMetrics(
      range,
      ["runs", "completion_rate", "run_latency_p99_ms", "cost_per_run_usd"],
      [field],
      filters,
      shadow,
    );
  const byAgent = table("agent");
  const byPrompt = table("prompt_version");

  const chart = (
    loaded: ReturnType<typeof useMetrics>,
    title: string,
    metric: string,
    groupBy: FieldName[],
    format: (v: number) => string,
    missing: 0 | null = null,
  ) => (
    <Load loaded={loaded}>
      {({ rows, ignored }) => {
        const { x, series } = toSeries(rows, metric, groupBy, range.fromMs, range.toMs, step.ms, missing);
        return (
          <figure>
            <Chart title={title} x={x} series={series} format={format} />
            <Ignored fields={ignored} />
            {groupBy.length === 1 && series.length > 1 && (
              <div class="picks" aria-label={`Filter by ${groupBy[0]}`}>
                {series.map((s) => (
                  <button onClick={() => setParams({ [groupBy[0]]: s.label })}>{s.label || "(none)"}</button>
                ))}
              </div>
            )}
          </figure>
        );
      }}
    </Load>
  );
  const multi = (
    loaded: ReturnType<typeof useMetrics>,
    title: string,
    metrics: string[],
    format: (v: number) => string,
    missing: 0 | null = null,
  ) => (
    <Load loaded={loaded}>
      {({ rows, ignored }) => {
        const parts = metrics.map((m) => ({
          m,
          ...toSeries(rows, m, [], range.fromMs, range.toMs, step.ms, missing),
        }));
        const series = parts.map((p) => ({ label: p.m, values: p.series[0]?.values ?? p.x.map(() => null) }));
        return (
          <figure>
            <Chart title={title} x={parts[0].x} series={series} format={format} />
            <Ignored fields={ignored} />
          </figure>
        );
      }}
    </Load>
  );

  return (
    <section>
      <h1>Dashboard</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Time
          <select
            value={params.range ?? (params.from && params.to ? "custom" : "24h")}
            onChange={(e) => {
              const v = (e.target as HTMLSelectElement).value;
              if (v !== "custom") setParams({ range: v, from: null, to: null });
            }}
          >
            {Object.keys(PRESETS).map((p) => (
              <option value={p}>last {p}</option>
            ))}
            {params.from && params.to && <option value="custom">custom</option>}
          </select>
        </label>
        <label>
          Group by
          <select value={group} onChange={(e) => setParams({ group: (e.target as HTMLSelectElement).value })}>
            {GROUPS.map((g) => (
              <option value={g}>{g}</option>
            ))}
          </select>
        </label>
        <label>
          Shadow runs
          <select
            name="shadow"
            value={shadow}
            onChange={(e) => setParams({ shadow: (e.target as HTMLSelectElement).value })}
          >
            {SHADOW_CHOICES.map(([choice, label]) => (
              <option value={choice}>{label}</option>
            ))}
          </select>
        </label>
        {FILTERS.map((f) => (
          <label key={`${f}=${params[f] ?? ""}`}>
            {f}
            <input
              defaultValue={params[f] ?? ""}
              onChange={(e) => setParams({ [f]: (e.target as HTMLInputElement).value })}
            />
          </label>
        ))}
        <span class="muted">
          {range.from} → {range.to}, per {step.name}
        </span>
      </form>
      <div class="charts">
        {chart(grouped, "Runs", "runs", [group], plain, 0)}
        {chart(grouped, "Completion rate", "completion_rate", [group], percent)}
        {multi(
          latency,
          "Run latency p50 / p90 / p99",
          ["run_latency_p50_ms", "run_latency_p90_ms", "run_latency_p99_ms"],
          ms,
        )}
        {chart(costs, "Cost by model (USD)", "cost_usd", ["model"], dollars)}
        {multi(
          tokens,
          "Tokens by kind",
          ["input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"],
          plain,
          0,
        )}
        {chart(tools, "Tool error rate by tool", "tool_error_rate", ["tool"], percent)}
        {chart(grouped, "Silent partial failures", "silent_partial_failures", [group], plain, 0)}
      </div>
      <SummaryTable title="Agents" field="agent" loaded={byAgent} pick={(v) => setParams({ agent: v })} />
      <SummaryTable
        title="Prompt versions"
        field="prompt_version"
        loaded={byPrompt}
        pick={(v) => setParams({ prompt_version: v })}
      />
    </section>
  );
}

function SummaryTable({
  title,
  field,
  loaded,
  pick,
}: {
  title: string;
  field: FieldName;
  loaded: ReturnType<typeof useMetrics>;
  pick: (value: string) => void;
}) {
  const fmt = (v: unknown, f: (n: number) => string) => (typeof v === "number" ? f(v) : "—");
  return (
    <>
      <h2>{title}</h2>
      <Load loaded={loaded}>
        {({ rows }) =>
          rows.length === 0 ? (
            <p class="empty">No runs in this range.</p>
          ) : (
            <table class="summary" data-field={field}>
              <thead>
                <tr>
                  <th>{field}</th>
                  <th class="num">Runs</th>
                  <th class="num">Completion rate</th>
                  <th class="num">p99 latency</th>
                  <th class="num">Cost per run</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((row) => (
                  <tr data-key={String(row[field] ?? "")}>
                    <td>
                      <button class="cell-filter" onClick={() => pick(String(row[field] ?? ""))}>
                        {String(row[field] ?? "") || "(none)"}
                      </button>
                    </td>
                    <td class="num" data-metric="runs">
                      {fmt(row.runs, count)}
                    </td>
                    <td class="num" data-metric="completion_rate" data-value={String(row.completion_rate)}>
                      {fmt(row.completion_rate, percent)}
                    </td>
                    <td
                      class="num"
                      data-metric="run_latency_p99_ms"
                      data-value={String(row.run_latency_p99_ms)}
                    >
                      {fmt(row.run_latency_p99_ms, duration)}
                    </td>
                    <td class="num" data-metric="cost_per_run_usd" data-value={String(row.cost_per_run_usd)}>
                      {fmt(row.cost_per_run_usd, usd)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Load>
    </>
  );
}
