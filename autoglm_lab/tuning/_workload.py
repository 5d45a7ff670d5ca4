"""`Workload`: a seeded, picklable description of the requests a trial serves and how long it runs.

Trials run in other processes (or on other machines), so they receive this small frozen record and
rebuild the request list themselves; the same record gives the same requests everywhere.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from ..workload import Request, check_synthetic_args, load_trace, synthetic_requests

__all__ = ["Workload"]

_SYNTHETIC_FIELDS = ("num_sessions", "rate_per_s", "prompt_median", "output_median", "turns_mean",
                     "think_time_s", "max_tokens", "seed")


@dataclass(frozen=True)
class Workload:
    """Requests for one tuning trial plus the length of the run.

    trace: path of a trace CSV (``TIMESTAMP,ContextTokens,GeneratedTokens``); None = synthetic.
    steps: at most this many simulator steps per trial; a trial normally stops earlier, when every
        request is done, so all trials serve the same requests and their latencies compare.
    until_s: stop when the simulated clock passes this many seconds (None: no limit).
    num_sessions, rate_per_s, prompt_median, output_median, turns_mean, think_time_s, max_tokens,
        seed: arguments of `synthetic_requests` (ignored for a trace, except ``seed``).
    trace_limit, time_scale, token_scale: arguments of `load_trace` (ignored when synthetic).
    """

    trace: str | None = None
    steps: int = 5000
    until_s: float | None = None
    num_sessions: int = 60
    rate_per_s: float = 400.0
    prompt_median: int = 128
    output_median: int = 32
    turns_mean: float = 1.5
    think_time_s: float = 2.0
    max_tokens: int = 2048
    seed: int = 0
    trace_limit: int | None = None
    time_scale: float = 1.0
    token_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.trace is not None:
            if not isinstance(self.trace, str | PathLike):  # str() would turn anything into a "path"
                raise TypeError(f"trace={self.trace!r} is not allowed: use None or the path of a trace CSV "
                                f"(str or os.PathLike), not {type(self.trace).__name__}")
            object.__setattr__(self, "trace", str(self.trace))
        for name in ("steps", "num_sessions", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "steps" else 0):
                low = 1 if name == "steps" else 0
                raise ValueError(f"{name}={value!r} is not allowed: use an integer >= {low}")
        if self.until_s is not None and not _positive(self.until_s):
            raise ValueError(f"until_s={self.until_s!r} is not allowed: use None or a finite number > 0")
        if self.trace_limit is not None and (isinstance(self.trace_limit, bool)
                                             or not isinstance(self.trace_limit, int) or self.trace_limit < 1):
            raise ValueError(f"trace_limit={self.trace_limit!r} is not allowed: use None or an integer >= 1")
        for name in ("time_scale", "token_scale"):
            if not _positive(getattr(self, name)):
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed: use a finite number > 0")
        if self.trace is None:  # the synthetic fields are ignored for a trace
            check_synthetic_args(**{n: getattr(self, n) for n in _SYNTHETIC_FIELDS})

    def requests(self) -> list[Request]:
        """The request list (cached per process: trials of one sweep share it)."""
        return list(_requests(self))

    def check(self) -> None:
        """Build the requests once, so a missing trace or a bad parameter fails before any trial runs."""
        if self.trace is not None and not Path(self.trace).is_file():
            raise FileNotFoundError(f"trace file {self.trace!r} does not exist: give the path of a trace CSV file")
        if not _requests(self):
            what = f"trace file {self.trace!r}" if self.trace is not None else f"num_sessions={self.num_sessions}"
            raise ValueError(f"{what} gives no requests: every trial would serve nothing")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _positive(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value > 0


@functools.lru_cache(maxsize=8)
def _requests(w: Workload) -> tuple[Request, ...]:
    if w.trace is not None:
        return tuple(load_trace(w.trace, limit=w.trace_limit, time_scale=w.time_scale, token_scale=w.token_scale))
    return tuple(synthetic_requests(
        w.num_sessions, rate_per_s=w.rate_per_s, prompt_median=w.prompt_median, output_median=w.output_median,
        turns_mean=w.turns_mean, think_time_s=w.think_time_s, max_tokens=w.max_tokens, seed=w.seed))
