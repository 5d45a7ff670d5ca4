"""`StatsPanel`: the pool's accounting as a small HTML table (the simulator's figures: `_serving`);
on CUDA also the device's own books (torch's caching allocator and the whole card)."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as w
import torch

from ..pool import PoolStats, format_size
from ._format import format_bytes
from ._messages import NoFrontEndState
from ._view import SIDE_PX, DashboardView, ViewContext, ViewSetup

__all__ = ["StatsPanel", "StatsView", "stats_rows", "table_html", "device_label", "device_memory", "device_rows",
           "since",
           "COUNTERS"]

_CSS = ("<style>.agl-stats{font:11.5px/1.45 var(--jp-ui-font-family,system-ui,sans-serif);"
        "color:var(--jp-ui-font-color1,#1f2937);border:1px solid #e2e8f0;border-radius:6px;padding:6px 10px;"
        "background:#f8fafc;box-sizing:border-box}.agl-stats h4{margin:0 0 4px;font-size:13px}"
        ".agl-stats h4 small{font-weight:400;color:#64748b}"
        ".agl-stats table{border-collapse:collapse;width:100%;table-layout:fixed}"
        ".agl-stats td{padding:1px 4px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}"
        ".agl-stats td:first-child{width:42%}.agl-stats.wide td:first-child{width:50%}"
        ".agl-stats td.v{text-align:right;font-variant-numeric:tabular-nums;font-weight:600}"
        ".agl-stats tr.sep td{border-top:1px solid #e2e8f0}.agl-stats .sel{color:#b91c1c}"
        ".agl-stats .none{color:#94a3b8;font-weight:400}</style>")
# counters a plain pool's Reset shows from zero (the pool keeps them; a dashboard cannot rebuild it)
COUNTERS = ("failed_allocations", "compactions", "compaction_bytes_moved", "compaction_pages_moved",
            "compaction_pause_s", "evictions")


def stats_rows(stats: PoolStats, extra: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(label, value) rows shown by the panel, in order."""
    s = stats
    used_pct = s.used_bytes / s.capacity_bytes if s.capacity_bytes else 0.0
    rows = [
        ("capacity", format_bytes(s.capacity_bytes)),
        ("pages", f"{s.capacity_pages:,} × {format_size(s.page_size)}"),
        ("used (referenced)", f"{format_bytes(s.used_bytes)} ({used_pct:.0%})"),
        ("cached (evictable)", f"{format_bytes(s.cached_bytes)}"),
        ("blocks", f"{s.num_blocks:,}"),
        ("free", f"{format_bytes(s.free_bytes)} · {s.free_runs:,} runs"),
        ("largest free run", f"{s.largest_free_run_pages:,} pages"),
        ("external frag.", f"{s.external_fragmentation:.1%}"),
        ("internal frag.", f"{s.internal_fragmentation:.1%} · {format_bytes(s.internal_waste_bytes)}"),
        ("failed allocations", f"{s.failed_allocations:,}"),
        ("compactions", f"{s.compactions:,}"
         + (f" · {s.last_compaction_reason}" if s.last_compaction_reason else "")),
        ("bytes moved", f"{format_bytes(s.compaction_bytes_moved)}"),
        ("pages moved", f"{s.compaction_pages_moved:,}"),
        ("pause (total)", f"{s.compaction_pause_s * 1e3:.2f} ms"),
    ]
    for key, value in (extra or {}).items():
        rows.append((key, value))
    return rows


def table_html(title: str, rows: list[tuple[str, str]], *, separators: tuple[int, ...] = (), note: str = "",
               tail: str = "", wide_labels: bool = False) -> str:
    """A side panel: ``title`` (and a ``note``), one table row per (label, value), a rule above the
    rows at ``separators``, then ``tail`` (more rows, as HTML). An empty value shows as a grey "–";
    ``wide_labels``: the label column takes more of the width (long labels, short values)."""
    body = []
    for i, (label, value) in enumerate(rows):
        cls = ' class="sep"' if i in separators else ""
        shown = "<span class='none'>–</span>" if value == "" else html.escape(value)
        body.append(f"<tr{cls}><td title='{html.escape(label)}'>{html.escape(label)}</td>"
                    f"<td class='v' title='{html.escape(value)}'>{shown}</td></tr>")
    head = f"{html.escape(title)} <small>{html.escape(note)}</small>" if note else html.escape(title)
    cls = "agl-stats wide" if wide_labels else "agl-stats"
    return f"{_CSS}<div class='{cls}'><h4>{head}</h4><table>{''.join(body)}{tail}</table></div>"


