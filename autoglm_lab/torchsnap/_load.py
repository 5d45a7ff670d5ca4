"""`load_torch_snapshot`: read a pickled PyTorch memory snapshot without running any of its code.

A pickle is a program: ``pickle.load`` of an untrusted file can call any function (``os.system``
included) through the opcodes that look up a global. The snapshot format needs none of them (only
dict, list, tuple, str, int, float, bool and None), so loading never imports or calls anything:

- files, bytes and seekable streams go through the streaming reader (`_stream`): a pickle machine
  for the data-only opcodes that converts each device's trace entries to numpy columns (`Trace`) as
  they stream in, so a million entries never exist as a million dicts at once;
- anything it does not take (text protocols, a global, a malformed stream, a problem in an entry)
  is read whole by the C unpickler, which refuses every global and persistent id, and validated
  here: that path names every problem, so both accept the same files with the same messages.

Every malformed input is a `ValueError` naming where it is (``segments[3].blocks[2].size: ...``).
"""

from __future__ import annotations

import io
import itertools
import operator
import os
import pickle
import stat
from collections.abc import Callable, Mapping
from itertools import repeat
from types import MappingProxyType
from typing import Any, BinaryIO, cast

import numpy as np

from ._schema import ACTIONS, Action, Frame, TorchBlock, TorchSegment, TorchSnapshot, Trace
from ._stream import CONSUMED, Fallback, FrameRef, stream_unpickle

__all__ = ["load_torch_snapshot", "UnsafePickleError", "DEFAULT_MAX_BYTES", "parse_snapshot"]

#: default cap on the pickle's size (2 GiB); ``max_bytes=None`` lifts it
DEFAULT_MAX_BYTES = 2 << 30

_I64 = 1 << 63
_ACTION_CODE = {name: i for i, name in enumerate(ACTIONS)}
_ENTRY_KEYS = frozenset({"action", "addr", "size", "stream", "time_us", "frames", "device_free"})
_SEGMENT_KEYS = frozenset({"device", "address", "total_size", "allocated_size", "active_size", "requested_size",
                           "stream", "segment_type", "segment_pool_id", "is_expandable", "frames", "blocks"})
_BLOCK_KEYS = frozenset({"address", "size", "requested_size", "state", "frames", "history"})
_FRAME_KEYS = frozenset({"filename", "line", "name"})
_TOP_KEYS = frozenset({"segments", "device_traces", "allocator_settings", "external_annotations"})
_STATES = {"active_allocated": "active_allocated", "active_pending_free": "active_pending_free",
           "active_awaiting_free": "active_pending_free", "inactive": "inactive"}
_OOM = int(Action.OOM)
FAST_PATH = True  # tests switch these off to compare the paths
STREAMING = True
_SNAPSHOT = int(Action.SNAPSHOT)


class UnsafePickleError(ValueError):
    """The pickle asked to import or call something: refused before anything ran."""


