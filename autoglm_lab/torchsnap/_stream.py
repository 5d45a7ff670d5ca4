"""A streaming reader for the binary pickles torch's ``_dump_snapshot`` writes.

``pickle.load`` builds the whole object graph before anything can look at it: a snapshot with a
million trace entries is a million dicts (~500 bytes each) at once. This reader is a small pickle
machine for the data-only opcodes of protocols 2 to 5. It reads the file in chunks and hands each
device's trace entries to a sink as they are appended (``device_traces[d]`` of the top dict), which
converts them to columns; their slots in the pickle's memo are then replaced (entries by a tombstone,
frame lists by the frame table's index), so a converted entry is garbage at once.

It runs nothing: every opcode that would import or call (GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ,
the extension codes, persistent ids) raises `Fallback`, as does anything unusual (text protocols
0 and 1, sets, bytes, buffers, a memo reference to a converted entry, a malformed stream). The
caller then reads the file whole with the refusing C unpickler, which gives the canonical error, so
both paths accept exactly the same files with the same results and the same messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from struct import unpack_from
from typing import Any, BinaryIO, Protocol

__all__ = ["Fallback", "FrameRef", "TooLarge", "TraceSink", "CONSUMED", "stream_unpickle"]

_CHUNK = 1 << 20
_SLACK = 16        # bytes of look-ahead the fixed-size opcodes need (the longest is 9)
# MEMOIZE MARK BINGET... APPENDS after EMPTY_LIST: a list of objects seen before (a stack's frames);
# the same with LONG_BINGET (memo index 256 and up)
_GETS = re.compile(rb"\x94\((?:h.)+e", re.DOTALL)
_LONG_GETS = re.compile(rb"\x94\((?:j....)+e", re.DOTALL)


class Fallback(Exception):
    """This pickle is not for the streaming reader: read it whole."""


class TooLarge(ValueError):
    """The file is larger than the cap the caller set (the one error this reader reports itself)."""


class FrameRef:
    """A converted frame list, standing in its memo slot: its index in the frame table (-1: none)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


#: what a converted entry's memo slot holds (one class with `FrameRef`: one type check per memo
#: reference finds both): a later reference to it falls back to the whole read
CONSUMED = FrameRef(-2)


class TraceSink(Protocol):
    def extend(self, items: list[Any]) -> dict[int, Any] | None:
        """Take appended entries; when some were converted, return ``{id(object): replacement}`` for
        the memo slots of objects that are no longer needed."""


class _Reader:
    __slots__ = ("eof", "fh", "label", "limit", "read_total")

    def __init__(self, fh: BinaryIO, limit: int | None, label: str) -> None:
        self.fh = fh
        self.limit = limit
        self.label = label
        self.read_total = 0
        self.eof = False

    def more(self, buf: bytes, i: int, need: int) -> bytes:
        """The unread rest of ``buf`` from ``i``, with at least ``need`` bytes where the file has them."""
        rest = buf[i:]
        parts = [rest]
        have = len(rest)
        while not self.eof and have < max(need, _SLACK):
            data = self.fh.read(max(_CHUNK, need - have))
            if not data:
                self.eof = True
                break
            self.read_total += len(data)
            if self.limit is not None and self.read_total > self.limit:
                raise TooLarge(f"{self.label} is larger than max_bytes={self.limit}; pass a larger max_bytes "
                                 f"(or max_bytes=None) to load it")
            parts.append(data)
            have += len(data)
        return b"".join(parts) if len(parts) > 1 else rest


def _is_device_traces_key(stack: list[Any], marks: list[int]) -> bool:
    """The next object is the value of the top dict's ``device_traces`` key."""
    if len(stack) < 2 or stack[-1] != "device_traces" or type(stack[-1]) is not str or type(stack[0]) is not dict:
        return False
    if marks == [1]:
        return (len(stack) - 2) % 2 == 0        # a key, not a value, within SETITEMS
    return not marks and len(stack) == 2       # SETITEM


def stream_unpickle(fh: BinaryIO, new_sink: Callable[[int], TraceSink], *, limit: int | None,
                    label: str) -> tuple[Any, int]:
    """Unpickle ``fh``; ``new_sink(d)`` makes the sink that takes ``device_traces[d]``'s entries and
    stands in that list's place in the result. Returns the result and how many memo references
    fetched a `FrameRef`: each must be a trace entry's ``frames`` (the caller counts them there; a
    converted frame list referenced from anywhere else means: read it whole). Raises `Fallback`
    (see the module's docstring)."""
    reader = _Reader(fh, limit, label)
    try:
        return _run(reader, new_sink)
    except (Fallback, TooLarge):
        raise
    except Exception as exc:  # a malformed stream (a bad string included): the whole read names it
        raise Fallback(f"{type(exc).__name__}: {exc}") from None


