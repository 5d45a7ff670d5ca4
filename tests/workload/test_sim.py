from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from autoglm_lab.pool import COMPACT_REASONS
from autoglm_lab.workload import RECENT_KEYS, Request, ServingConfig, ServingSim, synthetic_requests

BUSY = synthetic_requests(120, rate_per_s=20, prompt_median=400, output_median=150, seed=1)
CHAT = synthetic_requests(40, rate_per_s=4, prompt_median=200, output_median=60, turns_mean=3, think_time_s=2.0,
                          seed=2)


def run(pool, requests, **cfg) -> tuple[ServingSim, dict]:
    sim = ServingSim(pool, ServingConfig(**cfg), requests=requests)
    return sim, sim.run(progress=False)


def test_contiguous_fragments_compaction_avoids_failures_paged_stays_unfragmented(make_pool) -> None:
    off_sim, off = run(make_pool(compaction="off"), BUSY, kv_layout="contiguous")
    _, lazy = run(make_pool(compaction="lazy", max_consecutive_failures=1), BUSY, kv_layout="contiguous")
    _, paged = run(make_pool(compaction="off"), BUSY, kv_layout="paged")
    for s in (off, lazy, paged):
        assert s["requests_done"] + s["requests_rejected"] == len(BUSY)
    # contiguous without compaction: allocations fail although enough memory is free, sequences are preempted
    assert off["fragmentation_failures"] > 0 and off["preemptions"] > 0
    assert off_sim.results()["kv_fragmentation"].max() > 0.2
    # the same trace and pool with lazy compaction: the pool compacts instead, nothing fails
    assert lazy["compactions"] > 0 and lazy["compaction_bytes_moved"] > 0
    assert lazy["failures"] == 0 and lazy["preemptions"] == 0
    # paged: every free page is usable, so no fragmentation and no failure at all
    assert paged["failures"] == 0 and paged["preemptions"] == 0 and paged["compactions"] == 0
    assert paged["mean_kv_fragmentation"] < 0.01 < off["mean_kv_fragmentation"]


def test_compaction_pauses_are_recorded_with_their_reason(make_pool) -> None:
    sim, summary = run(make_pool(compaction="lazy", max_consecutive_failures=1), BUSY, kv_layout="contiguous")
    df = sim.results()
    compacted = df[df.compaction_reason >= 0]
    assert len(compacted) > 0 and (compacted.compaction_pause_s > 0).all()
    assert {COMPACT_REASONS[c] for c in compacted.compaction_reason} <= {"free_ratio", "consecutive_failures"}
    assert (df.compaction_pause_s[df.compaction_reason < 0] == 0).all()
    assert compacted.compaction_bytes_moved.sum() == summary["compaction_bytes_moved"]


def test_lru_reuse_beats_none_on_multi_turn_sessions(make_pool) -> None:
    _, none = run(make_pool("16MiB"), CHAT, cache_reuse_strategy="none")
    _, lru = run(make_pool("16MiB"), CHAT, cache_reuse_strategy="lru")
    _, ttl = run(make_pool("16MiB"), CHAT, cache_reuse_strategy="ttl", cache_ttl_s=1.0)
    assert none["requests_done"] == lru["requests_done"] == ttl["requests_done"] == len(CHAT)
    assert none["cache_hit_rate"] == 0.0 and none["cache_hits"] == 0
    assert lru["cache_hit_rate"] > 0.5
    assert lru["prefill_tokens"] < 0.8 * none["prefill_tokens"]
    assert lru["cache_bytes_saved"] > 0 and lru["evictions"] > 0  # 16 MiB cannot hold every conversation
    assert none["decode_tokens"] == lru["decode_tokens"]  # the same answers, less prefill
    assert ttl["expired"] > 0 and ttl["cache_hit_rate"] < lru["cache_hit_rate"]  # short TTL: entries expire


