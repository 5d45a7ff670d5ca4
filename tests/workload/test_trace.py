from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest

import autoglm_lab as al
from autoglm_lab.workload import TraceError, load_trace

REAL = Path(__file__).resolve().parents[2] / "data" / "azure_llm_2023_conv.csv"
HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(header + body)
    return path


def test_parses_seven_fractional_digits_and_sorts(tmp_path: Path) -> None:
    path = write(tmp_path, "2023-11-16 18:15:50.9951690,396,109\n"
                           "2023-11-16 18:15:46.6805900,374,44\n"
                           "2023-11-16 18:16:46.6805901,10,2\n")
    reqs = load_trace(path)
    assert [r.prompt_tokens for r in reqs] == [374, 396, 10]
    assert [r.output_tokens for r in reqs] == [44, 109, 2]
    assert reqs[0].arrival_s == 0.0
    assert math.isclose(reqs[1].arrival_s, 4.314579, abs_tol=1e-6)
    assert math.isclose(reqs[2].arrival_s, 60.0000001, abs_tol=1e-6)
    assert [r.id for r in reqs] == [0, 1, 2] and len({r.session_id for r in reqs}) == 3


def test_scaling_knobs(tmp_path: Path) -> None:
    path = write(tmp_path, "2023-11-16 18:00:00.0000000,1000,100\n2023-11-16 18:00:10.0000000,3,1\n")
    reqs = load_trace(path, token_scale=0.1, time_scale=5)
    assert (reqs[0].prompt_tokens, reqs[0].output_tokens) == (100, 10)
    assert (reqs[1].prompt_tokens, reqs[1].output_tokens) == (1, 1)  # never below min_tokens
    assert math.isclose(reqs[1].arrival_s, 2.0)
    assert len(load_trace(path, limit=1)) == 1


@pytest.mark.parametrize(("body", "line", "words"), [
    ("2023-11-16 18:00:00.0000000,10,5\n2023-11-16 18:00:01.0000000,ten,5\n", 3, "ContextTokens 'ten'"),
    ("2023-11-16 18:00:00.0000000,10,5\n2023-13-16 18:00:01.0000000,10,5\n", 3, "month must be in 1..12"),
    ("yesterday,10,5\n", 2, "TIMESTAMP 'yesterday'"),
    ("2023-11-16 18:00:00.0000000,10\n", 2, "2 fields"),
    ("2023-11-16 18:00:00.0000000,10,0\n", 2, "GeneratedTokens 0 is below 1"),
    ("2023-11-16 18:00:00.0000000,-4,3\n", 2, "ContextTokens -4"),
])
def test_bad_rows_name_the_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(TraceError, match=f"line {line}") as info:
        load_trace(path)
    assert words in str(info.value) and str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_header_and_knobs(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="line 1: header"):
        load_trace(write(tmp_path, "2023-11-16 18:00:00.0,1,1\n", header="time,prompt,output\n"))
    good = write(tmp_path, "2023-11-16 18:00:00.0,1,1\n")
    with pytest.raises(ValueError, match="time_scale=0"):
        load_trace(good, time_scale=0)
    with pytest.raises(ValueError, match="token_scale=-1"):
        load_trace(good, token_scale=-1)
    with pytest.raises(FileNotFoundError):
        load_trace(tmp_path / "missing.csv")


