"""Bad inputs to the serving workload and the tuner: Request, ServingConfig, ModelConfig, ServingSim,
synthetic_requests, Workload and tune. Each is a typed error naming the bad value and what is
allowed, and a simulator that already holds KV blocks in ``world.pool`` leaves that pool unchanged."""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any

import numpy as np
import pytest

import autoglm_lab as al
from autoglm_lab.tuning import Workload, tune
from autoglm_lab.workload import ModelConfig, Request, ServingConfig, ServingSim, TinyGLM, synthetic_requests

from .world import Case, World, assert_refused, make_world

NAN, INF = float("nan"), float("inf")
# a tiny sweep's parts: a bad argument must be refused before a trial is submitted
TINY_POOL = al.PoolConfig(page_size="16KiB", memory_pool_initial_size="1MiB", max_size=None, device="cpu")
TINY_WORKLOAD = Workload(num_sessions=4, rate_per_s=400.0, prompt_median=32, output_median=8, steps=50, seed=1)


class _NeverRuns(cf.Executor):
    def submit(self, *args: Any, **kwargs: Any) -> cf.Future:
        raise AssertionError("a trial was submitted")


@pytest.fixture
def world() -> World:
    """The shared world, plus a simulator that holds KV blocks in its pool (``extra["sim"]``)."""
    w = make_world()
    reqs = synthetic_requests(6, rate_per_s=1000.0, prompt_median=12, output_median=8, max_tokens=24, seed=2)
    sim = ServingSim(w.pool, ServingConfig(kv_layout="paged", cache_reuse_strategy="lru"), requests=reqs)
    sim.run(steps=4, progress=False)
    assert w.pool.stats().num_blocks > len(w.blocks), "the simulator should hold KV in the pool"
    w.extra["sim"] = sim
    return w


def _sim(w: World) -> ServingSim:
    return w.extra["sim"]


def _req(**changes: Any) -> Request:
    return Request(**{"id": 0, "arrival_s": 0.0, "prompt_tokens": 4, "output_tokens": 2, "session_id": 0, **changes})


def _request_cases() -> list[Case]:
    bad: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"id": -1}, ValueError, "id=-1"), ({"id": "0"}, TypeError, "id='0'"), ({"id": True}, TypeError, "id=True"),
        ({"arrival_s": NAN}, ValueError, "arrival_s=nan"), ({"arrival_s": INF}, ValueError, "arrival_s=inf"),
        ({"arrival_s": -0.5}, ValueError, "arrival_s=-0.5"), ({"arrival_s": 2e9}, ValueError, "arrival_s=2000000000.0"),
        ({"arrival_s": "0"}, TypeError, "arrival_s='0'"),
        ({"prompt_tokens": 0}, ValueError, "prompt_tokens=0"),
        ({"prompt_tokens": 2**24 + 1}, ValueError, "prompt_tokens=16777217"),
        ({"prompt_tokens": 4.0}, TypeError, "prompt_tokens=4.0"),
        ({"prompt_tokens": np.int64(4)}, TypeError, "int64"),
        ({"output_tokens": 0}, ValueError, "output_tokens=0"), ({"output_tokens": None}, TypeError, "None"),
        ({"session_id": -3}, ValueError, "session_id=-3"), ({"turn": -1}, ValueError, "turn=-1"),
        ({"prefix_tokens": 5}, ValueError, "prefix_tokens=5"), ({"follows": 0}, ValueError, "follows=0"),
        ({"follows": -1}, ValueError, "follows=-1"),
        ({"think_time_s": NAN}, ValueError, "think_time_s=nan"), ({"think_time_s": -1.0}, ValueError, "-1.0"),
    ]
    return [Case(f"Request({c})", (lambda w, c=c: _req(**c)), exc, needle) for c, exc, needle in bad]


