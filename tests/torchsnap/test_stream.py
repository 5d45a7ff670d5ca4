"""The streaming reader: the same snapshot as the whole read, entries released as they are converted,
and every file it does not take read whole (same result, same error)."""

from __future__ import annotations

import copy
import io
import pickle
import random
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoglm_lab.torchsnap import TorchSnapshot, _load, load_torch_snapshot, synthetic_snapshot
from autoglm_lab.torchsnap._stream import Fallback, stream_unpickle

from .test_load import CASES, _base


def _same(a: TorchSnapshot, b: TorchSnapshot) -> None:
    assert a.segments == b.segments and a.form == b.form
    assert dict(a.allocator_settings) == dict(b.allocator_settings)
    assert a.external_annotations == b.external_annotations and dict(a.extra) == dict(b.extra)
    assert len(a.traces) == len(b.traces)
    for x, y in zip(a.traces, b.traces, strict=True):
        for col in ("action", "addr", "size", "stream", "time_us"):
            assert np.array_equal(getattr(x, col), getattr(y, col)), col
        assert [x.frames_of(i) for i in range(len(x))] == [y.frames_of(i) for i in range(len(y))]
        assert list(x.extras) == list(y.extras)
        for key in x.extras:
            assert x.extras[key][0] == y.extras[key][0]
            assert np.array_equal(x.extras[key][1], y.extras[key][1])


def _whole(data: bytes, monkeypatch: pytest.MonkeyPatch) -> TorchSnapshot:
    with monkeypatch.context() as m:
        m.setattr(_load, "STREAMING", False)
        return load_torch_snapshot(data)


def _streamed_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the whole read fail loudly: a load that passes then went through the streaming reader."""
    def refuse(stream: Any) -> Any:
        raise AssertionError("fell back to the whole read")
    monkeypatch.setattr(_load, "_unpickle", refuse)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("kwargs", [{}, {"expandable_segments": True}, {"ring_capacity": 700},
                                    {"legacy": "history"}, {"legacy": "list"}],
                         ids=["plain", "expandable", "ring", "history", "list"])
def test_streamed_equals_whole(kwargs: dict[str, Any], protocol: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = pickle.dumps(synthetic_snapshot(2, **kwargs), protocol=protocol)
    whole = _whole(data, monkeypatch)
    monkeypatch.setattr(_load._StreamedTrace, "CHUNK", 37)  # many parts: joins, releases, refs across parts
    _streamed_only(monkeypatch)
    _same(load_torch_snapshot(data), whole)
    if "legacy" not in kwargs:
        assert whole.num_entries > 37 * 5


def test_paths_and_file_objects_stream_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = pickle.dumps(synthetic_snapshot(4))
    whole = _whole(data, monkeypatch)
    path = tmp_path / "s.pickle"
    path.write_bytes(data)
    _streamed_only(monkeypatch)
    _same(load_torch_snapshot(path), whole)
    fh = io.BytesIO(b"xx" + data)
    fh.seek(2)
    _same(load_torch_snapshot(fh), whole)


def test_entries_are_released_as_they_are_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The streaming read's peak is a fraction of the whole read's (which holds every entry's dict)."""
    data = pickle.dumps(synthetic_snapshot(5, steps=10**9, max_entries=15_000, extras=False), protocol=4)

    def peak(streaming: bool) -> int:
        with monkeypatch.context() as m:
            m.setattr(_load, "STREAMING", streaming)
            m.setattr(_load._StreamedTrace, "CHUNK", 1024)
            tracemalloc.start()
            snap = load_torch_snapshot(data)
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert snap.num_entries >= 15_000
        return top

    whole, streamed = peak(False), peak(True)
    assert streamed < 0.4 * whole, (streamed, whole)