def test_leak_switch_leaks_and_the_detector_finds_it(make_pool) -> None:
    for strategy in ("none", "lru"):
        pool = make_pool("16MiB")
        sim = ServingSim(pool, ServingConfig(cache_reuse_strategy=strategy, session_timeout_s=5.0), requests=CHAT)
        clean = sim.run(until=60.0, progress=False)
        assert clean["leaked_blocks"] == 0 and sim.leaks() == []
        assert pool.stats().used_bytes == 0  # every session closed and freed its KV
        sim.reset()
        sim.configure(leak_sessions=True)
        leaky = sim.run(until=60.0, progress=False)
        leaks = sim.leaks()
        assert leaky["leaked_blocks"] == len(leaks) > 0
        assert leaky["leaked_bytes"] == sum(d["nbytes"] for d in leaks) == pool.stats().requested_bytes
        live = {b.id for b in pool.blocks()}
        assert {d["block_id"] for d in leaks} == live
        assert all(d["closed_s"] <= sim.clock for d in leaks)
        sim.reset()  # frees the leaked blocks too
        assert pool.stats().num_blocks == 0


def test_recent_steps_ring_is_bounded_and_ordered(make_pool) -> None:
    sim = ServingSim(make_pool(), ServingConfig(recent_capacity=64), requests=BUSY[:30])
    sim.run(steps=200, progress=False)
    recent = sim.recent_steps()
    assert set(RECENT_KEYS) <= set(recent) and len(recent["time_s"]) == 64
    assert all(isinstance(v, np.ndarray) and len(v) == 64 for v in recent.values())
    assert np.all(np.diff(recent["time_s"]) >= 0)
    assert len(sim.recent_steps(10)["batch_size"]) == 10
    np.testing.assert_array_equal(recent["tokens"], sim.results()["tokens"].to_numpy()[-64:])
    assert set(np.unique(recent["compaction_reason"])) == {-1}
    rec = sim.step()
    assert rec.step == 200 and sim.recent_steps(1)["time_s"][0] == rec.time_s
    sim.configure(recent_capacity=16, history_limit=32)
    assert len(sim.recent_steps()["tokens"]) == 16 and len(sim.results()) == 32
    sim.run(steps=100, progress=False)
    assert len(sim.results()) <= 32 and len(sim.recent_steps()["tokens"]) == 16


def test_results_summary_and_determinism(make_pool) -> None:
    sim_a, a = run(make_pool(), BUSY[:40], kv_layout="contiguous")
    sim_b, b = run(make_pool(), BUSY[:40], kv_layout="contiguous")
    df = sim_a.results()
    assert isinstance(df, pd.DataFrame) and len(df) == a["steps"]
    for col in ("time_s", "batch_size", "tokens", "step_latency_s", "alloc_latency_s", "compaction_pause_s",
                "compaction_reason", "failures", "preemptions", "evictions", "utilisation", "external_fragmentation"):
        assert col in df.columns
    assert df.tokens.sum() == a["tokens"] and (df.step_latency_s >= 0).all()
    assert df.time_s.is_monotonic_increasing and 0 < a["peak_utilisation"] <= 1
    assert a["requests_done"] == 40 and a["ttft_p50_s"] > 0
    assert a["per_token_latency_p99_s"] >= a["per_token_latency_p50_s"]
    for key in ("steps", "tokens", "sim_time_s", "prefill_tokens", "failures", "requests_done"):
        assert a[key] == b[key], key  # seeded: the same numbers every run
    pd.testing.assert_frame_equal(df.drop(columns=["alloc_latency_s", "compaction_pause_s"]),
                                  sim_b.results().drop(columns=["alloc_latency_s", "compaction_pause_s"]))


def test_every_setting_changes_while_running(make_pool) -> None:
    pool = make_pool("16MiB")
    sim = ServingSim(pool, ServingConfig(kv_layout="contiguous", check_invariants=True), requests=CHAT)
    sim.run(steps=60, progress=False)
    sim.configure(kv_layout="paged", cache_reuse_strategy="lru", max_batch_size=4, adaptive_batching=False)
    sim.run(steps=60, progress=False)
    assert max(sim.results().batch_size[-30:]) <= 4
    sim.configure(request_rate_scale=4.0, block_tokens=32, prewarm=True)
    sim.run(steps=60, progress=False)
    sim.configure(num_layers=1, head_dim=16, compute="model")  # a new model: everything is recomputed
    assert sim.layout.bytes_per_token == 2 * 1 * 2 * 16 * 4
    sim.run(steps=20, progress=False)
    sim.configure(compute="none")
    s = sim.run(progress=False)
    assert s["requests_done"] + s["requests_rejected"] == len(CHAT)
    sim.reset()
    assert pool.stats().num_blocks == 0 and sim.steps == 0 and len(sim.results()) == 0
    pool.check_invariants()


