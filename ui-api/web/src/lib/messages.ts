// GenAI chat messages in a span's input or output, as a conversation. Reads the OpenTelemetry
// GenAI form (`[{role, parts: [{type: "text", content} | {type: "tool_call", name, arguments} |
// {type: "tool_call_response", response}]}]`) and the common `[{role, content}]` form. Pure,
// unit-tested.

export type Part =
  | { kind: "text"; text: string }
  | { kind: "tool_call"; name: string; arguments: string }
  | { kind: "tool_result"; text: string };

export interface Message {
  role: string;
  parts: Part[];
  finishReason?: string;
}

const text = (value: unknown): string =>
  typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value, null, 2);

function partOf(value: unknown): Part | null {
  if (typeof value === "string") return { kind: "text", text: value };
  if (typeof value !== "object" || value === null) return null;
  const p = value as Record<string, unknown>;
  switch (p.type) {
    case "text":
      return { kind: "text", text: text(p.content ?? p.text) };
    case "tool_call":
      return { kind: "tool_call", name: text(p.name), arguments: text(p.arguments) };
    case "tool_call_response":
      return { kind: "tool_result", text: text(p.response ?? p.result) };
    default:
      return { kind: "text", text: text(value) };
  }
}

/** The messages `input` holds, or null when it is not a list of chat messages. */
export function asMessages(input: string): Message[] | null {
  const trimmed = input.trim();
  if (!trimmed.startsWith("[")) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch {
    return null;
  }
  if (!Array.isArray(parsed) || parsed.length === 0) return null;
  const messages: Message[] = [];
  for (const item of parsed) {
    if (typeof item !== "object" || item === null || typeof (item as { role?: unknown }).role !== "string") {
      return null;
    }
    const m = item as Record<string, unknown>;
    const raw = Array.isArray(m.parts) ? m.parts : Array.isArray(m.content) ? m.content : [m.content ?? ""];
    const parts = raw.map(partOf).filter((p): p is Part => p !== null);
    if (Array.isArray(m.tool_calls)) {
      for (const call of m.tool_calls as Record<string, unknown>[]) {
        const fn = (call.function ?? call) as Record<string, unknown>;
        parts.push({ kind: "tool_call", name: text(fn.name), arguments: text(fn.arguments) });
      }
    }
    messages.push({
      role: m.role as string,
      parts,
      finishReason: typeof m.finish_reason === "string" ? m.finish_reason : undefined,
    });
  }
  return messages;
}
