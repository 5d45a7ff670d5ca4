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

/** The x extent [t0, t1] of the time charts: `windowS` seconds ending at the newest time `tEnd`, or the
 * first `windowS` seconds of the run while it is younger (the heatmap and the trace use the same rule,
 * so their axes line up). */
export function timeWindow(tEnd, windowS) {
  const t1 = Math.max(Number.isFinite(tEnd) ? tEnd : 0, windowS);
  return [t1 - windowS, t1];
}

/** Tick labels of a time axis: seconds since the start of the run ("12 s", "1.5 s"). */
export function timeTicks(t0, t1, count = 5) {
  return niceTicks(t0, t1, count).map((t) => ({ t, label: `${+t.toPrecision(6)} s` }));
}

/** Draw the time axis below `box`: ticks of [t0, t1] and a caption at its right end. */
export function drawTimeAxis(ctx, box, t0, t1, caption = "s since start") {
  const X = (t) => box.x + ((t - t0) / (t1 - t0)) * box.w;
  ctx.fillStyle = TEXT;
  ctx.font = FONT;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const captionLeft = box.x + box.w - ctx.measureText(caption).width - 8;
  for (const { t, label } of timeTicks(t0, t1, Math.max(2, Math.floor(box.w / 70)))) {
    if (X(t) + ctx.measureText(label).width / 2 > captionLeft) continue;  // the caption keeps its room
    ctx.fillText(label, X(t), box.y + box.h + 8);
  }
  ctx.textAlign = "right";
  ctx.fillText(caption, box.x + box.w, box.y + box.h + 8);
}

/** Names of the compaction triggers (the pool's COMPACT_REASONS) as a person reads them. */
export const REASON_TEXT = {
  manual: "manual (Compact now)",
  free_ratio: "free-ratio trigger",
  consecutive_failures: "consecutive failures",
  periodic: "periodic check (eager)",
  alloc_failure: "allocation failure",
};

/** Call `onWidth(width)` when `elem`'s width changes (the notebook's column, the side bar);
 * returns the undo. Without ResizeObserver (tests) it does nothing. */
export function watchWidth(elem, onWidth) {
  if (typeof ResizeObserver === "undefined") return () => {};
  let last = -1;
  const observer = new ResizeObserver(() => {
    const w = Math.floor(elem.clientWidth);
    if (w > 0 && w !== last) {
      last = w;
      onWidth(w);
    }
  });
  observer.observe(elem);
  return () => observer.disconnect();
}

/** The CSS width a chart draws at: its box's, or the kernel's `width_px` before it is laid out. */
export function chartWidth(elem, model) {
  const w = Math.floor(elem.clientWidth);
  return w > 0 ? w : model.get("width_px");
}

/** A tooltip over a chart (`root` is its positioned container): show(text, x, y) / hide(). */
export function chartTip(root) {
  const tip = document.createElement("div");
  tip.className = "agl-charttip";
  tip.style.cssText = "position:absolute;pointer-events:none;display:none;z-index:10;white-space:pre;"
    + "background:rgba(15,23,42,0.92);color:#f8fafc;padding:4px 8px;border-radius:4px;"
    + "font:11px/1.35 var(--jp-code-font-family,monospace)";
  root.style.position = "relative";
  root.appendChild(tip);
  return {
    el: tip,
    show(text, x, y) {
      tip.textContent = text;
      tip.style.display = "block";
      const left = Math.min(x + 12, Math.max(0, root.clientWidth - tip.offsetWidth - 4));
      tip.style.left = `${left}px`;
      tip.style.top = `${y + 14}px`;
    },
    hide() {
      tip.style.display = "none";
    },
  };
}
