// What the browser tests and the benchmark share: Debian's Chromium, started as this machine
// needs it (no sandbox as root, no background network, which the closed network refuses).
import { chromium } from "playwright-core";

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Sends one run of `spans` spans over OTLP/HTTP (a root agent span, model and tool calls under
 * it) and waits until its detail holds them all; returns its trace id. */
export async function bigRun(base, key, spans) {
  const hex = (n, width) => n.toString(16).padStart(width, "0");
  const traceId = hex(Date.now(), 16) + hex(Math.floor(Math.random() * 2 ** 48), 16);
  const start = BigInt(Date.now() - 60_000) * 1_000_000n;
  const span = (i) => {
    const kind = i === 0 ? "invoke_agent" : i % 2 ? "chat" : "execute_tool";
    const attributes = [{ key: "gen_ai.operation.name", value: { stringValue: kind } }];
    if (kind === "chat") {
      attributes.push({ key: "gen_ai.request.model", value: { stringValue: "gpt-4o" } });
      attributes.push({ key: "gen_ai.usage.input_tokens", value: { intValue: "100" } });
    } else if (kind === "execute_tool") {
      attributes.push({ key: "gen_ai.tool.name", value: { stringValue: "search" } });
    } else {
      attributes.push({ key: "gen_ai.agent.name", value: { stringValue: "big-run" } });
    }
    const begin = start + BigInt(i) * 10_000_000n;
    return {
      traceId,
      spanId: hex(i + 1, 16),
      parentSpanId: i === 0 ? "" : hex(1, 16),
      name: `${kind} ${i}`,
      kind: 1,
      startTimeUnixNano: String(begin),
      endTimeUnixNano: String(i === 0 ? start + BigInt(spans) * 10_000_000n : begin + 8_000_000n),
      attributes,
    };
  };
  const all = Array.from({ length: spans }, (_, i) => span(i));
  for (let at = 0; at < all.length; at += 500) {
    const body = {
      resourceSpans: [{ resource: { attributes: [] }, scopeSpans: [{ spans: all.slice(at, at + 500) }] }],
    };
    const response = await fetch(`${base}/v1/traces`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`export: ${response.status} ${await response.text()}`);
  }
  for (;;) {
    const r = await fetch(`${base}/api/v1/runs/${traceId}`, { headers: { Authorization: `Bearer ${key}` } });
    if (r.ok && (await r.json()).spans.length === spans) return traceId;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
