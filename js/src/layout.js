// Page -> pixel layout of the page map.
//
//   segment 0: pages 0 .. n0-1, row-major, `cols` cells per row
//   [gap rows]                                       <- segments are visibly separated
//   segment 1: starts on a fresh row
//
// Each page is a `cell` x `cell` square; when cell >= 4 the last pixel row/column is left as
// background so single pages stay distinguishable. At one million pages cell = 1 (1 px per page).

export const MAX_CELL = 24;

/**
 * segments: [[firstPage, numPages], ...] in page order. widthPx: the canvas width to fill.
 * targetHeightPx: the height to aim for; the cell shrinks (down to 1 px) until the pool fits, and
 * when even 1 px pages do not fit, the map grows taller than the target.
 */
export function computeLayout(segments, widthPx, targetHeightPx = 360) {
  const width = Math.max(8, Math.floor(widthPx));
  const numPages = segments.reduce((acc, [, n]) => acc + n, 0);
  let cell = MAX_CELL;
  for (; cell > 1; cell--) {
    const cols = Math.floor(width / cell);
    const gap = gapRows(cell);
    let rows = 0;
    for (const [, n] of segments) rows += Math.ceil(n / cols) + gap;
    rows -= segments.length ? gap : 0;
    if (rows * cell <= targetHeightPx) break;
  }
  const cols = Math.max(1, Math.floor(width / cell));
  const gap = gapRows(cell);
  const segRow = [];
  let row = 0;
  for (const [, n] of segments) {
    segRow.push(row);
    row += Math.ceil(n / cols) + gap;
  }
  const rows = Math.max(1, row - (segments.length ? gap : 0));
  return {
    numPages, cell, cols, gap,
    segments: segments.map(([f, n]) => [f, n]),
    segRow,
    width: cols * cell,
    height: rows * cell,
    inset: cell >= 4 ? 1 : 0,
  };
}

function gapRows(cell) {
  // at least 4 px of background between segments, however small the cells
  return Math.max(1, Math.ceil(4 / cell));
}

/** Index of the segment holding `page` (binary search on first pages). */
export function segmentOf(layout, page) {
  const segs = layout.segments;
  let lo = 0;
  let hi = segs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (segs[mid][0] <= page) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Top-left pixel {x, y} of a page's cell. */
export function pageToPixel(layout, page) {
  const s = segmentOf(layout, page);
  const off = page - layout.segments[s][0];
  const row = layout.segRow[s] + Math.floor(off / layout.cols);
  return { x: (off % layout.cols) * layout.cell, y: row * layout.cell };
}

/** The page under pixel (x, y), or -1 over background. */
export function pixelToPage(layout, x, y) {
  if (x < 0 || y < 0 || x >= layout.width || y >= layout.height) return -1;
  const col = Math.floor(x / layout.cell);
  const row = Math.floor(y / layout.cell);
  for (let s = layout.segments.length - 1; s >= 0; s--) {
    if (row >= layout.segRow[s]) {
      const [first, n] = layout.segments[s];
      const off = (row - layout.segRow[s]) * layout.cols + col;
      return off < n ? first + off : -1;
    }
  }
  return -1;
}

/** Pixel offset (y * width + x) of every page's top-left corner: one Int32Array, built once. */
export function pixelOffsets(layout) {
  const out = new Int32Array(layout.numPages);
  const { cols, cell, width } = layout;
  layout.segments.forEach(([first, n], s) => {
    const row0 = layout.segRow[s];
    for (let off = 0; off < n; off++) {
      const row = row0 + ((off / cols) | 0);
      out[first + off] = row * cell * width + (off % cols) * cell;
    }
  });
  return out;
}

/**
 * Paint pages [start, end) into `pixels` (Uint32Array over ImageData) with palette `lut`.
 * Returns the touched row span [y0, y1) in pixels for a dirty-rect putImageData.
 */
export function paintPages(layout, offsets, pixels, pages, lut, start = 0, end = pages.length) {
  const { cell, width, inset } = layout;
  if (end <= start) return [0, 0];
  if (cell === 1) {
    for (let p = start; p < end; p++) pixels[offsets[p]] = lut[pages[p]];
  } else {
    const fill = cell - inset;
    for (let p = start; p < end; p++) {
      const c = lut[pages[p]];
      let o = offsets[p];
      for (let r = 0; r < fill; r++, o += width) pixels.fill(c, o, o + fill);
    }
  }
  const y0 = Math.floor(offsets[start] / width);
  const y1 = Math.floor(offsets[end - 1] / width) + cell;
  return [y0, y1];
}

/**
 * The pixel rectangles [x, y, w, h] to upload after painting the page ranges `runs` ([start, end)
 * pairs): one per touched row of cells, spanning the leftmost to the rightmost touched cell of that
 * row. Scattered changes then upload a few small strips instead of every row between the first and
 * the last; past `maxRects` rows, one bounding rectangle (fewer calls beat fewer pixels there).
 */
export function dirtyRects(layout, offsets, runs, maxRects = 48) {
  const { cell, cols, width } = layout;
  const spans = new Map();  // pixel row of a cell row -> [x0, x1)
  for (const [start, end] of runs) {
    for (let p = start; p < end;) {
      const o = offsets[p];
      const x = o % width;
      const y = (o - x) / width;
      const [first, n] = layout.segments[segmentOf(layout, p)];
      const inRow = Math.min(end - p, cols - x / cell, first + n - p);  // a row ends at its segment's end too
      const span = spans.get(y);
      const x1 = x + inRow * cell;
      if (span) {
        if (x < span[0]) span[0] = x;
        if (x1 > span[1]) span[1] = x1;
      } else {
        spans.set(y, [x, x1]);
      }
      p += inRow;
    }
  }
  if (spans.size <= maxRects) return [...spans].map(([y, [x0, x1]]) => [x0, y, x1 - x0, cell]);
  let x0 = Infinity, x1 = 0, y0 = Infinity, y1 = 0;
  for (const [y, s] of spans) {
    x0 = Math.min(x0, s[0]);
    x1 = Math.max(x1, s[1]);
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y + cell);
  }
  return [[x0, y0, x1 - x0, y1 - y0]];
}
