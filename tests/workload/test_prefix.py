"""Issue #14: prefix caching from block hashes, an evictable cache with vLLM's accounting, and the
reuse strategies (small generated traces only; the shipped Mooncake trace is for notebooks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import autoglm_lab as al
from autoglm_lab.workload import Request, ServingConfig, ServingSim, load_trace

BLOCK = 16  # tokens per hashed prefix block in the generated traces (the KV block is 64 tokens)


def conversations(n: int, *, spacing_s: float = 2.0, block: int = BLOCK, seed: int = 0, system: bool = True,
                  hot: int = 0) -> list[Request]:
    """A Mooncake-like trace: conversations whose turns repeat the previous turn's prompt blocks and add
    new ones, an optional system-prompt block 0 shared by every request, and ``hot`` other prefixes that
    many requests share. Prompts end in a partial block that is never shared."""
    rng = np.random.default_rng(seed)
    next_id = 1
    convs: list[list[int]] = []
    out = []
    hot_prefixes = []
    for _ in range(hot):
        hot_prefixes.append(list(range(next_id, next_id + 4)))
        next_id += 4
    for i in range(n):
        pick = rng.random()
        if convs and pick < 0.5:  # a follow-up turn of an earlier conversation
            chain = convs[int(rng.integers(len(convs)))]
        elif hot_prefixes and pick < 0.75:
            chain = list(hot_prefixes[int(rng.integers(len(hot_prefixes)))])
            convs.append(chain)
        else:
            chain = []
            convs.append(chain)
        for _ in range(int(rng.integers(1, 4))):
            chain.append(next_id)
            next_id += 1
        ids = ([0] if system else []) + chain
        last = next_id  # the partial last block: unique to this request
        next_id += 1
        tail = int(rng.integers(1, block))
        out.append(Request(id=i, arrival_s=i * spacing_s, prompt_tokens=(len(ids)) * block + tail,
                           output_tokens=int(rng.integers(2, 20)), session_id=i,
                           block_hashes=(*ids, last), hash_block_tokens=block))
    return out


def repeat_fraction(requests: list[Request]) -> float:
    """Share of block references that repeat an earlier request's block: computed from the ids alone."""
    seen: set[int] = set()
    repeats = total = 0
    for r in sorted(requests, key=lambda r: r.arrival_s):
        for h in r.block_hashes:
            repeats += h in seen
            total += 1
        seen.update(r.block_hashes)
    return repeats / total


def pool(size: str = "32MiB", **kw: object) -> al.PagedPool:
    return al.PagedPool(al.PoolConfig(memory_pool_initial_size=size, max_size=size, device="cpu", **kw))


def serve(requests: list[Request], size: str = "32MiB", *, pool_kw: dict | None = None, **cfg: object
          ) -> tuple[ServingSim, dict]:
    sim = ServingSim(pool(size, **(pool_kw or {})), ServingConfig(**{"cache_reuse_strategy": "lru", **cfg}),
                     requests=requests)
    return sim, sim.run(progress=False)


# ------------------------------------------------------------------ the unbounded cache hits what the trace repeats
@pytest.mark.parametrize("layout", ["paged", "contiguous"])
@pytest.mark.parametrize("block", [BLOCK, 64, 128])
def test_unbounded_cache_hit_ratio_equals_the_traces_repeat_fraction(layout: str, block: int) -> None:
    reqs = conversations(120, block=block, seed=1)
    expected = repeat_fraction(reqs)
    assert 0.3 < expected < 0.8
    room = sum(r.prompt_tokens + r.output_tokens + 64 for r in reqs) * 1024  # every buffer fits: never evicts
    sim, s = serve(reqs, f"{-(-room >> 20) + 4}MiB", kv_layout=layout, check_invariants=True)
    assert s["requests_done"] == len(reqs) and s["evictions"] == 0
    assert s["prefix_cache_queries"] == sum(len(r.block_hashes) for r in reqs)
    assert s["prefix_cache_hits"] / s["prefix_cache_queries"] == pytest.approx(expected, abs=1e-12)
    assert s["prefix_cache_hit_rate"] == s["cache_hit_rate"] == pytest.approx(expected, abs=1e-12)
    # hit tokens were not prefilled
    assert s["prefill_tokens"] == sum(r.prompt_tokens for r in reqs) - s["prefix_cache_hit_tokens"]
    assert s["prefix_cache_query_tokens"] == sum(r.prompt_tokens for r in reqs)
    if layout == "contiguous":  # reused KV is copied into the new buffer
        assert s["prefix_copy_bytes"] == s["prefix_cache_hit_tokens"] * sim.layout.bytes_per_token > 0
    else:
        assert s["prefix_copy_bytes"] == 0


