"""PyTorch memory snapshots: load one safely, see where the memory went, replay its trace, and answer
"would paging or compaction have avoided this OOM?".

```python
from autoglm_lab.torchsnap import load_torch_snapshot, analyze

snap = load_torch_snapshot("oom.pickle")        # what torch.cuda.memory._dump_snapshot wrote; runs no code
res = analyze(snap, page_size="2MiB")           # stats, allocator-model replay, paged-pool replays
for line in res.summary_lines():
    print(line)                                 # one verdict per OOM, and one for the peak
write_html_report(res, snap, "oom.html")        # standalone, offline
```

Layers: `_schema` (the typed record), `_load` (the data-only unpickler and validation), `_model`
(the caching allocator's rules), `_timeline` (pairing, the state before the trace, bytes over time),
`_stats`, `_replay` (into the model and into a `PagedPool`), `_frames` (both replays recorded as pool
snapshots at chosen entries, for a time slider), `_analysis` (verdicts), `_synth`
(seeded synthetic snapshots), `_report` (HTML), `cli` (``autoglm-lab torch-snapshot``).
This package imports the pool and the report helpers; nothing below it imports this package.
"""

from pathlib import Path
from typing import Any

from ._analysis import Analysis, Verdict, analyze, fmt_bytes, fmt_seconds
from ._frames import ReplayFrames, replay_frames
from ._load import DEFAULT_MAX_BYTES, UnsafePickleError, load_torch_snapshot, parse_snapshot
from ._model import CachingAllocatorModel, OomCheck
from ._record import record_oom_snapshot
from ._replay import (
    DEFAULT_BANDWIDTH,
    PoolOutcome,
    PoolReplay,
    TorchReplay,
    TorchState,
    device_capacity,
    pool_config,
    pool_configs,
    replay_pool,
    replay_torch,
)
from ._schema import (
    ACTIONS,
    BLOCK_STATES,
    Action,
    Frame,
    TorchBlock,
    TorchSegment,
    TorchSnapshot,
    Trace,
    TraceEntry,
    allocation_size,
    round_size,
)
from ._stats import CallSite, SegmentStats, SnapshotStats, snapshot_stats
from ._sweep import sweep
from ._synth import run_program, synthetic_snapshot, write_synthetic_snapshot
from ._timeline import InitialState, Timeline, timeline

__all__ = [
    "load_torch_snapshot", "parse_snapshot", "UnsafePickleError", "DEFAULT_MAX_BYTES",
    "TorchSnapshot", "TorchSegment", "TorchBlock", "Frame", "Trace", "TraceEntry", "Action", "ACTIONS",
    "BLOCK_STATES", "round_size", "allocation_size",
    "CachingAllocatorModel", "OomCheck",
    "InitialState", "Timeline", "timeline",
    "SegmentStats", "SnapshotStats", "CallSite", "snapshot_stats",
    "TorchState", "TorchReplay", "PoolOutcome", "PoolReplay", "replay_torch", "replay_pool", "device_capacity",
    "pool_config", "pool_configs", "DEFAULT_BANDWIDTH", "sweep", "shipped_snapshot_path",
    "ReplayFrames", "replay_frames",
    "Verdict", "Analysis", "analyze", "fmt_bytes", "fmt_seconds",
    "synthetic_snapshot", "write_synthetic_snapshot", "run_program", "record_oom_snapshot",
    "build_html", "write_html_report", "segment_map_rgb", "segment_map_cells", "MAP_STATES", "MAP_COLOURS",
]

def shipped_snapshot_path() -> Path:
    """The small synthetic snapshot with OOMs shipped with the package (see its README next to it)."""
    return Path(__file__).resolve().parents[1] / "data" / "torch_snapshot_synthetic_oom.pickle"


_REPORT = ("build_html", "write_html_report", "segment_map_rgb", "segment_map_cells", "MAP_STATES", "MAP_COLOURS")


def __getattr__(name: str) -> Any:
    # the report needs plotly: imported on first use
    if name in _REPORT:
        from . import _report

        return getattr(_report, name)
    raise AttributeError(f"module 'autoglm_lab.torchsnap' has no attribute {name!r}")
