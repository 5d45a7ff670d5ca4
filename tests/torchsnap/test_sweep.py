"""What-if sweeps: the same table whichever executor runs the replays."""

from __future__ import annotations

import concurrent.futures as cf

import pandas as pd
import pytest

from autoglm_lab.torchsnap import load_torch_snapshot, shipped_snapshot_path, sweep
from autoglm_lab.tuning import default_executor

M = 1 << 20
CONFIGS = [{"page_size": "2MiB", "compaction": "off"},
           {"page_size": "2MiB", "compaction": "lazy", "max_consecutive_failures": 1}]


def test_sweep_rows_and_executors_agree() -> None:
    path = shipped_snapshot_path()
    serial = sweep(path, CONFIGS, capacities=[88 * M, 96 * M])
    assert list(serial.compaction) == ["off", "off", "lazy", "lazy"]
    assert list(serial.capacity) == [88 * M, 96 * M] * 2
    assert (serial.ooms == 2).all() and serial.loc[1, "failed_allocs"] == 0
    with cf.ThreadPoolExecutor(2) as ex:
        threads = sweep(load_torch_snapshot(path), CONFIGS, capacities=[88 * M, 96 * M], executor=ex)
    pd.testing.assert_frame_equal(serial, threads)
    with default_executor(1) as ex:
        procs = sweep(path, CONFIGS, capacities=[88 * M, 96 * M], executor=ex)
    pd.testing.assert_frame_equal(serial, procs)


def test_sweep_needs_a_file_for_other_processes() -> None:
    snap = load_torch_snapshot(shipped_snapshot_path().read_bytes())
    with cf.ThreadPoolExecutor(1) as ex, pytest.raises(ValueError, match="pass its path"):
        sweep(snap, CONFIGS, executor=ex)
    with pytest.raises(ValueError, match="executor"):
        sweep(snap, CONFIGS, executor="dask")
