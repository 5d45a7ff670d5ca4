"""Prefix caching from block hashes (vLLM's automatic prefix caching, at the trace's block size).

`Request.block_hashes` name a prompt's leading blocks of ``hash_block_tokens`` tokens as a hash
chain. Once a running sequence has computed a block, its KV is registered under the block's id; a
later request reuses the KV of the longest run of leading ids found here and prefills only the rest.

```
paged        entry -> the KV blocks inside its prefix block, shared by reference: each entry counts
             its readers; when the last one ends the blocks become *cached* (evictable) in the pool
contiguous   entry -> the buffer (one block) of the sequence that computed it; a hit copies the reused
             prefix into the new sequence's own buffer (bytes counted); a finished buffer that holds
             entries stays cached, and evicting it drops every entry it holds
```

Eviction order: unreferenced units (paged: an entry, contiguous: a buffer) queue in the order they
became unreferenced, the deepest block of a chain first (vLLM's free queue). "lru" and "ttl" evict
from the head ("ttl" also drops units unreferenced for ``cache_ttl_s``); "lfu" evicts the unit used by
the fewest requests while cached (ties: the older). Pre-warming pins the units whose blocks were
requested most often so far (up to a share of the pool): no strategy evicts a pinned unit.
Paged entries share whole KV blocks: an entry holds the KV blocks whose last token lies in its
prefix block (a hash chain names everything before it), possibly none when prefix blocks are
smaller than KV blocks; the KV block holding a prompt's last token is always computed anew.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..pool import Block
    from ._kv import KVLayout, SeqKV

    SetCached = Callable[[Block, bool], None]  # PagedPool.set_cached

__all__ = ["CACHE_OWNER", "PrefixEntry", "Holder", "PrefixState", "PrefixCache"]

CACHE_OWNER = -1  # owner key of KV blocks the prefix cache owns (never a session: not a leak)


class Holder:
    """Contiguous layout: one sequence's buffer, holding the entries it registered."""

    __slots__ = ("entries", "kv", "layout", "pinned", "qid", "refs", "released_s")

    def __init__(self, kv: SeqKV) -> None:
        self.kv = kv
        self.layout = kv.layout
        self.refs = 1
        self.entries: list[PrefixEntry] = []
        self.released_s = 0.0
        self.qid = 0          # > 0 while queued for eviction
        self.pinned = False

    @property
    def uses(self) -> int:
        return max((e.uses for e in self.entries), default=0)

    @property
    def num_pages(self) -> int:
        return sum(b.num_pages for b in self.kv.blocks)


class PrefixEntry:
    """One prefix block in the cache: its KV covers tokens up to ``tokens`` (the block's end, or the
    prompt's end for a partial last block) of any prompt whose chain reaches it."""

    __slots__ = ("blocks", "first_kv", "hash", "holder", "index", "layout", "pinned", "qid", "refs", "released_s",
                 "tokens", "uses")

    def __init__(self, hash_id: int, index: int, tokens: int, layout: KVLayout) -> None:
        self.hash = hash_id
        self.index = index
        self.tokens = tokens
        self.layout = layout
        self.blocks: list[Block] = []     # paged: KV blocks first_kv, first_kv + 1, ...
        self.first_kv = 0
        self.holder: Holder | None = None  # contiguous
        self.refs = 1
        self.uses = 1
        self.released_s = 0.0
        self.qid = 0
        self.pinned = False

    @property
    def num_pages(self) -> int:
        return sum(b.num_pages for b in self.blocks)


Unit = PrefixEntry | Holder


class PrefixState:
    """A sequence's part in the prefix cache (reset when it is preempted or deferred)."""

    __slots__ = (
        "copy_src",
        "entries",
        "hit_blocks",
        "hit_tokens",
        "holder",
        "next_block",
        "query_blocks",
        "shared",
    )

    def __init__(self) -> None:
        self.entries: list[PrefixEntry] = []  # paged: entries whose blocks this sequence references
        self.shared = 0                         # paged: leading KV blocks of the sequence that are shared
        self.holder: Holder | None = None       # contiguous: the sequence's own buffer once it registered
        self.copy_src: tuple[Holder, int] | None = None  # contiguous: (buffer, tokens) to copy at reserve
        self.next_block = 0                     # next prefix block to register
        self.query_blocks = self.hit_blocks = self.hit_tokens = 0


