import { describe, expect, it } from "vitest";
import { onFrames, onMessage } from "./model.js";

function fakeModel(attrs = {}) {
  const handlers = {};
  const sent = [];
  return {
    get: (k) => attrs[k],
    set: (k, v) => { attrs[k] = v; },
    on: (evt, fn) => { (handlers[evt] ||= []).push(fn); },
    off: (evt, fn) => { handlers[evt] = (handlers[evt] || []).filter((h) => h !== fn); },
    send: (content) => sent.push(content),
    emit: (evt, ...args) => { for (const h of handlers[evt] || []) h(...args); },
    count: (evt) => (handlers[evt] || []).length,
    sent,
  };
}

const bytes = (...v) => Uint8Array.from(v);

describe("messages", () => {
  it("onMessage unpacks batches in order and filters by type and key", () => {
    const m = fakeModel();
    const got = [];
    onMessage(m, "frame", (c, [b]) => got.push(["frame", c.type, [...b]]));
    onMessage(m, "heat", (c, [b]) => got.push(["heat", c.key ?? null, [...b]]), "h1");
    m.emit("msg:custom", { type: "batch", parts: [["frame", null], ["heat", "h1"], ["heat", "h2"], ["trace", "t"]] },
      [bytes(1), new DataView(bytes(2).buffer), bytes(3), bytes(4)]);
    m.emit("msg:custom", { type: "heat", key: "h1" }, [bytes(5)]);
    m.emit("msg:custom", { type: "heat" }, [bytes(6)]);  // the model's own heat frames: not for key h1
    m.emit("msg:custom", { type: "frame" }, [bytes(7)]);
    expect(got).toEqual([["frame", "frame", [1]], ["heat", "h1", [2]], ["heat", "h1", [5]], ["frame", "frame", [7]]]);
  });

  it("onFrames listens on the carrier's model when the view rides one, and asks only once listening", async () => {
    const carrier = fakeModel();
    const view = fakeModel({ bus: ["anywidget:abc", "k1"] });
    const asked = [];
    view.widget_manager = { get_model: async (id) => { asked.push(id); return carrier; } };
    const got = [];
    let ready = 0;
    const off = onFrames(view, "trace", (_c, [b]) => got.push(b[0]), { ready: () => { ready += 1; } });
    expect(ready).toBe(0);  // not before the carrier is found: the answer would be missed
    await new Promise((r) => setTimeout(r, 0));
    expect(asked).toEqual(["abc"]);
    expect(ready).toBe(1);
    carrier.emit("msg:custom", { type: "batch", parts: [["frame", null], ["trace", "k1"]] }, [bytes(1), bytes(9)]);
    view.emit("msg:custom", { type: "trace" }, [bytes(8)]);  // own comm: not where this view's frames come
    expect(got).toEqual([9]);
    off();
    expect(carrier.count("msg:custom")).toBe(0);
  });

  it("onFrames uses anywidget's host when there is one, and the view's own model without a bus", async () => {
    const carrier = fakeModel();
    const host = { getModel: async (ref) => (ref === "anywidget:abc" ? carrier : null) };
    const view = fakeModel({ bus: ["anywidget:abc", "k"] });
    let ready = 0;
    onFrames(view, "heat", () => {}, { host, ready: () => { ready += 1; } });
    await new Promise((r) => setTimeout(r, 0));
    expect(ready).toBe(1);
    expect(carrier.count("msg:custom")).toBe(1);
    const plain = fakeModel({ bus: [] });
    const got = [];
    onFrames(plain, "heat", (_c, [b]) => got.push(b[0]), { ready: () => { ready += 1; } });
    expect(ready).toBe(2);  // at once
    plain.emit("msg:custom", { type: "heat" }, [bytes(3)]);
    expect(got).toEqual([3]);
  });
});
