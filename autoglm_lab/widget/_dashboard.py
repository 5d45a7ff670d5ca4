"""`Dashboard(pool, sim=None)`: the page map, heatmap, latency trace and stats, with controls
bound to the live pool (and simulator), a background live loop and a headless API.

```
 title, device  [Play] [Step] [Compact now] [Reset]   status: live/paused/finished, fps, requests done, sim time
 +---------------------------------------------+  +--------------------+
 | page map (PageMapView)                      |  | stats (StatsView)  |     row 0
 |                                             |  | serving (Serving-  |
 |                                             |  |   View)            |
 +---------------------------------------------+  +--------------------+
 | heatmap (HeatmapView)           | latency (TraceView)                |     row 1
 | compaction | allocator & pool | workload & view            (controls) |
```

The views are `_registry.VIEWS` (one protocol: `_view.View`); the controls are `_settings.CONTROLS`
(one table); the width follows the notebook's (the canvases measure their box). Every control goes
through `Dashboard.set(name, value)`: the value is checked by the control (front-end guard), then by
`PoolConfig` / `ServingConfig` validation (`pool.configure`, `sim.configure`); a refused value logs a
warning and the control snaps back.
"""

from __future__ import annotations

import html
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ..history import DEFAULT_MAX_BYTES, SnapshotHistory
from ..pool import PagedPool, PoolSnapshot, format_bytes
from ._base import CanvasView
from ._codec import PageFrame
from ._controls import FixedGridBox, FixedHBox, FixedHTML, FixedVBox, GuardedButton, GuardedIntSlider, check_value
from ._heatmap import FragmentationHeatmap
from ._loop import LiveLoop
from ._messages import NoFrontEndState, argument, choice, integer, number, run_logged
from ._pagemap import PageMap, PageMapView
from ._registry import VIEWS
from ._resize import resize_note, resized_config
from ._serving import ServingPanel
from ._settings import AT_END, CONTROLS, PACES, PANELS, Control, fields, make_control, options_of, show_idle, value_of
from ._stats import StatsPanel, device_label
from ._status import progress_of, status_html
from ._trace import MAX_STEPS, STEP_KEYS, LatencyTrace
from ._view import PastFrame, View, ViewContext, ViewSetup

if TYPE_CHECKING:
    from ..compactor import CompactionReport
    from ..workload import ServingSim

__all__ = ["Dashboard", "FrameInfo", "POOL_FIELDS", "SIM_FIELDS", "REBUILD_FIELDS", "VIEW_FIELDS"]

log = logging.getLogger("autoglm_lab.widget")

POOL_FIELDS = fields("pool")
SIM_FIELDS = fields("sim")
REBUILD_FIELDS = fields("rebuild")
VIEW_FIELDS = fields("view")
_SETTINGS = {c.name: c for c in CONTROLS if c.target != "action"}
_BURST = 8  # simulator steps per hold of the dashboard lock in the live loop
_TEXT_PERIOD_S = 0.2  # text is read, not watched: the live loop refreshes it 5 times a second
_HISTORY_PERIOD_S = 1.0  # the history slider and its line while playing: once a second (each update
                         # re-renders the slider in the browser, which shares the machine)
_RECORD_PERIOD_S = 0.1  # the live loop records at most 10 frames a second into the history (every step's
                        # row still goes in: the trace replays whole); frames drawn by code all go in
_DEMO_STORY_S = 120.0  # the demo's pace: the whole trace within about two minutes of watching
_SCRUB_TIP = ("the run so far, frame by frame: drag back to see the page map, heatmap, trace and panels as they "
              "were (the live loop pauses); Back to live, Play or Step return to the present")
_MAX_LAG_S = 1.0  # a paced simulator this far behind (wall seconds) stops catching up: no bursts


@dataclass(frozen=True)
class FrameInfo:
    """What one `Dashboard.frame()` drew."""

    seq: int                       # pool mutation counter of the snapshot drawn
    page_frame: PageFrame | None   # None when the page map had nothing new to send
    snapshot_s: float              # seconds spent taking the snapshot
    frame_s: float                 # seconds for the whole frame (snapshot, encode, send)
    frame_cpu_s: float = 0.0       # CPU seconds of the drawing thread in the frame (other processes aside)


