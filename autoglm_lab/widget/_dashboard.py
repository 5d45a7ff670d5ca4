"""`Dashboard(pool, sim=None)`: the page map, heatmap, latency trace and stats, with controls
bound to the live pool (and simulator), a background live loop and a headless API.

```
 [Play] [Step] [Compact now] [Reset]                       status: fps, seq, sim clock
 +---------------------------------------------+  +--------------------+
 | page map (PageMap)                          |  | stats (StatsPanel) |
 +---------------------------------------------+  +--------------------+
 | heatmap (FragmentationHeatmap)  | latency (LatencyTrace)             |
 | compaction | allocator | workload | pool (rebuild) | view   (controls) |
```

Every control goes through `Dashboard.set(name, value)`: the value is checked by the control
(front-end guard), then by `PoolConfig` / `ServingConfig` validation (`pool.configure`,
`sim.configure`); a refused value logs a warning and the control snaps back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ..pool import PagedPool, PoolSnapshot, format_size, parse_size
from ._codec import PageFrame
from ._controls import (
    FixedGridBox,
    FixedHBox,
    FixedHTML,
    FixedVBox,
    GuardedButton,
    GuardedDropdown,
    GuardedFloatLogSlider,
    GuardedFloatSlider,
    GuardedIntSlider,
    GuardedToggleButton,
    GuardedToggleButtons,
    check_value,
)
from ._heatmap import METRICS, FragmentationHeatmap
from ._loop import LiveLoop
from ._messages import NoFrontEndState
from ._pagemap import PageMap
from ._palette import COLOR_MODES
from ._stats import StatsPanel
from ._trace import LatencyTrace, window_from_events, window_from_steps

if TYPE_CHECKING:
    from ..compactor import CompactionReport
    from ..workload import ServingSim

__all__ = ["Dashboard", "FrameInfo", "POOL_FIELDS", "SIM_FIELDS", "REBUILD_FIELDS", "VIEW_FIELDS"]

log = logging.getLogger("autoglm_lab.widget")

POOL_FIELDS = ("fragmentation_threshold_factor", "free_ratio_trigger", "max_consecutive_failures",
               "compaction_budget_bytes", "compaction", "compaction_strategy", "fit", "coalesce")
SIM_FIELDS = ("cache_reuse_strategy", "kv_layout", "request_rate_scale")
REBUILD_FIELDS = ("page_size", "memory_pool_initial_size")
VIEW_FIELDS = ("color_by", "heat_metric", "fps", "steps_per_frame")
_BURST = 8  # simulator steps per hold of the dashboard lock in the live loop
_STRATEGIES = ("two_finger", "sliding", "targeted")
_PAGE_SIZES = ("4KiB", "16KiB", "64KiB", "256KiB", "1MiB", "2MiB")
_POOL_SIZES = ("4MiB", "16MiB", "64MiB", "256MiB", "1GiB")
_SPEEDS = (("max", 0), ("1 step", 1), ("4 steps", 4), ("16 steps", 16), ("64 steps", 64))
_TRACE_STEPS = 1024
_TRACE_KEYS = ("time_s", "step_latency_s", "alloc_latency_s", "compaction_pause_s", "failures")
_STATS_PERIOD_S = 0.2


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

    ``dash.pool`` and ``dash.sim`` are the live objects: applying a new page or pool size builds new
    ones (your own variables keep pointing at the old ones).

    Threads: the live loop and the comm handlers (controls, page-map clicks) share ``self._lock``
    (the page map's lock too), so a handler never sees half a frame.
    """

    def __init__(self, pool: PagedPool, sim: ServingSim | None = None, *, fps: float = 10.0,
                 width_px: int = 1000) -> None:
        if not isinstance(pool, PagedPool):
            raise TypeError(f"pool must be a PagedPool, not {type(pool).__name__}")
        if sim is not None and getattr(sim, "pool", pool) is not pool:
            raise ValueError("sim runs on a different pool than the one given to the Dashboard")
        if isinstance(fps, bool) or not isinstance(fps, int | float) or not 1 <= fps <= 60:
            raise ValueError(f"fps={fps!r} is not allowed: use a number from 1 to 60")
        self.pool = pool
        self.sim = sim
        self._lock = threading.RLock()  # one step or one frame at a time (loop thread vs comm handlers)
        self._frame_callbacks: list[Callable[[PoolSnapshot, FrameInfo], None]] = []
        self._syncing = False
        self.last_report: CompactionReport | None = None
        self.steps_per_frame = 0  # 0: as many as fit between frames
        stats_w = 290
        self.page_map = PageMap(pool, width_px=width_px - stats_w - 24, height_px=340, lock=self._lock)
        self.heatmap = FragmentationHeatmap(width_px=width_px // 2 - 8, height_px=210)
        self.trace = LatencyTrace(width_px=width_px // 2 - 8, height_px=210)
        self.stats = StatsPanel(layout=w.Layout(width=f"{stats_w}px"))
        # one comm message per frame: the heatmap's and trace's frames ride on the page map's comm
        self.heatmap.ride(self.page_map)
        self.trace.ride(self.page_map)
        self._trace_mark: tuple[int, float] | None = None  # (steps, clock) or (events, seq) on show
        self.page_map.on_select(lambda _info: self._refresh_stats())
        self._loop = LiveLoop(self._live_tick, fps=float(fps))
        self.controls: dict[str, w.DOMWidget] = {}
        self._build_controls()
        self.status = FixedHTML(layout=w.Layout(margin="0 0 0 12px"))
        super().__init__(children=self._layout_children(width_px),
                         layout=w.Layout(width=f"{width_px + 20}px", padding="4px"))
        self._last_snapshot: PoolSnapshot | None = None
        self._stats_at = 0.0
        self.frame()

    # ------------------------------------------------------------------ public API
    @classmethod
    def demo(cls, *, fps: float = 10.0, kv_layout: str = "contiguous", seed: int = 0, **pool_overrides: Any
             ) -> Dashboard:
        """A ready-to-play default: a 64 MiB CPU pool of 64 KiB pages, contiguous KV, the shipped
        conversation trace (or a synthetic one when it is absent), LRU cache reuse
        (`autoglm_lab.workload.demo_setup`)."""
        from ..workload import demo_setup

        pool, sim = demo_setup(kv_layout=kv_layout, seed=seed, **pool_overrides)
        return cls(pool, sim, fps=fps)

    def frame(self) -> FrameInfo:
        """Snapshot the pool and draw everything once (synchronous; works without a front end)."""
        return self._frame(live=False)

    def _frame(self, *, live: bool) -> FrameInfo:
        with self._lock:
            t0, c0 = time.perf_counter(), time.thread_time()
            snap = self.pool.snapshot()
            t1 = time.perf_counter()
            sim = self.sim
            with self.page_map.frame_bus.batch():  # the three views' frames leave as one message
                page_frame = self.page_map.update(snap)
                self.heatmap.update(snap, time_s=sim.clock if sim is not None else snap.time_s)
                # the trace only when there is something new to show
                mark = (sim.steps, sim.clock) if sim is not None else (snap.events_total, snap.seq)
                if mark != self._trace_mark:
                    self._trace_mark = mark
                    self.trace.update(window_from_steps(sim.recent_steps(_TRACE_STEPS, keys=_TRACE_KEYS))
                                      if sim is not None else window_from_events(snap.events))
            self._last_snapshot = snap
            # text is read, not watched: in the live loop refresh it 5 times a second, not 20
            if not live or t0 - self._stats_at >= _STATS_PERIOD_S:
                self._stats_at = t0
                self._refresh_stats()
            info = FrameInfo(seq=snap.seq, page_frame=page_frame, snapshot_s=t1 - t0,
                             frame_s=time.perf_counter() - t0, frame_cpu_s=time.thread_time() - c0)
            for callback in self._frame_callbacks:
                callback(snap, info)
            return info

    def run(self, steps: int, *, frame_every: int = 1) -> dict[str, Any]:
        """Step the simulator (or tick the pool) ``steps`` times, drawing every ``frame_every`` steps;
        returns the simulator's summary (or the pool's stats as a dict). Headless-friendly."""
        for name, value in (("steps", steps), ("frame_every", frame_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "steps" else 1):
                raise ValueError(f"{name}={value!r} is not allowed: use an integer >= {0 if name == 'steps' else 1}")
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
            self.last_report = report
        self.frame()
        return report

    def reset(self) -> None:
        """Start the simulator over (a plain pool keeps its blocks) and clear the history views."""
        with self._lock:
            if self.sim is not None:
                self.sim.reset()
            self.heatmap.clear()
            self.trace.clear()
            self._trace_mark = None
            self.last_report = None
        self.frame()

    def play(self, fps: float | None = None) -> None:
        """Start the live loop in the background (the kernel keeps running other cells)."""
        if fps is not None:
            self.set("fps", fps)
        self._loop.start()
        self._sync_control("play", True)

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
        self.stop()
        for widget in (self.page_map, self.heatmap, self.trace, self.stats, self.status, *self.controls.values()):
            widget.close()
        super().close()

    def on_frame(self, callback: Callable[[PoolSnapshot, FrameInfo], None]) -> None:
        """Call ``callback(snapshot, info)`` after every frame (recording, tests, notebooks)."""
        self._frame_callbacks.append(callback)

    def set(self, name: str, value: Any) -> bool:
        """Change one control's setting as if moved in the front end; True when it was applied.

        Pool fields go through ``pool.configure`` (PoolConfig validation), simulator fields through
        ``sim.configure``, page and pool size rebuild the pool (and simulator) at once."""
        if name not in self.controls or name in ("play", "step", "compact", "reset", "apply"):
            log.warning("Dashboard.set: unknown setting %r; known: %s", name, sorted(self._settings()))
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
    def _settings(self) -> tuple[str, ...]:
        return POOL_FIELDS + SIM_FIELDS + REBUILD_FIELDS + VIEW_FIELDS

    def _build_controls(self) -> None:
        cfg = self.pool.config
        style = {"description_width": "118px"}
        tstyle = {"description_width": "118px", "button_width": "62px"}
        lay = w.Layout(width="310px")
        c = self.controls
        c["fragmentation_threshold_factor"] = GuardedFloatSlider(
            value=cfg.fragmentation_threshold_factor, min=0.0, max=1.0, step=0.05,
            description="defrag threshold", style=style, layout=lay,
            tooltip="fragmentation_threshold_factor: compact when external fragmentation passes this")
        c["free_ratio_trigger"] = GuardedFloatSlider(
            value=cfg.free_ratio_trigger, min=0.0, max=1.0, step=0.05, description="free-ratio trigger",
            style=style, layout=lay)
        c["max_consecutive_failures"] = GuardedIntSlider(
            value=cfg.max_consecutive_failures, min=1, max=20, description="max failures",
            style=style, layout=lay)
        c["compaction_budget_bytes"] = GuardedDropdown(
            options=self._budget_options(), value=cfg.compaction_budget_bytes or 0,
            description="step budget", style=style, layout=lay)
        c["compaction"] = GuardedToggleButtons(
            options=["off", "lazy", "eager"], value=cfg.compaction, description="compaction", style=tstyle)
        c["compaction_strategy"] = GuardedDropdown(
            options=self._strategies(), value=cfg.compaction_strategy, description="strategy", style=style,
            layout=lay)
        c["fit"] = GuardedToggleButtons(options=["first", "best"], value=cfg.fit, description="fit", style=tstyle)
        c["coalesce"] = GuardedToggleButtons(options=["eager", "lazy"], value=cfg.coalesce, description="coalesce",
                                             style=tstyle)
        scfg = self.sim.config if self.sim is not None else None
        c["cache_reuse_strategy"] = GuardedDropdown(
            options=["none", "lru", "ttl"], value=scfg.cache_reuse_strategy if scfg else "none",
            description="cache reuse", style=style, layout=lay, disabled=scfg is None)
        c["kv_layout"] = GuardedToggleButtons(
            options=["contiguous", "paged"], value=scfg.kv_layout if scfg else "contiguous",
            description="KV layout", style={**tstyle, "button_width": "92px"}, disabled=scfg is None)
        c["request_rate_scale"] = GuardedFloatLogSlider(
            value=scfg.request_rate_scale if scfg else 1.0, base=10, min=-1, max=1, step=0.05,
            description="request rate ×", style=style, layout=lay, disabled=scfg is None)
        c["page_size"] = GuardedDropdown(options=_with(_PAGE_SIZES, format_size(self.pool.page_size)),
                                         value=format_size(self.pool.page_size), description="page size",
                                         style=style, layout=lay)
        c["memory_pool_initial_size"] = GuardedDropdown(
            options=_with(_POOL_SIZES, format_size(int(cfg.memory_pool_initial_size))),  # type: ignore[arg-type]
            value=format_size(int(cfg.memory_pool_initial_size)),  # type: ignore[arg-type]
            description="pool size", style=style, layout=lay)
        c["apply"] = GuardedButton(description="Apply (rebuild pool)", icon="refresh", layout=w.Layout(width="300px"))
        c["color_by"] = GuardedToggleButtons(options=list(COLOR_MODES), value=self.page_map.color_by,
                                             description="colour pages by", style=tstyle)
        c["heat_metric"] = GuardedToggleButtons(options=list(METRICS), value=self.heatmap.metric,
                                                description="heatmap shows", style=tstyle)
        c["fps"] = GuardedIntSlider(value=int(self._loop.fps), min=1, max=30, description="frames / s",
                                    style=style, layout=lay)
        c["steps_per_frame"] = GuardedDropdown(options=list(_SPEEDS), value=0, description="sim steps / frame",
                                               style=style, layout=lay, disabled=self.sim is None)
        c["play"] = GuardedToggleButton(value=False, description="Play", icon="play", button_style="success",
                                        layout=w.Layout(width="96px"))
        c["step"] = GuardedButton(description="Step", icon="step-forward", layout=w.Layout(width="86px"))
        c["compact"] = GuardedButton(description="Compact now", icon="compress", button_style="warning",
                                     layout=w.Layout(width="130px"))
        c["reset"] = GuardedButton(description="Reset", icon="undo", layout=w.Layout(width="86px"))
        self._applied: dict[str, bool] = {}
        for name in self._settings():
            c[name].observe(lambda ch, name=name: self._on_control(name, ch["new"], ch["old"]), names="value")
        c["play"].observe(lambda ch: self._on_play(ch["new"]), names="value")
        c["step"].on_click(lambda _b: self._guarded(self.step))
        c["compact"].on_click(lambda _b: self._guarded(self.compact_now))
        c["reset"].on_click(lambda _b: self._guarded(self.reset))
        c["apply"].on_click(lambda _b: self._guarded(self._rebuild))

    def _guarded(self, action: Callable[[], Any]) -> None:
        # button callbacks run in the comm handler: log failures instead of losing them
        try:
            action()
        except Exception:
            log.exception("dashboard action %s failed", getattr(action, "__name__", action))

    def _budget_options(self) -> list[tuple[str, int]]:
        ps = self.pool.page_size
        return [("default step", 0)] + [(f"{n} page{'s' * (n > 1)} · {format_size(n * ps)}", n * ps)
                                        for n in (1, 4, 16, 64, 256)]

    def _strategies(self) -> list[str]:
        # offer what this PoolConfig accepts (the compactor may know more than the config)
        ok = []
        for s in _STRATEGIES:
            try:
                self.pool.config.replace(compaction_strategy=s)
                ok.append(s)
            except ValueError:
                continue
        return ok

    def _on_control(self, name: str, new: Any, old: Any) -> None:
        if self._syncing:
            return
        self._applied[name] = False
        try:
            with self._lock:
                self._apply(name, new)
            self._applied[name] = True
        except ValueError as err:
            log.warning("dashboard: %s=%r refused: %s", name, new, err)
            self._sync_control(name, old)

    def _apply(self, name: str, value: Any) -> None:
        if name in POOL_FIELDS:
            if name == "compaction_budget_bytes":
                value = None if value == 0 else value
            self.pool.configure(**{name: value})
        elif name in SIM_FIELDS:
            if self.sim is None:
                raise ValueError(f"{name} needs a simulator; this dashboard shows a plain pool")
            self.sim.configure(**{name: value})
        elif name in REBUILD_FIELDS:
            pass  # pending until "Apply (rebuild pool)"
        elif name == "color_by":
            self.page_map.color_by = value
        elif name == "heat_metric":
            self.heatmap.metric = value
            self.heatmap.clear()  # one metric per history
        elif name == "fps":
            self._loop.fps = float(value)
        elif name == "steps_per_frame":
            self.steps_per_frame = int(value)

    def _sync_control(self, name: str, value: Any) -> None:
        self._syncing = True
        try:
            self.controls[name].value = value
        finally:
            self._syncing = False

    def _on_play(self, on: bool) -> None:
        play = self.controls["play"]
        play.description, play.icon = ("Pause", "pause") if on else ("Play", "play")
        if self._syncing:
            return
        if on:
            self._loop.start()
        else:
            self._loop.stop()
            self._show_paused()

    def _rebuild(self) -> None:
        """Build a new pool (and simulator) with the chosen page and pool size."""
        page = self.controls["page_size"].value
        size = self.controls["memory_pool_initial_size"].value
        with self._lock:
            old = self.pool.config
            max_size = max(parse_size(size), int(old.max_size))  # type: ignore[arg-type]
            seg = None if old.segment_size == old.memory_pool_initial_size else old.segment_size
            try:
                cfg = old.replace(page_size=page, memory_pool_initial_size=size, max_size=max_size,
                                  segment_size=seg)
                pool = PagedPool(cfg)
            except ValueError as err:
                log.warning("dashboard: rebuild with page_size=%s, pool size=%s refused: %s", page, size, err)
                self._sync_control("page_size", format_size(self.pool.page_size))
                self._sync_control("memory_pool_initial_size", format_size(int(old.memory_pool_initial_size)))  # type: ignore[arg-type]
                return
            sim = None
            if self.sim is not None:
                sim = type(self.sim)(pool, self.sim.config, requests=self.sim.requests, tag=self.sim.tag)
            self.pool, self.sim = pool, sim
            self.page_map.pool = pool
            self.heatmap.clear()
            self.trace.clear()
            self._trace_mark = None
            self.last_report = None
            budget = self.controls["compaction_budget_bytes"]
            self._syncing = True
            try:
                budget.options = self._budget_options()
                budget.value = 0
            finally:
                self._syncing = False
            if cfg.compaction_budget_bytes is not None:
                self.pool.configure(compaction_budget_bytes=None)
        log.info("dashboard: rebuilt the pool: %r", pool)
        self.frame()

    # ------------------------------------------------------------------ loop
    def _advance(self) -> None:
        with self._lock:
            if self.sim is not None:
                if not self.sim.done:
                    self.sim.step()
            else:
                try:
                    self.pool.tick()
                except ImportError:
                    pass  # no compactor: a plain pool has nothing to do between frames

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
        while time.perf_counter() < deadline and (limit == 0 or n < limit):
            with self._lock:
                sim = self.sim
                if sim is None or sim.done:
                    break
                burst = _BURST if limit == 0 else min(_BURST, limit - n)
                for _ in range(burst):
                    sim.step()
                    n += 1
                    if sim.done:
                        break
        self._frame(live=True)

    def _show_paused(self) -> None:
        # the status line says "paused" at once; best effort: stopping must work after a failed frame
        try:
            self._refresh_stats()
        except Exception:
            log.exception("dashboard: the stats could not be refreshed after stopping")

    def _refresh_stats(self) -> None:
        with self._lock:  # the stats and the selection shown come from one snapshot
            self._refresh_stats_locked()

    def _refresh_stats_locked(self) -> None:
        snap = self._last_snapshot
        if snap is None:
            return
        extra: dict[str, str] = {}
        sim = self.sim
        if sim is not None:
            totals = getattr(sim, "totals", {})
            lookups = totals.get("cache_lookups", 0)
            extra["cache hit rate"] = f"{totals.get('cache_hits', 0) / lookups:.1%}" if lookups else "–"
            extra["sim clock"] = f"{sim.clock:.2f} s · {sim.steps:,} steps"
        if self.last_report is not None:
            r = self.last_report
            extra["last compact now"] = f"{r.pages_moved:,} pages · {r.pause_s * 1e3:.1f} ms"
        self.stats.update(snap.stats, extra, self.page_map.selected_block(snap))
        fps = self._loop.achieved_fps if self._loop.running else 0.0
        live = self._loop.running
        dot = "<span style='color:{}'>●</span>".format("#16a34a" if live else "#94a3b8")
        self.status.value = (f"<span style='color:#475569;font:12px system-ui'>{dot} "
                             f"{'live' if live else 'paused'} · {fps:.1f} frames/s · seq {snap.seq}</span>")

    # ------------------------------------------------------------------ layout
    def _layout_children(self, width_px: int) -> list[w.Widget]:
        c = self.controls
        title = FixedHTML("<b style='font:600 15px system-ui'>autoglm_lab · live pool</b>",
                          layout=w.Layout(margin="0 16px 0 0"))
        bar = FixedHBox([title, c["play"], c["step"], c["compact"], c["reset"], self.status],
                        layout=w.Layout(align_items="center"))

        def box(label: str, names: list[str]) -> w.VBox:
            head = FixedHTML(f"<b style='font:600 12px system-ui;color:#334155'>{label}</b>")
            return FixedVBox([head, *(c[n] for n in names)],
                             layout=w.Layout(border="1px solid #e2e8f0", padding="4px 8px", margin="2px"))

        panels = FixedGridBox(
            [box("Compaction", ["compaction", "compaction_strategy", "fragmentation_threshold_factor",
                                "free_ratio_trigger", "max_consecutive_failures", "compaction_budget_bytes"]),
             box("Allocator & pool", ["fit", "coalesce", "page_size", "memory_pool_initial_size", "apply"]),
             box("Workload & view", ["kv_layout", "cache_reuse_strategy", "request_rate_scale",
                                     "steps_per_frame", "color_by", "heat_metric", "fps"])],
            layout=w.Layout(grid_template_columns="repeat(3, 1fr)", width=f"{width_px}px"))
        return [bar,
                FixedHBox([self.page_map, self.stats], layout=w.Layout(align_items="flex-start")),
                FixedHBox([self.heatmap, self.trace]),
                panels]


def _with(options: tuple[str, ...], current: str) -> list[str]:
    return list(options) if current in options else sorted([*options, current], key=parse_size)
