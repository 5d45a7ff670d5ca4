"""`LatencyTrace`: step latency, allocation latency and compaction pauses over time (the same time
window as the heatmap, in seconds since the start of the run).

Drawn on a canvas by our own anywidget (like the heatmap; a plotly FigureWidget cannot keep up
with 20 frames/s on the kernel side, see benchmarks/bench_widget.py). A full frame carries the whole
window as float columns (20 bytes a point); after it, a frame carries only the points and events
that are new since the last one (an append frame) when the new window continues the old one, and
the whole window again otherwise (a reset, a view asking with ``request_full``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import traitlets as t

from ..pool import COMPACT_REASONS, EventArrays, EventKind
from ._assets import esm
from ._base import CanvasView
from ._codec import encode_trace
from ._heatmap import WINDOW_S
from ._messages import Check
from ._view import DashboardView, ViewContext, ViewSetup, chart_layout

__all__ = ["LatencyTrace", "TraceView", "TraceWindow", "window_from_events", "window_from_steps",
           "EVENT_REASON_SHIFT", "event_codes"]

MODULE = "trace"  # js/src/trace.js
TraceWindow = dict[str, np.ndarray]  # time_s, step_s, alloc_s, pause_s, event_time_s, event_kind
MAX_POINTS = 4096  # rows of a window from the pool's event ring
MAX_STEPS = 32768  # serving steps a dashboard's trace keeps (about a window of the demo at real time)
STEP_KEYS = ("time_s", "step_latency_s", "alloc_latency_s", "compaction_pause_s", "failures",
             "compaction_reason")  # sim records read
EVENT_REASON_SHIFT = 4  # an event byte: kind in bits 0-3, 1 + index in COMPACT_REASONS in bits 4-6 (0: none)


def event_codes(kind: np.ndarray, reason: np.ndarray) -> np.ndarray:
    """Event bytes: ``kind`` with its compaction reason (an index of COMPACT_REASONS, -1: none)."""
    reason = np.asarray(reason, np.int64)
    known = (reason >= 0) & (reason < len(COMPACT_REASONS))
    return (np.asarray(kind, np.uint8) | (np.where(known, reason + 1, 0) << EVENT_REASON_SHIFT)).astype(np.uint8)


def window_from_events(ev: EventArrays) -> TraceWindow:
    """A window from the pool's event ring (a plain pool): one row per ALLOC / STEP / COMPACT event."""
    kind = ev.kind
    rows = np.flatnonzero((kind == EventKind.ALLOC) | (kind == EventKind.STEP) | (kind == EventKind.COMPACT))
    rows = rows[-MAX_POINTS:]
    nan = np.full(rows.size, np.nan, dtype=np.float32)
    lat = ev.latency_s[rows].astype(np.float32)
    k = kind[rows]
    marks = np.flatnonzero((kind == EventKind.COMPACT) | (kind == EventKind.FAIL))
    reason = np.where(kind[marks] == EventKind.COMPACT, ev.info[marks], -1)
    return {
        "time_s": ev.time_s[rows],
        "step_s": np.where(k == EventKind.STEP, lat, nan),
        "alloc_s": np.where(k == EventKind.ALLOC, lat, nan),
        "pause_s": np.where(k == EventKind.COMPACT, lat, nan),
        "event_time_s": ev.time_s[marks],
        "event_kind": event_codes(kind[marks], reason),
    }


