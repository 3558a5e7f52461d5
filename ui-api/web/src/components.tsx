// Small pieces every page uses: loading, error and empty states, text that is only ever text.
import type { ComponentChildren } from "preact";
import type { ApiError } from "./api/client";
import type { Loaded } from "./lib/hooks";
import { asMessages } from "./lib/messages";

export function ErrorBox({ error }: { error: ApiError }) {
  return (
    <div class="error" role="alert">
      <strong>{error.status ? `${error.status} ${error.code}` : error.code}</strong>
      {error.field && <span class="field"> ({error.field})</span>}: {error.message}
    </div>
  );
}

export function Loading() {
  return (
    <div class="loading" aria-busy="true">
      Loading…
    </div>
  );
}

/** Renders `children(data)` once loaded; the loading and error states otherwise. */
export function Load<T>({
  loaded,
  children,
}: {
  loaded: Loaded<T>;
  children: (data: T) => ComponentChildren;
}) {
  if (loaded.state === "loading") return <Loading />;
  if (loaded.state === "error") return <ErrorBox error={loaded.error} />;
  return <>{children(loaded.data)}</>;
}

/** Content of a run or span: always text (never HTML), with its redaction shown as such. */
export function Content({ text, classification }: { text: string; classification?: string[] }) {
  if (text === "") return <span class="muted">empty</span>;
  if (text === "[redacted]") {
    return (
      <span class="redacted" title="Your key lacks the audit role">
        redacted{classification && classification.length > 0 ? ` (${classification.join(", ")})` : ""}
      </span>
    );
  }
  return <pre class="content">{text}</pre>;
}

export function Badge({ kind, children }: { kind: string; children: ComponentChildren }) {
  return <span class={`badge badge-${kind}`}>{children}</span>;
}

/** A span's input or output: chat messages as a conversation, JSON as a foldable tree, the rest
 * as text. Always rendered as text, never as HTML. */
export function Payload({ text, classification }: { text: string; classification?: string[] }) {
  const messages = asMessages(text);
  if (messages) {
    return (
      <ol class="messages">
        {messages.map((m, i) => (
          <li key={i} class={`message role-${m.role}`}>
            <div class="role">
              {m.role}
              {m.finishReason && <span class="muted"> · {m.finishReason}</span>}
            </div>
            {m.parts.map((p, j) =>
              p.kind === "tool_call" ? (
                <div key={j} class="tool-call">
                  <code>{p.name}</code>
                  <pre class="content">{p.arguments}</pre>
                </div>
              ) : (
                <pre key={j} class={`content${p.kind === "tool_result" ? " tool-result" : ""}`}>
                  {p.text}
                </pre>
              ),
            )}
          </li>
        ))}
      </ol>
    );
  }
  const json = parseJson(text);
  if (json !== undefined && typeof json === "object" && json !== null)
    return <JsonTree value={json} depth={0} />;
  return <Content text={text} classification={classification} />;
}

function parseJson(text: string): unknown {
  const trimmed = text.trim();
  if (!(trimmed.startsWith("{") || trimmed.startsWith("["))) return undefined;
  try {
    return JSON.parse(trimmed);
  } catch {
    return undefined;
  }
}

/** Objects and arrays fold (`<details>`); the first two levels start open. */
export function JsonTree({ value, depth, name }: { value: unknown; depth: number; name?: string }) {
  const label = name !== undefined ? <span class="json-key">{name}: </span> : null;
  if (typeof value !== "object" || value === null) {
    return (
      <div class="json-leaf">
        {label}
        <span class={`json-${value === null ? "null" : typeof value}`}>{JSON.stringify(value)}</span>
      </div>
    );
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  const brackets = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  return (
    <details class="json" open={depth < 2}>
      <summary>
        {label}
        {brackets[0]}
        <span class="muted"> {entries.length} </span>
        {brackets[1]}
      </summary>
      {entries.map(([k, v]) => (
        <JsonTree key={k} name={k} value={v} depth={depth + 1} />
      ))}
    </details>
  );
}

/** Cursor paging: back in history to the previous page, the answer's cursor to the next. */
export function Pager({
  cursor,
  next,
  go,
}: {
  cursor?: string;
  next: string | null;
  go: (cursor: string) => void;
}) {
  return (
    <div class="pager">
      {cursor && <button onClick={() => history.back()}>Previous page</button>}
      {next && <button onClick={() => go(next)}>Next page</button>}
    </div>
  );
}
