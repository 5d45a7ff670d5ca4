"""load_torch_snapshot: data only (no code runs), a size cap, every malformed input named, legacy forms."""

from __future__ import annotations

import copy
import copyreg
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoglm_lab.torchsnap import (
    ACTIONS,
    Action,
    UnsafePickleError,
    load_torch_snapshot,
    run_program,
    synthetic_snapshot,
)

M = 1 << 20


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    out = synthetic_snapshot(3)
    assert isinstance(out, dict)
    return out


def test_round_trip_keeps_every_field(raw: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "snap.pickle"
    path.write_bytes(pickle.dumps(raw))
    snap = load_torch_snapshot(path)
    assert snap.form == "dict" and snap.source == str(path)
    assert len(snap.segments) == len(raw["segments"])
    for seg, rs in zip(snap.segments, raw["segments"], strict=True):
        assert (seg.address, seg.total_size, seg.stream, seg.segment_type, seg.is_expandable) == (
            rs["address"], rs["total_size"], rs["stream"], rs["segment_type"], rs["is_expandable"])
        assert (seg.allocated_size, seg.active_size, seg.requested_size) == (
            rs["allocated_size"], rs["active_size"], rs["requested_size"])
        for b, rb in zip(seg.blocks, rs["blocks"], strict=True):
            assert (b.address, b.size, b.state) == (rb["address"], rb["size"], rb["state"])
            assert [f.label() for f in b.frames] == [f"{f['filename'].rsplit('/', 1)[-1]}:{f['line']}:{f['name']}"
                                                     for f in rb["frames"]]
    trace = snap.trace_of(0)
    assert trace is not None and len(trace) == len(raw["device_traces"][0])
    assert snap.trace_of(1) is not None and len(snap.trace_of(1)) == 0  # type: ignore[arg-type]
    for i in (0, 1, len(trace) // 2, len(trace) - 1):
        e, r = trace.entry(i), raw["device_traces"][0][i]
        assert e.action == r["action"] and e.size == r["size"] and e.stream == r["stream"]
        assert e.time_us == r["time_us"]
        assert (e.device_free if e.action == "oom" else e.addr) == r.get("device_free", r.get("addr"))
    assert dict(snap.allocator_settings) == raw["allocator_settings"]
    assert snap.external_annotations == tuple(raw["external_annotations"])


def test_trace_columns_are_read_only_and_frames_shared(raw: dict[str, Any]) -> None:
    snap = load_torch_snapshot(raw)
    trace = snap.traces[0]
    with pytest.raises(ValueError):
        trace.size[0] = 1
    # every allocation has its own frame list; the table has one row per distinct stack: a handful
    assert 0 < len(trace.frames) < 20 < len(trace)
    assert trace.nbytes == len(trace) * (1 + 8 * 4 + 4)


def test_extra_keys_are_kept(raw: dict[str, Any]) -> None:
    trace = load_torch_snapshot(raw).traces[0]
    have = [i for i, e in enumerate(raw["device_traces"][0]) if "compile_context" in e]
    assert have, "the generator puts extras on some entries"
    e = trace.entry(have[0])
    assert e.extra == {"compile_context": raw["device_traces"][0][have[0]]["compile_context"], "user_metadata": ""}
    fx = [f for fs in trace.frames for f in fs if f.extra]
    assert fx and dict(fx[0].extra) == {"fx_node_op": "call_function", "fx_node_name": "sdpa"}


def test_sources_bytes_file_object_dict_and_list(raw: dict[str, Any]) -> None:
    data = pickle.dumps(raw)
    a = load_torch_snapshot(data)
    b = load_torch_snapshot(io.BytesIO(data))
    c = load_torch_snapshot(raw)
    for s in (b, c):
        assert len(s.segments) == len(a.segments) and s.num_entries == a.num_entries
        assert np.array_equal(s.traces[0].addr, a.traces[0].addr)
    legacy = load_torch_snapshot(synthetic_snapshot(3, legacy="list"))
    assert legacy.form == "list" and legacy.traces == () and len(legacy.segments) == len(a.segments)
    # the legacy list has no block addresses: they are computed from the segment's address and sizes
    assert [b.address for b in legacy.segments[0].blocks] == [b.address for b in a.segments[0].blocks]


def test_legacy_history_blocks(raw: dict[str, Any]) -> None:
    snap = load_torch_snapshot(synthetic_snapshot(3, legacy="history"))
    assert snap.form == "dict-history"
    new = load_torch_snapshot(raw)
    for s_old, s_new in zip(snap.segments, new.segments, strict=True):
        for b_old, b_new in zip(s_old.blocks, s_new.blocks, strict=True):
            if b_new.state != "inactive":
                assert b_old.requested_size == b_new.requested_size
                assert b_old.frames == b_new.frames


def test_awaiting_free_is_read_as_pending() -> None:
    d = run_program([("alloc", "a", 3 * M), ("free_requested", "a")])
    d["segments"][0]["blocks"][0]["state"] = "active_awaiting_free"
    assert load_torch_snapshot(d).segments[0].blocks[0].state == "active_pending_free"


# ---------------------------------------------------------------------- nothing runs
class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_calls_os_system_is_refused_and_nothing_runs(tmp_path: Path, raw: dict[str, Any]) -> None:
    marker = tmp_path / "pwned"
    evil = copy.deepcopy(raw)
    evil["device_traces"][0][3]["frames"] = _Evil(marker)   # hidden deep inside a real-looking snapshot
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps(evil))
    with pytest.raises(UnsafePickleError, match=r"global posix\.system|global nt\.system"):
        load_torch_snapshot(path)
    assert not marker.exists()
    assert isinstance(UnsafePickleError("x"), ValueError)  # the CLI reports it in one line


@pytest.mark.parametrize("data", [
    b"cos\nsystem\n(S'echo hi'\ntR.",                      # protocol 0: GLOBAL + REDUCE
    b"(cos\nsystem\nS'echo hi'\ni.",                       # INST
    pickle.dumps(eval, protocol=4),                        # STACK_GLOBAL (builtins.eval by reference)
    b"\x80\x02cbuiltins\nexec\nq\x00.",                    # a global not even called
], ids=["global-reduce", "inst", "stack-global", "bare-global"])
def test_every_global_is_refused(data: bytes) -> None:
    with pytest.raises(UnsafePickleError):
        load_torch_snapshot(data)


def test_persistent_ids_and_extension_codes_are_refused() -> None:
    with pytest.raises(UnsafePickleError, match="persistent id"):
        load_torch_snapshot(b"\x80\x02X\x01\x00\x00\x00aQ.")  # BINPERSID
    copyreg.add_extension("os", "system", 0xABC)
    try:
        with pytest.raises(UnsafePickleError, match=r"os\.system"):
            load_torch_snapshot(b"\x80\x02\x83\xbc\x0a\x00\x00.")  # EXT4 0xABC
    finally:
        copyreg.remove_extension("os", "system", 0xABC)


# ---------------------------------------------------------------------- the size cap
def test_size_cap_and_its_override(tmp_path: Path, raw: dict[str, Any]) -> None:
    data = pickle.dumps(raw)
    path = tmp_path / "s.pickle"
    path.write_bytes(data)
    for source in (path, data, io.BytesIO(data)):
        with pytest.raises(ValueError, match=r"larger than max_bytes=1000.*max_bytes=None"):
            load_torch_snapshot(source, max_bytes=1000)
    assert load_torch_snapshot(path, max_bytes=None).num_entries == len(raw["device_traces"][0])
    assert load_torch_snapshot(io.BytesIO(data), max_bytes=len(data)).num_entries > 0
    for bad in (0, -5, True, 1.5, "1MiB"):
        with pytest.raises(ValueError, match="max_bytes"):
            load_torch_snapshot(data, max_bytes=bad)  # type: ignore[arg-type]


def test_not_a_pickle(tmp_path: Path, raw: dict[str, Any]) -> None:
    for data in (b"", b"hello world", pickle.dumps(raw)[:-200]):
        with pytest.raises(ValueError, match="not a readable pickle"):
            load_torch_snapshot(data)
    with pytest.raises(OSError):
        load_torch_snapshot(tmp_path / "missing.pickle")
    with pytest.raises(ValueError, match="cannot read a int"):
        load_torch_snapshot(3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- malformed input, named
def _base() -> dict[str, Any]:
    return run_program([("alloc", "a", 3 * M), ("alloc", "b", 100), ("alloc", "c", 5 * M), ("free", "a")])


def _set(path: str, value: Any) -> Any:
    def edit(d: dict[str, Any]) -> None:
        keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
        target: Any = d
        for k in keys[:-1]:
            target = target[k]
        if value is _DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return edit


_DELETE = object()

CASES: list[tuple[str, Any, str]] = [
    ("top is an int", lambda d: 5, r"^snapshot: a int, expected a dict"),
    ("no segments", _set("segments", _DELETE), r"^snapshot: missing key 'segments'"),
    ("segments not a list", _set("segments", {}), r"^segments: dict is not a list"),
    ("segment not a dict", _set("segments.0", 7), r"^segments\[0\]: a segment is a int"),
    ("segment without address", _set("segments.0.address", _DELETE), r"^segments\[0\]: missing key 'address'"),
    ("address is a str", _set("segments.0.address", "0x10"), r"^segments\[0\]\.address: '0x10' is a str"),
    ("negative total", _set("segments.0.total_size", -1), r"^segments\[0\]\.total_size: -1 is out of range"),
    ("blocks missing", _set("segments.0.blocks", _DELETE), r"^segments\[0\]: missing key 'blocks'"),
    ("block size float", _set("segments.0.blocks.1.size", 512.0),
     r"^segments\[0\]\.blocks\[1\]\.size: 512\.0 is a float"),
    ("block size bool", _set("segments.0.blocks.1.size", True), r"^segments\[0\]\.blocks\[1\]\.size: True is a bool"),
    ("block size negative", _set("segments.0.blocks.1.size", -512),
     r"^segments\[0\]\.blocks\[1\]\.size: -512 is out of range"),
    ("block size zero", _set("segments.0.blocks.1.size", 0), r"^segments\[0\]\.blocks\[1\]\.size: 0 is not allowed"),
    ("block address off", _set("segments.0.blocks.0.size", 1024),
     r"^segments\[0\]\.blocks\[1\]\.address: 0x[0-9a-f]+ is not where the block must start"),
    ("blocks do not tile", lambda d: [{**s, "blocks": [{k: v for k, v in b.items() if k != "address"}
                                                      for b in s["blocks"][:-1]]} for s in d["segments"]],
     r"^segments\[0\]\.blocks: the block sizes sum to 8388608, not total_size 20971520"),
    ("block past the end", _set("segments.0.blocks.2.size", 64 * M),
     r"^segments\[0\]\.blocks\[2\]\.size: 67108864 runs past the segment's end"),
    ("unknown state", _set("segments.0.blocks.0.state", "busy"),
     r"^segments\[0\]\.blocks\[0\]\.state: 'busy' is not a block state"),
    ("requested over size", _set("segments.0.blocks.1.requested_size", 10 * M),
     r"^segments\[0\]\.blocks\[1\]\.requested_size: 10485760 exceeds the block's size"),
    ("allocated_size disagrees", _set("segments.0.allocated_size", 1),
     r"^segments\[0\]\.allocated_size: 1 disagrees with its blocks"),
    ("segment type", _set("segments.0.segment_type", "huge"), r"^segments\[0\]\.segment_type: 'huge' is not"),
    ("pool id", _set("segments.0.segment_pool_id", (1,)), r"^segments\[0\]\.segment_pool_id: \(1,\) is not a pair"),
    ("expandable not bool", _set("segments.0.is_expandable", 1), r"^segments\[0\]\.is_expandable: 1 is a int"),
    ("frame not a dict", _set("segments.0.blocks.1.frames", ["x"]),
     r"^segments\[0\]\.blocks\[1\]\.frames\[0\]: a frame is a str"),
    ("frame without line", _set("segments.0.blocks.1.frames.0.line", _DELETE),
     r"^segments\[0\]\.blocks\[1\]\.frames\[0\]: missing key 'line'"),
    ("traces not a list", _set("device_traces", {}), r"^device_traces: dict is not a list"),
    ("device trace not a list", _set("device_traces.0", 3), r"^device_traces\[0\]: int is not a list"),
    ("entry not a dict", _set("device_traces.0.2", [1]), r"^device_traces\[0\]\[2\]: an entry is a list"),
    ("unknown action", _set("device_traces.0.2.action", "allocate"),
     r"^device_traces\[0\]\[2\]\.action: 'allocate' is not a trace action"),
    ("action not a str", _set("device_traces.0.2.action", ["alloc"]),
     r"^device_traces\[0\]\[2\]\.action: \['alloc'\] is not a trace action"),
    ("alloc without addr", _set("device_traces.0.2.addr", _DELETE),
     r"^device_traces\[0\]\[2\]: missing key 'addr'"),
    ("negative size", _set("device_traces.0.2.size", -4), r"^device_traces\[0\]\[2\]\.size: -4 is a negative size"),
    ("size str", _set("device_traces.0.2.size", "4"), r"^device_traces\[0\]\[2\]\.size: '4' is a str"),
    ("huge addr", _set("device_traces.0.2.addr", 1 << 64), r"^device_traces\[0\]\[2\]\.addr: .* is out of range"),
    ("settings not a dict", _set("allocator_settings", []), r"^allocator_settings: list is not a dict"),
]


@pytest.mark.parametrize(("name", "edit", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_a_value_error_naming_the_place(name: str, edit: Any, pattern: str) -> None:
    d = _base()
    out = edit(d)
    with pytest.raises(ValueError, match=pattern):
        load_torch_snapshot(pickle.dumps(d if out is None else out))


def test_overlapping_segments_are_refused() -> None:
    d = run_program([("alloc", "a", 3 * M), ("alloc", "b", 30 * M)])
    d["segments"][1]["address"] = d["segments"][0]["address"] + M
    for i, b in enumerate(d["segments"][1]["blocks"]):
        b["address"] = d["segments"][1]["address"] + sum(x["size"] for x in d["segments"][1]["blocks"][:i])
    with pytest.raises(ValueError, match=r"^segments\[1\]: starts at .* inside segments\[0\].*segments overlap"):
        load_torch_snapshot(d)


def test_oom_entries_carry_device_free() -> None:
    d = run_program([("alloc", "a", 30 * M), ("alloc", "b", 30 * M)], capacity=40 * M)
    snap = load_torch_snapshot(d)
    (i,) = snap.traces[0].indices("oom").tolist()
    e = snap.traces[0].entry(i)
    assert e.action == "oom" and e.device_free == 40 * M - 30 * M and e.size == 30 * M and e.addr == 0
    assert snap.traces[0].count(Action.OOM) == 1 and ACTIONS[Action.OOM] == "oom"


@pytest.mark.parametrize("kwargs", [{}, {"expandable_segments": True}, {"ring_capacity": 700}, {"legacy": "history"}])
def test_the_fast_column_path_equals_the_entry_by_entry_path(kwargs: dict[str, Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from autoglm_lab.torchsnap import _load

    data = pickle.dumps(synthetic_snapshot(1, **kwargs))
    fast = load_torch_snapshot(data)
    monkeypatch.setattr(_load, "FAST_PATH", False)
    slow = load_torch_snapshot(data)
    for a, b in zip(fast.traces, slow.traces, strict=True):
        for col in ("action", "addr", "size", "stream", "time_us", "frame_id"):
            assert np.array_equal(getattr(a, col), getattr(b, col)), col
        assert a.frames == b.frames and list(a.extras) == list(b.extras)
        for key in a.extras:
            assert a.extras[key][0] == b.extras[key][0]
            assert np.array_equal(a.extras[key][1], b.extras[key][1])
    assert list(fast.traces[0].extras) == ["compile_context", "user_metadata"]