def window_from_steps(steps: Mapping[str, np.ndarray], max_points: int = MAX_POINTS) -> TraceWindow:
    """A window from ``sim.recent_steps()``: one row per serving step (simulated clock)."""
    time_s = np.asarray(steps["time_s"], dtype=np.float64)[-max_points:]
    n = time_s.size
    pause = np.asarray(steps["compaction_pause_s"], dtype=np.float32)[-n:] if n else np.zeros(0, np.float32)
    fails = np.asarray(steps["failures"])[-n:] if n else np.zeros(0)
    alloc = np.asarray(steps["alloc_latency_s"], dtype=np.float32)[-n:] if n else np.zeros(0, np.float32)
    compact_rows = np.flatnonzero(pause > 0)
    fail_rows = np.flatnonzero(fails > 0)
    ev_rows = np.concatenate((compact_rows, fail_rows))
    reasons = np.asarray(steps["compaction_reason"])[-n:] if "compaction_reason" in steps and n else np.zeros(0)
    ev_kind = np.concatenate((event_codes(np.full(compact_rows.size, EventKind.COMPACT, np.uint8),
                                          reasons[compact_rows] if reasons.size else np.full(compact_rows.size, -1)),
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

    _esm = esm(MODULE)
    window_s = t.Float(WINDOW_S).tag(sync=True)  # seconds of history shown (x extent), as the heatmap
    height_px = t.Int(220).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._window: TraceWindow = _empty_window()  # what the front end holds after the last frame

    def update(self, window: TraceWindow) -> bytes:
        """Send ``window`` (see `window_from_events` / `window_from_steps`): only what is new when it
        continues the window sent last, else all of it; returns the frame sent."""
        window = {k: np.asarray(window[k]) for k in _KEYS}
        with self._send_lock:
            data = _append_frame(self._window, window)
            if data is None:
                data = _full_frame(window)
            self._window = window
            self._send_frame("trace", data)
        return data

    def extend(self, rows: TraceWindow, keep_s: float, max_points: int = MAX_STEPS) -> bytes:
        """Add ``rows`` (later than what was sent) and keep the last ``keep_s`` seconds (at most
        ``max_points`` points): an append frame of just ``rows`` (a full one for the first rows)."""
        rows = {k: np.asarray(rows[k]) for k in _KEYS}
        with self._send_lock:
            old = self._window
            if old["time_s"].size == 0:
                window = _trimmed(rows, keep_s, max_points)
                data = _full_frame(window)
            else:
                window = _trimmed({k: np.concatenate((old[k], rows[k])) for k in _KEYS}, keep_s, max_points)
                data = encode_trace(rows["time_s"], rows["step_s"], rows["alloc_s"], rows["pause_s"],
                                    rows["event_time_s"], rows["event_kind"], append=True,
                                    keep_points=window["time_s"].size, keep_events=window["event_time_s"].size)
            self._window = window
            self._send_frame("trace", data)
        return data

    def clear(self) -> None:
        self.update(_empty_window())

    def full_frame(self) -> bytes:
        """The whole window the front end shows (what ``request_full`` gets)."""
        with self._send_lock:
            return _full_frame(self._window)

    def _actions(self) -> Mapping[str, Mapping[str, Check]]:
        return {"request_full": {}}

    def _on_action(self, action: str, fields: dict[str, Any]) -> None:
        with self._send_lock:
            self._send_frame("trace", _full_frame(self._window))


_KEYS = ("time_s", "step_s", "alloc_s", "pause_s", "event_time_s", "event_kind")


def _empty_window() -> TraceWindow:
    return {k: np.zeros(0, np.uint8 if k == "event_kind" else np.float64) for k in _KEYS}


def _trimmed(w: TraceWindow, keep_s: float, max_points: int) -> TraceWindow:
    """The rows (and events) of ``w`` from ``keep_s`` seconds before its last row on, at most ``max_points``."""
    t = w["time_s"]
    if t.size == 0:
        return w
    start = max(int(np.searchsorted(t, t[-1] - keep_s, side="left")), t.size - max_points)
    ev = int(np.searchsorted(w["event_time_s"], t[start], side="left"))
    return {k: (w[k][ev:] if k.startswith("event") else w[k][start:]) for k in _KEYS}


def _full_frame(w: TraceWindow) -> bytes:
    return encode_trace(w["time_s"], w["step_s"], w["alloc_s"], w["pause_s"], w["event_time_s"], w["event_kind"])


def _append_frame(old: TraceWindow, new: TraceWindow) -> bytes | None:
    """An append frame taking the front end from ``old`` to ``new``, or None when ``new`` does not
    continue ``old`` (its rows up to old's last time must be old's last rows, bit for bit as sent;
    the same for events)."""
    t_old, t_new = old["time_s"], new["time_s"]
    if t_old.size == 0 or t_new.size == 0:
        return None
    k = int(np.searchsorted(t_new, t_old[-1], side="right"))  # rows of new that old already has
    if k > t_old.size:
        return None
    for key in ("time_s", "step_s", "alloc_s", "pause_s"):
        a, b = old[key], new[key]
        if a.shape[0] != t_old.size or b.shape[0] != t_new.size or not _same(a[t_old.size - k:], b[:k], key):
            return None
    e_old, e_new = old["event_time_s"], new["event_time_s"]
    cutoff = max(t_old[-1], e_old[-1]) if e_old.size else t_old[-1]
    j = int(np.searchsorted(e_new, cutoff, side="right"))  # events of new that old already has
    if j > e_old.size or not (_same(e_old[e_old.size - j:], e_new[:j], "event_time_s")
                              and _same(old["event_kind"][e_old.size - j:], new["event_kind"][:j], "event_kind")):
        return None
    return encode_trace(t_new[k:], new["step_s"][k:], new["alloc_s"][k:], new["pause_s"][k:], e_new[j:],
                        new["event_kind"][j:], append=True, keep_points=t_new.size, keep_events=e_new.size)


class TraceView(DashboardView):
    """The latency trace in a dashboard: redrawn only when the simulator stepped (or the pool logged).
    With a simulator it keeps the steps of the last ``window_s`` simulated seconds (the simulator's
    ring holds only its last few thousand), reading only the steps new since the last frame."""

    name = "trace"
    module = MODULE

    def __init__(self, setup: ViewSetup) -> None:
        self.widget = LatencyTrace(width_px=setup.width_px // 2 - 8, height_px=210, lock=setup.lock,
                                   layout=chart_layout())
        self._mark: tuple[float, float] | None = None  # (steps, clock) or (events, seq) last shown
        self._steps_read = 0                           # the simulator's steps read so far
        self._sim: object | None = None                # the simulator they were read from

    def update(self, ctx: ViewContext) -> None:
        if not ctx.fresh:
            return
        if ctx.past is not None:  # scrubbing: the window ending at the recorded frame; live reads anew after
            self._mark, self._sim, self._steps_read = None, None, 0
            steps = ctx.past.history.steps(ctx.past.index)
            rows = window_from_steps(steps, max_points=MAX_STEPS) if steps else window_from_events(ctx.snapshot.events)
            self.widget.update(_trimmed(rows, self.widget.window_s, MAX_STEPS))
            return
        sim, snap = ctx.sim, ctx.snapshot
        mark = (sim.steps, sim.clock) if sim is not None else (snap.events_total, snap.seq)
        if mark == self._mark:
            return
        self._mark = mark
        if sim is None:
            self.widget.update(window_from_events(snap.events))
            return
        if sim is not self._sim or sim.steps < self._steps_read:  # a new run
            self.reset()
            self._mark, self._sim = mark, sim
        new = sim.steps - self._steps_read
        self._steps_read = sim.steps
        if new > 0:
            rows = window_from_steps(sim.recent_steps(min(new, MAX_STEPS), keys=STEP_KEYS), max_points=MAX_STEPS)
            self.widget.extend(rows, self.widget.window_s)

    def reset(self) -> None:
        self.widget.clear()
        self._mark, self._sim, self._steps_read = None, None, 0


_WIRE = {"time_s": "<f8", "step_s": "<f4", "alloc_s": "<f4", "pause_s": "<f4", "event_time_s": "<f8",
         "event_kind": "u1"}


def _same(a: np.ndarray, b: np.ndarray, key: str) -> bool:
    """Equal as the front end receives them (the wire dtype, bit for bit: NaN equals NaN)."""
    dtype = _WIRE[key]
    return a.shape == b.shape and np.asarray(a, dtype).tobytes() == np.asarray(b, dtype).tobytes()
