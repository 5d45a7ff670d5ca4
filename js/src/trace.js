// Latency traces: step latency, allocation latency and compaction pauses over time on a log axis,
// with compactions (orange lines) and allocation failures (red ticks) marked. Redrawn from a
// binary window (codec.js) at most once per animation frame: a full frame is the window, an append
// frame adds what is new to it.

import { applyTraceFrame, decodeTraceFrame } from "./codec.js";
import {
  AXIS, FONT, GRID, TEXT, chartShell, decadeTicks, formatSeconds, frameScheduler, niceTicks, setupCanvas,
} from "./axes.js";
import { onChange, onFrames, sendAction } from "./model.js";

export const SERIES = [
  { key: "step", label: "step", color: "#2563eb", style: "line" },
  { key: "alloc", label: "alloc", color: "#059669", style: "line" },
  { key: "pause", label: "compaction pause", color: "#f97316", style: "stem" },
];
export const EVENT_COMPACT = 5;
export const EVENT_FAIL = 2;
const PAD = { left: 62, right: 14, top: 24, bottom: 26 };

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

export function render({ model, el: host, host: widgets = null }) {
  const { root, canvas } = chartShell(host, "agl-trace", "Latency · per step, per allocation, per compaction");
  let data = null;
  let ctx = null;

  const draw = () => {
    const w = model.get("width_px");
    const h = model.get("height_px");
    ctx = ctx && canvas.style.width === `${w}px` && canvas.style.height === `${h}px` ? ctx : setupCanvas(canvas, w, h);
    ctx.clearRect(0, 0, w, h);
    ctx.font = FONT;
    const pw = w - PAD.left - PAD.right;
    const ph = h - PAD.top - PAD.bottom;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(PAD.left, PAD.top, pw, ph);
    const n = data ? data.time.length : 0;
    const tEnd = n ? data.time[n - 1] : 1;
    // the window, or less while less history exists (so a young run fills the plot)
    const span = n ? Math.min(model.get("window_s"), Math.max(tEnd - data.time[0], 1e-3)) : model.get("window_s");
    const t0 = tEnd - span;
    let [lo, hi] = data ? positiveRange([data.step, data.alloc, data.pause]) : [1e-6, 1e-3];
    lo = 10 ** Math.floor(Math.log10(lo));
    hi = 10 ** Math.ceil(Math.log10(hi));
    if (hi <= lo) hi = lo * 10;
    const X = (t) => PAD.left + ((t - t0) / span) * pw;
    const Y = (v) => PAD.top + ph - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph;
    // grid + axes
    ctx.strokeStyle = GRID;
    ctx.fillStyle = TEXT;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of decadeTicks(lo, hi)) {
      const y = Math.round(Y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(PAD.left, y); ctx.lineTo(PAD.left + pw, y); ctx.stroke();
      ctx.fillText(formatSeconds(v), PAD.left - 6, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const ticks = niceTicks(-span, 0, 6);
    const tickStep = ticks.length > 1 ? ticks[1] - ticks[0] : span;
    for (const v of ticks) {
      const x = X(tEnd + v);
      const zero = Math.abs(v) < tickStep * 1e-6;
      ctx.fillText(zero ? "now" : formatSeconds(v), x, PAD.top + ph + 8);
    }
    ctx.strokeStyle = AXIS;
    ctx.strokeRect(PAD.left + 0.5, PAD.top + 0.5, pw, ph);
    if (n) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(PAD.left, PAD.top, pw, ph);
      ctx.clip();
      // events first, under the lines; each kind is one path (one stroke or fill per frame, not
      // one per event: the canvas work per frame is what the browser costs the kernel's cores)
      const compactions = new Path2D();
      const failures = new Path2D();
      for (let i = 0; i < data.eventTime.length; i++) {
        const x = X(data.eventTime[i]);
        if (x < PAD.left) continue;
        if (data.eventKind[i] === EVENT_COMPACT) {
          compactions.moveTo(x, PAD.top);
          compactions.lineTo(x, PAD.top + ph);
        } else if (data.eventKind[i] === EVENT_FAIL) {
          failures.moveTo(x, PAD.top + ph - 8);
          failures.lineTo(x - 4, PAD.top + ph);
          failures.lineTo(x + 4, PAD.top + ph);
          failures.closePath();
        }
      }
      ctx.strokeStyle = "rgba(249, 115, 22, 0.45)";
      ctx.setLineDash([4, 3]);
      ctx.stroke(compactions);
      ctx.setLineDash([]);
      ctx.fillStyle = "#dc2626";
      ctx.fill(failures);
      for (const s of SERIES) {
        const ys = data[s.key];
        ctx.strokeStyle = s.color;
        ctx.fillStyle = s.color;
        ctx.lineWidth = 1.5;
        if (s.style === "line") {
          // a line between samples close in time; a gap (no allocations for a while) breaks it,
          // and sparse samples also get a dot so a lone one stays visible
          const maxGap = pw / 40;
          let count = 0;
          for (let i = 0; i < n; i++) if (ys[i] > 0) count++;
          ctx.beginPath();
          let prevX = -Infinity;
          for (let i = 0; i < n; i++) {
            const v = ys[i];
            if (!(v > 0)) continue;  // NaN marks "no sample" for this series
            const x = X(data.time[i]);
            const y = Y(v);
            if (x - prevX <= maxGap) ctx.lineTo(x, y); else ctx.moveTo(x, y);
            prevX = x;
          }
          ctx.stroke();
          if (count < 400) ctx.fill(dots(n, ys, X, Y, data.time, 1.8));
        } else {
          ctx.beginPath();
          for (let i = 0; i < n; i++) {
            const v = ys[i];
            if (!(v > 0)) continue;
            const x = X(data.time[i]);
            ctx.moveTo(x, PAD.top + ph);
            ctx.lineTo(x, Y(v));
          }
          ctx.stroke();
          ctx.fill(dots(n, ys, X, Y, data.time, 3));
        }
      }
      ctx.restore();
    }
    // legend
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    let lx = PAD.left + 4;
    const items = [...SERIES.map((s) => [s.label, s.color]), ["compaction", "#fdba74"], ["alloc failure", "#dc2626"]];
    for (const [label, color] of items) {
      if (lx + ctx.measureText(label).width + 16 > w - PAD.right) break;  // never draw past the edge
      ctx.fillStyle = color;
      ctx.fillRect(lx, 8, 12, 4);
      ctx.fillStyle = TEXT;
      ctx.fillText(label, lx + 16, 10);
      lx += ctx.measureText(label).width + 26;
    }
    canvas.dataset.points = String(n);
    canvas.dataset.events = String(data ? data.eventTime.length : 0);
    canvas.dataset.lastTime = n ? String(data.time[n - 1]) : "";
  };

  const frames = frameScheduler(draw);
  const schedule = frames.schedule;
  const onFrame = (_c, [buf]) => {
    const frame = decodeTraceFrame(buf);
    if (frame.kind !== 0 && !data) return;  // appends before this view's first full frame: wait for it
    try {
      data = applyTraceFrame(data, frame);
    } catch (err) {
      data = null;
      sendAction(model, "request_full");
      return;
    }
    schedule();
  };
  const unsubs = [
    onFrames(model, "trace", onFrame, { host: widgets, ready: () => sendAction(model, "request_full") }),
    onChange(model, ["width_px", "height_px", "window_s"], schedule),
  ];
  draw();
  return () => {
    for (const off of unsubs) off();
    frames.cancel();
    root.remove();
  };
}

export default { render };