def _requests_cases() -> list[Case]:
    """Lists of requests a simulator on ``world.pool`` refuses as a whole."""
    first = _req()
    bad: list[tuple[str, object, type[Exception], str]] = [
        ("duplicate ids", [first, _req(session_id=1)], ValueError, "requests[1]: id=0"),
        ("unknown follows", [first, _req(id=1, follows=7, arrival_s=NAN)], ValueError, "follows=7"),
        ("two follow-ups", [first, _req(id=1, follows=0, arrival_s=NAN), _req(id=2, follows=0, arrival_s=NAN)],
         ValueError, "follows=0"),
        ("cycle", [_req(id=1, follows=2, arrival_s=NAN), _req(id=2, follows=1, arrival_s=NAN)], ValueError,
         "follows=2"),
        ("not a Request", [first, 1], TypeError, "requests[1]=1"),
        ("a dict", [{"id": 0}], TypeError, "{'id': 0}"),
        ("one Request", first, TypeError, "Request"), ("None", None, TypeError, "NoneType"),
        ("a string", "abc", TypeError, "str"),
    ]
    return [Case(f"ServingSim(requests={name})", (lambda w, r=r: ServingSim(w.pool, requests=r)), exc, needle)
            for name, r, exc, needle in bad]


def _sim_cases() -> list[Case]:
    ctor: list[tuple[str, Any, type[Exception], str]] = [
        ("pool='pool'", lambda w: ServingSim("pool"), TypeError, "str"),
        ("pool=None", lambda w: ServingSim(None), TypeError, "NoneType"),
        ("config=dict", lambda w: ServingSim(w.pool, {"kv_layout": "paged"}), TypeError, "dict"),
        ("config='paged'", lambda w: ServingSim(w.pool, "paged"), TypeError, "str"),
        ("config=PoolConfig", lambda w: ServingSim(w.pool, w.pool.config), TypeError, "PoolConfig"),
        ("tag=3", lambda w: ServingSim(w.pool, tag=3), TypeError, "tag=3"),
        ("tag=''", lambda w: ServingSim(w.pool, tag=""), TypeError, "tag=''"),
    ]
    cases = [Case(f"ServingSim({name})", fn, exc, needle) for name, fn, exc, needle in ctor]
    live: list[tuple[str, Any, type[Exception], str]] = [
        ("run(steps=-1)", lambda w: _sim(w).run(-1), ValueError, "steps=-1"),
        ("run(steps=1.5)", lambda w: _sim(w).run(1.5), ValueError, "steps=1.5"),
        ("run(steps=True)", lambda w: _sim(w).run(True), ValueError, "steps=True"),
        ("run(steps='10')", lambda w: _sim(w).run("10"), ValueError, "steps='10'"),
        ("run(until=nan)", lambda w: _sim(w).run(until=NAN), ValueError, "until=nan"),
        ("run(until=inf)", lambda w: _sim(w).run(until=INF), ValueError, "until=inf"),
        ("run(until='5')", lambda w: _sim(w).run(until="5"), ValueError, "until='5'"),
        ("run(progress='no')", lambda w: _sim(w).run(1, progress="no"), TypeError, "progress='no'"),
        ("configure(kv_layout='ring')", lambda w: _sim(w).configure(kv_layout="ring"), ValueError, "ring"),
        ("configure(colour=1)", lambda w: _sim(w).configure(colour=1), ValueError, "colour"),
        # a valid model change next to a bad value: nothing preempted, nothing freed
        ("configure(num_layers=4, compute='gpu')", lambda w: _sim(w).configure(num_layers=4, compute="gpu"),
         ValueError, "gpu"),
        ("configure(num_heads=3)", lambda w: _sim(w).configure(num_heads=3), ValueError, "num_heads=3"),
        ("configure(recent_capacity=0)", lambda w: _sim(w).configure(recent_capacity=0), ValueError,
         "recent_capacity=0"),
        ("recent_steps(-1)", lambda w: _sim(w).recent_steps(-1), ValueError, "n=-1"),
        ("recent_steps(1.5)", lambda w: _sim(w).recent_steps(1.5), ValueError, "n=1.5"),
        ("recent_steps('x')", lambda w: _sim(w).recent_steps("x"), ValueError, "n='x'"),
        ("recent_steps(keys='step')", lambda w: _sim(w).recent_steps(keys="step"), TypeError, "keys='step'"),
        ("recent_steps(keys=('nope',))", lambda w: _sim(w).recent_steps(keys=("time_s", "nope")), ValueError,
         "nope"),
    ]
    return cases + [Case(f"sim.{name}", fn, exc, needle) for name, fn, exc, needle in live]