def test_max_context_length_and_too_big_requests(make_pool) -> None:
    reqs = [Request(id=0, arrival_s=0.0, prompt_tokens=600, output_tokens=10, session_id=0),
            Request(id=1, arrival_s=0.0, prompt_tokens=90, output_tokens=500, session_id=1),
            Request(id=2, arrival_s=0.1, prompt_tokens=50, output_tokens=5, session_id=2)]
    _, s = run(make_pool("1MiB"), reqs, max_context_length=512)
    assert s["requests_rejected"] == 1 and s["requests_truncated"] == 1 and s["requests_done"] == 2
    assert s["generated_tokens"] == 512 - 90 + 1 + 5
    huge = [Request(id=0, arrival_s=0.0, prompt_tokens=5000, output_tokens=10, session_id=0)]
    _, s = run(make_pool("1MiB"), huge)  # 1 MiB holds 1024 tokens: rejected, not stuck
    assert s["requests_rejected"] == 1


def test_prewarm_recomputes_evicted_hot_sessions_with_idle_capacity(make_pool) -> None:
    chat = synthetic_requests(30, rate_per_s=3, prompt_median=300, output_median=80, turns_mean=5, think_time_s=10,
                              seed=4)
    _, cold = run(make_pool("8MiB"), chat, cache_reuse_strategy="lru", session_timeout_s=20.0)
    _, warm = run(make_pool("8MiB"), chat, cache_reuse_strategy="lru", session_timeout_s=20.0, prewarm=True)
    assert cold["evictions"] > 0 and cold["prewarm_tokens"] == 0
    assert warm["prewarm_tokens"] > 0  # evicted multi-turn sessions were recomputed ahead of their next turn
    assert warm["requests_done"] == cold["requests_done"] == len(chat)
    assert warm["cache_hit_rate"] >= cold["cache_hit_rate"]


@pytest.mark.parametrize("layout", ["contiguous", "paged"])
def test_model_compute_serves_requests_from_the_pool(make_pool, layout: str) -> None:
    chat = synthetic_requests(3, rate_per_s=5, prompt_median=48, output_median=12, turns_mean=2.5, think_time_s=0.5,
                              seed=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, s = run(make_pool("2MiB"), chat, kv_layout=layout, compute="model", cache_reuse_strategy="lru",
                   check_invariants=True)
    finally:
        torch.set_num_threads(threads)
    assert s["requests_done"] == len(chat) > 3 and s["generated_tokens"] == sum(r.output_tokens for r in chat)
    assert s["cache_hits"] > 0 and s["step_latency_p50_s"] > 0


def test_cached_kv_is_evictable_not_used_and_failures_mean_the_pools(make_pool) -> None:
    pool = make_pool("16MiB")
    sim, lru = run(pool, CHAT, cache_reuse_strategy="lru")
    st = pool.stats()
    # the cache filled the pool; allocations evicted cached KV instead of failing
    assert lru["requests_done"] == len(CHAT) and lru["evictions"] > 0
    assert lru["evictions"] == st.evictions and lru["failures"] == st.failed_allocations == 0
    assert int(sim.results()["failures"].sum()) == lru["failures"]
    assert int(sim.results()["evictions"].sum()) == lru["evictions"]
    # at the end nothing runs: every kept KV block is cached, none used
    assert st.used_bytes == 0 and st.cached_bytes > 0 and st.utilisation == 0.0
    assert lru["used_bytes"] + lru["cached_bytes"] + lru["free_bytes"] == lru["capacity_bytes"] == st.capacity_bytes
    assert (lru["used_bytes"], lru["cached_bytes"], lru["free_bytes"]) == (st.used_bytes, st.cached_bytes,
                                                                          st.free_bytes)
    assert {b.id for b in pool.blocks() if b.cached} == {b.id for e in sim.cache for b in e.kv.blocks}
    df = sim.results()
    assert ((df.used_bytes + df.cached_bytes + df.free_bytes) == st.capacity_bytes).all()


def test_failures_are_the_pools_failed_allocations(make_pool) -> None:
    pool = make_pool(compaction="off")
    _, s = run(pool, BUSY, kv_layout="contiguous")
    assert s["failures"] == pool.stats().failed_allocations > 0
    assert s["fragmentation_failures"] <= s["failures"]
