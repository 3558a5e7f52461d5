// A time-series chart (uPlot, canvas): hover shows each series' value at the cursor (in the
// legend); clicking a legend entry hides or shows its series.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Series } from "./lib/series";

const PALETTE = ["#2f5bd3", "#d9822b", "#1f7a3f", "#b42318", "#7a4fd3", "#0f8b8d", "#9a6700", "#c2185b"];

export function Chart({
  title,
  x,
  series,
  format,
}: {
  title: string;
  x: number[];
  series: Series[];
  format: (value: number) => string;
}) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const width = Math.max(element.clientWidth, 280);
    const plot = new uPlot(
      {
        title,
        width,
        height: 220,
        scales: { x: { time: true } },
        axes: [{}, { values: (_u, ticks) => ticks.map(format), size: 70 }],
        series: [
          {
            label: "time (UTC)",
            value: (_u, v) =>
              v === null ? "—" : new Date(v * 1000).toISOString().slice(0, 16).replace("T", " "),
          },
          ...series.map((s, i) => ({
            label: s.label || title,
            stroke: PALETTE[i % PALETTE.length],
            width: 1.5,
            spanGaps: false,
            points: { show: true, size: 4 },
            value: (_u: uPlot, v: number | null) => (v === null ? "—" : format(v)),
          })),
        ],
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
      },
      [x, ...series.map((s) => s.values)] as uPlot.AlignedData,
      element,
    );
    const resize = new ResizeObserver(() =>
      plot.setSize({ width: Math.max(element.clientWidth, 280), height: 220 }),
    );
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [title, x, series, format]);
  return <div class="chart" ref={host} data-title={title} />;
}
