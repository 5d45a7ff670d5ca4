"""`LatencyTrace`: step latency, allocation latency and compaction pauses over time.

Drawn on a canvas by our own anywidget (like the heatmap; a plotly FigureWidget cannot keep up
with 20 frames/s on the kernel side, see benchmarks/bench_widget.py). A frame carries the whole
window as float columns (a few KB), so a view that opens late is complete at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import traitlets as t

from ..pool import EventArrays, EventKind
from ._assets import esm
from ._base import CanvasView
from ._codec import encode_trace
from ._messages import Check

__all__ = ["LatencyTrace", "TraceWindow", "window_from_events", "window_from_steps"]

TraceWindow = dict[str, np.ndarray]  # time_s, step_s, alloc_s, pause_s, event_time_s, event_kind
MAX_POINTS = 4096


def window_from_events(ev: EventArrays) -> TraceWindow:
    """A window from the pool's event ring (a plain pool): one row per ALLOC / STEP / COMPACT event."""
    kind = ev.kind
    rows = np.flatnonzero((kind == EventKind.ALLOC) | (kind == EventKind.STEP) | (kind == EventKind.COMPACT))
    rows = rows[-MAX_POINTS:]
    nan = np.full(rows.size, np.nan, dtype=np.float32)
    lat = ev.latency_s[rows].astype(np.float32)
    k = kind[rows]
    marks = np.flatnonzero((kind == EventKind.COMPACT) | (kind == EventKind.FAIL))
    return {
        "time_s": ev.time_s[rows],
        "step_s": np.where(k == EventKind.STEP, lat, nan),
        "alloc_s": np.where(k == EventKind.ALLOC, lat, nan),
        "pause_s": np.where(k == EventKind.COMPACT, lat, nan),
        "event_time_s": ev.time_s[marks],
        "event_kind": kind[marks].astype(np.uint8),
    }


def window_from_steps(steps: Mapping[str, np.ndarray]) -> TraceWindow:
    """A window from ``sim.recent_steps()``: one row per serving step (simulated clock)."""
    time_s = np.asarray(steps["time_s"], dtype=np.float64)[-MAX_POINTS:]
    n = time_s.size
    pause = np.asarray(steps["compaction_pause_s"], dtype=np.float32)[-n:] if n else np.zeros(0, np.float32)
    fails = np.asarray(steps["failures"])[-n:] if n else np.zeros(0)
    alloc = np.asarray(steps["alloc_latency_s"], dtype=np.float32)[-n:] if n else np.zeros(0, np.float32)
    compact_rows = np.flatnonzero(pause > 0)
    fail_rows = np.flatnonzero(fails > 0)
    ev_rows = np.concatenate((compact_rows, fail_rows))
    ev_kind = np.concatenate((np.full(compact_rows.size, EventKind.COMPACT, np.uint8),
                              np.full(fail_rows.size, EventKind.FAIL, np.uint8)))
    order = np.argsort(ev_rows, kind="stable")
    return {
        "time_s": time_s,
        "step_s": np.asarray(steps["step_latency_s"], dtype=np.float32)[-n:] if n else np.zeros(0, np.float32),
        "alloc_s": np.where(alloc > 0, alloc, np.nan).astype(np.float32),
        "pause_s": np.where(pause > 0, pause, np.nan).astype(np.float32),
        "event_time_s": time_s[ev_rows[order]],
        "event_kind": ev_kind[order],
    }


class LatencyTrace(CanvasView):
    """Latency over the last ``window_s`` seconds on a log axis; compactions and failures marked."""

    _esm = esm("trace")
    window_s = t.Float(30.0).tag(sync=True)  # seconds of history shown (x extent)
    height_px = t.Int(220).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._payload = encode_trace(*(np.zeros(0),) * 6)

    def update(self, window: TraceWindow) -> bytes:
        """Send ``window`` (see `window_from_events` / `window_from_steps`); returns the frame."""
        data = encode_trace(window["time_s"], window["step_s"], window["alloc_s"], window["pause_s"],
                            window["event_time_s"], window["event_kind"])
        with self._send_lock:
            self._payload = data
            self._send_frame("trace", data)
        return data

    def clear(self) -> None:
        self.update({k: np.zeros(0) for k in ("time_s", "step_s", "alloc_s", "pause_s", "event_time_s",
                                              "event_kind")})

    def _actions(self) -> Mapping[str, Mapping[str, Check]]:
        return {"request_full": {}}

    def _on_action(self, action: str, fields: dict[str, Any]) -> None:
        with self._send_lock:
            self._send_frame("trace", self._payload)
