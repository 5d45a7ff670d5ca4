// Fragmentation heatmap: address buckets (y, low addresses at the top like the page map) over
// time (x: seconds since the start of the run, the latency trace's window), colour = free fraction
// (or holes) of each bucket. Columns arrive as binary frames (codec.js): a full history when the
// view opens, then one column per frame that changed something. Hover names a column's trigger.

import { decodeHeatFrame } from "./codec.js";
import { COMPACT_REASONS, HEAT_MARK, WIRE } from "./constants.js";
import {
  AXIS, FONT, REASON_TEXT, TEXT, chartCanvas, chartTip, chartWidth, drawTimeAxis, formatSeconds, frameScheduler,
  sizedContext, timeWindow, watchWidth,
} from "./axes.js";
import { onChange, onFrames, sendAction } from "./model.js";
import { rampPalette } from "./palette.js";
import { defineView } from "./view.js";

const PAD = { left: 74, right: 64, top: 16, bottom: 26 };
const METRIC_LABELS = { free: "free fraction", holes: "holes" };  // by the kernel's metric names
const TITLE = "Fragmentation heatmap · address buckets over time";

export class HeatHistory {
  constructor(capacity) {
    this.capacity = capacity;
    this.buckets = 0;
    this.time = [];
    this.marks = [];
    this.columns = [];
  }

  apply(frame) {
    if (frame.kind === WIRE.HEAT_FULL || frame.buckets !== this.buckets) {
      this.buckets = frame.buckets;
      this.time = [];
      this.marks = [];
      this.columns = [];
    }
    for (let c = 0; c < frame.nCols; c++) {
      this.time.push(frame.time[c]);
      this.marks.push(frame.marks[c]);
      this.columns.push(frame.values.subarray(c * frame.buckets, (c + 1) * frame.buckets));
    }
    const extra = this.time.length - this.capacity;
    if (extra > 0) {
      this.time.splice(0, extra);
      this.marks.splice(0, extra);
      this.columns.splice(0, extra);
    }
  }
}

/** The colour bar: the ramp as a 1 x 256 image (1 at the top), stretched onto the chart per frame. */
function colorBarImage(ramp) {
  const bar = document.createElement("canvas");
  bar.width = 1;
  bar.height = 256;
  const img = bar.getContext("2d").createImageData(1, 256);
  new Uint32Array(img.data.buffer).forEach((_, j, px) => { px[j] = ramp[255 - j]; });
  bar.getContext("2d").putImageData(img, 0, 0);
  return bar;
}

/** Where column c lies on the time axis: from its own time to the next column's (a column is
 * added when the pool changed, so its state holds until the next one); the newest one `typical`
 * wide, ending at its time (the right edge), so it is always seen. */
export function columnSpan(times, c, typical) {
  return c < times.length - 1 ? [times[c], times[c + 1]] : [times[c] - typical, times[c]];
}

/** The newest column's width in seconds: the mean spacing, at most a 50th of the window. */
function typicalSpan(history, windowS) {
  const n = history.time.length;
  const span = n > 1 ? (history.time[n - 1] - history.time[0]) / (n - 1) : 0;
  return Math.min(span > 0 ? span : windowS / history.capacity, windowS / 50);
}

/** One pixel per (column, bucket) in an offscreen image (`scratch`, reused while the shape
 * stays), each column stretched over its time span without smoothing (at least 2 px wide, so the
 * newest of several columns at one time, e.g. after "Compact now" while paused, is the one seen). */
