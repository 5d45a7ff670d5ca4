"""Bad options, values and files for every subcommand of the command line: a non-zero exit, exactly one
line on stderr that names the bad value, no traceback, nothing on stdout, and no run started."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from autoglm_lab.cli import build_parser, main

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ROW = "2023-11-16 18:15:46.6805900"
FILES = {
    "ok.csv": (HEADER + f"{ROW},374,44\n2023-11-16 18:15:46.9951690,396,109\n").encode(),
    "header.csv": f"time,ctx,gen\n{ROW},1,1\n".encode(),
    "latin1.csv": (HEADER + f"{ROW},37\xe9,44\n").encode("latin-1"),
    "field.csv": (HEADER + f"{ROW},1,1\n{ROW},{'7' * 200_000},44\n").encode(),
    "afile": b"not a folder\n",
}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder").mkdir()
    return tmp_path


# (arguments, exit status, what the line must contain); {dir} is the folder of FILES
CASES: list[tuple[list[str], int, str]] = [
    # top level
    (["frob"], 2, "'frob'"),
    ([], 2, "COMMAND"),
    (["--debg"], 2, "--debg"),
    (["--debg", "demo"], 2, "--debg"),
    # demo (every case fails before the simulator runs)
    (["demo", "--steps", "1e3"], 2, "'1e3'"),
    (["demo", "--snapshots", "-2"], 2, "'-2'"),
    (["demo", "--kv-layout", "ring"], 2, "'ring'"),
    (["demo", "--seed", "x"], 2, "'x'"),
    (["demo", "--seed", "-1"], 1, "seed=-1"),
    (["demo", "--device", "gpu"], 1, "device='gpu'"),
    (["demo", "--device", "cuda:9999"], 1, "cuda:9999"),
    (["demo", "--out", "{dir}/folder"], 1, "{dir}/folder"),
    (["demo", "--out", "{dir}/afile/demo.html"], 1, "{dir}/afile"),
    (["demo", "surplus"], 2, "surplus"),
    # replay
    (["replay"], 2, "TRACE.csv"),
    (["replay", "{dir}/missing.csv"], 1, "{dir}/missing.csv"),
    (["replay", "{dir}/folder"], 1, "{dir}/folder"),
    (["replay", "{dir}/header.csv"], 1, "'time,ctx,gen'"),
    (["replay", "{dir}/latin1.csv"], 1, "0xe9"),
    (["replay", "{dir}/field.csv"], 1, "ContextTokens '7777"),
    (["replay", "{dir}/ok.csv", "--time-scale", "0"], 2, "'0'"),
    (["replay", "{dir}/ok.csv", "--token-scale", "1e300"], 1, "token_scale=1e+300"),
    (["replay", "{dir}/ok.csv", "--limit", "0"], 2, "'0'"),
    (["replay", "{dir}/ok.csv", "--page-size", "3KiB"], 1, "page_size='3KiB'"),
    (["replay", "{dir}/ok.csv", "--pool-size", "lots"], 1, "'lots'"),
    (["replay", "{dir}/ok.csv", "--max-size", "1KiB"], 1, "max_size='1KiB'"),
    (["replay", "{dir}/ok.csv", "--threshold", "2"], 1, "fragmentation_threshold_factor=2.0"),
    (["replay", "{dir}/ok.csv", "--strategy", "magic"], 2, "'magic'"),
    (["replay", "{dir}/ok.csv", "--cache-reuse", "fifo"], 2, "'fifo'"),
    (["replay", "{dir}/ok.csv", "--device", "gpu"], 1, "device='gpu'"),
    (["replay", "{dir}/ok.csv", "--out", "{dir}/afile/r.html"], 1, "{dir}/afile"),
    (["replay", "{dir}/ok.csv", "--csv", "{dir}/afile/r.csv"], 1, "{dir}/afile"),
    # tune
    (["tune", "--param", "colour=1"], 1, "'colour'"),
    (["tune", "--param", "page_size"], 2, "'page_size'"),
    (["tune", "--param", "page_size=3KiB"], 1, "page_size='3KiB'"),
    (["tune", "--param", "fit=best", "--param", "fit=first"], 1, "--param fit"),
    (["tune", "--param", "compaction=off,lazy", "--n-trials", "1"], 1, "n_trials=1"),
    (["tune", "--objective", "bogus"], 1, "'bogus'"),
    (["tune", "--objective", "min:nope"], 1, "'nope'"),
    (["tune", "--method", "bayes"], 2, "'bayes'"),
    (["tune", "--n-trials", "0"], 2, "'0'"),
    (["tune", "--seed", "-3"], 1, "seed=-3"),
    (["tune", "--rate", "nan"], 2, "'nan'"),
    (["tune", "--sessions", "20000000"], 1, "num_sessions=20000000"),
    (["tune", "--workers", "5000"], 1, "max_workers=5000"),
    (["tune", "--trace", "{dir}/missing.csv"], 1, "{dir}/missing.csv"),
    (["tune", "--trace", "{dir}/folder"], 1, "{dir}/folder"),
    (["tune", "--trace", "{dir}/header.csv"], 1, "'time,ctx,gen'"),
    (["tune", "--out", "{dir}/afile/t.csv"], 1, "{dir}/afile"),
    (["tune", "--html", "{dir}/folder"], 1, "{dir}/folder"),
    # torch-snapshot (fails before any analysis: nothing on stdout)
    (["torch-snapshot"], 2, "FILE.pickle"),
    (["torch-snapshot", "{dir}/missing.pickle"], 1, "{dir}/missing.pickle"),
    (["torch-snapshot", "{dir}/folder"], 1, "is a folder"),
    (["torch-snapshot", "{dir}/ok.csv"], 1, "not a readable pickle"),
    (["torch-snapshot", "{dir}/ok.csv"], 1, "{dir}/ok.csv"),
    (["torch-snapshot", "{snap}", "--page-size", "3KiB"], 1, "page_size=3072"),
    (["torch-snapshot", "{snap}", "--page-size", "lots"], 2, "'lots'"),
    (["torch-snapshot", "{snap}", "--bandwidth", "-1"], 2, "'-1'"),
    (["torch-snapshot", "{snap}", "--device", "7"], 1, "device=7"),
    (["torch-snapshot", "{snap}", "--html", "{dir}/folder"], 1, "{dir}/folder"),
    (["torch-snapshot", "{snap}", "--max-bytes", "1KiB"], 1, "max_bytes=1024"),
    (["torch-snapshot", "{snap}", "--granularity", "0"], 2, "'0'"),
    # history (a saved dashboard history, replayed offline)
    (["history"], 2, "FILE.npz"),
    (["history", "{dir}/missing.npz"], 1, "{dir}/missing.npz"),
    (["history", "{dir}/folder"], 1, "is a folder"),
    (["history", "{dir}/ok.csv"], 1, "not an .npz archive"),
    (["history", "{dir}/ok.csv", "--max-frames", "1"], 2, "at least 2"),
    # bench
    (["bench", "--only", "nope"], 1, "nope"),
    (["bench", "--quick", "--only", "pool"], 1, "--only"),
    (["bench", "--only"], 2, "--only"),
    (["bench", "--frob"], 2, "--frob"),
]


def _args(args: list[str], folder: Path) -> list[str]:
    """The case's arguments, quiet, and for tune: in this process, on a tiny workload."""
    snap = Path(__file__).parents[2] / "autoglm_lab" / "data" / "torch_snapshot_synthetic_oom.pickle"
    argv = [a.replace("{dir}", str(folder)).replace("{snap}", str(snap)) for a in args]
    if argv[:1] in (["demo"], ["replay"], ["tune"]):
        argv.append("--quiet")
    if argv[:1] == ["tune"]:
        argv += ["--serial"] + ([] if "--sessions" in argv else ["--sessions", "2"])
    return argv


