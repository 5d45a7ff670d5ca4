"""`ServingSim`: an LLM server whose KV cache lives in a `PagedPool`, stepped on a simulated clock.

One `step()` is one continuous-batching iteration, done under ``pool.lock`` (a dashboard thread may
snapshot or compact the pool between steps):

  arrivals -> close idle sessions / expire TTL entries -> plan the batch (grow KV, admit, preempt)
  -> compute (TinyGLM, or the cost model) -> finish turns (cache or free KV) -> pool.tick -> record

KV reuse (``cache_reuse_strategy`` other than "none"), the vLLM way: KV that no running request
references stays in the pool as *cached* blocks (`PagedPool.set_cached`: evictable, not counted as
used). The simulator is the pool's evictor: an allocation that finds no free run evicts cached KV
(per the strategy) before it can fail. Requests with `Request.block_hashes` (the Mooncake trace)
reuse prefix blocks across requests (`workload._prefix`); requests without them reuse their
session's previous turn (`workload._cache`).
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..pool import Block, PagedPool, PoolExhausted, PoolStats
from ._cache import CacheEntry, ReuseCache, Session
from ._config import MODEL_FIELDS, ServingConfig
from ._kv import KVHandle, KVLayout, PagedKV, SeqKV, make_layout
from ._model import TinyGLM
from ._prefix import CACHE_OWNER, Holder, PrefixCache, PrefixEntry, PrefixState
from ._records import FIELDS, RECENT_KEYS, RunMetrics, StepColumns, StepRecord, reason_code
from ._requests import Request, check_requests
from ._scheduler import Scheduler, Seq
from ._summary import over_time, summarise

__all__ = ["ServingSim"]

log = logging.getLogger(__name__)
_LAYOUT_FIELDS = {"kv_layout", "block_tokens", *MODEL_FIELDS}


class ServingSim:
    """Serve ``requests`` with ``config`` on ``pool``. See the module docstring for one step."""

    def __init__(self, pool: PagedPool, config: ServingConfig | None = None, *,
                 requests: Iterable[Request] = (), tag: str = "kv") -> None:
        if not isinstance(pool, PagedPool):
            raise TypeError(f"pool must be a PagedPool, not {type(pool).__name__}")
        cfg = config if config is not None else ServingConfig()
        if not isinstance(cfg, ServingConfig):
            raise TypeError(f"config must be a ServingConfig, not {type(cfg).__name__}")
        if not isinstance(tag, str) or not tag:  # checked here, not at the first allocation
            raise TypeError(f"tag={tag!r} is not allowed: use a non-empty string")
        self.pool = pool
        self._config = cfg
        self.tag = tag
        reqs = sorted(check_requests(requests), key=lambda r: (math.isnan(r.arrival_s), r.arrival_s, r.id))
        self.requests = reqs
        self._firsts = [r for r in reqs if r.follows is None]
        self._next_turn = {r.follows: r for r in reqs if r.follows is not None}
        self._layouts: list[KVLayout] = []
        self._model: TinyGLM | None = None
        self._recent = StepColumns(cfg.recent_capacity, ring=True)
        self._start_state()
        set_evictor = getattr(pool, "set_evictor", None)
        if set_evictor is not None:
            set_evictor(self._evict_for_pool)

    # ------------------------------------------------------------------ state
    def _start_state(self) -> None:
        cfg = self._config
        self._last_failure_fragmented = False
        self.clock = 0.0
        self.trace_clock = 0.0
        self.steps = 0
        self._arrival_i = 0
        self._followups: list[tuple[float, int, Request]] = []
        self.sched = Scheduler(self)
        self.cache = ReuseCache()
        self.prefix = PrefixCache(cfg.cache_reuse_strategy)
        self.sessions: dict[int, Session] = {}
        self._idle: OrderedDict[int, Session] = OrderedDict()
        self.closed_sessions: dict[int, tuple[int, float]] = {}  # key -> (session id, closed at)
        self._cold: OrderedDict[int, tuple[Session, int]] = OrderedDict()  # evicted hot sessions, for prewarm
        self._next_key = 0
        self._rng = np.random.default_rng(cfg.seed)
        self._layout = self._new_layout()
        self.totals: dict[str, float] = dict.fromkeys((
            "failures", "fragmentation_failures", "preemptions", "evictions", "expired", "cache_hits",
            "cache_lookups", "reused_tokens", "evicted_entries",
            "prefix_query_blocks", "prefix_hit_blocks", "prefix_query_tokens", "prefix_hit_tokens",
            "prefix_copy_bytes", "pool_growths", "growth_s",
            "prefill_tokens", "decode_tokens", "recompute_tokens", "prewarm_tokens", "prewarm_hits", "generated_tokens",
            "finished", "rejected", "truncated"), 0)
        self.metrics = RunMetrics(
            history=StepColumns(cfg.history_limit, ring=False),
            pool_base=(self.pool.compactions, self.pool.compaction_bytes_moved, self.pool.compaction_pause_s))
        self._until: float | None = None
        self._recent = StepColumns(cfg.recent_capacity, ring=True)
        self._step_counters()

    def _step_counters(self) -> None:
        """Zero what one step counts (also outside steps: configure and reset may evict)."""
        self._s_failures = self._s_preemptions = self._s_hits = self._s_finished = 0
        self._s_prefix_queries = self._s_prefix_hits = 0
        self._s_alloc_s, self._s_copied, self._s_growth_s = 0.0, 0, 0.0
        self._s_ttft: list[float] = []
        self._s_tpot: list[float] = []

    def _new_layout(self) -> KVLayout:
        cfg = self._config
        layout = make_layout(cfg.kv_layout, self.pool, cfg.model_config(), cfg.block_tokens, self.tag)
        self._layouts = [lay for lay in self._layouts if lay.owners] + [layout]
        return layout

    @property
    def config(self) -> ServingConfig:
        return self._config

    @property
    def layout(self) -> KVLayout:
        """The layout new sequences get (sequences keep the layout they started with)."""
        return self._layout

    @property
    def model(self) -> TinyGLM:
        if self._model is None:
            self._model = TinyGLM(self._config.model_config(), device=self.pool.device)
        return self._model

    @property
    def done(self) -> bool:
        """No request left to arrive, wait or run."""
        return (self._arrival_i >= len(self._firsts) and not self._followups and not self.sched.waiting
                and not self.sched.running)

    # ------------------------------------------------------------------ configuration
    def configure(self, **changes: Any) -> ServingConfig:
        """Change settings while running (validated; unknown names or bad values raise ValueError).

        A new kv_layout or block_tokens applies to sequences admitted from now on. New model sizes
        rebuild the model and recompute everything: running sequences are preempted, the cache dropped.
        """
        with self.pool.lock:
            new = self._config.replace(**changes)
            old, self._config = self._config, new
            model_changed = any(getattr(old, f) != getattr(new, f) for f in MODEL_FIELDS)
            if model_changed:
                self._model = None
                for seq in list(self.sched.running):
                    self.sched.running.remove(seq)
                    self.sched.waiting.appendleft(seq)
                    self.preempt(seq)
                while self.evict_one():
                    pass
                self._drop_pinned()
            if new.cache_reuse_strategy != old.cache_reuse_strategy:
                self.prefix.set_strategy(new.cache_reuse_strategy)
            if any(getattr(old, f) != getattr(new, f) for f in _LAYOUT_FIELDS):
                self._layout = self._new_layout()
            if new.recent_capacity != old.recent_capacity:
                keep = self._recent.arrays()
                self._recent = StepColumns(new.recent_capacity, ring=True)
                self._refill(self._recent, keep)
            if new.history_limit != old.history_limit:
                keep = self.metrics.history.arrays()
                self.metrics.history = StepColumns(new.history_limit, ring=False)
                self._refill(self.metrics.history, keep)
            return new

    @staticmethod
    def _refill(cols: StepColumns, data: dict[str, np.ndarray]) -> None:
        n = len(data["step"])
        for i in range(max(0, n - cols.capacity), n):
            cols.append(StepRecord(**{f: data[f][i].item() for f in FIELDS}))

    def reset(self) -> None:
        """Start over on the same pool: free every block this simulator allocated (leaked ones too)."""
        with self.pool.lock:
            for layout in self._layouts:
                for blk, _owner in list(layout.owners.values()):
                    if not blk.freed:
                        self.pool.free(blk)
                layout.owners.clear()
            self._layouts = []
            self._start_state()

    # ------------------------------------------------------------------ memory host (used by the scheduler)
    def _set_cached(self, blk: Block, cached: bool = True) -> None:
        set_cached = getattr(self.pool, "set_cached", None)
        if set_cached is not None:
            set_cached(blk, cached)

    def _cache_kv(self, kv: SeqKV, cached: bool) -> None:
        for blk in kv.blocks:
            self._set_cached(blk, cached)

    def reserve(self, seq: Seq, tokens: int) -> bool:
        kv = seq.kv
        assert kv is not None
        if tokens <= kv.capacity:
            return True
        layout = kv.layout
        copied, pages = layout.copied_bytes, self.pool.capacity_pages
        t0 = time.perf_counter()
        try:
            layout.reserve(kv, tokens, seq.processed)
        except PoolExhausted as exc:
            self._s_failures += 1  # one failed allocation of the pool (nothing free or evictable)
            self._last_failure_fragmented = exc.free_pages >= exc.pages_requested
            return False
        finally:
            dt = time.perf_counter() - t0
            self._s_alloc_s += dt
            self._s_copied += layout.copied_bytes - copied
            if self.pool.capacity_pages != pages:  # the pool grew: a real segment allocation in dt
                self.totals["pool_growths"] += 1
                price = self._config.cost_growth_s
                self._s_growth_s += dt if price is None else price
        st = seq.prefix
        if st is not None and st.copy_src is not None:  # contiguous prefix hit: copy the reused KV in
            holder, n = st.copy_src
            st.copy_src = None
            nbytes = n * layout.bytes_per_token
            t0 = time.perf_counter()
            self.pool.copy_bytes(kv.blocks[0], holder.kv.blocks[0], nbytes)
            self._s_alloc_s += time.perf_counter() - t0
            self._s_copied += nbytes
            self.totals["prefix_copy_bytes"] += nbytes
            self.prefix.release(holder, self.clock, self._set_cached)
        return True

    def _release(self, kv: SeqKV) -> None:
        self._s_alloc_s += kv.layout.release(kv)

    def allocation_failed(self) -> None:
        if self._last_failure_fragmented:  # enough free memory, but no run long enough
            self.totals["fragmentation_failures"] += 1

    def _evict_for_pool(self, pages: int) -> int:
        """The pool's evictor: free one victim of the reuse strategy; blocks freed (0: none evictable)."""
        return self._evict()

    def evict_one(self) -> bool:
        return self._evict() > 0

    def _evict(self) -> int:
        unit = self.prefix.victim()
        while unit is not None:
            blocks = self.prefix.drop(unit)
            self._s_alloc_s += unit.layout.free_blocks(blocks)
            self.totals["evicted_entries"] += 1
            if blocks:
                return len(blocks)
            unit = self.prefix.victim()  # an entry holding no whole KV block frees nothing: go on
        entry = self._session_victim()
        if entry is None:
            return 0
        self.cache.pop(entry.session.key)
        freed = len(entry.kv.blocks)
        self._release(entry.kv)
        self.totals["evicted_entries"] += 1
        if entry.session.turns >= 2 and not entry.prewarmed:  # hot: warm it again once memory frees up
            self._cold[entry.session.key] = (entry.session, entry.tokens)
            self._cold.move_to_end(entry.session.key)
            while len(self._cold) > 1024:
                self._cold.popitem(last=False)
        return max(1, freed)

    def _session_victim(self) -> CacheEntry | None:
        if self._config.cache_reuse_strategy != "lfu":
            return self.cache.oldest()
        best = None
        for entry in self.cache:  # oldest first: min() keeps the first of equals
            if best is None or entry.session.turns < best.session.turns:
                best = entry
        return best

    def attach_kv(self, seq: Seq) -> None:
        if seq.kv is not None:
            return
        cfg = self._config
        if seq.req.block_hashes and not seq.prewarm and cfg.cache_reuse_strategy != "none":
            self._attach_prefix(seq)
            return
        if seq.req.prefix_tokens and not seq.prewarm and not seq.preempted and cfg.cache_reuse_strategy != "none":
            self.totals["cache_lookups"] += 1
            entry = self.cache.pop(seq.session.key)
            if entry is not None:
                seq.kv = entry.kv
                self._cache_kv(entry.kv, False)
                if entry.prewarmed:
                    self.totals["prewarm_hits"] += 1
                seq.processed = min(entry.tokens, seq.req.prefix_tokens, seq.context - 1)
                self._s_hits += 1
                self.totals["reused_tokens"] += seq.processed
                return
        seq.kv = self._layout.new(seq.session.key, self._kv_tag(seq))
        seq.processed = 0

    def _kv_tag(self, seq: Seq) -> str:
        """The pool tag of a sequence's KV blocks: the page map colours by it and names it on hover (the
        pool reuses a tag's id once its last block is freed, so the table holds the live ones only)."""
        return f"{self.tag} · session {seq.session.sid} · request {seq.req.id}"

    def _attach_prefix(self, seq: Seq) -> None:
        """Reuse the longest cached run of the request's leading prefix blocks (see `workload._prefix`)."""
        layout, cache, req = self._layout, self.prefix, seq.req
        kv = seq.kv = layout.new(seq.session.key, self._kv_tag(seq))
        st = seq.prefix = PrefixState()
        hashes, size, prompt = req.block_hashes, req.hash_block_tokens, req.prompt_tokens
        if not seq.preempted:
            cache.count(hashes)
        matched = cache.match(hashes, layout)
        reuse = 0
        if matched:
            if isinstance(layout, PagedKV):
                bt = layout.block_tokens
                blocks: list[Block] = []
                upto = 0
                for i, e in enumerate(matched):  # whole KV blocks, in order
                    if e.blocks:
                        if e.first_kv != len(blocks):
                            break
                        blocks.extend(e.blocks)
                    upto = i + 1
                share = min(len(blocks), (prompt - 1) // bt)  # the last prompt token is always computed
                covered = 0
                for e in matched[:upto]:
                    if covered >= share:
                        break
                    cache.acquire(e, self._set_cached)
                    st.entries.append(e)
                    covered += len(e.blocks)
                kv.blocks = blocks[:share]
                kv.capacity = share * bt
                st.shared = share
                reuse = share * bt
            else:
                last = matched[-1]
                reuse = min(len(matched) * size, last.tokens, prompt - 1)
                if reuse > 0 and last.holder is not None:
                    cache.acquire(last.holder, self._set_cached)
                    st.copy_src = (last.holder, reuse)
                else:
                    reuse = 0
            for e in matched:
                e.uses += 1
        seq.processed = reuse
        st.next_block = len(matched)
        st.query_blocks, st.hit_blocks, st.hit_tokens = len(hashes), len(matched), reuse
        self._count_prefix(st, prompt, 1)

    def _count_prefix(self, st: PrefixState, prompt: int, sign: int) -> None:
        tot = self.totals
        tot["prefix_query_blocks"] += sign * st.query_blocks
        tot["prefix_hit_blocks"] += sign * st.hit_blocks
        tot["prefix_query_tokens"] += sign * prompt
        tot["prefix_hit_tokens"] += sign * st.hit_tokens
        self._s_prefix_queries += sign * st.query_blocks
        self._s_prefix_hits += sign * st.hit_blocks
        tot["cache_lookups"] += sign * st.query_blocks  # cache_* count sessions and prefix blocks together
        self._s_hits += sign * st.hit_blocks

    def _register(self, seq: Seq) -> None:
        """Register the prefix blocks ``seq`` has finished computing (first come: an id already cached stays)."""
        st, req, kv = seq.prefix, seq.req, seq.kv
        assert st is not None and kv is not None
        hashes, size, prompt = req.block_hashes, req.hash_block_tokens, req.prompt_tokens
        cache, layout = self.prefix, kv.layout
        paged = isinstance(layout, PagedKV)
        while st.next_block < len(hashes):
            h = st.next_block
            end = min((h + 1) * size, prompt)
            if seq.processed < end:
                return
            st.next_block += 1
            hid = hashes[h]
            if hid in cache.entries:
                continue
            if paged:  # the whole KV blocks whose last token lies in this prefix block (maybe none)
                bt = layout.block_tokens
                first, last = max(h * size // bt, st.shared), max(end // bt, st.shared)
                e = PrefixEntry(hid, h, end, layout)
                e.first_kv = first
                e.blocks = kv.blocks[first:last]
                for blk in e.blocks:  # the cache owns them now (not a leak when the session closes)
                    layout.owners[blk.id] = (blk, CACHE_OWNER)
                st.entries.append(e)
            else:
                if st.holder is None:
                    st.holder = Holder(kv)
                e = PrefixEntry(hid, h, end, layout)
                e.holder = st.holder
                st.holder.entries.append(e)
            cache.entries[hid] = e

    def _release_prefix(self, seq: Seq) -> None:
        """Drop ``seq``'s KV: shared and registered blocks stay with the cache, the rest is freed."""
        st, kv = seq.prefix, seq.kv
        assert st is not None and kv is not None
        cache, now = self.prefix, self.clock
        if st.copy_src is not None:
            cache.release(st.copy_src[0], now, self._set_cached)
            st.copy_src = None
        if st.holder is not None:  # contiguous: the buffer holds entries, the cache keeps it
            for blk in kv.blocks:
                kv.layout.owners[blk.id] = (blk, CACHE_OWNER)
            cache.release(st.holder, now, self._set_cached)
        else:
            keep = {blk.id for e in st.entries for blk in e.blocks}
            self._s_alloc_s += kv.layout.release(kv, keep)
            for e in st.entries:
                cache.release(e, now, self._set_cached)
        seq.prefix = None
        seq.kv = None

    def detach_kv(self, seq: Seq) -> None:
        """Undo `attach_kv` for a sequence that goes on waiting (a cached KV goes back to the cache)."""
        kv = seq.kv
        if kv is None:
            return
        if seq.prefix is not None:
            self._count_prefix(seq.prefix, seq.req.prompt_tokens, -1)
            self._release_prefix(seq)
        elif seq.processed and self._config.cache_reuse_strategy != "none" and seq.preempted == 0:
            self.cache.put(seq.session, kv, seq.processed, self.clock)
            self._cache_kv(kv, True)
            self._s_hits -= 1
            self.totals["cache_lookups"] -= 1
            self.totals["reused_tokens"] -= seq.processed
        else:
            self._release(kv)
        seq.kv = None
        seq.processed = 0

    def _drop_kv(self, seq: Seq) -> None:
        if seq.prefix is not None:
            self._release_prefix(seq)
        elif seq.kv is not None:
            self._release(seq.kv)
        seq.kv = None

    def preempt(self, seq: Seq) -> None:
        self._drop_kv(seq)
        seq.processed = 0
        seq.preempted += 1
        self._s_preemptions += 1

    def reject(self, seq: Seq) -> None:
        if not seq.prewarm:
            self.totals["rejected"] += 1
        self._drop_kv(seq)
        self._end_turn(seq)

    def room_bytes(self) -> int:
        """Free plus evictable (cached) pool bytes: what admissions may count on."""
        st = self.pool.stats()
        return st.free_bytes + getattr(st, "cached_bytes", self.cache.bytes)

    def _drop_pinned(self) -> None:
        """Free every unreferenced prefix unit, pinned ones too (a new model invalidates all KV)."""
        for unit in self.prefix.units():
            if unit.refs == 0:
                self._s_alloc_s += unit.layout.free_blocks(self.prefix.drop(unit))

    # ------------------------------------------------------------------ sessions and arrivals
    def _open(self, req: Request) -> Session:
        ses = self.sessions.get(req.session_id)
        if ses is None or ses.closed_s is not None:
            ses = self.sessions[req.session_id] = Session(req.session_id, self._next_key, self.clock)
            self._next_key += 1
        ses.active += 1
        self._idle.pop(ses.key, None)
        return ses

    def _arrive(self, req: Request, arrival_s: float) -> None:
        self.sched.waiting.append(Seq(req, self._open(req), arrival_s))

    def _arrivals(self) -> None:
        firsts, scale = self._firsts, self._config.request_rate_scale
        while self._arrival_i < len(firsts) and firsts[self._arrival_i].arrival_s <= self.trace_clock:
            req = firsts[self._arrival_i]
            self._arrival_i += 1
            self._arrive(req, self.clock - (self.trace_clock - req.arrival_s) / scale)
        while self._followups and self._followups[0][0] <= self.clock:
            at, _, req = heapq.heappop(self._followups)
            self._arrive(req, at)

    def _idle_skip(self) -> None:
        """Nothing to run: jump the clock to the next arrival."""
        nxt = arrival_at = math.inf
        if self._arrival_i < len(self._firsts):
            arrival = self._firsts[self._arrival_i].arrival_s
            nxt = arrival_at = self.clock + (arrival - self.trace_clock) / self._config.request_rate_scale
        if self._followups:
            nxt = min(nxt, self._followups[0][0])
        if not math.isfinite(nxt) and self._until is not None:  # nothing left: let idle sessions time out
            nxt = self._until
        before = (self.clock, self.trace_clock)
        if math.isfinite(nxt) and nxt > self.clock:
            self._advance(nxt - self.clock)
        if nxt == arrival_at and math.isfinite(nxt) and (self.clock, self.trace_clock) == before:
            # the gap to the arrival is below the clocks' float resolution: land on it, or run() never ends
            self.trace_clock = arrival

    def _advance(self, dt: float) -> None:
        self.clock += dt
        self.trace_clock += dt * self._config.request_rate_scale

    def _close(self, ses: Session) -> None:
        ses.closed_s = self.clock
        self.closed_sessions[ses.key] = (ses.sid, self.clock)
        self._cold.pop(ses.key, None)
        entry = self.cache.pop(ses.key)
        kvs = ses.held + ([entry.kv] if entry else [])
        ses.held = []
        if not self._config.leak_sessions:  # the bug: a closed session forgets its KV
            for kv in kvs:
                self._release(kv)
        elif entry is not None:
            self._cache_kv(entry.kv, False)  # leaked: referenced by nobody, yet never evictable

    def _expire(self) -> None:
        cfg = self._config
        if cfg.session_timeout_s is not None:
            while self._idle:
                ses = next(iter(self._idle.values()))
                if ses.last_active_s + cfg.session_timeout_s > self.clock:
                    break
                del self._idle[ses.key]
                self._close(ses)
        if cfg.cache_reuse_strategy == "ttl":
            for entry in self.cache.expired(self.clock, cfg.cache_ttl_s):
                self._release(entry.kv)
                self.totals["expired"] += 1
            for unit in self.prefix.expired(self.clock, cfg.cache_ttl_s):
                self._s_alloc_s += unit.layout.free_blocks(self.prefix.drop(unit))
                self.totals["expired"] += 1

    def _prewarm(self) -> None:
        """Prefix blocks: every 256 steps, pin the cached units whose blocks were requested most often so
        far, up to ``prewarm_fraction`` of the pool's pages (no strategy evicts them).
        Sessions: recompute the KV of the most recently evicted hot session when nothing waits and half of
        the pool is free (pre-warming uses idle capacity only: it never evicts, and warms a session once)."""
        cfg = self._config
        if cfg.prewarm and cfg.cache_reuse_strategy != "none" and self.prefix.entries and self.steps % 256 == 0:
            self.prefix.pin_hottest(int(cfg.prewarm_fraction * self.pool.capacity_pages))
        if not (cfg.prewarm and cfg.cache_reuse_strategy != "none" and self._cold) or self.sched.waiting \
                or self.pool.stats().free_ratio < 0.5:
            return
        key, (ses, tokens) = self._cold.popitem()
        if ses.closed_s is not None or ses.active or key in self.cache:
            return
        ses.active += 1
        self._idle.pop(key, None)
        # only prompt_tokens matters: the Seq carries the arrival, and a prewarm turn ends once its
        # prompt has KV (see _end_turn)
        req = Request(id=0, arrival_s=0.0, prompt_tokens=tokens, output_tokens=1, session_id=ses.sid)
        self.sched.waiting.append(Seq(req, ses, self.clock, prewarm=True))

    # ------------------------------------------------------------------ finishing
    def _end_turn(self, seq: Seq) -> None:
        ses = seq.session
        ses.active -= 1
        ses.last_active_s = self.clock
        if ses.active == 0 and ses.closed_s is None:
            self._idle[ses.key] = ses
        if seq.prewarm:
            return
        ses.turns += 1
        nxt = self._next_turn.get(seq.req.id)
        if nxt is not None:
            heapq.heappush(self._followups, (self.clock + nxt.think_time_s, nxt.id, nxt))

    def _finish(self, seq: Seq) -> None:
        cfg = self._config
        kv = seq.kv
        assert kv is not None
        if seq.prefix is not None:
            self._release_prefix(seq)
        elif seq.prewarm or cfg.cache_reuse_strategy != "none":
            old = self.cache.put(seq.session, kv, seq.processed, self.clock, prewarmed=seq.prewarm)
            self._cache_kv(kv, True)
            if old is not None:
                self._release(old)
        elif cfg.leak_sessions:
            seq.session.held.append(kv)  # the bug keeps it on the session instead of freeing it
        else:
            self._release(kv)
        seq.kv = None
        if not seq.prewarm:
            self._s_finished += 1
            self.totals["finished"] += 1
            self.totals["generated_tokens"] += seq.generated
            if seq.first_token_s is not None and seq.generated > 1:
                tpot = (self.clock - seq.first_token_s) / (seq.generated - 1)
                self.metrics.tpot_s.append(tpot)
                self.metrics.tpot_at_s.append(self.clock)
                self._s_tpot.append(tpot)
        self._end_turn(seq)

    # ------------------------------------------------------------------ one step
    def step(self) -> StepRecord:
        """One scheduler iteration; returns its record (also kept for `results` and `recent_steps`)."""
        t_wall = time.perf_counter()
        pool, cfg = self.pool, self._config
        with pool.lock:
            base = (pool.compactions, pool.compaction_pause_s, pool.compaction_bytes_moved)
            self._step_counters()
            evicted = self._evicted()
            self._arrivals()
            if not self.sched.waiting and not self.sched.running:
                self._idle_skip()
                self._arrivals()
            self._expire()
            if pool.config.compaction != "off":
                pool.tick(self.clock)
            self._prewarm()
            batch = self.sched.plan(cfg)
            nxt = self._compute(batch) if cfg.compute == "model" and batch else None
            moved = pool.compaction_bytes_moved - base[2]
            if cfg.compute == "model":
                latency = time.perf_counter() - t_wall
            elif batch:  # growing the pool costs the segment allocation it really took
                latency = self._cost(batch) + (self._s_copied + moved) / cfg.copy_bytes_per_s + self._s_growth_s
            else:
                latency = 0.0
            self.totals["growth_s"] += self._s_growth_s
            self._advance(latency)
            prefill, decode = self._progress(batch, nxt)
            if cfg.check_invariants:
                pool.check_invariants()
            rec = self._record(batch, latency, prefill, decode, base, self._evicted() - evicted)
        self.metrics.wall_s += time.perf_counter() - t_wall
        return rec

    def _cost(self, batch: list[tuple[Seq, int]]) -> float:
        """compute="none": the latency a real step of this shape would have (see ServingConfig)."""
        cfg = self._config
        tokens = attended = 0
        for seq, n in batch:
            tokens += n
            attended += n * seq.processed + n * (n + 1) // 2
        return cfg.cost_step_s + cfg.cost_token_s * tokens + cfg.cost_attention_s * attended

    def _compute(self, batch: list[tuple[Seq, int]]) -> list[int]:
        model = self.model
        vocab = model.config.vocab_size
        tokens = []
        for seq, n in batch:
            if seq.generated and seq.context - seq.processed == 1:
                tokens.append(torch.tensor([seq.last_token % vocab]))
            else:
                tokens.append(torch.from_numpy(self._rng.integers(0, vocab, n)))
        caches = [KVHandle(seq.kv) for seq, _ in batch]  # type: ignore[arg-type]
        return model.step(tokens, [seq.processed for seq, _ in batch], caches).tolist()

    def _progress(self, batch: list[tuple[Seq, int]], nxt: list[int] | None) -> tuple[int, int]:
        """Count processed tokens; emit a token where a sequence caught up; finish what is done."""
        cfg, tot = self._config, self.totals
        prefill = decode = 0
        done: list[Seq] = []
        for i, (seq, n) in enumerate(batch):
            if seq.generated and seq.context - seq.processed == 1:
                decode += 1
            else:
                prefill += n
                key = "prewarm_tokens" if seq.prewarm else "recompute_tokens" if seq.preempted else ""
                if key:
                    tot[key] += n
            seq.processed += n
            if seq.prefix is not None:
                self._register(seq)
            if seq.processed < seq.context:
                continue
            if seq.prewarm:
                done.append(seq)
                continue
            seq.generated += 1
            if seq.first_token_s is None:
                seq.first_token_s = self.clock
                self.metrics.ttft_s.append(self.clock - seq.arrival_s)
                self.metrics.ttft_at_s.append(self.clock)
                self._s_ttft.append(self.clock - seq.arrival_s)
            if nxt is not None:
                seq.last_token = nxt[i]
            if seq.generated >= seq.req.output_tokens:
                done.append(seq)
            elif seq.context + 1 > cfg.max_context_length:
                tot["truncated"] += 1
                done.append(seq)
            else:
                seq.context += 1
        tot["prefill_tokens"] += prefill
        tot["decode_tokens"] += decode
        if done:
            gone = set(map(id, done))
            self.sched.running = [s for s in self.sched.running if id(s) not in gone]
            for seq in done:
                self._finish(seq)
        return prefill, decode

    def _evicted(self) -> int:
        return sum(lay.evicted for lay in self._layouts)

    def _record(self, batch: list[tuple[Seq, int]], latency: float, prefill: int, decode: int,
                base: tuple[int, float, int], evicted: int) -> StepRecord:
        pool, tot = self.pool, self.totals
        st = pool.stats()
        ran = pool.compactions - base[0]
        tot["failures"] += self._s_failures
        tot["preemptions"] += self._s_preemptions
        tot["evictions"] += evicted
        tot["cache_hits"] += self._s_hits
        self.metrics.peak_utilisation = max(self.metrics.peak_utilisation, st.utilisation)
        rec = StepRecord(
            step=self.steps, time_s=self.clock, step_latency_s=latency, alloc_latency_s=self._s_alloc_s,
            compaction_pause_s=pool.compaction_pause_s - base[1],
            compaction_reason=reason_code(pool.last_compaction_reason) if ran else -1,
            compaction_bytes_moved=pool.compaction_bytes_moved - base[2], batch_size=len(batch),
            tokens=prefill + decode, prefill_tokens=prefill, decode_tokens=decode,
            queue_length=len(self.sched.waiting), finished=self._s_finished, failures=self._s_failures,
            preemptions=self._s_preemptions, evictions=evicted, cache_hits=self._s_hits,
            utilisation=st.utilisation, external_fragmentation=st.external_fragmentation,
            kv_fragmentation=self._kv_fragmentation(st), used_bytes=st.used_bytes,
            cached_bytes=getattr(st, "cached_bytes", 0), free_bytes=st.free_bytes,
            ttft_s=sum(self._s_ttft) / len(self._s_ttft) if self._s_ttft else math.nan,
            tpot_s=sum(self._s_tpot) / len(self._s_tpot) if self._s_tpot else math.nan,
            prefix_queries=self._s_prefix_queries, prefix_hits=self._s_prefix_hits, running=len(self.sched.running),
        )
        self.steps += 1
        self._recent.append(rec)
        self.metrics.history.append(rec)
        return rec

    def _kv_fragmentation(self, st: PoolStats) -> float:
        """External fragmentation as the design defines it: free memory in runs too small for a request
        (here: a typical KV allocation of the current layout)."""
        unit = self._layout.unit_pages()
        if not st.free_pages or unit <= 1:
            return 0.0
        if st.largest_free_run_pages < unit:
            return 1.0
        lengths = self.pool.free_run_lengths()
        return float(lengths[lengths < unit].sum()) / st.free_pages

    # ------------------------------------------------------------------ running and results
    def run(self, steps: int | None = None, until: float | None = None, *, progress: bool = True) -> dict[str, Any]:
        """Step until ``steps`` more steps ran, the clock passed ``until`` (seconds) or, without ``until``, all
        requests are done (with ``until`` the clock runs on, so idle sessions time out). Shows a tqdm bar
        unless ``progress=False``. Returns `summary()`."""
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
            raise ValueError(f"steps={steps!r} is not allowed: use None or an integer >= 0")
        # an infinite `until` would keep the loop going after the last request
        if until is not None and (isinstance(until, bool) or not isinstance(until, int | float)
                                  or not math.isfinite(until)):
            raise ValueError(f"until={until!r} is not allowed: use None or a finite number of seconds")
        if not isinstance(progress, bool):
            raise TypeError(f"progress={progress!r} is not allowed: use True or False")
        bar = tqdm(total=steps, disable=not progress, unit="step", desc="serving", leave=False)
        self._until = until
        try:
            n = 0
            while (steps is None or n < steps) and (until is None or self.clock < until) \
                    and (until is not None or not self.done):
                rec = self.step()
                n += 1
                bar.update(1)
                if n % 64 == 0:
                    bar.set_postfix(t=f"{rec.time_s:.1f}s", batch=rec.batch_size, util=f"{rec.utilisation:.0%}")
        finally:
            self._until = None
            bar.close()
        return self.summary()

    def recent_steps(self, n: int | None = None, keys: tuple[str, ...] = RECENT_KEYS) -> dict[str, np.ndarray]:
        """The last ``n`` step records (all the ring holds when None), oldest first, one array per key
        (``keys``: a subset of `RECENT_KEYS`, the columns a view needs)."""
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ValueError(f"n={n!r} is not allowed: use None or an integer >= 0")
        if isinstance(keys, str) or not isinstance(keys, tuple | list):  # a str would be read letter by letter
            raise TypeError(f"keys={keys!r} is not allowed: use a tuple of names from RECENT_KEYS")
        unknown = [k for k in keys if k not in RECENT_KEYS]
        if unknown:
            raise ValueError(f"recent_steps: unknown keys {unknown}; known: {RECENT_KEYS}")
        with self.pool.lock:
            return self._recent.arrays(n, keys)

    def results(self) -> pd.DataFrame:
        """One row per step kept (the last ``history_limit``), columns as in `StepRecord`."""
        with self.pool.lock:
            return pd.DataFrame(self.metrics.history.arrays())

    def leaks(self) -> list[dict[str, Any]]:
        """KV blocks still allocated whose session was closed: the leak detector."""
        out = []
        with self.pool.lock:
            for layout in self._layouts:
                for bid, (blk, owner) in layout.owners.items():
                    closed = self.closed_sessions.get(owner)
                    if closed is not None and not blk.freed:
                        out.append({"block_id": bid, "session_id": closed[0], "session_key": owner,
                                    "nbytes": blk.nbytes, "closed_s": closed[1]})
        return sorted(out, key=lambda d: d["block_id"])

    def summary(self) -> dict[str, Any]:
        """Totals and percentiles of the run so far; what each memory and cache figure counts (used,
        cached, free, failures, evictions, prefix-cache counters) is in `workload._summary.summarise`."""
        with self.pool.lock:
            return summarise(self)

    def over_time(self, bins: int = 10) -> pd.DataFrame:
        """The run so far in ``bins`` equal slices of simulated time: TTFT/TPOT percentiles, queue,
        used/cached/free memory, fragmentation, failures and throughput per slice (how the server slows
        down as it runs; see `workload._summary.over_time`)."""
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 10_000:
            raise ValueError(f"bins={bins!r} is not allowed: use an integer from 1 to 10000")
        with self.pool.lock:
            return over_time(self, bins)
