"""`SnapshotPlayer`: a PyTorch memory snapshot's trace, replayed, with a time slider: torch's caching
allocator (as modelled) and a paged pool side by side, each with its page map, fragmentation heatmap
and latency trace, stepping from OOM to OOM.

```python
from autoglm_lab.widget import SnapshotPlayer
player = SnapshotPlayer.load("oom.pickle", config={"page_size": "2MiB", "compaction": "lazy"})
player                      # display it; player.next_oom(), player.show(i), player.play()
```

The frames come from `autoglm_lab.torchsnap.replay_frames` (both replays run once, up front, on any
machine: the pool is bookkeeping-only); each side is recorded into a `SnapshotHistory` and drawn by the
dashboard's own views, the way the dashboard scrubs its own history. The torch side's page space is
its reserved memory at that moment, so it grows and shrinks: its heatmap's rows are fixed fractions
of that space (``min(64, fewest pages)`` rows), each column over its own frame's pages. The trace panel shows what each
allocator's replay implies per frame: OOMs / failed allocations as markers, and on the paged side the
modelled compaction pause (bytes moved / bandwidth); the torch side has no pause to show (its
cudaMalloc and cache flushes are counted in the line under its page map).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Mapping
from os import PathLike
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import numpy as np

from ..history import SnapshotHistory
from ..pool import PoolSnapshot, format_bytes
from ._controls import FixedHBox, FixedHTML, FixedVBox, GuardedButton, GuardedIntSlider
from ._heatmap import HeatmapView
from ._loop import LiveLoop
from ._messages import NoFrontEndState, argument, integer, number, run_logged
from ._pagemap import PageMapView
from ._trace import TraceView
from ._view import PastFrame, ViewContext, ViewSetup

if TYPE_CHECKING:
    from ..torchsnap import ReplayFrames, TorchSnapshot

__all__ = ["SnapshotPlayer", "side_histories"]

_SIDES = ("torch", "paged")


def side_histories(frames: ReplayFrames) -> dict[str, SnapshotHistory]:
    """The two replays as histories: every frame's snapshot at its trace time, with one step row per
    frame (OOMs / failed allocations as failures; the paged pool's modelled pause)."""
    n = len(frames.entry_index)
    time_s = np.asarray(frames.time_s, np.float64)
    zero = np.zeros(n)
    rows = {
        "torch": {"failures": np.asarray(frames.torch_ooms, np.int64), "compaction_pause_s": zero},
        "paged": {"failures": np.asarray(frames.paged_failed_allocs, np.int64),
                  "compaction_pause_s": np.asarray(frames.paged_pause_s, np.float64)},
    }
    out = {}
    for side in _SIDES:
        hist = SnapshotHistory(max_bytes=1 << 40)  # the frames are already bounded by their count
        snaps: tuple[PoolSnapshot, ...] = getattr(frames, side)
        for i, snap in enumerate(snaps):
            step = {"time_s": time_s[i:i + 1], "step_latency_s": np.full(1, np.nan), "alloc_latency_s": zero[:1],
                    "compaction_pause_s": rows[side]["compaction_pause_s"][i:i + 1],
                    "failures": rows[side]["failures"][i:i + 1],
                    "compaction_reason": np.full(1, -1, np.int64)}
            hist.record(snap, float(time_s[i]), steps=step)
        out[side] = hist
    return out


class SnapshotPlayer(NoFrontEndState, w.VBox):
    """Side-by-side replay of a torch snapshot's trace (see the module's docstring).
    ``show(i)`` draws frame ``i``; ``next_oom()`` / ``prev_oom()`` jump between OOMs; ``play()`` steps
    through the frames in the background at ``fps``; ``stop()``; ``close()``."""

    def __init__(self, frames: ReplayFrames, *, width_px: int = 1200, fps: float = 4.0) -> None:
        argument("width_px", width_px, integer(600, 10_000))
        argument("fps", fps, number(0.5, 30))
        if not len(frames.entry_index):
            raise ValueError("the replay has no frames to show")
        self.frames = frames
        self.histories = side_histories(frames)
        self._lock = threading.RLock()
        self.index = 0
        span = float(frames.time_s[-1] - frames.time_s[0]) if len(frames.time_s) else 0.0
        half = width_px // 2 - 12
        self.views: dict[str, tuple[Any, ...]] = {}
        columns = []
        carrier = None
        for side in _SIDES:
            setup = ViewSetup(None, half + 300, self._lock)  # type: ignore[arg-type]  # no live pool
            views = (PageMapView(setup), HeatmapView(setup), TraceView(setup))
            pages = min(snap.num_pages for snap in getattr(frames, side))
            views[1].widget.buckets = max(1, min(64, pages))  # the same rows in every frame
            views[1].widget.keep_on_resize = True
            views[1].prime(self.histories[side], getattr(frames, side))  # every scrub's columns, once
            for v in views[1:]:
                v.widget.window_s = max(span * 1.02, 1e-3)
                v.widget.layout = w.Layout(width="100%", min_width="0")
            views[0].widget.layout = w.Layout(width="100%", min_width="0")
            for v in views:
                if carrier is None:
                    carrier = v.widget
                else:
                    v.widget.ride(carrier)
            line = FixedHTML()
            label = frames.torch_label if side == "torch" else frames.paged_label
            head = FixedHTML(f"<b style='font:600 13px system-ui'>{html.escape(label)}</b>")
            self.views[side] = (*views, line)
            columns.append(FixedVBox([head, views[0].widget, line, views[1].widget, views[2].widget],
                                     layout=w.Layout(flex="1 1 420px", min_width="0", margin="0 6px")))
        self._carrier = carrier
        self.slider = GuardedIntSlider(0, min=0, max=len(frames.entry_index) - 1, continuous_update=False,
                                       readout=False, description="trace",
                                       tooltip="drag through the trace: both replays at the same entry",
                                       layout=w.Layout(flex="1 1 300px", min_width="0"))
        # show() moves the slider too: only a move to another frame is the user's
        self.slider.observe(lambda ch: ch["new"] != self.index and run_logged(
            "snapshot player: show", self.show, int(ch["new"])), names="value")
        self.buttons = {
            "prev": GuardedButton(description="◀ OOM", tooltip="the previous OOM of the trace"),
            "next": GuardedButton(description="OOM ▶", tooltip="the next OOM of the trace"),
            "play": GuardedButton(description="Play", tooltip="step through the frames; press again to pause"),
        }
        self.buttons["prev"].on_click(lambda _b: run_logged("snapshot player: previous OOM", self.prev_oom))
        self.buttons["next"].on_click(lambda _b: run_logged("snapshot player: next OOM", self.next_oom))
        self.buttons["play"].on_click(lambda _b: run_logged("snapshot player: play", self.toggle))
        for b in self.buttons.values():
            b.layout = w.Layout(width="auto")
        self.label = FixedHTML(layout=w.Layout(flex="0 1 420px", min_width="0", overflow="hidden"))
        self._loop = LiveLoop(self._tick, fps=float(fps), name="autoglm-snapshot-player")
        bar = FixedHBox([self.buttons["prev"], self.buttons["play"], self.buttons["next"], self.slider, self.label],
                        layout=w.Layout(align_items="center", flex_flow="row wrap", width="100%"))
        body = FixedHBox(columns, layout=w.Layout(flex_flow="row wrap", width="100%", align_items="flex-start"))
        super().__init__(children=[bar, body], layout=w.Layout(width="100%", max_width=f"{width_px}px"))
        self.show(0)

    @classmethod
    def load(cls, source: str | PathLike[str] | TorchSnapshot | Mapping[str, Any] | list[Any], *,
             device: int | None = None, config: Any = None, granularity: int | str = "2MiB", frames: int = 300,
             **kwargs: Any) -> SnapshotPlayer:
        """Load a snapshot (a path, as ``torch.cuda.memory._dump_snapshot`` wrote it, or its dict), replay
        it (`torchsnap.replay_frames`) and build the player; ``kwargs`` go to the player."""
        from ..torchsnap import TorchSnapshot, load_torch_snapshot, replay_frames

        snap = source if isinstance(source, TorchSnapshot) else load_torch_snapshot(source)
        return cls(replay_frames(snap, device, config=config, granularity=granularity, frames=frames), **kwargs)

    # ------------------------------------------------------------------ moving
    def show(self, index: int) -> None:
        """Draw frame ``index`` (negative: from the end) on both sides."""
        n = len(self.frames.entry_index)
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or not -n <= int(index) < n:
            raise ValueError(f"index={index!r} is not allowed: the replay has frames 0 to {n - 1}")
        index = int(index) % n
        with self._lock:
            self.index = index
            with self._carrier.frame_bus.batch():
                for side in _SIDES:
                    hist = self.histories[side]
                    snap = getattr(self.frames, side)[index]  # as hist.snapshot(index), without decoding
                    ctx = ViewContext(snapshot=snap, time_s=float(hist.times[index]), past=PastFrame(hist, index))
                    *views, line = self.views[side]
                    for view in views:
                        view.update(ctx)
                    line.value = self._side_line(side, snap, index)
            if self.slider.value != index:
                self.slider.value = index  # its observer sees index == self.index: no second redraw
            self.label.value = self._label(index)

    def next_oom(self) -> int | None:
        """Jump to the first OOM after the frame shown; returns its frame (None: no later OOM)."""
        later = [int(f) for f in self.frames.oom_frames if f > self.index]
        if later:
            self.show(later[0])
        return later[0] if later else None

    def prev_oom(self) -> int | None:
        """Jump to the last OOM before the frame shown; returns its frame (None: no earlier OOM)."""
        earlier = [int(f) for f in self.frames.oom_frames if f < self.index]
        if earlier:
            self.show(earlier[-1])
        return earlier[-1] if earlier else None

    def play(self) -> None:
        """Step through the frames in the background (from the start once at the end)."""
        if self.index >= len(self.frames.entry_index) - 1:
            self.show(0)
        self._loop.start()
        self.buttons["play"].description = "Pause"

    def stop(self) -> None:
        self._loop.stop()
        self.buttons["play"].description = "Play"

    def toggle(self) -> None:
        if self._loop.running:
            self.stop()
        else:
            self.play()

    @property
    def playing(self) -> bool:
        return self._loop.running

    def close(self) -> None:
        self._loop.stop()
        for side in _SIDES:
            for v in self.views[side][:-1]:
                v.close()
        super().close()

    def _tick(self, _deadline: float) -> None:
        if self.index >= len(self.frames.entry_index) - 1:
            self._loop.stop()
            self.buttons["play"].description = "Play"
            return
        self.show(self.index + 1)

    # ------------------------------------------------------------------ text
    def _label(self, index: int) -> str:
        f = self.frames
        text = f"entry {int(f.entry_index[index]):,} · t = {float(f.time_s[index]):.4g} s · frame {index + 1} of " \
               f"{len(f.entry_index)}"
        ooms = [int(x) for x in f.oom_frames]
        if index in ooms:
            text += f" · <b style='color:#b91c1c'>OOM {ooms.index(index) + 1} of {len(ooms)}</b>"
        elif index == int(f.peak_frame):
            text += " · <b>peak of active memory</b>"
        return f"<span style='font:12px system-ui;color:#334155;white-space:nowrap'>{text}</span>"

    def _side_line(self, side: str, snap: PoolSnapshot, index: int) -> str:
        f, st = self.frames, snap.stats
        upto = slice(0, index + 1)
        if side == "torch":
            extra = (f"OOMs so far {int(np.sum(f.torch_ooms[upto]))} · cudaMalloc calls "
                     f"{int(np.sum(f.torch_segment_allocs[upto])):,} · flushes {int(np.sum(f.torch_flushes[upto]))}")
            used = "reserved"
        else:
            extra = (f"failed allocations so far {int(np.sum(f.paged_failed_allocs[upto])):,} · compactions "
                     f"{int(np.sum(f.paged_compactions[upto])):,} · moved "
                     f"{format_bytes(int(np.sum(f.paged_bytes_moved[upto])))}")
            used = "capacity"
        text = (f"{used} {format_bytes(st.capacity_bytes)} · used {format_bytes(st.used_bytes)} · free "
                f"{format_bytes(st.free_bytes)} · largest free run {format_bytes(st.largest_free_run_bytes)}<br>"
                f"{extra}")
        return f"<div style='font:11.5px system-ui;color:#475569;margin:2px 0 4px'>{text}</div>"
