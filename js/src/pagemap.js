// The page map view: every page of the pool as one cell on a canvas, painted from palette indices.
//
// Frames arrive as binary custom messages (codec.js): a full frame repaints every page, a delta
// repaints only its runs and uploads only the touched rows. A delta whose base is not the frame
// on screen (a view opened late, a lost message) makes the view ask for a full frame.

import { FULL, applyPageFrame, decodePageFrame } from "./codec.js";
import { computeLayout, dirtyRects, paintPages, pixelOffsets, pixelToPage } from "./layout.js";
import { onChange, onMessage, sendAction, throttle } from "./model.js";
import { buildPalette, packColor } from "./palette.js";

const CSS = `
.agl-pagemap { font: 12px/1.4 var(--jp-ui-font-family, system-ui, sans-serif); color: var(--jp-ui-font-color1, #1f2937); position: relative; }
.agl-pagemap .agl-bar { display: flex; align-items: center; gap: 10px; margin-bottom: 6px; flex-wrap: wrap; }
.agl-pagemap .agl-title { font-weight: 600; }
.agl-pagemap .agl-modes button { font: inherit; border: 1px solid #cbd5e1; background: #f8fafc; padding: 1px 8px; cursor: pointer; }
.agl-pagemap .agl-modes button:first-child { border-radius: 4px 0 0 4px; }
.agl-pagemap .agl-modes button:last-child { border-radius: 0 4px 4px 0; }
.agl-pagemap .agl-modes button.agl-on { background: #1e3a8a; color: #fff; border-color: #1e3a8a; }
.agl-pagemap .agl-legend { display: flex; gap: 10px; flex-wrap: wrap; color: #475569; }
.agl-pagemap .agl-chip { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
.agl-pagemap .agl-stage { position: relative; display: inline-block; max-width: 100%; max-height: 640px; overflow: auto; background: #fff; border: 1px solid #e2e8f0; border-radius: 4px; padding: 4px; }
.agl-pagemap canvas { display: block; image-rendering: pixelated; }
.agl-pagemap canvas.agl-overlay { position: absolute; left: 4px; top: 4px; pointer-events: none; }
.agl-pagemap .agl-tip { position: absolute; pointer-events: none; background: rgba(15, 23, 42, 0.92); color: #f8fafc; padding: 4px 8px; border-radius: 4px; white-space: pre; font: 11px/1.35 var(--jp-code-font-family, monospace); display: none; z-index: 10; }
.agl-pagemap .agl-meta { color: #64748b; margin-left: auto; }
`;

const BACKGROUND = "#ffffff";
const SELECT_COLOR = "#ef4444";

function el(tag, cls, parent) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (parent) parent.appendChild(node);
  return node;
}

function formatBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n % 1 ? n.toFixed(1) : n} ${units[i]}`;
}

export function render({ model, el: host }) {
  const root = el("div", "agl-pagemap", host);
  el("style", null, root).textContent = CSS;
  const bar = el("div", "agl-bar", root);
  el("span", "agl-title", bar).textContent = "Page map";
  const modes = el("span", "agl-modes", bar);
  const legend = el("span", "agl-legend", bar);
  const meta = el("span", "agl-meta", bar);
  const stage = el("div", "agl-stage", root);
  const canvas = el("canvas", "agl-canvas", stage);
  const overlay = el("canvas", "agl-overlay", stage);
  const tip = el("div", "agl-tip", root);
  const ctx = canvas.getContext("2d");
  const octx = overlay.getContext("2d");

  let layout = null;
  let offsets = null;
  let image = null;
  let pixels = null;
  let lut = buildPalette(model.get("palette"));
  let pages = null;
  let frameId = -1;
  let seq = -1;
  let sum = "";  // checksum(pages), kept up to date by each delta instead of recomputed per frame
  let disposed = false;

  const setData = () => {
    canvas.dataset.frameId = String(frameId);
    canvas.dataset.seq = String(seq);
    canvas.dataset.numPages = String(pages ? pages.length : 0);
    canvas.dataset.colorBy = model.get("color_by");
    canvas.dataset.checksum = sum === "" ? "" : String(sum % 4294967296);
    setMeta();
  };
  // the caption is read, not watched: a few times a second is enough, and each change of its text
  // costs the browser a layout of the notebook (the last call of a burst always lands)
  const setMeta = throttle(() => {
    meta.textContent = pages ? `${pages.length.toLocaleString()} pages · seq ${seq}` : "waiting for the kernel…";
  }, 250);

  const relayout = () => {
    const segments = model.get("segments");
    const width = Math.max(64, model.get("width_px"));
    layout = computeLayout(segments, width, model.get("height_px"));
    offsets = pixelOffsets(layout);
    canvas.width = overlay.width = layout.width;
    canvas.height = overlay.height = layout.height;
    image = ctx.createImageData(layout.width, layout.height);
    pixels = new Uint32Array(image.data.buffer);
    pixels.fill(packColor(BACKGROUND));
    // the layout, for tests and tools that read pixels back (page p of segment s sits at
    // row segRow[s] + floor((p - first) / cols), column (p - first) % cols, cell x cell pixels)
    canvas.dataset.cell = String(layout.cell);
    canvas.dataset.cols = String(layout.cols);
    canvas.dataset.segRows = layout.segRow.join(",");
  };

  const paintAll = () => {
    if (!layout || !pages || pages.length !== layout.numPages) return;
    paintPages(layout, offsets, pixels, pages, lut);
    ctx.putImageData(image, 0, 0);
  };

  const drawSelection = () => {
    octx.clearRect(0, 0, overlay.width, overlay.height);
    const sel = model.get("selection");
    if (!layout || !sel || sel.length < 3) return;
    const [, first, n] = sel;
    octx.fillStyle = SELECT_COLOR;
    const { cell, cols } = layout;
    // outline every row span of the block (a block never crosses a segment)
    const pad = Math.max(1, Math.floor(cell / 3));
    for (let p = first; p < first + n;) {
      const o = offsets[p];
      const x = o % layout.width;
      const y = Math.floor(o / layout.width);
      const inRow = Math.min(first + n - p, cols - x / cell);
      octx.globalAlpha = 0.85;
      octx.fillRect(x, y, inRow * cell, cell);
      octx.globalAlpha = 1;
      octx.clearRect(x + pad, y + pad, inRow * cell - 2 * pad, cell - 2 * pad);
      p += inRow;
    }
  };

  const drawModes = () => {
    modes.replaceChildren();
    for (const m of ["state", "tag", "age"]) {
      const b = el("button", m === model.get("color_by") ? "agl-on" : "", modes);
      b.textContent = m;
      b.title = `colour pages by ${m}`;
      b.onclick = () => sendAction(model, "color_by", { value: m });
    }
  };

  const drawLegend = () => {
    legend.replaceChildren();
    for (const [label, color] of model.get("legend")) {
      const item = el("span", "", legend);
      el("span", "agl-chip", item).style.background = color;
      item.appendChild(document.createTextNode(label));
    }
  };

  const onFrame = (_content, [buf]) => {
    let frame;
    try {
      frame = decodePageFrame(buf);
      const change = sum !== "" && frame.kind !== FULL && pages && pages.length === frame.numPages && frameId === frame.baseId
        ? checksumChange(pages, frame) : null;
      const res = applyPageFrame(pages, frameId, frame);
      pages = res.pages;
      frameId = frame.frameId;
      seq = frame.seq;
      sum = change === null ? checksumSum(pages) : sum + change;
      if (!layout || layout.numPages !== pages.length) relayout();
      if (res.changed === null) {
        paintAll();
      } else {
        for (const [s, e] of res.changed) paintPages(layout, offsets, pixels, pages, lut, s, e);
        for (const [x, y, w, h] of dirtyRects(layout, offsets, res.changed)) ctx.putImageData(image, 0, 0, x, y, w, h);
      }
      setData();
    } catch (err) {
      // a delta for a frame this view never saw: ask for a full frame instead of guessing
      sendAction(model, "request_full");
    }
  };

  const showTip = (content) => {
    if (content.page !== hoverPage) return;
    if (content.page < 0) { tip.style.display = "none"; return; }
    const lines = [`page ${content.page}  (${content.state})`];
    if (content.block_id >= 0) {
      lines.push(`block ${content.block_id}${content.tag ? `  tag ${content.tag}` : ""}`);
      lines.push(`${formatBytes(content.nbytes)} in ${content.num_pages} page(s) from ${content.first_page}`);
      if (content.age_s !== undefined) lines.push(`age ${content.age_s.toFixed(2)} s`);
    }
    tip.textContent = lines.join("\n");
    tip.style.display = "block";
  };

  let hoverPage = -1;
  const askHover = throttle((page) => sendAction(model, "hover", { page }), 50);
  const pageAtEvent = (ev) => {
    if (!layout) return -1;
    const rect = canvas.getBoundingClientRect();
    const x = ((ev.clientX - rect.left) * canvas.width) / rect.width;
    const y = ((ev.clientY - rect.top) * canvas.height) / rect.height;
    return pixelToPage(layout, Math.floor(x), Math.floor(y));
  };
  const onMove = (ev) => {
    const page = pageAtEvent(ev);
    const rootRect = root.getBoundingClientRect();
    tip.style.left = `${ev.clientX - rootRect.left + 14}px`;
    tip.style.top = `${ev.clientY - rootRect.top + 14}px`;
    if (page === hoverPage) return;
    hoverPage = page;
    if (page < 0) tip.style.display = "none";
    else askHover(page);
  };
  const onLeave = () => { hoverPage = -1; tip.style.display = "none"; askHover.cancel(); };
  const onClick = (ev) => {
    const page = pageAtEvent(ev);
    if (page >= 0) sendAction(model, "select", { page });
  };
  canvas.addEventListener("mousemove", onMove);
  canvas.addEventListener("mouseleave", onLeave);
  canvas.addEventListener("click", onClick);

  const unsubs = [
    onMessage(model, "frame", onFrame),
    onMessage(model, "hover", showTip),
    onChange(model, ["palette"], () => { lut = buildPalette(model.get("palette")); paintAll(); }),
    onChange(model, ["segments", "width_px", "height_px"], () => { relayout(); paintAll(); drawSelection(); }),
    onChange(model, ["selection"], drawSelection),
    onChange(model, ["legend"], drawLegend),
    onChange(model, ["color_by"], () => { drawModes(); setData(); }),
  ];
  relayout();
  drawModes();
  drawLegend();
  setData();
  sendAction(model, "request_full");

  return () => {
    if (disposed) return;
    disposed = true;
    for (const off of unsubs) off();
    askHover.cancel();
    setMeta.cancel();
    canvas.removeEventListener("mousemove", onMove);
    canvas.removeEventListener("mouseleave", onLeave);
    canvas.removeEventListener("click", onClick);
    root.remove();
  };
}

/**
 * Position-weighted sum of the palette indices mod 2^32, the same as `page_checksum` in _codec.py
 * (exact in float64: 255 * 65521 * 2^20 < 2^53). Skipped above CHECKSUM_MAX_PAGES to keep big
 * frames cheap.
 */
export const CHECKSUM_MAX_PAGES = 262144;
export function checksum(pages) {
  const h = checksumSum(pages);
  return h === "" ? "" : h % 4294967296;
}

/** The checksum before the mod: the exact weighted sum, which a delta updates (checksumChange). */
function checksumSum(pages) {
  if (!pages || pages.length > CHECKSUM_MAX_PAGES) return "";
  let h = 0;
  for (let i = 0; i < pages.length; i++) h += pages[i] * ((i % 65521) + 1);
  return h;
}

/** How applying the delta `frame` to `pages` changes the weighted sum: O(pages in its runs). */
export function checksumChange(pages, frame) {
  let d = 0;
  let at = 0;
  for (let i = 0; i < frame.nRuns; i++) {
    const s = frame.starts[i];
    const len = frame.lengths[i];
    for (let j = 0; j < len; j++) d += (frame.values[at + j] - pages[s + j]) * (((s + j) % 65521) + 1);
    at += len;
  }
  return d;
}

export default { render };
