import { describe, expect, it } from "vitest";
import { duration, time, usd } from "./format";

describe("format", () => {
  it("durations", () => {
    expect(duration(850.4)).toBe("850 ms");
    expect(duration(2500)).toBe("2.50 s");
    expect(duration(185_000)).toBe("3m 05s");
    expect(duration(3_720_000)).toBe("1h 02m");
    expect(duration(0.25)).toBe("0.250 ms");
  });

  it("dollars, unpriced as a dash", () => {
    expect(usd(3.41)).toBe("$3.41");
    expect(usd(1204.5)).toBe("$1,204.50");
    expect(usd(0.0042)).toBe("$0.0042");
    expect(usd(0)).toBe("$0.00");
    expect(usd(null)).toBe("—");
  });

  it("times in UTC", () => {
    expect(time("2026-11-23T10:04:05.123456789Z")).toBe("2026-11-23 10:04:05.123");
  });
});
