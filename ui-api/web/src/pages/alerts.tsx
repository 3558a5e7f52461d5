import { useState } from "preact/hooks";
import { ApiError, api, unwrap, type Schemas } from "../api/client";
import { Badge, ErrorBox, Load } from "../components";
import { time } from "../lib/format";
import { useCatalog, useLoad } from "../lib/hooks";
import { parseFilters, parseLines, toLines } from "../lib/labels";
import { useCan } from "../lib/who";

type Alert = Schemas["Alert"];
type Rule = Schemas["AlertRuleView"];
type Matcher = Schemas["Matcher"];

export function AlertsPage() {
  const can = useCan();
  const [version, setVersion] = useState(0);
  const reload = () => setVersion((v) => v + 1);
  const alerts = useLoad(() => unwrap(api.GET("/api/v1/alerts")), [version], 15_000);
  const rules = useLoad(() => unwrap(api.GET("/api/v1/alert-rules")), [version], 15_000);
  const silences = useLoad(() => unwrap(api.GET("/api/v1/silences")), [version]);
  const [editing, setEditing] = useState<Rule | "new" | null>(null);
  const [silencing, setSilencing] = useState<Matcher[] | null>(null);
  return (
    <section>
      <h1>Alerts</h1>
      <h2>Firing and pending</h2>
      <Load loaded={alerts}>
        {({ alerts }) =>
          alerts.length === 0 ? (
            <p class="empty">Nothing is firing or pending.</p>
          ) : (
            <AlertTable alerts={alerts} silence={can("admin") ? setSilencing : undefined} />
          )
        }
      </Load>
      <h2>Rules</h2>
      {can("admin") && <button onClick={() => setEditing("new")}>New rule</button>}
      {editing && (
        <RuleForm
          rule={editing === "new" ? null : editing}
          done={() => {
            setEditing(null);
            reload();
          }}
        />
      )}
      <Load loaded={rules}>
        {({ rules }) =>
          rules.length === 0 ? (
            <p class="empty">No rules yet.</p>
          ) : (
            <RuleTable rules={rules} edit={can("admin") ? setEditing : undefined} changed={reload} />
          )
        }
      </Load>
      <h2>Silences</h2>
      {can("admin") && (
        <button onClick={() => setSilencing([{ name: "alertname", op: "=", value: "" }])}>New silence</button>
      )}
      {silencing && (
        <SilenceForm
          matchers={silencing}
          done={() => {
            setSilencing(null);
            reload();
          }}
        />
      )}
      <Load loaded={silences}>
        {({ silences }) =>
          silences.length === 0 ? (
            <p class="empty">No silences.</p>
          ) : (
            <SilenceTable silences={silences} changed={reload} canExpire={can("admin")} />
          )
        }
      </Load>
    </section>
  );
}

function Labels({ labels }: { labels: Record<string, string> }) {
  return (
    <span class="labels">
      {Object.entries(labels).map(([k, v]) => (
        <span class="label" key={k}>
          {k}={v}
        </span>
      ))}
    </span>
  );
}