function drawColumns(ctx, history, ramp, scratch, box, X, typical) {
  const n = history.columns.length;
  const b = history.buckets;
  const cap = history.capacity;
  if (!scratch.img || scratch.img.width !== cap || scratch.img.height !== b) {
    scratch.canvas.width = cap;
    scratch.canvas.height = b;
    scratch.ctx = scratch.canvas.getContext("2d");
    scratch.img = scratch.ctx.createImageData(cap, b);
  }
  const px = new Uint32Array(scratch.img.data.buffer);
  for (let c = 0; c < n; c++) {
    const col = history.columns[c];
    for (let k = 0; k < b; k++) px[k * cap + c] = ramp[col[k]];
  }
  scratch.ctx.putImageData(scratch.img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.save();
  ctx.beginPath();
  ctx.rect(box.x, box.y, box.w, box.h);
  ctx.clip();
  for (let c = 0; c < n; c++) {
    const [ta, tb] = columnSpan(history.time, c, typical);
    const x1 = X(tb);
    if (x1 < box.x) continue;
    const x0 = Math.min(X(ta), x1 - 2);
    ctx.drawImage(scratch.canvas, c, 0, 1, b, x0, box.y, x1 - x0, box.h);
  }
  ctx.restore();
}

/** Compaction (orange) and failure (red) marks above and below their columns. */
function drawMarks(ctx, history, box, X) {
  for (let c = 0; c < history.columns.length; c++) {
    const m = history.marks[c];
    if (!m) continue;
    const x = X(history.time[c]);
    if (x < box.x || x > box.x + box.w + 1) continue;
    if (m & HEAT_MARK.COMPACT) {
      ctx.fillStyle = "#f97316";
      ctx.beginPath();
      ctx.moveTo(x - 4, box.y - 9);
      ctx.lineTo(x + 4, box.y - 9);
      ctx.lineTo(x, box.y - 2);
      ctx.fill();
      ctx.strokeStyle = "rgba(249, 115, 22, 0.55)";
      ctx.beginPath();
      ctx.moveTo(x, box.y);
      ctx.lineTo(x, box.y + box.h);
      ctx.stroke();
    }
    if (m & HEAT_MARK.FAIL) {
      ctx.fillStyle = "#dc2626";
      ctx.fillRect(x - 1.5, box.y + box.h + 1, 3, 5);
    }
  }
}

/** The frame and page labels (y); the time axis is the trace's (`drawTimeAxis`). */
function drawAxes(ctx, numPages, box) {
  ctx.strokeStyle = AXIS;
  ctx.strokeRect(box.x + 0.5, box.y + 0.5, box.w, box.h);
  ctx.fillStyle = TEXT;
  ctx.font = FONT;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const f of [0, 0.5, 1]) ctx.fillText(`page ${Math.round(f * numPages)}`, box.x - 6, box.y + f * box.h);
}

