"""On a machine with a GPU: a real snapshot with an OOM, recorded now, and the allocator model's
agreement with the real allocator on it. (No GPU: these tests do not run; the shipped snapshot is
synthetic, see autoglm_lab/data/torch_snapshot_synthetic_oom.md.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autoglm_lab.torchsnap import analyze, load_torch_snapshot, record_oom_snapshot

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to record a snapshot")]


def test_a_real_fragmentation_oom_is_reproduced_by_the_model(tmp_path: Path) -> None:
    path = record_oom_snapshot(tmp_path / "real.pickle")
    assert path.stat().st_size < 2 << 20
    snap = load_torch_snapshot(path)
    res = analyze(snap)
    assert res.ooms, "the workload ends in an OOM"
    assert res.torch.num_anomalies == 0 and res.torch.same_address_ratio > 0.99
    assert res.torch.ends_in_snapshot_state
    for v in res.ooms:
        assert v.model_reproduces and v.cause in ("fragmentation", "segment rounding")
        assert any(o.served for _, o in v.paged)