def test_a_reference_to_a_converted_entry_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_load._StreamedTrace, "CHUNK", 16)
    for edit in ("entry twice", "trace again", "entries in a list"):
        raw = synthetic_snapshot(6)
        assert isinstance(raw, dict)
        trace = raw["device_traces"][0]
        if edit == "entry twice":
            trace[1500] = trace[3]  # in a later APPENDS batch (of 1000) than the first
        elif edit == "trace again":
            raw["external_annotations"] = [{"entries": trace}]
        else:
            raw["external_annotations"] = [[trace[2], trace[3]]]
        data = pickle.dumps(raw, protocol=4)
        with pytest.raises(Fallback):
            stream_unpickle(io.BytesIO(data), lambda d: _load._StreamedTrace(d, _load._Frames()), limit=None,
                            label="x")
        _same(load_torch_snapshot(data), _whole(data, monkeypatch))


def test_a_converted_frame_list_referenced_elsewhere_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame list converted with its entries stands in the memo as its table row: referenced again
    from an entry's frames that is right, from anywhere else the snapshot is read whole."""
    raw = synthetic_snapshot(6)
    assert isinstance(raw, dict)
    trace = raw["device_traces"][0]
    late = next(e for e in trace[100:] if e.get("frames"))
    # after device_traces in the pickle: as a dict's value, and as items of a list of memo references
    raw["external_annotations"] = [{"stack": late["frames"]}, [late["frames"], trace[0]["frames"]]]
    data = pickle.dumps(raw, protocol=4)
    monkeypatch.setattr(_load._StreamedTrace, "CHUNK", 8)
    whole = _whole(data, monkeypatch)
    assert whole.external_annotations[0]["stack"] == late["frames"]
    _same(load_torch_snapshot(data), whole)
    # the entries' own references to converted lists (an allocation's, again at its free) are fine
    del raw["external_annotations"]
    data = pickle.dumps(raw, protocol=4)
    whole = _whole(data, monkeypatch)
    _streamed_only(monkeypatch)
    _obj, refs = stream_unpickle(io.BytesIO(data), lambda d: _load._StreamedTrace(d, _load._Frames()), limit=None,
                                 label="x")
    assert refs > 0
    _same(load_torch_snapshot(data), whole)


@pytest.mark.parametrize("protocol", [0, 1])
def test_text_protocols_are_read_whole(protocol: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = pickle.dumps(synthetic_snapshot(1), protocol=protocol)
    with pytest.raises(Fallback, match=r"protocol|opcode"):
        stream_unpickle(io.BytesIO(data), lambda d: [], limit=None, label="x")
    _same(load_torch_snapshot(data), _whole(data, monkeypatch))


@pytest.mark.parametrize(("name", "edit", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_malformed_input_names_the_same_place_streamed(name: str, edit: Any, pattern: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    d = _base()
    d["device_traces"][0] = d["device_traces"][0] * 9     # several parts: the index is the whole trace's
    out = edit(d)
    data = pickle.dumps(d if out is None else out, protocol=4)
    with pytest.raises(ValueError) as whole:
        _whole(data, monkeypatch)
    monkeypatch.setattr(_load._StreamedTrace, "CHUNK", 4)
    with pytest.raises(ValueError, match=pattern) as streamed:
        load_torch_snapshot(data)
    assert str(streamed.value) == str(whole.value)


def test_a_bad_entry_deep_in_the_trace_is_named_by_its_whole_index(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = synthetic_snapshot(7)
    assert isinstance(raw, dict)
    raw["device_traces"][0][150]["size"] = "big"
    monkeypatch.setattr(_load._StreamedTrace, "CHUNK", 16)
    with pytest.raises(ValueError, match=r"^device_traces\[0\]\[150\]\.size: 'big' is a str"):
        load_torch_snapshot(pickle.dumps(raw))


def _random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(12 if depth < 4 else 7)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, 1, -1, 255, 256, 65535, 65536, -(2 ** 31), 2 ** 31, 2 ** 63, -(2 ** 70), 10 ** 40])
    if kind == 2:
        return rng.randrange(-(2 ** 40), 2 ** 40)
    if kind == 3:
        return rng.random() * 10 ** rng.randrange(-5, 30)
    if kind == 4:
        return rng.choice(["", "device_traces", "frames", "é∂\U0001f600", "x" * 300, "\ud800"])
    if kind == 5:
        return "".join(rng.choice("abcdef") for _ in range(rng.randrange(8)))
    if kind == 6:
        return ()
    if kind in (7, 8):
        return [_random_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 2, 5, 1001]) if depth < 2 else 3)]
    if kind == 9:
        return tuple(_random_value(rng, depth + 1) for _ in range(rng.randrange(6)))
    return {rng.choice(["a", "device_traces", "b", 3, (1, 2), None]) if rng.random() < 0.3 else str(k):
            _random_value(rng, depth + 1) for k in range(rng.randrange(7))}


