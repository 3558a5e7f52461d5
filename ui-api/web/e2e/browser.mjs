// The web UI in a real headless Chromium against a running `vigil serve` with demo data.
// Run by tests/e2e/web.rs, which starts Vigil (embedded store or ClickHouse) and passes:
//   VIGIL_URL        the HTTP listener, e.g. http://127.0.0.1:4318
//   VIGIL_KEY        an admin key
//   VIGIL_XSS_TRACE  a trace whose run and span input is an HTML payload
//   VIGIL_SHOTS      where to write screenshots
// Expected values come from the API, never from the page. Exits non-zero on the first failure.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";

const base = process.env.VIGIL_URL;
const key = process.env.VIGIL_KEY;
const xssTrace = process.env.VIGIL_XSS_TRACE;
const shots = process.env.VIGIL_SHOTS ?? "target/ui-screenshots";
mkdirSync(shots, { recursive: true });

async function api(path) {
  const response = await fetch(base + path, { headers: { Authorization: `Bearer ${key}` } });
  assert.equal(response.status, 200, `${path}: ${response.status}`);
  return response.json();
}

const browser = await chromium.launch({
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
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const problems = [];
page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
page.on("response", (r) => r.status() >= 400 && problems.push(`HTTP ${r.status()}: ${r.url()}`));
let dialogs = 0;
page.on("dialog", async (d) => {
  dialogs += 1;
  await d.dismiss();
});
const step = async (name, body) => {
  try {
    await body();
  } catch (e) {
    await page.screenshot({ path: `${shots}/failed-${name}.png`, fullPage: true }).catch(() => {});
    console.error(`FAILED ${name}: ${e.stack ?? e}`);
    await browser.close();
    process.exit(1);
  }
  assert.deepEqual(problems, [], `${name}: ${problems.join("\n")}`);
  assert(!page.url().includes(key), "the key is in the URL");
  console.log(`ok ${name}`);
};

await step("sign-in", async () => {
  await page.goto(`${base}/runs`);
  await page.getByLabel("API key").fill(key);
  await page.screenshot({ path: `${shots}/sign-in.png` });
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("table.runs tbody tr").first().waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("vigil.apiKey")), key);
});

await step("runs", async () => {
  const first = await api("/api/v1/runs?limit=50");
  const shown = await page.locator("table.runs tbody tr td:first-child a").evaluateAll((links) =>
    links.map((a) => a.getAttribute("href").split("/").pop()),
  );
  assert.deepEqual(shown, first.runs.map((r) => r.trace_id));
  // Each run's calls and failed calls, as the API rolls them up.
  const calls = await page.locator("table.runs tbody tr td:nth-child(8)").allInnerTexts();
  const errors = await page.locator("table.runs tbody tr td:nth-child(9)").allInnerTexts();
  first.runs.forEach((r, i) => {
    assert.equal(calls[i].trim(), `${r.calls.model_calls} / ${r.calls.tool_calls}`, r.trace_id);
    assert.equal(errors[i].trim(), r.calls.failed_calls ? String(r.calls.failed_calls) : "", r.trace_id);
  });
  await page.screenshot({ path: `${shots}/runs.png`, fullPage: true });
});

let agent;
await step("filter-by-agent", async () => {
  const all = await api("/api/v1/runs?limit=50");
  agent = all.runs.find((r) => r.agent_name).agent_name;
  await page.locator("table.runs tbody tr td:nth-child(2) button", { hasText: agent }).first().click();
  await page.waitForURL((url) => url.searchParams.get("agent") === agent);
  const expected = await api(`/api/v1/runs?limit=50&agent=${encodeURIComponent(agent)}`);
  await page.waitForFunction(
    (n) => document.querySelectorAll("table.runs tbody tr").length === n,
    expected.runs.length,
  );
  const shown = await page.locator("table.runs tbody tr td:first-child a").evaluateAll((links) =>
    links.map((a) => a.getAttribute("href").split("/").pop()),
  );
  assert.deepEqual(shown, expected.runs.map((r) => r.trace_id));
  const agents = await page.locator("table.runs tbody tr td:nth-child(2)").allInnerTexts();
  assert(agents.length > 0);
  assert(agents.every((a) => a === agent), `other agents shown: ${agents}`);
  // A deep link reloads to the same view.
  await page.reload();
  await page.locator("table.runs tbody tr").first().waitFor();
  assert.equal(new URL(page.url()).searchParams.get("agent"), agent);
  assert.equal(await page.locator("table.runs tbody tr").count(), expected.runs.length);
});

