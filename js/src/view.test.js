import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { COLOR_MODES, EVENT_KIND, WIRE } from "./constants.js";
import { DELTA, FULL, HEADER_BYTES, PAGE_MAGIC } from "./codec.js";
import { defineView, mount } from "./view.js";

// just enough DOM for mount(): elements with children, listeners and remove()
function fakeDocument() {
  const make = (tag) => {
    const node = {
      tagName: tag, className: "", children: [], parent: null, listeners: {},
      appendChild(child) { child.parent = node; node.children.push(child); return child; },
      remove() { if (node.parent) node.parent.children = node.parent.children.filter((c) => c !== node); },
      addEventListener(type, fn) { (node.listeners[type] ||= []).push(fn); },
      removeEventListener(type, fn) { node.listeners[type] = (node.listeners[type] || []).filter((f) => f !== fn); },
    };
    return node;
  };
  return { createElement: make };
}

describe("view mount helper", () => {
  let saved;
  beforeEach(() => { saved = globalThis.document; globalThis.document = fakeDocument(); });
  afterEach(() => { globalThis.document = saved; });

  it("mounts a root, undoes what it owns newest first, and unmounts once", () => {
    const host = document.createElement("div");
    const view = mount(host, "agl-x");
    expect(host.children).toEqual([view.root]);
    expect(view.root.className).toBe("agl-x");
    const order = [];
    view.own(() => order.push("a"), () => order.push("b"));
    const target = document.createElement("canvas");
    view.listen(target, "click", () => {});
    view.own(() => order.push("c"));
    expect(target.listeners.click.length).toBe(1);
    view.unmount();
    view.unmount();
    expect(order).toEqual(["c", "b", "a"]);
    expect(target.listeners.click.length).toBe(0);
    expect(host.children).toEqual([]);
  });

  it("defineView's render returns the cleanup, and a failing setup leaves nothing behind", () => {
    const el = document.createElement("div");
    let off = 0;
    const render = defineView("agl-y", (view, { model }) => {
      expect(model).toBe("m");
      view.own(() => { off += 1; });
    });
    const cleanup = render({ model: "m", el });
    expect(el.children.length).toBe(1);
    cleanup();
    expect(off).toBe(1);
    expect(el.children.length).toBe(0);
    const broken = defineView("agl-z", (view) => { view.own(() => { off += 1; }); throw new Error("boom"); });
    expect(() => broken({ model: null, el })).toThrow("boom");
    expect(off).toBe(2);
    expect(el.children.length).toBe(0);
  });
});

describe("generated constants", () => {
  it("are the codec's and stay frozen", () => {
    expect([FULL, DELTA, HEADER_BYTES, PAGE_MAGIC]).toEqual([WIRE.FULL, WIRE.DELTA, WIRE.HEADER_BYTES, WIRE.PAGE_MAGIC]);
    expect(COLOR_MODES).toEqual(["state", "tag", "age"]);
    expect(EVENT_KIND.COMPACT).not.toBe(EVENT_KIND.FAIL);
    expect(Object.isFrozen(EVENT_KIND)).toBe(true);
  });
});
