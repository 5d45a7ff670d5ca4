import { describe, expect, it } from "vitest";
import { computeLayout, paintPages, pageToPixel, pixelOffsets, pixelToPage, segmentOf } from "./layout.js";

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
});
