"""`ServingPanel`: what a vLLM user reads off a server, from the simulator's own records: KV usage
(referenced), cached and free memory, running and waiting requests, preemptions, evictions, the
prefix-cache hit rate, TTFT and TPOT p50/p99 and throughput.

Every figure is a key of `ServingSim.summary()` (what each counts is documented there), read at the
stats panel's pace (5 times a second); a new run (Reset, Apply, loop) is a new simulator, so the
panel starts from zero with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from ._format import format_bytes
from ._messages import NoFrontEndState
from ._stats import table_html
from ._view import SIDE_PX, DashboardView, ViewContext, ViewSetup

__all__ = ["ServingPanel", "ServingView", "serving_rows"]


def _ms(seconds: float) -> str:
    return "" if not math.isfinite(seconds) else f"{seconds * 1e3:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _pair(s: Mapping[str, Any], p50: str, p99: str) -> str:
    a, b = _ms(float(s[p50])), _ms(float(s[p99]))
    if a.endswith(" ms") and b.endswith(" ms"):  # one unit for both: the values fit the panel
        return f"{a[:-3]} · {b}"
    return f"{a} · {b}" if a and b else ""


def serving_rows(s: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of a `ServingSim.summary()`; "" where there is nothing to show yet."""
    cap = int(s["capacity_bytes"])

    def share(key: str) -> str:
        n = int(s[key])
        return f"{format_bytes(n)} ({n / cap:.0%})" if cap else format_bytes(n)

    queries = int(s["prefix_cache_queries"])
    hit_rate = (f"{s['prefix_cache_hit_rate']:.1%} of {queries:,}" if queries else
                f"{s['cache_hit_rate']:.1%} (sessions)" if s["cache_lookups"] else "")
    clock = float(s["sim_time_s"])
    rate = f"{s['tokens_per_sim_s']:,.0f} · {s['generated_tokens'] / clock:,.0f}" if clock > 0 else ""
    return [
        ("KV usage (referenced)", share("used_bytes")),
        ("cached (evictable)", share("cached_bytes")),
        ("free", share("free_bytes")),
        ("running · waiting", f"{s['requests_running']:,} · {s['requests_waiting']:,}"),
        ("done · rejected", f"{s['requests_done']:,} of {s['requests_total']:,} · {s['requests_rejected']:,}"),
        ("preemptions", f"{s['preemptions']:,}"),
        ("evictions", f"{s['evictions']:,}"),
        ("prefix hits (blocks)", hit_rate),
        ("TTFT p50 · p99", _pair(s, "ttft_p50_s", "ttft_p99_s")),
        ("TPOT p50 · p99", _pair(s, "per_token_latency_p50_s", "per_token_latency_p99_s")),
        ("tokens/s: all · output", rate),
        ("sim clock · steps", f"{clock:,.2f} s · {s['steps']:,}"),
    ]


class ServingPanel(NoFrontEndState, w.HTML):
    """The serving figures as a small HTML table (the stats panel's look). Display only."""

    def update(self, summary: Mapping[str, Any] | None) -> None:
        rows = serving_rows(summary) if summary is not None else [("simulator", "")]
        value = table_html("Serving", rows, separators=(3, 5, 7), wide_labels=True)
        if value != self.value:
            self.value = value


class ServingView(DashboardView):
    """The serving panel in a dashboard, under the stats panel: ``ctx.summary`` (live, or recorded when
    scrubbing); a plain pool has no simulator, so the panel says so (it stays, empty: the layout never
    jumps)."""

    name = "serving"
    row = 0
    column = "side"

    def __init__(self, setup: ViewSetup) -> None:
        self.widget = ServingPanel(layout=w.Layout(width=f"{SIDE_PX}px", flex="0 0 auto"))

    def update(self, ctx: ViewContext) -> None:
        if ctx.text:
            self.widget.update(ctx.summary)