def test_hit_ratio_with_reuse_off_and_a_strategy_switch() -> None:
    reqs = conversations(60, seed=2)
    _, off = serve(reqs, cache_reuse_strategy="none")
    assert off["prefix_cache_queries"] == off["prefix_cache_hits"] == 0 and off["cached_bytes"] == 0
    assert off["prefill_tokens"] == sum(r.prompt_tokens for r in reqs)


@pytest.mark.parametrize("strategy", ["lru", "lfu", "ttl"])
def test_hit_rate_is_monotone_in_cache_size(strategy: str) -> None:
    reqs = conversations(300, seed=3, hot=6)
    rates = []
    for size in ("1MiB", "2MiB", "3MiB", "4MiB", "6MiB", "8MiB", "16MiB"):
        _, s = serve(reqs, size, kv_layout="paged", cache_reuse_strategy=strategy, cache_ttl_s=1e6)
        assert s["requests_done"] == len(reqs)
        rates.append(s["prefix_cache_hit_rate"])
    assert rates == sorted(rates), rates
    assert rates[0] < rates[-1] == pytest.approx(repeat_fraction(reqs), abs=1e-12)


# ------------------------------------------------------------------ sharing: paged by reference, contiguous by copy
def shared_prefix_pair(block: int = 64) -> list[Request]:
    """Two long requests with the same 8-block prefix, the second arriving while the first still runs."""
    ids = tuple(range(8))
    return [Request(id=0, arrival_s=0.0, prompt_tokens=8 * block + 10, output_tokens=400, session_id=0,
                    block_hashes=(*ids, 100), hash_block_tokens=block),
            Request(id=1, arrival_s=0.05, prompt_tokens=8 * block + 20, output_tokens=400, session_id=1,
                    block_hashes=(*ids, 101), hash_block_tokens=block)]


def test_paged_shares_prefix_blocks_by_reference_until_the_last_reader_ends() -> None:
    p = pool("8MiB")
    sim = ServingSim(p, ServingConfig(kv_layout="paged", cache_reuse_strategy="lru", check_invariants=True),
                     requests=shared_prefix_pair())
    for _ in range(1000):
        if len(sim.sched.running) == 2:
            break
        sim.step()
    a, b = sim.sched.running
    assert a.kv.blocks[:8] == b.kv.blocks[:8]  # the same pool blocks, not copies
    shared = a.kv.blocks[:8]
    entries = {e.hash: e for e in sim.prefix.entries.values()}
    assert all(entries[h].refs == 2 for h in range(8))
    assert not any(blk.cached for blk in shared) and p.stats().cached_bytes == 0
    own = len({blk.id for s in (a, b) for blk in s.kv.blocks})
    assert own == len(a.kv.blocks) + len(b.kv.blocks) - 8  # 8 blocks counted once
    assert p.stats().used_pages == own
    sim.run(progress=False)
    # both ended: the prefix blocks stay as cached KV (evictable), the private blocks are freed
    st = p.stats()
    assert all(e.refs == 0 for e in sim.prefix.entries.values())
    assert all(blk.cached and not blk.freed for blk in shared)
    # ten entries: the eight shared blocks and each prompt's partial last block (no whole KV block in it)
    assert len(sim.prefix.entries) == 10 and sum(len(e.blocks) for e in sim.prefix.entries.values()) == 8
    assert st.used_pages == 0 and st.cached_pages == st.num_blocks == 8
    s = sim.summary()
    assert s["prefix_cache_hits"] == 8 and s["prefix_cache_hit_tokens"] == 8 * 64
    assert s["cached_bytes"] == st.cached_bytes and s["used_bytes"] == 0


