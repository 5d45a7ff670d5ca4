"""`FragmentationHeatmap`: free fraction (or holes) of address buckets over time, one column a frame
that changed something (a finished or paused run adds none).

Drawn on a canvas by our own anywidget rather than a plotly FigureWidget: a FigureWidget heatmap
re-sends and re-validates its whole ``z`` matrix as JSON on every change, which costs the kernel
more than the rest of a frame together (see benchmarks/bench_widget.py); here one frame sends one
column of ``buckets`` bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import traitlets as t

from ..pool import COMPACT_REASONS, HEAT_METRICS, PoolSnapshot
from ._assets import esm
from ._base import CanvasView
from ._codec import HEAT_APPEND, HEAT_FULL, encode_heat
from ._messages import Check
from ._view import DashboardView, ViewContext, ViewSetup, chart_layout

__all__ = ["FragmentationHeatmap", "HeatColumn", "HeatmapView", "bucket_column", "METRICS", "MARK_COMPACT", "MARK_FAIL",
           "MARK_REASON_SHIFT", "WINDOW_S"]

MODULE = "heatmap"  # js/src/heatmap.js
METRICS = HEAT_METRICS  # the heat frame's metric byte indexes this
MARK_COMPACT, MARK_FAIL = 1, 2  # bits of a column's mark byte
MARK_REASON_SHIFT = 2  # bits 2-4: 1 + the compaction's index in COMPACT_REASONS (0: none)
WINDOW_S = 30.0  # seconds of (simulated) time the heatmap and the latency trace show
assert len(COMPACT_REASONS) < 8
_MAX_CACHED = 20_000  # scrubbing's cached columns (64 bytes and a few ints each)


def bucket_column(snap: PoolSnapshot, buckets: int, metric: str = "free") -> np.ndarray:
    """One uint8 per address bucket: 255 x `PoolSnapshot.bucket_fractions` (0 for an empty bucket)."""
    return np.round(np.nan_to_num(snap.bucket_fractions(buckets, metric)) * 255).astype(np.uint8)


class HeatColumn(NamedTuple):
    """What a column takes from its snapshot (its mark depends on the column before it)."""

    col: np.ndarray
    compactions: int
    failed_allocations: int
    compaction_reason: str
    num_pages: int
    time_s: float


class FragmentationHeatmap(CanvasView):
    """Address buckets (y) over time (x); colour = free fraction (or holes) of each bucket.
    ``update(snapshot)`` appends one column; compactions and failures since the last column are
    marked above / below it."""

    _esm = esm(MODULE)
    num_pages = t.Int(0).tag(sync=True)                  # pages of the pool (axis labels)
    history = t.Int(600).tag(sync=True)                  # columns kept (a window at 20 frames/s)
    window_s = t.Float(WINDOW_S).tag(sync=True)          # seconds shown (x extent), as the latency trace
    metric = t.Enum(METRICS, "free").tag(sync=True)      # "free" fraction or "holes"
    buckets = t.Int(64)                                  # address buckets (rows); kernel side only
    # kernel side: keep the columns when the pool's page count changes (each column spans its own
    # pages; the snapshot player's torch side, whose reserved memory grows and shrinks)
    keep_on_resize = t.Bool(False)
    height_px = t.Int(220).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clear()

    def clear(self) -> None:
        """Forget the history (the front end empties on the next full frame)."""
        with self._send_lock:
            self._reset(0)
            self._last_counts: tuple[int, int] | None = None
            self._send_full()

    def _reset(self, buckets: int) -> None:
        # a ring of `history` columns: appending a column is O(buckets), not O(history)
        self._ring_time = np.zeros(self.history)
        self._ring_marks = np.zeros(self.history, dtype=np.uint8)
        self._ring_cols = np.zeros((self.history, buckets), dtype=np.uint8)
        self._count = 0
        self._head = 0  # where the next column goes

    def update(self, snap: PoolSnapshot, time_s: float | None = None) -> np.ndarray:
        """Append the column of ``snap`` (at ``time_s``, default the snapshot's time); returns it."""
        with self._send_lock:
            reset, now, mark, col = self._append(self.column(snap, time_s))
            if reset:
                self._send_full()
            else:
                self._send_frame("heat", encode_heat(HEAT_APPEND, METRICS.index(self.metric), np.array([now]),
                                                     np.array([mark], np.uint8), col[None, :]))
            return col

    def rebuild(self, columns: Iterable[HeatColumn]) -> None:
        """Forget the history and hold ``columns`` (from `column`), oldest first; one full frame to
        the front end (scrubbing through a recorded run)."""
        with self._send_lock:
            self._reset(0)
            self._last_counts = None
            for c in columns:
                self._append(c)
            self._send_full()

    def column(self, snap: PoolSnapshot, time_s: float | None = None) -> HeatColumn:
        """The column ``snap`` gives at ``time_s`` (default: the snapshot's time) with this heatmap's
        buckets and metric."""
        return HeatColumn(bucket_column(snap, max(1, min(self.buckets, snap.num_pages)), self.metric),
                          snap.stats.compactions, snap.stats.failed_allocations, snap.stats.last_compaction_reason,
                          snap.num_pages, snap.time_s if time_s is None else float(time_s))

    def _append(self, c: HeatColumn) -> tuple[bool, float, int, np.ndarray]:
        col = c.col
        buckets = col.shape[0]
        counts = (c.compactions, c.failed_allocations)
        mark = 0
        if self._last_counts is not None:
            mark |= MARK_COMPACT if counts[0] > self._last_counts[0] else 0
            mark |= MARK_FAIL if counts[1] > self._last_counts[1] else 0
        if mark & MARK_COMPACT and c.compaction_reason in COMPACT_REASONS:
            mark |= (1 + COMPACT_REASONS.index(c.compaction_reason)) << MARK_REASON_SHIFT
        self._last_counts = counts
        now = c.time_s
        resized = c.num_pages != self.num_pages
        reset = (self._ring_cols.shape[1] != buckets or (resized and not self.keep_on_resize)
                 or self._ring_time.shape[0] != self.history)
        if reset:
            self._reset(buckets)
        if resized:
            self.num_pages = c.num_pages
        h = self._head
        self._ring_time[h], self._ring_marks[h], self._ring_cols[h] = now, mark, col
        self._head = (h + 1) % self.history
        self._count = min(self._count + 1, self.history)
        return reset, now, mark, col

    def _order(self) -> np.ndarray:
        return (self._head - self._count + np.arange(self._count)) % max(self.history, 1)

    def columns(self) -> np.ndarray:
        """The history as (columns, buckets) uint8, oldest first."""
        return self._ring_cols[self._order()]

    def _send_full(self) -> None:
        order = self._order()
        cols = self._ring_cols[order] if self._ring_cols.shape[1] else np.zeros((0, 1), np.uint8)
        self._send_frame("heat", encode_heat(HEAT_FULL, METRICS.index(self.metric), self._ring_time[order],
                                             self._ring_marks[order], cols))

    def _actions(self) -> Mapping[str, Mapping[str, Check]]:
        return {"request_full": {}}

    def _on_action(self, action: str, fields: dict[str, Any]) -> None:
        with self._send_lock:
            self._send_full()


class HeatmapView(DashboardView):
    """The heatmap in a dashboard: one column per recorded snapshot (``ctx.record``) that changed the
    pool or the clock, at the simulator's clock (a pool without one: its own), so nothing is added
    while nothing happens, and scrubbing the history redraws it column for column."""

    name = "heatmap"
    module = MODULE

    def __init__(self, setup: ViewSetup) -> None:
        self.widget = FragmentationHeatmap(width_px=setup.width_px // 2 - 8, height_px=210, lock=setup.lock,
                                           layout=chart_layout())
        self._last: tuple[int, float] | None = None  # (seq, time) of the last column
        # scrubbing: the columns of a history's frames already computed, by frame (counting the dropped
        # ones, so the key stays when the history drops its oldest), for this history, buckets, metric
        self._cached: dict[int, HeatColumn] = {}
        self._cached_hist: Any = None
        self._cached_setting: tuple[int, str] | None = None

    def update(self, ctx: ViewContext) -> None:
        if not ctx.fresh:
            return
        if ctx.past is not None:  # scrubbing: the recorded frames of the window ending at this one
            hist, end = ctx.past.history, ctx.past.index
            times = hist.times
            start = int(np.searchsorted(times, times[end] - self.widget.window_s, side="left"))
            start = max(start, end - self.widget.history + 1)
            self.widget.rebuild(self._column(hist, i) for i in range(start, end + 1))
            # the key the live path gives this frame (a simulator's run records steps), so returning to
            # the present adds no second column for the same moment
            self._last = (ctx.snapshot.seq, ctx.time_s if hist.step_columns else 0.0)
            return
        key = (ctx.snapshot.seq, ctx.time_s if ctx.sim is not None else 0.0)
        if key != self._last and ctx.record:
            self._last = key
            self.widget.update(ctx.snapshot, time_s=ctx.time_s)

    def prime(self, hist: Any, snapshots: Sequence[PoolSnapshot]) -> None:
        """Compute the columns of ``hist``'s frames now, from their ``snapshots`` at hand (else the
        first scrub into a window decodes its frames from the history)."""
        for i, snap in enumerate(snapshots):
            self._column(hist, i, snap)

    def _column(self, hist: Any, i: int, snap: PoolSnapshot | None = None) -> HeatColumn:
        setting = (self.widget.buckets, self.widget.metric)
        if hist is not self._cached_hist or setting != self._cached_setting:
            self._cached, self._cached_hist, self._cached_setting = {}, hist, setting
        key = i + hist.dropped
        c = self._cached.get(key)
        if c is None:
            if len(self._cached) >= _MAX_CACHED:
                self._cached.clear()
            c = self._cached[key] = self.widget.column(hist.snapshot(i) if snap is None else snap,
                                                       float(hist.times[i]))
        return c

    def reset(self) -> None:
        self._last = None
        self.widget.clear()
