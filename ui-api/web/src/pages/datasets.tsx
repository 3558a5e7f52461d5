import { useState } from "preact/hooks";
import { Link } from "wouter-preact";
import { ApiError, api, unwrap } from "../api/client";
import { ErrorBox, JsonTree, Load } from "../components";
import { count, time } from "../lib/format";
import { useLoad, useQueryParams } from "../lib/hooks";
import { useCan } from "../lib/who";
import { DatasetExperiments } from "./experiment";

/** Items a page of the dataset page shows. */
const ITEMS_PER_PAGE = 50;

/** The project's datasets; an admin creates one here. */
export function DatasetsPage() {
  const can = useCan();
  const [version, setVersion] = useState(0);
  const datasets = useLoad(() => unwrap(api.GET("/api/v1/datasets")), [version]);
  const [error, setError] = useState<ApiError | null>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    try {
      await unwrap(
        api.POST("/api/v1/datasets", {
          body: { name: String(data.get("name") ?? ""), description: String(data.get("description") ?? "") },
        }),
      );
      setError(null);
      form.reset();
      setVersion((v) => v + 1);
    } catch (err) {
      setError(err as ApiError);
    }
  };
  return (
    <section>
      <h1>Datasets</h1>
      <p class="muted">
        Sets of tasks with what a good answer is. Every change makes a new version; a version never changes.
      </p>
      {can("admin") && (
        <form class="editor" aria-label="New dataset" onSubmit={create}>
          {error && <ErrorBox error={error} />}
          <label class="field">
            Name
            <input name="name" required maxLength={64} pattern="[A-Za-z0-9][A-Za-z0-9._\-]*" />
          </label>
          <label class="field">
            Description
            <input name="description" maxLength={1024} />
          </label>
          <div class="actions">
            <button type="submit">Create dataset</button>
          </div>
        </form>
      )}
      <Load loaded={datasets}>
        {({ datasets }) =>
          datasets.length === 0 ? (
            <p class="empty">
              No datasets yet. Create one here or with <code>vigil datasets create</code>, then import items
              with <code>vigil datasets import</code>.
            </p>
          ) : (
            <table class="datasets">
              <thead>
                <tr>
                  <th>Name</th>
                  <th class="num">Version</th>
                  <th class="num">Items</th>
                  <th>Created</th>
                  <th>Description</th>
                </tr>
              </thead>
              <tbody>
                {datasets.map((d) => (
                  <tr key={d.name} data-dataset={d.name}>
                    <td>
                      <Link href={`/datasets/${encodeURIComponent(d.name)}`}>{d.name}</Link>
                    </td>
                    <td class="num">{d.latest_version}</td>
                    <td class="num">{count(d.items)}</td>
                    <td>{time(d.created_at)}</td>
                    <td>{d.description}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Load>
    </section>
  );
}

/** One dataset: its versions, and the items of the chosen one, a page at a time. */
export function DatasetPage({ name }: { name: string }) {
  const can = useCan();
  const [params, setParams] = useQueryParams();
  const [changes, setChanges] = useState(0);
  const [error, setError] = useState<ApiError | null>(null);
  const detail = useLoad(
    () => unwrap(api.GET("/api/v1/datasets/{name}", { params: { path: { name } } })),
    [name, changes],
  );
  const chosen = params.version ? Number(params.version) : undefined;
  const offset = Number(params.offset ?? 0);
  const items = useLoad(
    () =>
      unwrap(
        api.GET("/api/v1/datasets/{name}/items", {
          params: { path: { name }, query: { version: chosen, offset, limit: ITEMS_PER_PAGE } },
        }),
      ),
    [name, chosen, offset, changes],
  );
  const latest = detail.state === "ready" ? detail.data.dataset.latest_version : undefined;
  const remove = async (itemId: string) => {
    try {
      await unwrap(
        api.DELETE("/api/v1/datasets/{name}/items/{item_id}", {
          params: { path: { name, item_id: itemId } },
        }),
      );
      setError(null);
      setParams({ version: null, offset: null });
      setChanges((c) => c + 1);
    } catch (err) {
      setError(err as ApiError);
    }
  };
  return (
    <section>
      <p>
        <Link href="/datasets">← Datasets</Link>
      </p>
      <h1>{name}</h1>
      {error && <ErrorBox error={error} />}
      <Load loaded={detail}>
        {({ dataset, versions }) => (
          <>
            {dataset.description && <p>{dataset.description}</p>}
            <table class="versions">
              <thead>
                <tr>
                  <th class="num">Version</th>
                  <th>Created</th>
                  <th>By</th>
                  <th class="num">Items</th>
                  <th class="num">Added</th>
                  <th class="num">Updated</th>
                  <th class="num">Deleted</th>
                </tr>
              </thead>
              <tbody>
                {[...versions].reverse().map((v) => (
                  <tr
                    key={v.version}
                    data-version={v.version}
                    class={v.version === (chosen ?? dataset.latest_version) ? "chosen" : ""}
                  >
                    <td class="num">
                      <button onClick={() => setParams({ version: String(v.version), offset: null })}>
                        {v.version}
                      </button>
                    </td>
                    <td>{time(v.created_at)}</td>
                    <td>
                      <code>{v.created_by}</code>
                    </td>
                    <td class="num">{count(v.items)}</td>
                    <td class="num">{count(v.added)}</td>
                    <td class="num">{count(v.updated)}</td>
                    <td class="num">{count(v.deleted)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </Load>
      <Load loaded={items}>
        {(page) => (
          <>
            <h2 data-shown-version={page.version}>
              Version {page.version}: {count(page.total)} {page.total === 1 ? "item" : "items"}
            </h2>
            {page.items.length === 0 ? (
              <p class="empty">No items in this version.</p>
            ) : (
              <table class="items">
                <thead>
                  <tr>
                    <th>Id</th>
                    <th>Input</th>
                    <th>Expected output</th>
                    <th>Metadata</th>
                    <th>From run</th>
                    {can("admin") && <th />}
                  </tr>
                </thead>
                <tbody>
                  {page.items.map((item) => (
                    <tr key={item.id} data-item={item.id}>
                      <td>
                        <code>{item.id}</code>
                      </td>
                      <td data-field="input">
                        <Value value={item.input} />
                      </td>
                      <td data-field="expected_output">
                        <Value value={item.expected_output} />
                      </td>
                      <td>
                        <Value value={item.metadata} />
                      </td>
                      <td>
                        {item.source_trace_id && (
                          <Link href={`/runs/${item.source_trace_id}`}>
                            <code>{item.source_trace_id.slice(0, 8)}</code>
                          </Link>
                        )}
                      </td>
                      {can("admin") && (
                        <td>
                          {page.version === latest && (
                            <button
                              onClick={() =>
                                confirm(
                                  `Delete item ${item.id}? The dataset gets a new version without it.`,
                                ) && remove(item.id)
                              }
                            >
                              Delete
                            </button>
                          )}
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            <div class="pager">
              {offset > 0 && (
                <button onClick={() => setParams({ offset: String(Math.max(0, offset - ITEMS_PER_PAGE)) })}>
                  Previous page
                </button>
              )}
              {page.next_offset != null && (
                <button
                  onClick={() =>
                    setParams({ version: String(page.version), offset: String(page.next_offset) })
                  }
                >
                  Next page
                </button>
              )}
            </div>
          </>
        )}
      </Load>
      <DatasetExperiments dataset={name} />
    </section>
  );
}

/** An item's JSON: text as text, anything else as a tree; never HTML. */
function Value({ value }: { value: unknown }) {
  if (value === null || value === undefined) return <span class="muted">—</span>;
  if (typeof value === "string") return <pre class="content">{value}</pre>;
  if (typeof value === "object" && Object.keys(value as object).length === 0)
    return <span class="muted">—</span>;
  return <JsonTree value={value} depth={0} />;
}
