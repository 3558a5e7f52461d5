import { defineConfig } from "vite";

// The bundle is embedded in the vigil binary (ui-api/build.rs) and served at `/`.
// No inline scripts or styles: the server's Content-Security-Policy forbids them.
export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    target: "es2022",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  test: { environment: "node" },
});
