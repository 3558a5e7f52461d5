import { useState } from "preact/hooks";
import { Link } from "wouter-preact";
import { ApiError, api, unwrap, type Schemas } from "../api/client";
import { ErrorBox, Load } from "../components";
import { count, time } from "../lib/format";
import { useCatalog, useLoad, useQueryParams } from "../lib/hooks";
import { parseFilters, toLines } from "../lib/labels";
import { useCan } from "../lib/who";

type Affected = Schemas["AffectedAnswer"];

/** Query parameters that hold an investigation's filters: `f.<field>=a,b`. */
const FILTER_PREFIX = "f.";

function filtersOf(params: Record<string, string>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(params)) {
    if (k.startsWith(FILTER_PREFIX) && v) out[k.slice(FILTER_PREFIX.length)] = v.split(",");
  }
  return out;
}

export function CompliancePage() {
  const can = useCan();
  return (
    <section>
      <h1>Compliance</h1>
      <Investigation />
      <UserLookup />
      {can("admin") && <Erasure />}
    </section>
  );
}

function Investigation() {
  const [params, setParams] = useQueryParams();
  const catalog = useCatalog();
  const filters = filtersOf(params);
  const ready = Boolean(params.from && params.to);
  const body = {
    from: params.from ?? "",
    to: params.to ?? "",
    filters,
    limit: 50,
    cursor: params.cursor || null,
  };
  const loaded = useLoad<Affected | null>(
    // Without `format` the answer is JSON (the other media types are the exports).
    () =>
      ready
        ? (unwrap(api.POST("/api/v1/audit/affected", { body })) as Promise<Affected>)
        : Promise.resolve(null),
    [JSON.stringify(body), ready],
  );
  const [error, setError] = useState<ApiError | null>(null);
  const submit = (e: Event) => {
    e.preventDefault();
    const data = new FormData(e.currentTarget as HTMLFormElement);
    const changes: Record<string, string | null> = {
      from: String(data.get("from") ?? "").trim(),
      to: String(data.get("to") ?? "").trim(),
      cursor: null,
    };
    for (const k of Object.keys(params)) if (k.startsWith(FILTER_PREFIX)) changes[k] = null;
    for (const [field, values] of Object.entries(parseFilters(String(data.get("filters") ?? "")))) {
      changes[FILTER_PREFIX + field] = values.join(",");
    }
    setParams(changes);
  };
  const download = async (format: "csv" | "ndjson") => {
    setError(null);
    let blob: Blob;
    try {
      blob = await unwrap(
        api.POST("/api/v1/audit/affected", {
          params: { query: { format } },
          body: { from: body.from, to: body.to, filters, limit: null, cursor: null },
          parseAs: "blob",
        }),
      );
    } catch (err) {
      setError(err as ApiError);
      return;
    }
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = `affected-runs.${format}`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };
  return (
    <>
      <h2>Affected runs, sessions and users</h2>
      <form class="editor" aria-label="Investigation" onSubmit={submit}>
        <label class="field">
          From (RFC 3339)
          <input name="from" defaultValue={params.from ?? ""} placeholder="2026-11-01T00:00:00Z" required />
        </label>
        <label class="field">
          To (RFC 3339)
          <input name="to" defaultValue={params.to ?? ""} placeholder="2026-11-24T00:00:00Z" required />
        </label>
        <label class="field wide">
          Filters (field=value,value per line)
          <textarea name="filters" rows={3} defaultValue={toLines(filters)} placeholder="prompt_version=v7" />
          {catalog.state === "ready" && <span class="muted">fields: {catalog.data.fields.join(", ")}</span>}
        </label>
        <div class="actions">
          <button type="submit">Investigate</button>
          {ready && (
            <>
              <button type="button" onClick={() => download("csv")}>
                Export CSV
              </button>
              <button type="button" onClick={() => download("ndjson")}>
                Export NDJSON
              </button>
            </>
          )}
        </div>
      </form>
      {error && <ErrorBox error={error} />}
      <Load loaded={loaded}>
        {(answer) =>
          answer && (
            <AffectedView answer={answer} next={(cursor) => setParams({ cursor })} first={!params.cursor} />
          )
        }
      </Load>
    </>
  );
}

