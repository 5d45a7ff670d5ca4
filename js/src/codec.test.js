import { describe, expect, it } from "vitest";
import {
  DELTA, FULL, HEADER_BYTES, TRACE_APPEND, TRACE_FULL, applyPageFrame, applyTraceFrame, decodeHeatFrame,
  decodePageFrame, decodeTraceFrame, encodePageFrame,
} from "./codec.js";

// Bytes the Python encoder writes for a 6-page pool (tests/widget/test_codec.py checks the same).
const PY_FULL = [
  0x50, 0x47, 0x46, 0x31, 0, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0x1c, 0x40, // seq 7.0 as f64
  1, 1, 2, 0, 3, 0,
];

describe("page frames", () => {
  it("decodes a full frame written by the Python encoder", () => {
    const f = decodePageFrame(new Uint8Array(PY_FULL));
    expect(f).toMatchObject({ kind: FULL, mode: 0, numPages: 6, frameId: 1, seq: 7 });
    expect([...f.values]).toEqual([1, 1, 2, 0, 3, 0]);
  });

  it("round-trips full and delta frames and applies deltas in place", () => {
    const values = Uint8Array.from([0, 1, 1, 2, 0, 0, 3, 1]);
    const full = decodePageFrame(encodePageFrame({ kind: FULL, numPages: 8, frameId: 4, seq: 11, values }));
    let { pages, changed } = applyPageFrame(null, -1, full);
    expect(changed).toBeNull();
    expect([...pages]).toEqual([...values]);
    const delta = decodePageFrame(encodePageFrame({
      kind: DELTA, numPages: 8, frameId: 5, baseId: 4, seq: 12,
      starts: [1, 6], lengths: [2, 2], values: Uint8Array.from([0, 0, 1, 1]),
    }));
    expect(delta.nRuns).toBe(2);
    ({ pages, changed } = applyPageFrame(pages, 4, delta));
    expect([...pages]).toEqual([0, 0, 0, 2, 0, 0, 1, 1]);
    expect(changed).toEqual([[1, 3], [6, 8]]);
  });

  it("refuses a delta against the wrong base frame", () => {
    const pages = new Uint8Array(4);
    const delta = decodePageFrame(encodePageFrame({
      kind: DELTA, numPages: 4, frameId: 9, baseId: 8, starts: [0], lengths: [1], values: Uint8Array.of(1),
    }));
    expect(() => applyPageFrame(pages, 7, delta)).toThrow(/cannot apply/);
    expect([...pages]).toEqual([0, 0, 0, 0]);
  });

  it("reads frames that start at an odd offset of a larger buffer (as comm buffers may)", () => {
    const frame = encodePageFrame({
      kind: DELTA, numPages: 100, frameId: 2, baseId: 1, starts: [97], lengths: [3], values: Uint8Array.of(1, 2, 3),
    });
    const host = new Uint8Array(frame.length + 3);
    host.set(frame, 3);
    const f = decodePageFrame(new DataView(host.buffer, 3, frame.length));
    expect([...f.starts]).toEqual([97]);
    expect([...f.values]).toEqual([1, 2, 3]);
  });

  it("rejects truncated, mislabelled and out-of-range frames", () => {
    const ok = encodePageFrame({ kind: FULL, numPages: 4, frameId: 1, values: new Uint8Array(4) });
    expect(() => decodePageFrame(ok.subarray(0, HEADER_BYTES + 2))).toThrow(/wrong length/);
    const bad = ok.slice();
    bad[0] = 0x58;
    expect(() => decodePageFrame(bad)).toThrow(/not a PGF1/);
    const outside = encodePageFrame({
      kind: DELTA, numPages: 4, frameId: 2, baseId: 1, starts: [3], lengths: [2], values: Uint8Array.of(1, 1),
    });
    expect(() => decodePageFrame(outside)).toThrow(/outside/);
  });
});

function heatBytes(kind, buckets, times, marks, values) {
  const n = times.length;
  const out = new Uint8Array(16 + 8 * n + n + values.length);
  const dv = new DataView(out.buffer);
  out.set([0x48, 0x4d, 0x50, 0x31]);
  dv.setUint8(4, kind);
  dv.setUint16(6, buckets, true);
  dv.setUint32(8, n, true);
  times.forEach((t, i) => dv.setFloat64(16 + 8 * i, t, true));
  out.set(marks, 16 + 8 * n);
  out.set(values, 16 + 9 * n);
  return out;
}

