// Bundle each view (an ES module anywidget loads) into ../autoglm_lab/widget/static/.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
export const ENTRIES = ["pagemap", "heatmap", "trace"];

await build({
  entryPoints: ENTRIES.map((e) => `${here}src/${e}.js`),
  outdir: `${here}../autoglm_lab/widget/static`,
  bundle: true,
  format: "esm",
  minify: process.argv.includes("--minify"),
  target: ["es2020"],
  logLevel: "warning",
});