function AffectedView({
  answer,
  next,
  first,
}: {
  answer: Affected | Schemas["UserLookup"];
  next: (cursor: string) => void;
  first: boolean;
}) {
  const most = Math.max(1, ...answer.by_day.map((d) => d.runs));
  return (
    <div class="affected">
      <dl class="header totals">
        <dt>Runs</dt>
        <dd data-total="runs">{count(answer.runs)}</dd>
        <dt>Sessions</dt>
        <dd data-total="sessions">{count(answer.sessions)}</dd>
        <dt>Users</dt>
        <dd data-total="users">{count(answer.users)}</dd>
        <dt>First seen</dt>
        <dd>{answer.first_seen ? time(answer.first_seen) : "—"}</dd>
        <dt>Last seen</dt>
        <dd>{answer.last_seen ? time(answer.last_seen) : "—"}</dd>
        <dt>Audit entry</dt>
        <dd>#{answer.audit_entry}</dd>
      </dl>
      {first && answer.by_day.length > 0 && (
        <table class="days" aria-label="Runs by day">
          <tbody>
            {answer.by_day.map((d) => (
              <tr key={d.day} data-day={d.day}>
                <th>{d.day}</th>
                <td class="day-bar">
                  <span class="bar" style={{ width: `${(d.runs / most) * 100}%` }} />
                </td>
                <td class="num">{count(d.runs)} runs</td>
                <td class="num">{count(d.sessions)} sessions</td>
                <td class="num">{count(d.users)} users</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {answer.items.length === 0 ? (
        <p class="empty">No affected sessions.</p>
      ) : (
        <table class="affected-sessions">
          <thead>
            <tr>
              <th>Session</th>
              <th>User</th>
              <th class="num">Runs</th>
              <th>First seen</th>
              <th>Last seen</th>
            </tr>
          </thead>
          <tbody>
            {answer.items.map((s) => (
              <tr key={`${s.session_id}/${s.user_hash}`}>
                <td>
                  {s.session_id ? (
                    <Link href={`/sessions/${encodeURIComponent(s.session_id)}`}>{s.session_id}</Link>
                  ) : (
                    "—"
                  )}
                </td>
                <td class="hash">
                  {s.user_hash ? (
                    <Link href={`/runs?user_hash=${encodeURIComponent(s.user_hash)}`}>{s.user_hash}</Link>
                  ) : (
                    "—"
                  )}
                </td>
                <td class="num">{count(s.runs)}</td>
                <td>{time(s.first_seen)}</td>
                <td>{time(s.last_seen)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {answer.next_cursor && <button onClick={() => next(answer.next_cursor!)}>Next sessions</button>}
    </div>
  );
}

function UserLookup() {
  const [answer, setAnswer] = useState<Schemas["UserLookup"] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [userId, setUserId] = useState("");
  const look = async (cursor: string | null) => {
    try {
      setAnswer(
        await unwrap(api.POST("/api/v1/audit/user-lookup", { body: { user_id: userId, cursor, limit: 50 } })),
      );
      setError(null);
    } catch (e) {
      setError(e as ApiError);
    }
  };
  return (
    <>
      <h2>Look a person up</h2>
      <form
        class="inline-form"
        aria-label="User look-up"
        onSubmit={(e) => {
          e.preventDefault();
          look(null);
        }}
      >
        <input
          aria-label="User id"
          placeholder="the id your application knows them by"
          value={userId}
          onInput={(e) => setUserId((e.target as HTMLInputElement).value)}
        />
        <button type="submit">Look up</button>
      </form>
      {error && <ErrorBox error={error} />}
      {answer && (
        <>
          <p>
            Hash: <code data-user-hash>{answer.user_hash}</code>
          </p>
          <AffectedView answer={answer} next={(c) => look(c)} first={true} />
        </>
      )}
    </>
  );
}

function Erasure() {
  const [hash, setHash] = useState("");
  const [typed, setTyped] = useState("");
  const [receipt, setReceipt] = useState<Schemas["ErasureReceipt"] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const erase = async () => {
    setBusy(true);
    try {
      setReceipt(
        await unwrap(
          api.DELETE("/api/v1/users/{user_hash}", { params: { path: { user_hash: hash.trim() } } }),
        ),
      );
      setError(null);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };
  const confirmed = hash.trim() !== "" && typed.trim() === `erase ${hash.trim()}`;
  return (
    <>
      <h2>Erase a person</h2>
      <p class="muted">
        Deletes every run, span and score of the traces of this user hash, on the store and in the write-ahead
        log. It cannot be undone.
      </p>
      <form
        class="editor"
        aria-label="Erasure"
        onSubmit={(e) => {
          e.preventDefault();
          if (confirmed) erase();
        }}
      >
        <label class="field">
          User hash
          <input
            name="user_hash"
            value={hash}
            onInput={(e) => setHash((e.target as HTMLInputElement).value)}
          />
        </label>
        <label class="field wide">
          Type <code>erase {hash.trim() || "<hash>"}</code> to confirm
          <input
            name="confirmation"
            value={typed}
            onInput={(e) => setTyped((e.target as HTMLInputElement).value)}
          />
        </label>
        <div class="actions">
          <button type="submit" disabled={!confirmed || busy}>
            {busy ? "Erasing…" : "Erase"}
          </button>
        </div>
      </form>
      {error && <ErrorBox error={error} />}
      {receipt && (
        <div class="new-key" role="status" aria-label="Erasure receipt">
          <p>
            Erased <code>{receipt.user_hash}</code> at {time(receipt.erased_at)}: {receipt.deleted.runs} run,{" "}
            {receipt.deleted.spans} span and {receipt.deleted.scores} score rows,{" "}
            {receipt.wal_segments_deleted} WAL segments. Audit entry #{receipt.audit_entry} (
            {receipt.audit_hash}).
          </p>
        </div>
      )}
    </>
  );
}
