// A thin wrapper over the anywidget model: typed custom messages in and out, binary buffers,
// and rate limits for what the view sends back (hover is throttled, nothing floods the kernel).

import { toBytes } from "./codec.js";

/**
 * Subscribe to custom messages of one `type`; handler(content, buffers as Uint8Array[]).
 * Returns the unsubscribe function (called by the view's cleanup).
 */
export function onMessage(model, type, handler) {
  const listener = (content, buffers) => {
    if (!content || content.type !== type) return;
    handler(content, (buffers || []).map(toBytes));
  };
  model.on("msg:custom", listener);
  return () => model.off("msg:custom", listener);
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