class PrefixCache:
    """Prefix blocks by hash id; see the module docstring."""

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        self.entries: dict[int, PrefixEntry] = {}
        self._queue: OrderedDict[int, Unit] = OrderedDict()  # qid -> unit, oldest first
        self._heap: list[tuple[int, int, int]] = []            # lfu: (uses, qid, qid)
        self._next_qid = 1
        self.freq: dict[int, int] = {}  # hash id -> requests that asked for it so far (pre-warming)
        self._pinned: dict[int, Unit] = {}  # id(unit) -> pinned unit

    def __len__(self) -> int:
        return len(self.entries)

    # ------------------------------------------------------------------ lookup
    def match(self, hashes: tuple[int, ...], layout: KVLayout) -> list[PrefixEntry]:
        """The entries of the longest run of leading ``hashes`` in the cache (of ``layout``)."""
        out = []
        entries = self.entries
        for h in hashes:
            e = entries.get(h)
            if e is None or e.layout is not layout:
                break
            out.append(e)
        return out

    def count(self, hashes: tuple[int, ...]) -> None:
        freq = self.freq
        for h in hashes:
            freq[h] = freq.get(h, 0) + 1

    # ------------------------------------------------------------------ references
    def acquire(self, unit: Unit, set_cached: SetCached) -> None:
        """One more reader; an unreferenced unit leaves the eviction queue and is no longer cached."""
        if unit.refs == 0:
            if unit.qid:
                self._queue.pop(unit.qid, None)
                unit.qid = 0
            for blk in _blocks(unit):
                set_cached(blk, False)
        unit.refs += 1

    def release(self, unit: Unit, now: float, set_cached: SetCached) -> None:
        """One reader fewer; the last one leaves the unit cached and (unless pinned) evictable."""
        unit.refs -= 1
        if unit.refs:
            return
        unit.released_s = now
        for blk in _blocks(unit):
            set_cached(blk, True)
        if not unit.pinned:
            self._enqueue(unit)

    def set_strategy(self, strategy: str) -> None:
        self.strategy = strategy
        self._heap = [(u.uses, q, q) for q, u in self._queue.items()] if strategy == "lfu" else []
        heapq.heapify(self._heap)

    def _enqueue(self, unit: Unit) -> None:
        qid = unit.qid = self._next_qid
        self._next_qid += 1
        self._queue[qid] = unit
        if self.strategy == "lfu":
            heapq.heappush(self._heap, (unit.uses, qid, qid))
            if len(self._heap) > 4 * len(self._queue) + 64:  # drop stale items
                self._heap = [(u.uses, q, q) for q, u in self._queue.items()]
                heapq.heapify(self._heap)

    # ------------------------------------------------------------------ eviction
    def victim(self) -> Unit | None:
        """The unit the strategy evicts next (None: nothing evictable)."""
        if not self._queue:
            return None
        if self.strategy != "lfu":
            return next(iter(self._queue.values()))
        heap = self._heap
        while heap:
            _, qid, _ = heap[0]
            unit = self._queue.get(qid)
            if unit is not None and unit.qid == qid:
                return unit
            heapq.heappop(heap)
        return next(iter(self._queue.values()))

    def drop(self, unit: Unit) -> list[Block]:
        """Remove an unreferenced unit and its entries; returns its KV blocks (the caller frees them)."""
        if unit.qid:
            self._queue.pop(unit.qid, None)
            unit.qid = 0
        unit.pinned = False
        self._pinned.pop(id(unit), None)
        if isinstance(unit, Holder):
            for e in unit.entries:
                self.entries.pop(e.hash, None)
            unit.entries = []
            return list(unit.kv.blocks)
        self.entries.pop(unit.hash, None)
        return list(unit.blocks)

    def expired(self, now: float, ttl_s: float) -> Iterator[Unit]:
        """Unreferenced units idle for ``ttl_s`` or more (the queue is in release order)."""
        for unit in list(self._queue.values()):
            if unit.released_s + ttl_s > now:
                return
            yield unit

    def units(self) -> list[Unit]:
        """Every unit (entries, or buffers holding entries), referenced or not."""
        seen: dict[int, Unit] = {}
        for e in self.entries.values():
            unit: Unit = e.holder if e.holder is not None else e
            seen[id(unit)] = unit
        return list(seen.values())

    # ------------------------------------------------------------------ pre-warming
    def pinned_pages(self) -> int:
        return sum(u.num_pages for u in self._pinned.values())

    def pin_hottest(self, budget_pages: int) -> None:
        """Pin the units whose blocks were requested most often so far, up to ``budget_pages`` pool pages."""
        freq = self.freq
        ranked = sorted(self.units(), key=lambda u: -_heat(u, freq))
        room = budget_pages
        keep: set[int] = set()
        for unit in ranked:
            if _heat(unit, freq) < 2:  # requested once: nothing hot about it
                break
            pages = unit.num_pages
            if pages <= room:
                keep.add(id(unit))
                room -= pages
        for unit in ranked:
            pin = id(unit) in keep
            if pin == unit.pinned:
                continue
            unit.pinned = pin
            if pin:
                self._pinned[id(unit)] = unit
                if unit.qid:
                    self._queue.pop(unit.qid, None)
                    unit.qid = 0
            else:
                del self._pinned[id(unit)]
                if unit.refs == 0:
                    self._enqueue(unit)


def _blocks(unit: Unit) -> list[Block]:
    return unit.kv.blocks if isinstance(unit, Holder) else unit.blocks


def _heat(unit: Unit, freq: dict[int, int]) -> int:
    if isinstance(unit, Holder):
        return max((freq.get(e.hash, 0) for e in unit.entries), default=0)
    return freq.get(unit.hash, 0)
