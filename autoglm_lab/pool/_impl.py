"""Which core the pool runs on: the compiled `_core` when it is built and current, else `_pycore`.

The package's build hook (``hatch_build.py``, run by ``pip install`` and ``scripts/setup.sh``)
compiles ``_core.c``. Without a C compiler the pool still works, on the pure-Python reference
implementation, about 4-5x slower per alloc/free. ``AUTOGLM_LAB_PURE_PYTHON=1`` forces it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from types import ModuleType

from ._events import EventRing as PyEventRing
from ._freeindex import FreeRunIndex
from ._pycore import BlockBase as PyBlockBase
from ._pycore import PyCore

__all__ = ["IMPL", "REASON", "BlockBase", "Core", "EventRing", "FreeIndex", "copy_ranges", "parts", "source_hash"]

log = logging.getLogger(__name__)


def source_hash(path: Path | None = None) -> str:
    """The hash the build hook compiles into ``_core`` (``_core.SOURCE_HASH``), to detect stale builds."""
    src = path or Path(__file__).with_name("_core.c")
    return hashlib.sha256(src.read_bytes()).hexdigest()[:16]


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get("AUTOGLM_LAB_PURE_PYTHON", "") not in ("", "0"):
        return None, "AUTOGLM_LAB_PURE_PYTHON is set"
    try:
        from . import _core  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"the compiled core is not built ({exc}); `pip install .` or scripts/setup.sh builds it"
    src = Path(__file__).with_name("_core.c")
    if src.exists() and _core.SOURCE_HASH != source_hash(src):
        return None, "the compiled core is older than _core.c; rebuild it with scripts/setup.sh"
    return _core, ""


_mod, REASON = _load()
#: copy_ranges(buffer, ranges, chunk) from the compiled core, or None (the compactor then loops in numpy)
copy_ranges = _mod.copy_ranges if _mod is not None else None
if _mod is not None:
    IMPL = "c"
    FreeIndex = _mod.FreeIndex
    EventRing = _mod.EventRing
    BlockBase = _mod.BlockBase
    Core = _mod.Core
else:
    IMPL = "python"
    log.warning("autoglm_lab.pool runs on its pure-Python core: %s", REASON)
    FreeIndex = FreeRunIndex
    EventRing = PyEventRing
    BlockBase = PyBlockBase
    Core = PyCore


def parts(kind: str) -> tuple[type, type, type]:
    """(FreeIndex, EventRing, Core) of the compiled ("c") or the reference ("python") core."""
    if kind == "python":
        return FreeRunIndex, PyEventRing, PyCore
    if kind == "c":
        if _mod is None:
            raise RuntimeError(f"the compiled core is not available: {REASON}")
        return _mod.FreeIndex, _mod.EventRing, _mod.Core
    raise ValueError(f"core={kind!r} is not allowed: use 'c' or 'python'")
