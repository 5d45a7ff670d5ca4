"""SnapshotHistory: frames come back exactly as recorded, the memory bound holds, files run no code."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

import autoglm_lab as al
from autoglm_lab.history import SnapshotHistory
from autoglm_lab.pool import PoolSnapshot

_COLUMNS = ("block_id", "block_first_page", "block_num_pages", "block_nbytes", "block_tag", "block_pinned",
            "block_created_s", "block_cached", "segment_first_page", "segment_num_pages", "page_state")


def _pool(pages: int = 256) -> al.PagedPool:
    return al.PagedPool(al.PoolConfig(page_size=4096, memory_pool_initial_size=pages * 4096,
                                      max_size=2 * pages * 4096, device="cpu"))


def _churn(pool: al.PagedPool, steps: int, seed: int = 0) -> list[PoolSnapshot]:
    """A seeded stream of allocs, frees, tags, pins, cached marks, growth and compactions; a snapshot a step."""
    rng = np.random.default_rng(seed)
    live: list[al.Block] = []
    snaps = []
    for step in range(steps):
        for _ in range(int(rng.integers(1, 4))):
            try:
                live.append(pool.alloc_bytes(int(rng.integers(1, 9 * 4096)), tag=f"req{rng.integers(0, 5)}"))
            except al.PoolExhausted:
                break
        while live and rng.random() < 0.5:
            blk = live.pop(int(rng.integers(0, len(live))))
            if not blk.pinned:
                pool.free(blk)
        if live and rng.random() < 0.2:
            pool.set_cached(live[-1], not live[-1].cached)
        if step % 25 == 24:
            pool.compact("two_finger")
        snaps.append(pool.snapshot())
    return snaps


def _same(a: PoolSnapshot, b: PoolSnapshot) -> None:
    for name in _COLUMNS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.seq, a.num_pages, a.page_size, a.device, a.tags, a.stats, a.events_total) == \
        (b.seq, b.num_pages, b.page_size, b.device, b.tags, b.stats, b.events_total)
    n = min(len(a.events.time_s), len(b.events.time_s))
    assert n > 0 and np.array_equal(a.events.time_s[-n:], b.events.time_s[-n:])
    assert np.array_equal(a.events.kind[-n:], b.events.kind[-n:])


def test_every_frame_comes_back_as_recorded_in_any_order() -> None:
    pool = _pool()
    snaps = _churn(pool, 150)
    hist = SnapshotHistory(keyframe_every=16)
    for i, s in enumerate(snaps):
        hist.record(s, time_s=float(i), summary={"step": i, "ratio": i / 7} if i % 3 == 0 else None)
    assert len(hist) == 150 and hist.dropped == 0
    order = list(range(150)) + list(range(149, -1, -7)) + [5, 140, 3, 77]
    for i in order:
        _same(hist.snapshot(i), snaps[i])
        assert hist.summary(i) == {"step": i - i % 3, "ratio": (i - i % 3) / 7}
    assert hist.index_at(41.5) == 41 and hist.index_at(-3) == 0 and hist.index_at(1e9) == 149


def test_the_bound_holds_and_drops_whole_keyframe_groups_from_the_start() -> None:
    pool = _pool()
    snaps = _churn(pool, 400, seed=3)
    hist = SnapshotHistory(max_bytes=60_000, keyframe_every=20)
    steps_seen = 0
    for i, s in enumerate(snaps):
        rows = {"time_s": np.array([i - 0.5, float(i)]), "x": np.array([2 * i, 2 * i + 1])}
        steps_seen += 2
        hist.record(s, time_s=float(i), steps=rows)
        assert hist.nbytes <= 60_000
    assert hist.dropped > 0 and hist.dropped % 20 == 0 and len(hist) + hist.dropped == 400
    first = hist.dropped
    _same(hist.snapshot(-1), snaps[-1])
    old = hist.snapshot(0)  # the oldest frame kept: all but its events, which the bound may have cut
    assert np.array_equal(old.page_state, snaps[first].page_state) and old.stats == snaps[first].stats
    kept = hist.steps()
    assert kept["time_s"][0] >= first - 0.5 and kept["x"][-1] == 2 * 399 + 1  # the step log was cut with the frames
    assert np.array_equal(hist.steps(10)["time_s"], kept["time_s"][kept["time_s"] <= first + 10])


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    pool = _pool()
    snaps = _churn(pool, 60, seed=5)
    hist = SnapshotHistory(max_bytes=30_000, keyframe_every=8)
    for i, s in enumerate(snaps):
        hist.record(s, time_s=0.25 * i, summary={"i": i, "nan": float("nan")},
                    steps={"time_s": np.array([0.25 * i]), "v": np.array([i], np.int64)})
    path = hist.save(tmp_path / "run.npz")
    back = SnapshotHistory.load(path)
    assert len(back) == len(hist) and back.dropped == hist.dropped > 0
    assert np.array_equal(back.times, hist.times) and np.array_equal(back.seqs, hist.seqs)
    for i in (0, len(hist) // 2, -1):
        _same(back.snapshot(i), hist.snapshot(i))
    assert back.summary(-1)["i"] == 59 and np.isnan(back.summary(-1)["nan"])
    assert np.array_equal(back.steps()["v"], hist.steps()["v"])


def _rewrite(src: Path, dst: Path, change: dict[str, np.ndarray | None]) -> Path:
    with np.load(src, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    for k, v in change.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    np.savez(dst, **data)
    return dst


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    hist = SnapshotHistory(keyframe_every=4)
    for i, s in enumerate(_churn(_pool(), 12, seed=1)):
        hist.record(s, time_s=float(i))
    return hist.save(tmp_path / "ok.npz")


@pytest.mark.parametrize(("change", "message"), [
    ({"frames": None}, "missing"),
    ({"header": np.frombuffer(b'{"format": "something/9"}', np.uint8)}, "format"),
    ({"header": np.frombuffer(b"not json", np.uint8)}, "not JSON"),
    ({"offsets": np.array([0, 5], np.int64)}, "frame index"),
    ({"times": np.arange(12.0)[::-1].copy()}, "frame index"),
    ({"events": np.zeros(7, np.uint8)}, "whole records"),
])
def test_a_malformed_file_is_refused_saying_what_is_wrong(saved: Path, tmp_path: Path,
                                                          change: dict[str, np.ndarray | None], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SnapshotHistory.load(_rewrite(saved, tmp_path / "bad.npz", change))


def test_a_corrupt_frame_is_named(saved: Path, tmp_path: Path) -> None:
    with np.load(saved, allow_pickle=False) as z:
        frames = z["frames"].copy()
        off = z["offsets"]
    frames[off[3]:off[4]] = 7  # frame 3's bytes, not zlib any more
    with pytest.raises(ValueError, match="frame 3 is corrupt"):
        SnapshotHistory.load(_rewrite(saved, tmp_path / "bad.npz", {"frames": frames}))


def test_a_file_that_needs_unpickling_never_runs_it(saved: Path, tmp_path: Path) -> None:
    # an object array in the file (what np.save writes with allow_pickle): a reduce that would run code
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, ("raise SystemExit('ran code')",))

    buf = io.BytesIO()
    np.save(buf, np.array([Boom()], dtype=object), allow_pickle=True)
    evil = tmp_path / "evil.npz"
    with zipfile.ZipFile(saved) as zin, zipfile.ZipFile(evil, "w") as zout:
        for item in zin.namelist():
            zout.writestr(item, buf.getvalue() if item == "header.npy" else zin.read(item))
    with pytest.raises(ValueError, match="not a history file"):
        SnapshotHistory.load(evil)
    (tmp_path / "p.npz").write_bytes(pickle.dumps({"frames": 1}))
    with pytest.raises(ValueError, match="not a history file"):
        SnapshotHistory.load(tmp_path / "p.npz")
    with pytest.raises(ValueError, match="does not exist"):
        SnapshotHistory.load(tmp_path / "missing.npz")


def test_bad_arguments_are_refused_and_change_nothing() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        SnapshotHistory(max_bytes=10)
    with pytest.raises(ValueError, match="keyframe_every"):
        SnapshotHistory(keyframe_every=0)
    pool = _pool()
    hist = SnapshotHistory()
    hist.record(pool.snapshot(), time_s=5.0)
    with pytest.raises(ValueError, match="before the last frame"):
        hist.record(pool.snapshot(), time_s=4.0)
    other = al.PagedPool(al.PoolConfig(page_size=8192, memory_pool_initial_size=8 * 8192, device="cpu"))
    with pytest.raises(ValueError, match="start a new history"):
        hist.record(other.snapshot(), time_s=6.0)
    assert len(hist) == 1
    with pytest.raises(IndexError, match="not in this history"):
        hist.snapshot(1)
    with pytest.raises(IndexError, match="empty"):
        SnapshotHistory().index_at(0.0)


def test_an_empty_history_saves_and_loads(tmp_path: Path) -> None:
    back = SnapshotHistory.load(SnapshotHistory().save(tmp_path / "empty.npz"))
    assert len(back) == 0 and back.page_size is None and back.steps() == {}
    back.record(_pool().snapshot(), time_s=1.0)  # and records like a new one
    assert len(back) == 1
