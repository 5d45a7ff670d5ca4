"""Standalone HTML reports built from pool snapshots and simulator results only.

```python
html = build_report(snapshots, steps=sim.results(), summary=sim.summary(),
                    config={"pool": pool.config.to_dict(), "serving": sim.config.to_dict()})
write_report("report.html", snapshots, ...)     # same arguments; returns the path
```

The file works offline: plotly.js is embedded once (no CDN) and the page map is an inline PNG made by
a small encoder here (numpy + zlib), so no browser or image library is needed to write it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import struct
import zlib
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .pool import PageState, PoolSnapshot, format_size

__all__ = ["build_report", "write_report", "encode_png", "page_map_rgb", "page_map_png", "heat_column",
           "PAGE_COLOURS"]

# RGB per PageState: free, used, tail (last page, partly used: internal waste), pinned, cached (evictable).
PAGE_COLOURS = np.array([[226, 230, 235], [44, 110, 190], [240, 150, 40], [140, 70, 160], [103, 232, 249]],
                        dtype=np.uint8)
_PAD = np.array([255, 255, 255], dtype=np.uint8)
_MAX_TRACE_POINTS = 4000


# ---------------------------------------------------------------------- images
def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (height, width, 3) uint8 image (8-bit RGB, no filtering, zlib level 6)."""
    img = np.ascontiguousarray(rgb, dtype=np.uint8)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"expected a non-empty (height, width, 3) image, got shape {img.shape}")
    h, w = img.shape[:2]
    raw = np.zeros((h, 1 + 3 * w), dtype=np.uint8)  # each row: filter type 0, then its pixels
    raw[:, 1:] = img.reshape(h, 3 * w)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))


