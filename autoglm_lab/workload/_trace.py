"""`load_trace`: two real trace formats, told apart by content.

Azure LLM inference trace CSV, header ``TIMESTAMP,ContextTokens,GeneratedTokens``:
Timestamps look like ``2023-11-16 18:15:46.6805900`` (seven fractional digits, which
`datetime.fromisoformat` of Python 3.10 refuses, so they are parsed by hand). Arrival times become
seconds since the first request; ``time_scale`` compresses them and ``token_scale`` shrinks token
counts, so a one-hour trace fits a CPU demo.

Mooncake JSONL (the first non-blank character is ``{``), one object per line:
``{"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [block ids]}``, one id per
512-token prompt block (a hash chain: a shared id means a shared prefix). Requests carry them as
`Request.block_hashes`; ``token_scale`` scales the block size too (at least 1 token), and a prompt
is never scaled below the blocks its ids need. Other fields are ignored.

Limits: the file is UTF-8 text (an optional BOM is accepted), a CSV field is at most 128 KiB, a
JSONL line at most 1 MiB, a token count is an integer from 1 to `MAX_TOKENS` before and after
scaling, a timestamp is finite and >= 0, ``hash_ids`` holds at most ceil(input_length / 512)
distinct integers from 0 to 2**63 - 1, and a scaled arrival is at most `MAX_ARRIVAL_S`.
Anything else raises `TraceError` naming the file, line and field; nothing is
returned from a file with a bad row.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from typing import TextIO

from ._requests import MAX_ARRIVAL_S, MAX_TOKENS, Request

__all__ = ["load_trace", "TraceError"]

HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?$", re.ASCII)
_INT = re.compile(r"^[+-]?[0-9]+$")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what errors="surrogateescape" makes of non-UTF-8 bytes
_MAX_FIELD = 128 * 1024  # the csv module's default field_size_limit, stated
_MAX_SHOWN = 60
_MAX_LINE = 1 << 20  # a JSONL line (the longest Mooncake line is about 2 KiB)
MOONCAKE_BLOCK_TOKENS = 512
JSONL_FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")
_FORMATS = (f"an Azure trace CSV (header {','.join(HEADER)}) or a Mooncake JSONL trace (one object per line with "
            f"{', '.join(JSONL_FIELDS)})")


class TraceError(ValueError):
    """A trace file that does not follow the schema; the message names the file and line."""


def _show(text: str) -> str:
    """``repr`` of a field, shortened: a bad field may be 128 KiB long."""
    if len(text) > _MAX_SHOWN:
        return f"{text[:_MAX_SHOWN]!r}... ({len(text):,} characters)"
    return repr(text)


def _timestamp(text: str) -> float:
    m = _TS.match(text.strip())
    if m is None:
        raise ValueError(f"TIMESTAMP {_show(text)} is not allowed: use 'YYYY-MM-DD HH:MM:SS.fffffff'")
    try:
        base = datetime.fromisoformat(m.group(1).replace("T", " ")).replace(tzinfo=timezone.utc)
    except ValueError as err:
        raise ValueError(f"TIMESTAMP {_show(text)} is not a date: {err}") from None
    frac = m.group(2) or "0"
    return base.timestamp() + int(frac) / 10 ** len(frac)


def _count(text: str, name: str) -> int:
    allowed = f"use an integer from 1 to {MAX_TOKENS:,}"
    digits = text.strip()
    if not _INT.match(digits):
        raise ValueError(f"{name} {_show(text)} is not an integer: {allowed}")
    if len(digits) > 20:  # before int(): thousands of digits are slow to convert, then refused anyway
        raise ValueError(f"{name} {_show(text)} is not allowed: {allowed}")
    value = int(digits)
    if value < 1:
        raise ValueError(f"{name} {value} is below 1: {allowed}")
    if value > MAX_TOKENS:
        raise ValueError(f"{name} {value} is above {MAX_TOKENS:,}: {allowed}")
    return value


def _check_args(token_scale: object, time_scale: object, limit: object, min_tokens: object) -> None:
    for name, value in (("token_scale", token_scale), ("time_scale", time_scale)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name}={value!r} is not allowed: use a finite number > 0")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}={value!r} is not allowed: use a finite number > 0")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit={limit!r} is not allowed: use None or an integer >= 0")
    if isinstance(min_tokens, bool) or not isinstance(min_tokens, int) or not 1 <= min_tokens <= MAX_TOKENS:
        raise ValueError(f"min_tokens={min_tokens!r} is not allowed: use an integer from 1 to {MAX_TOKENS:,}")


def load_trace(path: str | PathLike[str], *, token_scale: float = 1.0, time_scale: float = 1.0,
               limit: int | None = None, min_tokens: int = 1) -> list[Request]:
    """Requests of a trace file (Azure CSV or Mooncake JSONL, told apart by content), arrivals in
    seconds from the first request, sorted by arrival.

    token_scale: multiply prompt and output lengths (rounded, at least ``min_tokens``, an integer
        from 1 to `MAX_TOKENS`) and the Mooncake block size.
    time_scale: divide arrival times (10 = ten times faster); `ServingConfig.request_rate_scale`
        does the same while a simulation runs.
    limit: read at most this many requests (the first ones in the file).
    Raises `TraceError` (a ValueError) naming the file, the line and the field of the first bad row
    or an unknown format (see the module docstring for the limits), ValueError/TypeError for a bad
    argument and OSError for a file that cannot be read. Nothing is returned from a bad file.
    """
    _check_args(token_scale, time_scale, limit, min_tokens)
    path = Path(path)
    try:
        fh = path.open(newline="", encoding="utf-8-sig", errors="surrogateescape")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
        raise type(err)(err.errno, f"trace file {str(path)!r}: {err.strerror}; give the path of a trace file "
                                   f"(Azure CSV or Mooncake JSONL)") from None
    with fh:
        head = fh.read(4096)
        fh.seek(0)
        jsonl = head.lstrip().startswith("{")
        rows = _read_jsonl(fh, path, limit) if jsonl else _read_csv(fh, path, limit)
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0] if rows else 0.0
    block = max(1, round(MOONCAKE_BLOCK_TOKENS * token_scale)) if jsonl else MOONCAKE_BLOCK_TOKENS
    names = ("input_length", "output_length") if jsonl else ("ContextTokens", "GeneratedTokens")
    time_name = "timestamp" if jsonl else "TIMESTAMP"
    out = []
    for i, (ts, ctx, gen, line, hashes) in enumerate(rows):
        arrival = (ts - t0) / time_scale
        if not arrival <= MAX_ARRIVAL_S:  # also catches inf from a tiny time_scale
            raise TraceError(f"{path}, line {line}: {time_name} is {ts - t0:g} s after the first request, which "
                             f"time_scale={time_scale!r} turns into an arrival at {arrival:g} s; the most "
                             f"allowed is {MAX_ARRIVAL_S:,.0f} s: use a larger time_scale")
        counts = []
        for name, n in zip(names, (ctx, gen), strict=True):
            scaled = n * token_scale  # a float: rounding inf would raise OverflowError
            if scaled >= MAX_TOKENS + 0.5:
                raise TraceError(f"{path}, line {line}: {name} {n} times token_scale={token_scale!r} is "
                                 f"{scaled:.6g} tokens; the most allowed is {MAX_TOKENS:,}: use a smaller token_scale")
            counts.append(max(min_tokens, round(scaled)))
        if hashes:  # the prompt keeps room for every block its ids name
            counts[0] = min(MAX_TOKENS, max(counts[0], (len(hashes) - 1) * block + 1))
        out.append(Request(id=i, arrival_s=arrival, prompt_tokens=counts[0], output_tokens=counts[1], session_id=i,
                           block_hashes=hashes, hash_block_tokens=block))
    return out


Row = tuple[float, int, int, int, tuple[int, ...]]  # seconds, prompt, output, line, block hashes


def _read_csv(fh: Iterable[str], path: Path, limit: int | None) -> list[Row]:
    rows: list[Row] = []
    last = [""]  # the physical line the csv reader took last: names the field of a csv.Error
    reader = csv.reader(_remember(fh, last))
    line = 1
    try:
        header = next(reader, None)
        if header is None:
            raise TraceError(f"{path}, line 1: the file is empty: use {_FORMATS}")
        bad = next((m for h in header if (m := _UNDECODABLE.search(h))), None)
        if bad is not None:
            raise TraceError(f"{path}, line 1: the header is not UTF-8 text (it has the byte "
                             f"0x{ord(bad.group()) - 0xDC00:02x}): save the trace as UTF-8")
        if tuple(h.strip() for h in header) != HEADER:
            raise TraceError(f"{path}, line 1: header {_show(','.join(header))} is not allowed: unknown trace "
                             f"format; use {_FORMATS}")
        for row in reader:
            line = reader.line_num
            if limit is not None and len(rows) >= limit:
                break
            if not row or all(not c.strip() for c in row):
                continue
            rows.append((*_row(row), line, ()))
    except csv.Error as err:
        # reader.line_num has counted the lines of the row it could not parse
        raise TraceError(f"{path}, line {reader.line_num}: {err}{_culprit(last[0])} (a field may hold at most "
                         f"{_MAX_FIELD:,} characters)") from None
    except ValueError as err:
        if isinstance(err, TraceError):
            raise
        raise TraceError(f"{path}, line {line}: {err}") from None
    return rows


def _read_jsonl(fh: TextIO, path: Path, limit: int | None) -> list[Row]:
    rows: list[Row] = []
    for line, text in enumerate(_lines(fh, path), 1):
        if limit is not None and len(rows) >= limit:
            break
        if not text.strip():
            continue
        try:
            ts, ctx, gen, ids = _record(text)
            rows.append((ts, ctx, gen, line, ids))
        except ValueError as err:
            raise TraceError(f"{path}, line {line}: {err}") from None
    return rows


def _lines(fh: TextIO, path: Path) -> Iterator[str]:
    """Lines of ``fh``, refusing an over-long one before it is read whole."""
    read = fh.readline
    line = 0
    while True:
        text = read(_MAX_LINE + 1)
        if not text:
            return
        line += 1
        if len(text) > _MAX_LINE and not text.endswith("\n"):
            raise TraceError(f"{path}, line {line}: the line is longer than {_MAX_LINE:,} characters "
                             f"({_show(text)}); a Mooncake JSONL line holds one request")
        yield text


def _record(text: str) -> tuple[float, int, int, tuple[int, ...]]:
    m = _UNDECODABLE.search(text)
    if m is not None:
        raise ValueError(f"the byte 0x{ord(m.group()) - 0xDC00:02x} is not UTF-8: save the trace as UTF-8 text")
    try:
        obj = json.loads(text)
    except ValueError as err:  # JSONDecodeError, or an integer of thousands of digits
        reason = str(err) if len(str(err)) <= 80 else f"{str(err)[:80]}..."
        raise ValueError(f"not a JSON object ({reason}): {_show(text.strip())}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{_show(text.strip())} is a JSON {type(obj).__name__}, not an object with "
                         f"{', '.join(JSONL_FIELDS)}")
    missing = [f for f in JSONL_FIELDS if f not in obj]
    if missing:
        raise ValueError(f"field {', '.join(missing)} missing: each line needs {', '.join(JSONL_FIELDS)}")
    ts = obj["timestamp"]
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not (math.isfinite(ts) and 0 <= ts <= 1e15):
        raise ValueError(f"timestamp {_js(ts)} is not allowed: use a finite number of milliseconds "
                         f"from 0 to 1e15")
    ctx = _json_count(obj["input_length"], "input_length")
    gen = _json_count(obj["output_length"], "output_length")
    ids = obj["hash_ids"]
    if not isinstance(ids, list):
        raise ValueError(f"hash_ids {_js(ids)} is not allowed: use a list of integers >= 0")
    bad = next((h for h in ids if type(h) is not int or not 0 <= h < 2**63), None)
    if bad is not None:
        raise ValueError(f"hash_ids holds {_js(bad)}, which is not allowed: use integers from 0 to "
                         f"{2**63 - 1}")
    most = -(-ctx // MOONCAKE_BLOCK_TOKENS)
    if len(ids) > most:
        raise ValueError(f"hash_ids has {len(ids)} ids, which is not allowed: input_length {ctx} has at most "
                         f"{most} blocks of {MOONCAKE_BLOCK_TOKENS} tokens")
    if len(set(ids)) != len(ids):
        raise ValueError("hash_ids repeats an id, which is not allowed: a hash chain never repeats a block")
    return ts / 1000.0, ctx, gen, tuple(ids)


def _js(value: object) -> str:
    """A JSON value as it appears in the file, shortened."""
    text = json.dumps(value)
    return f"{text[:_MAX_SHOWN]}... ({len(text):,} characters)" if len(text) > _MAX_SHOWN else text


def _json_count(value: object, name: str) -> int:
    allowed = f"use an integer from 1 to {MAX_TOKENS:,}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} {_js(value)} is not an integer: {allowed}")
    if value < 1:
        raise ValueError(f"{name} {value} is below 1: {allowed}")
    if value > MAX_TOKENS:
        raise ValueError(f"{name} {_js(value)} is above {MAX_TOKENS:,}: {allowed}")
    return value


def _remember(lines: Iterable[str], last: list[str]) -> Iterator[str]:
    for text in lines:
        last[0] = text
        yield text


def _culprit(text: str) -> str:
    """The over-long field of a physical line, as " in FIELD 'value'..." ("" if none: a quoted field)."""
    for i, part in enumerate(text.rstrip("\r\n").split(",")):
        if len(part) > _MAX_FIELD:
            name = HEADER[i] if i < len(HEADER) else f"field {i + 1}"
            return f" in {name} {_show(part)}"
    return ""


def _row(row: list[str]) -> tuple[float, int, int]:
    if len(row) != 3:
        what = f"{', '.join(HEADER[len(row):])} missing" if len(row) < 3 else f"{len(row) - 3} extra"
        raise ValueError(f"{len(row)} fields ({what}), expected 3 ({','.join(HEADER)}): {_show(','.join(row))}")
    for name, text in zip(HEADER, row, strict=True):
        m = _UNDECODABLE.search(text)
        if m is not None:
            byte = ord(m.group()) - 0xDC00
            raise ValueError(f"{name} has the byte 0x{byte:02x}, which is not UTF-8: save the trace as UTF-8 text")
    return _timestamp(row[0]), _count(row[1], "ContextTokens"), _count(row[2], "GeneratedTokens")
