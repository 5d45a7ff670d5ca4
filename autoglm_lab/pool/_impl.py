"""Which core the pool runs on: the compiled `_core` when it is built and current, else `_pycore`.

The package's build hook (``hatch_build.py``, run by ``pip install`` and ``scripts/setup.sh``)
compiles ``_core.c``. Without a C compiler the pool still works, on the pure-Python reference
implementation, about 4-5x slower per alloc/free. ``AUTOGLM_LAB_PURE_PYTHON=1`` forces it.

`FreeIndexLike`, `EventRingLike` and `CoreLike` are the interface both cores provide: the pool is
typed against them, and mypy checks the compiled core (its stub, ``_core.pyi``) and the Python twins
against them where `parts` returns them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._events import EventRing as PyEventRing
from ._freeindex import FreeRunIndex
from ._pycore import PyCore

if TYPE_CHECKING:
    from array import array

    import numpy as np
    import torch

    from ._block import Block
    from ._core import BlockBase  # Block's static base; at run time the compiled or the Python one (below)
    from ._events import EventRow, EventRows
    from ._pool import _Segment

__all__ = ["IMPL", "REASON", "BlockBase", "Core", "CoreLike", "EventRing", "EventRingLike", "FreeIndex",
           "FreeIndexLike", "copy_ranges", "parts", "source_hash"]

log = logging.getLogger(__name__)


class FreeIndexLike(Protocol):
    """The free-run index: `_core.FreeIndex` or `_freeindex.FreeRunIndex`."""

    dirty: bool

    @property
    def fit(self) -> str: ...
    @fit.setter
    def fit(self, fit: str) -> None: ...
    @property
    def free_pages(self) -> int: ...
    @property
    def total_pages(self) -> int: ...
    def reset(self, total_pages: int, barriers: Iterable[int], runs: Iterable[tuple[int, int]], /) -> None: ...
    def add_segment(self, first: int, num_pages: int, /) -> None: ...
    def take(self, pages: int, /) -> int: ...
    def find(self, pages: int, /) -> int: ...
    def release(self, start: int, length: int, merge: bool) -> None: ...
    def carve(self, start: int, length: int, /) -> None: ...
    def largest(self) -> int: ...
    def runs(self) -> list[tuple[int, int]]: ...
    def merged_runs(self) -> list[tuple[int, int]]: ...
    def merge_all(self) -> bool: ...
    def lengths(self) -> bytes | array[int]: ...  # int64 run lengths
    def check(self) -> None: ...
    def __len__(self) -> int: ...


class EventRingLike(Protocol):
    """The event ring: `_core.EventRing` (packed rows) or `_events.EventRing` (tuples)."""

    total: int

    @property
    def capacity(self) -> int: ...
    def record(self, event: EventRow, /) -> None: ...
    def resize(self, capacity: int, /) -> None: ...
    def rows(self) -> EventRows: ...
    def __len__(self) -> int: ...


class CoreLike(Protocol):
    """The alloc/free bookkeeping: `_core.Core` or `_pycore.PyCore` (see `_pycore` for the contract)."""

    merge_on_free: int
    next_id: int
    used_pages: int
    peak_used_pages: int
    requested_bytes: int
    num_allocs: int
    num_frees: int
    consecutive_failures: int
    seq: int

    @property
    def nslots(self) -> int: ...
    def alloc_bytes(self, nbytes: Any, tag: Any, /) -> Block | None: ...
    def alloc(self, shape: Any, dtype: Any, tag: Any, /) -> Block | None: ...
    def alloc_shaped(self, nbytes: int, dtype: torch.dtype, shape: tuple[int, ...], tag: str | None, /
                     ) -> Block | None: ...
    def place(self, start: int, nbytes: int, dtype: torch.dtype, shape: tuple[int, ...], tag: str | None,
              started_s: float, /) -> Block: ...
    def free(self, block: Block, /) -> bool | None: ...
    def relocate(self, moves: Sequence[tuple[int, int, int]], /) -> None: ...
    def set_segments(self, segments: list[_Segment], /) -> None: ...
    def set_start(self, slot: int, start: int, /) -> None: ...
    def set_pins(self, slot: int, pins: int, /) -> None: ...
    # id, start, pages, nbytes, tag, pins (int64), created (float64)
    def table(self) -> tuple[memoryview | array[Any], ...]: ...


#: (FreeIndex(fit), EventRing(capacity), Core(...)): the constructors of one core
Parts = tuple[Callable[[str], FreeIndexLike], Callable[[int], EventRingLike], Callable[..., CoreLike]]


def source_hash(path: Path | None = None) -> str:
    """The hash the build hook compiles into ``_core`` (``_core.SOURCE_HASH``), to detect stale builds."""
    src = path or Path(__file__).with_name("_core.c")
    return hashlib.sha256(src.read_bytes()).hexdigest()[:16]


def _load() -> str:
    """Why the compiled core cannot run ("" when it can)."""
    if os.environ.get("AUTOGLM_LAB_PURE_PYTHON", "") not in ("", "0"):
        return "AUTOGLM_LAB_PURE_PYTHON is set"
    try:
        from . import _core
    except ImportError as exc:
        return f"the compiled core is not built ({exc}); `pip install .` or scripts/setup.sh builds it"
    src = Path(__file__).with_name("_core.c")
    if src.exists() and _core.SOURCE_HASH != source_hash(src):
        return "the compiled core is older than _core.c; rebuild it with scripts/setup.sh"
    return ""


REASON = _load()
_PY_PARTS: Parts = (FreeRunIndex, PyEventRing, PyCore)
_C_PARTS: Parts | None = None
#: copy_ranges(buffer, ranges, chunk) from the compiled core, or None (the compactor then loops in numpy)
copy_ranges: Callable[[np.ndarray, np.ndarray, int], None] | None = None
if not REASON:
    from . import _core

    IMPL = "c"
    _C_PARTS = (_core.FreeIndex, _core.EventRing, _core.Core)
    copy_ranges = _core.copy_ranges
    if not TYPE_CHECKING:
        BlockBase = _core.BlockBase
else:
    IMPL = "python"
    log.warning("autoglm_lab.pool runs on its pure-Python core: %s", REASON)
    if not TYPE_CHECKING:
        from ._pycore import BlockBase
FreeIndex, EventRing, Core = _C_PARTS or _PY_PARTS


def parts(kind: str) -> Parts:
    """(FreeIndex, EventRing, Core) of the compiled ("c") or the reference ("python") core."""
    if kind == "python":
        return _PY_PARTS
    if kind == "c":
        if _C_PARTS is None:
            raise RuntimeError(f"the compiled core is not available: {REASON}")
        return _C_PARTS
    raise ValueError(f"core={kind!r} is not allowed: use 'c' or 'python'")
