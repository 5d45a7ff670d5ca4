// Fragmentation heatmap: address buckets (y, low addresses at the top like the page map) over
// time (x, newest at the right), colour = free fraction (or holes) of each bucket. Columns arrive
// as binary frames (codec.js): a full history when the view opens, then one column per frame.

import { decodeHeatFrame } from "./codec.js";
import { AXIS, FONT, TEXT, chartShell, formatSeconds, frameScheduler, setupCanvas } from "./axes.js";
import { onChange, onFrames, sendAction } from "./model.js";
import { rampPalette } from "./palette.js";

const MARK_COMPACT = 1;
const MARK_FAIL = 2;
const PAD = { left: 74, right: 64, top: 16, bottom: 26 };

export class HeatHistory {
  constructor(capacity) {
    this.capacity = capacity;
    this.buckets = 0;
    this.time = [];
    this.marks = [];
    this.columns = [];
  }

  apply(frame) {
    if (frame.kind === 0 || frame.buckets !== this.buckets) {
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

export function render({ model, el: host, host: widgets = null }) {
  const { root, canvas } = chartShell(host, "agl-heatmap", "Fragmentation heatmap · address buckets over time", FONT);
  const ramp = rampPalette();
  // the colour bar: the ramp as a 1 x 256 image (1 at the top), stretched onto the chart per frame
  const bar = document.createElement("canvas");
  bar.width = 1;
  bar.height = 256;
  const barImg = bar.getContext("2d").createImageData(1, 256);
  new Uint32Array(barImg.data.buffer).forEach((_, j, px) => { px[j] = ramp[255 - j]; });
  bar.getContext("2d").putImageData(barImg, 0, 0);
  const history = new HeatHistory(model.get("history"));
  const image = document.createElement("canvas");
  let ictx = null;
  let img = null;  // reused while the history's shape stays the same
  let ctx = null;

  const draw = () => {
    const w = model.get("width_px");
    const h = model.get("height_px");
    ctx = ctx && canvas.style.width === `${w}px` && canvas.style.height === `${h}px` ? ctx : setupCanvas(canvas, w, h);
    ctx.clearRect(0, 0, w, h);
    const pw = w - PAD.left - PAD.right;
    const ph = h - PAD.top - PAD.bottom;
    const n = history.columns.length;
    const b = history.buckets;
    ctx.fillStyle = "#f1f5f9";
    ctx.fillRect(PAD.left, PAD.top, pw, ph);
    if (n && b) {
      // one pixel per (column, bucket) in an offscreen image, scaled up without smoothing
      if (!img || img.width !== history.capacity || img.height !== b) {
        image.width = history.capacity;
        image.height = b;
        ictx = image.getContext("2d");
        img = ictx.createImageData(history.capacity, b);
      }
      const px = new Uint32Array(img.data.buffer);  // only columns x0.. are drawn, and all of them are rewritten
      const x0 = history.capacity - n;
      for (let c = 0; c < n; c++) {
        const col = history.columns[c];
        for (let k = 0; k < b; k++) px[k * history.capacity + x0 + c] = ramp[col[k]];
      }
      ictx.putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(image, x0, 0, n, b, PAD.left + (x0 / history.capacity) * pw, PAD.top, (n / history.capacity) * pw, ph);
      // compaction (orange) and failure (red) marks above their columns
      const colW = pw / history.capacity;
      for (let c = 0; c < n; c++) {
        const m = history.marks[c];
        if (!m) continue;
        const x = PAD.left + (x0 + c + 0.5) * colW;
        if (m & MARK_COMPACT) {
          ctx.fillStyle = "#f97316";
          ctx.beginPath();
          ctx.moveTo(x - 4, PAD.top - 9);
          ctx.lineTo(x + 4, PAD.top - 9);
          ctx.lineTo(x, PAD.top - 2);
          ctx.fill();
          ctx.strokeStyle = "rgba(249, 115, 22, 0.55)";
          ctx.beginPath();
          ctx.moveTo(x, PAD.top);
          ctx.lineTo(x, PAD.top + ph);
          ctx.stroke();
        }
        if (m & MARK_FAIL) {
          ctx.fillStyle = "#dc2626";
          ctx.fillRect(x - 1.5, PAD.top + ph + 1, 3, 5);
        }
      }
    }
    ctx.strokeStyle = AXIS;
    ctx.strokeRect(PAD.left + 0.5, PAD.top + 0.5, pw, ph);
    ctx.fillStyle = TEXT;
    ctx.font = FONT;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const pages = model.get("num_pages");
    for (const f of [0, 0.5, 1]) ctx.fillText(`page ${Math.round(f * pages)}`, PAD.left - 6, PAD.top + f * ph);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    if (n) {
      const tNow = history.time[n - 1];
      const x0 = history.capacity - n;
      const nowX = PAD.left + pw - 10;
      let lastX = -Infinity;
      for (const frac of [0, 0.25, 0.5, 0.75]) {
        const c = Math.round(x0 + frac * (history.capacity - 1 - x0));
        const idx = c - x0;
        if (idx < 0 || idx >= n - 1) continue;
        const x = PAD.left + ((c + 0.5) / history.capacity) * pw;
        if (x - lastX < 60 || nowX - x < 60) continue;  // keep labels apart
        ctx.fillText(`−${formatSeconds(tNow - history.time[idx])}`, x, PAD.top + ph + 8);
        lastX = x;
      }
      ctx.fillText("now", PAD.left + pw - 10, PAD.top + ph + 8);
    }
    // colour bar
    const cbx = PAD.left + pw + 14;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(bar, cbx, PAD.top, 10, ph);
    ctx.fillStyle = TEXT;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText("1", cbx + 14, PAD.top + 4);
    ctx.fillText("0", cbx + 14, PAD.top + ph - 4);
    ctx.save();
    ctx.translate(cbx + 30, PAD.top + ph / 2);
    ctx.rotate(Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText(model.get("metric") === "holes" ? "holes" : "free fraction", 0, 0);
    ctx.restore();
    canvas.dataset.columns = String(n);
    canvas.dataset.buckets = String(b);
  };

  const frames = frameScheduler(draw);
  const schedule = frames.schedule;
  const onFrame = (_content, [buf]) => {
    history.apply(decodeHeatFrame(buf));
    schedule();
  };
  const unsubs = [
    onFrames(model, "heat", onFrame, { host: widgets, ready: () => sendAction(model, "request_full") }),
    onChange(model, ["width_px", "height_px", "num_pages", "metric"], schedule),
    onChange(model, ["history"], () => { history.capacity = model.get("history"); schedule(); }),
  ];
  draw();
  return () => {
    for (const off of unsubs) off();
    frames.cancel();
    root.remove();
  };
}

export default { render };
