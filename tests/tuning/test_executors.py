from __future__ import annotations

import concurrent.futures as cf

import dask
import pandas as pd
import pytest

from autoglm_lab.tuning import tune

from .conftest import SPACE, TINY_POOL, TINY_WORKLOAD


def test_default_process_pool_gives_identical_results(serial_result):
    res = tune(SPACE, TINY_WORKLOAD, progress=False, pool_config=TINY_POOL)  # executor=None: 2 processes
    pd.testing.assert_frame_equal(res.comparable(), serial_result.comparable())


def test_a_users_executor_is_used_and_left_running(serial_result):
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        res = tune(SPACE, TINY_WORKLOAD, executor=ex, progress=False, pool_config=TINY_POOL)
        assert ex.submit(sum, [1, 2]).result() == 3  # tune did not shut it down
    pd.testing.assert_frame_equal(res.comparable(), serial_result.comparable())


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_dask_local_cluster_gives_identical_results(serial_result, processes):
    distributed = pytest.importorskip("distributed")
    # Workers fork from the forkserver the default executor already warmed (torch imported once).
    config = {"distributed.worker.multiprocessing-method": "forkserver"}
    with dask.config.set(config), distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None, silence_logs=40,
    ) as cluster, distributed.Client(cluster) as client:
        res = tune(SPACE, TINY_WORKLOAD, executor=client.get_executor(), progress=False, pool_config=TINY_POOL)
        ran_on = client.run(lambda: True)
    assert len(ran_on) == 2
    pd.testing.assert_frame_equal(res.comparable(), serial_result.comparable())
