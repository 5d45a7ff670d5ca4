// Latency traces: step latency, allocation latency and compaction pauses over time on a log axis,
// with compactions (orange lines) and allocation failures (red ticks) marked. Redrawn from a
// binary window (codec.js) at most once per animation frame: a full frame is the window, an append
// frame adds what is new to it.

import { applyTraceFrame, decodeTraceFrame } from "./codec.js";
import { EVENT_KIND, WIRE } from "./constants.js";
import {
  AXIS, FONT, GRID, TEXT, chartCanvas, decadeTicks, formatSeconds, frameScheduler, niceTicks, sizedContext,
} from "./axes.js";
import { onChange, onFrames, sendAction } from "./model.js";
import { defineView } from "./view.js";

export const SERIES = [
  { key: "step", label: "step", color: "#2563eb", style: "line" },
  { key: "alloc", label: "alloc", color: "#059669", style: "line" },
  { key: "pause", label: "compaction pause", color: "#f97316", style: "stem" },
];
const PAD = { left: 62, right: 14, top: 24, bottom: 26 };
const TITLE = "Latency · per step, per allocation, per compaction";

/** Min and max of the finite positive values of several Float32Arrays (for the log axis). */
export function positiveRange(arrays) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (v > 0 && v < Infinity) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  return hi >= lo ? [lo, hi] : [1e-6, 1e-3];
}

/** One path of radius-`r` dots at the samples of `ys` that exist (> 0). */
function dots(n, ys, X, Y, time, r) {
  const path = new Path2D();
  for (let i = 0; i < n; i++) {
    if (!(ys[i] > 0)) continue;
    const x = X(time[i]);
    const y = Y(ys[i]);
    path.moveTo(x + r, y);
    path.arc(x, y, r, 0, 2 * Math.PI);
  }
  return path;
}

/** The plot's scales: time (x, the window or less while less history exists, so a young run
 * fills the plot) and latency (y, whole decades on a log axis). */
function scales(data, windowS, box) {
  const n = data ? data.time.length : 0;
  const tEnd = n ? data.time[n - 1] : 1;
  const span = n ? Math.min(windowS, Math.max(tEnd - data.time[0], 1e-3)) : windowS;
  const t0 = tEnd - span;
  let [lo, hi] = data ? positiveRange([data.step, data.alloc, data.pause]) : [1e-6, 1e-3];
  lo = 10 ** Math.floor(Math.log10(lo));
  hi = 10 ** Math.ceil(Math.log10(hi));
  if (hi <= lo) hi = lo * 10;
  return {
    n, tEnd, span, lo, hi,
    X: (t) => box.x + ((t - t0) / span) * box.w,
    Y: (v) => box.y + box.h - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * box.h,
  };
}

