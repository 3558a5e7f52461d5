import { describe, expect, it } from "vitest";
import { type Catalog, refusedFields } from "./catalog";

const catalog: Catalog = {
  metrics: ["runs", "model_calls", "tool_error_rate"],
  fields: ["agent", "model", "tool"],
  modelCall: { metrics: ["model_calls"], fields: ["model"] },
  toolCall: { metrics: ["tool_error_rate"], fields: ["tool"] },
};

describe("refusedFields", () => {
  it("refuses model-call fields for tool-call metrics and the reverse", () => {
    expect(refusedFields(catalog, ["tool_error_rate"], ["agent", "model", "tool"])).toEqual(["model"]);
    expect(refusedFields(catalog, ["model_calls"], ["agent", "model", "tool"])).toEqual(["tool"]);
  });
  it("refuses nothing for run metrics", () => {
    expect(refusedFields(catalog, ["runs"], ["agent", "model", "tool"])).toEqual([]);
  });
});
