from __future__ import annotations

import base64
import datetime as dt
import math
import re
import struct
import zlib

import numpy as np
import pytest

from autoglm_lab.pool import (
    OTHER_GROUP,
    POOL_STATS_LABELS,
    PagedPool,
    PageState,
    PoolConfig,
    check_stat_table,
    format_stat,
    group_stats,
)
from autoglm_lab.report import PAGE_COLOURS, build_report, encode_png, heat_column, page_map_rgb, write_report
from autoglm_lab.workload import SUMMARY_LABELS, Request, ServingConfig, ServingSim


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


# ------------------------------------------------------------------ statistics in words
def _small_run() -> tuple[PagedPool, ServingSim]:
    """A 2 MiB contiguous pool under a burst of requests: the queue, and the first token's wait, grow."""
    pool = PagedPool(PoolConfig(page_size="16KiB", memory_pool_initial_size="2MiB", max_size=None, device="cpu",
                                compaction="lazy"))
    reqs = [Request(id=i, arrival_s=0.02 * i, prompt_tokens=300 + 37 * (i % 5), output_tokens=40, session_id=i)
            for i in range(60)]
    sim = ServingSim(pool, ServingConfig(kv_layout="contiguous", cache_reuse_strategy="lru"), requests=reqs)
    sim.run(progress=False)
    return pool, sim


def test_every_summary_and_pool_stats_key_is_labelled() -> None:
    pool, sim = _small_run()
    for values, table in ((sim.summary(), SUMMARY_LABELS), (pool.stats().to_dict(), POOL_STATS_LABELS)):
        labelled = {k for rows in table.values() for k in rows}
        assert set(values) - labelled == set(), "label these keys in the table next to what produces them"
        groups = group_stats(values, table)
        assert OTHER_GROUP not in [g for g, _ in groups]
        assert sum(len(rows) for _, rows in groups) == len(values)  # every key shown once
        for _, rows in groups:
            for key, label, text in rows:
                assert label != key and text, key


def test_stats_are_written_with_their_units() -> None:
    assert format_stat(0.2752, "ms") == "275.2 ms" and format_stat(6.1e-4, "ms") == "0.61 ms"
    assert format_stat(64 << 20, "bytes") == "64.0 MiB" and format_stat(0.958, "percent") == "95.8 %"
    assert format_stat(34195.4, "per_s") == "34,195 per s" and format_stat(1929, "count") == "1,929"
    assert format_stat(float("nan"), "ms") == "n/a" and format_stat({"a": 2}, "plain") == "a: 2"
    with pytest.raises(ValueError, match="unit='furlongs' is not allowed: choose one of 'count'"):
        format_stat(1, "furlongs")
    with pytest.raises(ValueError, match="unit 'MiB' is not one of count"):
        check_stat_table({"G": {"x": ("x label", "MiB")}})
    with pytest.raises(ValueError, match="'x' is labelled twice: in 'G' and 'H'"):
        check_stat_table({"G": {"x": ("x label", "count")}, "H": {"x": ("x again", "count")}})
    # a key the table does not know is shown under its own name, not dropped
    groups = group_stats({"steps": 3, "brand_new_figure": 0.5}, SUMMARY_LABELS)
    assert groups == [("Run", [("steps", "simulator steps", "3")]),
                      (OTHER_GROUP, [("brand_new_figure", "brand_new_figure", "0.5")])]


# ------------------------------------------------------------------ the slowdown over time
def _stated_ratio(text: str) -> float:
    found = re.search(r'id="slowdown-ratio" data-ratio="([^"]+)"', text)
    assert found is not None, "the report states no slowdown ratio"
    return float(found.group(1))


def test_report_plots_the_run_against_time_and_states_the_slowdown(tmp_path) -> None:
    pool, sim = _small_run()
    text = write_report(tmp_path / "r.html", [pool.snapshot()], steps=sim.results(), summary=sim.summary(),
                        over_time=sim.over_time(10), times=[sim.clock]).read_text()
    for part in ("The slowdown over time", "time to first token (ms)", "time per output token (ms)",
                 "TTFT p50 per slice", "TTFT p99 per slice", "TPOT p50 per slice", "requests waiting and running",
                 "memory (MiB)", "used (referenced KV)", "cached (evictable KV)", "fragmentation (%)",
                 "simulated time since start (s)", "Fragmentation heatmap", "Latency and memory traces",
                 "<caption>Latency</caption>", "<caption>Pool: fragmentation</caption>"):
        assert part in text, part
    # the ratio, computed here from the over_time table itself: last tenth's TTFT p50 over the first's
    ot = sim.over_time()
    first, last = ot["ttft_p50_s"].iloc[0], ot["ttft_p50_s"].iloc[-1]
    assert len(ot) == 10 and np.isfinite([first, last]).all()
    assert math.isclose(_stated_ratio(text), last / first, rel_tol=1e-12)
    assert last / first > 2  # the burst outgrows the pool: this run does slow down
    assert f"{last * 1e3:,.1f} ms in the last tenth" in text and f"{first * 1e3:,.1f} ms in the first tenth" in text
    assert f"<b>{last / first:.2f} times</b> the start (slower at the end)" in text


def test_cli_report_states_the_slowdown_of_its_own_run(tmp_path, capsys) -> None:
    from autoglm_lab.cli import main
    from autoglm_lab.workload import DEMO_TIME_SCALE, load_trace

    t0 = dt.datetime(2023, 11, 16, 18, 0, 0)
    rows = [f"{(t0 + dt.timedelta(seconds=0.02 * i)).strftime('%Y-%m-%d %H:%M:%S.%f')},{300 + 37 * (i % 5)},40"
            for i in range(60)]
    trace = tmp_path / "burst.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    out = tmp_path / "r.html"
    assert main(["replay", str(trace), "--pool-size", "2MiB", "--page-size", "16KiB", "--quiet",
                 "--out", str(out)]) == 0
    # the same run again, here: the CLI's defaults are contiguous KV, LRU reuse, lazy compaction, seed 0,
    # arrivals DEMO_TIME_SCALE times faster
    pool = PagedPool(PoolConfig(page_size="16KiB", memory_pool_initial_size="2MiB", max_size=None, device="auto",
                                compaction="lazy"))
    sim = ServingSim(pool, ServingConfig(kv_layout="contiguous", cache_reuse_strategy="lru"),
                     requests=load_trace(trace, time_scale=DEMO_TIME_SCALE))
    sim.run(progress=False)
    ot = sim.over_time()
    expected = ot["ttft_p50_s"].iloc[-1] / ot["ttft_p50_s"].iloc[0]
    assert math.isclose(_stated_ratio(out.read_text()), expected, rel_tol=1e-12) and expected > 1
    assert f"median TTFT of the last tenth of the run: {expected:.2f} times the first tenth's" in \
        capsys.readouterr().out


def test_slowdown_without_first_tokens_at_one_end_is_not_measurable(pool) -> None:
    _, sim = _small_run()
    ot = sim.over_time(10)
    ot.loc[0, "ttft_p50_s"] = float("nan")  # as when no request got its first token in the first tenth
    text = build_report([pool.snapshot()], steps=sim.results(), over_time=ot)
    assert math.isnan(_stated_ratio(text))
    assert "not measurable: no request got its first token in the first tenth of the run" in text
    with pytest.raises(ValueError, match=r"over_time is not a ServingSim\.over_time\(\) table"):
        build_report([pool.snapshot()], steps=sim.results(), over_time=sim.results())
