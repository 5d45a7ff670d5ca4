"""autoglm_lab: a Jupyter-native lab for GPU memory fragmentation.

A live, torch-backed paged memory pool and its compactor, a serving simulator that puts an LLM's KV
cache in the pool, and a dashboard widget that shows and drives them. Heavy layers (simulator,
widget) are imported on first use, so ``import autoglm_lab`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import compactor as _compactor  # noqa: F401 - registers the pool's default compaction service
from .pool import (
    Block,
    DeviceAllocationError,
    InvalidBlockError,
    PagedPool,
    PageState,
    PinnedBlockError,
    PoolConfig,
    PoolError,
    PoolExhausted,
    PoolSnapshot,
    PoolStats,
    format_size,
    parse_size,
)

__version__ = "0.1.0"

_LAZY = {
    "CompactionReport": "autoglm_lab.compactor",
    "Plan": "autoglm_lab.compactor",
    "ServingSim": "autoglm_lab.workload",
    "ServingConfig": "autoglm_lab.workload",
    "TinyGLM": "autoglm_lab.workload",
    "load_trace": "autoglm_lab.workload",
    "synthetic_requests": "autoglm_lab.workload",
    "ModelConfig": "autoglm_lab.workload",
    "Request": "autoglm_lab.workload",
    "tune": "autoglm_lab.tuning",
    "load_torch_snapshot": "autoglm_lab.torchsnap",
    "Workload": "autoglm_lab.tuning",
    "Dashboard": "autoglm_lab.widget",
    "PageMap": "autoglm_lab.widget",
}

__all__ = [
    "Block", "DeviceAllocationError", "InvalidBlockError", "PagedPool", "PageState", "PinnedBlockError", "PoolConfig",
    "PoolError", "PoolExhausted", "PoolSnapshot", "PoolStats", "format_size", "parse_size",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'autoglm_lab' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