class _DataOnlyUnpickler(pickle.Unpickler):
    """Builds containers and scalars only: every global lookup (the way a pickle calls code, also
    through REDUCE, BUILD, NEWOBJ, INST and the copyreg extension codes) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise UnsafePickleError(
            f"the pickle asks for the global {module}.{name}, refused: a PyTorch memory snapshot holds only "
            f"dicts, lists, tuples, str, int, float, bool and None, and this loader never runs code from a file")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("the pickle uses a persistent id, refused: a PyTorch memory snapshot has none")


class _CappedReader(io.RawIOBase):
    """A file object that fails once more than ``limit`` bytes were read from it."""

    def __init__(self, raw: BinaryIO, limit: int, label: str) -> None:
        super().__init__()
        self._raw = raw
        self._left = limit
        self._limit = limit
        self._label = label

    def readable(self) -> bool:
        return True

    def _count(self, n: int) -> None:
        self._left -= n
        if self._left < 0:
            raise ValueError(f"{self._label} is larger than max_bytes={self._limit}; pass a larger max_bytes "
                             f"(or max_bytes=None) to load it")

    def readinto(self, buf: Any) -> int:
        data = self._raw.read(len(buf))
        n = len(data)
        buf[:n] = data
        self._count(n)
        return n

    def readline(self, size: int | None = -1) -> bytes:
        line = self._raw.readline(-1 if size is None else size)
        self._count(len(line))
        return line


def _unpickle(stream: BinaryIO) -> Any:
    try:
        return _DataOnlyUnpickler(stream).load()
    except UnsafePickleError:
        raise
    except ValueError as exc:
        if "max_bytes" in str(exc):
            raise
        raise ValueError(f"not a readable pickle: {exc}") from None
    except (pickle.UnpicklingError, EOFError, IndexError, KeyError, TypeError, AttributeError,
            OverflowError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a readable pickle: {type(exc).__name__}: {exc}") from None


def load_torch_snapshot(source: str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO
                        | Mapping[str, Any] | list[Any], *, max_bytes: int | None = DEFAULT_MAX_BYTES
                        ) -> TorchSnapshot:
    """Load a PyTorch memory snapshot: a path to the pickle ``_dump_snapshot`` wrote, its bytes, a
    binary file object, or the dict ``torch.cuda.memory._snapshot()`` returned (or a legacy bare
    list of segments). Loading never runs code from the file (`UnsafePickleError`).

    max_bytes: refuse a pickle larger than this (default 2 GiB); ``None`` lifts the cap.
    Raises ValueError naming the place of anything malformed; OSError if the file cannot be read.
    """
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise ValueError(f"max_bytes={max_bytes!r} is not allowed: give a positive int, or None for no cap")
    if isinstance(source, Mapping | list):
        return parse_snapshot(source, source="<dict>" if isinstance(source, Mapping) else "<list>")
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if max_bytes is not None and len(data) > max_bytes:
            raise ValueError(f"the pickle is {len(data)} bytes, larger than max_bytes={max_bytes}; pass a larger "
                             f"max_bytes (or max_bytes=None) to load it")
        snap = _load_streaming(io.BytesIO(data), None, "<bytes>")
        return snap or parse_snapshot(_unpickle(io.BytesIO(data)), source="<bytes>")
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise ValueError(f"{path!r} is {size} bytes, larger than max_bytes={max_bytes}; pass a larger "
                                 f"max_bytes (or max_bytes=None) to load it")
            if stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                snap = _load_streaming(fh, max_bytes, path)
                if snap is not None:
                    return snap
                fh.seek(0)
                obj = _unpickle(fh)
            else:  # a pipe or device: read once, whole, through a counter
                obj = _unpickle(fh if max_bytes is None else io.BufferedReader(_CappedReader(fh, max_bytes,
                                                                                             repr(path))))
        return parse_snapshot(obj, source=path)
    if hasattr(source, "read"):
        label = str(getattr(source, "name", "<stream>"))
        seekable = getattr(source, "seekable", lambda: False)()
        if seekable:
            start = source.tell()
            snap = _load_streaming(source, max_bytes, label)
            if snap is not None:
                return snap
            source.seek(start)
        stream = source if max_bytes is None else io.BufferedReader(_CappedReader(source, max_bytes, repr(label)))
        return parse_snapshot(_unpickle(stream), source=label)
    raise ValueError(f"load_torch_snapshot cannot read a {type(source).__name__}: give a path, bytes, a binary "
                     f"file object or the snapshot dict")


def _load_streaming(fh: BinaryIO, max_bytes: int | None, label: str) -> TorchSnapshot | None:
    """The snapshot read by the streaming reader, or None when the file is for the whole read (the
    caller rewinds and reads it with the refusing C unpickler, which names any problem)."""
    if not STREAMING:
        return None
    frames = _Frames()
    sinks: list[_StreamedTrace] = []

    def new_sink(device: int) -> _StreamedTrace:
        sinks.append(_StreamedTrace(device, frames))
        return sinks[-1]

    try:
        obj, refs = stream_unpickle(fh, new_sink, limit=max_bytes, label=repr(label))
        snap = parse_snapshot(obj, source=label, frames=frames)
        if refs != sum(s.refs for s in sinks):  # a converted frame list referenced outside an entry's frames
            return None
        return snap
    except Fallback:
        return None


# ---------------------------------------------------------------------- validation
def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{where}: {message}")


def _type_name(value: Any) -> str:
    return "bool" if isinstance(value, bool) else type(value).__name__


def _int(d: Mapping[str, Any], key: str, where: str, *, default: int | None = None, low: int = 0) -> int:
    if key not in d:
        if default is None:
            raise _fail(where, f"missing key {key!r}")
        return default
    value = d[key]
    if type(value) is not int:
        raise _fail(f"{where}.{key}", f"{value!r} is a {_type_name(value)}, expected an int")
    if not low <= value < _I64:
        raise _fail(f"{where}.{key}", f"{value} is out of range: expected an int from {low} to 2**63-1")
    return value


def _str(d: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    if key not in d:
        if default is None:
            raise _fail(where, f"missing key {key!r}")
        return default
    value = d[key]
    if type(value) is not str:
        raise _fail(f"{where}.{key}", f"{value!r} is a {_type_name(value)}, expected a str")
    return value


def _extra(d: Mapping[str, Any], known: frozenset[str]) -> tuple[tuple[str, Any], ...]:
    if d.keys() <= known:
        return ()
    return tuple(sorted(((str(k), v) for k, v in d.items() if k not in known), key=lambda kv: kv[0]))


class _Frames:
    """Converts frame lists into one table of distinct stacks. Each list object is converted once
    (torch shares a list between an allocation and its free), each frame dict once (torch shares a
    dict between every stack the frame is in), and stacks with equal frames share a table row."""

    def __init__(self) -> None:
        self._lists: dict[int, tuple[Any, int]] = {}   # id(list) -> (the list, kept alive; table index)
        self._frame_of: dict[int, Frame] = {}          # id(frame dict) -> its Frame, one per distinct value
        self._alive: list[Any] = []                    # those dicts, kept alive: their ids stay theirs
        self._interned: dict[Frame, Frame] = {}
        self._rows: dict[tuple[int, ...], int] = {}    # ids of a stack's (interned) Frames -> table index
        self._rows_by_dicts: dict[tuple[int, ...], int] = {}  # ids of a stack's frame dicts -> table index
        self._refs: dict[int, FrameRef] = {}
        self.table: list[tuple[Frame, ...]] = []

    def frame(self, f: Any, where: str) -> Frame:
        hit = self._frame_of.get(id(f))
        if hit is not None:
            return hit
        if type(f) is not dict:
            raise _fail(where, f"a frame is a {_type_name(f)}, expected a dict with filename, line, name")
        fr = Frame(_str(f, "filename", where), _int(f, "line", where, low=-_I64), _str(f, "name", where),
                   _extra(f, _FRAME_KEYS))
        try:
            fr = self._interned.setdefault(fr, fr)
        except TypeError:  # an unhashable extra: a frame of its own
            pass
        self._frame_of[id(f)] = fr
        self._alive.append(f)
        return fr

    def tuple_of(self, frames: Any, where: str) -> tuple[Frame, ...]:
        idx = self.index(frames, where) if frames else -1
        return self.table[idx] if idx >= 0 else ()

    def index(self, frames: Any, where: str) -> int:
        if frames is None:
            return -1
        hit = self._lists.get(id(frames))
        if hit is not None and hit[0] is frames:
            return hit[1]
        if type(frames) is FrameRef and frames is not CONSUMED:
            return frames.index
        if type(frames) is not list and type(frames) is not tuple:
            raise _fail(where, f"{_type_name(frames)} is not a list of frames")
        if not frames:
            self._lists[id(frames)] = (frames, -1)
            return -1
        # C-level passes (stacks run to tens of frames): a stack of frame dicts seen before in that order
        # is that row; the dicts are kept alive once seen, so their ids stand for them
        by_dicts = tuple(map(id, frames))
        idx = self._rows_by_dicts.get(by_dicts)
        if idx is None:
            seen = list(map(self._frame_of.get, by_dicts))
            # a frame not seen before is None (`None in` would call Frame.__eq__ per frame)
            frs = cast("list[Frame]", seen) if all(seen) else [self.frame(f, f"{where}[{k}]")
                                                                for k, f in enumerate(frames)]
            key = tuple(map(id, frs))  # equal Frames are one object, so their ids stand for their values
            idx = self._rows.get(key)
            if idx is None:
                idx = self._rows[key] = len(self.table)
                self.table.append(tuple(frs))
            self._rows_by_dicts[by_dicts] = idx
        self._lists[id(frames)] = (frames, idx)
        return idx

    def release(self) -> dict[int, Any]:
        """``{id(list): FrameRef}`` for the lists converted since the last call, which are dropped
        from the cache: the streaming reader puts the refs in their memo slots, freeing the lists."""
        refs = self._refs
        out = {}
        for key, (_lst, idx) in self._lists.items():
            ref = refs.get(idx)
            if ref is None:
                ref = refs[idx] = FrameRef(idx)
            out[key] = ref
        self._lists = {}
        return out


def _block(b: Any, where: str, frames: _Frames, expected_address: int) -> tuple[TorchBlock, bool]:
    if type(b) is not dict:
        raise _fail(where, f"a block is a {_type_name(b)}, expected a dict")
    size = _int(b, "size", where)
    if size <= 0:
        raise _fail(f"{where}.size", f"{size} is not allowed: a block has a positive size")
    state_raw = _str(b, "state", where)
    state = _STATES.get(state_raw)
    if state is None:
        raise _fail(f"{where}.state", f"{state_raw!r} is not a block state: expected one of "
                                      f"'active_allocated', 'active_pending_free' ('active_awaiting_free'), 'inactive'")
    address = _int(b, "address", where, default=expected_address)
    if address != expected_address:
        raise _fail(f"{where}.address", f"{address:#x} is not where the block must start ({expected_address:#x}: the "
                                        f"segment's address plus the sizes of the blocks before it)")
    legacy = "history" in b and "frames" not in b
    if legacy:
        history = b["history"]
        if type(history) is not list:
            raise _fail(f"{where}.history", f"{_type_name(history)} is not a list")
        first = history[0] if history else {}
        if type(first) is not dict:
            raise _fail(f"{where}.history[0]", f"{_type_name(first)} is not a dict")
        requested = _int(first, "real_size", f"{where}.history[0]", default=size) if history else size
        frame_t = frames.tuple_of(first.get("frames"), f"{where}.history[0].frames")
    else:
        requested = _int(b, "requested_size", where, default=size)
        frame_t = frames.tuple_of(b.get("frames"), f"{where}.frames")
    if state != "inactive" and requested > size:
        raise _fail(f"{where}.requested_size", f"{requested} exceeds the block's size {size}")
    return TorchBlock(address, size, requested, state, frame_t, _extra(b, _BLOCK_KEYS)), legacy


def _segment(s: Any, where: str, frames: _Frames) -> tuple[TorchSegment, bool]:
    if type(s) is not dict:
        raise _fail(where, f"a segment is a {_type_name(s)}, expected a dict")
    address = _int(s, "address", where)
    total = _int(s, "total_size", where)
    if total <= 0:
        raise _fail(f"{where}.total_size", f"{total} is not allowed: a segment has a positive size")
    raw_blocks = s.get("blocks")
    if raw_blocks is None:
        raise _fail(where, "missing key 'blocks'")
    if type(raw_blocks) is not list:
        raise _fail(f"{where}.blocks", f"{_type_name(raw_blocks)} is not a list")
    blocks = []
    legacy = False
    at = address
    for j, b in enumerate(raw_blocks):
        blk, leg = _block(b, f"{where}.blocks[{j}]", frames, at)
        legacy |= leg
        at += blk.size
        if at - address > total:
            raise _fail(f"{where}.blocks[{j}].size", f"{blk.size} runs past the segment's end: the blocks up to "
                                                     f"here take {at - address} bytes of total_size {total}")
        blocks.append(blk)
    if at - address != total:
        raise _fail(f"{where}.blocks", f"the block sizes sum to {at - address}, not total_size {total}: blocks "
                                       f"must tile their segment")
    allocated = sum(b.size for b in blocks if b.state == "active_allocated")
    active = sum(b.size for b in blocks if b.state != "inactive")
    requested = sum(b.requested_size for b in blocks if b.state != "inactive")
    for key, value in (("allocated_size", allocated), ("active_size", active), ("requested_size", requested)):
        if key in s and _int(s, key, where) != value:
            raise _fail(f"{where}.{key}", f"{s[key]} disagrees with its blocks ({value})")
    seg_type = _str(s, "segment_type", where, default="")
    expandable = s.get("is_expandable", False)
    if type(expandable) is not bool:
        raise _fail(f"{where}.is_expandable", f"{expandable!r} is a {_type_name(expandable)}, expected a bool")
    if not seg_type:
        seg_type = "small" if total == 2 << 20 and not expandable else "large"
    elif seg_type not in ("small", "large"):
        raise _fail(f"{where}.segment_type", f"{seg_type!r} is not 'small' or 'large'")
    pool_id = s.get("segment_pool_id", (0, 0))
    if (type(pool_id) not in (tuple, list) or len(pool_id) != 2
            or any(type(v) is not int or not -_I64 <= v < _I64 for v in pool_id)):
        raise _fail(f"{where}.segment_pool_id", f"{pool_id!r} is not a pair of ints")
    seg = TorchSegment(
        device=_int(s, "device", where, default=0), address=address, total_size=total, allocated_size=allocated,
        active_size=active, requested_size=requested, stream=_int(s, "stream", where, default=0, low=-_I64),
        segment_type=seg_type, segment_pool_id=(int(pool_id[0]), int(pool_id[1])), is_expandable=expandable,
        blocks=tuple(blocks), frames=frames.tuple_of(s.get("frames"), f"{where}.frames"),
        extra=_extra(s, _SEGMENT_KEYS))
    return seg, legacy


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


def _bad_entry(e: dict[str, Any], where: str, code: int) -> ValueError:
    """The precise error for an entry the fast path refused."""
    name = ACTIONS[code]
    addr_key = "device_free" if code == _OOM and "device_free" in e else "addr"
    for key, low in ((addr_key, 0), ("size", 0), ("stream", -_I64), ("time_us", -_I64)):
        if key not in e:
            if key in ("stream", "time_us") or (key == "addr" and code == _SNAPSHOT):
                continue
            needs = "device_free (or addr), size" if code == _OOM else "addr, size"
            return _fail(where, f"missing key {key!r} (an {name!r} entry needs {needs})")
        value = e[key]
        if type(value) is not int:
            return _fail(f"{where}.{key}", f"{value!r} is a {_type_name(value)}, expected an int")
        if not low <= value < _I64:
            what = "a negative size" if key == "size" and value < 0 else "out of range"
            return _fail(f"{where}.{key}", f"{value} is {what}: expected an int from {low} to 2**63-1")
    return _fail(where, "malformed entry")


_MISSING = object()


def _column(entries: list[Any], key: str) -> list[Any]:
    return list(map(dict.get, entries, repeat(key), repeat(_MISSING)))


def _missing(col: list[Any]) -> np.ndarray:
    if not col.count(_MISSING):
        return np.zeros(len(col), dtype=bool)
    return np.fromiter(map(operator.is_, col, repeat(_MISSING)), dtype=bool, count=len(col))


def _ints(col: list[Any]) -> np.ndarray | None:
    """An int64 column, or None if any value is not an int (bool included) or out of int64 range."""
    if not set(map(type, col)) <= {int}:
        return None
    try:
        return np.array(col, dtype=np.int64)
    except OverflowError:
        return None


def _trace_fast(entries: list[Any], device: int, where: str, frames: _Frames, base: int = 0) -> Trace | None:
    """The columns built with C-level passes over the entries (no Python loop per entry). Returns None
    when anything is unusual (a missing key, a bad type, an out-of-range value): the per-entry path
    then finds and names the problem."""
    n = len(entries)
    try:
        keys = set().union(*entries) if n else set()
        codes = list(map(_ACTION_CODE.get, _column(entries, "action")))
    except TypeError:  # an entry that is not a dict, or an unhashable action or key
        return None
    if None in codes:
        return None
    action = np.array(codes, dtype=np.int8)
    addr_col = _column(entries, "addr")
    for i in np.flatnonzero(action == _OOM).tolist():  # an oom's device_free stands in the addr column
        e = entries[i]
        if "device_free" in e:
            addr_col[i] = e["device_free"]
    addr_missing = _missing(addr_col)
    if addr_missing.any():
        if not np.all(action[addr_missing] == _SNAPSHOT):
            return None
        for i in np.flatnonzero(addr_missing).tolist():
            addr_col[i] = 0
    cols = []
    for key, default in (("addr", None), ("size", None), ("stream", 0), ("time_us", -1)):
        col = addr_col if key == "addr" else _column(entries, key)
        if default is not None:
            for i in np.flatnonzero(_missing(col)).tolist():
                col[i] = default
        arr = _ints(col)
        if arr is None:
            return None
        cols.append(arr)
    addr, size, stream, time_us = cols
    if (addr < 0).any() or (size < 0).any():
        return None
    fid = np.full(n, -1, dtype=np.int32)
    if "frames" in keys:
        frame_col = _column(entries, "frames")
        present = np.flatnonzero(~_missing(frame_col))
        ids = np.array(list(map(id, frame_col)), dtype=np.uint64)[present]
        _uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        table = np.empty(first.size, dtype=np.int32)
        for k in np.argsort(first, kind="stable").tolist():  # first appearance first: the table's order
            i = int(present[first[k]])
            table[k] = frames.index(frame_col[i], f"{where}[{base + i}].frames") if frame_col[i] else -1
        fid[present] = table[inverse.reshape(-1)]
    extras = {}
    for key in sorted(keys - _ENTRY_KEYS, key=str):
        col = _column(entries, key)
        extras.update(_extras_of(key, col, np.flatnonzero(~_missing(col)).tolist(), n))
    for c in (action, addr, size, stream, time_us, fid):
        c.flags.writeable = False
    return Trace(device, action, addr, size, stream, time_us, fid, frames=(), extras=MappingProxyType(extras))


def _interner(values: list[Any]) -> Callable[[Any], int]:
    """``at(v)``: v's index in ``values``, appended on first sight (an unhashable value: kept, not shared)."""
    lookup: dict[Any, int] = {}

    def at(v: Any) -> int:
        try:
            k = lookup.get(v)
            if k is None:
                k = lookup[v] = len(values)
                values.append(v)
        except TypeError:
            k = len(values)
            values.append(v)
        return k
    return at


