// Bundle each view (an ES module anywidget loads) into ../autoglm_lab/widget/static/. The views are
// the Python registry's (autoglm_lab/widget/_registry.py), read from the generated src/constants.js.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { VIEW_MODULES } from "./src/constants.js";

const here = fileURLToPath(new URL(".", import.meta.url));
export const ENTRIES = [...VIEW_MODULES];

await build({
  entryPoints: ENTRIES.map((e) => `${here}src/${e}.js`),
  outdir: `${here}../autoglm_lab/widget/static`,
  bundle: true,
  format: "esm",
  minify: process.argv.includes("--minify"),
  target: ["es2020"],
  logLevel: "warning",
});
