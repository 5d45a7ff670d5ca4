// Browser render benchmark of the page map (run by benchmarks/bench_widget.py in headless Chromium).
// Drives the real view (pagemap.js render) through a stand-in model, frame by frame, and times
// decode + apply + paint + putImageData; a 1-pixel getImageData forces the canvas to finish.

import { DELTA, FULL, encodePageFrame } from "../src/codec.js";
import pagemap from "../src/pagemap.js";

const { render } = pagemap;

function fakeModel(attrs) {
  const handlers = {};
  return {
    get: (k) => attrs[k],
    set: (k, v) => { attrs[k] = v; },
    on: (evt, fn) => { (handlers[evt] ||= []).push(fn); },
    off: (evt, fn) => { handlers[evt] = (handlers[evt] || []).filter((h) => h !== fn); },
    send: () => {},
    emit: (evt, ...args) => { for (const h of handlers[evt] || []) h(...args); },
  };
}

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { median_ms: s[Math.floor(s.length / 2)], p95_ms: s[Math.floor(s.length * 0.95)], n: s.length };
}

export function benchPageMap({ numPages = 1 << 20, frames = 60, changedRuns = 200, runLength = 16, palette }) {
  const el = document.createElement("div");
  document.body.appendChild(el);
  const model = fakeModel({
    palette, legend: [], selection: [], color_by: "state", num_pages: numPages,
    segments: [[0, numPages]], width_px: 1024, height_px: 1024,
  });
  const cleanup = render({ model, el });
  const canvas = el.querySelector("canvas");
  const ctx = canvas.getContext("2d");
  let values = new Uint8Array(numPages);
  for (let i = 0; i < numPages; i++) values[i] = (i * 2654435761) >>> 30;  // 0..3, scattered
  let id = 1;
  const send = (buf) => model.emit("msg:custom", { type: "frame" }, [new DataView(buf.buffer)]);
  const time = (fn) => { const t0 = performance.now(); fn(); ctx.getImageData(0, 0, 1, 1); return performance.now() - t0; };
  send(encodePageFrame({ kind: FULL, numPages, frameId: id, values }));  // warm up
  const full = [];
  for (let f = 0; f < frames; f++) {
    values = values.map((v) => (v + 1) & 3);
    const buf = encodePageFrame({ kind: FULL, numPages, frameId: ++id, values });
    full.push(time(() => send(buf)));
  }
  const delta = [];
  for (let f = 0; f < frames; f++) {
    const starts = [];
    const lengths = [];
    const vals = new Uint8Array(changedRuns * runLength);
    for (let r = 0; r < changedRuns; r++) {
      starts.push(((r * 7919 + f * 104729) % (numPages / runLength | 0)) * runLength);
      lengths.push(runLength);
      vals.fill((f + r) & 3, r * runLength, (r + 1) * runLength);
    }
    const order = starts.map((s, i) => [s, i]).sort((a, b) => a[0] - b[0]);
    const buf = encodePageFrame({
      kind: DELTA, numPages, frameId: id + 1, baseId: id, starts: order.map((o) => o[0]),
      lengths: order.map(() => runLength), values: vals,
    });
    id += 1;
    delta.push(time(() => send(buf)));
  }
  const ok = canvas.dataset.frameId === String(id);
  cleanup();
  const cleaned = el.children.length === 0;  // render() returned a cleanup that removed the view
  return { full: stats(full), delta: stats(delta), canvas: [canvas.width, canvas.height], ok, cleaned };
}

export function benchPlotly({ frames = 40, buckets = 64, columns = 240, points = 1024 }) {
  const el = document.createElement("div");
  el.style.width = "1000px";
  document.body.appendChild(el);
  const z = Array.from({ length: buckets }, () => new Float32Array(columns).map(() => Math.random()));
  const x = Array.from({ length: points }, (_, i) => i);
  const line = () => x.map(() => Math.random() * 1e-3);
  const data = () => [
    { type: "heatmap", z, xaxis: "x", yaxis: "y", colorscale: "Viridis" },
    { type: "scatter", x, y: line(), xaxis: "x2", yaxis: "y2" },
    { type: "scatter", x, y: line(), xaxis: "x2", yaxis: "y2" },
    { type: "scatter", x, y: line(), xaxis: "x2", yaxis: "y2", mode: "markers" },
  ];
  const layout = { width: 1000, height: 260, grid: { rows: 1, columns: 2, pattern: "independent" },
    yaxis2: { type: "log" }, showlegend: false, margin: { t: 10, b: 30, l: 50, r: 10 } };
  window.Plotly.newPlot(el, data(), layout);
  const samples = [];
  for (let f = 0; f < frames; f++) {
    z.push(z.shift());
    const t0 = performance.now();
    window.Plotly.react(el, data(), layout);
    samples.push(performance.now() - t0);
  }
  return stats(samples);
}

window.bench = { benchPageMap, benchPlotly };
