"""Continuous batching: which sequences run this step, with how many tokens, and who waits.

Each step: running sequences first (one decode token each, or a prefill chunk), in admission order;
then new sequences from the head of the queue while the token budget, the batch limit and memory
allow. When a running sequence cannot grow its KV, the reuse cache is evicted first, then the newest
running sequence is preempted (its KV freed; it is recomputed from the queue's head later).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

from ._kv import SeqKV
from ._requests import Request

if TYPE_CHECKING:
    from ._cache import Session
    from ._config import ServingConfig
    from ._prefix import PrefixState

__all__ = ["Seq", "Scheduler", "MemoryHost"]


class Seq:
    """A request being served. ``context`` tokens are known (prompt + generated); ``processed`` of
    them have KV. A step processes up to ``context - processed`` tokens; when it catches up, one
    new token is generated."""

    __slots__ = (
        "arrival_s",
        "context",
        "first_token_s",
        "generated",
        "kv",
        "last_token",
        "preempted",
        "prefix",
        "prewarm",
        "processed",
        "req",
        "session",
    )

    def __init__(self, req: Request, session: Session, arrival_s: float, *, prewarm: bool = False,
                 context: int | None = None) -> None:
        self.req = req
        self.session = session
        self.kv: SeqKV | None = None
        self.arrival_s = arrival_s
        self.context = req.prompt_tokens if context is None else context
        self.processed = 0
        self.generated = 0
        self.first_token_s: float | None = None
        self.last_token = 0
        self.prewarm = prewarm
        self.preempted = 0
        self.prefix: PrefixState | None = None  # set while a hashed request holds KV


class MemoryHost(Protocol):
    """What the scheduler needs from the simulator."""

    def reserve(self, seq: Seq, tokens: int) -> bool: ...

    def evict_one(self) -> bool: ...

    def allocation_failed(self) -> None:
        """An allocation failed with nothing left to evict: a real failure (counted once)."""

    def attach_kv(self, seq: Seq) -> None: ...

    def detach_kv(self, seq: Seq) -> None: ...

    def preempt(self, seq: Seq) -> None: ...

    def reject(self, seq: Seq) -> None: ...

    def room_bytes(self) -> int: ...


class Scheduler:
    """The queue and the running batch. `plan` returns this step's ``(seq, tokens)`` pairs."""

    def __init__(self, host: MemoryHost) -> None:
        self.host = host
        self.waiting: deque[Seq] = deque()
        self.running: list[Seq] = []

    def plan(self, cfg: ServingConfig) -> list[tuple[Seq, int]]:
        budget = cfg.max_batched_tokens
        batch: list[tuple[Seq, int]] = []
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            n = min(seq.context - seq.processed, budget)
            if not self._grow(seq, seq.processed + n):
                continue  # seq itself was preempted; running[i] is now the next one
            batch.append((seq, n))
            budget -= n
            i += 1
        limit = self.batch_limit(cfg)
        while self.waiting and budget > 0 and len(self.running) < limit:
            seq = self.waiting[0]
            if seq.context > cfg.max_context_length and not seq.prewarm:
                self.waiting.popleft()
                self.host.reject(seq)
                continue
            self.host.attach_kv(seq)  # a cache hit brings the session's KV
            n = min(seq.context - seq.processed, budget)
            if cfg.adaptive_batching and self.running and not self._fits(seq, n, cfg):
                self.host.detach_kv(seq)
                break
            # pre-warming reserves its whole context now and never evicts or grows later
            fits = self.host.reserve(seq, seq.context) if seq.prewarm \
                else self._reserve_or_evict(seq, seq.processed + n)
            if not fits:
                self.host.detach_kv(seq)
                if self.running and not seq.prewarm:
                    break
                self.waiting.popleft()  # it does not fit even in an idle pool
                self.host.reject(seq)
                continue
            self.waiting.popleft()
            self.running.append(seq)
            batch.append((seq, n))
            budget -= n
        return batch

    def batch_limit(self, cfg: ServingConfig) -> int:
        """max_batch_size; adaptive: no more than the work there is."""
        if not cfg.adaptive_batching:
            return cfg.max_batch_size
        return min(cfg.max_batch_size, len(self.running) + len(self.waiting))

    def _fits(self, seq: Seq, n: int, cfg: ServingConfig) -> bool:
        """Adaptive admission: the chunk plus one KV block of growth room per running sequence fits."""
        kv = seq.kv
        assert kv is not None
        layout = kv.layout
        need = layout.bytes_for(seq.processed + n) - (layout.bytes_for(kv.capacity) if kv.capacity else 0)
        headroom = (len(self.running) + 1) * layout.block_bytes
        return need + headroom <= self.host.room_bytes()

    def _reserve_or_evict(self, seq: Seq, tokens: int) -> bool:
        while not self.host.reserve(seq, tokens):
            if not self.host.evict_one():
                self.host.allocation_failed()  # a refusal that an eviction then cured is no failure
                return False
        return True

    def _grow(self, seq: Seq, tokens: int) -> bool:
        """Room for ``seq`` to hold ``tokens``, preempting the newest sequences if need be."""
        while not self._reserve_or_evict(seq, tokens):
            victim = self.running.pop()
            if victim is seq and not self.running:  # alone in the pool and still too big: it never fits
                self.host.reject(seq)
                return False
            self.waiting.appendleft(victim)
            self.host.preempt(victim)
            if victim is seq:
                return False
        return True
