from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from autoglm_lab.cli import main

TRACE = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:46.9951690,396,109
2023-11-16 18:15:47.1000000,120,20
2023-11-16 18:15:47.2000000,800,60
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command line in a fresh interpreter (exit codes, what reaches the terminal)."""
    return subprocess.run([sys.executable, "-m", "autoglm_lab.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(TRACE)
    return path


# ------------------------------------------------------------------ real processes
def test_demo_writes_a_report_and_says_where(tmp_path):
    out = tmp_path / "reports" / "demo.html"
    proc = _cli("demo", "--steps", "300", "--snapshots", "5", "--quiet", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"report written to {out.resolve()}" in proc.stdout
    text = out.read_text()
    for part in ("autoglm_lab demo", 'id="pagemap"', "data:image/png;base64,", "Fragmentation heatmap",
                 "Latency and memory traces", "memory_pool_initial_size", "cache_reuse_strategy", "requests_done"):
        assert part in text, part
    assert "<script src=" not in text


def test_errors_are_one_line_without_traceback(tmp_path):
    proc = _cli("replay", "missing.csv", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == "autoglm-lab replay: error: trace file 'missing.csv' does not exist\n"
    assert proc.stdout == ""


def test_entry_point_help(tmp_path):
    exe = Path(sys.executable).with_name("autoglm-lab")
    if not exe.exists():
        pytest.fail(f"the autoglm-lab entry point is not installed next to {sys.executable}: pip install -e .")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("demo", "replay", "tune", "bench", "history"):
        assert command in proc.stdout


# ------------------------------------------------------------------ in process (same code path, faster)
@pytest.mark.parametrize("command", ["demo", "replay", "tune", "bench", "history"])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"usage: autoglm-lab {command}" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["tune", "--method", "sobol"], "argument --method: invalid choice: 'sobol'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_usage_errors_exit_2_with_one_line(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1 and captured.out == ""


def test_replay_writes_report_and_csv(trace, tmp_path, capsys):
    out, csv = tmp_path / "r.html", tmp_path / "steps.csv"
    status = main(["replay", str(trace), "--pool-size", "4MiB", "--page-size", "16KiB", "--time-scale", "10",
                   "--steps", "400", "--out", str(out), "--csv", str(csv), "--quiet"])
    assert status == 0
    stdout = capsys.readouterr().out
    assert "requests finished: 4" in stdout and f"report written to {out.resolve()}" in stdout
    assert "Cut short" not in stdout  # all 4 were done long before step 400
    steps = pd.read_csv(csv)
    assert {"step", "time_s", "step_latency_s", "utilisation"} <= set(steps.columns) and len(steps) > 10
    text = out.read_text()
    assert "autoglm_lab replay of trace.csv" in text and "4,194,304 (4MiB)" in text


def _spaced_trace(path: Path, n: int, *, gap_s: float, output_tokens: int) -> Path:
    """``n`` requests ``gap_s`` apart: with long outputs, one at a time, for many steps each."""
    t0 = dt.datetime(2023, 11, 16, 18, 0, 0)
    rows = [f"{(t0 + dt.timedelta(seconds=gap_s * i)).strftime('%Y-%m-%d %H:%M:%S.%f')},{100 + i},{output_tokens}"
            for i in range(n)]
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    return path


def test_replay_limit_serves_exactly_n_requests_to_completion(tmp_path, capsys):
    trace = _spaced_trace(tmp_path / "spaced.csv", 30, gap_s=10.0, output_tokens=300)
    csv = tmp_path / "steps.csv"
    status = main(["replay", str(trace), "--limit", "20", "--pool-size", "4MiB", "--page-size", "16KiB",
                   "--out", str(tmp_path / "r.html"), "--csv", str(csv), "--quiet"])
    assert status == 0
    stdout = capsys.readouterr().out
    steps = pd.read_csv(csv)
    # 20 requests of 300 tokens one after another: more steps than any fixed default cap used to allow
    assert int(steps["finished"].sum()) == 20 and len(steps) > 2000
    assert "requests finished: 20" in stdout and "Cut short" not in stdout


def test_replay_steps_caps_the_run_and_says_so(tmp_path, capsys):
    trace = _spaced_trace(tmp_path / "spaced.csv", 30, gap_s=10.0, output_tokens=300)
    csv = tmp_path / "steps.csv"
    status = main(["replay", str(trace), "--limit", "20", "--steps", "700", "--pool-size", "4MiB",
                   "--page-size", "16KiB", "--out", str(tmp_path / "r.html"), "--csv", str(csv), "--quiet"])
    assert status == 0
    stdout = capsys.readouterr().out
    steps = pd.read_csv(csv)
    done = int(steps["finished"].sum())
    assert len(steps) == 700 and 0 < done < 20
    assert f"Cut short by --steps 700: {20 - done} of 20 requests not finished" in stdout
    assert f"requests finished: {done}" in stdout


def test_demo_limit_serves_that_many_requests(tmp_path, capsys):
    out = tmp_path / "demo.html"
    assert main(["demo", "--limit", "40", "--device", "cpu", "--snapshots", "4", "--quiet", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    finished = int(re.search(r"requests finished: (\d+)", stdout).group(1))
    rejected = int(re.search(r"rejected \([^)]*\): (\d+)", stdout).group(1))
    assert finished + rejected == 40 and finished > 0 and "Cut short" not in stdout
    text = out.read_text()
    assert "requests in the workload</th><td>40<" in text
    # an open-ended run keeps between --snapshots and twice that many, plus the last one
    assert 4 <= int(re.search(r"(\d+) snapshots</p>", text).group(1)) <= 9


@pytest.mark.parametrize(("content", "message"), [
    ("when,ctx,gen\n", "header"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,abc,3\n", "line 2: ContextTokens 'abc'"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "has no requests"),
])
def test_replay_bad_trace_files(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    assert main(["replay", str(bad), "--quiet", "--out", str(tmp_path / "x.html")]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.html").exists()


def test_replay_bad_settings(trace, capsys):
    assert main(["replay", str(trace), "--page-size", "3KiB", "--quiet"]) == 1
    assert "page_size='3KiB'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["replay", str(trace), "--steps", "0"])
    assert exc.value.code == 2
    assert "--steps: '0' must be at least 1" in capsys.readouterr().err


def test_tune_prints_front_and_writes_files(tmp_path, capsys):
    out, fig = tmp_path / "res.csv", tmp_path / "fig.html"
    status = main(["tune", "--serial", "--quiet", "--sessions", "10", "--steps", "300",
                   "--param", "memory_pool_initial_size=1MiB,2MiB", "--param", "compaction=off,eager",
                   "--param", "page_size=16KiB", "--out", str(out), "--html", str(fig)])
    assert status == 0
    stdout = capsys.readouterr().out
    assert "4 trials in" in stdout and "Pareto front" in stdout and "best for ttft_p99_s: trial" in stdout
    df = pd.read_csv(out)
    assert len(df) == 4 and list(df["compaction"]) == ["off", "eager", "off", "eager"]
    assert {"mean_utilisation", "ttft_p99_s", "failures", "preemptions", "compaction_bytes_moved"} <= set(df.columns)
    assert "Pareto front" in fig.read_text()


@pytest.mark.parametrize(("args", "status", "message"), [
    (["--param", "page_sise=16KiB"], 1, "unknown parameter 'page_sise'"),
    (["--param", "compaction=sometimes"], 1, "is not a valid configuration"),
    (["--param", "page_size"], 2, "is not NAME=VALUE"),
    (["--objective", "fit"], 1, "no known direction"),
    (["--trace", "nope.csv"], 1, "trace file 'nope.csv' does not exist"),
])
def test_tune_bad_arguments(capsys, args, status, message):
    if status == 2:
        with pytest.raises(SystemExit) as exc:
            main(["tune", "--serial", *args])
        assert exc.value.code == 2
    else:
        assert main(["tune", "--serial", "--quiet", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bench_list_and_unknown(capsys):
    assert main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "pool:" in listed and "bench_pool.py" in listed
    assert main(["bench", "--only", "nothing"]) == 1
    assert "no benchmark named nothing; available:" in capsys.readouterr().err


def test_bench_quick(capsys):
    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "alloc+free" in out and "full compaction" in out and "tokens/s" in out
