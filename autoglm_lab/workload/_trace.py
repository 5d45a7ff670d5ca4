"""`load_trace`: the Azure LLM inference trace schema ``TIMESTAMP,ContextTokens,GeneratedTokens``.

Timestamps look like ``2023-11-16 18:15:46.6805900`` (seven fractional digits, which
`datetime.fromisoformat` of Python 3.10 refuses, so they are parsed by hand). Arrival times become
seconds since the first request; ``time_scale`` compresses them and ``token_scale`` shrinks token
counts, so a one-hour trace fits a CPU demo.
"""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path

from ._requests import Request

__all__ = ["load_trace", "TraceError"]

HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?$")


class TraceError(ValueError):
    """A trace file that does not follow the schema; the message names the file and line."""


def _timestamp(text: str) -> float:
    m = _TS.match(text.strip())
    if m is None:
        raise ValueError(f"TIMESTAMP {text!r} is not 'YYYY-MM-DD HH:MM:SS.fffffff'")
    base = datetime.fromisoformat(m.group(1).replace("T", " ")).replace(tzinfo=timezone.utc)
    frac = m.group(2) or "0"
    return base.timestamp() + int(frac) / 10 ** len(frac)


def _count(text: str, name: str, low: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{name} {text!r} is not an integer") from None
    if value < low:
        raise ValueError(f"{name} {value} is below {low}")
    return value


def load_trace(path: str | PathLike[str], *, token_scale: float = 1.0, time_scale: float = 1.0,
               limit: int | None = None, min_tokens: int = 1) -> list[Request]:
    """Requests of a trace CSV, arrivals in seconds from the first row, sorted by arrival.

    token_scale: multiply ContextTokens and GeneratedTokens (rounded, at least ``min_tokens``).
    time_scale: divide arrival times (10 = ten times faster); `ServingConfig.request_rate_scale`
        does the same while a simulation runs.
    limit: read at most this many requests.
    Raises `TraceError` (a ValueError) naming the line of the first bad row.
    """
    for name, value in (("token_scale", token_scale), ("time_scale", time_scale)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}={value!r} is not allowed: use a finite number > 0")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit={limit!r} is not allowed: use None or an integer >= 0")
    path = Path(path)
    rows: list[tuple[float, int, int]] = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            raise TraceError(f"{path}, line 1: header {header!r} is not {','.join(HEADER)}")
        for row in reader:
            if limit is not None and len(rows) >= limit:
                break
            if not row or all(not c.strip() for c in row):
                continue
            try:
                if len(row) != 3:
                    raise ValueError(f"{len(row)} fields, expected 3 ({','.join(HEADER)})")
                ctx, gen = _count(row[1], "ContextTokens", 1), _count(row[2], "GeneratedTokens", 1)
                rows.append((_timestamp(row[0]), ctx, gen))
            except ValueError as exc:
                raise TraceError(f"{path}, line {reader.line_num}: {exc}: {','.join(row)!r}") from None
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0] if rows else 0.0

    def scaled(n: int) -> int:
        return max(min_tokens, round(n * token_scale))

    return [Request(id=i, arrival_s=(ts - t0) / time_scale, prompt_tokens=scaled(ctx), output_tokens=scaled(gen),
                    session_id=i) for i, (ts, ctx, gen) in enumerate(rows)]