def _run(reader: _Reader, new_sink: Callable[[int], TraceSink]) -> tuple[Any, int]:
    buf = reader.more(b"", 0, _SLACK)
    i = 0
    lim = len(buf) - _SLACK if not reader.eof else len(buf)
    stack: list[Any] = []
    marks: list[int] = []
    memo: list[Any] = []
    push = stack.append
    from_bytes = int.from_bytes
    consumed = CONSUMED
    refs = 0
    outer: list[Any] | None = None     # device_traces, once seen
    outer_at = -1                      # its place on the stack while its lists are being built
    sinks: set[int] = set()            # ids of the sinks (kept alive by the result)
    scan_from = 0                      # memo slots below this were looked at by an earlier release

    def release(rep: dict[int, Any]) -> None:
        nonlocal scan_from
        get = rep.get
        for k in range(scan_from, len(memo)):
            r = get(id(memo[k]))
            if r is not None:
                memo[k] = r
        scan_from = len(memo)

    while True:
        if i > lim:
            buf = reader.more(buf, i, _SLACK)
            i = 0
            lim = len(buf) - _SLACK if not reader.eof else len(buf)
            if not buf:
                raise Fallback("the pickle ends before its STOP opcode")
        op = buf[i]
        i += 1
        if op == 104 or op == 106:                      # BINGET, LONG_BINGET
            if op == 104:
                v = memo[buf[i]]
                i += 1
            else:
                v = memo[unpack_from("<I", buf, i)[0]]
                i += 4
            if type(v) is FrameRef:
                if v is consumed:
                    raise Fallback("a memo reference to a converted trace entry")
                refs += 1
            push(v)
        elif op == 138:                                 # LONG1
            k = buf[i]
            push(from_bytes(buf[i + 1:i + 1 + k], "little", signed=True))
            i += 1 + k
        elif op == 75:                                  # BININT1
            push(buf[i])
            i += 1
        elif op == 117:                                 # SETITEMS
            m = marks.pop()
            d = stack[m - 1]
            if m < 1 or type(d) is not dict or (len(stack) - m) % 2:
                raise Fallback("SETITEMS without a dict")
            pairs = iter(stack[m:])
            del stack[m:]
            d.update(zip(pairs, pairs, strict=False))   # key, value, ... (the count is even: checked above)
        elif op == 74:                                  # BININT
            push(unpack_from("<i", buf, i)[0])
            i += 4
        elif op == 77:                                  # BININT2
            push(buf[i] | buf[i + 1] << 8)
            i += 2
        elif op == 125:                                 # EMPTY_DICT, with the MEMOIZE and MARK that follow
            v = {}
            push(v)
            if buf[i] == 148:
                memo.append(v)
                i += 1
                if buf[i] == 40:
                    marks.append(len(stack))
                    i += 1
        elif op == 40:                                  # MARK
            marks.append(len(stack))
        elif op == 148:                                 # MEMOIZE
            v = stack[-1]
            memo.append(consumed if id(v) in sinks else v)
        elif op == 140 or op == 88 or op == 141:        # SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
            if op == 140:
                k, w = buf[i], 1
            elif op == 88:
                k, w = unpack_from("<I", buf, i)[0], 4
            else:
                k, w = unpack_from("<Q", buf, i)[0], 8
            if i + w + k > len(buf):
                buf = reader.more(buf, i, w + k)
                i = 0
                lim = len(buf) - _SLACK if not reader.eof else len(buf)
                if w + k > len(buf):
                    raise Fallback("a string runs past the end of the pickle")
            push(str(buf[i + w:i + w + k], "utf-8", "surrogatepass"))
            i += w + k
        elif op == 101 or op == 97:                     # APPENDS, APPEND
            if op == 101:
                m = marks.pop()
                if m < 1:
                    raise Fallback("APPENDS without a list")
                items = stack[m:]
                del stack[m:]
            else:
                items = [stack.pop()]
                m = len(stack)
                if m < 1 or (marks and marks[-1] >= m):
                    raise Fallback("APPEND without a list")
            lst = stack[m - 1]
            if type(lst) is list:
                lst.extend(items)
            elif id(lst) in sinks:
                rep = lst.extend(items)
                if rep:
                    release(rep)
            else:
                raise Fallback("APPENDS without a list")
        elif op == 93:                                  # EMPTY_LIST
            if outer is None and _is_device_traces_key(stack, marks):
                outer = []
                outer_at = len(stack)
                push(outer)
            elif outer is not None and len(stack) > outer_at and stack[outer_at] is outer and (
                    (len(stack) == outer_at + 1 and (marks[-1] if marks else -1) <= outer_at)
                    or (marks and marks[-1] == outer_at + 1)):
                at = len(outer) + len(stack) - outer_at - 1
                sink = new_sink(at)
                sinks.add(id(sink))
                push(sink)
            else:
                v = []
                push(v)
                # a stack's frames: each frame's dict shared, so a run of BINGETs; read at C speed
                run = _GETS.match(buf, i, lim)
                if run is not None:
                    memo.append(v)
                    v += map(memo.__getitem__, buf[i + 3:run.end() - 1:2])
                elif (run := _LONG_GETS.match(buf, i, lim)) is not None:
                    memo.append(v)
                    v += map(memo.__getitem__, unpack_from("<" + "xI" * ((run.end() - i - 3) // 5), buf, i + 2))
                if run is not None:
                    i = run.end()
                    if FrameRef in map(type, v):        # a converted object, in a list: as BINGET does
                        if consumed in v:
                            raise Fallback("a memo reference to a converted trace entry")
                        refs += list(map(type, v)).count(FrameRef)
        elif op == 113 or op == 114:                    # BINPUT, LONG_BINPUT
            if op == 113:
                k = buf[i]
                i += 1
            else:
                k = unpack_from("<I", buf, i)[0]
                i += 4
            v = stack[-1]
            v = consumed if id(v) in sinks else v
            if k == len(memo):
                memo.append(v)
            elif k < len(memo):
                memo[k] = v
            else:
                raise Fallback("a memo index beyond the memo")
        elif op == 149:                                 # FRAME
            i += 8
        elif op == 115:                                 # SETITEM
            v = stack.pop()
            k = stack.pop()
            d = stack[-1]
            if type(d) is not dict or (marks and marks[-1] >= len(stack)):
                raise Fallback("SETITEM without a dict")
            d[k] = v
        elif op == 78:                                  # NONE
            push(None)
        elif op == 136:                                 # NEWTRUE
            push(True)
        elif op == 137:                                 # NEWFALSE
            push(False)
        elif op == 139:                                 # LONG4
            k = unpack_from("<i", buf, i)[0]
            if k < 0:
                raise Fallback("LONG4 with a negative length")
            if i + 4 + k > len(buf):
                buf = reader.more(buf, i, 4 + k)
                i = 0
                lim = len(buf) - _SLACK if not reader.eof else len(buf)
            push(from_bytes(buf[i + 4:i + 4 + k], "little", signed=True))
            i += 4 + k
        elif op == 71:                                  # BINFLOAT
            push(unpack_from(">d", buf, i)[0])
            i += 8
        elif op == 41:                                  # EMPTY_TUPLE
            push(())
        elif 133 <= op <= 135:                          # TUPLE1, TUPLE2, TUPLE3
            k = op - 132
            if len(stack) - k < (marks[-1] if marks else 0):
                raise Fallback("a tuple across a mark")
            t = tuple(stack[-k:])
            del stack[-k:]
            push(t)
        elif op == 116 or op == 108 or op == 100:       # TUPLE, LIST, DICT (from the mark)
            m = marks.pop()
            items = stack[m:]
            del stack[m:]
            if op == 116:
                push(tuple(items))
            elif op == 108:
                push(items)
            else:
                if len(items) % 2:
                    raise Fallback("DICT with an odd number of items")
                push(dict(zip(items[::2], items[1::2], strict=True)))
        elif op == 128:                                 # PROTO
            if not 2 <= buf[i] <= 5:
                raise Fallback(f"protocol {buf[i]}")
            i += 1
        elif op == 46:                                  # STOP
            if len(stack) != 1 or marks:
                raise Fallback("STOP with a malformed stack")
            return stack[0], refs
        else:  # text protocols, sets, bytes, buffers, and every opcode that imports or calls
            raise Fallback(f"opcode {op:#04x}")
