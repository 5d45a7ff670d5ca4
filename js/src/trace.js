// Latency traces: step latency, allocation latency and compaction pauses over the heatmap's time
// window (seconds since the start of the run) on a log axis whose decades only widen (a stable
// scale), with compactions (orange lines) and allocation failures (red ticks) marked; hover names
// a marker's trigger. Where points crowd (more than one per pixel column) a series is drawn as its
// median per column with a min-max band, not as an unreadable solid fill. Redrawn from a binary
// window (codec.js) at most once per animation frame: a full frame is the window, an append frame
// adds what is new to it.

import { applyTraceFrame, decodeTraceFrame } from "./codec.js";
import { COMPACT_REASONS, EVENT_CODE, EVENT_KIND, WIRE } from "./constants.js";
import {
  AXIS, FONT, GRID, REASON_TEXT, TEXT, chartCanvas, chartTip, chartWidth, decadeTicks, drawTimeAxis, formatSeconds,
  frameScheduler, sizedContext, timeWindow, watchWidth,
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
const BIN_PX = 2;           // pixel columns a band bin covers
export const Y_START = [1e-6, 1e-1];  // the log axis's first decades; it only ever widens

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

/** The y range [lo, hi] after `data`: `prev` widened to whole decades covering the data (never
 * narrowed: a scale that rescales every frame cannot be read). */
export function widenDecades(prev, data) {
  if (!data || !data.time.length) return prev;
  const [lo, hi] = positiveRange([data.step, data.alloc, data.pause]);
  return [Math.min(prev[0], 10 ** Math.floor(Math.log10(lo))), Math.max(prev[1], 10 ** Math.ceil(Math.log10(hi)))];
}

/** One path of radius-`r` dots at the samples of `ys` that exist (> 0). */
function dots(from, to, ys, X, Y, time, r) {
  const path = new Path2D();
  for (let i = from; i < to; i++) {
    if (!(ys[i] > 0)) continue;
    const x = X(time[i]);
    const y = Y(ys[i]);
    path.moveTo(x + r, y);
    path.arc(x, y, r, 0, 2 * Math.PI);
  }
  return path;
}

/** Index of the first time >= t (binary search). */
function firstAtOrAfter(times, t) {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] < t) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** The plot's scales: the shared time window (x) and the stable decades `yRange` (y). */
function scales(data, windowS, yRange, box) {
  const n = data ? data.time.length : 0;
  const [t0, t1] = timeWindow(n ? data.time[n - 1] : 0, windowS);
  const [lo, hi] = yRange;
  const from = n ? firstAtOrAfter(data.time, t0) : 0;
  return {
    n, from, t0, t1, lo, hi,
    X: (t) => box.x + ((t - t0) / (t1 - t0)) * box.w,
    Y: (v) => box.y + box.h - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * box.h,
  };
}