def _serving_config_cases() -> list[Case]:
    bad: list[tuple[str, object, str]] = [
        ("kv_layout", "ring", "ring"), ("kv_layout", ["paged"], "['paged']"), ("compute", "gpu", "gpu"),
        ("cache_reuse_strategy", "fifo", "fifo"), ("model_dtype", "float64", "float64"),
        ("adaptive_batching", 1, "adaptive_batching=1"), ("prewarm", "yes", "yes"),
        ("leak_sessions", None, "None"), ("max_batch_size", 0, "max_batch_size=0"),
        ("max_batched_tokens", 2**25, "33554432"), ("max_context_length", 1, "max_context_length=1"),
        ("block_tokens", 0, "block_tokens=0"), ("block_tokens", 1.5, "1.5"),
        ("session_timeout_s", 0, "session_timeout_s=0"), ("session_timeout_s", NAN, "nan"),
        ("cache_ttl_s", -1, "-1"), ("cache_ttl_s", "30", "'30'"), ("request_rate_scale", 1e7, "10000000.0"),
        ("request_rate_scale", 0, "request_rate_scale=0"), ("cost_step_s", NAN, "nan"),
        ("cost_token_s", INF, "inf"), ("copy_bytes_per_s", 0, "copy_bytes_per_s=0"),
        ("history_limit", 1, "history_limit=1"), ("recent_capacity", 2**30, str(2**30)), ("seed", -1, "seed=-1"),
        ("num_heads", 3, "num_heads=3"), ("head_dim", 3, "head_dim=3"), ("hidden_size", 4, "hidden_size=4"),
        ("vocab_size", True, "vocab_size=True"), ("num_layers", 1000, "num_layers=1000"),
    ]
    cases = [Case(f"ServingConfig({f}={v!r:.30})", (lambda w, f=f, v=v: ServingConfig(**{f: v})),
                  (ValueError, TypeError), needle) for f, v, needle in bad]
    cases += [
        Case("ServingConfig.replace(unknown)", lambda w: ServingConfig().replace(colour=1), ValueError, "colour"),
        Case("ServingConfig(unknown)", lambda w: ServingConfig(pages=4), TypeError, "pages"),
    ]
    return cases


def _model_cases() -> list[Case]:
    bad: list[tuple[str, object, str]] = [
        ("vocab_size", 0, "vocab_size=0"), ("hidden_size", "128", "'128'"), ("num_layers", 70000, "70000"),
        ("num_heads", 3, "num_heads=3"), ("head_dim", 5, "head_dim=5"), ("dtype", "float64", "float64"),
        ("dtype", ["float32"], "['float32']"), ("rope_theta", NAN, "rope_theta=nan"), ("rope_theta", 0, "rope_theta=0"),
        ("rope_theta", "1e4", "'1e4'"), ("seed", -1, "seed=-1"), ("seed", "x", "seed='x'"),
    ]
    cases = [Case(f"ModelConfig({f}={v!r})", (lambda w, f=f, v=v: ModelConfig(**{f: v})), (ValueError, TypeError),
                  needle) for f, v, needle in bad]
    cases += [
        Case("TinyGLM(config=dict)", lambda w: TinyGLM({"seed": 1}), TypeError, "dict"),
        Case("TinyGLM(device='gpu')", lambda w: TinyGLM(device="gpu"), ValueError, "gpu"),
    ]
    return cases


def _synthetic_cases() -> list[Case]:
    bad: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"num_sessions": -1}, ValueError, "num_sessions=-1"), ({"num_sessions": "10"}, TypeError, "'10'"),
        ({"num_sessions": 1.5}, TypeError, "num_sessions=1.5"), ({"num_sessions": 10**8}, ValueError, "100000000"),
        ({"rate_per_s": 0}, ValueError, "rate_per_s=0"), ({"rate_per_s": NAN}, ValueError, "rate_per_s=nan"),
        ({"rate_per_s": INF}, ValueError, "rate_per_s=inf"), ({"prompt_median": 0}, ValueError, "prompt_median=0"),
        ({"prompt_sigma": -1}, ValueError, "prompt_sigma=-1"), ({"output_sigma": 101}, ValueError, "101"),
        ({"output_median": "64"}, TypeError, "'64'"), ({"turns_mean": 0.5}, ValueError, "turns_mean=0.5"),
        ({"think_time_s": 0}, ValueError, "think_time_s=0"), ({"max_tokens": 0}, ValueError, "max_tokens=0"),
        ({"seed": -1}, ValueError, "seed=-1"), ({"seed": None}, TypeError, "seed=None"),
        # valid one by one, impossible together
        ({"num_sessions": 100, "rate_per_s": 1e-9}, ValueError, "rate_per_s=1e-09"),
        ({"num_sessions": 3, "max_tokens": 2**24, "prompt_median": 2**23, "prompt_sigma": 0.0, "turns_mean": 50.0},
         ValueError, "max_tokens=16777216"),
    ]
    return [Case(f"synthetic_requests({kw})", (lambda w, kw=kw: synthetic_requests(**kw)), exc, needle)
            for kw, exc, needle in bad]


