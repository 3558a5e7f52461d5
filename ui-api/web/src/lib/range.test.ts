import { describe, expect, it } from "vitest";
import { bounds } from "./range";

describe("bounds", () => {
  const now = Date.parse("2026-11-24T12:00:00Z");
  it("counts a preset back from now", () => {
    expect(bounds({ range: "24h" }, now)).toEqual({ from: "2026-11-23T12:00:00.000Z" });
  });
  it("passes custom bounds through, and none is all time", () => {
    expect(bounds({ from: "2026-11-01T00:00:00Z", to: "2026-11-02T00:00:00Z" }, now)).toEqual({
      from: "2026-11-01T00:00:00Z",
      to: "2026-11-02T00:00:00Z",
    });
    expect(bounds({}, now)).toEqual({ from: undefined, to: undefined });
  });
});
