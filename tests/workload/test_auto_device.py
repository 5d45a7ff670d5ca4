"""Issue #17: the GPU by default where there is one. The demo, the tuner's base pool and the command
line ask for device="auto", and the simulator's model sits on its pool's device."""

from __future__ import annotations

import autoglm_lab as al
from autoglm_lab.cli import build_parser
from autoglm_lab.pool import resolve_device
from autoglm_lab.tuning import DEFAULT_POOL
from autoglm_lab.workload import ModelConfig, Request, ServingConfig, ServingSim, TinyGLM, demo_setup


def test_the_model_runs_on_the_pools_device(device: str) -> None:
    pool = al.PagedPool(al.PoolConfig(memory_pool_initial_size="4MiB", max_size="4MiB", compaction="off",
                                      device=device))
    reqs = [Request(id=i, arrival_s=0.0, prompt_tokens=40 + i, output_tokens=4, session_id=i) for i in range(3)]
    sim = ServingSim(pool, ServingConfig(kv_layout="paged", compute="model", block_tokens=16), requests=reqs)
    summary = sim.run(progress=False)
    assert summary["requests_done"] == 3 and summary["failures"] == 0
    assert {p.device.type for p in sim.model.parameters()} == {pool.device.type}
    pool.check_invariants()


def test_tinyglm_takes_a_device_name() -> None:
    assert TinyGLM(ModelConfig(num_layers=1), device="auto").device.type == resolve_device("auto").type
    assert TinyGLM(ModelConfig(num_layers=1), device="cpu").device.type == "cpu"


def test_auto_is_the_default_of_the_demo_the_tuner_and_the_cli() -> None:
    auto = resolve_device("auto")
    pool, sim = demo_setup(limit=5)
    assert pool.config.device == "auto" and pool.device.type == auto.type
    assert sim.pool is pool
    assert demo_setup(limit=5, device="cpu")[0].device.type == "cpu"  # still overridable
    assert DEFAULT_POOL.device == "auto"
    parser = build_parser()
    assert parser.parse_args(["replay", "trace.csv"]).device == "auto"
    assert parser.parse_args(["demo"]).device == "auto"