def _extras_of(key: Any, col: Any, rows: list[int], n: int) -> dict[str, tuple[tuple[Any, ...], np.ndarray]]:
    values: list[Any] = []
    at = _interner(values)
    column = np.full(n, -1, dtype=np.int32)
    for i in rows:
        column[i] = at(_freeze(col[i]))
    column.flags.writeable = False
    return {str(key): (tuple(values), column)}


def _extras(entries: list[Any], rows: list[int], n: int) -> dict[str, tuple[tuple[Any, ...], np.ndarray]]:
    """Columns of the keys beyond the known ones in entries ``rows`` (interned values; -1: absent)."""
    keys: set[Any] = set().union(*(entries[i].keys() for i in rows)) - _ENTRY_KEYS
    out: dict[str, tuple[tuple[Any, ...], np.ndarray]] = {}
    for key in sorted(keys, key=str):
        col = {i: entries[i][key] for i in rows if key in entries[i]}
        out.update(_extras_of(key, col, list(col), n))
    return out


def _trace(entries: Any, device: int, where: str, frames: _Frames, base: int = 0) -> Trace:
    if type(entries) is not list:
        raise _fail(where, f"{_type_name(entries)} is not a list of trace entries")
    if FAST_PATH:
        trace = _trace_fast(entries, device, where, frames, base)
        if trace is not None:
            return trace
    n = len(entries)
    actions = bytearray(n)
    addrs: list[int] = [0] * n
    sizes: list[int] = [0] * n
    streams: list[int] = [0] * n
    times: list[int] = [-1] * n
    fids: list[int] = [-1] * n
    odd: list[int] = []
    codes = _ACTION_CODE
    known = _ENTRY_KEYS
    index = frames.index
    lim = _I64
    for i, e in enumerate(entries):
        if type(e) is not dict:
            raise _fail(f"{where}[{base + i}]", f"an entry is a {_type_name(e)}, expected a dict")
        a = e.get("action")
        c = codes.get(a) if type(a) is str else None
        if c is None:
            raise _fail(f"{where}[{base + i}].action",
                        f"{a!r} is not a trace action: expected one of {', '.join(ACTIONS)}")
        ad = e.get("device_free", e.get("addr")) if c == _OOM else e.get("addr", 0 if c == _SNAPSHOT else None)
        sz = e.get("size")
        st = e.get("stream", 0)
        t = e.get("time_us", -1)
        if (type(ad) is not int or type(sz) is not int or type(st) is not int or type(t) is not int
                or not (0 <= ad < lim and 0 <= sz < lim and -lim <= st < lim and -lim <= t < lim)):
            raise _bad_entry(e, f"{where}[{base + i}]", c)
        actions[i] = c
        addrs[i] = ad
        sizes[i] = sz
        streams[i] = st
        times[i] = t
        fr = e.get("frames")
        if fr:
            fids[i] = index(fr, f"{where}[{base + i}].frames")
        if not e.keys() <= known:
            odd.append(i)
    cols: list[np.ndarray] = [np.frombuffer(bytes(actions), dtype=np.int8).copy()]
    cols += [np.array(x, dtype=np.int64) for x in (addrs, sizes, streams, times)]
    cols.append(np.array(fids, dtype=np.int32))
    for col_ in cols:
        col_.flags.writeable = False
    extras = _extras(entries, odd, n)
    return Trace(device, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], frames=(),
                 extras=MappingProxyType(extras))