function drawColorBar(ctx, bar, box, metric) {
  const cbx = box.x + box.w + 14;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(bar, cbx, box.y, 10, box.h);
  ctx.fillStyle = TEXT;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  ctx.fillText("1", cbx + 14, box.y + 4);
  ctx.fillText("0", cbx + 14, box.y + box.h - 4);
  ctx.save();
  ctx.translate(cbx + 30, box.y + box.h / 2);
  ctx.rotate(Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText(METRIC_LABELS[metric] ?? metric, 0, 0);
  ctx.restore();
}

/** What a column's mark byte says, in words ("" when nothing happened). */
export function markText(mark) {
  const lines = [];
  if (mark & HEAT_MARK.COMPACT) {
    const reason = COMPACT_REASONS[((mark >> HEAT_MARK.REASON_SHIFT) & 7) - 1];
    lines.push(`compaction${reason ? `: ${REASON_TEXT[reason] ?? reason}` : ""}`);
  }
  if (mark & HEAT_MARK.FAIL) lines.push("allocation failure(s)");
  return lines.join("\n");
}

/** The column shown at time `t` (see `columnSpan`), or -1 before the first one. */
export function columnAt(times, t, typical = 0) {
  const n = times.length;
  if (n && t >= times[n - 1] - typical) return t <= times[n - 1] + 1e-9 ? n - 1 : -1;
  let lo = 0;
  let hi = n;
  while (lo < hi) {  // the last column starting at or before t
    const mid = (lo + hi) >> 1;
    if (times[mid] <= t) lo = mid + 1; else hi = mid;
  }
  return lo - 1;
}

/** The heatmap's draw function: the whole chart from `history` and the model's size and metric;
 * it keeps the scales of the last draw in `state` for the hover. */
function createPainter(canvas, model, history, state) {
  const ramp = rampPalette();
  const bar = colorBarImage(ramp);
  const scratch = { canvas: document.createElement("canvas"), ctx: null, img: null };
  let ctx = null;
  return function draw() {
    const w = chartWidth(canvas.parentElement, model);
    const h = model.get("height_px");
    ctx = sizedContext(canvas, ctx, w, h);
    ctx.clearRect(0, 0, w, h);
    const box = { x: PAD.left, y: PAD.top, w: Math.max(40, w - PAD.left - PAD.right), h: h - PAD.top - PAD.bottom };
    const windowS = model.get("window_s");
    const n = history.columns.length;
    const [t0, t1] = timeWindow(n ? history.time[n - 1] : 0, windowS);
    const X = (t) => box.x + ((t - t0) / (t1 - t0)) * box.w;
    const typical = typicalSpan(history, windowS);
    Object.assign(state, { box, t0, t1, typical });
    ctx.fillStyle = "#f1f5f9";
    ctx.fillRect(box.x, box.y, box.w, box.h);
    if (n && history.buckets) {
      drawColumns(ctx, history, ramp, scratch, box, X, typical);
      drawMarks(ctx, history, box, X);
    }
    drawAxes(ctx, model.get("num_pages"), box);
    drawTimeAxis(ctx, box, t0, t1);
    drawColorBar(ctx, bar, box, model.get("metric"));
    canvas.dataset.columns = String(n);
    canvas.dataset.buckets = String(history.buckets);
    canvas.dataset.t0 = String(t0);
    canvas.dataset.t1 = String(t1);
  };
}

/** Hover: the time, the address range and value under the pointer, and what the column's mark says. */
function attachHover(view, canvas, model, history, state) {
  const tip = chartTip(view.root);
  const move = (ev) => {
    const { box, t0, t1 } = state;
    const rect = canvas.getBoundingClientRect();
    const x = ev.clientX - rect.left;
    const y = ev.clientY - rect.top;
    if (!box || x < box.x || x > box.x + box.w + 6 || y < box.y - 12 || y > box.y + box.h + 8) {
      tip.hide();
      return;
    }
    const c = columnAt(history.time, t0 + ((Math.min(x, box.x + box.w) - box.x) / box.w) * (t1 - t0),
      state.typical);
    if (c < 0 || !history.buckets) { tip.hide(); return; }
    const k = Math.min(history.buckets - 1, Math.max(0, Math.floor(((y - box.y) / box.h) * history.buckets)));
    const pages = model.get("num_pages");
    const first = Math.floor((k * pages) / history.buckets);
    const last = Math.floor(((k + 1) * pages) / history.buckets) - 1;
    const value = history.columns[c][k] / 255;
    const label = METRIC_LABELS[model.get("metric")] ?? model.get("metric");
    const lines = [`${formatSeconds(history.time[c])} since start`, `pages ${first}–${last}: ${label} ${value.toFixed(2)}`];
    const said = markText(history.marks[c]);
    if (said) lines.push(said);
    tip.show(lines.join("\n"), x, y);
  };
  view.listen(canvas, "mousemove", move);
  view.listen(canvas, "mouseleave", () => tip.hide());
}

const render = defineView("agl-heatmap", (view, { model, host = null }) => {
  view.root.style.font = FONT;
  const canvas = chartCanvas(view.root, TITLE);
  const history = new HeatHistory(model.get("history"));
  const state = {};
  const draw = createPainter(canvas, model, history, state);
  const frames = frameScheduler(draw);
  const onFrame = (_content, [buf]) => {
    history.apply(decodeHeatFrame(buf));
    frames.schedule();
  };
  attachHover(view, canvas, model, history, state);
  view.own(
    () => frames.cancel(),
    onFrames(model, "heat", onFrame, { host, ready: () => sendAction(model, "request_full") }),
    onChange(model, ["width_px", "height_px", "num_pages", "metric", "window_s"], frames.schedule),
    onChange(model, ["history"], () => { history.capacity = model.get("history"); frames.schedule(); }),
    watchWidth(view.root, frames.schedule),
  );
  draw();
});

export default { render };