def _tune(space: Any = None, **kwargs: Any) -> object:
    args = {"workload": TINY_WORKLOAD, "executor": _NeverRuns(), "progress": False, "pool_config": TINY_POOL,
            **kwargs}
    return tune({"fit": ["best", "first"]} if space is None else space, **args)


def _tune_cases() -> list[Case]:
    bad: list[tuple[str, Any, type[Exception] | tuple, str]] = [
        ("space=list", lambda w: _tune([("fit", "best")]), TypeError, "list"),
        ("space={}", lambda w: _tune({}), ValueError, "space"),
        ("space unknown", lambda w: _tune({"colour": [1]}), ValueError, "colour"),
        ("space empty values", lambda w: _tune({"fit": []}), ValueError, "space['fit']"),
        ("space bad value", lambda w: _tune({"page_size": ["16KiB", "3KiB"]}), ValueError, "3KiB"),
        ("space grid too large", lambda w: _tune({"seed": list(range(400)), "max_batch_size": list(range(1, 401))}),
         ValueError, "160,000"),
        ("workload=dict", lambda w: _tune(workload={"steps": 3}), TypeError, "{'steps': 3}"),
        ("objective unknown", lambda w: _tune(objective="bogus"), ValueError, "bogus"),
        ("objective min:nope", lambda w: _tune(objective="min:nope"), ValueError, "nope"),
        ("objective avg:", lambda w: _tune(objective="avg:ttft_p99_s"), ValueError, "avg:ttft_p99_s"),
        ("objective=3", lambda w: _tune(objective=3), ValueError, "objective=3"),
        ("n_trials=0", lambda w: _tune(n_trials=0), ValueError, "n_trials=0"),
        ("n_trials below the grid", lambda w: _tune(n_trials=1), ValueError, "n_trials=1"),
        ("method='bayes'", lambda w: _tune(method="bayes"), ValueError, "bayes"),
        ("seed=-1", lambda w: _tune(seed=-1), ValueError, "seed=-1"),
        ("seed=1.5", lambda w: _tune(seed=1.5), ValueError, "seed=1.5"),
        ("executor='threads'", lambda w: _tune(executor="threads"), TypeError, "threads"),
        ("max_workers=0", lambda w: _tune(max_workers=0), ValueError, "max_workers=0"),
        ("progress='yes'", lambda w: _tune(progress="yes"), TypeError, "progress='yes'"),
        ("pool_config=dict", lambda w: _tune(pool_config={"page_size": "64KiB"}), TypeError, "dict"),
        ("serving_config=dict", lambda w: _tune(serving_config={"kv_layout": "paged"}), TypeError, "dict"),
        ("Workload(trace missing)", lambda w: _tune(workload=Workload(trace="no/such/trace.csv")), FileNotFoundError,
         "no/such/trace.csv"),
        ("Workload(steps=0)", lambda w: Workload(steps=0), ValueError, "steps=0"),
        ("Workload(trace=5)", lambda w: Workload(trace=5), TypeError, "trace=5"),
        ("Workload(until_s=inf)", lambda w: Workload(until_s=INF), ValueError, "until_s=inf"),
        ("Workload(trace_limit=0)", lambda w: Workload(trace="t.csv", trace_limit=0), ValueError, "trace_limit=0"),
        ("Workload(rate_per_s=0)", lambda w: Workload(rate_per_s=0), ValueError, "rate_per_s=0"),
        ("Workload(time_scale=nan)", lambda w: Workload(time_scale=NAN), ValueError, "time_scale=nan"),
    ]
    return [Case(f"tune: {name}", fn, exc, needle) for name, fn, exc, needle in bad]


CASES = (_request_cases() + _requests_cases() + _sim_cases() + _serving_config_cases() + _model_cases()
         + _synthetic_cases() + _tune_cases())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_workload_input_is_refused_and_the_pool_is_unchanged(case: Case, world: World) -> None:
    assert_refused(case, world)
