// The web UI in a real headless Chromium against a running `vigil serve` with demo data.
// Run by tests/e2e/web.rs, which starts Vigil (embedded store or ClickHouse) and passes:
//   VIGIL_URL        the HTTP listener, e.g. http://127.0.0.1:4318
//   VIGIL_KEY        an admin key
//   VIGIL_XSS_TRACE  a trace whose run and span input is an HTML payload
//   VIGIL_XSS_PERSON the raw user id of that run
//   VIGIL_SHOTS      where to write screenshots
// Expected values come from the API, never from the page. Exits non-zero on the first failure.
import { bigRun, launch } from "./lib.mjs";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";

const base = process.env.VIGIL_URL;
const key = process.env.VIGIL_KEY;
const xssTrace = process.env.VIGIL_XSS_TRACE;
const xssPerson = process.env.VIGIL_XSS_PERSON;
const shots = process.env.VIGIL_SHOTS ?? "target/ui-screenshots";
mkdirSync(shots, { recursive: true });

async function api(path) {
  const response = await fetch(base + path, { headers: { Authorization: `Bearer ${key}` } });
  assert.equal(response.status, 200, `${path}: ${response.status}`);
  return response.json();
}

const browser = await launch();
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const problems = [];
page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
// A request the browser itself cancelled (the page left while an answer was on its way, or a
// newer request superseding it) is not a failure of the server; every other one is.
page.on("requestfailed", (r) => {
  const reason = r.failure()?.errorText;
  if (reason !== "net::ERR_ABORTED") problems.push(`request failed: ${r.url()} ${reason}`);
});
page.on("response", (r) => r.status() >= 400 && problems.push(`HTTP ${r.status()}: ${r.url()}`));
// Unexpected dialogs (an `alert` from injected script) are counted; a confirmation the test
// expects is accepted.
let dialogs = 0;
let confirmNext = false;
page.on("dialog", async (d) => {
  if (d.type() === "confirm" && confirmNext) {
    confirmNext = false;
    await d.accept();
  } else {
    dialogs += 1;
    await d.dismiss();
  }
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
  const shown = await page
    .locator("table.runs tbody tr td:first-child a")
    .evaluateAll((links) => links.map((a) => a.getAttribute("href").split("/").pop()));
  assert.deepEqual(
    shown,
    first.runs.map((r) => r.trace_id),
  );
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
  const shown = await page
    .locator("table.runs tbody tr td:first-child a")
    .evaluateAll((links) => links.map((a) => a.getAttribute("href").split("/").pop()));
  assert.deepEqual(
    shown,
    expected.runs.map((r) => r.trace_id),
  );
  const agents = await page.locator("table.runs tbody tr td:nth-child(2)").allInnerTexts();
  assert(agents.length > 0);
  assert(
    agents.every((a) => a === agent),
    `other agents shown: ${agents}`,
  );
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
  const bars = await page
    .locator(".span-row .bar")
    .evaluateAll((b) => b.map((e) => [Number(e.dataset.offset), Number(e.dataset.width)]));
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
  // Chat messages show as a conversation, one entry per message of the API's input.
  const chat = best.spans.find((s) => s.model && s.input.trim().startsWith("["));
  if (chat) {
    await page.locator(`.span-row[data-span-id="${chat.span_id}"]`).click();
    const panel = page.getByRole("complementary", { name: "Selected span" });
    await panel.locator(".messages").first().waitFor();
    assert.equal(
      await panel.locator(".messages").first().locator("> li").count(),
      JSON.parse(chat.input).length,
    );
  }
  // The keyboard moves the selection along the tree.
  const first = ids[0];
  await page.locator(`.span-row[data-span-id="${first}"]`).click();
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.locator(".span-row.selected").getAttribute("data-span-id"), ids[1]);
  await page.keyboard.press("End");
  assert.equal(await page.locator(".span-row.selected").getAttribute("data-span-id"), ids[ids.length - 1]);
  await page.screenshot({ path: `${shots}/run-detail.png`, fullPage: true });
  await page.reload();
  await page.locator(".span-row").first().waitFor();
  assert.equal(await page.locator(".span-row").count(), best.spans.length);
});