def test_contiguous_copies_the_reused_prefix_and_counts_the_bytes() -> None:
    p = pool("8MiB")
    sim = ServingSim(p, ServingConfig(kv_layout="contiguous", cache_reuse_strategy="lru", check_invariants=True),
                     requests=shared_prefix_pair())
    for _ in range(1000):
        if len(sim.sched.running) == 2:
            break
        sim.step()
    a, b = sim.sched.running
    assert a.kv.blocks[0] is not b.kv.blocks[0]
    n = 8 * 64 * sim.layout.bytes_per_token
    # the copied prefix holds the first sequence's KV bytes
    assert b.kv.blocks[0].tensor.numpy().tobytes()[:n] == a.kv.blocks[0].tensor.numpy().tobytes()[:n]
    s = sim.run(progress=False)
    assert s["prefix_copy_bytes"] == n and s["prefix_cache_hit_tokens"] == 8 * 64
    # two whole buffers stay cached (the prefix twice: the memory lesson of paging)
    assert p.stats().cached_blocks == 2 and p.stats().used_pages == 0


def test_a_prompt_fully_in_the_cache_still_computes_its_last_token() -> None:
    ids = (1, 2, 3)
    reqs = [Request(id=i, arrival_s=5.0 * i, prompt_tokens=3 * 64, output_tokens=4, session_id=i,
                    block_hashes=ids, hash_block_tokens=64) for i in range(2)]
    for layout in ("paged", "contiguous"):
        _, s = serve(reqs, "8MiB", kv_layout=layout, check_invariants=True)
        assert s["prefix_cache_hits"] == 3 and s["requests_done"] == 2
        reused = 2 * 64 if layout == "paged" else 3 * 64 - 1  # paged shares whole KV blocks only
        assert s["prefix_cache_hit_tokens"] == reused
        assert s["prefill_tokens"] == 2 * 3 * 64 - reused


# ------------------------------------------------------------------ the evictable cache and its strategies
def test_cached_blocks_are_evicted_before_an_allocation_fails_and_the_pool_agrees() -> None:
    reqs = conversations(200, seed=4, spacing_s=0.05)
    for layout in ("paged", "contiguous"):
        sim, s = serve(reqs, "2MiB", kv_layout=layout, check_invariants=True)
        st = sim.pool.stats()
        assert s["requests_done"] == len(reqs)
        assert s["evictions"] == st.evictions > 0 and s["failures"] == st.failed_allocations
        assert s["evicted_entries"] > 0
        df = sim.results()
        assert ((df.used_bytes + df.cached_bytes + df.free_bytes) == st.capacity_bytes).all()
        assert df.prefix_hits.sum() == s["prefix_cache_hits"] and df.prefix_queries.sum() == s["prefix_cache_queries"]
        # the page map tells cached pages apart
        snap = sim.pool.snapshot()
        assert int(snap.block_cached.sum()) == st.cached_blocks


def test_ttl_drops_idle_prefix_blocks() -> None:
    reqs = conversations(80, seed=5, spacing_s=1.0)
    _, lru = serve(reqs, kv_layout="paged")
    sim, ttl = serve(reqs, kv_layout="paged", cache_reuse_strategy="ttl", cache_ttl_s=3.0)
    assert ttl["expired"] > 0 and lru["expired"] == 0
    assert ttl["prefix_cache_hit_rate"] < lru["prefix_cache_hit_rate"]
    # TTL's win: less memory held by the cache
    assert ttl["cached_bytes"] < lru["cached_bytes"]
    assert sim.pool.stats().evictions == ttl["evictions"]


