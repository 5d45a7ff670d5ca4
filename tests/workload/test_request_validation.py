"""Issue #12: every Request is validated once, on creation; ServingSim refuses bad request lists."""

from __future__ import annotations

import math

import pytest

from autoglm_lab.workload import (
    MAX_ARRIVAL_S,
    MAX_TOKENS,
    Request,
    ServingConfig,
    ServingSim,
    check_requests,
    synthetic_requests,
)

GOOD = {"id": 0, "arrival_s": 0.0, "prompt_tokens": 8, "output_tokens": 2, "session_id": 0}


@pytest.mark.parametrize(("changes", "error", "words"), [
    ({"arrival_s": math.nan}, ValueError, "arrival_s=nan is not allowed"),
    ({"arrival_s": math.inf}, ValueError, "arrival_s=inf is not allowed"),
    ({"arrival_s": -1.0}, ValueError, "arrival_s=-1.0"),
    ({"arrival_s": 2 * MAX_ARRIVAL_S}, ValueError, "arrival_s=2000000000.0"),
    ({"arrival_s": "0"}, TypeError, "arrival_s='0'"),
    ({"prompt_tokens": -5}, ValueError, "prompt_tokens=-5 is not allowed: use an integer from 1 to 16,777,216"),
    ({"prompt_tokens": 0}, ValueError, "prompt_tokens=0"),
    ({"prompt_tokens": 10**30}, ValueError, "prompt_tokens=1000000000000000000000000000000"),
    ({"prompt_tokens": 8.0}, TypeError, "prompt_tokens=8.0"),
    ({"output_tokens": 0}, ValueError, "output_tokens=0"),
    ({"output_tokens": True}, TypeError, "output_tokens=True"),
    ({"id": -1}, ValueError, "id=-1"),
    ({"session_id": None}, TypeError, "session_id=None"),
    ({"turn": -2}, ValueError, "turn=-2"),
    ({"prefix_tokens": 9}, ValueError, "prefix_tokens=9 is not allowed: use an integer from 0 to 8"),
    ({"follows": 0}, ValueError, "follows=0 is not allowed: a turn cannot follow itself"),
    ({"follows": -3}, ValueError, "follows=-3"),
    ({"think_time_s": math.nan}, ValueError, "think_time_s=nan"),
])
def test_bad_requests_are_refused_naming_the_field(changes, error, words) -> None:
    with pytest.raises(error) as info:
        Request(**{**GOOD, **changes})
    assert words in str(info.value) and "allowed" in str(info.value)


def test_follow_ups_may_leave_arrival_nan_and_limits_are_inclusive() -> None:
    Request(id=1, arrival_s=math.nan, prompt_tokens=MAX_TOKENS, output_tokens=MAX_TOKENS, session_id=0, follows=0)
    Request(**{**GOOD, "arrival_s": MAX_ARRIVAL_S})


