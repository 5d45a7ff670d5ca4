"""Frames for a known pool state, byte for byte, and the delta / full choice."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import autoglm_lab as al
from autoglm_lab.widget import decode_page_frame, encode_delta, encode_full, page_checksum, palette_indices
from autoglm_lab.widget._codec import HEADER_BYTES, RUN_GAP, encode_heat, encode_trace
from autoglm_lab.widget._heatmap import bucket_column
from autoglm_lab.widget._palette import AGE_BASE, AGE_STEPS, TAG_BASE

# the same bytes js/src/codec.test.js decodes: 6 pages, frame 1, seq 7
PY_FULL = bytes([0x50, 0x47, 0x46, 0x31, 0, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                 0, 0, 0, 0, 0, 0, 0x1C, 0x40, 1, 1, 2, 0, 3, 0])


def six_page_pool() -> tuple[al.PagedPool, list[al.Block]]:
    pool = al.PagedPool(al.PoolConfig(page_size="4KiB", memory_pool_initial_size="24KiB", max_size="24KiB",
                                      device="cpu", fit="first"))
    blocks = [pool.alloc_bytes(8192, tag="kv"), pool.alloc_bytes(100), pool.alloc_bytes(4096, tag="w"),
              pool.alloc_bytes(4096, tag="kv")]
    pool.free(blocks[2])
    return pool, blocks


def test_full_frame_of_a_known_state_is_exact() -> None:
    pool, blocks = six_page_pool()
    with pool.pin(blocks[3]):
        snap = pool.snapshot()
    values = palette_indices(snap, "state")
    assert values.tolist() == [1, 1, 2, 0, 3, 0]  # used used tail free pinned free
    frame = encode_full(values, frame_id=1, seq=7)
    assert frame.data == PY_FULL
    assert frame.nbytes == HEADER_BYTES + 6  # one byte per page
    again = encode_full(values, frame_id=1, seq=snap.seq)
    assert struct.unpack_from("<d", again.data, 24)[0] == snap.seq
    fields, decoded = decode_page_frame(frame.data)
    assert fields["num_pages"] == 6 and fields["kind"] == 0
    assert decoded.tolist() == values.tolist()


def test_tag_and_age_colours() -> None:
    pool, _ = six_page_pool()
    snap = pool.snapshot()
    tags = palette_indices(snap, "tag")
    kv = snap.tags.index("kv")
    assert snap.tags == ("kv", None)  # "w" left with its only block: its id is free for the next tag
    assert tags.tolist() == [TAG_BASE + kv, TAG_BASE + kv, 1, 0, TAG_BASE + kv, 0]  # untagged = "used" colour
    ages = palette_indices(snap, "age", now_s=snap.time_s + 10.0)
    assert ages[3] == 0 and ages[5] == 0
    assert ages[0] == ages[1] == AGE_BASE + AGE_STEPS - 1  # the oldest block
    assert AGE_BASE <= ages[4] <= ages[0]
    with pytest.raises(ValueError, match="colour mode"):
        palette_indices(snap, "rainbow")


def test_delta_sends_only_changed_runs_and_applies_exactly() -> None:
    prev = np.zeros(1000, dtype=np.uint8)
    cur = prev.copy()
    cur[10:13] = 1
    cur[13 + RUN_GAP] = 2          # within the gap: bridged into the same run
    cur[500] = 3
    frame = encode_delta(prev, cur, frame_id=2, base_id=1, seq=9)
    assert frame is not None and frame.kind == 1
    assert frame.n_runs == 2
    starts = struct.unpack_from("<2I", frame.data, HEADER_BYTES)
    lengths = struct.unpack_from("<2I", frame.data, HEADER_BYTES + 8)
    assert starts == (10, 500) and lengths == (RUN_GAP + 4, 1)
    assert frame.nbytes == HEADER_BYTES + 16 + RUN_GAP + 5
    fields, applied = decode_page_frame(frame.data, prev)
    assert fields["base_id"] == 1
    assert np.array_equal(applied, cur)


def test_delta_gives_way_to_a_full_frame_when_much_changed() -> None:
    prev = np.zeros(100, dtype=np.uint8)
    cur = np.ones(100, dtype=np.uint8)
    assert encode_delta(prev, cur, frame_id=2, base_id=1, seq=1) is None
    empty = encode_delta(prev, prev.copy(), frame_id=3, base_id=2, seq=2)
    assert empty is not None and empty.n_runs == 0 and empty.nbytes == HEADER_BYTES
    assert encode_delta(prev, np.zeros(99, np.uint8), frame_id=4, base_id=3, seq=3) is None


def test_checksum_matches_the_front_end_definition() -> None:
    assert page_checksum(np.array([1, 1, 2, 0, 3, 0], np.uint8)) == 1 + 2 + 6 + 15
    big = np.full(70000, 255, np.uint8)
    expected = sum(255 * (i % 65521 + 1) for i in range(70000)) % 2**32
    assert page_checksum(big) == expected


def test_heat_column_and_frames() -> None:
    pool, _ = six_page_pool()
    snap = pool.snapshot()
    assert bucket_column(snap, 3, "free").tolist() == [0, 128, 128]  # pages (0,1) (2,3) (4,5)
    assert bucket_column(snap, 6, "holes").tolist() == [0, 0, 0, 255, 0, 255]
    data = encode_heat(1, 0, np.array([1.5]), np.array([1], np.uint8), np.array([[0, 128, 128]], np.uint8))
    assert data[:4] == b"HMP1" and data[4] == 1 and struct.unpack_from("<HI", data, 6) == (3, 1)
    assert struct.unpack_from("<d", data, 16)[0] == 1.5 and data[24] == 1 and list(data[25:]) == [0, 128, 128]


def test_trace_frame_layout() -> None:
    nan = np.nan
    data = encode_trace(np.array([0.0, 1.0, 2.0]), np.array([1e-3, 2e-3, nan]), np.array([nan, 1e-6, nan]),
                        np.array([nan, nan, 5e-4]), np.array([2.0]), np.array([5], np.uint8))
    assert data[:4] == b"LTR1" and struct.unpack_from("<II", data, 4) == (3, 1)
    body = 16 + 8 * 3 + 12 * 3
    pad = (8 - body % 8) % 8
    assert len(data) == body + pad + 9
    assert struct.unpack_from("<d", data, body + pad)[0] == 2.0 and data[-1] == 5