def scan_with_hot_prefixes(n: int = 400) -> list[Request]:
    """Hot prefixes reused at random times among many one-off requests (a scan LRU cannot hold)."""
    rng = np.random.default_rng(6)
    hot = [tuple(range(1000 * k, 1000 * k + 4)) for k in range(1, 4)]
    out, nid = [], 10**6
    for i in range(n):
        if rng.random() < 0.25:
            ids = (*hot[int(rng.integers(len(hot)))], nid)
        else:
            ids = tuple(range(nid, nid + 5))
            nid += 5
        nid += 1
        out.append(Request(id=i, arrival_s=i * 0.5, prompt_tokens=len(ids) * 64 - 3, output_tokens=4, session_id=i,
                           block_hashes=ids, hash_block_tokens=64))
    return out


def test_lfu_and_prewarm_keep_hot_prefixes_that_lru_evicts() -> None:
    reqs = scan_with_hot_prefixes()
    size = "2MiB"  # 32 pages: about six requests' prompts
    _, lru = serve(reqs, size, kv_layout="paged")
    _, lfu = serve(reqs, size, kv_layout="paged", cache_reuse_strategy="lfu")
    _, warm = serve(reqs, size, kv_layout="paged", prewarm=True, prewarm_fraction=0.5)
    assert lfu["prefix_cache_hit_rate"] > lru["prefix_cache_hit_rate"]
    assert warm["prefix_cache_hit_rate"] > lru["prefix_cache_hit_rate"]
    assert warm["pinned_bytes"] > 0 and lru["pinned_bytes"] == 0


def test_pinned_blocks_are_never_evicted_and_a_new_model_drops_them() -> None:
    reqs = scan_with_hot_prefixes(120)
    sim, s = serve(reqs, "2MiB", kv_layout="paged", prewarm=True, prewarm_fraction=0.5, check_invariants=True)
    pinned = [u for u in sim.prefix.units() if u.pinned]
    assert pinned and s["pinned_bytes"] == sum(u.num_pages for u in pinned) * sim.pool.page_size
    assert s["pinned_bytes"] <= 0.5 * sim.pool.capacity_bytes
    assert all(not blk.freed and blk.cached for u in pinned for blk in u.blocks)
    sim.configure(num_layers=1)  # new model: every cached KV is invalid
    assert len(sim.prefix) == 0 and sim.pool.stats().num_blocks == 0


def test_leaks_reset_and_switching_layout_with_a_prefix_cache() -> None:
    reqs = conversations(60, seed=7, spacing_s=0.2)
    sim = ServingSim(pool("8MiB"), ServingConfig(kv_layout="paged", cache_reuse_strategy="lru", session_timeout_s=1.0,
                                                 check_invariants=True), requests=reqs)
    sim.run(steps=200, progress=False)
    sim.configure(kv_layout="contiguous")  # the old layout's entries are not matched by new sequences
    sim.run(until=200.0, progress=False)
    s = sim.summary()
    assert s["requests_done"] == len(reqs) and s["leaked_blocks"] == 0 and sim.leaks() == []
    assert s["cached_bytes"] > 0  # cache-owned blocks outlive their sessions without being leaks
    sim.reset()
    assert sim.pool.stats().num_blocks == 0 and len(sim.prefix) == 0


def test_model_compute_with_shared_prefix_blocks() -> None:
    reqs = [Request(id=i, arrival_s=0.2 * i, prompt_tokens=150, output_tokens=6, session_id=i,
                    block_hashes=(0, 1 + i), hash_block_tokens=64) for i in range(3)]
    for layout in ("paged", "contiguous"):
        _, s = serve(reqs, "4MiB", kv_layout=layout, compute="model", check_invariants=True)
        assert s["requests_done"] == 3 and s["prefix_cache_hits"] == 2


# ------------------------------------------------------------------ per-step records over time
def test_over_time_slices_the_run() -> None:
    reqs = conversations(150, seed=8, spacing_s=0.02)
    sim, s = serve(reqs, "2MiB", kv_layout="contiguous", cache_reuse_strategy="none")
    ot = sim.over_time(5)
    assert len(ot) == 5 and ot.steps.sum() == s["steps"]
    assert ot.first_tokens.sum() == s["requests_done"] and ot.failures.sum() == s["failures"]
    assert math.isclose(ot.t_end_s.iloc[-1], s["sim_time_s"])
    df = sim.results()
    ttft = df.ttft_s.dropna()
    assert len(ttft) > 0 and (ttft >= 0).all()
    with pytest.raises(ValueError, match="bins=0"):
        sim.over_time(0)