class _StreamedTrace:
    """``device_traces[d]`` as the streaming reader appends it: converted ``CHUNK`` entries at a time,
    the entries and their frame lists then released (see `_stream`)."""

    CHUNK = 1 << 15

    def __init__(self, device: int, frames: _Frames) -> None:
        self.device = device
        self.frames = frames
        self.pending: list[Any] = []
        self.parts: list[Trace] = []
        self.count = 0
        self.refs = 0      # entries whose frames were a converted list's FrameRef

    def extend(self, items: list[Any]) -> dict[int, Any] | None:
        self.pending += items
        return self._convert() if len(self.pending) >= self.CHUNK else None

    def _convert(self) -> dict[int, Any]:
        entries, self.pending = self.pending, []
        try:
            self.refs += list(map(type, map(dict.get, entries, repeat("frames")))).count(FrameRef)
        except TypeError:  # an entry that is not a dict: the whole read names it
            raise Fallback("an entry that is not a dict") from None
        try:
            part = _trace(entries, self.device, f"device_traces[{self.device}]", self.frames, self.count)
        except ValueError as exc:  # the whole read reports it, in the order the validation finds problems
            raise Fallback(str(exc)) from None
        self.parts.append(part)
        self.count += len(entries)
        released = self.frames.release()
        released.update(dict.fromkeys(map(id, entries), CONSUMED))
        return released

    def finish(self) -> Trace:
        if self.pending or not self.parts:
            self._convert()
        return _concat(self.parts, self.device)