function AlertTable({ alerts, silence }: { alerts: Alert[]; silence?: (m: Matcher[]) => void }) {
  return (
    <table class="alerts">
      <thead>
        <tr>
          <th>Rule</th>
          <th>State</th>
          <th>Labels</th>
          <th class="num">Value</th>
          <th>Since</th>
          <th>Silenced by</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {alerts.map((a) => (
          <tr key={a.fingerprint}>
            <td>{a.rule}</td>
            <td>
              <Badge kind={a.state === "firing" ? "failure" : "partial"}>{a.state}</Badge>
            </td>
            <td>
              <Labels labels={a.labels} />
            </td>
            <td class="num">{a.value ?? "—"}</td>
            <td>{time(a.active_since)}</td>
            <td>{a.silenced_by.join(", ") || "—"}</td>
            <td>
              {silence && (
                <button
                  onClick={() =>
                    silence(Object.entries(a.labels).map(([name, value]) => ({ name, op: "=", value })))
                  }
                >
                  Silence…
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function condition(rule: Rule): string {
  if (rule.baseline) return `> ${rule.ratio_above} × ${rule.baseline}`;
  return `${rule.op ?? ""} ${rule.threshold ?? ""}`;
}

function RuleTable({
  rules,
  edit,
  changed,
}: {
  rules: Rule[];
  edit?: (r: Rule) => void;
  changed: () => void;
}) {
  const [error, setError] = useState<ApiError | null>(null);
  const remove = async (name: string) => {
    try {
      await unwrap(api.DELETE("/api/v1/alert-rules/{name}", { params: { path: { name } } }));
      changed();
    } catch (e) {
      setError(e as ApiError);
    }
  };
  return (
    <>
      {error && <ErrorBox error={error} />}
      <table class="rules">
        <thead>
          <tr>
            <th>Name</th>
            <th>Source</th>
            <th>Metric</th>
            <th>Condition</th>
            <th>Window</th>
            <th>Health</th>
            <th>Last evaluation</th>
            <th class="num">Pending / firing</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {rules.map((r) => (
            <tr key={r.name} data-rule={r.name}>
              <td>{r.name}</td>
              <td>{r.source}</td>
              <td>
                {r.metric}
                {r.group_by?.length ? ` by ${r.group_by.join(", ")}` : ""}
              </td>
              <td>{condition(r)}</td>
              <td>
                {r.window}
                {r.for && r.for !== "0s" ? `, for ${r.for}` : ""}
              </td>
              <td>
                <Badge kind={r.health === "error" ? "error" : r.health === "ok" ? "ok" : "other"}>
                  {r.health}
                </Badge>
                {r.last_error && <span class="muted"> {r.last_error}</span>}
              </td>
              <td>{r.last_evaluation ? time(r.last_evaluation) : "—"}</td>
              <td class="num">
                {r.alerts.pending} / {r.alerts.firing}
              </td>
              <td>
                {edit && r.source === "api" && (
                  <>
                    <button onClick={() => edit(r)}>Edit</button>{" "}
                    <button onClick={() => confirm(`Delete rule ${r.name}?`) && remove(r.name ?? "")}>
                      Delete
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** A form field whose API error (by `field`) shows beside it. */
function Field({
  name,
  label,
  error,
  children,
}: {
  name: string;
  label: string;
  error: ApiError | null;
  children: preact.ComponentChildren;
}) {
  const mine = error && error.field !== null && (error.field === name || error.field.startsWith(`${name}.`));
  return (
    <label class={`field${mine ? " invalid" : ""}`} data-field={name}>
      {label}
      {children}
      {mine && (
        <span class="field-error" role="alert">
          {error.message}
        </span>
      )}
    </label>
  );
}

function RuleForm({ rule, done }: { rule: Rule | null; done: () => void }) {
  const catalog = useCatalog();
  const [error, setError] = useState<ApiError | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const data = new FormData(e.currentTarget as HTMLFormElement);
    const text = (name: string) => String(data.get(name) ?? "").trim();
    const anomaly = text("kind") === "anomaly";
    const body: Record<string, unknown> = {
      metric: text("metric"),
      window: text("window"),
      group_by: text("group_by")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
      filters: parseFilters(text("filters")),
      for: text("for") || "0s",
      keep_firing_for: text("keep_firing_for") || "0s",
      no_data: text("no_data") || "ok",
      labels: parseLines(text("labels")),
      annotations: text("summary") ? { summary: text("summary") } : {},
    };
    if (text("interval")) body.interval = text("interval");
    if (anomaly) {
      body.baseline = "same_window_last_7d";
      if (text("ratio_above")) body.ratio_above = Number(text("ratio_above"));
      if (text("min_baseline")) body.min_baseline = Number(text("min_baseline"));
    } else {
      body.op = text("op");
      if (text("threshold")) body.threshold = Number(text("threshold"));
    }
    const name = text("name");
    if (!name) {
      setError(new ApiError(400, "invalid_argument", "a rule needs a name", "name"));
      return;
    }
    try {
      await unwrap(
        api.PUT("/api/v1/alert-rules/{name}", {
          params: { path: { name } },
          body: body as Schemas["AlertRule"],
        }),
      );
      done();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  const [kind, setKind] = useState(rule?.baseline ? "anomaly" : "threshold");
  return (
    <form class="editor" onSubmit={submit} aria-label="Alert rule">
      {error && <ErrorBox error={error} />}
      <Field name="name" label="Name" error={error}>
        <input name="name" defaultValue={rule?.name ?? ""} readOnly={!!rule} required />
      </Field>
      <Field name="metric" label="Metric" error={error}>
        <select name="metric" defaultValue={rule?.metric ?? "completion_rate"}>
          {catalog.state === "ready" && catalog.data.metrics.map((m) => <option value={m}>{m}</option>)}
        </select>
      </Field>
      <Field name="group_by" label="Group by (comma-separated fields)" error={error}>
        <input name="group_by" defaultValue={(rule?.group_by ?? []).join(", ")} />
      </Field>
      <Field name="filters" label="Filters (field=value,value per line)" error={error}>
        <textarea name="filters" rows={2} defaultValue={toLines(rule?.filters)} />
      </Field>
      <Field name="window" label="Window" error={error}>
        <input name="window" defaultValue={rule?.window ?? "10m"} />
      </Field>
      <Field name="interval" label="Interval" error={error}>
        <input name="interval" defaultValue={rule?.interval ?? ""} placeholder="default" />
      </Field>
      <label class="field">
        Kind
        <select name="kind" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value)}>
          <option value="threshold">threshold</option>
          <option value="anomaly">anomaly (same window, last 7 days)</option>
        </select>
      </label>
      {kind === "threshold" ? (
        <>
          <Field name="op" label="Operator" error={error}>
            <select name="op" defaultValue={rule?.op ?? ">"}>
              {[">", ">=", "<", "<="].map((o) => (
                <option value={o}>{o}</option>
              ))}
            </select>
          </Field>
          <Field name="threshold" label="Threshold" error={error}>
            <input name="threshold" defaultValue={rule?.threshold?.toString() ?? ""} />
          </Field>
        </>
      ) : (
        <>
          <Field name="ratio_above" label="Ratio above baseline" error={error}>
            <input name="ratio_above" defaultValue={rule?.ratio_above?.toString() ?? "2"} />
          </Field>
          <Field name="min_baseline" label="Minimum baseline" error={error}>
            <input name="min_baseline" defaultValue={rule?.min_baseline?.toString() ?? ""} />
          </Field>
        </>
      )}
      <Field name="for" label="For" error={error}>
        <input name="for" defaultValue={rule?.for ?? "0s"} />
      </Field>
      <Field name="keep_firing_for" label="Keep firing for" error={error}>
        <input name="keep_firing_for" defaultValue={rule?.keep_firing_for ?? "0s"} />
      </Field>
      <Field name="no_data" label="No data" error={error}>
        <select name="no_data" defaultValue={rule?.no_data ?? "ok"}>
          <option value="ok">ok</option>
          <option value="firing">firing</option>
          <option value="keep_state">keep_state</option>
        </select>
      </Field>
      <Field name="labels" label="Labels (name=value per line)" error={error}>
        <textarea name="labels" rows={2} defaultValue={toLines(rule?.labels)} />
      </Field>
      <Field name="annotations" label="Summary annotation" error={error}>
        <input name="summary" defaultValue={rule?.annotations?.summary ?? ""} />
      </Field>
      <div class="actions">
        <button type="submit">{rule ? "Save" : "Create"}</button>
        <button type="button" onClick={done}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function SilenceForm({ matchers: initial, done }: { matchers: Matcher[]; done: () => void }) {
  const [matchers, setMatchers] = useState<Matcher[]>(initial);
  const [error, setError] = useState<ApiError | null>(null);
  const set = (i: number, change: Partial<Matcher>) =>
    setMatchers(matchers.map((m, j) => (i === j ? { ...m, ...change } : m)));
  const submit = async (e: Event) => {
    e.preventDefault();
    const data = new FormData(e.currentTarget as HTMLFormElement);
    try {
      await unwrap(
        api.POST("/api/v1/silences", {
          body: {
            matchers,
            duration: String(data.get("duration") ?? "2h"),
            comment: String(data.get("comment") ?? ""),
            created_by: String(data.get("created_by") ?? ""),
          },
        }),
      );
      done();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  return (
    <form class="editor" onSubmit={submit} aria-label="Silence">
      {error && <ErrorBox error={error} />}
      <Field name="matchers" label="Matchers" error={error}>
        {matchers.map((m, i) => (
          <div class="matcher" key={i}>
            <input
              aria-label="Label name"
              value={m.name}
              onInput={(e) => set(i, { name: (e.target as HTMLInputElement).value })}
            />
            <select
              aria-label="Operator"
              value={m.op ?? "="}
              onChange={(e) => set(i, { op: (e.target as HTMLSelectElement).value as Matcher["op"] })}
            >
              {["=", "!=", "=~", "!~"].map((o) => (
                <option value={o}>{o}</option>
              ))}
            </select>
            <input
              aria-label="Label value"
              value={m.value}
              onInput={(e) => set(i, { value: (e.target as HTMLInputElement).value })}
            />
            <button type="button" onClick={() => setMatchers(matchers.filter((_, j) => j !== i))}>
              Remove
            </button>
          </div>
        ))}
        <button type="button" onClick={() => setMatchers([...matchers, { name: "", op: "=", value: "" }])}>
          Add matcher
        </button>
      </Field>
      <Field name="duration" label="Duration" error={error}>
        <input name="duration" defaultValue="2h" />
      </Field>
      <Field name="comment" label="Comment" error={error}>
        <input name="comment" />
      </Field>
      <Field name="created_by" label="Created by" error={error}>
        <input name="created_by" />
      </Field>
      <div class="actions">
        <button type="submit">Create silence</button>
        <button type="button" onClick={done}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function SilenceTable({
  silences,
  changed,
  canExpire,
}: {
  silences: Schemas["Silence"][];
  changed: () => void;
  canExpire: boolean;
}) {
  const [error, setError] = useState<ApiError | null>(null);
  const expire = async (id: string) => {
    try {
      await unwrap(api.DELETE("/api/v1/silences/{id}", { params: { path: { id } } }));
      changed();
    } catch (e) {
      setError(e as ApiError);
    }
  };
  return (
    <>
      {error && <ErrorBox error={error} />}
      <table class="silences">
        <thead>
          <tr>
            <th>Matchers</th>
            <th>State</th>
            <th>Starts</th>
            <th>Ends</th>
            <th>Comment</th>
            <th>Created by</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {silences.map((s) => (
            <tr key={s.id} data-silence={s.id}>
              <td>{s.matchers.map((m) => `${m.name}${m.op ?? "="}"${m.value}"`).join(", ")}</td>
              <td>
                <Badge kind={s.state === "active" ? "ok" : "other"}>{s.state}</Badge>
              </td>
              <td>{time(s.starts_at)}</td>
              <td>{time(s.ends_at)}</td>
              <td>{s.comment}</td>
              <td>{s.created_by}</td>
              <td>
                {canExpire && s.state !== "expired" && <button onClick={() => expire(s.id)}>Expire</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