describe("heatmap and trace frames", () => {
  it("decodes heatmap columns column-major", () => {
    const f = decodeHeatFrame(heatBytes(1, 3, [0.5, 1.5], [1, 0], [0, 128, 255, 10, 20, 30]));
    expect(f).toMatchObject({ kind: 1, buckets: 3, nCols: 2 });
    expect([...f.time]).toEqual([0.5, 1.5]);
    expect([...f.marks]).toEqual([1, 0]);
    expect([...f.values.subarray(3, 6)]).toEqual([10, 20, 30]);
    expect(() => decodeHeatFrame(heatBytes(1, 3, [0.5], [0], [1, 2]))).toThrow(/wrong length/);
  });

  it("decodes a trace window with its events after the 8-byte pad", () => {
    const n = 3;
    const m = 2;
    let size = 16 + 8 * n + 12 * n;
    const pad = (8 - (size % 8)) % 8;
    size += pad + 9 * m;
    const out = new Uint8Array(size);
    const dv = new DataView(out.buffer);
    out.set([0x4c, 0x54, 0x52, 0x31]);
    dv.setUint32(4, n, true);
    dv.setUint32(8, m, true);
    let at = 16;
    [0, 1, 2].forEach((t) => { dv.setFloat64(at, t, true); at += 8; });
    for (const col of [[1e-3, 2e-3, 3e-3], [1e-6, NaN, 2e-6], [NaN, NaN, 5e-4]]) {
      col.forEach((v) => { dv.setFloat32(at, v, true); at += 4; });
    }
    at += pad;
    [1.5, 2].forEach((t) => { dv.setFloat64(at, t, true); at += 8; });
    out.set([5, 2], at);
    const f = decodeTraceFrame(out);
    expect([...f.time]).toEqual([0, 1, 2]);
    expect(f.step[1]).toBeCloseTo(2e-3);
    expect(Number.isNaN(f.alloc[1])).toBe(true);
    expect(f.pause[2]).toBeCloseTo(5e-4);
    expect([...f.eventTime]).toEqual([1.5, 2]);
    expect([...f.eventKind]).toEqual([5, 2]);
  });
});

// The append frame the Python encoder writes (tests/widget/test_frames.py checks the same bytes):
// after a window of points at t = 1, 2, 3 (event: compaction at 3), the window t = 2..5 adds
// points at 4 and 5 and a failure at 5, keeping 4 points and 2 events.
const PY_APPEND = [
  76, 84, 82, 49, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 16, 64, 0, 0, 0, 0, 0, 0, 20, 64,  // time 4, 5
  0, 0, 0, 63, 0, 0, 128, 62,                          // step 0.5, 0.25
  0, 0, 192, 127, 0, 0, 0, 62,                          // alloc NaN, 0.125
  0, 0, 192, 127, 0, 0, 192, 127,                       // pause NaN, NaN
  0, 0, 0, 0, 0, 0, 20, 64, 2,                          // event at 5: failure
];

function traceWindow(time, step, alloc, pause, eventTime, eventKind) {
  return {
    kind: TRACE_FULL, keepPoints: 0, keepEvents: 0, time: Float64Array.from(time), step: Float32Array.from(step),
    alloc: Float32Array.from(alloc), pause: Float32Array.from(pause), eventTime: Float64Array.from(eventTime),
    eventKind: Uint8Array.from(eventKind),
  };
}

describe("trace append frames", () => {
  it("decodes the Python append frame and applies it to the window it follows", () => {
    const f = decodeTraceFrame(new Uint8Array(PY_APPEND));
    expect(f).toMatchObject({ kind: TRACE_APPEND, keepPoints: 4, keepEvents: 2 });
    expect([...f.time]).toEqual([4, 5]);
    const old = traceWindow([1, 2, 3], [1e-3, 2e-3, 3e-3], [NaN, 5e-6, NaN], [NaN, NaN, 4e-4], [3], [5]);
    const w = applyTraceFrame(old, f);
    expect([...w.time]).toEqual([2, 3, 4, 5]);
    expect([...w.step]).toEqual([...Float32Array.of(2e-3, 3e-3, 0.5, 0.25)]);
    expect(w.alloc[0]).toBeCloseTo(5e-6);
    expect(Number.isNaN(w.alloc[2])).toBe(true);
    expect(w.alloc[3]).toBe(0.125);
    expect(w.pause[1]).toBeCloseTo(4e-4);
    expect([...w.eventTime]).toEqual([3, 5]);
    expect([...w.eventKind]).toEqual([5, 2]);
    expect(old.time.length).toBe(3);  // the old window is left as it was
  });

  it("keeps only the newest points when an append brings more than the window holds", () => {
    const old = traceWindow([1, 2], [1, 2], [1, 2], [1, 2], [1], [5]);
    const more = { ...traceWindow([3, 4, 5], [3, 4, 5], [3, 4, 5], [3, 4, 5], [], []), kind: TRACE_APPEND,
      keepPoints: 3, keepEvents: 0 };
    const w = applyTraceFrame(old, more);
    expect([...w.time]).toEqual([3, 4, 5]);
    expect(w.eventTime.length).toBe(0);
  });

  it("refuses an append with nothing to append to, or keeping more than there is", () => {
    const f = decodeTraceFrame(new Uint8Array(PY_APPEND));
    expect(() => applyTraceFrame(null, f)).toThrow(/needs the window/);
    const old = traceWindow([3], [1], [1], [1], [], []);
    expect(() => applyTraceFrame(old, f)).toThrow(/keeps more/);
    const full = traceWindow([1], [1], [1], [1], [], []);
    expect(applyTraceFrame(old, full)).toBe(full);
    const bad = new Uint8Array(PY_APPEND);
    bad[12] = 7;
    expect(() => decodeTraceFrame(bad)).toThrow(/unknown trace frame kind/);
    expect(() => decodeTraceFrame(new Uint8Array(PY_APPEND).subarray(0, 70))).toThrow();
  });
});
