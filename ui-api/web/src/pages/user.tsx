import { useMemo, useState } from "preact/hooks";
import { Link, useLocation } from "wouter-preact";
import { ApiError, api, unwrap } from "../api/client";
import { ErrorBox, Load } from "../components";
import { count, usd } from "../lib/format";
import { useLoad, useQueryParams } from "../lib/hooks";
import { PRESETS } from "../lib/range";
import { SessionTable } from "./sessions";
import type { MetricRow } from "../lib/series";
import { useCan } from "../lib/who";

const RANGES = ["24h", "7d", "30d"] as const;

/** One (hashed) user: totals, their sessions (runs, first and last seen, cost), their runs. */
export function UserPage({ userHash }: { userHash: string }) {
  const [params, setParams] = useQueryParams();
  const range = (RANGES as readonly string[]).includes(params.range) ? params.range : "30d";
  // The range as of when it was chosen (not of each render: that would query anew).
  const { from, to } = useMemo(() => {
    const to = new Date();
    return { from: new Date(to.getTime() - PRESETS[range]), to };
  }, [range]);
  const metrics = () =>
    unwrap(
      api.POST("/api/v1/metrics/query", {
        body: {
          from: from.toISOString(),
          to: to.toISOString(),
          metrics: ["runs", "completion_rate", "cost_usd"],
          group_by: [],
          filters: { user_hash: [userHash] },
        },
      }),
    ).then((a) => a.rows as MetricRow[]);
  const totals = useLoad(metrics, [userHash, range]);
  const sessions = useLoad(
    () =>
      unwrap(
        api.GET("/api/v1/sessions", {
          params: { query: { user_hash: userHash, from: from.toISOString(), limit: 1000 } },
        }),
      ),
    [userHash, range],
  );
  const percent = (v: unknown) => (typeof v === "number" ? `${(v * 100).toFixed(1)}%` : "—");
  const money = (v: unknown) => (typeof v === "number" ? usd(v) : "—");
  return (
    <section>
      <h1>
        User <code>{userHash}</code>
      </h1>
      <p>
        <label>
          Time{" "}
          <select value={range} onChange={(e) => setParams({ range: (e.target as HTMLSelectElement).value })}>
            {RANGES.map((r) => (
              <option value={r}>last {r}</option>
            ))}
          </select>
        </label>{" "}
        <Link href={`/runs?user_hash=${encodeURIComponent(userHash)}`}>This user's runs</Link>
      </p>
      <Load loaded={totals}>
        {(rows) => {
          const t = rows[0] ?? {};
          return (
            <dl class="header totals">
              <dt>Runs</dt>
              <dd data-total="runs">{count(Number(t.runs ?? 0))}</dd>
              <dt>Completion rate</dt>
              <dd>{percent(t.completion_rate)}</dd>
              <dt>Cost</dt>
              <dd data-total="cost">{money(t.cost_usd)}</dd>
            </dl>
          );
        }}
      </Load>
      <h2>Sessions</h2>
      <Load loaded={sessions}>
        {(page) =>
          page.sessions.length === 0 ? (
            <p class="empty">No sessions in this range.</p>
          ) : (
            <SessionTable sessions={page.sessions} className="user-sessions" />
          )
        }
      </Load>
    </section>
  );
}

/** For `audit` keys: a person's page by the id the application knows them by. */
export function LookUpUser() {
  const can = useCan();
  const [, navigate] = useLocation();
  const [userId, setUserId] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  if (!can("audit")) return null;
  return (
    <form
      class="inline-form"
      aria-label="Find a user"
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          const found = await unwrap(
            api.POST("/api/v1/audit/user-lookup", { body: { user_id: userId, limit: 1 } }),
          );
          navigate(`/users/${found.user_hash}`);
        } catch (err) {
          setError(err as ApiError);
        }
      }}
    >
      <input
        aria-label="Raw user id"
        placeholder="find a user by their raw id (recorded in the audit log)"
        value={userId}
        onInput={(e) => setUserId((e.target as HTMLInputElement).value)}
      />
      <button type="submit">Find</button>
      {error && <ErrorBox error={error} />}
    </form>
  );
}
