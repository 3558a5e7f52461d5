// How numbers and times are shown. Pure functions, unit-tested.

/** Milliseconds as `850 ms`, `2.50 s`, `3m 05s`, `1h 02m`. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return "—";
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(2)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

/** US dollars: `$0.0042`, `$3.41`, `$1,204.50`; `—` when unpriced. */
export function usd(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  if (value !== 0 && Math.abs(value) < 0.01) return `$${value.toPrecision(2)}`;
  return `$${value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** A count with thousands separators. */
export function count(value: number): string {
  return value.toLocaleString("en-US");
}

/** An RFC 3339 time as `2026-11-23 10:04:05.123` (UTC), the way the API counts days. */
export function time(rfc3339: string): string {
  const t = new Date(rfc3339);
  if (Number.isNaN(t.getTime())) return rfc3339;
  return t.toISOString().replace("T", " ").replace("Z", "");
}

/** Nanoseconds since the epoch (as the API's `*_ns` fields) to milliseconds. */
export function nsToMs(ns: number): number {
  return ns / 1e6;
}
