import { describe, expect, it } from "vitest";
import { buildRows, type SpanLike } from "./tree";

function span(
  id: string,
  parent: string,
  start: number,
  end: number,
  extra: Partial<SpanLike> = {},
): SpanLike {
  return {
    span_id: id,
    parent_span_id: parent,
    start_time_ns: start,
    end_time_ns: end,
    kind: "other",
    status: "ok",
    tool_name: "",
    tool_args_hash: "",
    ...extra,
  };
}

describe("buildRows", () => {
  it("orders depth-first with children by start time", () => {
    const rows = buildRows([
      span("c2", "root", 50, 60),
      span("root", "", 0, 100),
      span("c1", "root", 10, 40),
      span("g1", "c1", 20, 30),
    ]);
    expect(rows.map((r) => [r.span.span_id, r.depth])).toEqual([
      ["root", 0],
      ["c1", 1],
      ["g1", 2],
      ["c2", 1],
    ]);
  });

  it("places bars in proportion to the run's time span", () => {
    const rows = buildRows([span("root", "", 1000, 2000), span("a", "root", 1250, 1500)]);
    const a = rows.find((r) => r.span.span_id === "a")!;
    expect(a.offset).toBeCloseTo(25);
    expect(a.width).toBeCloseTo(25);
    expect(rows[0].offset).toBe(0);
    expect(rows[0].width).toBe(100);
  });

  it("shows orphans at the top level and survives cycles", () => {
    const rows = buildRows([span("a", "missing", 0, 1), span("b", "c", 0, 1), span("c", "b", 1, 2)]);
    expect(rows.map((r) => r.span.span_id).sort()).toEqual(["a", "b", "c"]);
    const cyclic = buildRows([span("x", "x", 0, 1)]);
    expect(cyclic.map((r) => r.span.span_id)).toEqual(["x"]);
  });

  it("marks a tool call repeated when an earlier one had the same tool and arguments", () => {
    const tool = (id: string, start: number, hash: string) =>
      span(id, "root", start, start + 1, { kind: "tool", tool_name: "search", tool_args_hash: hash });
    const rows = buildRows([
      span("root", "", 0, 100),
      tool("t2", 20, "h"),
      tool("t1", 10, "h"),
      tool("t3", 30, "other"),
    ]);
    const repeated = rows.filter((r) => r.repeated).map((r) => r.span.span_id);
    expect(repeated).toEqual(["t2"]);
  });

  it("gives nothing for no spans", () => {
    expect(buildRows([])).toEqual([]);
  });
});
