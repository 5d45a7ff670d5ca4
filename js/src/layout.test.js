import { describe, expect, it } from "vitest";
import { computeLayout, dirtyRects, paintPages, pageToPixel, pixelOffsets, pixelToPage, segmentOf } from "./layout.js";

describe("page-to-pixel layout", () => {
  it("places segments on fresh rows with a gap between them", () => {
    const L = computeLayout([[0, 10], [10, 6]], 40, 1000);
    expect(L.cell).toBe(24);  // few pages: the biggest cells
    expect(L.cols).toBe(1);
    const small = computeLayout([[0, 10], [10, 6]], 40, 60);
    expect(small.cell * small.cols).toBeLessThanOrEqual(40);
    expect(small.height).toBeLessThanOrEqual(60);
    const last0 = pageToPixel(small, 9);
    const first1 = pageToPixel(small, 10);
    expect(first1.x).toBe(0);
    expect(first1.y).toBeGreaterThan(last0.y + small.cell);  // a visible gap
    expect(segmentOf(small, 9)).toBe(0);
    expect(segmentOf(small, 10)).toBe(1);
  });

  it("inverts: pixelToPage(pageToPixel(p)) == p, background gives -1", () => {
    const L = computeLayout([[0, 100], [100, 37], [137, 64]], 200, 80);
    for (let p = 0; p < L.numPages; p++) {
      const { x, y } = pageToPixel(L, p);
      expect(pixelToPage(L, x, y)).toBe(p);
      expect(pixelToPage(L, x + L.cell - 1, y + L.cell - 1)).toBe(p);
    }
    const gapRow = (L.segRow[1] - L.gap) * L.cell;
    expect(pixelToPage(L, 0, gapRow)).toBe(-1);
    expect(pixelToPage(L, -1, 0)).toBe(-1);
    expect(pixelToPage(L, 0, L.height)).toBe(-1);
  });

  it("fits one million pages at one pixel each", () => {
    const L = computeLayout([[0, 1 << 20]], 1024, 1024);
    expect(L.cell).toBe(1);
    expect(L.width).toBe(1024);
    expect(L.height).toBe(1024);
    const off = pixelOffsets(L);
    expect(off[1025]).toBe(1024 + 1);
  });

  it("paints cells with the palette and reports the dirty rows", () => {
    const L = computeLayout([[0, 6]], 12, 12);  // cell 4 (inset 1), 3 columns
    expect(L.cell).toBe(4);
    const off = pixelOffsets(L);
    const px = new Uint32Array(L.width * L.height);
    const lut = Uint32Array.from([10, 20, 30, 40]);
    const [y0, y1] = paintPages(L, off, px, Uint8Array.from([0, 1, 2, 3, 0, 1]), lut, 3, 6);
    expect([y0, y1]).toEqual([4, 8]);
    expect(px[off[3]]).toBe(40);
    expect(px[off[3] + 2 + 2 * L.width]).toBe(40);   // inside the cell
    expect(px[off[3] + 3]).toBe(0);                   // the inset column stays background
    expect(px[off[0]]).toBe(0);                       // not in the painted range
  });

  it("dirty rectangles cover exactly the touched cells' rows, a segment's end included", () => {
    const L = computeLayout([[0, 10], [10, 7]], 16, 24);  // cell 4, 4 columns
    expect([L.cell, L.cols]).toEqual([4, 4]);
    const off = pixelOffsets(L);
    // page 1 alone: one cell
    expect(dirtyRects(L, off, [[1, 2]])).toEqual([[4, 0, 4, 4]]);
    // pages 3..5 cross a row: the end of row 0 and the start of row 1
    expect(dirtyRects(L, off, [[3, 6]])).toEqual([[12, 0, 4, 4], [0, 4, 8, 4]]);
    // a run over the segment boundary (9 | 10): page 9 ends segment 0's last row, 10 starts segment 1
    const rects = dirtyRects(L, off, [[9, 11]]);
    expect(rects).toEqual([[4, 8, 4, 4], [0, L.segRow[1] * 4, 4, 4]]);
    // every painted pixel of random runs lies in some rectangle
    const px = new Uint32Array(L.width * L.height);
    const pages = Uint8Array.from({ length: 17 }, (_, i) => 1 + (i % 3));
    const lut = Uint32Array.from([0, 5, 6, 7]);
    const runs = [[0, 1], [2, 4], [7, 13], [16, 17]];
    for (const [s, e] of runs) paintPages(L, off, px, pages, lut, s, e);
    const inRect = (x, y) => dirtyRects(L, off, runs).some(([rx, ry, w, h]) => x >= rx && x < rx + w && y >= ry && y < ry + h);
    for (let i = 0; i < px.length; i++) if (px[i]) expect(inRect(i % L.width, Math.floor(i / L.width))).toBe(true);
    // past maxRects rows: one bounding rectangle
    expect(dirtyRects(L, off, [[0, 1], [4, 5], [8, 9]], 2)).toEqual([[0, 0, 4, 12]]);
  });
});
