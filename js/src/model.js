// A thin wrapper over the anywidget model: typed custom messages in and out, binary buffers,
// and rate limits for what the view sends back (hover is throttled, nothing floods the kernel).

import { toBytes } from "./codec.js";

/**
 * Subscribe to custom messages of one `type` (for one `key`: a view riding another view's comm,
 * null: the model's own frames); handler(content, buffers as Uint8Array[]). Batches
 * ({type: "batch", parts: [[type, key], ...]} with one buffer per part) are unpacked in order.
 * Returns the unsubscribe function (called by the view's cleanup).
 */
export function onMessage(model, type, handler, key = null) {
  const listener = (content, buffers) => {
    if (!content) return;
    const bufs = buffers || [];
    if (content.type === "batch" && Array.isArray(content.parts)) {
      content.parts.forEach((part, i) => {
        if (Array.isArray(part) && part[0] === type && (part[1] ?? null) === key && i < bufs.length) {
          handler({ type, key }, [toBytes(bufs[i])]);
        }
      });
      return;
    }
    if (content.type !== type || (content.key ?? null) !== key) return;
    handler(content, bufs.map(toBytes));
  };
  model.on("msg:custom", listener);
  return () => model.off("msg:custom", listener);
}

/** The model a widget reference ("anywidget:<model id>") names: through anywidget's `host` where
 * the front end has it (anywidget >= 0.10), else the widget manager. */
export async function resolveModel(model, host, ref) {
  if (host && typeof host.getModel === "function") return host.getModel(ref);
  const id = String(ref).replace(/^anywidget:/, "");
  return model.widget_manager.get_model(id);
}

/**
 * Frames of one `type` for a view: on its own model, or, when its `bus` trait is [carrier ref, key],
 * on the carrier's model under `key` (the dashboard sends all its views' frames on one comm).
 * `ready()` runs once listening (the view asks for a full frame then, so the answer is not missed),
 * and again whenever `bus` changes. Returns the unsubscribe function.
 */
export function onFrames(model, type, handler, { host = null, ready = () => {} } = {}) {
  let off = () => {};
  let generation = 0;
  const attach = () => {
    off();
    off = () => {};
    const mine = ++generation;
    const bus = model.get("bus") || [];
    if (bus.length < 2) {
      off = onMessage(model, type, handler);
      ready();
      return;
    }
    resolveModel(model, host, bus[0]).then((carrier) => {
      if (mine !== generation) return;
      off = onMessage(carrier, type, handler, bus[1]);
      ready();
    }).catch((err) => {
      console.warn(`autoglm_lab: cannot reach the comm of ${bus[0]}; no ${type} frames`, err);
    });
  };
  const offBus = onChange(model, ["bus"], attach);
  attach();
  return () => {
    generation++;
    off();
    offBus();
  };
}

/** Subscribe to trait changes; returns the unsubscribe function. */
export function onChange(model, names, handler) {
  const events = names.map((n) => `change:${n}`);
  for (const e of events) model.on(e, handler);
  return () => {
    for (const e of events) model.off(e, handler);
  };
}

/** Send an action to the kernel: {action, ...fields}. The kernel validates every field. */
export function sendAction(model, action, fields = {}) {
  model.send({ action, ...fields });
}

/** At most one call per `ms`; the last call in a burst always goes through (trailing edge). */
export function throttle(fn, ms, now = () => Date.now(), schedule = setTimeout, cancel = clearTimeout) {
  let last = -Infinity;
  let timer = null;
  let pending = null;
  const run = () => {
    timer = null;
    last = now();
    const args = pending;
    pending = null;
    fn(...args);
  };
  const throttled = (...args) => {
    pending = args;
    const wait = last + ms - now();
    if (wait <= 0 && timer === null) run();
    else if (timer === null) timer = schedule(run, Math.max(0, wait));
  };
  throttled.cancel = () => {
    if (timer !== null) cancel(timer);
    timer = null;
    pending = null;
  };
  return throttled;
}
