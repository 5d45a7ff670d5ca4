from __future__ import annotations

import itertools
import pickle

import pandas as pd
import pytest

from autoglm_lab.pool import PagedPool, PoolConfig
from autoglm_lab.tuning import METRICS, WALL_COLUMNS, Trial, Workload, run_trial, tune
from autoglm_lab.tuning._space import grid_points, normalise_space, random_points
from autoglm_lab.workload import ServingConfig

from .conftest import SPACE, TINY_POOL, TINY_WORKLOAD


def test_grid_covers_the_space_once_in_product_order(serial_result):
    df = serial_result.results
    assert list(df["trial"]) == list(range(8))
    got = list(df[list(SPACE)].itertuples(index=False, name=None))
    assert got == list(itertools.product(*SPACE.values()))
    assert set(METRICS) <= set(df.columns)
    assert serial_result.params == tuple(SPACE)


def test_results_are_plausible(serial_result):
    df = serial_result.results
    assert (df["requests_done"] + df["requests_rejected"] == 12).all()  # every request was handled
    assert (df["requests_done"] >= 11).all()
    assert df["mean_utilisation"].between(0, 1).all()
    assert (df["ttft_p99_s"] >= df["ttft_p50_s"]).all()
    assert (df.loc[df["compaction"] == "off", "compaction_bytes_moved"] == 0).all()
    # A smaller pool cannot be less utilised on the same requests with everything else equal.
    small = df[df["memory_pool_initial_size"] == "512KiB"].reset_index(drop=True)
    large = df[df["memory_pool_initial_size"] == "1MiB"].reset_index(drop=True)
    assert (small["peak_utilisation"] >= large["peak_utilisation"]).all()


def test_grid_refuses_an_n_trials_below_its_size():
    with pytest.raises(ValueError, match="grid has 8 points but n_trials=3"):
        tune(SPACE, TINY_WORKLOAD, n_trials=3, executor="serial", progress=False, pool_config=TINY_POOL)


def test_random_points_are_reproducible_distinct_and_in_the_space():
    space = normalise_space({"page_size": ["16KiB", "32KiB", "64KiB"], "fit": ["first", "best"],
                             "fragmentation_threshold_factor": [0.1, 0.3, 0.5, 0.7]})
    a, b = random_points(space, 10, seed=7), random_points(space, 10, seed=7)
    assert a == b
    assert random_points(space, 10, seed=8) != a
    assert len(set(a)) == 10
    assert set(a) <= set(grid_points(space))
    assert sorted(random_points(space, 100, seed=1)) == sorted(grid_points(space))  # capped at the grid


def test_random_tune_is_reproducible():
    kw = dict(method="random", n_trials=3, seed=11, executor="serial", progress=False, pool_config=TINY_POOL)
    a, b = tune(SPACE, TINY_WORKLOAD, **kw), tune(SPACE, TINY_WORKLOAD, **kw)
    pd.testing.assert_frame_equal(a.comparable(), b.comparable())
    assert len(a.results) == 3 and list(a.results["trial"]) == [0, 1, 2]
    assert not set(WALL_COLUMNS) & set(a.comparable().columns)


def test_best_config_rebuilds_the_best_trial(serial_result):
    pool_cfg, serving_cfg = serial_result.best_config("max:mean_utilisation")
    row = serial_result.best("max:mean_utilisation")
    assert row["mean_utilisation"] == serial_result.results["mean_utilisation"].max()
    assert isinstance(pool_cfg, PoolConfig) and isinstance(serving_cfg, ServingConfig)
    assert pool_cfg == TINY_POOL.replace(page_size=row["page_size"], compaction=row["compaction"],
                                         memory_pool_initial_size=row["memory_pool_initial_size"], max_size=None,
                                         segment_size=None)
    assert serving_cfg.compute == "none"
    again = run_trial(Trial(int(row["trial"]), tuple((p, row[p]) for p in SPACE), pool_cfg, serving_cfg),
                      TINY_WORKLOAD)
    for name in METRICS:
        if name not in WALL_COLUMNS:
            assert again[name] == pytest.approx(row[name], nan_ok=True), name
    PagedPool(pool_cfg)  # usable as is


def test_fixed_size_base_pool_stays_fixed_when_the_initial_size_varies(serial_result):
    for trial in (0, 7):
        pool_cfg, _ = serial_result.best_config(lambda df, t=trial: (df["trial"] - t).abs())
        assert pool_cfg.max_size == pool_cfg.memory_pool_initial_size


@pytest.mark.parametrize(("space", "message"), [
    ({"page_sise": ["16KiB"]}, "unknown parameter 'page_sise'"),
    ({"fit": []}, "is empty"),
    ({"compaction": ["off", "sometimes"]}, r"trial 1 \{'compaction': 'sometimes'\} is not a valid configuration"),
    ({"page_size": ["2MiB"]}, "not a valid configuration"),  # larger than the 1 MiB pool
    ({}, "non-empty mapping"),
])
def test_bad_spaces_fail_before_any_trial(space, message):
    with pytest.raises(ValueError, match=message):
        tune(space, TINY_WORKLOAD, executor="serial", progress=False, pool_config=TINY_POOL)


def test_bad_arguments():
    with pytest.raises(ValueError, match="method='sobol'"):
        tune(SPACE, TINY_WORKLOAD, method="sobol", progress=False)
    with pytest.raises(ValueError, match="no known direction"):
        tune(SPACE, TINY_WORKLOAD, objective="page_size", progress=False)
    with pytest.raises(TypeError, match="executor must be"):
        tune({"fit": ["best"]}, TINY_WORKLOAD, executor=object(), progress=False, pool_config=TINY_POOL)
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        tune({"fit": ["best"]}, Workload(trace="nope.csv"), executor="serial", progress=False)
    with pytest.raises(ValueError, match="steps=0"):
        Workload(steps=0)


def test_workload_pickles_and_rebuilds_the_same_requests():
    w = pickle.loads(pickle.dumps(TINY_WORKLOAD))
    assert w == TINY_WORKLOAD
    assert w.requests() == TINY_WORKLOAD.requests()
    assert len(w.requests()) == 12
