// Render timing for the UI benchmark (ui-api/web/e2e/bench.mjs): `vigil:data:<page>` marks when
// a page's API answer was parsed, and `vigil:render:<page>` measures from there to the first
// frame drawn after the page rendered it. Nothing is sent anywhere.
import { useEffect } from "preact/hooks";

export function markData(page: string) {
  performance.clearMarks(`vigil:data:${page}`);
  performance.mark(`vigil:data:${page}`);
}

/** Once `drawn` holds: measures to the frame after this commit is painted. */
export function useDrawnMeasure(page: string, drawn: boolean) {
  useEffect(() => {
    if (!drawn) return;
    requestAnimationFrame(() =>
      setTimeout(() => {
        if (performance.getEntriesByName(`vigil:data:${page}`).length === 0) return;
        performance.measure(`vigil:render:${page}`, `vigil:data:${page}`);
      }, 0),
    );
  }, [page, drawn]);
}
