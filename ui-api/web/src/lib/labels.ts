// `key=value` lines ⇄ label maps, for the rule and silence forms. Pure, unit-tested.

export function parseLines(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const at = trimmed.indexOf("=");
    if (at <= 0) continue;
    out[trimmed.slice(0, at).trim()] = trimmed.slice(at + 1).trim();
  }
  return out;
}

export function toLines(map: Record<string, string | string[]> | undefined): string {
  return Object.entries(map ?? {})
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`)
    .join("\n");
}

/** `key=a,b` lines as filters: field → accepted values. */
export function parseFilters(text: string): Record<string, string[]> {
  return Object.fromEntries(
    Object.entries(parseLines(text)).map(([k, v]) => [
      k,
      v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    ]),
  );
}