class StatsPanel(NoFrontEndState, w.HTML):
    """Capacity, used, cached, free, largest free run, fragmentation, failures, compactions, bytes
    moved, and the selected block. Display only: it takes nothing from the front end.

    ``selected`` is `PageMap.selected_block` of the same snapshot as ``stats``; a block without a
    place (``first_page`` missing: freed meanwhile) is shown as gone. The rows are the same in every
    frame (a "–" where there is nothing to show), so the panel never grows under the charts."""

    def update(self, stats: PoolStats, extra: dict[str, str] | None = None,
               selected: dict[str, Any] | None = None, note: str = "") -> None:
        tail = (_selected_row(selected) if selected else
                "<tr class='sep'><td>selected block</td><td class='v'><span class='none'>click a page"
                "</span></td></tr>")
        value = table_html("Pool", stats_rows(stats, extra), separators=(7, 9), note=note, tail=tail)
        if value != self.value:
            self.value = value


def since(stats: PoolStats, base: PoolStats | None) -> PoolStats:
    """``stats`` with the `COUNTERS` counted from ``base`` on (None: as they are)."""
    if base is None:
        return stats
    changes: dict[str, Any] = {k: getattr(stats, k) - getattr(base, k) for k in COUNTERS if hasattr(stats, k)}
    if changes["compactions"] == 0:
        changes["last_compaction_reason"] = None
    return dataclasses.replace(stats, **changes)


def _selected_row(selected: dict[str, Any]) -> str:
    head = f"<tr class='sep sel'><td>selected block {html.escape(str(selected.get('block_id', '?')))}</td>"
    first, pages = selected.get("first_page"), selected.get("num_pages")
    if not isinstance(first, int) or not isinstance(pages, int):
        return head + "<td class='v'>gone</td></tr>"
    tag = f" · {selected['tag']}" if selected.get("tag") else ""
    return (head + f"<td class='v'>{html.escape(format_bytes(selected.get('nbytes', 0)))} · pages {first}"
            f"–{first + pages - 1}{html.escape(tag)}</td></tr>")


def device_label(device: str) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA H200)``: the device a pool lives on (a snapshot's ``device``)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return str(dev)
    index = torch.cuda.current_device() if dev.index is None else dev.index
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def device_memory(device: str) -> dict[str, int] | None:
    """The CUDA device's own books: torch's caching allocator on it (``reserved``, ``allocated``) and
    the whole card (``free``, ``total``: other processes included); None off CUDA, querying nothing."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(dev)
    return {"reserved": int(torch.cuda.memory_reserved(dev)), "allocated": int(torch.cuda.memory_allocated(dev)),
            "free": int(free), "total": int(total)}


def device_rows(mem: Mapping[str, int]) -> list[tuple[str, str]]:
    """(label, value) rows of `device_memory`'s numbers."""
    used = mem["total"] - mem["free"]
    share = used / mem["total"] if mem["total"] else 0.0
    return [("torch reserved", format_bytes(mem["reserved"])),
            ("torch allocated", format_bytes(mem["allocated"])),
            ("device used", f"{format_bytes(used)} of {format_bytes(mem['total'])} ({share:.0%})")]


class StatsView(DashboardView):
    """The stats panel in a dashboard: text, so refreshed when ``ctx.text`` says."""

    name = "stats"
    row = 0
    column = "side"

    def __init__(self, setup: ViewSetup) -> None:
        self.widget = StatsPanel(layout=w.Layout(width=f"{SIDE_PX}px", flex="0 0 auto"))
        self._reset = False                  # Reset pressed: count from the next snapshot's counters
        self._base: PoolStats | None = None  # the counters at the last Reset of a plain pool

    def update(self, ctx: ViewContext) -> None:
        if not ctx.text:
            return
        extra: dict[str, str] = {}
        sim = ctx.sim
        if self._reset:
            self._reset = False
            self._base = ctx.snapshot.stats if sim is None else None  # with a simulator the pool is new
        report = ctx.report
        extra["last compact now"] = "" if report is None else \
            f"{report.pages_moved:,} pages · {report.pause_s * 1e3:.1f} ms"
        memory = device_memory(ctx.snapshot.device)
        if memory is not None:
            extra.update(device_rows(memory))
        note = "counters since Reset" if self._base is not None else ""
        self.widget.update(since(ctx.snapshot.stats, self._base), extra, ctx.selected, note)

    def reset(self) -> None:
        self._reset = True
