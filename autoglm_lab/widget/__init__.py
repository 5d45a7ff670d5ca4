"""The live dashboard: a page map, a fragmentation heatmap, latency traces, a stats panel and
controls bound to a live `PagedPool` (and `ServingSim`), all fed from snapshots.

```python
from autoglm_lab.widget import Dashboard
dash = Dashboard(pool, sim)     # display(dash); dash.play() / dash.stop(); dash.frame(); dash.run(100)
player = SnapshotPlayer.load("oom.pickle")   # a torch memory snapshot replayed: torch vs paged, side by side
```
"""

from ._codec import PageFrame, decode_page_frame, encode_delta, encode_full, page_checksum, palette_indices
from ._heatmap import FragmentationHeatmap
from ._pagemap import PageMap
from ._palette import COLOR_MODES, PALETTE
from ._trace import LatencyTrace

__all__ = [
    "Dashboard", "SnapshotPlayer", "PageMap", "FragmentationHeatmap", "LatencyTrace", "StatsPanel",
    "PageFrame", "encode_full", "encode_delta", "decode_page_frame", "palette_indices", "page_checksum",
    "PALETTE", "COLOR_MODES",
]


def __getattr__(name: str) -> object:
    # the dashboard module pulls in ipywidgets controls; load it on first use
    if name in ("Dashboard", "StatsPanel"):
        from . import _dashboard

        return getattr(_dashboard, name)
    if name == "SnapshotPlayer":
        from ._player import SnapshotPlayer

        return SnapshotPlayer
    raise AttributeError(f"module 'autoglm_lab.widget' has no attribute {name!r}")