function drawGrid(ctx, s, box) {
  ctx.strokeStyle = GRID;
  ctx.fillStyle = TEXT;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const step = Math.max(1, Math.ceil(Math.log10(s.hi / s.lo) / Math.max(1, Math.floor(box.h / 22))));
  decadeTicks(s.lo, s.hi).forEach((v, i) => {
    const y = Math.round(s.Y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(box.x, y); ctx.lineTo(box.x + box.w, y); ctx.stroke();
    if (i % step === 0) ctx.fillText(formatSeconds(v), box.x - 6, y);
  });
  ctx.strokeStyle = AXIS;
  ctx.strokeRect(box.x + 0.5, box.y + 0.5, box.w, box.h);
}

/** An event byte's kind and its compaction trigger (COMPACT_REASONS name, or null). */
export function eventCode(byte) {
  return { kind: byte & EVENT_CODE.KIND_MASK, reason: COMPACT_REASONS[(byte >> EVENT_CODE.REASON_SHIFT) - 1] ?? null };
}

/** An event in words: "compaction: free-ratio trigger", "allocation failure". */
export function eventText(byte) {
  const { kind, reason } = eventCode(byte);
  if (kind === EVENT_KIND.FAIL) return "allocation failure";
  if (kind === EVENT_KIND.COMPACT) return `compaction${reason ? `: ${REASON_TEXT[reason] ?? reason}` : ""}`;
  return "event";
}

/** Events under the lines; each kind is one path (one stroke or fill per frame, not one per
 * event: the canvas work per frame is what the browser costs the kernel's cores). */
function drawEvents(ctx, data, s, box) {
  const compactions = new Path2D();
  const failures = new Path2D();
  for (let i = 0; i < data.eventTime.length; i++) {
    const x = s.X(data.eventTime[i]);
    if (x < box.x) continue;
    const { kind } = eventCode(data.eventKind[i]);
    if (kind === EVENT_KIND.COMPACT) {
      compactions.moveTo(x, box.y);
      compactions.lineTo(x, box.y + box.h);
    } else if (kind === EVENT_KIND.FAIL) {
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

/** Per pixel bin of `BIN_PX` columns: [bin, min, median, max] of the samples of `ys` (> 0) in rows
 * [from, to), bins in time order. */
export function binSamples(ys, time, from, to, X, x0) {
  const bins = [];
  let cur = -1;
  let vals = [];
  const flush = () => {
    if (!vals.length) return;
    vals.sort((a, b) => a - b);
    bins.push([cur, vals[0], vals[vals.length >> 1], vals[vals.length - 1]]);
    vals = [];
  };
  for (let i = from; i < to; i++) {
    const v = ys[i];
    if (!(v > 0)) continue;
    const b = Math.floor((X(time[i]) - x0) / BIN_PX);
    if (b !== cur) { flush(); cur = b; }
    vals.push(v);
  }
  flush();
  return bins;
}

/** A line series: where bins hold several samples, a min-max band and the median line; where
 * samples are sparse, the samples joined (a gap breaks the line) with a dot each. */
function drawLine(ctx, series, data, s, box) {
  const ys = data[series.key];
  const bins = binSamples(ys, data.time, s.from, s.n, s.X, box.x);
  if (!bins.length) return;
  const crowded = bins.length && (s.n - s.from) > bins.length * 1.5;
  const maxGap = Math.max(3, box.w / 40 / BIN_PX);
  ctx.strokeStyle = series.color;
  ctx.fillStyle = series.color;
  ctx.lineWidth = 1.5;
  if (crowded) {
    const band = new Path2D();
    for (const [b, lo, , hi] of bins) {
      const yHi = s.Y(hi);
      band.rect(box.x + b * BIN_PX, yHi, BIN_PX, Math.max(1, s.Y(lo) - yHi));
    }
    ctx.globalAlpha = 0.22;
    ctx.fill(band);
    ctx.globalAlpha = 1;
  }
  ctx.beginPath();
  let prev = -Infinity;
  for (const [b, , med] of bins) {
    const x = box.x + (b + 0.5) * BIN_PX;
    if (b - prev <= maxGap) ctx.lineTo(x, s.Y(med)); else ctx.moveTo(x, s.Y(med));
    prev = b;
  }
  ctx.stroke();
  if (!crowded && bins.length < 400) ctx.fill(dots(s.from, s.n, ys, s.X, s.Y, data.time, 1.8));
}

function drawSeries(ctx, data, s, box) {
  for (const series of SERIES) {
    if (series.style === "line") {
      drawLine(ctx, series, data, s, box);
      continue;
    }
    const ys = data[series.key];
    ctx.strokeStyle = series.color;
    ctx.fillStyle = series.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (let i = s.from; i < s.n; i++) {
      const v = ys[i];
      if (!(v > 0)) continue;
      const x = s.X(data.time[i]);
      ctx.moveTo(x, box.y + box.h);
      ctx.lineTo(x, s.Y(v));
    }
    ctx.stroke();
    ctx.fill(dots(s.from, s.n, ys, s.X, s.Y, data.time, 3));
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

/** The trace's draw function: the whole chart from the window `get()` returns; the scales of the
 * last draw go to `state` (for the hover), the y range lives there between draws. */
function createPainter(canvas, model, get, state) {
  let ctx = null;
  return function draw() {
    const data = get();
    const w = chartWidth(canvas.parentElement, model);
    const h = model.get("height_px");
    ctx = sizedContext(canvas, ctx, w, h);
    ctx.clearRect(0, 0, w, h);
    ctx.font = FONT;
    const box = { x: PAD.left, y: PAD.top, w: Math.max(40, w - PAD.left - PAD.right), h: h - PAD.top - PAD.bottom };
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(box.x, box.y, box.w, box.h);
    state.yRange = widenDecades(state.yRange || Y_START, data);
    const s = scales(data, model.get("window_s"), state.yRange, box);
    Object.assign(state, { s, box, data });
    drawGrid(ctx, s, box);
    drawTimeAxis(ctx, box, s.t0, s.t1);
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
    canvas.dataset.t0 = String(s.t0);
    canvas.dataset.t1 = String(s.t1);
    canvas.dataset.yRange = state.yRange.join(",");
  };
}

/** Hover: the marker nearest the pointer (within 6 px) in words, with its time. */
function attachHover(view, canvas, state) {
  const tip = chartTip(view.root);
  const move = (ev) => {
    const { s, box, data } = state;
    const rect = canvas.getBoundingClientRect();
    const x = ev.clientX - rect.left;
    const y = ev.clientY - rect.top;
    if (!data || !s || x < box.x || x > box.x + box.w || y < box.y || y > box.y + box.h) { tip.hide(); return; }
    let best = -1;
    let dist = 6;
    for (let i = 0; i < data.eventTime.length; i++) {
      const d = Math.abs(s.X(data.eventTime[i]) - x);
      if (d <= dist) { dist = d; best = i; }
    }
    if (best < 0) { tip.hide(); return; }
    tip.show(`${eventText(data.eventKind[best])}\n${formatSeconds(data.eventTime[best])} since start`, x, y);
  };
  view.listen(canvas, "mousemove", move);
  view.listen(canvas, "mouseleave", () => tip.hide());
}

const render = defineView("agl-trace", (view, { model, host = null }) => {
  const canvas = chartCanvas(view.root, TITLE);
  let data = null;  // the window on screen
  const state = { yRange: Y_START };
  const draw = createPainter(canvas, model, () => data, state);
  const frames = frameScheduler(draw);
  const onFrame = (_c, [buf]) => {
    const frame = decodeTraceFrame(buf);
    if (frame.kind !== WIRE.TRACE_FULL && !data) return;  // appends before this view's first full frame: wait for it
    try {
      if (frame.kind === WIRE.TRACE_FULL && !frame.time.length) state.yRange = Y_START;  // a new run
      data = applyTraceFrame(data, frame);
    } catch (err) {
      data = null;
      sendAction(model, "request_full");
      return;
    }
    frames.schedule();
  };
  attachHover(view, canvas, state);
  view.own(
    () => frames.cancel(),
    onFrames(model, "trace", onFrame, { host, ready: () => sendAction(model, "request_full") }),
    onChange(model, ["width_px", "height_px", "window_s"], frames.schedule),
    watchWidth(view.root, frames.schedule),
  );
  draw();
});

export default { render };