await step("large-run", async () => {
  // 1,000 spans: only the rows in view are drawn, and every span is still reachable.
  const trace = await bigRun(base, key, 1000);
  await page.goto(`${base}/runs/${trace}`);
  await page.locator(".span-row").first().waitFor();
  assert.equal(await page.locator(".waterfall").getAttribute("data-rows"), "1000");
  const drawn = await page.locator(".span-row").count();
  assert(drawn < 200, `${drawn} rows drawn`);
  const detail = await api(`/api/v1/runs/${trace}`);
  const lastId = detail.spans[detail.spans.length - 1].span_id;
  await page.locator(".span-row").first().click();
  await page.keyboard.press("End");
  await page.locator(`.span-row.selected[data-span-id="${lastId}"]`).waitFor();
  assert(await page.locator(`.span-row[data-span-id="${lastId}"]`).isVisible());
  await page.keyboard.press("Home");
  await page.locator(`.span-row.selected[data-span-id="${detail.spans[0].span_id}"]`).waitFor();
});

await step("sessions", async () => {
  const expected = await api("/api/v1/sessions?limit=50");
  await page.goto(`${base}/sessions`);
  await page.locator("table.sessions tbody tr").first().waitFor();
  const rows = await page
    .locator("table.sessions tbody tr")
    .evaluateAll((r) =>
      r.map((e) => [e.dataset.session, e.querySelector("[data-runs]").textContent.replace(/,/g, "")]),
    );
  assert.deepEqual(
    rows,
    expected.sessions.map((s) => [s.session_id, String(s.runs)]),
  );
  await page.screenshot({ path: `${shots}/sessions.png`, fullPage: true });
  await page.locator("table.sessions tbody tr a").first().click();
  await page.locator(".conversation li").first().waitFor();
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

await step("user", async () => {
  const some = (await api("/api/v1/runs?limit=50")).runs.find(
    (r) => r.user_hash && r.agent_name !== "xss-agent",
  );
  const theirs = (await api(`/api/v1/runs?limit=1000&user_hash=${some.user_hash}`)).runs;
  await page.goto(`${base}/runs/${some.trace_id}`);
  await page.locator(`a[href="/users/${some.user_hash}"]`).click();
  await page.locator("[data-total=runs]").waitFor();
  assert.equal(
    (await page.locator("[data-total=runs]").innerText()).replace(/,/g, ""),
    String(theirs.length),
  );
  await page.locator("table.user-sessions tbody tr").first().waitFor();
  const sessions = new Set(theirs.map((r) => r.session_id).filter(Boolean));
  assert.equal(await page.locator("table.user-sessions tbody tr").count(), sessions.size);
  await page.screenshot({ path: `${shots}/user.png`, fullPage: true });
});

await step("dashboard", async () => {
  // The demo's 48 hours (tests/e2e/support/conformance.rs, DEMO_END_TIME).
  const from = "2026-11-18T12:00:00Z";
  const to = "2026-11-20T12:00:00Z";
  await page.goto(`${base}/dashboard?from=${from}&to=${to}`);
  await page.locator("table.summary[data-field=agent] tbody tr").first().waitFor();
  // Seven charts, each drawn once its query answers.
  await page.waitForFunction(() => document.querySelectorAll(".chart canvas").length >= 7);
  const response = await fetch(`${base}/api/v1/metrics/query`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({
      from,
      to,
      metrics: ["runs", "completion_rate", "run_latency_p99_ms", "cost_per_run_usd"],
      group_by: ["agent"],
      filters: {},
    }),
  });
  assert.equal(response.status, 200);
  const expected = (await response.json()).rows;
  const rows = page.locator("table.summary[data-field=agent] tbody tr");
  assert.equal(await rows.count(), expected.length);
  for (const row of expected) {
    const tr = page.locator(`table.summary[data-field=agent] tbody tr[data-key="${row.agent}"]`);
    for (const metric of ["completion_rate", "run_latency_p99_ms", "cost_per_run_usd"]) {
      const shown = await tr.locator(`td[data-metric=${metric}]`).getAttribute("data-value");
      assert.equal(shown, String(row[metric]), `${row.agent} ${metric}`);
    }
    assert.equal((await tr.locator("td[data-metric=runs]").innerText()).replace(/,/g, ""), String(row.runs));
  }
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });

  // Hovering a chart shows each series' value in that bucket, as the API answers it.
  const hourly = await fetch(`${base}/api/v1/metrics/query`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ from, to, metrics: ["runs"], group_by: ["agent"], filters: {}, step: "1h" }),
  });
  assert.equal(hourly.status, 200);
  const buckets = (await hourly.json()).rows;
  const runsChart = page.locator('.chart[data-title="Runs"]');
  await runsChart.scrollIntoViewIfNeeded();
  const over = await runsChart.locator(".u-over").boundingBox();
  let checked = 0;
  for (const fraction of [0.3, 0.5, 0.7]) {
    await page.mouse.move(over.x + over.width * fraction, over.y + over.height / 2);
    const legend = runsChart.locator(".u-legend tr.u-series");
    const at = await legend.nth(0).locator(".u-value").innerText();
    const bucket = new Date(`${at.replace(" ", "T")}:00Z`).toISOString();
    for (let i = 1; i < (await legend.count()); i++) {
      const agent = await legend.nth(i).locator(".u-label").innerText();
      const row = buckets.find((r) => r.agent === agent && new Date(r.bucket).toISOString() === bucket);
      const shown = (await legend.nth(i).locator(".u-value").innerText()).replace(/,/g, "");
      assert.equal(shown, String(row ? row.runs : 0), `runs of ${agent} at ${bucket}`);
      checked++;
    }
  }
  assert.ok(checked >= 3, "the legend showed values");

  // Clicking a series' name under a chart filters the page by it.
  const costChart = page.locator("figure", { has: page.locator('.chart[data-title="Cost by model (USD)"]') });
  const model = await costChart.locator(".picks button").first().innerText();
  await costChart.locator(".picks button").first().click();
  await page.waitForURL((url) => url.searchParams.get("model") === model);
  await page.waitForFunction(
    () =>
      document.querySelectorAll('.chart[data-title="Cost by model (USD)"] .u-legend tr.u-series').length ===
      2,
  );
  // The tool chart cannot be filtered by model (the API refuses it) and says so.
  const toolChart = page.locator("figure", {
    has: page.locator('.chart[data-title="Tool error rate by tool"]'),
  });
  await toolChart.locator("figcaption", { hasText: "Not filtered by model" }).waitFor();
  await settled(page);
  await page.goto(`${base}/dashboard?from=${from}&to=${to}`);
  await page.locator("table.summary[data-field=agent] tbody tr").first().waitFor();

  // Picking an agent filters the page by it, in the URL.
  await tr0(page).click();
  await page.waitForURL((url) => url.searchParams.get("agent") === expected[0].agent);
  // The page fetches again for the filter: count the rows of its answer, not of the one before.
  await settled(page);
  await page.locator("table.summary[data-field=agent] tbody tr").first().waitFor();
  assert.equal(await page.locator("table.summary[data-field=agent] tbody tr").count(), 1);
  await settled(page);

  // Shadow runs alone: the demo has none, and the API answers no row; so does the page.
  const alone = await fetch(`${base}/api/v1/metrics/query`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ from, to, metrics: ["runs"], group_by: ["agent"], shadow: "only" }),
  });
  assert.deepEqual((await alone.json()).rows, []);
  await page.goto(`${base}/dashboard?from=${from}&to=${to}&shadow=only`);
  assert.equal(await page.locator('select[name="shadow"]').inputValue(), "only");
  await page.waitForFunction(() => document.querySelectorAll("p.empty").length >= 2);
  assert.equal(await page.locator("table.summary").count(), 0);
  await settled(page);
});

