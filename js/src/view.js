// What every view shares: a root element in anywidget's `el`, the things to undo when the view goes,
// and the cleanup anywidget calls (`render` returns it). A view module is
//
//   const render = defineView("agl-name", (view, { model, host }) => { ...; view.own(off); });
//   export default { render };
//
// (no named `render` export: anywidget warns that the direct export will be deprecated)

/** A child element `<tag class=cls>` of `parent` (when given). */
export function el(tag, cls, parent) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (parent) parent.appendChild(node);
  return node;
}

/**
 * Mount a view in `host`: a root `<div class=className>`. `own(off, ...)` registers undo functions,
 * `listen(target, type, fn)` an event listener removed on unmount; `unmount()` (idempotent) runs the
 * undo functions, newest first, and removes the root.
 */
export function mount(host, className) {
  const root = el("div", className, host);
  const undo = [];
  let mounted = true;
  const view = {
    root,
    own(...offs) {
      undo.push(...offs);
    },
    listen(target, type, fn) {
      target.addEventListener(type, fn);
      undo.push(() => target.removeEventListener(type, fn));
    },
    unmount() {
      if (!mounted) return;
      mounted = false;
      while (undo.length) undo.pop()();
      root.remove();
    },
  };
  return view;
}

/** anywidget's `render` for a view: mount, let `setup(view, props)` build it, return the cleanup. */
export function defineView(className, setup) {
  return function render(props) {
    const view = mount(props.el, className);
    try {
      setup(view, props);
    } catch (err) {
      view.unmount();
      throw err;
    }
    return view.unmount;
  };
}
