import { Link } from "wouter-preact";
import { api, unwrap, type Schemas } from "../api/client";
import { Badge, Content, Load } from "../components";
import { count, duration, time, usd } from "../lib/format";
import { useLoad } from "../lib/hooks";

type Summary = Schemas["Summary"];

/** A rate as `87.5%`; `—` when there is nothing to divide. */
function percent(rate: number | null | undefined): string {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)}%`;
}

/** A dataset's experiments, newest first (on the dataset's page). */
export function DatasetExperiments({ dataset }: { dataset: string }) {
  const loaded = useLoad(
    () => unwrap(api.GET("/api/v1/experiments", { params: { query: { dataset } } })),
    [dataset],
  );
  return (
    <Load loaded={loaded}>
      {({ experiments }) => (
        <>
          <h2>Experiments</h2>
          {experiments.length === 0 ? (
            <p class="empty">No experiment has run this dataset yet.</p>
          ) : (
            <table class="experiments">
              <thead>
                <tr>
                  <th>Name</th>
                  <th class="num">Dataset version</th>
                  <th>System</th>
                  <th>Created</th>
                </tr>
              </thead>
              <tbody>
                {experiments.map((e) => (
                  <tr key={e.id} data-experiment={e.id}>
                    <td>
                      <Link href={`/experiments/${e.id}`}>{e.name}</Link>
                    </td>
                    <td class="num">{e.dataset_version}</td>
                    <td>{system(e.system)}</td>
                    <td>{time(e.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </Load>
  );
}

function system(s: Schemas["SystemVersion"]): string {
  const parts = [
    s.agent_version && `agent ${s.agent_version}`,
    s.prompt_version && `prompt ${s.prompt_version}`,
    s.model && `model ${s.model}`,
    s.release && `release ${s.release}`,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(", ") : "—";
}

/** One experiment: its figures, then each item's result. */
export function ExperimentPage({ id }: { id: string }) {
  const report = useLoad(
    () => unwrap(api.GET("/api/v1/experiments/{id}", { params: { path: { id } } })),
    [id],
  );
  const items = useLoad(
    () => unwrap(api.GET("/api/v1/experiments/{id}/items", { params: { path: { id } } })),
    [id],
  );
  return (
    <section>
      <Load loaded={report}>
        {({ experiment, summary }) => (
          <>
            <p>
              <Link href={`/datasets/${encodeURIComponent(experiment.dataset)}`}>← {experiment.dataset}</Link>
            </p>
            <h1>{experiment.name}</h1>
            <p>
              Dataset <code>{experiment.dataset}</code> version {experiment.dataset_version};{" "}
              {system(experiment.system)}; created {time(experiment.created_at)} by{" "}
              <code>{experiment.created_by}</code>.
            </p>
            <Figures summary={summary} />
          </>
        )}
      </Load>
      <Load loaded={items}>
        {({ items }) => (
          <>
            <h2>Items</h2>
            <table class="experiment-items">
              <thead>
                <tr>
                  <th>Item</th>
                  <th>Status</th>
                  <th>Evaluations</th>
                  <th>Scores</th>
                  <th class="num">Cost</th>
                  <th class="num">Latency</th>
                  <th class="num">Tool calls</th>
                  <th>Output</th>
                </tr>
              </thead>
              <tbody>
                {items.map((r) => (
                  <tr key={r.item_id} data-item={r.item_id} data-status={r.status}>
                    <td>
                      <code>{r.item_id}</code>
                    </td>
                    <td>
                      {r.status !== "done" ? (
                        <Badge kind="partial">{r.status === "pending" ? "pending" : "not run"}</Badge>
                      ) : r.completed ? (
                        <Badge kind="ok">completed</Badge>
                      ) : (
                        <Badge kind="failure">{r.outcome ?? "failed"}</Badge>
                      )}
                      {r.trace_id && (
                        <>
                          {" "}
                          <Link href={`/runs/${r.trace_id}`}>run</Link>
                        </>
                      )}
                    </td>
                    <td>
                      {Object.entries(r.evaluations).map(([name, passed]) => (
                        <span key={name} data-evaluator={name} data-passed={String(passed)}>
                          {passed === null ? (
                            <Badge kind="none">{name}: —</Badge>
                          ) : passed ? (
                            <Badge kind="ok">{name}</Badge>
                          ) : (
                            <Badge kind="failure">{name}</Badge>
                          )}{" "}
                        </span>
                      ))}
                    </td>
                    <td>
                      {Object.entries(r.scores)
                        .map(([name, value]) => `${name} ${value}`)
                        .join(", ")}
                    </td>
                    <td class="num">{usd(r.cost_usd)}</td>
                    <td class="num">{r.latency_ms == null ? "—" : duration(r.latency_ms)}</td>
                    <td class="num">{r.tool_calls ?? "—"}</td>
                    <td>
                      {r.output != null && <Content text={r.output} classification={r.classification} />}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </Load>
    </section>
  );
}

function Figures({ summary: s }: { summary: Summary }) {
  const rows: [string, string, string][] = [
    [
      "items",
      "Items done",
      `${count(s.done)} of ${count(s.items)} (${s.pending} pending, ${s.not_run} not run)`,
    ],
    ["completion_rate", "Completion rate", percent(s.completion_rate)],
    ...Object.entries(s.pass_rates).map(([name, p]): [string, string, string] => [
      `pass_rate.${name}`,
      `Pass rate: ${name}`,
      `${percent(p.rate)} (${p.passed} of ${p.evaluated})`,
    ]),
    ...Object.entries(s.mean_scores).map(([name, m]): [string, string, string] => [
      `mean_score.${name}`,
      `Mean score: ${name}`,
      `${m.mean} (${m.items} items)`,
    ]),
    ["cost_per_item_usd", "Cost per item", usd(s.cost_per_item_usd)],
    [
      "latency",
      "Latency p50 / p90 / p99",
      [s.latency_p50_ms, s.latency_p90_ms, s.latency_p99_ms]
        .map((ms) => (ms == null ? "—" : duration(ms)))
        .join(" / "),
    ],
    [
      "tool_calls_per_item",
      "Tool calls per item",
      s.tool_calls_per_item == null ? "—" : s.tool_calls_per_item.toFixed(2),
    ],
  ];
  return (
    <table class="summary figures">
      <tbody>
        {rows.map(([key, label, value]) => (
          <tr key={key} data-figure={key}>
            <th>{label}</th>
            <td>{value}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