def test_lists_of_memo_references_long_short_and_mixed() -> None:
    """A list of objects seen before is read in one go (BINGET runs, LONG_BINGET runs); mixed runs,
    and one that meets the buffer's end, by the loop: the same objects either way."""
    shared = [{"i": k} for k in range(300)]
    obj = {"a": shared, "short": [shared[1], shared[2], shared[1]], "long": [shared[290], shared[299], shared[290]],
           "mixed": [shared[1], shared[299], shared[2]], "one": [shared[3]], "empty": [],
           "big": [shared[k % 300] for k in range(200_000)]}  # past the first read of the file
    data = pickle.dumps(obj, protocol=4)
    out, refs = stream_unpickle(io.BytesIO(data), lambda d: [], limit=None, label="x")
    assert out == pickle.loads(data) and refs == 0
    for key in ("short", "long", "mixed", "one", "big"):
        assert all(x is out["a"][y["i"]] for x, y in zip(out[key], obj[key], strict=True)), key


@pytest.mark.parametrize("seed", range(40))
def test_the_reader_unpickles_data_like_pickle_does(seed: int) -> None:
    """Random nested data (shared objects included) in protocols 2-5: the reader builds what pickle
    builds; where the top dict has device_traces, its lists go to the sinks in order."""
    rng = random.Random(seed)
    value = _random_value(rng, 0)
    shared = [1, "s"]
    obj = {"segments": [value, shared], "device_traces": [[{"k": shared}] * 3, [], [value]], "z": shared} \
        if seed % 2 else value
    class Sink(list):
        def extend(self, items: Any) -> None:  # type: ignore[override]
            super().extend(items)

    for protocol in (2, 3, 4, 5):
        data = pickle.dumps(obj, protocol=protocol)
        got: list[tuple[int, Sink]] = []
        out, refs = stream_unpickle(io.BytesIO(data), lambda d, got=got: got.append((d, Sink())) or got[-1][1],
                                    limit=None, label="x")
        assert refs == 0
        expect = pickle.loads(data)
        assert _plain(out) == expect
        traces = expect.get("device_traces") if isinstance(expect, dict) else None
        lists = [d for d, v in enumerate(traces) if type(v) is list] if type(traces) is list else []
        assert [d for d, _ in got] == lists
        assert all(out["device_traces"][d] is s for d, s in got)
        if seed % 2:
            assert lists == [0, 1, 2]


def _plain(x: Any) -> Any:
    if isinstance(x, list):
        return [_plain(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_plain(v) for v in x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def test_a_string_that_is_not_utf8_is_named_by_the_whole_read() -> None:
    data = b"\x80\x04\x8c\x02\xff\xfe\x94."
    with pytest.raises(Fallback, match="UnicodeDecodeError"):
        stream_unpickle(io.BytesIO(data), lambda d: [], limit=None, label="x")
    with pytest.raises(ValueError, match="not a readable pickle"):
        load_torch_snapshot(data)


@pytest.mark.parametrize("cut", [1, 2, 10, 100, -1])
def test_a_truncated_stream_falls_back(cut: int) -> None:
    data = pickle.dumps(copy.deepcopy(synthetic_snapshot(1)), protocol=4)
    with pytest.raises(Fallback):
        stream_unpickle(io.BytesIO(data[:cut]), lambda d: [], limit=None, label="x")
