"""Standalone HTML reports built from pool snapshots and simulator results only.

```python
html = build_report(snapshots, steps=sim.results(), summary=sim.summary(), over_time=sim.over_time(10),
                    config={"pool": pool.config.to_dict(), "serving": sim.config.to_dict()})
write_report("report.html", snapshots, ...)     # same arguments; returns the path
write_history_report("replay.html", SnapshotHistory.load("run.npz"))   # replay a recorded run (dash.save)
```

Statistics are grouped tables labelled in words with units (`workload.SUMMARY_LABELS`,
`pool.POOL_STATS_LABELS`); keys those tables lack still appear, under "Other".

The file works offline: plotly.js is embedded once (no CDN) and the page map is an inline PNG made by
a small encoder here (numpy + zlib), so no browser or image library is needed to write it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
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

from .history import SnapshotHistory
from .pool import (
    POOL_STATS_LABELS,
    PageState,
    PoolSnapshot,
    StatTable,
    format_size,
    format_stat,
    group_stats,
)
from .workload import SUMMARY_LABELS, slowdown_ratio

__all__ = ["build_report", "write_report", "build_history_report", "write_history_report", "thin_indices",
           "encode_png", "page_map_rgb", "page_map_png", "heat_column", "PAGE_COLOURS"]

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
    cols = columns or _map_columns(n)
    rows = max(1, -(-n // cols))
    grid = np.empty((rows * cols, 3), dtype=np.uint8)
    grid[:] = _PAD
    grid[:n] = PAGE_COLOURS[np.clip(snap.page_state, 0, len(PAGE_COLOURS) - 1)]
    scale = max(1, min_width_px // cols)
    img = grid.reshape(rows, cols, 3)
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def _map_columns(num_pages: int) -> int:
    """Cells per row of a page map of ``num_pages``: a power of two, about twice as wide as tall."""
    return int(min(1024, max(16, 2 ** np.ceil(np.log2(max(1.0, np.sqrt(2 * num_pages)))))))


def page_map_png(snap: PoolSnapshot, **kwargs: Any) -> bytes:
    return encode_png(page_map_rgb(snap, **kwargs))


def heat_column(snap: PoolSnapshot, buckets: int = 64) -> np.ndarray:
    """Free fraction of each of ``buckets`` equal address ranges (float64, 0..1; the dashboard's
    heatmap draws the same `PoolSnapshot.bucket_fractions`)."""
    return snap.bucket_fractions(buckets, "free")


# ---------------------------------------------------------------------- figures
def _heatmap_figure(snapshots: Sequence[PoolSnapshot], times: Sequence[float] | None, buckets: int) -> go.Figure:
    # float32: half the bytes in the page (a column of ``buckets`` per snapshot), precise enough for a colour
    z = np.stack([heat_column(s, buckets) for s in snapshots], axis=1).astype(np.float32)
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


def _slice_traces(fig: go.Figure, over_time: pd.DataFrame | None, col: str, name: str, row: int) -> None:
    """p50 and p99 of ``col`` (``ttft``/``tpot``) per slice of ``over_time``, at the slices' middles."""
    if over_time is None or not len(over_time) or f"{col}_p50_s" not in over_time:
        return
    mid = (over_time["t_start_s"] + over_time["t_end_s"]) / 2
    span = np.stack([over_time["t_start_s"], over_time["t_end_s"]], axis=1)
    for q, dash in (("p50", "solid"), ("p99", "dot")):
        fig.add_trace(go.Scatter(x=mid, y=over_time[f"{col}_{q}_s"] * 1e3, mode="lines+markers", customdata=span,
                                 name=f"{name} {q} per slice", line={"dash": dash},
                                 hovertemplate=f"{name} {q} %{{y:,.1f}} ms<br>slice %{{customdata[0]:.1f}}–"
                                               "%{customdata[1]:.1f} s<extra></extra>"),
                      row=row, col=1)


