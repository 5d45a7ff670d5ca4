from __future__ import annotations

from collections.abc import Callable

import torch

import autoglm_lab as al
from autoglm_lab.workload import ModelConfig, Request, ServingConfig, ServingSim, TinyGLM
from autoglm_lab.workload._kv import KVHandle, make_layout


def test_kv_bytes_per_token_follows_the_formula() -> None:
    cfg = ModelConfig(num_layers=3, num_kv_heads=4, head_dim=16, num_heads=8, dtype="float16")
    assert cfg.kv_bytes_per_token == 2 * 3 * 4 * 16 * 2


def test_decoder_reads_kv_from_pool_blocks_same_result_in_both_layouts(make_pool) -> None:
    cfg = ModelConfig(seed=3)
    model = TinyGLM(cfg)
    torch.manual_seed(0)
    prompt = torch.randint(0, cfg.vocab_size, (70,))
    outs = {}
    for name in ("contiguous", "paged"):
        pool = make_pool("4MiB")
        layout = make_layout(name, pool, cfg, 16, "kv")
        seq = layout.new(owner=0)
        layout.reserve(seq, 70, 0)
        toks = [int(model.step([prompt[:50]], [0], [KVHandle(seq)])[0])]
        toks.append(int(model.step([prompt[50:]], [50], [KVHandle(seq)])[0]))  # a chunk across paged blocks
        for i in range(5):
            layout.reserve(seq, 71 + i, 70 + i)  # contiguous: re-allocates and copies
            toks.append(int(model.step([torch.tensor([toks[-1]])], [70 + i], [KVHandle(seq)])[0]))
        outs[name] = toks
        assert pool.stats().num_blocks == len(seq.blocks) > 0
        assert layout.view(seq, 0, 75).abs().sum() > 0  # the keys/values were written into the pool
    assert outs["contiguous"] == outs["paged"]
    # same answer without a cache: one pass over the whole sequence
    pool = make_pool("4MiB")
    layout = make_layout("paged", pool, cfg, 16, "kv")
    seq = layout.new(owner=0)
    layout.reserve(seq, 80, 0)
    full = torch.cat([prompt, torch.tensor(outs["paged"][1:6])])
    assert int(model.step([full], [0], [KVHandle(seq)])[0]) == outs["paged"][-1]


def test_seeded_weights() -> None:
    a, b, c = TinyGLM(ModelConfig(seed=1)), TinyGLM(ModelConfig(seed=1)), TinyGLM(ModelConfig(seed=2))
    assert torch.equal(a.lm_head.weight, b.lm_head.weight)
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def _decode_latency(context: int) -> float:
    pool = al.PagedPool(al.PoolConfig(memory_pool_initial_size="32MiB", compaction="off", device="cpu"))
    reqs = [Request(id=i, arrival_s=0.0, prompt_tokens=context, output_tokens=24, session_id=i) for i in range(4)]
    sim = ServingSim(pool, ServingConfig(kv_layout="contiguous", compute="model", max_batched_tokens=8192),
                     requests=reqs)
    summary = sim.run(progress=False)
    assert summary["requests_done"] == 4
    steps = sim.metrics.history.arrays(keys=("step_latency_s", "batch_size", "tokens"))
    decode = (steps["batch_size"] == 4) & (steps["tokens"] == 4)  # the four sequences' decode steps
    assert decode.sum() >= 20
    # the fastest decode step: a busy machine only ever adds time, so the minimum is what the step costs
    return float(steps["step_latency_s"][decode].min())


def test_per_token_latency_rises_with_context() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared: keep the measurement on one core
    try:
        _decode_latency(16)  # warm up torch's kernels
        short, long = _decode_latency(16), _decode_latency(1536)
    finally:
        torch.set_num_threads(threads)
    assert long > 1.5 * short, (short, long)


