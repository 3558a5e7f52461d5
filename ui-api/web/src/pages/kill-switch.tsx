import { useState } from "preact/hooks";
import { type ApiError, api, unwrap } from "../api/client";
import type { components } from "../../generated/schema";
import { ErrorBox, Load } from "../components";
import { time } from "../lib/format";
import { useLoad } from "../lib/hooks";
import { useCan } from "../lib/who";

type Switch = components["schemas"]["KillSwitchView"];
type Source = components["schemas"]["SwitchSource"];
type State = components["schemas"]["SwitchState"];

/** Who set a switch, in words. */
function sourceText(source: Source): string {
  return source.type === "api" ? `key ${source.key_id}` : `alert rule ${source.rule}`;
}

/** What a switch covers, in words. */
function scopeText(s: Switch["scope"]): string {
  const parts = [];
  if (s.agent_version) parts.push(`agent version ${s.agent_version}`);
  if (s.prompt_version) parts.push(`prompt version ${s.prompt_version}`);
  return parts.length ? parts.join(", ") : "every version";
}

/** The project's kill switches; an admin disables and enables them here. */
export function KillSwitchPage() {
  const can = useCan();
  const [changes, setChanges] = useState(0);
  const [error, setError] = useState<ApiError | null>(null);
  const switches = useLoad(() => unwrap(api.GET("/api/v1/kill-switch")), [changes]);

  const set = async (
    agent: string,
    body: { state: State; reason?: string; agent_version?: string; prompt_version?: string },
  ) => {
    try {
      await unwrap(api.PUT("/api/v1/kill-switch/{agent}", { params: { path: { agent } }, body }));
      setError(null);
      setChanges((c) => c + 1);
    } catch (err) {
      setError(err as ApiError);
    }
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const text = (name: string) => String(data.get(name) ?? "").trim() || undefined;
    await set(String(data.get("agent") ?? ""), {
      state: data.get("state") === "enabled" ? "enabled" : "disabled",
      reason: text("reason"),
      agent_version: text("agent_version"),
      prompt_version: text("prompt_version"),
    });
  };

  return (
    <section>
      <h1>Kill switch</h1>
      <p class="muted">
        Agents ask <code>GET /api/v1/kill-switch/&#123;agent&#125;</code> before they run, and stop while a
        switch that covers them is disabled. Alert rules with <code>kill_switch</code> disable their agent
        when they fire.
      </p>
      {error && <ErrorBox error={error} />}
      {can("admin") && (
        <form class="editor" aria-label="Set a kill switch" onSubmit={submit}>
          <label class="field">
            Agent
            <input name="agent" required maxLength={256} />
          </label>
          <label class="field">
            Agent version (optional)
            <input name="agent_version" maxLength={256} />
          </label>
          <label class="field">
            Prompt version (optional)
            <input name="prompt_version" maxLength={256} />
          </label>
          <label class="field">
            State
            <select name="state">
              <option value="disabled">disabled</option>
              <option value="enabled">enabled</option>
            </select>
          </label>
          <label class="field">
            Reason (required to disable)
            <input name="reason" maxLength={1024} />
          </label>
          <div class="actions">
            <button type="submit">Set</button>
          </div>
        </form>
      )}
      <Load loaded={switches}>
        {({ switches }) =>
          switches.length === 0 ? (
            <p class="empty">
              No switch was ever set: every agent runs. Set one here or with{" "}
              <code>vigil kill-switch disable</code>.
            </p>
          ) : (
            <table class="kill-switches">
              <thead>
                <tr>
                  <th>Agent</th>
                  <th>Covers</th>
                  <th>State</th>
                  <th>Since</th>
                  <th>Set by</th>
                  <th>Reason</th>
                  {can("admin") && <th />}
                </tr>
              </thead>
              <tbody>
                {switches.map((s) => (
                  <tr
                    key={`${s.scope.agent}|${s.scope.agent_version ?? ""}|${s.scope.prompt_version ?? ""}`}
                    data-agent={s.scope.agent}
                    data-state={s.state}
                  >
                    <td>{s.scope.agent}</td>
                    <td>{scopeText(s.scope)}</td>
                    <td>
                      <span class={`badge badge-${s.state === "disabled" ? "failure" : "success"}`}>
                        {s.state}
                      </span>
                    </td>
                    <td>{time(s.since)}</td>
                    <td>{sourceText(s.source)}</td>
                    <td>{s.reason}</td>
                    {can("admin") && (
                      <td>
                        {s.state === "disabled" && (
                          <button
                            onClick={() =>
                              set(s.scope.agent, {
                                state: "enabled",
                                reason: "re-enabled in the UI",
                                agent_version: s.scope.agent_version ?? undefined,
                                prompt_version: s.scope.prompt_version ?? undefined,
                              })
                            }
                          >
                            Enable
                          </button>
                        )}
                      </td>
                    )}
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