def _over_time_figure(steps: pd.DataFrame, over_time: pd.DataFrame | None) -> go.Figure:
    """TTFT, TPOT, queue, memory and fragmentation against simulated time. TTFT/TPOT are per request,
    so a step has one only when a request got its first token (finished) in it: drawn as points, with
    the percentiles of each `over_time` slice as lines."""
    fig = make_subplots(rows=5, cols=1, shared_xaxes=True, vertical_spacing=0.045,
                        subplot_titles=("time to first token (ms)", "time per output token (ms)",
                                        "requests waiting and running", "memory (MiB)", "fragmentation (%)"))
    for row, (col, name) in enumerate((("ttft", "TTFT"), ("tpot", "TPOT")), start=1):
        if f"{col}_s" not in steps:  # a table from elsewhere: draw what it has
            continue
        pts = _thin(steps[["time_s", f"{col}_s"]].dropna())
        fig.add_trace(go.Scatter(x=pts["time_s"], y=pts[f"{col}_s"] * 1e3, mode="markers", opacity=0.35,
                                 marker={"size": 4}, name=f"{name} per step (mean of its requests)"), row=row, col=1)
        _slice_traces(fig, over_time, col, name, row)
    df = _thin(steps)
    for col, name in (("queue_length", "waiting (queue)"), ("running", "running")):
        if col in df:
            fig.add_trace(go.Scatter(x=df["time_s"], y=df[col], mode="lines", name=name), row=3, col=1)
    mib = float(1 << 20)
    for col, name in (("used_bytes", "used (referenced KV)"), ("cached_bytes", "cached (evictable KV)"),
                      ("free_bytes", "free")):
        if col in df:
            fig.add_trace(go.Scatter(x=df["time_s"], y=df[col] / mib, mode="lines", stackgroup="memory", name=name,
                                     hovertemplate=f"{name} %{{y:,.1f}} MiB<extra></extra>"), row=4, col=1)
    for col, name in (("kv_fragmentation", "KV fragmentation (free bytes in runs too short for KV)"),
                      ("external_fragmentation", "external fragmentation (1 - largest free run / free)")):
        if col in df:
            fig.add_trace(go.Scatter(x=df["time_s"], y=df[col] * 100, mode="lines", name=name), row=5, col=1)
    fig.update_yaxes(title_text="ms", row=1, col=1)
    fig.update_yaxes(title_text="ms", row=2, col=1)
    fig.update_yaxes(title_text="requests", row=3, col=1)
    fig.update_yaxes(title_text="MiB", row=4, col=1)
    fig.update_yaxes(title_text="%", range=[0, 100], row=5, col=1)
    fig.update_xaxes(title_text="simulated time since start (s)", row=5, col=1)
    fig.update_layout(title="The slowdown over time", template="plotly_white", height=1150)
    return fig


def _slowdown_text(over_time: pd.DataFrame) -> str:
    """The slowdown ratio in words, with the ratio itself in ``data-ratio`` (NaN: not measurable)."""
    ratio = slowdown_ratio(over_time)
    n = len(over_time)
    part = "tenth" if n == 10 else f"1/{n}"
    first, last = over_time.iloc[0], over_time.iloc[-1]

    def where(row: pd.Series, which: str) -> str:
        return f"the {which} {part} of the run ({row['t_start_s']:,.1f}–{row['t_end_s']:,.1f} s)"

    if not np.isfinite(ratio):
        missing = [w for w, row in (("first", first), ("last", last)) if not np.isfinite(row["ttft_p50_s"])]
        words = (f"not measurable: no request got its first token in the {' or the '.join(missing)} {part} "
                 "of the run" if missing else "not measurable")
    else:
        trend = "slower" if ratio > 1 else "faster" if ratio < 1 else "the same"
        words = (f"the median time to first token was {last['ttft_p50_s'] * 1e3:,.1f} ms in {where(last, 'last')}"
                 f" against {first['ttft_p50_s'] * 1e3:,.1f} ms in {where(first, 'first')}: "
                 f"<b>{ratio:.2f} times</b> the start ({trend} at the end)")
    return f'<p id="slowdown-ratio" data-ratio="{ratio!r}">Slowdown: {words}.</p>'


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


