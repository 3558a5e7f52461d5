// Small pieces every page uses: loading, error and empty states, text that is only ever text.
import type { ComponentChildren } from "preact";
import type { ApiError } from "./api/client";
import type { Loaded } from "./lib/hooks";

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
