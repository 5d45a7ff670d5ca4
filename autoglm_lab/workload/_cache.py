"""Sessions and the per-session KV reuse cache (requests without block hashes; strategies "none",
"lru", "ttl", "lfu": see `ServingConfig`). Its entries' blocks are cached (evictable) in the pool.

A session is one conversation. While none of its turns is queued or running it is *idle*; an idle
session is closed after ``session_timeout_s``. A session that comes back after being closed starts a
new incarnation with a new ``key`` (KV blocks are owned by keys, so the leak detector can tell a
closed incarnation's blocks from a live one's).

The cache keeps at most one finished turn's KV per session, in least-recently-used order:
```
 oldest -> [s12: 700 tok] [s3: 1500 tok] [s40: 90 tok] <- newest      evict from the left
```
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from ._kv import SeqKV

__all__ = ["Session", "ReuseCache"]


class Session:
    __slots__ = ("active", "closed_s", "held", "key", "last_active_s", "sid", "turns")

    def __init__(self, sid: int, key: int, now: float) -> None:
        self.sid = sid
        self.key = key
        self.active = 0          # turns queued or running
        self.turns = 0           # turns finished
        self.last_active_s = now
        self.held: list[SeqKV] = []  # KV kept outside the cache (only by the leak bug)
        self.closed_s: float | None = None


class CacheEntry:
    __slots__ = ("kv", "prewarmed", "session", "stored_s", "tokens")

    def __init__(self, session: Session, kv: SeqKV, tokens: int, stored_s: float, prewarmed: bool = False) -> None:
        self.prewarmed = prewarmed
        self.session = session
        self.kv = kv
        self.tokens = tokens
        self.stored_s = stored_s


class ReuseCache:
    """Finished turns' KV by session key, least recently stored first."""

    def __init__(self) -> None:
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: int) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[CacheEntry]:
        return iter(list(self._entries.values()))

    def put(self, session: Session, kv: SeqKV, tokens: int, now: float, prewarmed: bool = False) -> SeqKV | None:
        """Store ``kv``; returns a KV this replaces (the caller frees it)."""
        old = self.pop(session.key)
        self._entries[session.key] = CacheEntry(session, kv, tokens, now, prewarmed)
        self.bytes += kv.nbytes
        return old.kv if old else None

    def pop(self, key: int) -> CacheEntry | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.kv.nbytes
        return entry

    def oldest(self) -> CacheEntry | None:
        return next(iter(self._entries.values()), None)

    def expired(self, now: float, ttl_s: float) -> Iterator[CacheEntry]:
        """Pop and yield entries stored more than ``ttl_s`` ago (they are in storage order)."""
        while self._entries:
            entry = next(iter(self._entries.values()))
            if entry.stored_s + ttl_s > now:
                return
            self.pop(entry.session.key)
            yield entry
