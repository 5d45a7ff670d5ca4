"""How the widget writes sizes: the pool's `format_bytes` (exact sizes use `format_size`).

The front end receives sizes already written (e.g. the hover reply's ``size``), so there is no second
formatter in ``js/``.
"""

from __future__ import annotations

__all__ = ["format_bytes"]

from ..pool import format_bytes
