from __future__ import annotations

import pytest

from autoglm_lab.pool import PoolConfig
from autoglm_lab.tuning import Workload, tune

# Tiny: a 1 MiB pool of 16 KiB pages and a dozen short requests, so each trial takes tens of ms.
TINY_POOL = PoolConfig(page_size="16KiB", memory_pool_initial_size="1MiB", max_size=None, device="cpu")
TINY_WORKLOAD = Workload(num_sessions=12, rate_per_s=400.0, prompt_median=96, output_median=16, turns_mean=1.0,
                         steps=400, seed=3)
SPACE = {
    "memory_pool_initial_size": ["512KiB", "1MiB"],
    "page_size": ["16KiB", "64KiB"],
    "compaction": ["off", "eager"],
}


@pytest.fixture(scope="session")
def serial_result():
    """The reference sweep, run in this process; other executors must reproduce it exactly."""
    return tune(SPACE, TINY_WORKLOAD, executor="serial", progress=False, pool_config=TINY_POOL)