# ------------------------------------------------------------------ Mooncake JSONL
def mooncake_file(tmp_path: Path, requests: list[Request], name: str = "trace.jsonl") -> Path:
    path = tmp_path / name
    with path.open("w") as fh:
        for r in requests:
            fh.write(json.dumps({"timestamp": round(r.arrival_s * 1000), "input_length": r.prompt_tokens * 32,
                                 "output_length": r.output_tokens, "hash_ids": list(r.block_hashes)}) + "\n")
    return path


def test_mooncake_jsonl_is_read_by_content(tmp_path: Path) -> None:
    reqs = conversations(30, seed=9)
    path = mooncake_file(tmp_path, reqs, "no_extension")
    loaded = load_trace(path)
    assert [r.block_hashes for r in loaded] == [r.block_hashes for r in reqs]
    assert [r.prompt_tokens for r in loaded] == [32 * r.prompt_tokens for r in reqs]
    assert all(r.hash_block_tokens == 512 for r in loaded)
    assert loaded[3].arrival_s == pytest.approx(reqs[3].arrival_s)
    scaled = load_trace(path, token_scale=1 / 16, time_scale=2.0, limit=10)
    assert len(scaled) == 10 and all(r.hash_block_tokens == 32 for r in scaled)
    assert all(len(r.block_hashes) <= -(-r.prompt_tokens // 32) for r in scaled)
    assert scaled[3].arrival_s == pytest.approx(reqs[3].arrival_s / 2)
    tiny = load_trace(path, token_scale=1e-4)  # block of 1 token: prompts keep a token per id
    assert all(r.hash_block_tokens == 1 and r.prompt_tokens >= len(r.block_hashes) for r in tiny)
    _, s = serve(load_trace(path, token_scale=1 / 32), kv_layout="paged")
    assert s["prefix_cache_hit_rate"] == pytest.approx(repeat_fraction(reqs), abs=1e-12)


GOOD_LINE = {"timestamp": 0, "input_length": 1000, "output_length": 5, "hash_ids": [0, 1]}


@pytest.mark.parametrize(("line", "words"), [
    ("{not json", "not a JSON object"),
    ("[1, 2, 3]", "is a JSON list, not an object"),
    (json.dumps({**GOOD_LINE, "hash_ids": [0, 1, 2]}), "hash_ids has 3 ids, which is not allowed: input_length 1000 "
                                                       "has at most 2 blocks"),
    (json.dumps({k: v for k, v in GOOD_LINE.items() if k != "hash_ids"}), "field hash_ids missing"),
    (json.dumps({**GOOD_LINE, "input_length": -5}), "input_length -5 is below 1"),
    (json.dumps({**GOOD_LINE, "input_length": 0}), "input_length 0 is below 1"),
    (json.dumps({**GOOD_LINE, "output_length": 10**30}), "output_length 1000000000000000000000000000000 is above"),
    (json.dumps({**GOOD_LINE, "output_length": 5.5}), "output_length 5.5 is not an integer"),
    (json.dumps({**GOOD_LINE, "input_length": True}), "input_length true is not an integer"),
    ('{"timestamp": NaN, "input_length": 10, "output_length": 5, "hash_ids": []}', "timestamp NaN is not allowed"),
    ('{"timestamp": -1, "input_length": 10, "output_length": 5, "hash_ids": []}', "timestamp -1 is not allowed"),
    ('{"timestamp": Infinity, "input_length": 10, "output_length": 5, "hash_ids": []}', "timestamp Infinity"),
    (json.dumps({**GOOD_LINE, "hash_ids": [0, -1]}), "hash_ids holds -1"),
    (json.dumps({**GOOD_LINE, "hash_ids": [0, "a"]}), 'hash_ids holds "a"'),
    (json.dumps({**GOOD_LINE, "hash_ids": [3, 3]}), "hash_ids repeats an id"),
    (json.dumps({**GOOD_LINE, "hash_ids": [2**64]}), "hash_ids holds 18446744073709551616"),
    (json.dumps({**GOOD_LINE, "hash_ids": 7}), "hash_ids 7 is not allowed"),
    ('{"timestamp": 0, "input_length": ' + "9" * 5000 + ', "output_length": 1, "hash_ids": []}', "not a JSON object"),
])
def test_malformed_jsonl_lines_name_file_line_and_field(tmp_path: Path, line: str, words: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(GOOD_LINE) + "\n\n" + line + "\n" + json.dumps(GOOD_LINE) + "\n")
    with pytest.raises(ValueError) as info:
        load_trace(path)
    message = str(info.value)
    assert f"{path}, line 3: " in message and words in message, message
    assert len(message) < 400 and "\n" not in message


def test_jsonl_bytes_long_lines_and_unknown_formats(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(json.dumps(GOOD_LINE).encode() + b"\n" + b'{"timestamp": 1\xff}\n')
    with pytest.raises(ValueError, match=r"line 2: the byte 0xff is not UTF-8"):
        load_trace(path)
    path.write_text(json.dumps(GOOD_LINE) + "\n" + json.dumps({**GOOD_LINE, "pad": "x" * (2 << 20)}) + "\n")
    with pytest.raises(ValueError, match=r"line 2: the line is longer than 1,048,576 characters"):
        load_trace(path)
    for text in ("hello world\n1,2,3\n", "TIMESTAMP;ContextTokens;GeneratedTokens\n"):
        path.write_text(text)
        with pytest.raises(ValueError, match=r"line 1: header .* unknown trace format; use an Azure trace CSV .* or a "
                                             r"Mooncake JSONL trace"):
            load_trace(path)
    path.write_text("")
    with pytest.raises(ValueError, match=r"line 1: the file is empty: use an Azure trace CSV"):
        load_trace(path)
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD_LINE).encode() + b"\n")  # a BOM is fine
    assert load_trace(path)[0].block_hashes == (0, 1)


@pytest.mark.parametrize(("changes", "error", "words"), [
    ({"block_hashes": (1, 2, 3)}, ValueError, "block_hashes has 3 ids, which is not allowed: a 40-token prompt has "
                                              "at most 2 blocks of hash_block_tokens=32"),
    ({"block_hashes": (1, -2)}, ValueError, "block_hashes holds -2"),
    ({"block_hashes": (1, 2**63)}, ValueError, "block_hashes holds 9223372036854775808"),
    ({"block_hashes": (1, True)}, TypeError, "block_hashes holds True (bool)"),
    ({"block_hashes": (1, 1.0)}, TypeError, "block_hashes holds 1.0 (float)"),
    ({"block_hashes": (4, 4)}, ValueError, "block_hashes has id 4 at positions 0 and 1"),
    ({"block_hashes": "12"}, TypeError, "block_hashes='12' is not allowed"),
    ({"hash_block_tokens": 0}, ValueError, "hash_block_tokens=0 is not allowed"),
])
def test_request_block_hashes_are_validated(changes: dict, error: type, words: str) -> None:
    base = {"id": 0, "arrival_s": 0.0, "prompt_tokens": 40, "output_tokens": 2, "session_id": 0,
            "hash_block_tokens": 32}
    with pytest.raises(error) as info:
        Request(**{**base, **changes})
    assert words in str(info.value) and "allowed" in str(info.value)
    assert Request(**{**base, "block_hashes": [5, 6]}).block_hashes == (5, 6)  # a list becomes a tuple


def test_the_mooncake_trace_ships_with_its_licence_and_attribution() -> None:
    from autoglm_lab.workload import mooncake_trace_path

    path = mooncake_trace_path()
    assert path.is_file() and path.suffix == ".jsonl"
    assert "Apache License" in (path.parent / "LICENSE-APACHE-2.0-mooncake").read_text()
    readme = (path.parent / "README.md").read_text()
    assert "Mooncake" in readme and "Apache-2.0" in readme and "FAST 2025" in readme
    with path.open() as fh:  # the format, without loading all of it
        first = json.loads(fh.readline())
    assert set(first) == {"timestamp", "input_length", "output_length", "hash_ids"}
