// Time ranges of the URL (`?range=24h` or `?from=…&to=…`) as the API's RFC 3339 bounds.

export const PRESETS: Record<string, number> = {
  "15m": 15 * 60_000,
  "1h": 3_600_000,
  "6h": 6 * 3_600_000,
  "24h": 24 * 3_600_000,
  "7d": 7 * 24 * 3_600_000,
  "30d": 30 * 24 * 3_600_000,
};

/** `from`/`to` for the API: a preset counts back from `now`; custom bounds pass through; none is all time. */
export function bounds(
  params: Record<string, string>,
  now: number = Date.now(),
): { from?: string; to?: string } {
  const preset = params.range ? PRESETS[params.range] : undefined;
  if (preset !== undefined) return { from: new Date(now - preset).toISOString() };
  return { from: params.from || undefined, to: params.to || undefined };
}
