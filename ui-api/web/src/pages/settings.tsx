import { useContext, useState } from "preact/hooks";
import { api, unwrap } from "../api/client";
import { Badge, Load } from "../components";
import { count, time } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { WhoContext } from "../lib/who";

const DAY_MS = 86_400_000;

/** The price catalog in force, the models seen without a price, and the collector's health. */
export function SettingsPage() {
  const who = useContext(WhoContext);
  const prices = useLoad(() => unwrap(api.GET("/api/v1/prices")), []);
  // The last 30 days as of the page's opening (not of each render: that would query anew).
  const [{ from, to }] = useState(() => {
    const to = new Date();
    return { from: new Date(to.getTime() - 30 * DAY_MS), to };
  });
  const unpriced = useLoad(
    () =>
      unwrap(
        api.POST("/api/v1/metrics/query", {
          body: {
            from: from.toISOString(),
            to: to.toISOString(),
            metrics: ["unpriced_model_calls", "model_calls"],
            group_by: ["model"],
            filters: {},
          },
        }),
      ).then((a) =>
        a.rows.filter((r) => typeof r.unpriced_model_calls === "number" && r.unpriced_model_calls > 0),
      ),
    [],
  );
  const health = useLoad(() => fetch("/readyz").then((r) => r.json()), [], 10_000);
  return (
    <section>
      <h1>Settings</h1>
      <h2>Health</h2>
      <Load loaded={health}>
        {(h) => (
          <dl class="header" data-health={h.status}>
            <dt>Collector</dt>
            <dd>
              <Badge kind={h.status === "ready" ? "ok" : "failure"}>{h.status}</Badge>
            </dd>
            <dt>Write-ahead log</dt>
            <dd>
              {h.wal.accepting ? "accepting" : "full"}, backlog {count(h.wal.backlog_bytes)} bytes
              {h.wal.unreadable_record &&
                ` — stopped at record ${h.wal.unreadable_record.lsn}: ${h.wal.unreadable_record.action}`}
            </dd>
            <dt>Store</dt>
            <dd>{h.store.ok ? "answers" : `down: ${h.store.error}`}</dd>
            <dt>Version</dt>
            <dd>{who?.server_version}</dd>
          </dl>
        )}
      </Load>
      <h2>Models seen without a price (last 30 days)</h2>
      <Load loaded={unpriced}>
        {(rows) =>
          rows.length === 0 ? (
            <p class="empty">Every model call of the last 30 days was priced.</p>
          ) : (
            <table class="unpriced">
              <thead>
                <tr>
                  <th>Model</th>
                  <th class="num">Unpriced calls</th>
                  <th class="num">Model calls</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={String(r.model)}>
                    <td>{String(r.model) || "(none)"}</td>
                    <td class="num">{count(Number(r.unpriced_model_calls))}</td>
                    <td class="num">{count(Number(r.model_calls))}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Load>
      <p class="muted">
        Price them with <code>[[pricing.models]]</code> in the config; calls already stored keep no cost.
      </p>
      <h2>Price catalog</h2>
      <Load loaded={prices}>
        {(catalog) => (
          <>
            <p class="muted">
              Version {catalog.version}. USD per million tokens.
              {catalog.self_hosted &&
                ` Self-hosted models without a price: ${catalog.self_hosted.input} in, ${catalog.self_hosted.output} out.`}
            </p>
            <table class="prices">
              <thead>
                <tr>
                  <th>Model</th>
                  <th>Provider</th>
                  <th>From</th>
                  <th class="num">Input</th>
                  <th class="num">Cached input</th>
                  <th class="num">Cache write</th>
                  <th class="num">Output</th>
                  <th class="num">Reasoning</th>
                </tr>
              </thead>
              <tbody>
                {catalog.models.flatMap((m) =>
                  m.prices.length === 0
                    ? [
                        <tr key={m.name} data-model={m.name}>
                          <td>{m.name}</td>
                          <td>{m.provider}</td>
                          <td colSpan={6} class="muted">
                            {m.self_hosted ? "self-hosted" : "no price"}
                          </td>
                        </tr>,
                      ]
                    : m.prices.map((p) => (
                        <tr key={`${m.name}@${p.from}`} data-model={m.name}>
                          <td>{m.name}</td>
                          <td>{m.provider}</td>
                          <td>{time(p.from).slice(0, 10)}</td>
                          <td class="num">{p.input}</td>
                          <td class="num">{p.cached_input}</td>
                          <td class="num">{p.cache_write}</td>
                          <td class="num">{p.output}</td>
                          <td class="num">{p.reasoning}</td>
                        </tr>
                      )),
                )}
              </tbody>
            </table>
          </>
        )}
      </Load>
    </section>
  );
}
