import { useState } from "preact/hooks";
import { ApiError, api, unwrap, type Schemas } from "../api/client";
import { Badge, ErrorBox, Load } from "../components";
import { time } from "../lib/format";
import { useLoad } from "../lib/hooks";

type Role = Schemas["Role"];
const ROLES: Role[] = ["ingest", "read", "audit", "admin"];

/** API keys of the project (admin), and the collector's health. */
export function KeysPage() {
  const [version, setVersion] = useState(0);
  const keys = useLoad(() => unwrap(api.GET("/api/v1/keys")), [version]);
  const [created, setCreated] = useState<Schemas["NewApiKey"] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    const data = new FormData(e.currentTarget as HTMLFormElement);
    const roles = ROLES.filter((r) => data.get(`role-${r}`) === "on");
    const rps = String(data.get("rps") ?? "").trim();
    const burst = String(data.get("burst") ?? "").trim();
    try {
      const key = await unwrap(
        api.POST("/api/v1/keys", {
          body: {
            roles,
            description: String(data.get("description") ?? ""),
            rate_limit: rps || burst ? { requests_per_second: Number(rps), burst: Number(burst) } : null,
          },
        }),
      );
      setCreated(key);
      setError(null);
      (e.currentTarget as HTMLFormElement | null)?.reset();
      setVersion((v) => v + 1);
    } catch (err) {
      setError(err as ApiError);
    }
  };
  const revoke = async (id: string) => {
    try {
      await unwrap(api.DELETE("/api/v1/keys/{id}", { params: { path: { id } } }));
      setVersion((v) => v + 1);
    } catch (err) {
      setError(err as ApiError);
    }
  };

  return (
    <section>
      <h1>API keys</h1>
      {created && <NewKey created={created} dismiss={() => setCreated(null)} />}
      <form class="editor" aria-label="New key" onSubmit={create}>
        {error && <ErrorBox error={error} />}
        <fieldset class="field">
          <legend>Roles</legend>
          {ROLES.map((r) => (
            <label class="inline" key={r}>
              <input type="checkbox" name={`role-${r}`} /> {r}
            </label>
          ))}
        </fieldset>
        <label class="field">
          Description
          <input name="description" maxLength={1024} />
        </label>
        <label class="field">
          Requests per second (empty: the server's default)
          <input name="rps" inputMode="decimal" />
        </label>
        <label class="field">
          Burst
          <input name="burst" inputMode="numeric" />
        </label>
        <div class="actions">
          <button type="submit">Create key</button>
        </div>
      </form>
      <Load loaded={keys}>
        {({ keys }) => (
          <table class="keys">
            <thead>
              <tr>
                <th>Id</th>
                <th>Roles</th>
                <th>Description</th>
                <th>Rate limit</th>
                <th>Created</th>
                <th>State</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <tr key={k.id} data-key-id={k.id}>
                  <td>
                    <code>{k.id}</code>
                  </td>
                  <td>{k.roles.join(", ")}</td>
                  <td>{k.description}</td>
                  <td>
                    {k.rate_limit
                      ? `${k.rate_limit.requests_per_second}/s, burst ${k.rate_limit.burst}`
                      : "default"}
                  </td>
                  <td>{time(k.created_at)}</td>
                  <td>
                    {k.revoked_at ? (
                      <Badge kind="failure">revoked {time(k.revoked_at)}</Badge>
                    ) : (
                      <Badge kind="ok">active</Badge>
                    )}
                  </td>
                  <td>
                    {!k.revoked_at && (
                      <button
                        onClick={() => confirm(`Revoke ${k.id}? It stops working at once.`) && revoke(k.id)}
                      >
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Load>
    </section>
  );
}

/** The new key's token and secret: shown here once, never again. */
function NewKey({ created, dismiss }: { created: Schemas["NewApiKey"]; dismiss: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="new-key" role="status">
      <p>
        Key <code>{created.id}</code> created. Copy its token now: it is shown only once.
      </p>
      <pre class="content" data-token>
        {created.token}
      </pre>
      <button
        onClick={() =>
          navigator.clipboard?.writeText(created.token).then(
            () => setCopied(true),
            () => setCopied(false),
          )
        }
      >
        {copied ? "Copied" : "Copy token"}
      </button>{" "}
      <button onClick={dismiss}>Done</button>
    </div>
  );
}