def _run(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # argparse
        return int(exc.code or 0)


@pytest.mark.parametrize(("args", "status", "needle"), CASES, ids=[" ".join(c[0]) or "(none)" for c in CASES])
def test_bad_cli_input_is_one_line(files: Path, capsys: pytest.CaptureFixture[str], args: list[str], status: int,
                                   needle: str) -> None:
    argv = _args(args, files)
    got = _run(argv)
    out, err = capsys.readouterr()
    needle = needle.replace("{dir}", str(files))
    assert got == status != 0, (argv, got, err)
    assert err.endswith("\n") and len(err.splitlines()) == 1, f"{argv}: not one line: {err!r}"
    assert "Traceback" not in err and needle in err, f"{argv}: {needle!r} not named: {err!r}"
    assert out == "", f"{argv}: wrote to stdout: {out!r}"
    assert sorted(p.name for p in files.iterdir()) == sorted([*FILES, "folder"]), "a file was written"


def test_every_subcommand_has_cases() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    covered = {c[0][0] for c in CASES if c[0]}
    assert set(sub.choices) <= covered, f"subcommands without bad-input cases: {set(sub.choices) - covered}"


REAL = [
    (["--debg", "bench"], "--debg"),
    (["demo", "--quiet", "--device", "gpu"], "device='gpu'"),
    (["tune", "--quiet", "--serial", "--param", "colour=1"], "'colour'"),
]


def test_a_real_process_prints_one_line(files: Path) -> None:
    """The same through the entry point in fresh interpreters (started together: each imports torch)."""
    procs = [subprocess.Popen([sys.executable, "-m", "autoglm_lab.cli", *args], cwd=files, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args, _ in REAL]
    for proc, (args, needle) in zip(procs, REAL, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode != 0 and out == "", (args, proc.returncode, out)
        assert "Traceback" not in err and len(err.splitlines()) == 1, (args, err)
        assert err.startswith("autoglm-lab") and needle in err, (args, err)
