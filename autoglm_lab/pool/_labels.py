"""Stats tables in words: a `StatTable` names each key of a stats dict (group, label, unit), and
`group_stats` / `format_stat` turn a dict into labelled, unit-bearing rows for reports and the
command line. The tables themselves live next to what they describe: `POOL_STATS_LABELS` beside
`PoolStats`, the simulator's `SUMMARY_LABELS` beside `summarise`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from ._config import format_bytes

__all__ = ["STAT_UNITS", "OTHER_GROUP", "StatTable", "format_stat", "group_stats", "check_stat_table"]

#: how a value is written: count 1,234 · bytes 45.1 MiB · pages 1,024 pages · s 84.20 s ·
#: ms (a value in seconds) 275.2 ms · percent (a fraction) 95.8 % · per_s 34,195 per s · plain as is
STAT_UNITS = ("count", "bytes", "pages", "s", "ms", "percent", "per_s", "plain")
OTHER_GROUP = "Other"  # keys a table does not know yet: shown under their own name, never dropped

#: group -> key -> (label, unit of `STAT_UNITS`); groups and rows keep this order
StatTable = Mapping[str, Mapping[str, tuple[str, str]]]


def _plain(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items()) or "none"
    if isinstance(value, Integral):  # numpy integers too
        return f"{int(value):,}"
    if isinstance(value, Real):
        return f"{float(value):.6g}"
    return str(value)


def format_stat(value: Any, unit: str) -> str:
    """``value`` written in ``unit`` (one of `STAT_UNITS`); "n/a" for a missing number (NaN, None)."""
    if unit not in STAT_UNITS:
        raise ValueError(f"unit={unit!r} is not allowed: choose one of {', '.join(map(repr, STAT_UNITS))}")
    if unit == "plain":
        return _plain(value)
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, Real):
        return _plain(value)
    x = float(value)
    if not math.isfinite(x):
        return "n/a"  # e.g. a percentile of no requests
    if unit == "count":
        return f"{round(x):,}"
    if unit == "bytes":
        return format_bytes(x)
    if unit == "pages":
        return f"{round(x):,} pages"
    if unit == "s":
        return f"{x:,.2f} s"
    if unit == "ms":
        ms = x * 1e3
        return f"{ms:,.1f} ms" if abs(ms) >= 1 else f"{ms:.3g} ms"
    if unit == "percent":
        return f"{x * 100:.1f} %"
    return f"{x:,.1f} per s" if abs(x) < 100 else f"{x:,.0f} per s"  # per_s


def check_stat_table(table: StatTable) -> None:
    """Raise ValueError for a row whose unit is not one of `STAT_UNITS`, an empty label, or a key
    listed twice (each key has one label)."""
    seen: dict[str, str] = {}
    for group, rows in table.items():
        for key, (label, unit) in rows.items():
            if unit not in STAT_UNITS:
                raise ValueError(f"{group}/{key}: unit {unit!r} is not one of {', '.join(STAT_UNITS)}")
            if not label.strip():
                raise ValueError(f"{group}/{key}: empty label")
            if key in seen:
                raise ValueError(f"{key!r} is labelled twice: in {seen[key]!r} and {group!r}")
            seen[key] = group


def group_stats(values: Mapping[str, Any], table: StatTable) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """``values`` as (group, [(key, label, text)]) in the table's order; keys the table lacks come
    last, under `OTHER_GROUP`, labelled by their own name; table rows without a value are left out."""
    out: list[tuple[str, list[tuple[str, str, str]]]] = []
    known: set[str] = set()
    for group, rows in table.items():
        known.update(rows)
        got = [(k, label, format_stat(values[k], unit)) for k, (label, unit) in rows.items() if k in values]
        if got:
            out.append((group, got))
    other = [(k, k, format_stat(v, "plain")) for k, v in values.items() if k not in known]
    if other:
        out.append((OTHER_GROUP, other))
    return out
