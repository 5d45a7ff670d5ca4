"""The one shape every dashboard view has, and what it is handed each frame.

```
Dashboard ──ViewContext──▶ view.update(ctx)   for view in dashboard.views (registration order)
          ──────────────▶ view.reset()       Reset button, pool rebuilt: forget history
   (scrubbing: view.update(ctx) with ctx.past = a recorded frame; views over time rebuild from it)
          ──────────────▶ view.close()       dashboard closed
```

A view wraps one widget (``view.widget``, placed in row ``view.row`` of the layout, stacked with the
views of the same ``view.column``) and reads only the
context: a `PoolSnapshot`, the simulator's records, the clock. The registration is
`_registry.VIEWS`; "How to add a view" in CONTRIBUTING.md lists the files it takes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import ipywidgets as w

if TYPE_CHECKING:
    import numpy as np

    from ..history import SnapshotHistory
    from ..pool import PagedPool, PoolSnapshot

__all__ = ["SimRecords", "CompactionInfo", "ViewContext", "PastFrame", "ViewSetup", "View", "DashboardView", "SIDE_PX",
           "chart_layout"]

SIDE_PX = 290  # width of the column right of the page map (the stats panel)
CHART_MIN_PX = 380  # narrower than this, the two charts of row 1 stack


def chart_layout(basis_px: int = CHART_MIN_PX) -> w.Layout:
    """A canvas view's box in a dashboard row: it shares the row's width (the front end draws at the
    width it is given), and wraps to a row of its own below ``basis_px``."""
    import ipywidgets as w

    return w.Layout(flex=f"1 1 {basis_px}px", min_width="0", overflow="hidden")


class SimRecords(Protocol):
    """What views read from a simulator (`autoglm_lab.workload.ServingSim` has it)."""

    @property
    def steps(self) -> int: ...

    @property
    def clock(self) -> float: ...

    @property
    def totals(self) -> Mapping[str, float]: ...

    def recent_steps(self, n: int | None = ..., keys: tuple[str, ...] = ...) -> dict[str, np.ndarray]: ...

    def summary(self) -> dict[str, Any]: ...


class CompactionInfo(Protocol):
    """What views read from a `CompactionReport` (``executor`` is read with a default)."""

    @property
    def pages_moved(self) -> int: ...

    @property
    def pause_s(self) -> float: ...


@dataclass(frozen=True)
class ViewContext:
    """One frame's input to every view."""

    snapshot: PoolSnapshot
    time_s: float                          # the simulator's clock, else the snapshot's time
    sim: SimRecords | None = None          # None: a plain pool
    report: CompactionInfo | None = None   # the last compaction the dashboard ran ("Compact now")
    selected: dict[str, Any] | None = None  # the page map's selected block, as found in `snapshot`
    fresh: bool = True                     # a new snapshot; False: the last one again (selection, pause)
    text: bool = True                      # refresh text now (the live loop: 5 times a second)
    summary: Mapping[str, Any] | None = None  # the simulator's summary at this moment (None: no simulator)
    past: PastFrame | None = None          # a recorded frame shown while scrubbing (None: the present)
    record: bool = True                    # this frame goes into the history (the live loop: 10 a second);
                                           # the heatmap adds a column only then, so scrubbing redraws it as it was


@dataclass(frozen=True)
class PastFrame:
    """Frame ``index`` of ``history``: views that draw over time rebuild their window from it."""

    history: SnapshotHistory
    index: int


@dataclass(frozen=True)
class ViewSetup:
    """What a view is built from."""

    pool: PagedPool
    width_px: int                 # the dashboard's widest (canvases then draw at the width their box gets)
    lock: threading.RLock         # the dashboard's: a view's comm handlers and its frames take turns


class View(Protocol):
    name: ClassVar[str]           # ``dash.view(name)``; the four built-in ones also ``dash.<name>``
    row: ClassVar[int]            # layout row: 0 beside the page map, 1 the charts below
    column: ClassVar[str | None]  # views of one row with the same column name stack in one column
    module: ClassVar[str | None]  # its front end js/src/<module>.js (None: a plain ipywidget)
    widget: w.DOMWidget

    def __init__(self, setup: ViewSetup) -> None: ...

    def update(self, ctx: ViewContext) -> None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class DashboardView:
    """Base of the views: ``reset`` forgets nothing, ``close`` closes the widget."""

    name: ClassVar[str] = ""
    row: ClassVar[int] = 1
    column: ClassVar[str | None] = None
    module: ClassVar[str | None] = None
    widget: w.DOMWidget

    def update(self, ctx: ViewContext) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        return None

    def close(self) -> None:
        self.widget.close()
