"""`PoolConfig`: every knob of the pool and its compactor, validated in one place.

The same validation runs for the constructor, for `PagedPool.configure(...)` and for every value
that arrives from the dashboard, so a bad value is refused the same way wherever it comes from.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from ._check import check_fraction, check_int

__all__ = ["PoolConfig", "parse_size", "format_bytes", "format_size", "LIVE_FIELDS"]

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


MAX_SIZE = (1 << 62) - 1  # the core counts bytes in int64


def parse_size(value: int | str, *, name: str = "size") -> int:
    """Bytes from an int or a string such as ``"64KiB"``, ``"2MiB"``, ``"1.5GiB"`` or ``"4096"``."""
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not a size: give bytes as an int or a string like '64KiB'")
    if isinstance(value, int):
        if value > MAX_SIZE:
            raise ValueError(f"{name}={value!r} is too large: sizes go up to 2**62 - 1 bytes (4 EiB)")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and m.group(2).lower() in _UNITS:
            nbytes = float(m.group(1)) * _UNITS[m.group(2).lower()]
            if math.isfinite(nbytes) and nbytes == int(nbytes):
                return parse_size(int(nbytes), name=name)
        raise ValueError(
            f"{name}={value!r} is not a size: use an int or a number with a unit "
            f"(B, KiB, MiB, GiB, TiB, or KB, MB, GB), e.g. '64KiB'"
        )
    raise ValueError(f"{name}={value!r} has type {type(value).__name__}; expected int or str such as '64KiB'")


def format_bytes(n: float, digits: int = 1) -> str:
    """A size for reading, to ``digits`` decimals in binary units: ``512 B``, ``1.5 KiB``, ``64.0 MiB``.
    (Exact spellings of sizes a user picks, such as ``64KiB``, are `format_size`'s.) Every view, report
    and command line writes sizes with one of these two."""
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(x) < 1024:
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.{digits}f} {unit}"
        x /= 1024
    return f"{x:.{digits}f} TiB"


def format_size(nbytes: int) -> str:
    """The shortest exact binary-unit spelling of a size, e.g. ``65536 -> '64KiB'``."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= factor and nbytes % factor == 0:
            return f"{nbytes // factor}{unit}"
    return f"{nbytes}B"


_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d{1,4})?|mps|meta")  # fullmatch: "cpu\n" is not a device
# The pool's enumerations, defined once: config validation, the compactor's planners, the CLI's
# choices and the dashboard's options all read these.
FITS = ("first", "best")
COALESCE_MODES = ("eager", "lazy")
COMPACTION_MODES = ("off", "lazy", "eager")
#: whole-pool strategies a config may name; the compactor also plans "targeted" (one run for a request)
COMPACTION_STRATEGIES = ("two_finger", "sliding")
CHOICES: dict[str, tuple[str, ...]] = {
    "fit": FITS,
    "coalesce": COALESCE_MODES,
    "compaction": COMPACTION_MODES,
    "compaction_strategy": COMPACTION_STRATEGIES,
}
MIN_PAGE = 64
MAX_PAGE = 2**30

# Fields that may change on a live pool; the others fix its storage and need a new pool.
LIVE_FIELDS = frozenset({
    "fit", "coalesce", "fragmentation_threshold_factor", "free_ratio_trigger",
    "max_consecutive_failures", "defrag_interval_s", "compaction", "compaction_strategy",
    "compaction_budget_bytes", "max_size", "event_capacity",
})