def _logits(layout_name: str, pool: al.PagedPool, block_tokens: int, model: TinyGLM, prompt: torch.Tensor,
            decode: int, between: Callable[[], None] = lambda: None) -> list[torch.Tensor]:
    """Logits of each step; ``between()`` runs after each one."""
    layout = make_layout(layout_name, pool, model.config, block_tokens, "kv")
    seq = layout.new(owner=0)
    out = []
    pos = 0
    for chunk in (37, 100, len(prompt) - 137):  # prefill chunks that straddle KV blocks
        layout.reserve(seq, pos + chunk, pos)
        out.append(model.step([prompt[pos:pos + chunk]], [pos], [KVHandle(seq)], return_logits=True))
        pos += chunk
        between()
    for _ in range(decode):
        layout.reserve(seq, pos + 1, pos)  # contiguous: re-allocates and copies
        tok = out[-1].argmax(-1)
        out.append(model.step([tok], [pos], [KVHandle(seq)], return_logits=True))
        pos += 1
        between()
    return out


def test_paged_attention_reads_blocks_in_place_and_matches_contiguous_logits(make_pool, monkeypatch) -> None:
    """Tolerance: float32 logits within 1e-5 absolute + 1e-5 relative (the same arithmetic, only the
    order of reads differs; observed: bit-identical)."""
    model = TinyGLM(ModelConfig(seed=5))
    prompt = torch.randint(0, model.config.vocab_size, (300,), generator=torch.Generator().manual_seed(1))
    contiguous = torch.cat(_logits("contiguous", make_pool("4MiB"), 16, model, prompt, 40))
    cats = []
    real_cat = torch.cat
    monkeypatch.setattr(torch, "cat", lambda ts, *a, **k: cats.append(len(ts)) or real_cat(ts, *a, **k))
    paged = _logits("paged", make_pool("4MiB"), 16, model, prompt, 40)
    monkeypatch.undo()
    paged = torch.cat(paged)
    # the model concatenates per-sequence outputs (1 tensor here); never the context's blocks
    assert cats and max(cats) <= 2
    torch.testing.assert_close(paged, contiguous, atol=1e-5, rtol=1e-5)
    # blocks spread over several segments (a growing pool): the per-block fallback gives the same logits
    grown = al.PagedPool(al.PoolConfig(page_size="4KiB", memory_pool_initial_size="16KiB", max_size="4MiB",
                                       segment_size="16KiB", compaction="off", device="cpu"))
    spread = torch.cat(_logits("paged", grown, 16, model, prompt, 40))
    assert grown.num_segments > 1
    torch.testing.assert_close(spread, contiguous, atol=1e-5, rtol=1e-5)


def test_paged_reads_follow_blocks_that_compaction_moves_between_steps(make_pool) -> None:
    """The gather index kept on a paged sequence is rebuilt when its blocks move: after every step the
    filler blocks allocated between the sequence's blocks are freed and the pool compacted, and the
    logits stay those of contiguous KV (tolerance as above: 1e-5 absolute + 1e-5 relative)."""
    model = TinyGLM(ModelConfig(seed=5))
    prompt = torch.randint(0, model.config.vocab_size, (300,), generator=torch.Generator().manual_seed(1))
    contiguous = torch.cat(_logits("contiguous", make_pool("4MiB"), 16, model, prompt, 40))
    pool = make_pool("4MiB", page_size="4KiB")
    fillers: list[al.Block] = []
    moved = []

    def shuffle() -> None:
        before = {b.id: b.first_page for b in pool.blocks() if b.tag == "kv"}
        for blk in fillers:
            pool.free(blk)
        fillers.clear()
        pool.compact()
        moved.append(sum(b.first_page != before[b.id] for b in pool.blocks() if b.id in before))
        fillers.append(pool.alloc((1024,), torch.float32, tag="filler"))  # a hole before the next KV block

    paged = torch.cat(_logits("paged", pool, 16, model, prompt, 40, between=shuffle))
    assert sum(moved) > 10  # blocks the sequence had read from really moved
    torch.testing.assert_close(paged, contiguous, atol=1e-5, rtol=1e-5)
