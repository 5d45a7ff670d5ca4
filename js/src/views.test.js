import { describe, expect, it, vi } from "vitest";
import { frameScheduler } from "./axes.js";
import { HeatHistory } from "./heatmap.js";
import { throttle } from "./model.js";
import { applyPageFrame, DELTA, encodePageFrame, decodePageFrame } from "./codec.js";
import { checksum, checksumChange } from "./pagemap.js";
import { positiveRange } from "./trace.js";

describe("view helpers", () => {
  it("checksum matches the Python page_checksum definition", () => {
    // sum(v * (i % 65521 + 1)) mod 2^32
    expect(checksum(Uint8Array.from([1, 1, 2, 0, 3, 0]))).toBe(1 * 1 + 1 * 2 + 2 * 3 + 3 * 5);
    expect(checksum(null)).toBe("");
    expect(checksum(new Uint8Array(262145))).toBe("");  // too big: skipped
  });

  it("checksumChange plus the old sum is the checksum after the delta (random deltas)", () => {
    let seed = 7;
    const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    const n = 70000;  // past 65521, where the weights wrap
    const pages = new Uint8Array(n).map(() => rand(256));
    let sum = 0;
    for (let i = 0; i < n; i++) sum += pages[i] * ((i % 65521) + 1);
    for (let round = 0; round < 20; round++) {
      const starts = [];
      const lengths = [];
      let p = rand(50);
      while (p < n) {
        const len = Math.min(1 + rand(40), n - p);
        starts.push(p);
        lengths.push(len);
        p += len + 1 + rand(3000);
      }
      const total = lengths.reduce((a, b) => a + b, 0);
      const values = new Uint8Array(total).map(() => rand(256));
      const frame = decodePageFrame(encodePageFrame({ kind: DELTA, numPages: n, frameId: round + 1, baseId: round,
        values, starts, lengths }));
      sum += checksumChange(pages, frame);
      applyPageFrame(pages, round, frame);
      expect(sum % 4294967296).toBe(checksum(pages));
    }
  });

  it("heat history keeps the newest `capacity` columns and resets on a full frame", () => {
    const h = new HeatHistory(2);
    const col = (t, v) => ({ kind: 1, buckets: 2, nCols: 1, time: [t], marks: [0], values: Uint8Array.of(v, v) });
    h.apply(col(0, 1));
    h.apply(col(1, 2));
    h.apply(col(2, 3));
    expect(h.time).toEqual([1, 2]);
    expect([...h.columns[1]]).toEqual([3, 3]);
    h.apply({ ...col(5, 9), kind: 0 });
    expect(h.time).toEqual([5]);
  });

  it("frameScheduler draws once per animation frame and cancel drops a pending draw", () => {
    const queued = [];
    const raf = (cb) => queued.push(cb);
    const caf = (id) => { queued[id - 1] = null; };
    let draws = 0;
    const f = frameScheduler(() => { draws += 1; }, raf, caf);
    f.schedule(); f.schedule(); f.schedule();
    expect(queued.length).toBe(1);
    queued.shift()();
    expect(draws).toBe(1);
    f.schedule();
    f.cancel();
    expect(queued).toEqual([null]);
    f.schedule();  // a cancelled draw does not block the next one
    expect(queued.length).toBe(2);
  });

  it("positiveRange ignores NaN and non-positive samples", () => {
    expect(positiveRange([Float32Array.of(NaN, 0, 2e-3), Float32Array.of(1e-6)])[0]).toBeCloseTo(1e-6);
    expect(positiveRange([Float32Array.of(NaN)])).toEqual([1e-6, 1e-3]);
  });

  it("throttle runs at once, then once more at the trailing edge with the last arguments", () => {
    vi.useFakeTimers();
    const calls = [];
    const t = throttle((x) => calls.push(x), 50);
    t(1); t(2); t(3);
    expect(calls).toEqual([1]);
    vi.advanceTimersByTime(60);
    expect(calls).toEqual([1, 3]);
    t.cancel();
    vi.useRealTimers();
  });
});
