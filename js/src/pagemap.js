// The page map view: every page of the pool as one cell on a canvas, painted from palette indices.
//
// Frames arrive as binary custom messages (codec.js): a full frame repaints every page, a delta
// repaints only its runs and uploads only the touched rows. A delta whose base is not the frame
// on screen (a view opened late, a lost message) makes the view ask for a full frame.

import { FULL, applyPageFrame, decodePageFrame } from "./codec.js";
import { COLOR_MODES } from "./constants.js";
import { chartWidth, watchWidth } from "./axes.js";
import { computeLayout, dirtyRects, paintPages, pixelOffsets, pixelToPage } from "./layout.js";
import { onChange, onMessage, sendAction, throttle } from "./model.js";
import { buildPalette, packColor } from "./palette.js";
import { defineView, el } from "./view.js";

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

/** The view's DOM: a bar (title, colour-mode buttons, legend, caption) over a stage of two canvases. */
function buildDom(root) {
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
  return { root, modes, legend, meta, canvas, overlay, tip };
}

/** The pages as the frames built them: a palette index per page, the frame id and seq, the checksum. */
function createShown() {
  return {
    pages: null,
    frameId: -1,
    seq: -1,
    sum: "",  // checksumSum(pages), kept up to date by each delta instead of recomputed per frame
    /** Apply one frame; returns the changed runs (null: every page). Throws when it does not fit. */
    apply(buf) {
      const frame = decodePageFrame(buf);
      const change = this.sum !== "" && frame.kind !== FULL && this.pages && this.pages.length === frame.numPages
        && this.frameId === frame.baseId ? checksumChange(this.pages, frame) : null;
      const res = applyPageFrame(this.pages, this.frameId, frame);
      this.pages = res.pages;
      this.frameId = frame.frameId;
      this.seq = frame.seq;
      this.sum = change === null ? checksumSum(this.pages) : this.sum + change;
      return res.changed;
    },
  };
}

/** The canvas: page layout, pixel buffer and palette; paints pages and outlines the selection. */
function createScreen(canvas, overlay, model, root) {
  const ctx = canvas.getContext("2d");
  const octx = overlay.getContext("2d");
  let offsets = null;
  let image = null;
  let pixels = null;
  let lut = buildPalette(model.get("palette"));
  const screen = {
    layout: null,
    setPalette() {
      lut = buildPalette(model.get("palette"));
    },
    relayout() {
      // the width the notebook gives the view, less the stage's padding and border
      const width = Math.max(64, chartWidth(root, model) - 10);
      const layout = computeLayout(model.get("segments"), width, model.get("height_px"));
      screen.layout = layout;
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
    },
    /** Paint `pages` (`changed`: the runs that changed, null: all of them) and upload what changed. */
    paint(pages, changed = null) {
      const layout = screen.layout;
      if (!layout || !pages || pages.length !== layout.numPages) return;
      if (changed === null) {
        paintPages(layout, offsets, pixels, pages, lut);
        ctx.putImageData(image, 0, 0);
        return;
      }
      for (const [s, e] of changed) paintPages(layout, offsets, pixels, pages, lut, s, e);
      for (const [x, y, w, h] of dirtyRects(layout, offsets, changed)) ctx.putImageData(image, 0, 0, x, y, w, h);
    },
    /** Outline every row span of the selected block ([block_id, first, n]; a block never crosses a segment). */
    drawSelection(sel) {
      octx.clearRect(0, 0, overlay.width, overlay.height);
      const layout = screen.layout;
      if (!layout || !sel || sel.length < 3) return;
      const [, first, n] = sel;
      const { cell, cols } = layout;
      const pad = Math.max(1, Math.floor(cell / 3));
      octx.fillStyle = SELECT_COLOR;
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
    },
    /** The page under a mouse event, or -1. */
    pageAt(ev) {
      if (!screen.layout) return -1;
      const rect = canvas.getBoundingClientRect();
      const x = ((ev.clientX - rect.left) * canvas.width) / rect.width;
      const y = ((ev.clientY - rect.top) * canvas.height) / rect.height;
      return pixelToPage(screen.layout, Math.floor(x), Math.floor(y));
    },
  };
  return screen;
}

/** The canvas's data attributes (read by tests and tools) and the caption; returns `update`. */
function createCaption(view, dom, model, shown) {
  // the caption is read, not watched: a few times a second is enough, and each change of its text
  // costs the browser a layout of the notebook (the last call of a burst always lands)
  const setMeta = throttle(() => {
    dom.meta.textContent = shown.pages ? `${shown.pages.length.toLocaleString()} pages · seq ${shown.seq}`
      : "waiting for the kernel…";
  }, 250);
  view.own(() => setMeta.cancel());
  return function update() {
    const data = dom.canvas.dataset;
    data.frameId = String(shown.frameId);
    data.seq = String(shown.seq);
    data.numPages = String(shown.pages ? shown.pages.length : 0);
    data.colorBy = model.get("color_by");
    data.checksum = shown.sum === "" ? "" : String(shown.sum % 4294967296);
    setMeta();
  };
}

