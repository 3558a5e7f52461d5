// The web UI's own speed against a running `vigil serve` (BENCHMARKS.md, "Web UI"): for the run
// list and a run's detail, the API's time (the browser's Resource Timing of its request, from
// request start to response end) and the render time (from the answer parsed to the first frame
// drawn after the page rendered it: performance.measure "vigil:render:<page>"), separately;
// and how long a click on a span of a large run takes to show its panel.
//   VIGIL_URL, VIGIL_KEY       the server and a key with the read role
//   VIGIL_TRACE                the run whose detail is timed (default: the list's first)
//   VIGIL_REPETITIONS          page loads per figure (default 7); the median is reported
import { chromium } from "playwright-core";

const base = process.env.VIGIL_URL;
const key = process.env.VIGIL_KEY;
const repetitions = Number(process.env.VIGIL_REPETITIONS ?? 7);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
await page.goto(`${base}/runs`);
await page.evaluate((k) => sessionStorage.setItem("vigil.apiKey", k), key);

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

async function time(path, name, ready, apiPath) {
  const api = [];
  const render = [];
  for (let i = 0; i < repetitions; i += 1) {
    await page.goto(`${base}${path}`);
    await page.locator(ready).first().waitFor({ timeout: 120_000 });
    const measured = await page.waitForFunction(
      ([n, p]) => {
        const r = performance.getEntriesByName(`vigil:render:${n}`)[0];
        const a = performance
          .getEntriesByType("resource")
          .filter((e) => new URL(e.name).pathname === p)
          .pop();
        return r && a ? { render: r.duration, api: a.responseEnd - a.requestStart } : null;
      },
      [name, apiPath],
      { timeout: 120_000 },
    );
    const { render: r, api: a } = await measured.jsonValue();
    api.push(a);
    render.push(r);
  }
  return { api_ms: median(api), render_ms: median(render), repetitions };
}

/** Sends one run of `spans` spans over OTLP/HTTP (a root agent span, model and tool calls under
 * it) and waits until its detail holds them all; returns its trace id. */
async function bigRun(spans) {
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

const trace = process.env.VIGIL_TRACE ?? (await bigRun(Number(process.env.VIGIL_BIG_RUN_SPANS ?? 2000)));
const report = {
  runs_page: await time("/runs", "runs", "table.runs tbody tr", "/api/v1/runs"),
  run_detail: await time(`/runs/${trace}`, "run", ".span-row", `/api/v1/runs/${trace}`),
};
report.run_detail.spans = await page.locator(".span-row").count();
// Responsiveness of a large run: a click on the last span until its panel shows it.
const clicks = [];
const rows = page.locator(".span-row");
for (let i = 0; i < repetitions; i += 1) {
  const row = rows.nth((report.run_detail.spans - 1 - i * 7) % report.run_detail.spans);
  const id = await row.getAttribute("data-span-id");
  const started = await page.evaluate(() => performance.now());
  await row.click();
  await page.waitForFunction(
    (sid) => document.querySelector(`.span-row.selected[data-span-id="${sid}"]`),
    id,
  );
  clicks.push((await page.evaluate(() => performance.now())) - started);
}
report.span_click_ms = median(clicks);
console.log(JSON.stringify(report, null, 2));
await browser.close();
