"""One rule for resizing a pool, shared by "Apply (rebuild pool)" and (to come) the tuning code.

```
old pool                       new initial size S         max_size becomes
fixed    (max == initial)      S                          S          (a fixed pool stays fixed)
growable (max > initial)       S                          max(old max, S)
```

Later segments keep following the initial size when they did (``segment_size`` == initial size).
"""

from __future__ import annotations

from ..pool import PoolConfig, format_size, parse_size

__all__ = ["resized_config", "resize_note"]


def _max_size(old: PoolConfig, initial: int) -> int:
    fixed = old.max_size == old.memory_pool_initial_size
    return initial if fixed else max(old.max_size, initial)


def resized_config(old: PoolConfig, *, page_size: int | str | None = None,
                   memory_pool_initial_size: int | str | None = None) -> PoolConfig:
    """``old`` with a new page size and/or initial size, ``max_size`` and ``segment_size`` by the rule
    above (validated: a refused value raises ``ValueError`` naming the field)."""
    page = old.page_size if page_size is None else page_size
    size = old.memory_pool_initial_size if memory_pool_initial_size is None else memory_pool_initial_size
    initial = parse_size(size, name="memory_pool_initial_size")
    seg = None if old.segment_size == old.memory_pool_initial_size else old.segment_size
    return old.replace(page_size=page, memory_pool_initial_size=initial, max_size=_max_size(old, initial),
                       segment_size=seg)


def resize_note(old: PoolConfig, memory_pool_initial_size: int | str) -> str:
    """What a pool of the new size is, in words: "16MiB, max 16MiB (fixed)" or "16MiB, max 256MiB"."""
    try:
        initial = parse_size(memory_pool_initial_size, name="memory_pool_initial_size")
    except ValueError:
        return f"{memory_pool_initial_size}?"
    top = _max_size(old, initial)
    return f"{format_size(initial)}, max {format_size(top)}" + (" (fixed)" if top == initial else "")
