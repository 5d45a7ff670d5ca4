"""Issue #12: every argument of `tune` and of a synthetic `Workload` is refused with a typed error that
names it, before any trial runs."""

from __future__ import annotations

import concurrent.futures as cf
import math
from pathlib import Path

import pytest

from autoglm_lab.pool import PoolConfig
from autoglm_lab.tuning import Workload, tune
from autoglm_lab.workload import ServingConfig

from .conftest import TINY_POOL, TINY_WORKLOAD

FIT = {"fit": ["best"]}


class _NeverRuns(cf.Executor):
    def submit(self, *args, **kwargs):  # a bad argument must fail before this is reached
        raise AssertionError("a trial was submitted")


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"pool_config": {"page_size": "64KiB"}}, TypeError,
     "pool_config={'page_size': '64KiB'} is not allowed: use None or a PoolConfig, not dict"),
    ({"serving_config": {"kv_layout": "paged"}}, TypeError,
     "serving_config={'kv_layout': 'paged'} is not allowed: use None or a ServingConfig, not dict"),
    ({"pool_config": ServingConfig()}, TypeError, "not ServingConfig"),
    ({"max_workers": 0}, ValueError, "max_workers=0 is not allowed: use None or an integer from 1 to 1024"),
    ({"max_workers": 2.0}, ValueError, "max_workers=2.0"),
    ({"n_trials": 10**9}, ValueError, "n_trials=1000000000 is not allowed"),
    ({"n_trials": True}, ValueError, "n_trials=True"),
    ({"seed": -1}, ValueError, "seed=-1"),
    ({"progress": "yes"}, TypeError, "progress='yes' is not allowed: use True or False"),
    ({"executor": "threads"}, TypeError, "executor='threads' is not allowed"),
    ({"workload": {"steps": 3}}, TypeError, "workload={'steps': 3} is not allowed: use a Workload, not dict"),
    ({"method": "sobol"}, ValueError, "method='sobol'"),
])
def test_bad_tune_arguments_name_themselves(kwargs, error, words) -> None:
    args = {"workload": TINY_WORKLOAD, "executor": _NeverRuns(), "progress": False, "pool_config": TINY_POOL,
            **kwargs}
    with pytest.raises(error) as info:
        tune(FIT, **args)
    assert words in str(info.value)


def test_bad_spaces() -> None:
    with pytest.raises(TypeError, match=r"space must be a non-empty mapping .* not list"):
        tune([("fit", "best")], TINY_WORKLOAD, executor=_NeverRuns(), progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown parameter 3"):
        tune({3: [1]}, TINY_WORKLOAD, executor=_NeverRuns(), progress=False)  # type: ignore[dict-item]
    huge = {"seed": list(range(1000)), "max_batch_size": list(range(1, 1001))}
    with pytest.raises(ValueError, match="the grid has 1,000,000 points, more than the 100,000"):
        tune(huge, TINY_WORKLOAD, executor=_NeverRuns(), progress=False)


def test_configs_are_accepted() -> None:
    res = tune(FIT, Workload(num_sessions=2, steps=50), executor="serial", progress=False,
               pool_config=PoolConfig(page_size="16KiB", memory_pool_initial_size="1MiB", max_size=None, device="cpu"),
               serving_config=ServingConfig(compute="none"))
    assert len(res.results) == 1


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"max_tokens": 0}, ValueError, "max_tokens=0 is not allowed"),
    ({"rate_per_s": math.inf}, ValueError, "rate_per_s=inf"),
    ({"turns_mean": math.nan}, ValueError, "turns_mean=nan"),
    ({"prompt_median": -3}, ValueError, "prompt_median=-3"),
    ({"think_time_s": "2"}, TypeError, "think_time_s='2'"),
    ({"num_sessions": 10**9}, ValueError, "num_sessions=1000000000"),
])
def test_synthetic_workload_fields_are_checked_on_creation(kwargs, error, words) -> None:
    with pytest.raises(error) as info:
        Workload(**kwargs)
    assert words in str(info.value)


def test_an_empty_workload_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_sessions=0 gives no requests"):
        tune(FIT, Workload(num_sessions=0), executor=_NeverRuns(), progress=False, pool_config=TINY_POOL)
    empty = tmp_path / "empty.csv"
    empty.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n")
    with pytest.raises(ValueError, match=r"empty\.csv' gives no requests"):
        tune(FIT, Workload(trace=str(empty)), executor=_NeverRuns(), progress=False, pool_config=TINY_POOL)