def test_real_azure_trace() -> None:
    reqs = load_trace(REAL)
    assert len(reqs) > 19_000
    ctx = sorted(r.prompt_tokens for r in reqs)
    assert 900 <= ctx[len(ctx) // 2] <= 1100  # median about 1020 tokens, as the trace's README says
    assert 3000 <= reqs[-1].arrival_s <= 3700  # about one hour
    assert all(a.arrival_s <= b.arrival_s for a, b in itertools.pairwise(reqs))
    fast = load_trace(REAL, time_scale=10, token_scale=0.25, limit=100)
    assert len(fast) == 100 and math.isclose(fast[-1].arrival_s, reqs[99].arrival_s / 10)


def test_the_trace_ships_inside_the_package_and_demo_setup_replays_it() -> None:
    from autoglm_lab.workload import demo_setup, shipped_trace_path

    path = shipped_trace_path()
    assert path.is_file() and path.parent.parent == Path(al.__file__).parent
    assert (path.parent / "README.md").read_text().count("CC-BY") == 1
    pool, sim = demo_setup(seed=3, limit=50)
    assert len(sim.requests) == 50 and pool.config.page_size == 64 << 10 and sim.config.kv_layout == "contiguous"
    sim.run(steps=20, progress=False)
    assert pool.stats().used_pages > 0


# ------------------------------------------------------------------ issue #12: malformed files and knobs
ROW = "2023-11-16 18:00:00.0000000"


def write_bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "trace.csv"
    path.write_bytes(HEADER.encode() + data)
    return path


@pytest.mark.parametrize(("body", "line", "words"), [
    (f"{ROW},{'9' * 400},5\n".encode(), 2, "ContextTokens '999"),  # was OverflowError
    (f"{ROW},1,1\n{ROW},{10**30},5\n".encode(), 3, "ContextTokens '1000000000000000000000000000000' is not allowed"),
    (f"{ROW},1,{2**24 + 1}\n".encode(), 2, "GeneratedTokens 16777217 is above 16,777,216"),
    (f"{ROW},1,1\n{ROW},{'1' * 200_000},5\n".encode(), 3, "field larger than field limit"),  # was _csv.Error
    (f"{ROW},1,1\n{ROW},1\xff,5\n".encode("latin-1"), 3, "ContextTokens has the byte 0xff, which is not UTF-8"),
    (f"{ROW},\u0661\u0662,5\n".encode(), 2, "is not an integer"),  # non-ASCII digits
])
def test_malformed_files_raise_trace_errors(tmp_path: Path, body: bytes, line: int, words: str) -> None:
    path = write_bytes(tmp_path, body)
    with pytest.raises(TraceError) as info:
        load_trace(path)
    message = str(info.value)
    assert f"{path}, line {line}: " in message and words in message, message
    assert len(message) < 400 and "\n" not in message  # a 200,000-character field is not echoed


def test_a_header_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_bytes(b"TIME\xffSTAMP,ContextTokens,GeneratedTokens\n")
    with pytest.raises(TraceError, match="line 1: the header is not UTF-8"):
        load_trace(path)


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + f"{ROW},3,4\n").encode())
    assert [(r.prompt_tokens, r.output_tokens) for r in load_trace(path)] == [(3, 4)]


@pytest.mark.parametrize(("kwargs", "line", "words"), [
    ({"time_scale": 1e-320}, 3, "time_scale=1e-320 turns into an arrival at inf s"),
    ({"time_scale": 1e-9}, 3, "the most allowed is 1,000,000,000 s"),
    ({"token_scale": 1e308}, 2, "ContextTokens 10 times token_scale=1e+308 is inf tokens"),
])
def test_scales_that_give_absurd_requests(tmp_path: Path, kwargs: dict, line: int, words: str) -> None:
    path = write(tmp_path, f"{ROW},10,5\n2023-11-16 18:00:10.0000000,10,5\n")
    with pytest.raises(TraceError) as info:
        load_trace(path, **kwargs)
    assert f"line {line}: " in str(info.value) and words in str(info.value)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"min_tokens": -5}, "min_tokens=-5 is not allowed: use an integer from 1"),
    ({"min_tokens": 0}, "min_tokens=0"),
    ({"min_tokens": 2**25}, "min_tokens=33554432"),
    ({"time_scale": math.nan}, "time_scale=nan"),
    ({"token_scale": math.inf}, "token_scale=inf"),
])
def test_bad_knobs(tmp_path: Path, kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        load_trace(write(tmp_path, f"{ROW},10,5\n"), **kwargs)


def test_min_tokens_lifts_small_counts(tmp_path: Path) -> None:
    reqs = load_trace(write(tmp_path, f"{ROW},10,5\n"), token_scale=0.01, min_tokens=3)
    assert (reqs[0].prompt_tokens, reqs[0].output_tokens) == (3, 3)
