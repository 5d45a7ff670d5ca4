"""The bundled front end: ES modules built from ``js/`` into ``static/`` at install time."""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["STATIC", "esm"]

log = logging.getLogger("autoglm_lab.widget")
STATIC = Path(__file__).with_name("static")

_MISSING = """
export default { render({ el }) {
  el.innerHTML = '<div style="color:#b91c1c;font:13px system-ui">autoglm_lab: the front-end bundle %s is not '
    + 'built. Run <code>scripts/setup.sh</code> '
    + '(or <code>npm --prefix js ci && npm --prefix js run build</code>).</div>';
} };
"""


def esm(name: str) -> str:
    """The ES module of one view (``pagemap``, ``heatmap``, ``trace``) as source text."""
    path = STATIC / f"{name}.js"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.warning("front-end bundle %s is missing; run scripts/setup.sh to build js/", path)
        return _MISSING % name