await step("run-detail", async () => {
  const runs = await api("/api/v1/runs?limit=50");
  // The run with the most spans of the first page.
  let best = null;
  for (const run of runs.runs.slice(0, 10)) {
    const detail = await api(`/api/v1/runs/${run.trace_id}`);
    if (!best || detail.spans.length > best.spans.length) best = detail;
  }
  const traceId = best.run.trace_id;
  await page.goto(`${base}/runs/${traceId}`);
  await page.locator(".span-row").first().waitFor();
  const rows = page.locator(".span-row");
  assert.equal(await rows.count(), best.spans.length);
  const ids = await rows.evaluateAll((r) => r.map((e) => e.dataset.spanId));
  assert.deepEqual([...ids].sort(), best.spans.map((s) => s.span_id).sort());
  // Bars in proportion to the span times (computed here from the API's nanoseconds).
  const start = Math.min(...best.spans.map((s) => s.start_time_ns));
  const end = Math.max(...best.spans.map((s) => s.end_time_ns));
  const bars = await page.locator(".span-row .bar").evaluateAll((b) =>
    b.map((e) => [Number(e.dataset.offset), Number(e.dataset.width)]),
  );
  ids.forEach((id, i) => {
    const s = best.spans.find((x) => x.span_id === id);
    const offset = ((s.start_time_ns - start) / (end - start)) * 100;
    const width = ((s.end_time_ns - s.start_time_ns) / (end - start)) * 100;
    assert(Math.abs(bars[i][0] - offset) < 0.01, `${id}: offset ${bars[i][0]} != ${offset}`);
    assert(Math.abs(bars[i][1] - width) < 0.01, `${id}: width ${bars[i][1]} != ${width}`);
  });
  // Each model span shows its model, tokens and cost.
  for (const span of best.spans.filter((s) => s.model).slice(0, 3)) {
    await page.locator(`.span-row[data-span-id="${span.span_id}"]`).click();
    const panel = page.getByRole("complementary", { name: "Selected span" });
    await panel.getByText(span.model, { exact: false }).first().waitFor();
    const text = await panel.innerText();
    assert(text.includes(`${span.input_tokens.toLocaleString("en-US")} in`), `tokens of ${span.span_id}`);
    if (span.cost_usd !== null) assert(text.includes("$"), `cost of ${span.span_id}`);
  }
  await page.screenshot({ path: `${shots}/run-detail.png`, fullPage: true });
  await page.reload();
  await page.locator(".span-row").first().waitFor();
  assert.equal(await page.locator(".span-row").count(), best.spans.length);
});

await step("session", async () => {
  const runs = await api("/api/v1/runs?limit=50");
  const run = runs.runs.find((r) => r.session_id);
  const session = await api(`/api/v1/sessions/${encodeURIComponent(run.session_id)}`);
  await page.goto(`${base}/sessions/${encodeURIComponent(run.session_id)}`);
  await page.locator(".conversation li").first().waitFor();
  assert.equal(await page.locator(".conversation li").count(), session.runs.length);
  await page.screenshot({ path: `${shots}/session.png`, fullPage: true });
});

await step("xss-shows-as-text", async () => {
  await page.goto(`${base}/runs/${xssTrace}`);
  const panel = page.getByRole("complementary", { name: "Selected span" });
  await panel.waitFor();
  await panel.getByText("<img src=x onerror=alert(1)>").first().waitFor();
  assert.equal(await page.locator("main img").count(), 0, "the payload became an element");
  await page.waitForTimeout(300);
  assert.equal(dialogs, 0, "the payload ran");
});

await step("sign-out", async () => {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("API key").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("vigil.apiKey")), null);
});

await browser.close();
console.log("browser tests passed");
