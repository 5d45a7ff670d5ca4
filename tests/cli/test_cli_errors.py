"""Issue #12: bad input to any subcommand gives one line on stderr, a non-zero exit and no traceback;
the line names the bad value. Usage errors (argparse) exit 2, the library's typed errors exit 1."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from autoglm_lab import cli
from autoglm_lab.cli import main

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ROW = "2023-11-16 18:15:46.6805900"
TRACES = {
    "ok": (HEADER + f"{ROW},374,44\n2023-11-16 18:15:46.9951690,396,109\n").encode(),
    "digits": (HEADER + f"{ROW},{'9' * 400},44\n").encode(),
    "field": (HEADER + f"{ROW},1,1\n{ROW},{'7' * 200_000},44\n").encode(),
    "latin1": (HEADER + f"{ROW},1,1\n{ROW},37\xe9,44\n").encode("latin-1"),
    "huge": (HEADER + f"{ROW},{10**30},44\n").encode(),
    "empty": HEADER.encode(),
}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name, data in TRACES.items():
        (tmp_path / f"{name}.csv").write_bytes(data)
    (tmp_path / "folder").mkdir()
    return tmp_path


def _run(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # argparse
        return int(exc.code or 0)


def _expect_one_line(capsys: pytest.CaptureFixture[str], args: list[str], status: int, words: str) -> None:
    got = _run(args)
    captured = capsys.readouterr()
    err = captured.err
    assert got == status, err
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert re.match(rf"autoglm-lab( {args[0]})?: error: ", err), err
    assert "Traceback" not in err and words in err, err
    assert captured.out == ""


@pytest.mark.parametrize(("args", "status", "words"), [
    (["--seed", "-1"], 1, "seed=-1 is not allowed"),
    (["--seed", "1" * 30], 1, f"seed={'1' * 30} is not allowed"),
    (["--steps", "0"], 2, "--steps: '0' must be at least 1"),
    (["--snapshots", "many"], 2, "'many' is not an integer"),
    (["--kv-layout", "ring"], 2, "invalid choice: 'ring'"),
    (["--out", "{dir}/folder"], 1, "--out '{dir}/folder' is a directory"),
])
def test_demo_bad_input(files, capsys, args, status, words) -> None:
    args = [a.replace("{dir}", str(files)) for a in args]
    _expect_one_line(capsys, ["demo", "--quiet", *args], status, words.replace("{dir}", str(files)))


@pytest.mark.parametrize(("trace", "options", "status", "words"), [
    ("missing", [], 1, "trace file '{dir}/missing.csv' does not exist"),
    ("folder", [], 1, "trace file '{dir}/folder' is a folder"),
    ("digits", [], 1, "digits.csv, line 2: ContextTokens '999"),
    ("field", [], 1, "field.csv, line 3: field larger than field limit"),
    ("latin1", [], 1, "latin1.csv, line 3: ContextTokens has the byte 0xe9, which is not UTF-8"),
    ("huge", [], 1, "huge.csv, line 2: ContextTokens '1000000000000000000000000000000' is not allowed"),
    ("empty", [], 1, "has no requests"),
    ("ok", ["--time-scale", "1e-320"], 1, "time_scale=1e-320"),
    ("ok", ["--token-scale", "1e300"], 1, "token_scale=1e+300"),
    ("ok", ["--time-scale", "nan"], 2, "--time-scale: 'nan' must be a finite number > 0"),
    ("ok", ["--limit", "-1"], 2, "--limit: '-1' must be at least 1"),
    ("ok", ["--page-size", "3KiB"], 1, "page_size='3KiB'"),
    ("ok", ["--pool-size", "lots"], 1, "memory_pool_initial_size='lots'"),
    ("ok", ["--max-size", "1KiB"], 1, "max_size='1KiB'"),
    ("ok", ["--threshold", "nan"], 1, "fragmentation_threshold_factor=nan"),
    ("ok", ["--device", "tpu"], 1, "device='tpu'"),
    ("ok", ["--seed", "-3"], 1, "seed=-3"),
    ("ok", ["--compaction", "sometimes"], 2, "invalid choice: 'sometimes'"),
    ("ok", ["--csv", "{dir}/folder"], 1, "--csv '{dir}/folder' is a directory"),
])
def test_replay_bad_input(files, capsys, trace, options, status, words) -> None:
    options = [o.replace("{dir}", str(files)) for o in options]
    args = ["replay", str(files / (trace if trace == "folder" else f"{trace}.csv")), "--quiet",
            "--out", str(files / "r.html"), *options]
    _expect_one_line(capsys, args, status, words.replace("{dir}", str(files)))
    assert not (files / "r.html").exists()


@pytest.mark.parametrize(("args", "status", "words"), [
    (["--trace", "{dir}/field.csv"], 1, "field.csv, line 3: field larger than field limit"),
    (["--trace", "{dir}/latin1.csv"], 1, "line 3: ContextTokens has the byte 0xe9"),
    (["--trace", "{dir}/digits.csv"], 1, "line 2: ContextTokens '999"),
    (["--trace", "{dir}/empty.csv"], 1, "empty.csv' gives no requests"),
    (["--trace", "{dir}/nope.csv"], 1, "trace file '{dir}/nope.csv' does not exist"),
    (["--param", "page_size=3KiB"], 1, "page_size='3KiB'"),
    (["--param", "compaction=off", "--param", "compaction=eager"], 1, "--param compaction given more than once"),
    (["--param", "page_size=,"], 1, "space['page_size'] is empty"),
    (["--param", "page_size"], 2, "'page_size' is not NAME=VALUE"),
    (["--sessions", "100000000"], 1, "num_sessions=100000000 is not allowed"),
    (["--rate", "1e300"], 1, "rate_per_s=1e+300 is not allowed"),
    (["--rate", "inf"], 2, "--rate: 'inf' must be a finite number > 0"),
    (["--workers", "5000"], 1, "max_workers=5000 is not allowed"),
    (["--n-trials", "1000000000"], 1, "n_trials=1000000000 is not allowed"),
    (["--seed", "-1"], 1, "seed=-1 is not allowed"),
    (["--objective", "fit"], 1, "objective 'fit' has no known direction"),
    (["--method", "sobol"], 2, "invalid choice: 'sobol'"),
    (["--out", "{dir}/folder"], 1, "--out '{dir}/folder' is a directory"),
    (["--html", "{dir}/folder"], 1, "--html '{dir}/folder' is a directory"),
])
def test_tune_bad_input(files, capsys, args, status, words) -> None:
    args = [a.replace("{dir}", str(files)) for a in args]
    _expect_one_line(capsys, ["tune", "--quiet", "--sessions", "2", *args] if "--sessions" not in args
                     else ["tune", "--quiet", *args], status, words.replace("{dir}", str(files)))


@pytest.mark.parametrize(("args", "status", "words"), [
    (["--only", "nothing"], 1, "no benchmark named nothing"),
    (["--quick", "--only", "pool"], 1, "--only needs the benchmark scripts"),
    (["--only"], 2, "argument --only: expected one argument"),
    (["--fast"], 2, "unrecognized arguments: --fast"),
])
def test_bench_bad_input(capsys, args, status, words) -> None:
    _expect_one_line(capsys, ["bench", *args], status, words)


def test_debug_shows_the_traceback_instead(files) -> None:
    from autoglm_lab.workload import TraceError

    with pytest.raises(TraceError, match="field larger than field limit"):
        main(["--debug", "replay", str(files / "field.csv"), "--quiet"])


def test_bugs_are_not_turned_into_error_lines(monkeypatch) -> None:
    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "cmd_bench", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["bench", "--list"])


@pytest.mark.parametrize(("args", "words"), [
    (["replay", "{dir}/field.csv", "--quiet"], "line 3: field larger than field limit"),
    (["replay", "{dir}/latin1.csv", "--quiet"], "which is not UTF-8"),
    (["tune", "--serial", "--quiet", "--trace", "{dir}/digits.csv"], "line 2: ContextTokens '999"),
    (["demo", "--quiet", "--seed", "-1"], "seed=-1"),
])
def test_real_process_prints_one_line(files, args, words) -> None:
    args = [a.replace("{dir}", str(files)) for a in args]
    proc = subprocess.run([sys.executable, "-m", "autoglm_lab.cli", *args], cwd=files, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"autoglm-lab {args[0]}: error: ") and words in proc.stderr
