// Metric answers as chart series: pure, unit-tested.

export type MetricRow = Record<string, string | number | null | undefined>;

/** Bucket lengths a chart may use, shortest first, with their names in the API's syntax. */
const STEPS: [string, number][] = [
  ["1m", 60_000],
  ["5m", 300_000],
  ["15m", 900_000],
  ["1h", 3_600_000],
  ["3h", 10_800_000],
  ["6h", 21_600_000],
  ["12h", 43_200_000],
  ["1d", 86_400_000],
  ["7d", 604_800_000],
];

/** The shortest step that cuts `[from, to)` into at most `maxBuckets` buckets. */
export function stepFor(fromMs: number, toMs: number, maxBuckets = 120): { name: string; ms: number } {
  const span = Math.max(toMs - fromMs, 1);
  for (const [name, ms] of STEPS) {
    if (span / ms <= maxBuckets) return { name, ms };
  }
  const [name, ms] = STEPS[STEPS.length - 1];
  return { name, ms };
}

export interface Series {
  /** The group's values joined (`""` when ungrouped). */
  label: string;
  values: (number | null)[];
}

/**
 * One series per group (by the `groupBy` fields) of `metric`, over every bucket of
 * `[from, to)`. A bucket the answer has no row for is `missing`: 0 for counts and sums (nothing
 * happened), null for rates, percentiles and costs (nothing was measured).
 */
export function toSeries(
  rows: MetricRow[],
  metric: string,
  groupBy: string[],
  fromMs: number,
  toMs: number,
  stepMs: number,
  missing: 0 | null = null,
): { x: number[]; series: Series[] } {
  const first = Math.floor(fromMs / stepMs) * stepMs;
  const x: number[] = [];
  for (let t = first; t < toMs; t += stepMs) x.push(t / 1000);
  const index = new Map(x.map((t, i) => [t, i]));
  const byGroup = new Map<string, (number | null)[]>();
  for (const row of rows) {
    const label = groupBy.map((f) => String(row[f] ?? "")).join(" · ");
    const at = index.get(Date.parse(String(row.bucket)) / 1000);
    if (at === undefined) continue;
    let values = byGroup.get(label);
    if (!values) {
      values = new Array(x.length).fill(missing);
      byGroup.set(label, values);
    }
    const value = row[metric];
    values[at] = typeof value === "number" ? value : null;
  }
  const series = [...byGroup.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([label, values]) => ({ label, values }));
  return { x, series };
}
