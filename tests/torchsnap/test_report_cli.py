"""The HTML report (standalone, offline) and the ``torch-snapshot`` subcommand's functions."""

from __future__ import annotations

import argparse
import base64
import pickle
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from autoglm_lab.torchsnap import (
    MAP_STATES,
    analyze,
    build_html,
    load_torch_snapshot,
    run_program,
    segment_map_cells,
    segment_map_rgb,
    synthetic_snapshot,
    write_synthetic_snapshot,
)
from autoglm_lab.torchsnap import cli as ts_cli

M = 1 << 20


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="autoglm-lab")
    sub = ap.add_subparsers(dest="command", required=True)
    ts_cli.add_parser(sub)
    return ap


def test_segment_map_cells_take_the_state_holding_most_bytes() -> None:
    # a 20 MiB segment: c takes a's freed 3 MiB block whole for 2.25 MiB (the rest is too small to split
    # off), then x (2 MiB) waits for a stream-ordered free; a small segment holds s
    snap = load_torch_snapshot(run_program([("alloc", "a", 3 * M), ("alloc", "x", 2 * M), ("free", "a"),
                                            ("alloc", "c", 9 * M // 4), ("free_requested", "x"),
                                            ("alloc", "s", 100)]))
    cells = segment_map_cells(snap, 0, "1MiB")
    big = cells[0]
    assert len(big) == 20 and len(cells[1]) == 2
    assert MAP_STATES[big[0]] == "allocated" and MAP_STATES[big[1]] == "allocated"
    assert MAP_STATES[big[2]] == "internal waste"  # 0.25 MiB used, 0.75 MiB the block holds for nothing
    assert [MAP_STATES[c] for c in big[3:5]] == ["pending free", "pending free"]
    assert set(big[5:].tolist()) == {0}
    img = segment_map_rgb(snap, 0, "1MiB", min_width_px=20)
    assert img.shape == (3, 20, 3)  # two segment rows and the white line between them
    with pytest.raises(ValueError, match="granularity"):
        segment_map_cells(snap, 0, 100)


def test_html_report_is_standalone_and_says_the_verdicts() -> None:
    snap = load_torch_snapshot(synthetic_snapshot(3))
    res = analyze(snap)
    text = build_html(res, snap, granularity="512KiB")
    # nothing is fetched: no script or stylesheet from elsewhere (plotly.js is inline; the URLs inside
    # it are for map tiles this report never draws)
    assert not re.search(r"<script[^>]*\bsrc=", text) and not re.search(r"<link[^>]*\bhref=", text)
    assert text.count("Plotly.newPlot") == 2  # timeline and histogram, plotly.js inline once
    for v in res.verdicts:
        assert v.summary().replace("'", "&#x27;") in text
    png = re.search(r'src="data:image/png;base64,([^"]+)"', text)
    assert png is not None
    raw = base64.b64decode(png.group(1))
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    expected = segment_map_rgb(snap, 0, "512KiB")
    assert (h, w) == expected.shape[:2]
    idat = raw[raw.index(b"IDAT") + 4:raw.index(b"IEND") - 8]
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + 3 * w)[:, 1:]
    assert np.array_equal(rows.reshape(h, w, 3), expected)


def test_cli_prints_one_verdict_per_oom_and_writes_the_report(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write_synthetic_snapshot(tmp_path / "snap.pickle", 3)
    out = tmp_path / "sub" / "report.html"
    args = _parser().parse_args(["torch-snapshot", str(path), "--page-size", "1MiB", "--html", str(out)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert sum(line.startswith("OOM at entry") for line in lines) == 2
    assert sum(line.startswith("peak at entry") for line in lines) == 1
    assert "paged 1MiB pages" in text and f"report written to {out.resolve()}" in text
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_options_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ap = _parser()
    for argv in (["torch-snapshot", "x", "--page-size", "lots"], ["torch-snapshot", "x", "--bandwidth", "-1"],
                 ["torch-snapshot", "x", "--capacity", "0"]):
        with pytest.raises(SystemExit):
            ap.parse_args(argv)
    capsys.readouterr()
    args = ap.parse_args(["torch-snapshot", str(tmp_path / "missing.pickle")])
    with pytest.raises(ValueError, match="does not exist"):
        args.func(args)
    evil = tmp_path / "evil.pickle"
    evil.write_bytes(b"cos\nsystem\n(S'echo hi'\ntR.")
    args = ap.parse_args(["torch-snapshot", str(evil)])
    with pytest.raises(ValueError, match="refused"):
        args.func(args)
    big = tmp_path / "big.pickle"
    big.write_bytes(pickle.dumps(run_program([("alloc", "a", 100)])))
    args = ap.parse_args(["torch-snapshot", str(big), "--max-bytes", "100"])
    with pytest.raises(ValueError, match="max_bytes=100"):
        args.func(args)
    args = ap.parse_args(["torch-snapshot", str(big), "--html", str(tmp_path)])
    with pytest.raises(ValueError, match="is a directory"):
        args.func(args)
    args = ap.parse_args(["torch-snapshot", str(big), "--capacity", "4MiB", "--device", "0"])
    assert args.func(args) == 0 and "(4.00 MiB, meta)" in capsys.readouterr().out