class Dashboard(NoFrontEndState, w.VBox):
    """The live dashboard of ``pool`` (and ``sim``). ``display(dash)`` shows it; ``play()`` /
    ``stop()`` run the live loop (default 10 frames/s); ``frame()`` and ``run(steps)`` work headless.

    ``width_px``: the widest it grows (below that it follows the notebook's width);
    ``pace``: simulated seconds per second while playing (0: as fast as the simulator runs);
    ``at_end``: what the loop does when the trace has been served, "stop" or "loop" (a fresh run);
    ``history_bytes``: the bound of ``dash.history``, the run's recorded frames (`SnapshotHistory`):
    the time slider scrubs back through them (`scrub`), ``dash.save(path)`` writes them for the
    offline report (``autoglm-lab history FILE``).

    ``dash.pool`` and ``dash.sim`` are the live objects: Reset and applying a new page or pool size
    build new ones (your own variables keep pointing at the old ones).

    Threads: the live loop and the comm handlers (controls, page-map clicks) share ``self._lock``
    (every view's lock too), so a handler never sees half a frame.
    """

    pool: PagedPool
    sim: ServingSim | None
    steps_per_frame: int  # simulator steps per live frame at most; 0: no cap (the pace decides)
    pace: float           # simulated seconds per wall second while playing; 0: as fast as it runs
    at_end: str           # "stop" or "loop" when the trace has been served
    runs: int             # runs since the dashboard was built (Reset and loops start new ones)

    def __init__(self, pool: PagedPool, sim: ServingSim | None = None, *, fps: float = 10.0,
                 width_px: int = 1200, pace: float = 0.0, at_end: str = "stop",
                 history_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if not isinstance(pool, PagedPool):
            raise TypeError(f"pool must be a PagedPool, not {type(pool).__name__}")
        if sim is not None and getattr(sim, "pool", pool) is not pool:
            raise ValueError("sim runs on a different pool than the one given to the Dashboard")
        argument("fps", fps, number(1, 60))
        argument("width_px", width_px, integer(600, 10_000))
        argument("pace", pace, number(0, 1000))
        argument("at_end", at_end, choice(AT_END))
        argument("history_bytes", history_bytes, integer(4096))
        self.history_bytes = int(history_bytes)
        self.history = SnapshotHistory(self.history_bytes)  # this run's frames (a new run, a new history)
        self._hist_steps = 0                                # simulator steps recorded into it
        self._past: int | None = None                       # the recorded frame shown while scrubbing
        self._recorded_at = 0.0                             # perf_counter of the last live frame recorded
        self._history_shown_at = 0.0                        # ... and of the last slider update while live
        self.pool = pool
        self.sim = sim
        self.pace, self.at_end, self.runs = float(pace), at_end, 1
        self._pace_anchor: tuple[float, float] | None = None  # (wall, sim clock) the pace counts from
        self._lock = threading.RLock()  # one step or one frame at a time (loop thread vs comm handlers)
        self._frame_callbacks: list[Callable[[PoolSnapshot, FrameInfo], None]] = []
        self._syncing = False
        self.last_report: CompactionReport | None = None  # "Compact now"'s
        self._last_compaction: Any = None  # the last report seen ("Compact now" or a plain pool's tick)
        self.steps_per_frame = 0
        self.views: tuple[View, ...] = tuple(cls(ViewSetup(pool, width_px, self._lock)) for cls in VIEWS)
        self._by_name = {v.name: v for v in self.views}
        self._carrier = self._share_one_comm()
        self.page_map.on_select(lambda _info: self._refresh_text())
        self._loop = LiveLoop(self._live_tick, fps=float(fps))
        self._applied: dict[str, bool] = {}
        self.controls: dict[str, w.DOMWidget] = {c.name: make_control(c, self) for c in CONTROLS}
        self._wire_controls()
        self._show_idle()
        self.header = FixedHTML(self._header_html(), layout=w.Layout(margin="0 16px 0 0", flex="0 0 auto"))
        # a fixed share of the bar: a longer status never wraps the bar anew (the charts would jump)
        self.status = FixedHTML(layout=w.Layout(margin="0 0 0 12px", flex="1 1 380px", min_width="0",
                                                overflow="hidden"))
        self.scrubber = GuardedIntSlider(0, min=0, max=0, continuous_update=False, readout=False,
                                    description="history", tooltip=_SCRUB_TIP,
                                    layout=w.Layout(flex="1 1 300px", min_width="0"))
        self.scrubber.observe(lambda ch: self._on_scrub(ch["new"]), names="value")
        self.scrub_label = FixedHTML(layout=w.Layout(flex="0 1 auto", min_width="0", margin="0 8px",
                                                     overflow="hidden"))
        self.live_button = GuardedButton(description="Back to live", disabled=True, layout=w.Layout(width="auto"),
                                         tooltip="leave the recorded past: show the pool now")
        self.live_button.on_click(lambda _b: run_logged("dashboard: back to live", self.scrub, None))
        super().__init__(children=self._layout_children(),
                         layout=w.Layout(width="100%", max_width=f"{width_px}px", padding="4px",
                                         overflow="hidden"))
        self._last_ctx: ViewContext | None = None
        self._text_at = 0.0
        self.frame()

    # ------------------------------------------------------------------ the views
    def view(self, name: str) -> View:
        """The registered view called ``name`` (``"page_map"``, ``"stats"``, ``"serving"``, ``"heatmap"``,
        ``"trace"``)."""
        return self._by_name[name]

    @property
    def page_map(self) -> PageMap:
        return self._by_name["page_map"].widget  # type: ignore[return-value]

    @property
    def heatmap(self) -> FragmentationHeatmap:
        return self._by_name["heatmap"].widget  # type: ignore[return-value]

    @property
    def trace(self) -> LatencyTrace:
        return self._by_name["trace"].widget  # type: ignore[return-value]

    @property
    def stats(self) -> StatsPanel:
        return self._by_name["stats"].widget  # type: ignore[return-value]

    @property
    def serving(self) -> ServingPanel:
        return self._by_name["serving"].widget  # type: ignore[return-value]

    @property
    def _last_snapshot(self) -> PoolSnapshot | None:
        return self._last_ctx.snapshot if self._last_ctx is not None else None

    def _share_one_comm(self) -> CanvasView:
        # one comm message per frame: the other canvas views' frames ride on the first one's comm
        canvases = [v.widget for v in self.views if isinstance(v.widget, CanvasView)]
        for view in canvases[1:]:
            view.ride(canvases[0])
        return canvases[0]

    # ------------------------------------------------------------------ public API
    @classmethod
    def demo(cls, *, fps: float = 10.0, kv_layout: str = "contiguous", seed: int = 0, pace: float | None = None,
             at_end: str = "loop", **pool_overrides: Any) -> Dashboard:
        """A ready-to-play default: a 64 MiB pool of 64 KiB pages (on the GPU when there is one, else the
        CPU), contiguous KV, the shipped conversation trace (or a synthetic one when it is absent), LRU
        cache reuse
        (`autoglm_lab.workload.demo_setup`), replayed at a pace a person can watch (``pace=None``:
        real time, or the smallest multiple of it that serves the trace within about two minutes)
        and looped."""
        from ..workload import demo_setup

        pool, sim = demo_setup(kv_layout=kv_layout, seed=seed, **pool_overrides)
        return cls(pool, sim, fps=fps, pace=demo_pace(sim) if pace is None else pace, at_end=at_end)

    def frame(self) -> FrameInfo:
        """Snapshot the pool and draw everything once (synchronous; works without a front end)."""
        return self._frame(live=False)

    def _frame(self, *, live: bool) -> FrameInfo:
        with self._lock:
            if self._past is not None:
                self._leave_past()
            t0, c0 = time.perf_counter(), time.thread_time()
            snap = self.pool.snapshot()
            t1 = time.perf_counter()
            text = not live or t0 - self._text_at >= _TEXT_PERIOD_S
            if text:
                self._text_at = t0
            record = not live or t0 - self._recorded_at >= _RECORD_PERIOD_S or self.finished  # the end goes in
            ctx = self._context(snap, text=text, record=record)
            with self._carrier.frame_bus.batch():  # the views' frames leave as one message
                for view in self.views:
                    view.update(ctx)
            self._last_ctx = ctx
            if record:
                self._recorded_at = t0
                self._record(ctx)
            if text:
                self._show_status(snap)
                if not live or t0 - self._history_shown_at >= _HISTORY_PERIOD_S:
                    self._history_shown_at = t0
                    self._show_history()
            page_view: PageMapView = self._by_name["page_map"]  # type: ignore[assignment]
            info = FrameInfo(seq=snap.seq, page_frame=page_view.sent, snapshot_s=t1 - t0,
                             frame_s=time.perf_counter() - t0, frame_cpu_s=time.thread_time() - c0)
            for callback in self._frame_callbacks:
                callback(snap, info)
            return info

    def _context(self, snap: PoolSnapshot, *, text: bool, fresh: bool = True, record: bool = True) -> ViewContext:
        sim = self.sim
        return ViewContext(snapshot=snap, time_s=sim.clock if sim is not None else snap.time_s, sim=sim,
                           report=self.last_report, selected=self.page_map.selected_block(snap), fresh=fresh,
                           text=text, summary=sim.summary() if sim is not None and text else None, record=record)

    # ------------------------------------------------------------------ history
    def _record(self, ctx: ViewContext) -> None:
        """Add the frame just drawn to the run's history (nothing when neither pool nor clock moved)."""
        hist, sim = self.history, self.sim
        if len(hist) and hist.seqs[-1] == ctx.snapshot.seq and hist.times[-1] == ctx.time_s:
            return
        if len(hist) and (ctx.time_s < hist.times[-1] or (sim is not None and sim.steps < self._hist_steps)):
            # the simulator started over (a setting that resets it): a new run, a new history
            hist = self.history = SnapshotHistory(self.history_bytes)
            self._hist_steps = 0
        steps = None
        if sim is not None:
            new = sim.steps - self._hist_steps
            self._hist_steps = sim.steps
            steps = sim.recent_steps(min(max(new, 0), MAX_STEPS), keys=STEP_KEYS)
        hist.record(ctx.snapshot, ctx.time_s, summary=ctx.summary, steps=steps)

    def scrub(self, time_s: float | None) -> None:
        """Show the run as it was at ``time_s`` simulated seconds (the recorded frame at or before it):
        page map, heatmap, latency trace, stats and serving panel; the live loop pauses. ``None``: back
        to the present (so does Play, Step or any new frame)."""
        if time_s is None:
            with self._lock:
                if self._past is not None:
                    self._leave_past()
                    self.frame()
            return
        argument("time_s", time_s, number(-1e300, 1e300))
        with self._lock:
            if not len(self.history):
                raise ValueError("nothing recorded yet: the history starts with the first frame")
            self.show_frame(self.history.index_at(float(time_s)))

    def show_frame(self, index: int) -> None:
        """Show recorded frame ``index`` of ``dash.history`` (negative: from the end); pauses the loop."""
        if self._loop.running:
            self.stop()
        with self._lock:
            hist = self.history
            n = len(hist)
            if isinstance(index, bool) or not isinstance(index, int) or not -n <= index < n:
                raise ValueError(f"index={index!r} is not allowed: the history holds frames 0 to {n - 1}")
            index %= n
            snap = hist.snapshot(index)
            ctx = ViewContext(snapshot=snap, time_s=float(hist.times[index]), sim=None, report=None,
                              selected=self.page_map.selected_block(snap), summary=hist.summary(index),
                              past=PastFrame(hist, index))
            self._past = index
            with self._carrier.frame_bus.batch():
                for view in self.views:
                    view.update(ctx)
            self._last_ctx = ctx
            self._show_history()
            self._show_status(snap)

    def _leave_past(self) -> None:
        """Views over time rebuild their window up to the last recorded frame: the present again."""
        self._past = None
        if len(self.history):
            last = len(self.history) - 1
            snap = self.history.snapshot(last)
            ctx = ViewContext(snapshot=snap, time_s=float(self.history.times[last]), past=PastFrame(self.history, last))
            for view in self.views:
                view.update(ctx)
        self._show_history()

    @property
    def scrubbing(self) -> bool:
        """A recorded frame is shown instead of the present."""
        return self._past is not None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write this run's history (``dash.history``) to ``path`` (an ``.npz``); the offline report
        replays it: ``autoglm-lab history PATH --out report.html``. Returns the path."""
        with self._lock:
            return self.history.save(path)

    def _on_scrub(self, index: int) -> None:
        if self._syncing:
            return
        run_logged(f"dashboard: showing recorded frame {index}", self.show_frame, int(index))

    def _show_history(self) -> None:
        """The slider's range and place, and the line beside it."""
        hist = self.history
        n = len(hist)
        at = n - 1 if self._past is None else self._past
        self._syncing = True
        try:
            if self.scrubber.max != max(n - 1, 0):
                self.scrubber.max = max(n - 1, 0)
            if self.scrubber.value != max(at, 0):
                self.scrubber.value = max(at, 0)
        finally:
            self._syncing = False
        self.live_button.disabled = self._past is None
        if n == 0:
            text = "history: nothing recorded yet"
        else:
            span = f"{hist.times[0]:.1f}–{hist.times[-1]:.1f} s"
            where = "now" if self._past is None else f"<b>t = {hist.times[at]:.2f} s</b> (scrubbing)"
            text = f"{where} · {n:,} frames, {span} · {format_bytes(hist.nbytes)}"
            if hist.dropped:
                text += f" · {hist.dropped:,} oldest dropped"
        value = f"<span style='font:12px system-ui;color:#475569;white-space:nowrap'>{text}</span>"
        if self.scrub_label.value != value:
            self.scrub_label.value = value

    def run(self, steps: int, *, frame_every: int = 1) -> dict[str, Any]:
        """Step the simulator (or tick the pool) ``steps`` times, drawing every ``frame_every`` steps;
        returns the simulator's summary (or the pool's stats as a dict). Headless-friendly."""
        argument("steps", steps, integer(0))
        argument("frame_every", frame_every, integer(1))
        for i in range(steps):
            self._advance()
            if (i + 1) % frame_every == 0:
                self.frame()
        if steps % frame_every:
            self.frame()
        with self._lock:
            return self.sim.summary() if self.sim is not None else self.pool.stats().to_dict()

    def step(self) -> FrameInfo:
        """One simulator step (or one pool tick), then one frame."""
        self._advance()
        return self.frame()

    def compact_now(self) -> CompactionReport | None:
        """Run the compactor on the pool's real tensors now, then draw the result."""
        strategy = self.controls["compaction_strategy"].value
        with self._lock:
            try:
                report = self.pool.compact(strategy=strategy)
            except ImportError as err:
                log.warning("Compact now: the compactor is not available (%s)", err)
                return None
            self.last_report = self._last_compaction = report
        self.frame()
        return report

    def reset(self) -> None:
        """A fresh run: a new pool and simulator with the same config and seed (the pool's counters
        live in the pool), every view back to zero. A pool holding blocks the simulator did not make
        (a plain pool, your own blocks) is kept: the simulator starts over on it, the views restart
        and the stats show its counters from zero."""
        with self._lock:
            if self.sim is not None:
                self.sim.reset()  # frees what it allocated
            if self.sim is not None and self.pool.snapshot().block_id.size == 0:
                self._replace_pool(PagedPool(self.pool.config))
            else:
                self._reset_views()
            self.runs += 1
        self.frame()

    def play(self, fps: float | None = None) -> None:
        """Start the live loop in the background (the kernel keeps running other cells); after the end
        of the trace, a fresh run first."""
        if fps is not None:
            self.set("fps", fps)
        self._start_loop()
        self._sync_control("play", True)

    def _start_loop(self) -> None:
        if self.sim is not None and self.sim.done and not self._loop.running:
            self.reset()
        self._pace_anchor = None
        self._loop.start()

    def set_pace(self, pace: float) -> None:
        """Simulated seconds per wall second while playing (0: as fast as it runs), counted from now."""
        self.pace = float(pace)
        self._pace_anchor = None

    @property
    def finished(self) -> bool:
        """The trace has been served (never for a plain pool)."""
        return self.sim is not None and self.sim.done

    def stop(self) -> None:
        """Stop the live loop and wait for it to end (also after a frame failed: see ``loop.error``)."""
        self._loop.stop()
        self._sync_control("play", False)
        self._show_paused()

    pause = stop

    @property
    def playing(self) -> bool:
        return self._loop.running

    @property
    def loop(self) -> LiveLoop:
        return self._loop

    def close(self) -> None:
        """Stop the loop and close every widget of the dashboard."""
        if not hasattr(self, "_last_ctx"):  # __init__ refused its arguments or failed: nothing to stop
            super().close()
            return
        self.stop()
        for view in self.views:
            view.close()
        for widget in (self.header, self.status, self.scrubber, self.scrub_label, self.live_button,
                       *self.controls.values()):
            widget.close()
        super().close()

    def on_frame(self, callback: Callable[[PoolSnapshot, FrameInfo], None]) -> None:
        """Call ``callback(snapshot, info)`` after every frame (recording, tests, notebooks)."""
        self._frame_callbacks.append(callback)

    def set(self, name: str, value: Any) -> bool:
        """Change one control's setting as if moved in the front end; True when it was applied.

        Pool fields go through ``pool.configure`` (PoolConfig validation), simulator fields through
        ``sim.configure``, page and pool size rebuild the pool (and simulator) at once."""
        if name not in _SETTINGS:
            log.warning("Dashboard.set: unknown setting %r; known: %s", name, sorted(_SETTINGS))
            return False
        control = self.controls[name]
        if control.value == value and type(control.value) is type(value):
            return True
        self._applied[name] = False
        try:
            check_value(control, value)
            control.value = value  # the observer applies it (and reverts the control if refused)
        except Exception as err:  # traitlets refuses a value the control cannot even hold
            log.warning("Dashboard.set(%r, %r) refused: %s", name, value, err)
            return False
        return self._applied[name]

    # ------------------------------------------------------------------ controls
    def _wire_controls(self) -> None:
        for c in CONTROLS:
            widget = self.controls[c.name]
            if c.target != "action":
                widget.observe(lambda ch, name=c.name: self._on_control(name, ch["new"], ch["old"]), names="value")
            elif isinstance(widget, w.ToggleButton):
                widget.observe(lambda ch, c=c: self._guarded(c, ch["new"]), names="value")
            else:
                widget.on_click(lambda _b, c=c: self._guarded(c, None))

    def _guarded(self, control: Control, value: Any) -> None:
        run_logged(f"dashboard action {control.name}", control.act, self, value)  # type: ignore[arg-type]

    def _on_control(self, name: str, new: Any, old: Any) -> None:
        if self._syncing:
            return
        self._applied[name] = False
        try:
            with self._lock:
                self._apply(_SETTINGS[name], new)
            self._applied[name] = True
        except ValueError as err:
            log.warning("dashboard: %s=%r refused: %s", name, new, err)
            self._sync_control(name, old)
        self._show_idle()

    def _show_idle(self) -> None:
        """Grey out what has no effect now; the Apply button says what the pool becomes."""
        for c in CONTROLS:
            show_idle(c, self.controls[c.name], self)
        apply = self.controls["apply"]
        size = self.controls["memory_pool_initial_size"].value
        text = (f"Apply: {resize_note(self.pool.config, size)} · {self.controls['page_size'].value} pages"
                if self.rebuild_pending() else "Apply (rebuild pool)")
        if apply.description != text:
            apply.description = text
        if self.rebuild_pending():  # the button may be too narrow for all of it
            apply.tooltip = f"{text}\n{apply.tooltip}"

    def rebuild_pending(self) -> bool:
        """Page or pool size chosen differ from the pool's (Apply would build a new pool)."""
        cfg = self.pool.config
        try:
            new = resized_config(cfg, page_size=self.controls["page_size"].value,
                                 memory_pool_initial_size=self.controls["memory_pool_initial_size"].value)
        except ValueError:
            return True  # Apply says why
        return (new.page_size, new.memory_pool_initial_size) != (cfg.page_size, cfg.memory_pool_initial_size)

    def _apply(self, control: Control, value: Any) -> None:
        convert = control.to_config or (lambda v: v)
        if control.target == "pool":
            self.pool.configure(**{control.name: convert(value)})
        elif control.target == "sim":
            if self.sim is None:
                raise ValueError(f"{control.name} needs a simulator; this dashboard shows a plain pool")
            self.sim.configure(**{control.name: convert(value)})
        elif control.target == "view" and control.act is not None:
            control.act(self, value)
        # "rebuild": pending until "Apply (rebuild pool)"

    def _sync_control(self, name: str, value: Any) -> None:
        self._syncing = True
        try:
            self.controls[name].value = value
        finally:
            self._syncing = False

    def _resync(self, controls: Iterable[Control]) -> None:
        """Options and value of ``controls`` from the pool and simulator as they are now."""
        self._syncing = True
        try:
            for c in controls:
                widget = self.controls[c.name]
                if callable(c.options):
                    widget.options = options_of(c, self)
                widget.value = value_of(c, self)
        finally:
            self._syncing = False

    def play_toggled(self, on: bool) -> None:
        """The Play toggle's action (code calls `play` / `stop`): label the toggle, and start or stop
        the loop unless the toggle was only brought in step with it."""
        play = self.controls["play"]
        play.description, play.icon = ("Pause", "pause") if on else ("Play", "play")
        if self._syncing:
            return
        if on:
            self._start_loop()
        else:
            self._loop.stop()
            self._show_paused()

    def rebuild(self) -> None:
        """Build a new pool (and simulator) with the page and pool size chosen in the controls (the
        "Apply (rebuild pool)" button; `_resize`'s rule); a refused size is logged, the controls put back."""
        page = self.controls["page_size"].value
        size = self.controls["memory_pool_initial_size"].value
        with self._lock:
            try:
                cfg = resized_config(self.pool.config, page_size=page, memory_pool_initial_size=size)
                pool = PagedPool(cfg)
            except ValueError as err:
                log.warning("dashboard: rebuild with page_size=%s, pool size=%s refused: %s", page, size, err)
                self._resync(c for c in CONTROLS if c.target == "rebuild")
                self._show_idle()
                return
            self._replace_pool(pool)
            if cfg.compaction_budget_bytes is not None:  # a budget in pages of the old size: back to default
                self.pool.configure(compaction_budget_bytes=None)
            self._resync(c for c in CONTROLS if callable(c.options))
            self.header.value = self._header_html()
            self.runs += 1
            self._show_idle()
        log.info("dashboard: rebuilt the pool: %r", pool)
        self.frame()

    def _replace_pool(self, pool: PagedPool) -> None:
        """Run on ``pool`` from now on: a new simulator (same config, seed and trace), views reset."""
        if self.sim is not None:
            self.sim = type(self.sim)(pool, self.sim.config, requests=self.sim.requests, tag=self.sim.tag)
        self.pool = pool
        self.page_map.pool = pool
        self._reset_views()

    def _reset_views(self) -> None:
        for view in self.views:
            view.reset()
        self.last_report = self._last_compaction = None
        self._pace_anchor = None
        self.history = SnapshotHistory(self.history_bytes)
        self._hist_steps, self._past = 0, None

    # ------------------------------------------------------------------ loop
    def _advance(self) -> None:
        with self._lock:
            if self.sim is not None:
                if not self.sim.done:
                    self.sim.step()
                return
            try:
                report = self.pool.tick()
            except ImportError:
                return  # no compactor: a plain pool has nothing to do between frames
            if report is not None:
                self._last_compaction = report

    def _live_tick(self, deadline: float) -> None:
        """Loop thread: step the simulator until the frame is due (or N steps), then draw.

        Steps run in short bursts under one hold of the dashboard's lock (a burst is a fraction of a
        millisecond, so controls still act between bursts): per-step locking and clock reads cost
        the simulator more than drawing the frames did."""
        if self.sim is None:
            self._advance()
            self._frame(live=True)
            return
        n = 0
        limit = self.steps_per_frame
        target = self._paced_clock(deadline)
        while time.perf_counter() < deadline and (limit == 0 or n < limit):
            with self._lock:
                sim = self.sim
                if sim is None or sim.done or sim.clock >= target:
                    break
                burst = _BURST if limit == 0 else min(_BURST, limit - n)
                for _ in range(burst):
                    sim.step()
                    n += 1
                    if sim.done or sim.clock >= target:
                        break
        self._frame(live=True)
        if self.finished:
            self._at_trace_end()

    def _paced_clock(self, due: float) -> float:
        """The simulated time the frame due at ``due`` shows at this pace (inf: no pace)."""
        sim = self.sim
        if self.pace <= 0 or sim is None:
            return float("inf")
        anchor = self._pace_anchor
        behind = anchor is not None and sim.clock < anchor[1] + self.pace * (due - anchor[0] - _MAX_LAG_S)
        if anchor is None or anchor[1] > sim.clock or behind:
            anchor = self._pace_anchor = (time.perf_counter(), sim.clock)  # new run, or behind: count from now
        return anchor[1] + self.pace * (due - anchor[0])

    def _at_trace_end(self) -> None:
        """Loop thread: the trace has been served; start a fresh run ("loop") or stop and say so."""
        if self.at_end == "loop":
            self.reset()
            return
        self._loop.stop()  # from its own thread: ends after this frame
        self._sync_control("play", False)
        self._show_paused()

    # ------------------------------------------------------------------ text
    def _show_paused(self) -> None:
        # the status line says "paused" at once; best effort: stopping must work after a failed frame
        try:
            self._refresh_text()
        except Exception:
            log.exception("dashboard: the stats could not be refreshed after stopping")

    def _refresh_text(self) -> None:
        """The last snapshot again, for what changed since it was drawn (selection, report, loop)."""
        with self._lock:  # the stats and the selection shown come from one snapshot
            ctx = self._last_ctx
            if ctx is None:
                return
            # a live frame between text refreshes carries no summary: take it now (a past frame keeps its own)
            summary = self.sim.summary() if self.sim is not None and ctx.past is None else ctx.summary
            ctx = replace(ctx, report=self.last_report, selected=self.page_map.selected_block(ctx.snapshot),
                          fresh=False, text=True, summary=summary)
            for view in self.views:
                view.update(ctx)
            self._show_status(ctx.snapshot)
            self._show_history()

    def _show_status(self, snap: PoolSnapshot) -> None:
        live = self._loop.running
        executor = getattr(self._last_compaction, "executor", None)  # CompactionReport.executor, when it has one
        value = status_html(live=live, fps=self._loop.achieved_fps, seq=snap.seq, run=self.runs,
                            progress=progress_of(self.sim) if self.sim is not None else None,
                            executor=str(executor) if executor else None)
        if value != self.status.value:
            self.status.value = value

    # ------------------------------------------------------------------ layout
    def _header_html(self) -> str:
        device = html.escape(device_label(str(self.pool.device)))
        return ("<div style='line-height:1.25;white-space:nowrap'>"
                "<b style='font:600 15px system-ui'>autoglm_lab · live pool</b><br>"
                f"<span style='color:#64748b;font:12px system-ui'>pool on {device}</span></div>")

    def _row_widgets(self, row: int) -> list[w.Widget]:
        """The widgets of ``row`` in registration order; views sharing a ``column`` stack in one box,
        placed where the first of them is."""
        slots: list[str | w.Widget] = []
        columns: dict[str, list[w.Widget]] = {}
        for v in (v for v in self.views if v.row == row):
            column = getattr(v, "column", None)
            if column is None:
                slots.append(v.widget)
            else:
                if column not in columns:
                    slots.append(column)
                columns.setdefault(column, []).append(v.widget)
        return [FixedVBox(columns[x], layout=w.Layout(flex="0 0 auto")) if isinstance(x, str) else x for x in slots]

    def _layout_children(self) -> list[w.Widget]:
        # rows wrap instead of overflowing: at 1,200 px with the side bar open the charts stack
        c = self.controls
        bar = FixedHBox([self.header, *(c[k.name] for k in CONTROLS if k.panel == "bar"), self.status],
                        layout=w.Layout(align_items="center", flex_flow="row wrap", width="100%"))
        rows = [FixedHBox(self._row_widgets(row),
                          layout=w.Layout(align_items="flex-start", flex_flow="row wrap", width="100%",
                                          overflow="hidden"))
                for row in sorted({v.row for v in self.views})]

        def box(label: str) -> w.VBox:
            head = FixedHTML(f"<b style='font:600 12px system-ui;color:#334155'>{label}</b>")
            return FixedVBox([head, *(c[k.name] for k in CONTROLS if k.panel == label)],
                             layout=w.Layout(border="1px solid #e2e8f0", padding="4px 8px", margin="2px",
                                             overflow="hidden", min_width="0"))

        panels = FixedGridBox([box(label) for label in PANELS],
                              layout=w.Layout(grid_template_columns="repeat(auto-fit, minmax(290px, 1fr))",
                                              width="100%"))
        history = FixedHBox([self.scrubber, self.scrub_label, self.live_button],
                            layout=w.Layout(align_items="center", flex_flow="row wrap", width="100%"))
        return [bar, history, *rows, panels]


def demo_pace(sim: Any, story_s: float = _DEMO_STORY_S) -> float:
    """Real time (1), or the smallest pace of the control that serves ``sim``'s trace (its last arrival,
    at the simulator's request rate) within ``story_s`` seconds of watching."""
    arrivals = [r.arrival_s for r in sim.requests if r.arrival_s == r.arrival_s]  # NaN: follow-up turns
    span = max(arrivals, default=0.0) / sim.config.request_rate_scale
    paces = sorted(p for _, p in PACES if p >= 1)
    return next((p for p in paces if span / p <= story_s), paces[-1])
