import { describe, expect, it } from "vitest";
import { asMessages } from "./messages";

describe("asMessages", () => {
  it("reads the GenAI parts form", () => {
    const input = JSON.stringify([
      { role: "system", parts: [{ type: "text", content: "be brief" }] },
      {
        role: "assistant",
        parts: [{ type: "tool_call", name: "sql_query", arguments: { sql: "SELECT 1" } }],
        finish_reason: "tool_call",
      },
      { role: "tool", parts: [{ type: "tool_call_response", response: "1 row" }] },
    ]);
    expect(asMessages(input)).toEqual([
      { role: "system", parts: [{ kind: "text", text: "be brief" }], finishReason: undefined },
      {
        role: "assistant",
        parts: [{ kind: "tool_call", name: "sql_query", arguments: '{\n  "sql": "SELECT 1"\n}' }],
        finishReason: "tool_call",
      },
      { role: "tool", parts: [{ kind: "tool_result", text: "1 row" }], finishReason: undefined },
    ]);
  });

  it("reads the role/content form with tool calls", () => {
    const input = JSON.stringify([
      { role: "user", content: "hi" },
      { role: "assistant", content: null, tool_calls: [{ function: { name: "f", arguments: "{}" } }] },
    ]);
    const messages = asMessages(input)!;
    expect(messages[0].parts).toEqual([{ kind: "text", text: "hi" }]);
    expect(messages[1].parts).toContainEqual({ kind: "tool_call", name: "f", arguments: "{}" });
  });

  it("leaves anything else alone", () => {
    expect(asMessages("plain text")).toBeNull();
    expect(asMessages("[1, 2]")).toBeNull();
    expect(asMessages('[{"no": "role"}]')).toBeNull();
    expect(asMessages("[not json")).toBeNull();
    expect(asMessages("<img src=x onerror=alert(1)>")).toBeNull();
  });
});
