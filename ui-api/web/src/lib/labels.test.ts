import { describe, expect, it } from "vitest";
import { parseFilters, parseLines, toLines } from "./labels";

describe("label lines", () => {
  it("round-trip", () => {
    const map = { severity: "page", team: "agents" };
    expect(parseLines(toLines(map))).toEqual(map);
  });
  it("skip blank and malformed lines, keep = in values", () => {
    expect(parseLines("a=1\n\n=x\nnoequals\nb = x=y ")).toEqual({ a: "1", b: "x=y" });
  });
  it("filters take comma-separated values", () => {
    expect(parseFilters("environment=production, staging\nagent=a")).toEqual({
      environment: ["production", "staging"],
      agent: ["a"],
    });
    expect(toLines({ environment: ["production", "staging"] })).toBe("environment=production,staging");
  });
});