@dataclass(frozen=True, init=False)
class PoolConfig:
    """Configuration of a `PagedPool`. Sizes take ints (bytes) or strings such as ``"64KiB"``; the
    config holds them as ints (``max_size`` and ``segment_size`` default to the initial size).

    page_size: bytes per page, a power of two from 64 B to 1 GiB (the source uses 2 MiB pages).
    memory_pool_initial_size: bytes of the first segment, a multiple of ``page_size``.
    max_size: the pool grows by segments up to this many bytes (>= the initial size).
    segment_size: bytes of each later segment (default: the initial size); a request larger than
        it gets a segment of its own size.
    device: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:N", "mps", or "meta" (books
        only, no bytes: replaying a device larger than this machine).
    fit: "best" (smallest free run that fits) or "first" (lowest address that fits).
    coalesce: "eager" merges neighbouring free runs on free; "lazy" only when an allocation needs
        a larger run than the index holds.
    fragmentation_threshold_factor: external fragmentation above which the periodic check
        compacts (0.3 = 30 %; lower compacts more often).
    free_ratio_trigger: on a failed allocation, compact if the free ratio is above this while the
        largest free run is smaller than the request.
    max_consecutive_failures: compact after this many failed allocations in a row.
    defrag_interval_s: seconds between periodic checks (driven by ``pool.tick(now)``).
    compaction: "off"; "lazy": when an allocation fails and a trigger fires (free ratio above
        ``free_ratio_trigger`` with no run long enough, or the ``max_consecutive_failures``-th failure
        in a row), run a targeted compaction and retry, so the caller gets memory instead of
        `PoolExhausted` whenever compaction can make room; "eager": lazy, plus budgeted background
        steps from ``pool.tick(now)`` when the periodic check finds fragmentation above
        ``fragmentation_threshold_factor``. (These are the source material's rules; set
        ``max_consecutive_failures=1`` to compact on every failure.)
    compaction_strategy: full-compaction strategy used by triggers: "two_finger" or "sliding".
    compaction_budget_bytes: bytes per incremental step for background compaction; None means
        the default step budget (2 MiB, about a millisecond of CPU copying).
    event_capacity: length of the ring buffer of recent events.
    """

    # The fields hold what __init__ normalised (sizes in bytes, fractions and seconds as floats);
    # __init__ takes the looser spellings, so readers never cast.
    page_size: int
    memory_pool_initial_size: int
    max_size: int
    segment_size: int
    device: str
    fit: Literal["first", "best"]
    coalesce: Literal["eager", "lazy"]
    fragmentation_threshold_factor: float
    free_ratio_trigger: float
    max_consecutive_failures: int
    defrag_interval_s: float
    compaction: Literal["off", "lazy", "eager"]
    compaction_strategy: Literal["two_finger", "sliding"]
    compaction_budget_bytes: int | None
    event_capacity: int

    def __init__(
        self,
        page_size: int | str = "64KiB",
        memory_pool_initial_size: int | str = "64MiB",
        max_size: int | str | None = "256MiB",
        segment_size: int | str | None = None,
        device: str = "auto",
        fit: Literal["first", "best"] = "best",
        coalesce: Literal["eager", "lazy"] = "eager",
        fragmentation_threshold_factor: float = 0.3,
        free_ratio_trigger: float = 0.6,
        max_consecutive_failures: int = 3,
        defrag_interval_s: float = 30.0,
        compaction: Literal["off", "lazy", "eager"] = "lazy",
        compaction_strategy: Literal["two_finger", "sliding"] = "two_finger",
        compaction_budget_bytes: int | str | None = None,
        event_capacity: int = 4096,
    ) -> None:
        page = parse_size(page_size, name="page_size")
        if page < MIN_PAGE or page > MAX_PAGE or page & (page - 1):
            raise ValueError(
                f"page_size={page_size!r} ({page} bytes) is not allowed: "
                f"use a power of two from 64B to 1GiB, e.g. '64KiB' or '2MiB'"
            )
        initial = parse_size(memory_pool_initial_size, name="memory_pool_initial_size")
        if initial <= 0 or initial % page:
            raise ValueError(
                f"memory_pool_initial_size={memory_pool_initial_size!r} ({initial} bytes) is not "
                f"allowed: use a positive multiple of page_size ({page} bytes)"
            )
        max_b = initial if max_size is None else parse_size(max_size, name="max_size")
        if max_b < initial:
            raise ValueError(
                f"max_size={max_size!r} ({max_b} bytes) is not allowed: it must be at least "
                f"memory_pool_initial_size ({initial} bytes)"
            )
        seg = initial if segment_size is None else parse_size(segment_size, name="segment_size")
        if seg <= 0 or seg % page:
            raise ValueError(
                f"segment_size={segment_size!r} ({seg} bytes) is not allowed: use a positive "
                f"multiple of page_size ({page} bytes)"
            )
        if not isinstance(device, str) or not _DEVICE_RE.fullmatch(device):
            raise ValueError(f"device={device!r} is not allowed: use 'auto', 'cpu', 'mps', 'cuda' or "
                             f"'cuda:N' (N a device index, 0-9999)")
        choices = {"fit": fit, "coalesce": coalesce, "compaction": compaction,
                   "compaction_strategy": compaction_strategy}
        for name, allowed in CHOICES.items():
            if choices[name] not in allowed:
                raise ValueError(f"{name}={choices[name]!r} is not allowed: choose one of "
                                 f"{', '.join(map(repr, allowed))}")
        check_fraction("fragmentation_threshold_factor", fragmentation_threshold_factor)
        check_fraction("free_ratio_trigger", free_ratio_trigger)
        check_int("max_consecutive_failures", max_consecutive_failures, 1, 1_000_000)
        interval = defrag_interval_s
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0 \
                or interval == float("inf"):
            raise ValueError(f"defrag_interval_s={interval!r} is not allowed: use a finite number of seconds > 0")
        budget = compaction_budget_bytes
        budget_b = None if budget is None else parse_size(budget, name="compaction_budget_bytes")
        if budget_b is not None and budget_b < page:
            raise ValueError(
                f"compaction_budget_bytes={budget!r} is not allowed: use None or at least one page "
                f"({page} bytes)"
            )
        check_int("event_capacity", event_capacity, 16, 10_000_000)
        # frozen: set through object.__setattr__, as a dataclass's own __init__ does
        set_ = object.__setattr__
        set_(self, "page_size", page)
        set_(self, "memory_pool_initial_size", initial)
        set_(self, "max_size", max_b)
        set_(self, "segment_size", seg)
        set_(self, "device", device)
        set_(self, "fit", fit)
        set_(self, "coalesce", coalesce)
        set_(self, "fragmentation_threshold_factor", float(fragmentation_threshold_factor))
        set_(self, "free_ratio_trigger", float(free_ratio_trigger))
        set_(self, "max_consecutive_failures", max_consecutive_failures)
        set_(self, "defrag_interval_s", float(interval))
        set_(self, "compaction", compaction)
        set_(self, "compaction_strategy", compaction_strategy)
        set_(self, "compaction_budget_bytes", budget_b)
        set_(self, "event_capacity", event_capacity)

    def replace(self, **changes: Any) -> PoolConfig:
        """A new, validated config with ``changes`` applied; unknown names raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(self) if not f.name.startswith("_")}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown PoolConfig field(s) {unknown}; known fields: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}

    @property
    def pages_per_segment(self) -> int:
        return self.segment_size // self.page_size


