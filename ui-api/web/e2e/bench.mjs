// The web UI's own speed against a running `vigil serve` (BENCHMARKS.md, "Web UI"): for the run
// list and a run's detail, the API's time (the browser's Resource Timing of its request, from
// request start to response end) and the render time (from the answer parsed to the first frame
// drawn after the page rendered it: performance.measure "vigil:render:<page>"), separately;
// and how long a click on a span of a large run takes to show its panel.
//   VIGIL_URL, VIGIL_KEY       the server and a key with the read role
//   VIGIL_TRACE                the run whose detail is timed (default: the list's first)
//   VIGIL_REPETITIONS          page loads per figure (default 7); the median is reported
import { bigRun, launch } from "./lib.mjs";

const base = process.env.VIGIL_URL;
const key = process.env.VIGIL_KEY;
const repetitions = Number(process.env.VIGIL_REPETITIONS ?? 7);

const browser = await launch();
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

const trace =
  process.env.VIGIL_TRACE ?? (await bigRun(base, key, Number(process.env.VIGIL_BIG_RUN_SPANS ?? 2000)));
const report = {
  runs_page: await time("/runs", "runs", "table.runs tbody tr", "/api/v1/runs"),
  run_detail: await time(`/runs/${trace}`, "run", ".span-row", `/api/v1/runs/${trace}`),
};
report.run_detail.spans = Number(await page.locator(".waterfall").getAttribute("data-rows"));
// Responsiveness of a large run: a click on the last span until its panel shows it.
const clicks = [];
const rows = page.locator(".span-row");
const drawn = await rows.count();
for (let i = 0; i < repetitions; i += 1) {
  const row = rows.nth((1 + i * 3) % drawn);
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