/** Waits until nothing on the page is loading, so leaving it aborts no request. */
async function settled(page) {
  await page.waitForFunction(() => !document.querySelector(".loading"));
}

function tr0(page) {
  return page.locator("table.summary[data-field=agent] tbody tr").first().locator("button");
}

await step("alerts", async () => {
  await page.goto(`${base}/alerts`);
  // A rule with a bad window: the API's error shows at the field; fixed, it is created.
  await page.getByRole("button", { name: "New rule" }).click();
  const form = page.getByRole("form", { name: "Alert rule" });
  await form.locator("input[name=name]").fill("ui-made-rule");
  await form.locator("select[name=metric]").selectOption("tool_error_rate");
  await form.locator("input[name=window]").fill("ten minutes");
  await form.locator("input[name=threshold]").fill("0.2");
  await form.getByRole("button", { name: "Create" }).click();
  await form.locator("[data-field=window] .field-error").waitFor();
  problems.length = 0; // the refused PUT was expected
  await form.locator("input[name=window]").fill("10m");
  await form.getByRole("button", { name: "Create" }).click();
  await page.locator("tr[data-rule=ui-made-rule]").waitFor();
  const rule = await api("/api/v1/alert-rules/ui-made-rule");
  assert.equal(rule.metric, "tool_error_rate");
  assert.equal(rule.window, "10m");
  assert.equal(rule.threshold, 0.2);
  // A silence made in the UI is the API's.
  await page.getByRole("button", { name: "New silence" }).click();
  const silence = page.getByRole("form", { name: "Silence" });
  await silence.getByLabel("Label value").first().fill("ui-made-rule");
  await silence.locator("input[name=comment]").fill("made in the browser");
  await silence.getByRole("button", { name: "Create silence" }).click();
  await page.locator("table.silences tbody tr").first().waitFor();
  const { silences } = await api("/api/v1/silences");
  const made = silences.find((s) => s.comment === "made in the browser");
  assert(made, "the silence is not in the API");
  assert.deepEqual(made.matchers, [{ name: "alertname", op: "=", value: "ui-made-rule" }]);
  assert.equal(made.state, "active");
  await page.screenshot({ path: `${shots}/alerts.png`, fullPage: true });
});