function drawGrid(ctx, s, box) {
  ctx.strokeStyle = GRID;
  ctx.fillStyle = TEXT;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of decadeTicks(s.lo, s.hi)) {
    const y = Math.round(s.Y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(box.x, y); ctx.lineTo(box.x + box.w, y); ctx.stroke();
    ctx.fillText(formatSeconds(v), box.x - 6, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const ticks = niceTicks(-s.span, 0, 6);
  const tickStep = ticks.length > 1 ? ticks[1] - ticks[0] : s.span;
  for (const v of ticks) {
    const zero = Math.abs(v) < tickStep * 1e-6;
    ctx.fillText(zero ? "now" : formatSeconds(v), s.X(s.tEnd + v), box.y + box.h + 8);
  }
  ctx.strokeStyle = AXIS;
  ctx.strokeRect(box.x + 0.5, box.y + 0.5, box.w, box.h);
}

/** Events under the lines; each kind is one path (one stroke or fill per frame, not one per
 * event: the canvas work per frame is what the browser costs the kernel's cores). */
function drawEvents(ctx, data, s, box) {
  const compactions = new Path2D();
  const failures = new Path2D();
  for (let i = 0; i < data.eventTime.length; i++) {
    const x = s.X(data.eventTime[i]);
    if (x < box.x) continue;
    if (data.eventKind[i] === EVENT_KIND.COMPACT) {
      compactions.moveTo(x, box.y);
      compactions.lineTo(x, box.y + box.h);
    } else if (data.eventKind[i] === EVENT_KIND.FAIL) {
      failures.moveTo(x, box.y + box.h - 8);
      failures.lineTo(x - 4, box.y + box.h);
      failures.lineTo(x + 4, box.y + box.h);
      failures.closePath();
    }
  }
  ctx.strokeStyle = "rgba(249, 115, 22, 0.45)";
  ctx.setLineDash([4, 3]);
  ctx.stroke(compactions);
  ctx.setLineDash([]);
  ctx.fillStyle = "#dc2626";
  ctx.fill(failures);
}

function drawSeries(ctx, data, s, box) {
  const { n, X, Y } = s;
  for (const series of SERIES) {
    const ys = data[series.key];
    ctx.strokeStyle = series.color;
    ctx.fillStyle = series.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    if (series.style === "line") {
      // a line between samples close in time; a gap (no allocations for a while) breaks it,
      // and sparse samples also get a dot so a lone one stays visible
      const maxGap = box.w / 40;
      let count = 0;
      let prevX = -Infinity;
      for (let i = 0; i < n; i++) {
        const v = ys[i];
        if (!(v > 0)) continue;  // NaN marks "no sample" for this series
        const x = X(data.time[i]);
        const y = Y(v);
        if (x - prevX <= maxGap) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        prevX = x;
        count++;
      }
      ctx.stroke();
      if (count < 400) ctx.fill(dots(n, ys, X, Y, data.time, 1.8));
    } else {
      for (let i = 0; i < n; i++) {
        const v = ys[i];
        if (!(v > 0)) continue;
        const x = X(data.time[i]);
        ctx.moveTo(x, box.y + box.h);
        ctx.lineTo(x, Y(v));
      }
      ctx.stroke();
      ctx.fill(dots(n, ys, X, Y, data.time, 3));
    }
  }
}

function drawLegend(ctx, box, right) {
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  let lx = box.x + 4;
  const items = [...SERIES.map((s) => [s.label, s.color]), ["compaction", "#fdba74"], ["alloc failure", "#dc2626"]];
  for (const [label, color] of items) {
    if (lx + ctx.measureText(label).width + 16 > right) break;  // never draw past the edge
    ctx.fillStyle = color;
    ctx.fillRect(lx, 8, 12, 4);
    ctx.fillStyle = TEXT;
    ctx.fillText(label, lx + 16, 10);
    lx += ctx.measureText(label).width + 26;
  }
}

/** The trace's draw function: the whole chart from the window `get()` returns. */
function createPainter(canvas, model, get) {
  let ctx = null;
  return function draw() {
    const data = get();
    const w = model.get("width_px");
    const h = model.get("height_px");
    ctx = sizedContext(canvas, ctx, w, h);
    ctx.clearRect(0, 0, w, h);
    ctx.font = FONT;
    const box = { x: PAD.left, y: PAD.top, w: w - PAD.left - PAD.right, h: h - PAD.top - PAD.bottom };
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(box.x, box.y, box.w, box.h);
    const s = scales(data, model.get("window_s"), box);
    drawGrid(ctx, s, box);
    if (s.n) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(box.x, box.y, box.w, box.h);
      ctx.clip();
      drawEvents(ctx, data, s, box);
      drawSeries(ctx, data, s, box);
      ctx.restore();
    }
    drawLegend(ctx, box, w - PAD.right);
    canvas.dataset.points = String(s.n);
    canvas.dataset.events = String(data ? data.eventTime.length : 0);
    canvas.dataset.lastTime = s.n ? String(data.time[s.n - 1]) : "";
  };
}

export const render = defineView("agl-trace", (view, { model, host = null }) => {
  const canvas = chartCanvas(view.root, TITLE);
  let data = null;  // the window on screen
  const draw = createPainter(canvas, model, () => data);
  const frames = frameScheduler(draw);
  const onFrame = (_c, [buf]) => {
    const frame = decodeTraceFrame(buf);
    if (frame.kind !== WIRE.TRACE_FULL && !data) return;  // appends before this view's first full frame: wait for it
    try {
      data = applyTraceFrame(data, frame);
    } catch (err) {
      data = null;
      sendAction(model, "request_full");
      return;
    }
    frames.schedule();
  };
  view.own(
    () => frames.cancel(),
    onFrames(model, "trace", onFrame, { host, ready: () => sendAction(model, "request_full") }),
    onChange(model, ["width_px", "height_px", "window_s"], frames.schedule),
  );
  draw();
});

export default { render };
