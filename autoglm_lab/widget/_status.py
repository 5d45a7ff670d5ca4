"""The status line beside the buttons: whether anything moves, and how far the trace has got.

```
● live · 10.0 frames/s · 523 / 2,000 requests · 34.1 s simulated · run 2 · seq 187 · executor: ...
● paused · ...
■ finished · 2,000 / 2,000 requests · 106.1 s simulated · ...
```
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

__all__ = ["Progress", "progress_of", "status_html"]

_COLOURS = {"live": "#16a34a", "paused": "#94a3b8", "finished": "#1e3a8a"}


@dataclass(frozen=True)
class Progress:
    """How far a simulator has got through its trace."""

    done: int        # requests (turns) served or rejected
    total: int       # requests in the trace
    clock_s: float   # simulated seconds since the start of the run
    finished: bool   # nothing left to arrive, wait or run


def progress_of(sim: Any) -> Progress:
    """The `Progress` of a `ServingSim` (``totals``, ``requests``, ``clock``, ``done``)."""
    totals = sim.totals
    done = int(totals.get("finished", 0) + totals.get("rejected", 0))
    return Progress(done=done, total=len(sim.requests), clock_s=float(sim.clock), finished=bool(sim.done))


def _dot(state: str) -> str:
    # a CSS shape, not a glyph: a box where a font lacks one is what the issue saw
    radius = "1px" if state == "finished" else "50%"
    return (f"<span style='display:inline-block;width:9px;height:9px;border-radius:{radius};"
            f"background:{_COLOURS[state]};margin-right:5px;vertical-align:0'></span>")


def status_html(*, live: bool, fps: float, seq: int, progress: Progress | None, run: int = 1,
                executor: str | None = None) -> str:
    """The status line: live / paused / finished, frames/s while live, progress of the trace."""
    state = "finished" if progress is not None and progress.finished else "live" if live else "paused"
    parts = [f"{_dot(state)}<b>{state}</b>"]
    if live:
        parts.append(f"{fps:.1f} frames/s")
    if progress is not None:
        parts.append(f"<span data-agl='progress'>{progress.done:,} / {progress.total:,} requests</span>")
        parts.append(f"{progress.clock_s:.1f} s simulated")
        if run > 1:
            parts.append(f"run {run}")
    parts.append(f"seq {seq}")
    if executor:
        parts.append(f"executor: {html.escape(executor)}")
    return ("<div class='agl-status' data-state='" + state + "' style='color:#475569;font:12px system-ui;"
            "font-variant-numeric:tabular-nums;white-space:nowrap;overflow:hidden;text-overflow:ellipsis'>"
            + " · ".join(parts) + "</div>")