await step("keys", async () => {
  await page.goto(`${base}/settings/keys`);
  const form = page.getByRole("form", { name: "New key" });
  await form.getByLabel("read").check();
  await form.locator("input[name=description]").fill("made in the browser");
  await form.getByRole("button", { name: "Create key" }).click();
  const token = (await page.locator("pre[data-token]").innerText()).trim();
  const who = await fetch(`${base}/api/v1/whoami`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(who.status, 200);
  const me = await who.json();
  assert.deepEqual(me.roles, ["read"]);
  await page.screenshot({ path: `${shots}/keys.png`, fullPage: true });
  // Shown once: gone when dismissed, and not shown again on a reload.
  await page.getByRole("button", { name: "Done" }).click();
  assert.equal(await page.locator("pre[data-token]").count(), 0);
  await page.reload();
  await page.locator(`tr[data-key-id="${me.key_id}"]`).waitFor();
  assert(!(await page.content()).includes(token.split("_").pop()), "the secret is on the page again");
  // Revoked in the UI: refused by the API.
  confirmNext = true;
  await page.locator(`tr[data-key-id="${me.key_id}"] button`, { hasText: "Revoke" }).click();
  await page.locator(`tr[data-key-id="${me.key_id}"]`, { hasText: "revoked" }).waitFor();
  const refused = await fetch(`${base}/api/v1/whoami`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(refused.status, 401);
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

await step("compliance", async () => {
  const from = "2026-11-18T12:00:00Z";
  const to = "2026-11-20T12:00:00Z";
  const version = "v7"; // a prompt version of the demo's support-bot
  await page.goto(`${base}/compliance?from=${from}&to=${to}&f.prompt_version=${version}`);
  await page.locator("[data-total=runs]").waitFor();
  const response = await fetch(`${base}/api/v1/audit/affected`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ from, to, filters: { prompt_version: [version] }, limit: 50 }),
  });
  const expected = await response.json();
  assert(expected.runs > 0, "the demo has no v7 runs");
  for (const total of ["runs", "sessions", "users"]) {
    const shown = (await page.locator(`[data-total=${total}]`).innerText()).replace(/,/g, "");
    assert.equal(shown, String(expected[total]), total);
  }
  assert.equal(await page.locator("table.days tbody tr").count(), expected.by_day.length);
  assert.equal(
    await page.locator("table.affected-sessions tbody tr").count(),
    Math.min(expected.items.length, 50),
  );
  // The CSV export downloads what the API exports.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Export CSV" }).click(),
  ]);
  const csv = await (await download.createReadStream()).toArray();
  const lines = Buffer.concat(csv).toString("utf8").trim().split("\n");
  assert.equal(lines.length, expected.runs + 1, "CSV lines");
  await page.screenshot({ path: `${shots}/compliance.png`, fullPage: true });
  // A person looked up by raw id: the hash the runs carry.
  await page.getByLabel("User id").fill(xssPerson);
  await page.getByRole("button", { name: "Look up" }).click();
  const hash = (await page.locator("[data-user-hash]").innerText()).trim();
  const xssRun = await api(`/api/v1/runs/${xssTrace}`);
  assert.equal(hash, xssRun.run.user_hash);
  // Erased behind a typed confirmation: the receipt shows, the run is gone.
  const erasure = page.getByRole("form", { name: "Erasure" });
  await erasure.locator("input[name=user_hash]").fill(hash);
  assert(await erasure.getByRole("button", { name: "Erase" }).isDisabled(), "erase without confirmation");
  await erasure.locator("input[name=confirmation]").fill(`erase ${hash}`);
  await erasure.getByRole("button", { name: "Erase" }).click();
  await page.getByRole("status", { name: "Erasure receipt" }).waitFor({ timeout: 60_000 });
  const gone = await fetch(`${base}/api/v1/runs/${xssTrace}`, {
    headers: { Authorization: `Bearer ${key}` },
  });
  assert.equal(gone.status, 404);
});

