// Binary wire format shared with autoglm_lab/widget/_codec.py (little-endian, version 1).
//
//   page frame  "PGF1"                     heatmap  "HMP1"              trace  "LTR1"
//   0  magic u8[4]                          0 magic                       0 magic
//   4  kind u8 (0 full, 1 delta)            4 kind u8 (0 full, 1 append)  4 n_points u32
//   5  colour mode u8 (COLOR_MODES)         5 metric u8 (HEAT_METRICS)    8 n_events u32
//   6  reserved u16                         6 buckets u16                 12 kind u32 (0 full, 1 append)
//   8  num_pages u32                        8 n_cols u32                  append only:
//   12 frame_id u32                         12 reserved u32               16 keep_points u32
//   16 base_id u32 (delta applies to it)    16 time_s f64[n_cols]         20 keep_events u32
//   20 n_runs u32                              marks u8[n_cols]           16 (full) / 24 (append):
//   24 seq f64 (pool mutation counter)         values u8[n_cols*buckets]     time_s f64[n]
//   32 full : palette index u8[num_pages]      (column-major)                step_s, alloc_s, pause_s f32[n]
//      delta: start u32[n], length u32[n],                                   (pad to 8 from the start)
//             values u8[sum(length)]                                         event_t f64[m], event_kind u8[m]
//
// A trace append frame holds the points and events new since the last frame; the view keeps the
// last keep_points points and keep_events events of what it had and these (the window after it).
//
// Received buffers may start at any byte offset, so multi-byte columns are copied out with
// `slice` (a few KB) while the big u8 page column is used in place.

import { WIRE } from "./constants.js";

// the numbers of the format come from Python (_codec.py, through constants.js)
export const { PAGE_MAGIC, HEAT_MAGIC, TRACE_MAGIC, FULL, DELTA, TRACE_FULL, TRACE_APPEND, HEADER_BYTES } = WIRE;

/** A Uint8Array over whatever arrived: ArrayBuffer, DataView or typed array. */
export function toBytes(buf) {
  if (buf instanceof Uint8Array) return buf;
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  throw new TypeError("expected binary data (ArrayBuffer, DataView or typed array)");
}

function magicOf(bytes) {
  return String.fromCharCode(bytes[0], bytes[1], bytes[2], bytes[3]);
}

