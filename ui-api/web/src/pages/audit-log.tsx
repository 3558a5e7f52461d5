import { useState } from "preact/hooks";
import { ApiError, api, unwrap, type Schemas } from "../api/client";
import { Badge, ErrorBox, Load } from "../components";
import { time } from "../lib/format";
import { useLoad, useQueryParams } from "../lib/hooks";

/** The project's audit log, a page at a time, and a check of the whole chain. */
export function AuditLogPage() {
  const [params, setParams] = useQueryParams();
  const query = {
    from: params.from || undefined,
    to: params.to || undefined,
    cursor: params.cursor || undefined,
    limit: 100,
  };
  const loaded = useLoad(
    () => unwrap(api.GET("/api/v1/audit/log", { params: { query } })),
    [JSON.stringify(query)],
  );
  return (
    <section>
      <h1>Audit log</h1>
      <Verification />
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          const data = new FormData(e.currentTarget as HTMLFormElement);
          setParams({ from: String(data.get("from") ?? ""), to: String(data.get("to") ?? ""), cursor: null });
        }}
      >
        <label>
          From (RFC 3339)
          <input name="from" defaultValue={params.from ?? ""} />
        </label>
        <label>
          To (RFC 3339)
          <input name="to" defaultValue={params.to ?? ""} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <Load loaded={loaded}>
        {(page) => (
          <>
            {page.entries.length === 0 ? (
              <p class="empty">No entries.</p>
            ) : (
              <table class="audit">
                <thead>
                  <tr>
                    <th class="num">Seq</th>
                    <th>Time (UTC)</th>
                    <th>Key</th>
                    <th>Action</th>
                    <th class="num">Count</th>
                    <th>Parameters</th>
                  </tr>
                </thead>
                <tbody>
                  {page.entries.map((e) => (
                    <tr key={e.seq} data-seq={e.seq}>
                      <td class="num">{e.seq}</td>
                      <td>{time(e.time)}</td>
                      <td>
                        <code>{e.key_id}</code>
                      </td>
                      <td>{e.action}</td>
                      <td class="num">{e.result_count}</td>
                      <td>
                        <pre class="content params">{JSON.stringify(e.parameters)}</pre>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            {page.next_cursor && (
              <button onClick={() => setParams({ cursor: page.next_cursor })}>Next page</button>
            )}
          </>
        )}
      </Load>
    </section>
  );
}

function Verification() {
  const [result, setResult] = useState<Schemas["AuditVerification"] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const verify = async () => {
    try {
      setResult(await unwrap(api.GET("/api/v1/audit/verify")));
      setError(null);
    } catch (e) {
      setError(e as ApiError);
    }
  };
  return (
    <div class="verify">
      <button onClick={verify}>Verify the chain</button>
      {error && <ErrorBox error={error} />}
      {result && (
        <p role="status" data-valid={String(result.valid)}>
          {result.valid ? <Badge kind="ok">valid</Badge> : <Badge kind="failure">FAILED</Badge>}{" "}
          {result.entries} entries check out
          {result.tampering &&
            `; the first bad one: seq ${result.tampering.seq} (line ${result.tampering.line}): ${result.tampering.detail}`}
          . Last hash <code>{result.last_hash}</code>.
        </p>
      )}
    </div>
  );
}