def test_serving_sim_names_the_bad_item(make_pool) -> None:
    pool = make_pool("1MiB")
    with pytest.raises(TypeError, match=r"requests\[0\]=1 is not allowed: use a Request, not int"):
        ServingSim(pool, ServingConfig(), requests=[1, 2])  # type: ignore[list-item]
    ok = Request(**GOOD)
    with pytest.raises(TypeError, match=r"requests\[1\]='x'"):
        ServingSim(pool, ServingConfig(), requests=[ok, "x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="requests must be an iterable of Request, not Request"):
        ServingSim(pool, ServingConfig(), requests=ok)  # type: ignore[arg-type]
    assert pool.stats().num_blocks == 0


def test_request_lists_are_checked_as_a_whole() -> None:
    first = Request(**GOOD)
    with pytest.raises(ValueError, match=r"requests\[1\]: id=0 .*same id"):
        check_requests([first, first])
    orphan = Request(id=1, arrival_s=math.nan, prompt_tokens=4, output_tokens=1, session_id=0, follows=7)
    with pytest.raises(ValueError, match=r"requests\[1\]: follows=7 is not allowed: no request has that id"):
        check_requests([first, orphan])
    a = Request(id=1, arrival_s=math.nan, prompt_tokens=4, output_tokens=1, session_id=0, follows=0)
    b = Request(id=2, arrival_s=math.nan, prompt_tokens=4, output_tokens=1, session_id=0, follows=0)
    with pytest.raises(ValueError, match=r"requests\[2\]: follows=0 .*one follow-up per turn"):
        check_requests([first, a, b])
    c1 = Request(id=1, arrival_s=math.nan, prompt_tokens=4, output_tokens=1, session_id=1, follows=2)
    c2 = Request(id=2, arrival_s=math.nan, prompt_tokens=4, output_tokens=1, session_id=1, follows=1)
    with pytest.raises(ValueError, match=r"requests\[1\]: follows=2 .*never reaches a first turn"):
        check_requests([first, c1, c2])
    chat = synthetic_requests(20, turns_mean=3, seed=2)
    assert check_requests(iter(chat)) == chat


def test_run_ends_when_an_arrival_is_closer_than_the_clock_resolves(make_pool) -> None:
    req = Request(id=0, arrival_s=1.0, prompt_tokens=4, output_tokens=2, session_id=0)
    sim = ServingSim(make_pool("1MiB"), ServingConfig(session_timeout_s=None), requests=[req])
    # a late clock cannot advance by the float gap left to the arrival: before the fix, no step progressed
    sim.clock, sim.trace_clock = 1e9, math.nextafter(1.0, 0.0)
    s = sim.run(steps=50, progress=False)
    assert sim.done and s["requests_done"] == 1


@pytest.mark.parametrize("scale", [1e-7, 1e7, 1e-320])
def test_request_rate_scale_has_a_range(scale: float) -> None:
    with pytest.raises(ValueError, match=f"request_rate_scale={scale!r} is not allowed: use a number from 1e-06"):
        ServingConfig(request_rate_scale=scale)


def test_run_until_must_be_finite(make_pool) -> None:
    sim = ServingSim(make_pool("1MiB"), ServingConfig(), requests=[Request(**GOOD)])
    with pytest.raises(ValueError, match="until=inf is not allowed"):
        sim.run(until=math.inf, progress=False)


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"max_tokens": 0}, ValueError, "max_tokens=0 is not allowed: use an integer from 1"),
    ({"max_tokens": 2.5}, TypeError, "max_tokens=2.5"),
    ({"prompt_sigma": math.nan}, ValueError, "prompt_sigma=nan is not allowed"),
    ({"output_sigma": -1}, ValueError, "output_sigma=-1"),
    ({"prompt_median": math.inf}, ValueError, "prompt_median=inf"),
    ({"output_median": "64"}, TypeError, "output_median='64'"),
    ({"turns_mean": math.nan}, ValueError, "turns_mean=nan"),
    ({"think_time_s": 0}, ValueError, "think_time_s=0"),
    ({"rate_per_s": True}, TypeError, "rate_per_s=True"),
    ({"rate_per_s": 1e-9}, ValueError, "rate_per_s=1e-09 is too low"),
    ({"seed": -1}, ValueError, "seed=-1"),
    ({"num_sessions": 10**9}, ValueError, "num_sessions=1000000000"),
    ({"max_tokens": MAX_TOKENS, "prompt_median": MAX_TOKENS, "turns_mean": 3, "prompt_sigma": 0},
     ValueError, "a Request allows at most 16,777,216"),
])
def test_synthetic_requests_arguments(kwargs, error, words) -> None:
    with pytest.raises(error) as info:
        synthetic_requests(**{"num_sessions": 3, **kwargs})
    assert words in str(info.value)


def test_synthetic_lengths_stay_within_max_tokens_even_with_huge_spread() -> None:
    reqs = synthetic_requests(200, prompt_median=MAX_TOKENS, prompt_sigma=100.0, max_tokens=1, seed=1)
    assert {r.prompt_tokens for r in reqs} == {1} and all(r.output_tokens >= 1 for r in reqs)
