// Fragmentation heatmap: address buckets (y, low addresses at the top like the page map) over
// time (x, newest at the right), colour = free fraction (or holes) of each bucket. Columns arrive
// as binary frames (codec.js): a full history when the view opens, then one column per frame.

import { decodeHeatFrame } from "./codec.js";
import { HEAT_MARK, WIRE } from "./constants.js";
import { AXIS, FONT, TEXT, chartCanvas, formatSeconds, frameScheduler, sizedContext } from "./axes.js";
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

/** One pixel per (column, bucket) in an offscreen image (`scratch`, reused while the shape
 * stays), scaled up onto the plot without smoothing. */
function drawColumns(ctx, history, ramp, scratch, box) {
  const n = history.columns.length;
  const b = history.buckets;
  const cap = history.capacity;
  if (!scratch.img || scratch.img.width !== cap || scratch.img.height !== b) {
    scratch.canvas.width = cap;
    scratch.canvas.height = b;
    scratch.ctx = scratch.canvas.getContext("2d");
    scratch.img = scratch.ctx.createImageData(cap, b);
  }
  const px = new Uint32Array(scratch.img.data.buffer);  // only columns x0.. are drawn, and all of them are rewritten
  const x0 = cap - n;
  for (let c = 0; c < n; c++) {
    const col = history.columns[c];
    for (let k = 0; k < b; k++) px[k * cap + x0 + c] = ramp[col[k]];
  }
  scratch.ctx.putImageData(scratch.img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch.canvas, x0, 0, n, b, box.x + (x0 / cap) * box.w, box.y, (n / cap) * box.w, box.h);
}

/** Compaction (orange) and failure (red) marks above and below their columns. */
function drawMarks(ctx, history, box) {
  const n = history.columns.length;
  const x0 = history.capacity - n;
  const colW = box.w / history.capacity;
  for (let c = 0; c < n; c++) {
    const m = history.marks[c];
    if (!m) continue;
    const x = box.x + (x0 + c + 0.5) * colW;
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

/** The frame, page labels (y) and ages of a few columns (x). */
function drawAxes(ctx, history, numPages, box) {
  ctx.strokeStyle = AXIS;
  ctx.strokeRect(box.x + 0.5, box.y + 0.5, box.w, box.h);
  ctx.fillStyle = TEXT;
  ctx.font = FONT;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const f of [0, 0.5, 1]) ctx.fillText(`page ${Math.round(f * numPages)}`, box.x - 6, box.y + f * box.h);
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const n = history.columns.length;
  if (!n) return;
  const tNow = history.time[n - 1];
  const x0 = history.capacity - n;
  const nowX = box.x + box.w - 10;
  let lastX = -Infinity;
  for (const frac of [0, 0.25, 0.5, 0.75]) {
    const c = Math.round(x0 + frac * (history.capacity - 1 - x0));
    const idx = c - x0;
    if (idx < 0 || idx >= n - 1) continue;
    const x = box.x + ((c + 0.5) / history.capacity) * box.w;
    if (x - lastX < 60 || nowX - x < 60) continue;  // keep labels apart
    ctx.fillText(`−${formatSeconds(tNow - history.time[idx])}`, x, box.y + box.h + 8);
    lastX = x;
  }
  ctx.fillText("now", nowX, box.y + box.h + 8);
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

/** The heatmap's draw function: the whole chart from `history` and the model's size and metric. */
function createPainter(canvas, model, history) {
  const ramp = rampPalette();
  const bar = colorBarImage(ramp);
  const scratch = { canvas: document.createElement("canvas"), ctx: null, img: null };
  let ctx = null;
  return function draw() {
    const w = model.get("width_px");
    const h = model.get("height_px");
    ctx = sizedContext(canvas, ctx, w, h);
    ctx.clearRect(0, 0, w, h);
    const box = { x: PAD.left, y: PAD.top, w: w - PAD.left - PAD.right, h: h - PAD.top - PAD.bottom };
    ctx.fillStyle = "#f1f5f9";
    ctx.fillRect(box.x, box.y, box.w, box.h);
    if (history.columns.length && history.buckets) {
      drawColumns(ctx, history, ramp, scratch, box);
      drawMarks(ctx, history, box);
    }
    drawAxes(ctx, history, model.get("num_pages"), box);
    drawColorBar(ctx, bar, box, model.get("metric"));
    canvas.dataset.columns = String(history.columns.length);
    canvas.dataset.buckets = String(history.buckets);
  };
}

export const render = defineView("agl-heatmap", (view, { model, host = null }) => {
  view.root.style.font = FONT;
  const canvas = chartCanvas(view.root, TITLE);
  const history = new HeatHistory(model.get("history"));
  const draw = createPainter(canvas, model, history);
  const frames = frameScheduler(draw);
  const onFrame = (_content, [buf]) => {
    history.apply(decodeHeatFrame(buf));
    frames.schedule();
  };
  view.own(
    () => frames.cancel(),
    onFrames(model, "heat", onFrame, { host, ready: () => sendAction(model, "request_full") }),
    onChange(model, ["width_px", "height_px", "num_pages", "metric"], frames.schedule),
    onChange(model, ["history"], () => { history.capacity = model.get("history"); frames.schedule(); }),
  );
  draw();
});

export default { render };