/** One button per colour mode (the kernel's registry), the current one highlighted. */
function drawModes(modes, model) {
  modes.replaceChildren();
  for (const m of COLOR_MODES) {
    const b = el("button", m === model.get("color_by") ? "agl-on" : "", modes);
    b.textContent = m;
    b.title = `colour pages by ${m}`;
    b.onclick = () => sendAction(model, "color_by", { value: m });
  }
}

function drawLegend(legend, model) {
  legend.replaceChildren();
  for (const [label, color] of model.get("legend")) {
    const item = el("span", "", legend);
    el("span", "agl-chip", item).style.background = color;
    item.appendChild(document.createTextNode(label));
  }
}

/** Hover asks the kernel what lies under the pointer (throttled); its answer shows as a tooltip. */
function attachTooltip(view, dom, model, screen) {
  let hoverPage = -1;
  const ask = throttle((page) => sendAction(model, "hover", { page }), 50);
  view.own(() => ask.cancel());
  const show = (content) => {
    if (content.page !== hoverPage) return;
    if (content.page < 0) { dom.tip.style.display = "none"; return; }
    const lines = [`page ${content.page}  (${content.state})`];
    if (content.block_id >= 0) {
      lines.push(`block ${content.block_id}${content.tag ? `  tag ${content.tag}` : ""}`);
      const bytes = content.nbytes !== undefined ? ` (${content.nbytes.toLocaleString("en")} B)` : "";
      lines.push(`${content.size}${bytes} in ${content.num_pages} page(s) from ${content.first_page}`);
      if (content.age_s !== undefined) lines.push(`age ${content.age_s.toFixed(2)} s`);
    }
    dom.tip.textContent = lines.join("\n");
    dom.tip.style.display = "block";
  };
  const move = (ev) => {
    const page = screen.pageAt(ev);
    const rootRect = dom.root.getBoundingClientRect();
    dom.tip.style.left = `${ev.clientX - rootRect.left + 14}px`;
    dom.tip.style.top = `${ev.clientY - rootRect.top + 14}px`;
    if (page === hoverPage) return;
    hoverPage = page;
    if (page < 0) dom.tip.style.display = "none";
    else ask(page);
  };
  const leave = () => { hoverPage = -1; dom.tip.style.display = "none"; ask.cancel(); };
  view.listen(dom.canvas, "mousemove", move);
  view.listen(dom.canvas, "mouseleave", leave);
  view.own(onMessage(model, "hover", show));
}

const render = defineView("agl-pagemap", (view, { model }) => {
  const dom = buildDom(view.root);
  const shown = createShown();
  const screen = createScreen(dom.canvas, dom.overlay, model, view.root);
  const caption = createCaption(view, dom, model, shown);

  const onFrame = (_content, [buf]) => {
    try {
      const changed = shown.apply(buf);
      const relaid = !screen.layout || screen.layout.numPages !== shown.pages.length;
      if (relaid) screen.relayout();
      screen.paint(shown.pages, relaid ? null : changed);
      caption();
    } catch (err) {
      // a delta for a frame this view never saw: ask for a full frame instead of guessing
      sendAction(model, "request_full");
    }
  };
  const relayout = () => {
    screen.relayout();
    screen.paint(shown.pages);
    screen.drawSelection(model.get("selection"));
  };
  // the width a relayout would fill (a resize that leaves it unchanged repaints nothing)
  const layoutWidth = () => computeLayout(model.get("segments"), Math.max(64, chartWidth(view.root, model) - 10),
    model.get("height_px")).width;
  attachTooltip(view, dom, model, screen);
  view.listen(dom.canvas, "click", (ev) => {
    const page = screen.pageAt(ev);
    if (page >= 0) sendAction(model, "select", { page });
  });
  view.own(
    onMessage(model, "frame", onFrame),
    onChange(model, ["palette"], () => { screen.setPalette(); screen.paint(shown.pages); }),
    onChange(model, ["segments", "width_px", "height_px"], relayout),
    watchWidth(view.root, () => { if (!screen.layout || screen.layout.width !== layoutWidth()) relayout(); }),
    onChange(model, ["selection"], () => screen.drawSelection(model.get("selection"))),
    onChange(model, ["legend"], () => drawLegend(dom.legend, model)),
    onChange(model, ["color_by"], () => { drawModes(dom.modes, model); caption(); }),
  );
  screen.relayout();
  drawModes(dom.modes, model);
  drawLegend(dom.legend, model);
  caption();
  sendAction(model, "request_full");
});

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
