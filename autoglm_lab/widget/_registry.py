"""The registrations of the widget: the dashboard's views, and the constants the front end shares
with Python, written into ``js/src/constants.js`` from the Python registries they come from.

```
.venv/bin/python -m autoglm_lab.widget._registry     # rewrite js/src/constants.js, then rebuild js/
```

``tests/widget/test_registry.py`` fails while the file lags behind Python.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..pool import COMPACT_REASONS, EventKind, PageState
from . import _codec, _heatmap, _trace
from ._heatmap import METRICS, HeatmapView
from ._pagemap import PageMapView
from ._palette import COLOR_MODES
from ._serving import ServingView
from ._stats import StatsView
from ._trace import TraceView
from ._view import View

__all__ = ["VIEWS", "VIEW_MODULES", "JS_CONSTANTS", "js_constants", "write_js_constants"]

# The dashboard's views, in drawing order: the first canvas view's comm carries the others' frames.
VIEWS: tuple[type[View], ...] = (PageMapView, StatsView, ServingView, HeatmapView, TraceView)
# the front-end modules esbuild bundles (js/build.mjs reads VIEW_MODULES from constants.js)
VIEW_MODULES = tuple(v.module for v in VIEWS if v.module is not None)

JS_CONSTANTS = Path(__file__).resolve().parents[2] / "js" / "src" / "constants.js"


def _constants() -> dict[str, object]:
    c = _codec
    return {
        "COLOR_MODES": list(COLOR_MODES),
        "HEAT_METRICS": list(METRICS),
        "HEAT_MARK": {"COMPACT": _heatmap.MARK_COMPACT, "FAIL": _heatmap.MARK_FAIL,
                      "REASON_SHIFT": _heatmap.MARK_REASON_SHIFT},
        "EVENT_CODE": {"KIND_MASK": (1 << _trace.EVENT_REASON_SHIFT) - 1, "REASON_SHIFT": _trace.EVENT_REASON_SHIFT},
        "PAGE_STATE": {s.name: int(s) for s in PageState},
        "EVENT_KIND": {k.name: int(k) for k in EventKind},
        "COMPACT_REASONS": list(COMPACT_REASONS),
        "WIRE": {"PAGE_MAGIC": c.PAGE_MAGIC.decode(), "HEAT_MAGIC": c.HEAT_MAGIC.decode(),
                 "TRACE_MAGIC": c.TRACE_MAGIC.decode(), "HEADER_BYTES": c.HEADER_BYTES, "FULL": c.FULL,
                 "DELTA": c.DELTA, "HEAT_FULL": c.HEAT_FULL, "HEAT_APPEND": c.HEAT_APPEND,
                 "TRACE_FULL": c.TRACE_FULL, "TRACE_APPEND": c.TRACE_APPEND},
        "VIEW_MODULES": list(VIEW_MODULES),
    }


def js_constants() -> str:
    """The text of ``js/src/constants.js``."""
    lines = ["// Generated from the Python registries by `python -m autoglm_lab.widget._registry`: do not edit.",
             "// (tests/widget/test_registry.py fails when this file lags behind them.)", ""]
    lines += [f"export const {name} = Object.freeze({json.dumps(value)});" for name, value in _constants().items()]
    return "\n".join(lines) + "\n"


def write_js_constants(path: Path = JS_CONSTANTS) -> bool:
    """Write `js_constants()` to ``path``; True when the file changed."""
    text = js_constants()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


if __name__ == "__main__":
    write_js_constants(Path(sys.argv[1]) if len(sys.argv) > 1 else JS_CONSTANTS)
