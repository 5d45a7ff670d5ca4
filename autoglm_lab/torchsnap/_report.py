"""A standalone, offline HTML report of an `Analysis`: verdicts, stats, the segment map, figures.

plotly.js is embedded once (no CDN) and the segment map is an inline PNG, as in `autoglm_lab.report`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go  # type: ignore[import-untyped]

from ..pool import format_size, parse_size
from ..report import PAGE_COLOURS, encode_png
from ._analysis import Analysis, fmt_bytes
from ._schema import TorchSnapshot

__all__ = ["segment_map_rgb", "segment_map_cells", "build_html", "write_html_report", "MAP_COLOURS", "MAP_STATES"]

MAP_STATES = ("free", "allocated", "internal waste", "pending free")
#: RGB per MAP_STATES entry: the pool's page-map colours (free, used, tail, pinned)
MAP_COLOURS = PAGE_COLOURS
_GAP = np.array([255, 255, 255], dtype=np.uint8)
_MAX_POINTS = 4000


def _parts(seg: Any) -> tuple[np.ndarray, np.ndarray]:
    """The segment tiled into (start offset, state) pieces: an active block is its requested bytes,
    then its waste (rounding, unsplit remainder) at the tail."""
    starts: list[int] = []
    states: list[int] = []
    for b in seg.blocks:
        off = b.address - seg.address
        if b.state == "inactive":
            starts.append(off)
            states.append(0)
            continue
        used = min(b.requested_size, b.size)
        starts.append(off)
        states.append(1 if b.state == "active_allocated" else 3)
        if used < b.size:
            starts.append(off + used)
            states.append(2)
    return np.asarray(starts, dtype=np.int64), np.asarray(states, dtype=np.int64)


def segment_map_cells(snapshot: TorchSnapshot, device: int, granularity: int | str = "2MiB"
                      ) -> list[np.ndarray]:
    """Per segment (address order), the state of each ``granularity``-byte cell: the state holding
    most of its bytes (0 free, 1 allocated, 2 internal waste, 3 pending free; see MAP_STATES)."""
    g = parse_size(granularity, name="granularity")
    if g < 512:
        raise ValueError(f"granularity={granularity!r} is not allowed: at least 512 bytes")
    out = []
    for seg in snapshot.segments_of(device):
        starts, states = _parts(seg)
        n = -(-seg.total_size // g)
        edges = np.minimum(np.arange(n + 1, dtype=np.int64) * g, seg.total_size)
        ends = np.append(starts[1:], seg.total_size)
        j = np.searchsorted(starts, edges, side="right") - 1
        j = np.clip(j, 0, len(starts) - 1)
        per_state = np.zeros((4, n), dtype=np.int64)
        for s in range(4):
            size = np.where(states == s, ends - starts, 0)
            cum = np.concatenate(([0], np.cumsum(size)))
            # bytes of state s below each edge: whole pieces before piece j, plus the part of piece j
            below = cum[j] + np.where(states[j] == s, np.minimum(edges - starts[j], ends[j] - starts[j]), 0)
            per_state[s] = np.diff(below)
        out.append(np.argmax(per_state, axis=0).astype(np.uint8))
    return out


def segment_map_rgb(snapshot: TorchSnapshot, device: int, granularity: int | str = "2MiB", *,
                    width: int = 256, min_width_px: int = 768) -> np.ndarray:
    """The segment map as pixels: one row (wrapped at ``width`` cells) per segment, a white line
    between segments, cells coloured by MAP_COLOURS."""
    cells = segment_map_cells(snapshot, device, granularity)
    if not cells:
        return np.full((1, 1, 3), 255, dtype=np.uint8)
    w = min(width, max(len(c) for c in cells))
    rows = []
    for c in cells:
        k = -(-len(c) // w)
        grid = np.empty((k * w, 3), dtype=np.uint8)
        grid[:] = _GAP
        grid[: len(c)] = MAP_COLOURS[c]
        rows.append(grid.reshape(k, w, 3))
        rows.append(np.broadcast_to(_GAP, (1, w, 3)))
    img = np.concatenate(rows[:-1], axis=0)
    scale = max(1, min_width_px // w)
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def _thin_max(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most _MAX_POINTS points keeping each bucket's maximum (peaks survive thinning)."""
    n = y.size
    step = max(1, -(-n // _MAX_POINTS))
    if step == 1:
        return np.arange(n), y
    m = -(-n // step)
    padded = np.full(m * step, np.iinfo(np.int64).min, dtype=np.int64)
    padded[:n] = y
    arg = padded.reshape(m, step).argmax(axis=1) + np.arange(m) * step
    return arg, y[arg]


def _timeline_figure(a: Analysis) -> go.Figure:
    fig = go.Figure()
    tl = a.timeline
    for name, y in (("reserved", tl.reserved), ("active", tl.active), ("allocated", tl.allocated)):
        x, v = _thin_max(y)
        fig.add_trace(go.Scatter(x=x, y=v / 2**20, mode="lines", name=name))
    ooms = [v.index for v in a.ooms]
    if ooms:
        fig.add_trace(go.Scatter(x=ooms, y=tl.reserved[ooms] / 2**20, mode="markers", name="OOM",
                                 marker={"symbol": "x", "size": 11, "color": "crimson"}))
    if a.peak is not None:
        fig.add_trace(go.Scatter(x=[a.peak.index], y=[tl.active[a.peak.index] / 2**20], mode="markers",
                                 name="peak active", marker={"symbol": "star", "size": 12}))
    fig.update_layout(title="Memory over the trace (MiB)", xaxis_title="trace entry", yaxis_title="MiB",
                      template="plotly_white", height=420)
    return fig


def _histogram_figure(a: Analysis) -> go.Figure:
    s = a.stats
    edges = s.histogram_edges
    labels = [f"{fmt_bytes(int(edges[i]))}–{fmt_bytes(int(edges[i + 1]))}" for i in range(len(edges) - 1)]
    keep = s.histogram_counts > 0
    fig = go.Figure(go.Bar(x=[lb for lb, k in zip(labels, keep, strict=True) if k], y=s.histogram_counts[keep],
                           customdata=s.histogram_bytes[keep] / 2**20,
                           hovertemplate="%{x}: %{y} allocations, %{customdata:.1f} MiB<extra></extra>"))
    fig.update_layout(title="Allocation sizes", xaxis_title="size", yaxis_title="allocations",
                      template="plotly_white", height=380)
    return fig


def _rows(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{margin-bottom:.2em} .meta{color:#666} section{margin:2em 0}
table{border-collapse:collapse;font-size:13px;margin:.5em 0} th{text-align:left;font-weight:600;padding:3px 10px;
border-bottom:1px solid #ccc} td{padding:2px 10px;font-family:monospace;border-bottom:1px solid #eee}
.verdict{margin:.4em 0;padding:.5em .8em;background:#f6f7f9;border-left:4px solid #c33}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
img.segmap{image-rendering:pixelated;border:1px solid #ccc;max-width:100%}
"""


def build_html(analysis: Analysis, snapshot: TorchSnapshot, *, granularity: int | str = "2MiB",
               title: str | None = None, max_segments: int = 50) -> str:
    """The report as one HTML string (works offline)."""
    a = analysis
    s = a.stats
    t = s.total
    g = parse_size(granularity, name="granularity")
    name = title or f"PyTorch memory snapshot: {Path(a.source).name}"
    verdicts = "".join(f'<p class="verdict">{html.escape(v.summary())}</p>' for v in a.verdicts) or \
        "<p>The trace holds no OOM.</p>"
    vrows = []
    for v in a.verdicts:
        row = [v.kind, v.index, fmt_bytes(v.requested_bytes),
               "" if v.device_free_bytes is None else fmt_bytes(v.device_free_bytes),
               fmt_bytes(v.torch.free_cached_bytes), fmt_bytes(v.torch.check.largest_free_block), v.cause,
               "" if v.model_reproduces is None else ("yes" if v.model_reproduces else "no")]
        for _label, o in v.paged:
            row.append("no" if not o.served else f"after moving {fmt_bytes(o.bytes_moved)}" if o.compacted
                       else "yes")
        vrows.append(row)
    vtable = _rows(["what", "entry", "request", "device free", "torch cached free", "largest free block", "cause",
                    "model fails too", *[p.label for p in a.pools]], vrows) if vrows else ""
    totals: list[list[Any]] = [["reserved", fmt_bytes(t.reserved)], ["allocated", fmt_bytes(t.allocated)],
              ["active (allocated + pending free)", fmt_bytes(t.active)], ["requested", fmt_bytes(t.requested)],
              ["cached free", fmt_bytes(t.free)], ["largest free block", fmt_bytes(t.largest_free)],
              ["internal fragmentation", f"{t.internal_fragmentation:.3f}"],
              ["external fragmentation", f"{t.external_fragmentation:.3f}"],
              ["peak active / peak reserved", f"{fmt_bytes(s.peak_active)} / {fmt_bytes(s.peak_reserved)}"],
              ["fragmentation ratio (1 - peak active / peak reserved)", f"{s.fragmentation_ratio:.3f}"],
              ["trace entries", s.trace_entries], *[[f"  {k}", n] for k, n in sorted(s.counts.items())]]
    checks = _rows(["check", "holds"], [[k, v] for k, v in s.checks.items()])
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in s.notes)
    model = _rows(["allocator model", ""], [
        ["allocations at torch's address", f"{a.torch.same_address} of {a.torch.allocs} "
                                           f"({a.torch.same_address_ratio:.1%})"],
        ["ends in the snapshot's state", f"{a.torch.ends_in_snapshot_state} ({a.torch.final_segments_matching}"
                                         f"/{a.torch.final_segments} segments)"],
        ["events it could not apply", a.torch.num_anomalies],
        ["peak active / reserved (exact block sizes)",
         f"{fmt_bytes(a.torch.peak_active_bytes)} / {fmt_bytes(a.torch.peak_reserved_bytes)}"]])
    pools = _rows(["paged pool", "capacity", "backend", "allocations torch served that fail", "compactions",
                   "bytes moved"],
                  [[p.label, fmt_bytes(p.capacity_bytes), p.backend, f"{p.failed_allocs} of {p.allocs}",
                    p.compactions, fmt_bytes(p.bytes_moved)] for p in a.pools])
    sites = _rows(["call site", "allocations", "bytes"],
                  [[c.label, c.allocs, fmt_bytes(c.bytes)] for c in s.top_sites]) if s.top_sites else ""
    segs = sorted(s.segments, key=lambda x: -x.reserved)[:max_segments]
    segtable = _rows(["address", "type", "stream", "reserved", "active", "requested", "free", "largest free",
                      "internal frag.", "external frag."],
                     [[f"{x.address:#x}", x.segment_type + (" (expandable)" if x.is_expandable else ""), x.stream,
                       fmt_bytes(x.reserved), fmt_bytes(x.active), fmt_bytes(x.requested), fmt_bytes(x.free),
                       fmt_bytes(x.largest_free), f"{x.internal_fragmentation:.3f}",
                       f"{x.external_fragmentation:.3f}"] for x in segs])
    png = base64.b64encode(encode_png(segment_map_rgb(snapshot, a.device, g))).decode("ascii")
    legend = "".join(f'<span style="background:rgb{tuple(int(c) for c in MAP_COLOURS[i])}"></span>{st}'
                     for i, st in enumerate(MAP_STATES))
    figs = []
    if a.timeline.reserved.size:
        figs.append(_timeline_figure(a))
    if s.histogram_counts.sum():
        figs.append(_histogram_figure(a))
    plots = "".join(f"<section>{f.to_html(full_html=False, include_plotlyjs=(i == 0))}</section>"
                    for i, f in enumerate(figs))
    made = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(name)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(name)}</h1>
<p class="meta">{made} · device {a.device} · {len(s.segments)} segments · capacity judged
{fmt_bytes(a.capacity_bytes)} · copies estimated at {a.bandwidth / 1e9:.0f} GB/s · analysed in {a.seconds:.2f} s</p>
<section id="verdicts"><h2>Verdicts</h2>{verdicts}{vtable}</section>
<section id="stats"><h2>Where the memory went</h2>{_rows(["", ""], totals)}{checks}<ul>{notes}</ul></section>
<section id="segmap"><h2>Segments at the end</h2>
<p class="legend">one row per segment (address order), one cell per {html.escape(format_size(g))}: {legend}</p>
<img class="segmap" alt="segment map" src="data:image/png;base64,{png}"></section>
<div id="figures">{plots}</div>
<section id="sites"><h2>Top allocating call sites</h2>{sites}</section>
<section id="replays"><h2>Replays</h2>{model}{pools}</section>
<section id="segments"><h2>Segments (largest {len(segs)})</h2>{segtable}</section>
</body></html>
"""


def write_html_report(analysis: Analysis, snapshot: TorchSnapshot, path: str | PathLike[str], **kwargs: Any) -> Path:
    """Write `build_html` to ``path`` (parent folders created); returns the path."""
    out = Path(path)
    text = build_html(analysis, snapshot, **kwargs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
