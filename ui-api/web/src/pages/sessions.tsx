import { Link } from "wouter-preact";
import { api, unwrap, type Schemas } from "../api/client";
import { Load, Pager } from "../components";
import { count, time, usd } from "../lib/format";
import { useLoad, useQueryParams } from "../lib/hooks";
import { PRESETS, bounds } from "../lib/range";

/** Sessions by their last run, newest first: runs, outcomes, first and last seen, cost. */
export function SessionsPage() {
  const [params, setParams] = useQueryParams();
  const { from, to } = bounds(params);
  const query = {
    from,
    to,
    agent: params.agent || undefined,
    user_hash: params.user_hash || undefined,
    limit: 50,
    cursor: params.cursor || undefined,
  };
  const loaded = useLoad(
    () => unwrap(api.GET("/api/v1/sessions", { params: { query } })),
    [JSON.stringify(query)],
  );
  return (
    <section>
      <h1>Sessions</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          const data = new FormData(e.currentTarget as HTMLFormElement);
          setParams({
            agent: String(data.get("agent") ?? ""),
            user_hash: String(data.get("user_hash") ?? ""),
            cursor: null,
          });
        }}
      >
        <label>
          Time
          <select
            value={params.range ?? ""}
            onChange={(e) =>
              setParams({ range: (e.target as HTMLSelectElement).value || null, cursor: null })
            }
          >
            <option value="">all time</option>
            {Object.keys(PRESETS).map((p) => (
              <option value={p}>last {p}</option>
            ))}
          </select>
        </label>
        <label key={`agent=${params.agent ?? ""}`}>
          Agent
          <input name="agent" defaultValue={params.agent ?? ""} />
        </label>
        <label key={`user=${params.user_hash ?? ""}`}>
          User
          <input name="user_hash" defaultValue={params.user_hash ?? ""} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <Load loaded={loaded}>
        {(page) =>
          page.sessions.length === 0 ? (
            <p class="empty">No sessions{params.cursor ? " after this page" : ""}.</p>
          ) : (
            <>
              <SessionTable sessions={page.sessions} className="sessions" withUser />
              <Pager cursor={params.cursor} next={page.next_cursor} go={(cursor) => setParams({ cursor })} />
            </>
          )
        }
      </Load>
    </section>
  );
}

/** Sessions as a table: runs by outcome, first and last seen, cost; the user unless the page is
 * one user's. */
export function SessionTable({
  sessions,
  className,
  withUser = false,
}: {
  sessions: Schemas["SessionSummary"][];
  className: string;
  withUser?: boolean;
}) {
  return (
    <table class={className}>
      <thead>
        <tr>
          <th>Session</th>
          {withUser && <th>User</th>}
          <th class="num">Runs</th>
          <th>Outcomes</th>
          <th>First seen (UTC)</th>
          <th>Last seen (UTC)</th>
          <th class="num">Cost</th>
        </tr>
      </thead>
      <tbody>
        {sessions.map((s) => (
          <tr key={s.session_id} data-session={s.session_id}>
            <td>
              <Link href={`/sessions/${encodeURIComponent(s.session_id)}`}>{s.session_id}</Link>
            </td>
            {withUser && (
              <td class="hash">
                {s.user_hash ? (
                  <Link href={`/users/${encodeURIComponent(s.user_hash)}`}>{s.user_hash}</Link>
                ) : (
                  "—"
                )}
              </td>
            )}
            <td class="num" data-runs>
              {count(s.runs)}
            </td>
            <td>
              {Object.entries(s.outcomes)
                .filter(([, n]) => n > 0)
                .map(([outcome, n]) => `${n} ${outcome}`)
                .join(", ")}
            </td>
            <td>{time(s.first_seen)}</td>
            <td>{time(s.last_seen)}</td>
            <td class="num">{usd(s.calls.cost_usd)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
