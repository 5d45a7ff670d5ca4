"""The shipped snapshot: small, loadable, and exactly what its README says made it."""

from __future__ import annotations

import pickle

from autoglm_lab.torchsnap import analyze, load_torch_snapshot, shipped_snapshot_path, synthetic_snapshot


def test_the_shipped_snapshot_is_what_its_readme_says() -> None:
    path = shipped_snapshot_path()
    assert path.stat().st_size < 2 << 20
    assert path.with_suffix(".md").read_text(encoding="utf-8").count("ring_capacity=4000") == 1
    assert path.read_bytes() == pickle.dumps(synthetic_snapshot(3, ring_capacity=4000), protocol=4)


def test_the_shipped_snapshot_has_fragmentation_ooms_the_paged_pool_serves() -> None:
    res = analyze(load_torch_snapshot(shipped_snapshot_path()))
    assert len(res.ooms) == 2 and all(v.cause == "fragmentation" and v.model_reproduces for v in res.ooms)
    assert all(o.served for v in res.ooms for _, o in v.paged)
    assert res.torch.same_address == res.torch.allocs and res.torch.ends_in_snapshot_state
