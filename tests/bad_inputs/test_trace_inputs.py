"""Bad trace files and `load_trace` arguments. A malformed file is a `TraceError` naming the file, the
line, the field and the bad value, and saying what is allowed; a bad argument is a typed error
naming it. Nothing reaches the pool."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autoglm_lab.workload import TraceError, load_trace

from .world import Case, World, assert_refused, make_world

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ROW = "2023-11-16 18:15:46.6805900"
LATER = "2023-11-16 18:15:47.0000000"
NAN, INF = float("nan"), float("inf")


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world()
    w.extra["dir"] = tmp_path
    return w


def _file(w: World, name: str, data: bytes) -> Path:
    path = w.extra["dir"] / name
    path.write_bytes(data)
    return path


@dataclass(frozen=True)
class FileCase:
    name: str
    data: bytes
    line: int
    field: str  # the field (or "header") the message must name
    needle: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def case(self) -> Case:
        def call(w: World) -> object:
            return load_trace(_file(w, f"{self.name}.csv", self.data), **dict(self.kwargs))
        return Case(self.name, call, TraceError, self.needle)


def _rows(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


FILES = [
    FileCase("bad_header", b"time,ctx,gen\n" + f"{ROW},1,1\n".encode(), 1, "header", "'time,ctx,gen'"),
    FileCase("header_missing_column", f"TIMESTAMP,ContextTokens\n{ROW},1\n".encode(), 1, "header",
             "'TIMESTAMP,ContextTokens'"),
    FileCase("header_reordered", f"ContextTokens,TIMESTAMP,GeneratedTokens\n{ROW},1,1\n".encode(), 1, "header",
             "ContextTokens,TIMESTAMP"),
    FileCase("header_not_utf8", b"TIME\xffSTAMP,ContextTokens,GeneratedTokens\n", 1, "header", "0xff"),
    FileCase("empty", b"", 1, "header", "empty"),
    FileCase("bom_only", b"\xef\xbb\xbf", 1, "header", "empty"),
    FileCase("row_missing_column", _rows(f"{ROW},1,1", f"{ROW},374"), 3, "GeneratedTokens", "GeneratedTokens missing"),
    FileCase("row_extra_column", _rows(f"{ROW},374,44,9"), 2, "GeneratedTokens", "1 extra"),
    FileCase("negative", _rows(f"{ROW},1,1", f"{LATER},-5,4"), 3, "ContextTokens", "-5"),
    FileCase("zero", _rows(f"{ROW},0,4"), 2, "ContextTokens", "ContextTokens 0"),
    FileCase("nan", _rows(f"{ROW},374,nan"), 2, "GeneratedTokens", "'nan'"),
    FileCase("inf", _rows(f"{ROW},inf,4"), 2, "ContextTokens", "'inf'"),
    FileCase("fraction", _rows(f"{ROW},37.5,4"), 2, "ContextTokens", "'37.5'"),
    FileCase("blank_count", _rows(f"{ROW}, ,4"), 2, "ContextTokens", "' '"),
    FileCase("huge", _rows(f"{ROW},{10**30},44"), 2, "ContextTokens", str(10**30)),
    FileCase("above_max", _rows(f"{ROW},1,{2**24 + 1}"), 2, "GeneratedTokens", str(2**24 + 1)),
    FileCase("400_digits", _rows(f"{ROW},{'9' * 400},44"), 2, "ContextTokens", "(400 characters)"),
    FileCase("200_KiB_field", _rows(f"{ROW},1,1", f"{LATER},{'7' * 204_800},44"), 3, "ContextTokens",
             "(204,800 characters)"),
    FileCase("200_KiB_last_field", _rows(f"{ROW},1,{'7' * 204_800}"), 2, "GeneratedTokens", "(204,800 characters)"),
    FileCase("not_utf8", (HEADER + f"{ROW},1,1\n{LATER},37\xe9,44\n").encode("latin-1"), 3, "ContextTokens", "0xe9"),
    FileCase("bad_timestamp", _rows(f"{ROW},1,1", "yesterday,1,1"), 3, "TIMESTAMP", "'yesterday'"),
    FileCase("impossible_date", _rows("2023-02-30 10:00:00,1,1"), 2, "TIMESTAMP", "2023-02-30"),
    FileCase("blank_lines_then_bad", _rows(f"{ROW},1,1", "", "", f"{LATER},x,1"), 5, "ContextTokens", "'x'"),
    FileCase("crlf", (HEADER + f"{ROW},1,1\n{LATER},1,-7\n").replace("\n", "\r\n").encode(), 3, "GeneratedTokens",
             "-7"),
    FileCase("forty_years", _rows("1990-01-01 00:00:00,1,1", "2030-01-01 00:00:00,1,1"), 3, "TIMESTAMP",
             "time_scale=1.0"),
    FileCase("token_scale_overflow", _rows(f"{ROW},1000,4"), 2, "ContextTokens", "token_scale=100000.0",
             (("token_scale", 1e5),)),
]


@pytest.mark.parametrize("fc", FILES, ids=[f.name for f in FILES])
def test_a_malformed_file_names_its_file_line_and_field(fc: FileCase, world: World) -> None:
    msg = assert_refused(fc.case(), world)
    path = world.extra["dir"] / f"{fc.name}.csv"
    assert str(path) in msg, f"{fc.name}: the message does not name the file: {msg}"
    assert f"line {fc.line}:" in msg, f"{fc.name}: the message does not name line {fc.line}: {msg}"
    assert fc.field in msg, f"{fc.name}: the message does not name the field {fc.field}: {msg}"
    assert len(msg) < 500 and "\n" not in msg, f"{fc.name}: the bad field is echoed whole: {msg[:200]}"


def _ok(w: World) -> Path:
    return _file(w, "ok.csv", _rows(f"{ROW},374,44", f"{LATER},396,109"))


def _folder(w: World) -> Path:
    path = w.extra["dir"] / "folder.csv"
    path.mkdir()
    return path


ARGS: list[tuple[str, dict[str, Any], type[Exception] | tuple, str]] = [
    ("time_scale=0", {"time_scale": 0}, ValueError, "time_scale=0"),
    ("time_scale=-1", {"time_scale": -1.0}, ValueError, "time_scale=-1.0"),
    ("time_scale=nan", {"time_scale": NAN}, ValueError, "time_scale=nan"),
    ("time_scale=inf", {"time_scale": INF}, ValueError, "time_scale=inf"),
    ("time_scale='fast'", {"time_scale": "fast"}, TypeError, "time_scale='fast'"),
    ("time_scale=True", {"time_scale": True}, TypeError, "time_scale=True"),
    ("token_scale=0", {"token_scale": 0}, ValueError, "token_scale=0"),
    ("min_tokens=0", {"min_tokens": 0}, ValueError, "min_tokens=0"),
    ("min_tokens=2**25", {"min_tokens": 2**25}, ValueError, str(2**25)),
    ("min_tokens=1.5", {"min_tokens": 1.5}, ValueError, "min_tokens=1.5"),
    ("min_tokens=None", {"min_tokens": None}, ValueError, "min_tokens=None"),
    ("limit=-1", {"limit": -1}, ValueError, "limit=-1"),
    ("limit=1.5", {"limit": 1.5}, ValueError, "limit=1.5"),
    ("limit='5'", {"limit": "5"}, ValueError, "limit='5'"),
    ("limit=True", {"limit": True}, ValueError, "limit=True"),
]
ARG_CASES = [Case(f"load_trace({name})", (lambda w, kw=kw: load_trace(_ok(w), **kw)), exc, needle)
             for name, kw, exc, needle in ARGS]
ARG_CASES += [
    Case("load_trace(path=None)", lambda w: load_trace(None), TypeError, "NoneType"),
    Case("load_trace(missing file)", lambda w: load_trace(w.extra["dir"] / "missing.csv"), FileNotFoundError,
         "missing.csv"),
    Case("load_trace(a folder)", lambda w: load_trace(_folder(w)), IsADirectoryError, "folder.csv"),
]


@pytest.mark.parametrize("case", ARG_CASES, ids=[c.name for c in ARG_CASES])
def test_a_bad_argument_is_refused(case: Case, world: World) -> None:
    assert_refused(case, world)


def _jsonl(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


GOOD = '{"timestamp": 0, "input_length": 1000, "output_length": 5, "hash_ids": [1, 2]}'
# the Mooncake JSONL format (detected by content): (name, data, line, field, the value as the message shows it)
JSONL_FILES = [
    ("jsonl_missing_hashes", _jsonl('{"timestamp": 0, "input_length": 10, "output_length": 5}'), 1, "hash_ids",
     "hash_ids missing"),
    ("jsonl_not_json", _jsonl(GOOD, "{not json"), 2, "JSON", "'{not json'"),
    ("jsonl_negative_input", _jsonl(GOOD, GOOD.replace("1000", "-3")), 2, "input_length", "-3"),
    ("jsonl_huge_output", _jsonl(GOOD.replace('"output_length": 5', '"output_length": 100000000000')), 1,
     "output_length", "100000000000"),
    ("jsonl_nan_timestamp", _jsonl(GOOD.replace('"timestamp": 0', '"timestamp": NaN')), 1, "timestamp", "NaN"),
    ("jsonl_string_timestamp", _jsonl(GOOD.replace('"timestamp": 0', '"timestamp": "soon"')), 1, "timestamp",
     "soon"),
    ("jsonl_too_many_hashes", _jsonl(GOOD.replace("[1, 2]", "[1, 2, 3, 4, 5]")), 1, "hash_ids", "5 ids"),
    ("jsonl_hash_not_int", _jsonl(GOOD.replace("[1, 2]", '[1, "b"]')), 1, "hash_ids", '"b"'),
    ("jsonl_array_line", _jsonl(GOOD, "[1, 2, 3]"), 2, "not an object", "[1, 2, 3]"),
    ("jsonl_float_length", _jsonl(GOOD.replace("1000", "10.5")), 1, "input_length", "10.5"),
]


@pytest.mark.parametrize(("name", "data", "line", "field", "needle"), JSONL_FILES, ids=[f[0] for f in JSONL_FILES])
def test_a_malformed_jsonl_trace_names_its_file_line_and_field(name: str, data: bytes, line: int, field: str,
                                                               needle: str, world: World) -> None:
    path = _file(world, f"{name}.jsonl", data)
    msg = assert_refused(Case(name, lambda w: load_trace(path), TraceError, needle), world)
    assert str(path) in msg and f"line {line}:" in msg and field in msg, msg
