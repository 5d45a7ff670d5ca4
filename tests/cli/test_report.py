from __future__ import annotations

import base64
import re
import struct
import zlib

import numpy as np
import pytest

from autoglm_lab.pool import PagedPool, PageState, PoolConfig
from autoglm_lab.report import PAGE_COLOURS, build_report, encode_png, heat_column, page_map_rgb, write_report


def _decode_png(data: bytes) -> np.ndarray:
    """A minimal reader for what `encode_png` writes (8-bit RGB, filter 0), checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    assert list(chunks)[-1] == b"IEND"
    w, h, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


@pytest.fixture
def pool() -> PagedPool:
    p = PagedPool(PoolConfig(page_size="4KiB", memory_pool_initial_size="256KiB", max_size=None, device="cpu"))
    blocks = [p.alloc_bytes(4096 * 3, tag=f"b{i}") for i in range(10)]   # pages 0..29 used
    p.free(blocks[1])                                                     # pages 3..5 free
    p.alloc_bytes(100)                                                    # a tail page: best fit into 3
    return p


def test_png_round_trip():
    img = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_decode_png(encode_png(img)), img)
    with pytest.raises(ValueError, match="height, width, 3"):
        encode_png(np.zeros((4, 4), np.uint8))


def test_page_map_pixels_follow_page_states(pool):
    snap = pool.snapshot()
    img = page_map_rgb(snap, columns=16, min_width_px=16)   # one pixel per page, 64 pages -> 4 rows
    assert img.shape == (4, 16, 3)
    flat = img.reshape(-1, 3)
    np.testing.assert_array_equal(flat, PAGE_COLOURS[snap.page_state])
    assert (flat[3] == PAGE_COLOURS[PageState.TAIL]).all() and (flat[4] == PAGE_COLOURS[PageState.FREE]).all()
    big = page_map_rgb(snap, columns=16, min_width_px=64)     # 4x4 pixel cells
    assert big.shape == (16, 64, 3) and (big[:4, 12:16] == PAGE_COLOURS[PageState.TAIL]).all()


def test_heat_column(pool):
    col = heat_column(pool.snapshot(), buckets=4)           # 16 pages per bucket
    np.testing.assert_allclose(col, [2 / 16, 2 / 16, 1.0, 1.0])  # pages 3, 4 and 30, 31 free


def test_report_is_standalone_and_has_every_part(pool, tmp_path):
    snaps = [pool.snapshot()]
    pool.alloc_bytes(4096 * 20)
    snaps.append(pool.snapshot())
    path = write_report(tmp_path / "sub" / "r.html", snaps, summary={"requests_done": 7, "ttft_p99_s": 0.25},
                        config={"pool": pool.config.to_dict()}, times=[0.0, 1.5], title="unit <report>")
    text = path.read_text()
    assert "<title>unit &lt;report&gt;</title>" in text
    for section in ('id="stats"', 'id="pagemap"', 'id="config"', "Fragmentation heatmap", "requests_done",
                    "external_fragmentation", "262,144 (256KiB)"):
        assert section in text, section
    assert not re.search(r"<script[^>]+src=", text)                  # nothing fetched: works offline
    assert text.count("plotly.js v") >= 1 and len(text) > 1_000_000  # plotly.js inline, once
    png = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert png is not None
    assert _decode_png(base64.b64decode(png.group(1))).shape[1] >= 512


def test_report_refuses_bad_input(pool):
    with pytest.raises(ValueError, match="at least one PoolSnapshot"):
        build_report([])
    with pytest.raises(ValueError, match="times has 2 values for 1 snapshots"):
        build_report([pool.snapshot()], times=[0.0, 1.0])


def test_every_page_state_has_a_colour() -> None:
    from autoglm_lab.report import PAGE_COLOURS

    assert len(PAGE_COLOURS) == len(PageState)
