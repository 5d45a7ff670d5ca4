"""`StatsPanel`: the pool's accounting (and the simulator's cache hit rate) as a small HTML table."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from ..pool import PoolStats, format_size
from ._messages import NoFrontEndState

__all__ = ["StatsPanel", "stats_rows"]

_CSS = ("<style>.agl-stats{font:11.5px/1.45 var(--jp-ui-font-family,system-ui,sans-serif);"
        "color:var(--jp-ui-font-color1,#1f2937);border:1px solid #e2e8f0;border-radius:6px;padding:6px 10px;"
        "background:#f8fafc}.agl-stats h4{margin:0 0 4px;font-size:13px}.agl-stats table{border-collapse:collapse;"
        "width:100%}.agl-stats td{padding:1px 4px}"
        ".agl-stats td.v{text-align:right;font-variant-numeric:tabular-nums;"
        "font-weight:600;white-space:nowrap}.agl-stats tr.sep td{border-top:1px solid #e2e8f0}"
        ".agl-stats .sel{color:#b91c1c}</style>")


def _bytes(n: float) -> str:
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def stats_rows(stats: PoolStats, extra: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(label, value) rows shown by the panel, in order."""
    s = stats
    used_pct = s.used_bytes / s.capacity_bytes if s.capacity_bytes else 0.0
    rows = [
        ("capacity", f"{_bytes(s.capacity_bytes)} · {s.capacity_pages:,}×{format_size(s.page_size)}"),
        ("used", f"{_bytes(s.used_bytes)} ({used_pct:.0%})"),
        ("blocks", f"{s.num_blocks:,}"),
        ("free", f"{_bytes(s.free_bytes)} · {s.free_runs:,} runs"),
        ("largest free run", f"{s.largest_free_run_pages:,} pages"),
        ("external frag.", f"{s.external_fragmentation:.1%}"),
        ("internal frag.", f"{s.internal_fragmentation:.1%} · {_bytes(s.internal_waste_bytes)}"),
        ("failed allocations", f"{s.failed_allocations:,}"),
        ("compactions", f"{s.compactions:,}"
         + (f" · {s.last_compaction_reason}" if s.last_compaction_reason else "")),
        ("bytes moved", f"{_bytes(s.compaction_bytes_moved)}"),
        ("pages moved", f"{s.compaction_pages_moved:,}"),
        ("pause (total)", f"{s.compaction_pause_s * 1e3:.2f} ms"),
    ]
    for key, value in (extra or {}).items():
        rows.append((key, value))
    return rows


class StatsPanel(NoFrontEndState, w.HTML):
    """Capacity, used, free, largest free run, fragmentation, failures, compactions, bytes moved,
    cache hit rate, and the selected block. Display only: it takes nothing from the front end.

    ``selected`` is `PageMap.selected_block` of the same snapshot as ``stats``; a block without a
    place (``first_page`` missing: freed meanwhile) is shown as gone."""

    def update(self, stats: PoolStats, extra: dict[str, str] | None = None,
               selected: dict[str, Any] | None = None) -> None:
        rows = stats_rows(stats, extra)
        body = []
        for i, (label, value) in enumerate(rows):
            cls = ' class="sep"' if i in (5, 7) else ""
            body.append(f"<tr{cls}><td>{html.escape(label)}</td><td class='v'>{html.escape(value)}</td></tr>")
        if selected:
            body.append(_selected_row(selected))
        value = f"{_CSS}<div class='agl-stats'><h4>Pool</h4><table>{''.join(body)}</table></div>"
        if value != self.value:
            self.value = value


def _selected_row(selected: dict[str, Any]) -> str:
    head = f"<tr class='sep sel'><td>selected block {html.escape(str(selected.get('block_id', '?')))}</td>"
    first, pages = selected.get("first_page"), selected.get("num_pages")
    if not isinstance(first, int) or not isinstance(pages, int):
        return head + "<td class='v'>gone</td></tr>"
    tag = f" · {selected['tag']}" if selected.get("tag") else ""
    return (head + f"<td class='v'>{html.escape(_bytes(selected.get('nbytes', 0)))} · pages {first}"
            f"–{first + pages - 1}{html.escape(tag)}</td></tr>")
