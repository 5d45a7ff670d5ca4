"""`FragmentationHeatmap`: free fraction (or holes) of address buckets over time, one column a frame.

Drawn on a canvas by our own anywidget rather than a plotly FigureWidget: a FigureWidget heatmap
re-sends and re-validates its whole ``z`` matrix as JSON on every change, which costs the kernel
more than the rest of a frame together (see benchmarks/bench_widget.py); here one frame sends one
column of ``buckets`` bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import traitlets as t

from ..pool import PageState, PoolSnapshot
from ._assets import esm
from ._base import CanvasView
from ._codec import encode_heat
from ._messages import Check

__all__ = ["FragmentationHeatmap", "bucket_column", "METRICS"]

METRICS = ("free", "holes")
MARK_COMPACT, MARK_FAIL = 1, 2


def bucket_column(snap: PoolSnapshot, buckets: int, metric: str = "free") -> np.ndarray:
    """One uint8 per address bucket: 255 x free fraction, or 255 x holes / (bucket pages / 2)
    (``holes`` counts free runs starting in the bucket: many small holes = fragmented)."""
    n = snap.num_pages
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    sizes = np.maximum(np.diff(edges), 1)
    free = snap.page_state == PageState.FREE
    if metric == "free":
        counts = np.add.reduceat(free.astype(np.int32), edges[:-1]) if n else np.zeros(buckets)
        counts = np.where(np.diff(edges) > 0, counts, 0)
        value = counts / sizes
    else:
        starts, _ = snap.free_runs()
        counts = np.bincount(np.searchsorted(edges, starts, side="right") - 1, minlength=buckets)[:buckets]
        value = np.minimum(counts / np.maximum(sizes / 2, 1), 1.0)
    return np.round(value * 255).astype(np.uint8)


class FragmentationHeatmap(CanvasView):
    """Address buckets (y) over time (x); colour = free fraction (or holes) of each bucket.
    ``update(snapshot)`` appends one column; compactions and failures since the last column are
    marked above / below it."""

    _esm = esm("heatmap")
    num_pages = t.Int(0).tag(sync=True)                  # pages of the pool (axis labels)
    history = t.Int(240).tag(sync=True)                  # columns kept (the x extent)
    metric = t.Enum(METRICS, "free").tag(sync=True)      # "free" fraction or "holes"
    buckets = t.Int(64)                                  # address buckets (rows); kernel side only
    height_px = t.Int(220).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clear()

    def clear(self) -> None:
        """Forget the history (the front end empties on the next full frame)."""
        with self._send_lock:
            self._time = np.zeros(0)
            self._marks = np.zeros(0, dtype=np.uint8)
            self._cols = np.zeros((0, 0), dtype=np.uint8)
            self._last_counts: tuple[int, int] | None = None
            self._send_full()

    def update(self, snap: PoolSnapshot, time_s: float | None = None) -> np.ndarray:
        """Append the column of ``snap`` (at ``time_s``, default the snapshot's time); returns it."""
        with self._send_lock:
            buckets = max(1, min(self.buckets, snap.num_pages))
            col = bucket_column(snap, buckets, self.metric)
            counts = (snap.stats.compactions, snap.stats.failed_allocations)
            mark = 0
            if self._last_counts is not None:
                mark |= MARK_COMPACT if counts[0] > self._last_counts[0] else 0
                mark |= MARK_FAIL if counts[1] > self._last_counts[1] else 0
            self._last_counts = counts
            now = snap.time_s if time_s is None else float(time_s)
            reset = self._cols.shape[1] != buckets or snap.num_pages != self.num_pages
            if reset:
                self._time, self._marks = np.zeros(0), np.zeros(0, dtype=np.uint8)
                self._cols = np.zeros((0, buckets), dtype=np.uint8)
                self.num_pages = snap.num_pages
            keep = self.history - 1
            self._time = np.append(self._time[-keep:] if keep else self._time[:0], now)
            self._marks = np.append(self._marks[-keep:] if keep else self._marks[:0], np.uint8(mark))
            self._cols = np.concatenate((self._cols[-keep:] if keep else self._cols[:0], col[None, :]))
            if reset:
                self._send_full()
            else:
                self._send_frame("heat", encode_heat(1, METRICS.index(self.metric), np.array([now]),
                                                     np.array([mark], np.uint8), col[None, :]))
            return col

    def columns(self) -> np.ndarray:
        """The history as (columns, buckets) uint8, oldest first."""
        return self._cols.copy()

    def _send_full(self) -> None:
        self._send_frame("heat", encode_heat(0, METRICS.index(self.metric), self._time, self._marks,
                                             self._cols if self._cols.size else np.zeros((0, 1), np.uint8)))

    def _actions(self) -> Mapping[str, Mapping[str, Check]]:
        return {"request_full": {}}

    def _on_action(self, action: str, fields: dict[str, Any]) -> None:
        with self._send_lock:
            self._send_full()
