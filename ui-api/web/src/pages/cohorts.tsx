import { useMemo } from "preact/hooks";
import { api, unwrap, type Schemas } from "../api/client";
import { Badge, Load } from "../components";
import { count } from "../lib/format";
import { useLoad, useQueryParams } from "../lib/hooks";
import { PRESETS } from "../lib/range";
import { SHADOW_CHOICES, shadowOf, type ShadowRuns } from "../lib/shadow";

type Metric = Schemas["MetricComparison"];

/** The shadow-run choice of one cohort. */
function ShadowSelect({ name, value }: { name: string; value: ShadowRuns }) {
  return (
    <label class="field">
      Shadow runs
      <select name={name}>
        {SHADOW_CHOICES.map(([choice, label]) => (
          <option key={choice} value={choice} selected={choice === value}>
            {label}
          </option>
        ))}
      </select>
    </label>
  );
}

/** `field=value, field=value` as metric filters; a field's values add up. */
export function parseFilters(text: string): Record<string, string[]> {
  const filters: Record<string, string[]> = {};
  for (const part of text.split(",")) {
    const [field, ...rest] = part.split("=");
    const name = field.trim();
    if (!name || rest.length === 0) continue;
    (filters[name] ??= []).push(rest.join("=").trim());
  }
  return filters;
}

/** A figure as the table shows it: rates as percentages, the rest with four decimals. */
function figure(metric: Metric, value: number | null | undefined): string {
  if (value === null || value === undefined) return "—";
  return metric.metric.endsWith("_rate") ? `${(value * 100).toFixed(2)}%` : value.toFixed(4);
}

function verdictKind(verdict: Metric["verdict"]): string {
  return verdict === "regressed" ? "failure" : verdict === "improved" ? "success" : "partial";
}

/** Two cohorts of production runs compared: the cohorts and the range live in the URL. */
export function CohortsPage() {
  const [params, setParams] = useQueryParams();
  const range = params.range ?? "24h";
  const asked = params.baseline && params.candidate;
  const request = useMemo(() => {
    const to = Date.now();
    return {
      from: new Date(to - (PRESETS[range] ?? PRESETS["24h"])).toISOString(),
      to: new Date(to).toISOString(),
      baseline: { filters: parseFilters(params.baseline ?? ""), shadow: shadowOf(params.baseline_shadow) },
      candidate: { filters: parseFilters(params.candidate ?? ""), shadow: shadowOf(params.candidate_shadow) },
      alpha: Number(params.alpha ?? 0.05),
    };
  }, [
    range,
    params.baseline,
    params.candidate,
    params.alpha,
    params.baseline_shadow,
    params.candidate_shadow,
  ]);
  const report = useLoad(
    () => (asked ? unwrap(api.POST("/api/v1/cohorts/compare", { body: request })) : Promise.resolve(null)),
    [request, asked],
  );
  const submit = (e: Event) => {
    e.preventDefault();
    const data = new FormData(e.currentTarget as HTMLFormElement);
    const text = (name: string) => String(data.get(name) ?? "").trim();
    setParams({
      baseline: text("baseline"),
      candidate: text("candidate"),
      baseline_shadow: text("baseline_shadow"),
      candidate_shadow: text("candidate_shadow"),
      range: text("range"),
      alpha: text("alpha"),
    });
  };
  return (
    <section>
      <h1>Cohorts</h1>
      <p class="muted">
        Two sets of production runs, such as canary and production or release A and B, compared with unpaired
        tests. Filters are metric filters: <code>environment=canary, agent=support-bot</code>. Shadow runs (
        <code>vigil.shadow = true</code>) are left out unless a cohort asks for them; a cohort of them alone,
        beside the same filters without them, compares a shadow deployment with the runs it shadowed.
      </p>
      <form class="editor" aria-label="Cohorts" onSubmit={submit}>
        <label class="field">
          Baseline
          <input name="baseline" required defaultValue={params.baseline ?? "environment=production"} />
        </label>
        <ShadowSelect name="baseline_shadow" value={shadowOf(params.baseline_shadow)} />
        <label class="field">
          Candidate
          <input name="candidate" required defaultValue={params.candidate ?? "environment=canary"} />
        </label>
        <ShadowSelect name="candidate_shadow" value={shadowOf(params.candidate_shadow)} />
        <label class="field">
          Range
          <select name="range">
            {Object.keys(PRESETS).map((name) => (
              <option key={name} value={name} selected={name === range}>
                last {name}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          α
          <input
            name="alpha"
            type="number"
            step="0.01"
            min="0.001"
            max="0.5"
            defaultValue={params.alpha ?? "0.05"}
          />
        </label>
        <div class="actions">
          <button type="submit">Compare</button>
        </div>
      </form>
      <Load loaded={report}>
        {(report) =>
          report === null ? (
            <p class="empty">Name two cohorts to compare.</p>
          ) : (
            <>
              <p data-runs={`${report.baseline_runs},${report.candidate_runs}`}>
                Baseline: {count(report.baseline_runs)} runs · candidate: {count(report.candidate_runs)} runs
              </p>
              <table class="cohorts">
                <thead>
                  <tr>
                    <th>Metric</th>
                    <th class="num">Baseline</th>
                    <th class="num">Candidate</th>
                    <th class="num">Difference</th>
                    <th class="num">p</th>
                    <th>Test</th>
                    <th>Verdict</th>
                  </tr>
                </thead>
                <tbody>
                  {report.metrics.map((m) => (
                    <tr key={m.metric} data-metric={m.metric} data-verdict={m.verdict}>
                      <td>{m.metric}</td>
                      <td class="num">{figure(m, m.baseline)}</td>
                      <td class="num">{figure(m, m.candidate)}</td>
                      <td class="num">{figure(m, m.difference)}</td>
                      <td class="num">
                        {m.p_value === null || m.p_value === undefined ? "—" : m.p_value.toPrecision(3)}
                      </td>
                      <td>{m.test}</td>
                      <td>
                        <Badge kind={verdictKind(m.verdict)}>{m.verdict.replaceAll("_", " ")}</Badge>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )
        }
      </Load>
    </section>
  );
}
