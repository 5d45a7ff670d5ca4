// Small drawing helpers shared by the canvas charts (HiDPI setup, ticks, labels).

export const FONT = "11px system-ui, -apple-system, 'Segoe UI', sans-serif";
export const AXIS = "#94a3b8";
export const GRID = "#e2e8f0";
export const TEXT = "#475569";

/** A chart's DOM in a view's `root`: a title line over a canvas; returns the canvas. */
export function chartCanvas(root, titleText) {
  const title = document.createElement("div");
  title.style.cssText = "font-weight:600;color:var(--jp-ui-font-color1,#1f2937);margin:2px 0 2px 4px";
  title.textContent = titleText;
  root.appendChild(title);
  const canvas = document.createElement("canvas");
  root.appendChild(canvas);
  return canvas;
}

/** The 2D context of `canvas` sized for the model's width_px x height_px: `prev` while the size is
 * unchanged (no reallocation per frame), else a fresh one (setupCanvas). */
export function sizedContext(canvas, prev, w, h) {
  return prev && canvas.style.width === `${w}px` && canvas.style.height === `${h}px` ? prev : setupCanvas(canvas, w, h);
}

/** Run `draw` at most once per animation frame however often `schedule()` is called;
 * `cancel()` drops a pending draw (a view's cleanup calls it). */
export function frameScheduler(draw, raf = globalThis.requestAnimationFrame, caf = globalThis.cancelAnimationFrame) {
  let pending = null;
  return {
    schedule() {
      if (pending === null) pending = raf(() => { pending = null; draw(); });
    },
    cancel() {
      if (pending !== null) caf(pending);
      pending = null;
    },
  };
}

/** Size a canvas for CSS size (w, h) at the device pixel ratio; returns a scaled 2D context. */
export function setupCanvas(canvas, w, h, ratio = globalThis.devicePixelRatio || 1) {
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

/** "1.5 ms", "20 µs", "1.2 s" for a duration in seconds. */
export function formatSeconds(s) {
  const a = Math.abs(s);
  if (a === 0) return "0";
  if (a < 1e-3) return `${+(s * 1e6).toPrecision(3)} µs`;
  if (a < 1) return `${+(s * 1e3).toPrecision(3)} ms`;
  return `${+s.toPrecision(3)} s`;
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

/** Powers of ten covering [lo, hi] (both > 0), for log axes. */
export function decadeTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
  return out;
}
