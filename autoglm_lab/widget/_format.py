"""How the widget writes sizes: the one byte formatter of the widget (exact sizes use `format_size`).

The front end receives sizes already written (e.g. the hover reply's ``size``), so there is no second
formatter in ``js/``.
"""

from __future__ import annotations

__all__ = ["format_bytes"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(n: float) -> str:
    """A size for reading, to one decimal: ``512 B``, ``1.5 KiB``, ``64.0 MiB`` (exact spellings such
    as ``64KiB``, for sizes the user picks, are `autoglm_lab.pool.format_size`'s)."""
    n = float(n)
    for unit in _UNITS[:-1]:
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} {_UNITS[-1]}"
