from __future__ import annotations

import math

import numpy as np
import pytest

import autoglm_lab as al
from autoglm_lab.workload import ServingConfig, ServingSim, synthetic_requests


def test_synthetic_requests_are_seeded_and_shaped() -> None:
    a = synthetic_requests(300, rate_per_s=10, turns_mean=3, seed=5)
    assert a == synthetic_requests(300, rate_per_s=10, turns_mean=3, seed=5)
    assert a != synthetic_requests(300, rate_per_s=10, turns_mean=3, seed=6)
    firsts = [r for r in a if r.follows is None]
    assert len(firsts) == 300
    gaps = np.diff([r.arrival_s for r in firsts])
    assert np.all(gaps > 0) and 0.07 < gaps.mean() < 0.13  # Poisson at 10/s
    by_id = {r.id: r for r in a}
    follow = [r for r in a if r.follows is not None]
    assert len(follow) > 300  # turns_mean=3: about two follow-ups per session
    for r in follow:
        prev = by_id[r.follows]
        assert r.session_id == prev.session_id and r.turn == prev.turn + 1
        assert r.prefix_tokens == prev.prompt_tokens + prev.output_tokens  # the conversation so far
        assert r.prompt_tokens > r.prefix_tokens and math.isnan(r.arrival_s) and r.think_time_s >= 0
    prompts = np.log([r.prompt_tokens for r in firsts])
    assert abs(np.median(prompts) - math.log(256)) < 0.25  # log-normal around the median


@pytest.mark.parametrize(("changes", "words"), [
    ({"kv_layout": "ring"}, "kv_layout='ring' is not allowed: choose one of 'contiguous', 'paged'"),
    ({"cache_reuse_strategy": "fifo"}, "cache_reuse_strategy='fifo'"),
    ({"compute": "gpu"}, "compute='gpu'"),
    ({"max_batch_size": 0}, "max_batch_size=0 is not allowed: use an integer from 1"),
    ({"block_tokens": 0}, "block_tokens=0"),
    ({"cache_ttl_s": -1.0}, "cache_ttl_s=-1.0"),
    ({"request_rate_scale": float("nan")}, "request_rate_scale=nan"),
    ({"session_timeout_s": 0}, "session_timeout_s=0"),
    ({"num_heads": 6, "num_kv_heads": 4}, "num_heads=6"),
    ({"head_dim": 31}, "head_dim=31"),
    ({"leak_sessions": "yes"}, "leak_sessions='yes'"),
    ({"bogus": 1}, "unknown ServingConfig field(s) ['bogus']"),
])
def test_bad_configs_are_refused_clearly(changes: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError) as info:
        ServingConfig().replace(**changes)
    assert words in str(info.value)
    if "bogus" not in changes:
        with pytest.raises(ValueError):
            ServingConfig(**changes)  # type: ignore[arg-type]


def test_configure_validates_and_leaves_config_alone(make_pool) -> None:
    sim = ServingSim(make_pool(), ServingConfig(), requests=synthetic_requests(5, seed=1))
    before = sim.config
    with pytest.raises(ValueError, match="max_batched_tokens=-5"):
        sim.configure(max_batched_tokens=-5)
    with pytest.raises(ValueError, match="unknown"):
        sim.configure(colour="red")
    assert sim.config is before
    with pytest.raises(TypeError, match="PagedPool"):
        ServingSim("pool", ServingConfig())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps=-1"):
        sim.run(steps=-1, progress=False)


def test_top_level_exports() -> None:
    assert al.ServingSim is ServingSim and al.ServingConfig is ServingConfig
    assert al.synthetic_requests is synthetic_requests
    assert ServingConfig().model_config().kv_bytes_per_token == 2 * 2 * 2 * 32 * 4