function view(bytes) {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function typedCopy(bytes, offset, count, Type) {
  const start = bytes.byteOffset + offset;
  const end = start + count * Type.BYTES_PER_ELEMENT;
  if (offset + count * Type.BYTES_PER_ELEMENT > bytes.byteLength) throw new RangeError("frame is truncated");
  return new Type(bytes.buffer.slice(start, end));
}

function expectMagic(bytes, magic) {
  if (bytes.byteLength < 16 || magicOf(bytes) !== magic) {
    throw new Error(`not a ${magic} frame`);
  }
}

/** Decode a page frame into {kind, mode, numPages, frameId, baseId, seq, values | starts, lengths, values}. */
export function decodePageFrame(buf) {
  const bytes = toBytes(buf);
  expectMagic(bytes, PAGE_MAGIC);
  const dv = view(bytes);
  const frame = {
    kind: dv.getUint8(4),
    mode: dv.getUint8(5),
    numPages: dv.getUint32(8, true),
    frameId: dv.getUint32(12, true),
    baseId: dv.getUint32(16, true),
    nRuns: dv.getUint32(20, true),
    seq: dv.getFloat64(24, true),
  };
  if (frame.kind === FULL) {
    if (bytes.byteLength !== HEADER_BYTES + frame.numPages) throw new RangeError("full frame has the wrong length");
    frame.values = bytes.subarray(HEADER_BYTES);
  } else if (frame.kind === DELTA) {
    const n = frame.nRuns;
    frame.starts = typedCopy(bytes, HEADER_BYTES, n, Uint32Array);
    frame.lengths = typedCopy(bytes, HEADER_BYTES + 4 * n, n, Uint32Array);
    frame.values = bytes.subarray(HEADER_BYTES + 8 * n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      if (frame.starts[i] + frame.lengths[i] > frame.numPages) throw new RangeError("delta run outside the pool");
      total += frame.lengths[i];
    }
    if (total !== frame.values.length) throw new RangeError("delta values do not match its runs");
  } else {
    throw new Error(`unknown page frame kind ${frame.kind}`);
  }
  return frame;
}

/**
 * Apply a decoded frame to `pages` (the palette index of every page, or null).
 * Returns {pages, changed: [[start, end), ...] | null (everything)}; throws when a delta does not
 * fit (wrong base or size) so the caller can ask for a full frame.
 */
export function applyPageFrame(pages, currentId, frame) {
  if (frame.kind === FULL) {
    const next = pages && pages.length === frame.numPages ? pages : new Uint8Array(frame.numPages);
    next.set(frame.values);
    return { pages: next, changed: null };
  }
  if (!pages || pages.length !== frame.numPages || currentId !== frame.baseId) {
    throw new Error(`delta for frame ${frame.baseId} cannot apply to frame ${currentId}`);
  }
  const changed = [];
  let at = 0;
  for (let i = 0; i < frame.nRuns; i++) {
    const s = frame.starts[i];
    const len = frame.lengths[i];
    pages.set(frame.values.subarray(at, at + len), s);
    at += len;
    changed.push([s, s + len]);
  }
  return { pages, changed };
}

/** Encode a page frame (mirror of the Python encoder; used by tests and the render benchmark). */
export function encodePageFrame({ kind, mode = 0, numPages, frameId, baseId = 0, seq = 0, values, starts, lengths }) {
  const nRuns = kind === FULL ? 0 : starts.length;
  const body = kind === FULL ? numPages : 8 * nRuns + values.length;
  const out = new Uint8Array(HEADER_BYTES + body);
  const dv = view(out);
  for (let i = 0; i < 4; i++) out[i] = PAGE_MAGIC.charCodeAt(i);
  dv.setUint8(4, kind);
  dv.setUint8(5, mode);
  dv.setUint32(8, numPages, true);
  dv.setUint32(12, frameId, true);
  dv.setUint32(16, baseId, true);
  dv.setUint32(20, nRuns, true);
  dv.setFloat64(24, seq, true);
  if (kind === FULL) {
    out.set(values, HEADER_BYTES);
  } else {
    for (let i = 0; i < nRuns; i++) {
      dv.setUint32(HEADER_BYTES + 4 * i, starts[i], true);
      dv.setUint32(HEADER_BYTES + 4 * (nRuns + i), lengths[i], true);
    }
    out.set(values, HEADER_BYTES + 8 * nRuns);
  }
  return out;
}

/** Decode a heatmap frame: {kind, metric, buckets, nCols, time, marks, values (column-major)}. */
export function decodeHeatFrame(buf) {
  const bytes = toBytes(buf);
  expectMagic(bytes, HEAT_MAGIC);
  const dv = view(bytes);
  const kind = dv.getUint8(4);
  const metric = dv.getUint8(5);
  const buckets = dv.getUint16(6, true);
  const nCols = dv.getUint32(8, true);
  const time = typedCopy(bytes, 16, nCols, Float64Array);
  const marksAt = 16 + 8 * nCols;
  const valuesAt = marksAt + nCols;
  if (bytes.byteLength !== valuesAt + nCols * buckets) throw new RangeError("heatmap frame has the wrong length");
  return {
    kind, metric, buckets, nCols, time,
    marks: bytes.slice(marksAt, valuesAt),
    values: bytes.slice(valuesAt),
  };
}

/** Decode a latency-trace frame: {kind, keepPoints, keepEvents, time, step, alloc, pause, eventTime, eventKind}
 * (keepPoints / keepEvents: what an append frame leaves in the window; 0 in a full frame). */
export function decodeTraceFrame(buf) {
  const bytes = toBytes(buf);
  expectMagic(bytes, TRACE_MAGIC);
  const dv = view(bytes);
  const n = dv.getUint32(4, true);
  const m = dv.getUint32(8, true);
  const kind = dv.getUint32(12, true);
  if (kind !== TRACE_FULL && kind !== TRACE_APPEND) throw new Error(`unknown trace frame kind ${kind}`);
  let at = 16;
  let keepPoints = 0;
  let keepEvents = 0;
  if (kind === TRACE_APPEND) {
    if (bytes.byteLength < 24) throw new RangeError("frame is truncated");
    keepPoints = dv.getUint32(16, true);
    keepEvents = dv.getUint32(20, true);
    at = 24;
  }
  const time = typedCopy(bytes, at, n, Float64Array); at += 8 * n;
  const step = typedCopy(bytes, at, n, Float32Array); at += 4 * n;
  const alloc = typedCopy(bytes, at, n, Float32Array); at += 4 * n;
  const pause = typedCopy(bytes, at, n, Float32Array); at += 4 * n;
  at += (8 - (at % 8)) % 8;
  const eventTime = typedCopy(bytes, at, m, Float64Array); at += 8 * m;
  const eventKind = bytes.slice(at, at + m);
  if (at + m !== bytes.byteLength) throw new RangeError("trace frame has the wrong length");
  return { kind, keepPoints, keepEvents, time, step, alloc, pause, eventTime, eventKind };
}

function tail(Type, a, b, keep) {
  const start = Math.max(0, a.length + b.length - keep);
  const out = new Type(a.length + b.length - start);
  if (start < a.length) out.set(a.subarray(start));
  out.set(start > a.length ? b.subarray(start - a.length) : b, Math.max(0, a.length - start));
  return out;
}

/**
 * The trace window after `frame`: a full frame is the window; an append frame adds its points and
 * events to `window`'s and keeps the last keepPoints / keepEvents. Throws on an append to nothing
 * (the view asks for a full frame then).
 */
export function applyTraceFrame(window, frame) {
  if (frame.kind === TRACE_FULL) return frame;
  if (!window) throw new Error("an append frame needs the window it follows");
  if (frame.keepPoints > window.time.length + frame.time.length
      || frame.keepEvents > window.eventTime.length + frame.eventTime.length) {
    throw new RangeError("append frame keeps more than there is");
  }
  const p = frame.keepPoints;
  const e = frame.keepEvents;
  return {
    kind: TRACE_FULL, keepPoints: 0, keepEvents: 0,
    time: tail(Float64Array, window.time, frame.time, p),
    step: tail(Float32Array, window.step, frame.step, p),
    alloc: tail(Float32Array, window.alloc, frame.alloc, p),
    pause: tail(Float32Array, window.pause, frame.pause, p),
    eventTime: tail(Float64Array, window.eventTime, frame.eventTime, e),
    eventKind: tail(Uint8Array, window.eventKind, frame.eventKind, e),
  };
}