def _concat(parts: list[Trace], device: int) -> Trace:
    """One trace from consecutive parts: columns joined, each extra key's values interned again."""
    if len(parts) == 1:
        return parts[0]
    cols = []
    for name in ("action", "addr", "size", "stream", "time_us", "frame_id"):
        col = np.concatenate([getattr(p, name) for p in parts])
        col.flags.writeable = False
        cols.append(col)
    n = len(cols[0])
    extras: dict[str, tuple[tuple[Any, ...], np.ndarray]] = {}
    for key in sorted({k for p in parts for k in p.extras}):
        values: list[Any] = []
        intern = _interner(values)
        column = np.full(n, -1, dtype=np.int32)
        at = 0
        for p in parts:
            if key in p.extras:
                vals, idx = p.extras[key]
                remap = np.array([*map(intern, vals), -1], dtype=np.int32)  # idx -1 (absent) reads the -1
                column[at:at + len(p)] = remap[idx]
            at += len(p)
        column.flags.writeable = False
        extras[key] = (tuple(values), column)
    action, addr, size, stream, time_us, frame_id = cols
    return Trace(device, action, addr, size, stream, time_us, frame_id, frames=(), extras=MappingProxyType(extras))


def parse_snapshot(obj: Any, *, source: str = "<dict>", frames: _Frames | None = None) -> TorchSnapshot:
    """Validate an unpickled snapshot (dict, or legacy list of segments) into a `TorchSnapshot`."""
    frames = frames or _Frames()
    if isinstance(obj, list):
        raw_segments, raw_traces, settings, annotations, extra = obj, [], {}, [], {}
        form = "list"
    elif isinstance(obj, Mapping):
        if "segments" not in obj:
            raise _fail("snapshot", f"missing key 'segments' (found keys: {sorted(map(str, obj))[:8]})")
        raw_segments = obj["segments"]
        raw_traces = obj.get("device_traces", [])
        settings = obj.get("allocator_settings", {})
        annotations = obj.get("external_annotations", [])
        extra = {str(k): v for k, v in obj.items() if k not in _TOP_KEYS}
        form = "dict"
    else:
        raise _fail("snapshot", f"a {_type_name(obj)}, expected a dict with 'segments' and 'device_traces' (or a "
                                f"legacy list of segments)")
    if type(raw_segments) is not list:
        raise _fail("segments", f"{_type_name(raw_segments)} is not a list")
    if type(raw_traces) is not list:
        raise _fail("device_traces", f"{_type_name(raw_traces)} is not a list (one list of entries per device)")
    if not isinstance(settings, Mapping):
        raise _fail("allocator_settings", f"{_type_name(settings)} is not a dict")
    if type(annotations) not in (list, tuple):
        raise _fail("external_annotations", f"{_type_name(annotations)} is not a list")
    segments = []
    legacy = False
    for i, s in enumerate(raw_segments):
        seg, leg = _segment(s, f"segments[{i}]", frames)
        legacy |= leg
        segments.append(seg)
    by_device: dict[int, list[tuple[int, int]]] = {}
    for i, seg in enumerate(segments):
        by_device.setdefault(seg.device, []).append((seg.address, i))
    for spans in by_device.values():
        spans.sort()
        for (_a, i), (b, j) in itertools.pairwise(spans):
            if segments[i].end > b:
                raise _fail(f"segments[{j}]", f"starts at {b:#x}, inside segments[{i}] ({segments[i].address:#x} + "
                                              f"{segments[i].total_size}): segments overlap")
    traces = [t.finish() if type(t) is _StreamedTrace else _trace(t, d, f"device_traces[{d}]", frames)
              for d, t in enumerate(raw_traces)]
    table = tuple(frames.table)
    traces = [Trace(t.device, t.action, t.addr, t.size, t.stream, t.time_us, t.frame_id, table, t.extras)
              for t in traces]
    return TorchSnapshot(segments=tuple(segments), traces=tuple(traces),
                         allocator_settings=MappingProxyType(dict(settings)),
                         external_annotations=tuple(annotations), form="dict-history" if legacy else form,
                         source=source, extra=MappingProxyType(extra))