await step("datasets", async () => {
  // A dataset of two versions, made through the API as `vigil datasets` does; one item's content
  // tries to run script.
  const send = async (method, path, body) => {
    const response = await fetch(base + path, {
      method,
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: body && JSON.stringify(body),
    });
    const text = await response.text();
    assert(response.ok, `${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text);
  };
  const xss = "<img src=x onerror=alert(1)>";
  await send("POST", "/api/v1/datasets", { name: "ui-golden", description: "made by the browser test" });
  await send("POST", "/api/v1/datasets/ui-golden/items", {
    items: [
      { id: "a", input: { q: 1 }, expected_output: "one" },
      { id: "b", input: xss, expected_output: xss, metadata: { why: xss } },
    ],
  });
  await send("POST", "/api/v1/datasets/ui-golden/items", { items: [{ id: "a", input: { q: 2 } }] });

  await page.goto(`${base}/datasets`);
  const row = page.locator('table.datasets tr[data-dataset="ui-golden"]');
  await row.waitFor();
  const { datasets } = await api("/api/v1/datasets");
  const listed = datasets.find((d) => d.name === "ui-golden");
  const cells = await row.locator("td").allInnerTexts();
  assert.deepEqual(cells.slice(0, 3), ["ui-golden", String(listed.latest_version), String(listed.items)]);
  await row.getByRole("link", { name: "ui-golden" }).click();

  // The newest version's items, as the API answers them; content is only ever text.
  await page.locator('h2[data-shown-version="2"]').waitFor();
  const newest = await api("/api/v1/datasets/ui-golden/items");
  const shownIds = () =>
    page.locator("table.items tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.item));
  assert.deepEqual(
    await shownIds(),
    newest.items.map((i) => i.id),
  );
  const input = page.locator('tr[data-item="b"] td[data-field="input"]');
  assert.equal((await input.innerText()).trim(), xss);
  assert.equal(await page.locator("table.items img").count(), 0, "item content became HTML");
  assert.equal(
    await page.locator("table.versions tbody tr").count(),
    (await api("/api/v1/datasets/ui-golden")).versions.length,
  );

  // An older version still holds what it held.
  await page.locator('table.versions tr[data-version="1"]').getByRole("button", { name: "1" }).click();
  await page.locator('h2[data-shown-version="1"]').waitFor();
  const first = page.locator('tr[data-item="a"] td[data-field="input"]');
  assert.match(await first.innerText(), /q: 1/);

  // Deleting an item (confirmed) makes the next version.
  await page.locator('table.versions tr[data-version="2"]').getByRole("button", { name: "2" }).click();
  await page.locator('h2[data-shown-version="2"]').waitFor();
  confirmNext = true;
  await page.locator('tr[data-item="b"]').getByRole("button", { name: "Delete" }).click();
  await page.locator('h2[data-shown-version="3"]').waitFor();
  const after = await api("/api/v1/datasets/ui-golden/items");
  assert.equal(after.version, 3);
  assert.deepEqual(
    await shownIds(),
    after.items.map((i) => i.id),
  );
  assert.equal(dialogs, 0, "an unexpected dialog opened");
  await page.screenshot({ path: `${shots}/dataset.png`, fullPage: true });
});

await step("experiment", async () => {
  // An experiment over the dataset above, one item run by a demo run.
  const send = async (path, body) => {
    const response = await fetch(base + path, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    assert(response.ok, `POST ${path}: ${response.status} ${text}`);
    return JSON.parse(text);
  };
  const experiment = await send("/api/v1/experiments", {
    name: "browser v2",
    dataset: "ui-golden",
    dataset_version: 2,
    system: { prompt_version: "ui@v2" },
    evaluators: [{ type: "exact_match", name: "exact" }],
  });
  const run = (await api("/api/v1/runs?limit=1")).runs[0];
  await send(`/api/v1/experiments/${experiment.id}/items`, {
    items: [{ item_id: "a", trace_id: run.trace_id }],
  });

  await page.goto(`${base}/datasets/ui-golden`);
  await page
    .locator(`tr[data-experiment="${experiment.id}"]`)
    .getByRole("link", { name: "browser v2" })
    .click();
  await page.locator('tr[data-figure="completion_rate"]').waitFor();
  const { summary } = await api(`/api/v1/experiments/${experiment.id}`);
  const figure = async (name) => (await page.locator(`tr[data-figure="${name}"] td`).innerText()).trim();
  const percent = (rate) => (rate === null ? "—" : `${(rate * 100).toFixed(1)}%`);
  assert.equal(await figure("completion_rate"), percent(summary.completion_rate));
  assert.equal(
    await figure("pass_rate.exact"),
    `${percent(summary.pass_rates.exact.rate)} (${summary.pass_rates.exact.passed} of ${summary.pass_rates.exact.evaluated})`,
  );
  assert.equal(
    await figure("items"),
    `${summary.done} of ${summary.items} (${summary.pending} pending, ${summary.not_run} not run)`,
  );
  const { items } = await api(`/api/v1/experiments/${experiment.id}/items`);
  const shown = await page
    .locator("table.experiment-items tbody tr")
    .evaluateAll((rows) => rows.map((r) => [r.dataset.item, r.dataset.status]));
  assert.deepEqual(
    shown,
    items.map((i) => [i.item_id, i.status]),
  );
  await page.screenshot({ path: `${shots}/experiment.png`, fullPage: true });
});

await step("cohorts", async () => {
  // Production against staging over the demo's runs: the page's figures are the API's.
  await page.goto(
    `${base}/cohorts?baseline=environment%3Dproduction&candidate=environment%3Dstaging&range=30d&candidate_shadow=include`,
  );
  assert.equal(await page.locator('select[name="candidate_shadow"]').inputValue(), "include");
  await page.locator('table.cohorts tr[data-metric="completion_rate"]').waitFor();
  const to = new Date();
  const response = await fetch(`${base}/api/v1/cohorts/compare`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({
      from: new Date(to.getTime() - 30 * 24 * 3_600_000).toISOString(),
      to: to.toISOString(),
      baseline: { filters: { environment: ["production"] } },
      candidate: { filters: { environment: ["staging"] }, shadow: "include" },
    }),
  });
  assert.equal(response.status, 200);
  const report = await response.json();
  assert(report.baseline_runs > 0 && report.candidate_runs > 0, JSON.stringify(report));
  assert.equal(
    await page.locator("[data-runs]").getAttribute("data-runs"),
    `${report.baseline_runs},${report.candidate_runs}`,
  );
  const shown = await page
    .locator("table.cohorts tbody tr")
    .evaluateAll((rows) => rows.map((r) => [r.dataset.metric, r.dataset.verdict]));
  assert.deepEqual(
    shown,
    report.metrics.map((m) => [m.metric, m.verdict]),
  );
  const completion = report.metrics.find((m) => m.metric === "completion_rate");
  const cells = await page.locator('table.cohorts tr[data-metric="completion_rate"] td').allInnerTexts();
  assert.equal(cells[1], `${(completion.baseline * 100).toFixed(2)}%`);
  await page.screenshot({ path: `${shots}/cohorts.png`, fullPage: true });
});

await step("kill-switch", async () => {
  // Disabled through the form: what an agent polling the API is told; enabled from its row.
  await page.goto(`${base}/kill-switch`);
  const form = page.getByRole("form", { name: "Set a kill switch" });
  await form.getByLabel("Agent", { exact: true }).fill("ui-bot");
  await form.getByLabel("Prompt version (optional)").fill("v8");
  await form.getByLabel("Reason (required to disable)").fill("<b>loops</b> on refunds");
  await form.getByRole("button", { name: "Set" }).click();
  const row = page.locator('table.kill-switches tr[data-agent="ui-bot"]');
  await page.locator('table.kill-switches tr[data-agent="ui-bot"][data-state="disabled"]').waitFor();
  const told = await api("/api/v1/kill-switch/ui-bot?prompt_version=v8");
  assert.equal(told.state, "disabled");
  assert.equal(told.reason, "<b>loops</b> on refunds");
  const cells = await row.locator("td").allInnerTexts();
  assert.deepEqual(cells.slice(0, 3), ["ui-bot", "prompt version v8", "disabled"]);
  assert.equal(cells[5], told.reason, "the reason is shown as text");
  await page.screenshot({ path: `${shots}/kill-switch.png`, fullPage: true });
  await row.getByRole("button", { name: "Enable" }).click();
  await page.locator('table.kill-switches tr[data-agent="ui-bot"][data-state="enabled"]').waitFor();
  assert.equal((await api("/api/v1/kill-switch/ui-bot?prompt_version=v8")).state, "enabled");
});

await step("audit-log", async () => {
  await page.goto(`${base}/audit-log`);
  await page.locator("table.audit tbody tr").first().waitFor();
  await page.getByRole("button", { name: "Verify the chain" }).click();
  await page.locator("[data-valid=true]").waitFor();
  const shown = await page
    .locator("table.audit tbody tr")
    .evaluateAll((rows) => rows.map((r) => r.dataset.seq));
  const { entries } = await api("/api/v1/audit/log?limit=100");
  // The page's own read is recorded before it is answered, so the API's page (read later) holds
  // the page's entries and more.
  assert.deepEqual(
    shown,
    entries.slice(0, shown.length).map((e) => String(e.seq)),
  );
  await page.screenshot({ path: `${shots}/audit-log.png`, fullPage: true });
});

await step("settings", async () => {
  await page.goto(`${base}/settings`);
  await page.locator("[data-health]").waitFor();
  assert.equal(await page.locator("[data-health]").getAttribute("data-health"), "ready");
  await page.locator("table.prices tbody tr").first().waitFor();
  const catalog = await api("/api/v1/prices");
  const rows = catalog.models.reduce((n, m) => n + Math.max(m.prices.length, 1), 0);
  assert.equal(await page.locator("table.prices tbody tr").count(), rows);
  const gpt = catalog.models.find((m) => m.name === "gpt-4o");
  const last = gpt.prices[gpt.prices.length - 1];
  const cells = await page
    .locator('table.prices tbody tr[data-model="gpt-4o"]')
    .last()
    .locator("td")
    .allInnerTexts();
  assert.equal(cells[3], String(last.input));
  assert.equal(cells[6], String(last.output));
  await page.screenshot({ path: `${shots}/settings.png`, fullPage: true });
});

await step("narrow-window", async () => {
  // Layouts hold on a narrow window: nothing wider than the window but what scrolls inside.
  const run = (await api("/api/v1/runs?limit=1")).runs[0];
  await page.setViewportSize({ width: 480, height: 800 });
  for (const path of [
    "/runs",
    `/runs/${run.trace_id}`,
    "/dashboard",
    "/alerts",
    "/datasets/ui-golden",
    "/settings",
  ]) {
    await page.goto(`${base}${path}`);
    await page.locator("main h1").first().waitFor();
    // Every part of the page has its answer (nothing is left loading to be cut off).
    await page.waitForFunction(() => !document.querySelector(".loading"));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, `${path} is ${overflow}px wider than the window`);
  }
  await page.goto(`${base}/runs`);
  await page.locator("table.runs tbody tr").first().waitFor();
  await page.screenshot({ path: `${shots}/runs-narrow.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
});

await step("sign-out", async () => {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("API key").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("vigil.apiKey")), null);
});

await browser.close();
console.log("browser tests passed");
