"""Argument checks shared by every layer: a wrong type is a `TypeError`, a value out of range a
`ValueError`, and both name the argument, the value and what is allowed."""

from __future__ import annotations

import math

__all__ = ["check_fraction", "check_int", "check_number", "is_int", "is_number"]


def is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An int or float that is not a bool (NaN and infinities included)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def check_int(name: str, value: object, low: int, high: int, where: str = "") -> None:
    """``value`` is an int from ``low`` to ``high``; ``where`` prefixes the message (a file and line)."""
    allowed = f"use an integer from {low:,} to {high:,}"
    if not is_int(value):
        raise TypeError(f"{where}{name}={value!r} is not allowed: {allowed}")
    if not low <= value <= high:  # type: ignore[operator]
        raise ValueError(f"{where}{name}={value!r} is not allowed: {allowed}")


def check_number(name: str, value: object, low: float, high: float, where: str = "", *,
                 strict: bool = False) -> None:
    """``value`` is a finite number from ``low`` (above it when ``strict``) to ``high``."""
    bound = f"> {_num(low)}" if strict else f">= {_num(low)}"
    allowed = f"use a finite number {bound} and <= {_num(high)}"
    if not is_number(value):
        raise TypeError(f"{where}{name}={value!r} is not allowed: {allowed}")
    v = float(value)  # type: ignore[arg-type]
    if not (math.isfinite(v) and (v > low if strict else v >= low) and v <= high):
        raise ValueError(f"{where}{name}={value!r} is not allowed: {allowed}")


def check_fraction(name: str, value: object) -> None:
    """``value`` is a number from 0.0 to 1.0."""
    if not is_number(value):
        raise TypeError(f"{name}={value!r} is not allowed: use a number from 0.0 to 1.0")
    if not 0.0 <= value <= 1.0:  # type: ignore[operator]
        raise ValueError(f"{name}={value!r} is not allowed: use a number from 0.0 to 1.0")