def page_map_rgb(snap: PoolSnapshot, *, columns: int | None = None, min_width_px: int = 512) -> np.ndarray:
    """The page map as pixels: one cell per page, row-major by address, coloured by `PAGE_COLOURS`;
    cells are square blocks of pixels so that small pools still give a readable image."""
    n = snap.num_pages
    cols = columns or int(min(1024, max(16, 2 ** np.ceil(np.log2(max(1.0, np.sqrt(2 * n)))))))
    rows = max(1, -(-n // cols))
    grid = np.empty((rows * cols, 3), dtype=np.uint8)
    grid[:] = _PAD
    grid[:n] = PAGE_COLOURS[np.clip(snap.page_state, 0, len(PAGE_COLOURS) - 1)]
    scale = max(1, min_width_px // cols)
    img = grid.reshape(rows, cols, 3)
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def page_map_png(snap: PoolSnapshot, **kwargs: Any) -> bytes:
    return encode_png(page_map_rgb(snap, **kwargs))


def heat_column(snap: PoolSnapshot, buckets: int = 64) -> np.ndarray:
    """Free fraction of each of ``buckets`` equal address ranges (float64, 0..1; the dashboard's
    heatmap draws the same `PoolSnapshot.bucket_fractions`)."""
    return snap.bucket_fractions(buckets, "free")


# ---------------------------------------------------------------------- figures
def _heatmap_figure(snapshots: Sequence[PoolSnapshot], times: Sequence[float] | None, buckets: int) -> go.Figure:
    z = np.stack([heat_column(s, buckets) for s in snapshots], axis=1)
    x = list(times) if times is not None else list(range(len(snapshots)))
    n = snapshots[-1].num_pages
    y = (np.arange(buckets) + 0.5) * n / buckets
    fig = go.Figure(go.Heatmap(z=z, x=x, y=y, colorscale="Viridis", zmin=0, zmax=1,
                               colorbar={"title": "free fraction"},
                               hovertemplate="t=%{x}<br>page ≈ %{y:.0f}<br>free %{z:.0%}<extra></extra>"))
    fig.update_layout(title="Fragmentation heatmap: free fraction of each address range over time",
                      xaxis_title="simulated time (s)" if times is not None else "snapshot",
                      yaxis_title="page address", template="plotly_white", height=420)
    return fig


def _thin(steps: pd.DataFrame) -> pd.DataFrame:
    stride = max(1, -(-len(steps) // _MAX_TRACE_POINTS))
    return steps.iloc[::stride]


def _trace_figure(steps: pd.DataFrame) -> go.Figure:
    df = _thin(steps)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("latency per step (ms)", "memory"))
    for col, name in (("step_latency_s", "step latency"), ("alloc_latency_s", "allocation (wall)"),
                      ("compaction_pause_s", "compaction pause (wall)")):
        if col in df:
            # Wall-time columns are measured and noisy: shown on a click in the legend.
            visible = True if col == "step_latency_s" else "legendonly"
            fig.add_trace(go.Scatter(x=df["time_s"], y=df[col] * 1e3, mode="lines", name=name, visible=visible),
                          row=1, col=1)
    for col, name in (("utilisation", "utilisation"), ("external_fragmentation", "external fragmentation")):
        if col in df:
            fig.add_trace(go.Scatter(x=df["time_s"], y=df[col], mode="lines", name=name), row=2, col=1)
    fig.update_xaxes(title_text="simulated time (s)", row=2, col=1)
    fig.update_layout(title="Latency and memory traces", template="plotly_white", height=560)
    return fig


# ---------------------------------------------------------------------- html
def _fmt(key: str, value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | np.integer) and key.endswith(("bytes", "_size")) and int(value) > 0:
        return f"{int(value):,} ({format_size(int(value))})" if int(value) % 1024 == 0 else f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    return str(value)


def _table(rows: Mapping[str, Any], cls: str) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(str(k), v))}</td></tr>"
                   for k, v in rows.items())
    return f'<table class="{cls}">{body}</table>'


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:.2em} .meta{color:#666} section{margin:2em 0}
table{border-collapse:collapse;font-size:13px;margin:.5em 1.5em .5em 0;display:inline-table;vertical-align:top}
th{text-align:left;font-weight:500;padding:2px 12px 2px 0;color:#444} td{padding:2px 0;font-family:monospace}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
img.pagemap{image-rendering:pixelated;border:1px solid #ccc;max-width:100%}
"""


def build_report(snapshots: Sequence[PoolSnapshot], *, steps: pd.DataFrame | None = None,
                 summary: Mapping[str, Any] | None = None, config: Mapping[str, Mapping[str, Any]] | None = None,
                 times: Sequence[float] | None = None, figures: Sequence[go.Figure] = (),
                 title: str = "autoglm_lab report", heat_buckets: int = 64) -> str:
    """A standalone HTML page: stats and summary tables, the last snapshot's page map as a PNG, the
    fragmentation heatmap over ``snapshots`` (at ``times``, simulated seconds), latency and memory
    traces from ``steps`` (a `ServingSim.results()` table), extra ``figures``, and ``config``
    (section name -> field -> value)."""
    if not snapshots:
        raise ValueError("build_report needs at least one PoolSnapshot")
    if times is not None and len(times) != len(snapshots):
        raise ValueError(f"times has {len(times)} values for {len(snapshots)} snapshots")
    last = snapshots[-1]
    figs = [_heatmap_figure(snapshots, times, heat_buckets)]
    if steps is not None and len(steps):
        figs.append(_trace_figure(steps))
    figs.extend(figures)
    plots = "".join(f"<section>{fig.to_html(full_html=False, include_plotlyjs=(i == 0))}</section>"
                    for i, fig in enumerate(figs))  # plotly.js inline once: the file works offline
    png = base64.b64encode(page_map_png(last)).decode("ascii")
    legend = "".join(f'<span style="background:rgb{tuple(int(c) for c in PAGE_COLOURS[s])}"></span>{s.name.lower()}'
                     for s in PageState)
    stats = _table(last.stats.to_dict(), "stats")
    summ = _table(summary, "summary") if summary else ""
    cfg = "".join(f"<h3>{html.escape(name)}</h3>{_table(fields, 'config')}" for name, fields in (config or {}).items())
    made = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{made} · snapshot v{last.version} seq {last.seq} · {last.num_pages:,} pages of
{format_size(last.page_size)} on {html.escape(last.device)} · {len(snapshots)} snapshots</p>
<section id="stats"><h2>Statistics</h2>{summ}{stats}</section>
<section id="pagemap"><h2>Page map</h2>
<p class="legend">one cell per page, addresses row by row:{legend}</p>
<img class="pagemap" alt="page map" src="data:image/png;base64,{png}"></section>
<div id="figures">{plots}</div>
<section id="config"><h2>Configuration</h2>{cfg}</section>
</body></html>
"""


def write_report(path: str | PathLike[str], snapshots: Sequence[PoolSnapshot], **kwargs: Any) -> Path:
    """Write `build_report` (same arguments) to ``path`` (parent folders created); returns the path."""
    out = Path(path)
    text = build_report(snapshots, **kwargs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
