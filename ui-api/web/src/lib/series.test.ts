import { describe, expect, it } from "vitest";
import { stepFor, toSeries } from "./series";

describe("stepFor", () => {
  it("takes the shortest step within the bucket budget", () => {
    const hour = 3_600_000;
    expect(stepFor(0, hour).name).toBe("1m");
    expect(stepFor(0, 24 * hour).name).toBe("15m");
    expect(stepFor(0, 7 * 24 * hour).name).toBe("3h");
    expect(stepFor(0, 400 * 24 * hour).name).toBe("7d");
  });
});

describe("toSeries", () => {
  const from = Date.parse("2026-11-20T00:00:00Z");
  const step = 3_600_000;
  const rows = [
    { agent: "b", bucket: "2026-11-20T01:00:00Z", runs: 3 },
    { agent: "a", bucket: "2026-11-20T00:00:00Z", runs: 2 },
    { agent: "a", bucket: "2026-11-20T02:00:00Z", runs: null },
  ];
  it("gives every bucket, a series per group, null where nothing was measured", () => {
    const { x, series } = toSeries(rows, "runs", ["agent"], from, from + 3 * step, step);
    expect(x).toEqual([from / 1000, from / 1000 + 3600, from / 1000 + 7200]);
    expect(series).toEqual([
      { label: "a", values: [2, null, null] },
      { label: "b", values: [null, 3, null] },
    ]);
  });
  it("counts are 0 where the answer has no row", () => {
    const { series } = toSeries(rows, "runs", ["agent"], from, from + 3 * step, step, 0);
    expect(series[1]).toEqual({ label: "b", values: [0, 3, 0] });
  });

  it("one unlabelled series when ungrouped", () => {
    const { series } = toSeries(
      [{ bucket: "2026-11-20T00:00:00Z", runs: 5 }],
      "runs",
      [],
      from,
      from + step,
      step,
    );
    expect(series).toEqual([{ label: "", values: [5] }]);
  });
});