def _stat_tables(values: Mapping[str, Any], labels: StatTable, cls: str) -> str:
    """One table per group, rows labelled in words; the key is the row's tooltip."""
    out = []
    for group, rows in group_stats(values, labels):
        body = "".join(f'<tr><th title="{html.escape(key)}">{html.escape(label)}</th><td>{html.escape(text)}</td></tr>'
                       for key, label, text in rows)
        out.append(f'<table class="{cls}"><caption>{html.escape(group)}</caption>{body}</table>')
    return "".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:.2em} .meta{color:#666} section{margin:2em 0}
table{border-collapse:collapse;font-size:13px;margin:.5em 1.5em .5em 0;display:inline-table;vertical-align:top}
th{text-align:left;font-weight:500;padding:2px 12px 2px 0;color:#444} td{padding:2px 0;font-family:monospace}
caption{text-align:left;font-weight:600;padding:4px 0;color:#222}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
img.pagemap{image-rendering:pixelated;border:1px solid #ccc;max-width:100%}
"""


def build_report(snapshots: Sequence[PoolSnapshot], *, steps: pd.DataFrame | None = None,
                 summary: Mapping[str, Any] | None = None, config: Mapping[str, Mapping[str, Any]] | None = None,
                 times: Sequence[float] | None = None, figures: Sequence[go.Figure] = (),
                 title: str = "autoglm_lab report", heat_buckets: int = 64,
                 over_time: pd.DataFrame | None = None) -> str:
    """A standalone HTML page: the run's ``summary`` and the last snapshot's pool stats as grouped
    tables in words, the last snapshot's page map as a PNG, the fragmentation heatmap over
    ``snapshots`` (at ``times``, simulated seconds), from ``steps`` (a `ServingSim.results()` table)
    TTFT, TPOT, queue, memory and fragmentation against time and the latency and memory traces, extra
    ``figures``, and ``config`` (section name -> field -> value). ``over_time`` (`ServingSim.over_time`,
    10 slices for tenths) adds TTFT/TPOT percentiles per slice and the slowdown ratio in words."""
    if not snapshots:
        raise ValueError("build_report needs at least one PoolSnapshot")
    if times is not None and len(times) != len(snapshots):
        raise ValueError(f"times has {len(times)} values for {len(snapshots)} snapshots")
    if over_time is not None and len(over_time) and not {"t_start_s", "t_end_s", "ttft_p50_s"} <= set(over_time):
        raise ValueError("over_time is not a ServingSim.over_time() table: it needs the columns t_start_s, "
                         f"t_end_s and ttft_p50_s, got {list(over_time.columns)}")
    last = snapshots[-1]
    has_steps = steps is not None and len(steps) > 0
    ordered = ([_over_time_figure(steps, over_time)] if has_steps else []) + [
        _heatmap_figure(snapshots, times, heat_buckets), *([_trace_figure(steps)] if has_steps else []), *figures]
    # plotly.js inline once, in the first figure of the page: the file works offline
    html_figs = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(ordered)]
    slowdown = ""
    if has_steps:
        words = _slowdown_text(over_time) if over_time is not None and len(over_time) else ""
        slowdown = f'<section id="slowdown"><h2>The slowdown over time</h2>{words}{html_figs.pop(0)}</section>'
    plots = "".join(f"<section>{h}</section>" for h in html_figs)
    png = base64.b64encode(page_map_png(last)).decode("ascii")
    legend = "".join(f'<span style="background:rgb{tuple(int(c) for c in PAGE_COLOURS[s])}"></span>{s.name.lower()}'
                     for s in PageState)
    stats = _stat_tables(last.stats.to_dict(), POOL_STATS_LABELS, "stats")
    summ = (f"<h3>The run</h3>{_stat_tables(summary, SUMMARY_LABELS, 'summary')}<h3>The pool at the last snapshot</h3>"
            if summary else "")
    cfg = "".join(f"<h3>{html.escape(name)}</h3>{_table(fields, 'config')}" for name, fields in (config or {}).items())
    made = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{made} · snapshot v{last.version} seq {last.seq} · {last.num_pages:,} pages of
{format_size(last.page_size)} on {html.escape(last.device)} · {len(snapshots)} snapshots</p>
<section id="stats"><h2>Statistics</h2>{summ}{stats}</section>
{slowdown}
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


# ---------------------------------------------------------------------- history replay
# the figures each replayed frame shows, labelled by the tables (pool stats, then the run's summary)
_REPLAY_POOL_KEYS = ("used_bytes", "cached_bytes", "free_bytes", "largest_free_run_pages", "external_fragmentation",
                     "failed_allocations", "compactions")
_REPLAY_SUMMARY_KEYS = ("requests_done", "ttft_p50_s", "ttft_p99_s", "preemptions", "evictions")
_REPLAY_FRAME_MS = 150  # play: one frame every this many milliseconds
_LINE = {"color": "#d62728", "width": 2}


def _label(table: StatTable, key: str) -> tuple[str, str]:
    """(label, unit) of ``key`` in ``table``."""
    for rows in table.values():
        if key in rows:
            return rows[key]
    return key, "plain"


def thin_indices(n: int, max_frames: int) -> np.ndarray:
    """At most ``max_frames`` (>= 2) of ``n`` frame indices, evenly spaced, the first and the last always in."""
    if isinstance(max_frames, bool) or not isinstance(max_frames, int | np.integer) or max_frames < 2:
        raise ValueError(f"max_frames={max_frames!r} is not allowed: use an integer >= 2 (the first and last frame)")
    if n <= max_frames:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n - 1, int(max_frames))).astype(np.int64))


def _frame_line(t: float) -> dict[str, Any]:
    return {"type": "line", "xref": "x", "yref": "paper", "x0": t, "x1": t, "y0": 0, "y1": 1, "line": _LINE}


def _replay_trace_figure(steps: Mapping[str, np.ndarray], snaps: Sequence[PoolSnapshot],
                         times: Sequence[float]) -> go.Figure | None:
    """The latency trace of the recorded steps (`_trace_figure`), its memory panel from the frames'
    pool stats when the steps do not carry them."""
    df = pd.DataFrame({k: np.asarray(v) for k, v in steps.items()})
    if not len(df) or "time_s" not in df:
        return None
    fig = _trace_figure(df)
    for key, name in (("utilisation", "utilisation (frames)"),
                      ("external_fragmentation", "external fragmentation (frames)")):
        if key not in df:
            fig.add_trace(go.Scatter(x=list(times), y=[getattr(s.stats, key) for s in snaps], mode="lines",
                                     name=name), row=2, col=1)
    fig.update_yaxes(title_text="ms", row=1, col=1)
    fig.update_yaxes(title_text="share", tickformat=".0%", row=2, col=1)
    return fig


_REPLAY_JS = """
(function(){
const D=JSON.parse(document.getElementById('replay-data').textContent);
const s=document.getElementById('scrub'), play=document.getElementById('play');
const maps=document.querySelectorAll('#replay-maps img'), cells=document.querySelectorAll('#frame-stats td');
const n=D.t.length; let shown=n-1, timer=null;
function lines(i){for(const id of D.figs){const el=document.getElementById(id);
  if(el&&window.Plotly&&el.layout) Plotly.relayout(el,{shapes:[Object.assign({},D.line,{x0:D.t[i],x1:D.t[i]})]});}}
function show(i){i=Math.max(0,Math.min(n-1,i|0)); s.value=i; maps[shown].hidden=true; maps[i].hidden=false; shown=i;
  document.getElementById('frame-time').textContent=D.time[i];
  document.getElementById('frame-no').textContent='frame '+(i+1)+' of '+n+' shown (recorded frame '+D.rec[i]+')';
  cells.forEach(function(c,k){c.textContent=D.v[i][k];}); lines(i);}
function stop(){if(timer!==null){clearInterval(timer); timer=null;} play.textContent='\\u25b6 play';}
play.onclick=function(){if(timer!==null){stop(); return;} if(shown>=n-1) show(0);
  play.textContent='\\u275a\\u275a pause';
  timer=setInterval(function(){if(shown>=n-1) stop(); else show(shown+1);}, D.ms);};
document.getElementById('prev').onclick=function(){stop(); show(shown-1);};
document.getElementById('next').onclick=function(){stop(); show(shown+1);};
s.oninput=function(){stop(); show(+s.value);};
window.addEventListener('load',function(){show(shown);});
})();
"""


def build_history_report(history: SnapshotHistory, *, title: str = "autoglm_lab history replay",
                         max_frames: int = 300, heat_buckets: int = 64) -> str:
    """A standalone offline page that replays a recorded run (a `SnapshotHistory`, e.g. from
    ``dash.save(path)``): a time slider over the frames, thinned evenly to at most ``max_frames``
    (first and last always kept), with play/pause and step buttons; for the frame under it the page map,
    its time and a few of the pool's stats and the run's summary figures in words; the fragmentation
    heatmap of the frames shown and the latency trace of the recorded steps, each with a line that
    follows the slider. The page says how many frames were recorded, dropped by the history's bound
    and shown.

    Size: plotly.js once (about 4.8 MB); per frame shown about 0.6 KB (its heatmap column 0.4 KB, its
    figures in words 0.15 KB) plus its page map, a PNG at one pixel per page that the browser scales up
    (measured: 0.14 KB at 256 pages, 0.3 KB at 1,024, 1 KB at 16,384, busy fragmented pools); the
    latency trace about 0.1 KB per recorded step, at most 4,000 points. 300 frames of a 256-page pool
    with 1,600 steps: 5.2 MB, of which 0.4 MB is the run."""
    n = len(history)
    if n == 0:
        raise ValueError("the history is empty: nothing to replay (record frames before saving it)")
    keep = thin_indices(n, max_frames)
    snaps = [history.snapshot(int(i)) for i in keep]
    times = [float(t) for t in history.times[keep]]
    summaries = [history.summary(int(i)) for i in keep]
    cols = _map_columns(max(s.num_pages for s in snaps))
    maps = "".join(f'<img class="pagemap replay"{"" if j == len(snaps) - 1 else " hidden"} alt="page map at '
                   f'{t:,.3f} s" src="data:image/png;base64,'
                   f'{base64.b64encode(page_map_png(s, columns=cols, min_width_px=1)).decode("ascii")}">'
                   for j, (s, t) in enumerate(zip(snaps, times, strict=True)))
    rows: list[tuple[str, str, str, str]] = [("The pool", k, *_label(POOL_STATS_LABELS, k)) for k in _REPLAY_POOL_KEYS]
    if any(summaries):
        rows += [("The run so far", k, *_label(SUMMARY_LABELS, k)) for k in _REPLAY_SUMMARY_KEYS]
    values = []
    for snap, summ in zip(snaps, summaries, strict=True):
        stats = snap.stats.to_dict()
        values.append([format_stat((stats if src == "The pool" else summ or {}).get(key), unit)
                       for src, key, _, unit in rows])
    tables = []
    for caption in dict.fromkeys(r[0] for r in rows):
        body = "".join(f'<tr><th title="{html.escape(key)}">{html.escape(label)}</th>'
                       f'<td>{html.escape(values[-1][k])}</td></tr>'
                       for k, (src, key, label, _) in enumerate(rows) if src == caption)
        tables.append(f'<table class="stats"><caption>{html.escape(caption)}</caption>{body}</table>')
    figs = [("replay-heatmap", _heatmap_figure(snaps, times, heat_buckets))]
    trace = _replay_trace_figure(history.steps(), snaps, times)
    if trace is not None:
        figs.append(("replay-trace", trace))
    for _, fig in figs:
        fig.update_layout(shapes=[_frame_line(times[-1])])
    # plotly.js inline once, in the first figure of the page: the file works offline
    plots = "".join(f"<section>{fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=div)}</section>"
                    for i, (div, fig) in enumerate(figs))
    time_text = [f"t = {t:,.3f} s" for t in times]
    rec = [int(i) + history.dropped + 1 for i in keep]  # the frame's number among all recorded, from 1
    data = {"t": times, "time": time_text, "rec": rec, "v": values,
            "figs": [div for div, _ in figs], "line": _frame_line(0.0), "ms": _REPLAY_FRAME_MS}
    data_json = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    recorded, dropped, shown = n + history.dropped, history.dropped, len(keep)
    bound = (f"the history's bound ({format_size(history.max_bytes)}) dropped the first {dropped:,}, so it holds "
             f"{n:,}" if dropped else f"none was dropped by the history's bound ({format_size(history.max_bytes)})")
    thinned = "all of them" if shown == n else f"{shown:,} of them, evenly spaced (the first and the last kept)"
    last = snaps[-1]
    legend = "".join(f'<span style="background:rgb{tuple(int(c) for c in PAGE_COLOURS[s])}"></span>{s.name.lower()}'
                     for s in PageState)
    made = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}{_REPLAY_CSS}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{made} · {last.num_pages:,} pages of {format_size(last.page_size)} on {html.escape(last.device)}
at the last frame · {times[0]:,.3f}–{times[-1]:,.3f} s simulated</p>
<p id="frame-counts" data-recorded="{recorded}" data-held="{n}" data-dropped="{dropped}" data-shown="{shown}">
{recorded:,} frames recorded; {bound}; this page shows {thinned}.</p>
<section id="replay"><h2>Replay</h2>
<div class="controls"><button id="play" type="button">&#9654; play</button>
<button id="prev" type="button" title="previous frame">&#9664;</button>
<input type="range" id="scrub" min="0" max="{shown - 1}" step="1" value="{shown - 1}" aria-label="frame">
<button id="next" type="button" title="next frame">&#9654;</button>
<b id="frame-time">{time_text[-1]}</b> <span id="frame-no" class="meta">frame {shown} of {shown} shown
(recorded frame {rec[-1]})</span></div>
<p class="legend">one cell per page, addresses row by row:{legend}</p>
<div id="replay-maps">{maps}</div>
<div id="frame-stats">{"".join(tables)}</div></section>
<div id="figures">{plots}</div>
<script type="application/json" id="replay-data">{data_json}</script>
<script>{_REPLAY_JS}</script>
</body></html>
"""


_REPLAY_CSS = """
.controls{display:flex;align-items:center;gap:.5em;flex-wrap:wrap} .controls input{flex:1;min-width:200px}
img.replay{width:100%;max-width:1100px}
"""


def write_history_report(path: str | PathLike[str], history: SnapshotHistory, **kwargs: Any) -> Path:
    """Write `build_history_report` (same keyword arguments) to ``path`` (parent folders created);
    returns the path."""
    out = Path(path)
    text = build_history_report(history, **kwargs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
