"""Bad inputs to the pool's and compactor's public API: each a typed error naming the bad value and
what is allowed, with the pool's stats, snapshot, invariants and every live byte unchanged."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

import autoglm_lab as al

from .world import Case, World, assert_refused

NAN, INF = float("nan"), float("inf")


def _config_cases() -> list[Case]:
    bad: list[tuple[str, object, str]] = [
        ("page_size", "abc", "'abc'"), ("page_size", -4096, "-4096"), ("page_size", 0, "0"),
        ("page_size", 3000, "3000"), ("page_size", 1.5, "1.5"), ("page_size", True, "True"),
        ("page_size", None, "None"), ("page_size", "64QiB", "64QiB"), ("page_size", "9" * 400 + "KiB", "999"),
        ("page_size", 2**70, str(2**70)), ("page_size", "2GiB", "2GiB"), ("page_size", "32B", "32B"),
        ("memory_pool_initial_size", 0, "0"), ("memory_pool_initial_size", "1000B", "1000B"),
        ("memory_pool_initial_size", -65536, "-65536"), ("memory_pool_initial_size", [1], "[1]"),
        ("max_size", "1KiB", "1KiB"), ("max_size", "lots", "lots"), ("max_size", 2.5, "2.5"),
        ("segment_size", "100B", "100B"), ("segment_size", 0, "0"),
        ("device", "gpu", "gpu"), ("device", "cpu\n", "cpu"), ("device", 0, "0"), ("device", "cuda:-1", "cuda:-1"),
        ("device", "cuda:99999999999999999999", "99999999999999999999"),
        ("fit", "worst", "worst"), ("fit", None, "None"), ("coalesce", "sometimes", "sometimes"),
        ("compaction", "maybe", "maybe"), ("compaction", True, "True"),
        ("compaction_strategy", "magic", "magic"), ("compaction_strategy", "targeted", "targeted"),
        ("fragmentation_threshold_factor", NAN, "nan"), ("fragmentation_threshold_factor", -0.1, "-0.1"),
        ("fragmentation_threshold_factor", 1.5, "1.5"), ("fragmentation_threshold_factor", "0.3", "0.3"),
        ("free_ratio_trigger", INF, "inf"), ("free_ratio_trigger", True, "True"),
        ("max_consecutive_failures", 0, "0"), ("max_consecutive_failures", 2.0, "2.0"),
        ("max_consecutive_failures", 10**9, str(10**9)),
        ("defrag_interval_s", 0, "0"), ("defrag_interval_s", INF, "inf"), ("defrag_interval_s", NAN, "nan"),
        ("defrag_interval_s", "30", "30"),
        ("compaction_budget_bytes", "1B", "1B"), ("compaction_budget_bytes", -1, "-1"),
        ("event_capacity", 0, "0"), ("event_capacity", 10**12, str(10**12)), ("event_capacity", "4096", "4096"),
    ]
    cases = [Case(f"PoolConfig({field}={value!r:.30})", (lambda w, f=field, v=value: al.PoolConfig(**{f: v})),
                  (ValueError, TypeError), needle) for field, value, needle in bad]
    cases += [
        Case("PoolConfig(unknown field)", lambda w: al.PoolConfig(pages=4), TypeError, "pages"),
        Case("PoolConfig.replace(unknown)", lambda w: w.pool.config.replace(colour="red"), ValueError, "colour"),
        Case("PagedPool(config='big')", lambda w: al.PagedPool("big"), TypeError, "str"),
        Case("PagedPool(config={...})", lambda w: al.PagedPool({"page_size": 4096}), TypeError, "dict"),
        Case("PagedPool(override unknown)", lambda w: al.PagedPool(bogus=1), ValueError, "bogus"),
        Case("PagedPool(page_size override)", lambda w: al.PagedPool(page_size="7KiB"), ValueError, "7KiB"),
    ]
    return cases


def _alloc_cases() -> list[Case]:
    shapes: list[tuple[object, str]] = [
        (-1, "-1"), ((2, -1), "-1"), (1.5, "1.5"), ("3", "'3'"), (None, "None"), ((True, 2), "True"),
        ((2.0, 2), "2.0"), (object(), "object"), ({"a": 1}, "{'a': 1}"), ((0, 2**70), "1180591620717411303424"),
        ((1, [2]), "[2]"),
    ]
    cases = [Case(f"alloc(shape={s!r:.30})", (lambda w, s=s: w.pool.alloc(s, torch.float32)),
                  (ValueError, TypeError), needle) for s, needle in shapes]
    dtypes: list[tuple[object, str]] = [("float32", "float32"), (None, "None"), (np.float32, "float32"),
                                       (4, "4"), (torch.Tensor, "Tensor")]
    cases += [Case(f"alloc(dtype={d!r:.30})", (lambda w, d=d: w.pool.alloc((4,), d)), TypeError, needle)
              for d, needle in dtypes]
    cases += [Case(f"alloc(tag={t!r})", (lambda w, t=t: w.pool.alloc((4,), torch.float32, tag=t)), TypeError, needle)
              for t, needle in [(3, "3"), (b"kv", "b'kv'"), (["kv"], "['kv']")]]
    nbytes: list[tuple[object, str]] = [(-1, "-1"), (1.5, "1.5"), ("1", "'1'"), (True, "True"), (None, "None"),
                                       (NAN, "nan"), (np.float64(3.0), "3.0")]
    cases += [Case(f"alloc_bytes({n!r})", (lambda w, n=n: w.pool.alloc_bytes(n)), (ValueError, TypeError), needle)
              for n, needle in nbytes]
    cases.append(Case("alloc_bytes(tag=1)", lambda w: w.pool.alloc_bytes(8, tag=1), TypeError, "1"))
    return cases


def _handle_cases() -> list[Case]:
    def freed(w: World) -> al.Block:
        blk = w.other.alloc_bytes(8)
        w.other.free(blk)
        return blk

    return [
        Case("free(None)", lambda w: w.pool.free(None), TypeError, "NoneType"),
        Case("free(123)", lambda w: w.pool.free(123), TypeError, "int"),
        Case("free(tensor)", lambda w: w.pool.free(w.blocks[0].tensor), TypeError, "Tensor"),
        Case("free(other pool's block)", lambda w: w.pool.free(w.other.alloc_bytes(8)), al.InvalidBlockError,
             "another pool"),
        Case("free(freed block)", lambda w: w.other.free(freed(w)), al.InvalidBlockError, "already freed"),
        Case("free(pinned block)", lambda w: _free_pinned(w), al.PinnedBlockError, "pinned"),
        Case("pin(None)", lambda w: w.pool.pin(None).__enter__(), TypeError, "NoneType"),
        Case("pin(other pool's block)", lambda w: w.pool.pin(w.other.alloc_bytes(8)).__enter__(),
             al.InvalidBlockError, "another pool"),
        Case("block.num_pages = 3", lambda w: setattr(w.blocks[1], "num_pages", 3), AttributeError, "num_pages"),
        Case("block.id = 7", lambda w: setattr(w.blocks[1], "id", 7), AttributeError, "id"),
        Case("block.nbytes = 1", lambda w: setattr(w.blocks[1], "nbytes", 1), AttributeError, "nbytes"),
        Case("block.shape = (1,)", lambda w: setattr(w.blocks[1], "shape", (1,)), AttributeError, "shape"),
        Case("block.dtype = int8", lambda w: setattr(w.blocks[1], "dtype", torch.int8), AttributeError, "dtype"),
        Case("block.tag = 'x'", lambda w: setattr(w.blocks[1], "tag", "x"), AttributeError, "tag"),
        Case("freed block.tensor", lambda w: freed(w).tensor, al.InvalidBlockError, "freed"),
        Case("freed block.first_page", lambda w: freed(w).first_page, al.InvalidBlockError, "freed"),
        Case("copy_bytes(nbytes=-1)", lambda w: w.pool.copy_bytes(w.blocks[0], w.blocks[1], -1), ValueError, "-1"),
        Case("copy_bytes(nbytes=10**9)", lambda w: w.pool.copy_bytes(w.blocks[0], w.blocks[1], 10**9), ValueError,
             "1000000000"),
        Case("copy_bytes(nbytes=1.5)", lambda w: w.pool.copy_bytes(w.blocks[0], w.blocks[1], 1.5), ValueError, "1.5"),
        Case("copy_bytes(dst=None)", lambda w: w.pool.copy_bytes(None, w.blocks[1]), TypeError, "NoneType"),
    ]


def _free_pinned(w: World) -> None:
    with w.pool.pin(w.blocks[2]):
        w.pool.free(w.blocks[2])


def _live_cases() -> list[Case]:
    configure: list[tuple[dict, str]] = [
        ({"page_size": "4KiB"}, "page_size"), ({"device": "cpu"}, "device"), ({"colour": 1}, "colour"),
        ({"fit": "worst"}, "worst"), ({"max_size": "4KiB"}, "4KiB"), ({"compaction": "always"}, "always"),
        ({"event_capacity": -5}, "-5"), ({"defrag_interval_s": NAN}, "nan"),
    ]
    cases = [Case(f"configure({c})", (lambda w, c=c: w.pool.configure(**c)), ValueError, needle)
             for c, needle in configure]
    compact: list[tuple[Callable[[World], object], type[Exception] | tuple, str]] = [
        (lambda w: w.pool.compact("magic"), ValueError, "magic"),
        (lambda w: w.pool.compact(None), (ValueError, TypeError), "None"),
        (lambda w: w.pool.compact(budget_bytes=-1), ValueError, "-1"),
        (lambda w: w.pool.compact(budget_bytes="lots"), ValueError, "lots"),
        (lambda w: w.pool.compact(budget_bytes=NAN), ValueError, "nan"),
        (lambda w: w.pool.compact(budget_bytes=True), ValueError, "True"),
        (lambda w: w.pool.compact("targeted"), ValueError, "num_pages"),
        (lambda w: w.pool.compact("targeted", num_pages=-2), ValueError, "-2"),
        (lambda w: w.pool.compact("targeted", num_pages=1.5), ValueError, "1.5"),
        (lambda w: w.pool.compact("two_finger", num_pages=2), ValueError, "num_pages"),
    ]
    cases += [Case(f"compact#{i}", fn, exc, needle) for i, (fn, exc, needle) in enumerate(compact)]
    cases += [Case(f"tick({now!r})", (lambda w, now=now: w.pool.tick(now)), ValueError, needle)
              for now, needle in [("soon", "soon"), (NAN, "nan"), (INF, "inf"), ([1], "[1]")]]
    cases.append(Case("parse_size('1e3KiB')", lambda w: al.parse_size("1e3KiB"), ValueError, "1e3KiB"))
    cases.append(Case("parse_size(None)", lambda w: al.parse_size(None), ValueError, "None"))
    return cases


CASES = _config_cases() + _alloc_cases() + _handle_cases() + _live_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_and_the_pool_is_unchanged(case: Case, world: World) -> None:
    assert_refused(case, world)


def test_the_pool_table_covers_every_area() -> None:
    assert len(CASES) >= 100
    assert len({c.name for c in CASES}) == len(CASES)
