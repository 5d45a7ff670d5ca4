"""`SnapshotHistory`: a bounded, compressed recording of a stream of `PoolSnapshot`s, to scrub back
through (the dashboard's time slider), save, and replay offline (the history report, the CLI).

```python
hist = SnapshotHistory(max_bytes=32 << 20)
hist.record(pool.snapshot(), time_s=sim.clock, summary=sim.summary(), steps=new_step_rows)
snap = hist.snapshot(hist.index_at(12.5))      # the pool as it was at 12.5 s, a real PoolSnapshot
hist.save("run.npz"); SnapshotHistory.load("run.npz")
```

What a frame holds: the block table as a delta against the previous frame (rows added or changed,
ids removed; a full table every ``keyframe_every`` frames), the pool's stats and the optional summary
as changed keys only, segments and tags when they changed; all of it zlib-compressed. Beside the
frames: the pool's events (at most a quarter of the bound) and the simulator's per-step rows, as
append-only logs. When the bytes held pass ``max_bytes`` the oldest keyframe group is dropped (and
the logs before it): ``nbytes`` (compressed frames plus logs) stays within ``max_bytes`` however long
the run, except while the newest group alone is larger (then the next frame starts a new group and
the old one goes); ``dropped`` says how many frames went.

Files are an ``.npz`` of plain arrays (loaded with ``allow_pickle=False``: nothing in a file runs
code) and a JSON header; a malformed file is a `ValueError` naming what is wrong.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from .pool import EVENT_RECORD, SNAPSHOT_VERSION, PoolSnapshot, PoolStats

__all__ = ["SnapshotHistory", "HISTORY_FORMAT", "DEFAULT_MAX_BYTES"]

HISTORY_FORMAT = "autoglm_lab.history/1"
DEFAULT_MAX_BYTES = 32 << 20
_MAX_EVENTS = 4096  # events a reconstructed snapshot carries (the pool's ring holds about as many)
_BLOCK = np.dtype([("id", "<i8"), ("first", "<i8"), ("pages", "<i8"), ("nbytes", "<i8"), ("tag", "<i4"),
                   ("pinned", "?"), ("cached", "?"), ("created", "<f8")])
_STAT_FIELDS = tuple(f.name for f in fields(PoolStats))


def _table(snap: PoolSnapshot) -> np.ndarray:
    t = np.empty(snap.num_blocks, dtype=_BLOCK)
    t["id"], t["first"], t["pages"], t["nbytes"] = (snap.block_id, snap.block_first_page, snap.block_num_pages,
                                                    snap.block_nbytes)
    t["tag"], t["pinned"], t["cached"], t["created"] = (snap.block_tag, snap.block_pinned, snap.block_cached,
                                                        snap.block_created_s)
    return t[np.argsort(t["id"], kind="stable")]


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in new.items() if k not in old or not _same_value(old[k], v)}


def _same_value(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}


@dataclass
class _State:
    """A decoded frame: what the next delta applies to."""

    index: int
    table: np.ndarray
    head: dict[str, Any]      # seq, time_s, num_pages, events_total, segments, tags
    stats: dict[str, Any]
    summary: dict[str, Any]


class SnapshotHistory:
    """A bounded recording of pool snapshots (see the module's docstring). Not thread-safe: the
    dashboard records and reads it under its own lock."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, keyframe_every: int = 64) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 4096:
            raise ValueError(f"max_bytes={max_bytes!r} is not allowed: use an integer >= 4096")
        if isinstance(keyframe_every, bool) or not isinstance(keyframe_every, int) or keyframe_every < 1:
            raise ValueError(f"keyframe_every={keyframe_every!r} is not allowed: use an integer >= 1")
        self.max_bytes = max_bytes
        self.keyframe_every = keyframe_every
        self.page_size: int | None = None
        self.device = ""
        self.dropped = 0                   # frames dropped from the start to keep the bound
        self._blobs: list[bytes] = []
        self._key: list[bool] = []
        self._times: list[float] = []
        self._seqs: list[int] = []
        self._last: _State | None = None   # the last frame recorded, decoded
        self._cursor: _State | None = None  # the last frame read
        self._blob_bytes = 0
        self._events = _Log(EVENT_RECORD)
        self._events_base = 0              # the pool's event count before the first event kept
        self._steps: _Log | None = None    # per-step rows, one field per column
        self._force_key = False            # the next frame starts a keyframe group (see _bound)

    # ------------------------------------------------------------------ recording
    def record(self, snap: PoolSnapshot, time_s: float | None = None, *, summary: Mapping[str, Any] | None = None,
               steps: Mapping[str, np.ndarray] | None = None) -> None:
        """Add ``snap`` at ``time_s`` (default: the snapshot's own clock). ``summary``: numbers to show
        with it (a simulator's summary; kept until the next one); ``steps``: per-step rows new since the
        last record (columns of equal length, one of them ``time_s``)."""
        if self.page_size is None:
            self.page_size, self.device = snap.page_size, snap.device
        elif (snap.page_size, snap.device) != (self.page_size, self.device):
            raise ValueError(f"a snapshot of a {snap.page_size}-byte-page pool on {snap.device} cannot join a "
                             f"history of {self.page_size}-byte pages on {self.device}: start a new history")
        t = float(snap.time_s if time_s is None else time_s)
        if self._times and t < self._times[-1]:
            raise ValueError(f"time_s={t} is before the last frame's {self._times[-1]}: a history only grows")
        head = {"seq": int(snap.seq), "time_s": t, "num_pages": int(snap.num_pages),
                "events_total": int(snap.events_total),
                "segments": [snap.segment_first_page.tolist(), snap.segment_num_pages.tolist()],
                "tags": list(snap.tags)}
        stats = _jsonable({k: getattr(snap.stats, k) for k in _STAT_FIELDS})  # not to_dict: asdict deep-copies
        stats["compactions_by_reason"] = dict(stats["compactions_by_reason"])
        table = _table(snap)
        last = self._last
        key = (last is None or self._force_key
               or (len(self._blobs) + self.dropped) % self.keyframe_every == 0)
        self._force_key = False
        out: dict[str, Any]
        if key or last is None:  # a keyframe carries the summary in force, so decoding can start here
            summ = {**(last.summary if last else {}), **_jsonable(summary or {})}
            out = {"key": True, "head": head, "stats": stats, "summary": summ}
            arrays = [table.tobytes(), b""]
        else:
            out = {"key": False, "head": _changed(last.head, head), "stats": _changed(last.stats, stats)}
            summ = dict(last.summary)
            if summary is not None:
                out["summary"] = _changed(last.summary, _jsonable(summary))
                summ.update(out["summary"])
            changed, removed = _delta(last.table, table)
            arrays = [changed.tobytes(), removed.astype("<i8").tobytes()]
        meta = json.dumps(out, separators=(",", ":")).encode()
        blob = zlib.compress(b"".join((len(meta).to_bytes(4, "little"), meta,
                                       len(arrays[0]).to_bytes(8, "little"), *arrays)), 1)  # fast: per frame
        self._blobs.append(blob)
        self._key.append(bool(key))
        self._times.append(t)
        self._seqs.append(int(snap.seq))
        self._blob_bytes += len(blob)
        self._last = _State(len(self._blobs) - 1 + self.dropped, table, {**(last.head if last else {}), **head},
                            stats, summ)
        self._log_events(snap)
        if steps is not None:
            self._log_steps(steps)
        self._bound()

    def _log_events(self, snap: PoolSnapshot) -> None:
        total = int(snap.events_total)
        have = self._events_base + len(self._events)
        new = total - have
        if new <= 0:
            return
        if isinstance(snap.event_rows, bytes | bytearray | memoryview):  # the compiled ring: packed records
            ring = np.frombuffer(snap.event_rows, dtype=EVENT_RECORD)
            rows = ring[len(ring) - min(new, len(ring)):].copy()
        else:
            ev = snap.events
            rows = np.zeros(min(new, len(ev.time_s)), EVENT_RECORD)
            for name in EVENT_RECORD.names or ():
                rows[name] = getattr(ev, name)[len(ev.time_s) - len(rows):]
        if len(rows) < new:  # the ring overflowed between frames: the gap is lost, the count is not
            self._events, self._events_base = _Log(EVENT_RECORD), total - len(rows)
        self._events.append(rows)

    def _log_steps(self, steps: Mapping[str, np.ndarray]) -> None:
        if "time_s" not in steps:
            raise ValueError(f"steps needs a time_s column; got {sorted(steps)}")
        if self._steps is None:
            self._steps = _Log(np.dtype([(k, np.asarray(v).dtype) for k, v in steps.items()]))
        names = self._steps.dtype.names or ()
        if set(steps) != set(names):
            raise ValueError(f"steps columns {sorted(steps)} differ from the history's {sorted(names)}")
        n = len(np.asarray(steps["time_s"]))
        rows = np.empty(n, self._steps.dtype)
        for k in names:
            rows[k] = steps[k]
        self._steps.append(rows)

    def _bound(self) -> None:
        """Keep the event log within a quarter of ``max_bytes`` (older frames then carry fewer events),
        then drop the oldest keyframe group while over ``max_bytes``; when only the newest group is
        left and still over, the next frame starts a new group, so that one can go."""
        excess = self._events.nbytes - self.max_bytes // 4
        if excess > 0:
            cut = -(-excess // EVENT_RECORD.itemsize)
            self._events.drop_front(cut)
            self._events_base += cut
        while self.nbytes > self.max_bytes:
            nxt = next((i for i in range(1, len(self._key)) if self._key[i]), None)
            if nxt is None:
                self._force_key = True
                return
            self._blob_bytes -= sum(len(b) for b in self._blobs[:nxt])
            for col in (self._blobs, self._key, self._times, self._seqs):
                del col[:nxt]
            self.dropped += nxt
            self._cursor = None
            start = self._times[0]
            if self._steps is not None:
                self._steps.drop_front(int(np.searchsorted(self._steps.array()["time_s"], start, side="left")))
            # the events the first frame kept still shows (its snapshot carries the last _MAX_EVENTS)
            first_total = int(_decode(self._blobs[0], None, self.dropped).head["events_total"])
            cut = min(max(0, first_total - _MAX_EVENTS - self._events_base), len(self._events))
            self._events.drop_front(cut)
            self._events_base += cut

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._blobs)

    @property
    def step_columns(self) -> tuple[str, ...]:
        """The columns of the per-step log (empty: no steps were recorded, e.g. a plain pool)."""
        return tuple(self._steps.dtype.names or ()) if self._steps is not None else ()

    @property
    def nbytes(self) -> int:
        """Bytes held: compressed frames plus the event and step logs."""
        return self._blob_bytes + self._events.nbytes + (self._steps.nbytes if self._steps is not None else 0)

    @property
    def times(self) -> np.ndarray:
        """Each frame's time (seconds), oldest first."""
        return np.asarray(self._times, dtype=np.float64)

    @property
    def seqs(self) -> np.ndarray:
        return np.asarray(self._seqs, dtype=np.int64)

    def index_at(self, time_s: float) -> int:
        """The last frame at or before ``time_s`` (the first frame for an earlier time)."""
        if not self._blobs:
            raise IndexError("the history is empty")
        return max(0, int(np.searchsorted(self.times, float(time_s), side="right")) - 1)

    def _check_index(self, i: int) -> int:
        n = len(self._blobs)
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or not -n <= int(i) < n:
            raise IndexError(f"frame {i!r} is not in this history of {n} frames (0 to {n - 1})")
        return int(i) % n

    def _state(self, i: int) -> _State:
        i = self._check_index(i)
        want = i + self.dropped
        cur = self._cursor
        if cur is None or cur.index > want or any(self._key[cur.index - self.dropped + 1:i + 1]):
            start = max(j for j in range(i + 1) if self._key[j])
            cur = None
        else:
            start = cur.index - self.dropped + 1
        for j in range(start, i + 1):
            cur = _decode(self._blobs[j], cur, j + self.dropped)
        assert cur is not None
        self._cursor = cur
        return cur

    def snapshot(self, i: int) -> PoolSnapshot:
        """Frame ``i`` as the `PoolSnapshot` it was (its events: the last ones logged up to it)."""
        st = self._state(i)
        h, t = st.head, st.table
        order = np.argsort(t["first"], kind="stable")
        t = t[order]
        stats = PoolStats(**{k: st.stats[k] for k in _STAT_FIELDS if k in st.stats})
        upto = int(h["events_total"]) - self._events_base
        ev = self._events.array()[max(0, upto - _MAX_EVENTS):max(0, upto)]
        return PoolSnapshot(
            version=SNAPSHOT_VERSION, seq=int(h["seq"]), time_s=float(h["time_s"]), page_size=int(self.page_size or 0),
            device=self.device, num_pages=int(h["num_pages"]),
            segment_first_page=np.asarray(h["segments"][0], np.int64),
            segment_num_pages=np.asarray(h["segments"][1], np.int64),
            block_id=t["id"].copy(), block_first_page=t["first"].copy(), block_num_pages=t["pages"].copy(),
            block_nbytes=t["nbytes"].copy(), block_tag=t["tag"].copy(), block_pinned=t["pinned"].copy(),
            block_created_s=t["created"].copy(), block_cached=t["cached"].copy(), tags=tuple(h["tags"]),
            stats=stats, events_total=int(h["events_total"]), event_rows=ev.tobytes())

    def summary(self, i: int) -> dict[str, Any] | None:
        """The last summary recorded at or before frame ``i`` (None: none yet)."""
        summary = self._state(i).summary
        return dict(summary) if summary else None

    def steps(self, i: int | None = None) -> dict[str, np.ndarray]:
        """The per-step rows up to frame ``i``'s time (all when None), oldest first."""
        if self._steps is None:
            return {}
        rows = self._steps.array()
        end = len(rows) if i is None else \
            int(np.searchsorted(rows["time_s"], self._times[self._check_index(i)], side="right"))
        return {k: rows[k][:end].copy() for k in rows.dtype.names or ()}

    # ------------------------------------------------------------------ files
    def save(self, path: str | PathLike[str]) -> Path:
        """Write the history to ``path`` (an ``.npz`` of plain arrays); returns the path."""
        out = Path(path)
        if out.is_dir():
            raise ValueError(f"{str(out)!r} is a folder: give a file path")
        offsets = np.cumsum([0, *(len(b) for b in self._blobs)]).astype(np.int64)
        header = {"format": HISTORY_FORMAT, "page_size": self.page_size, "device": self.device,
                  "dropped": self.dropped, "keyframe_every": self.keyframe_every, "max_bytes": self.max_bytes,
                  "events_base": self._events_base, "steps": list(self.step_columns)}
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), np.uint8),
                  "frames": np.frombuffer(b"".join(self._blobs), np.uint8), "offsets": offsets,
                  "key": np.asarray(self._key, bool), "times": self.times, "seqs": self.seqs,
                  "events": self._events.array().view(np.uint8) if len(self._events) else np.zeros(0, np.uint8)}
        arrays.update({f"step_{k}": v for k, v in self.steps().items()})
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as f:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
        return out

    @classmethod
    def load(cls, path: str | PathLike[str]) -> SnapshotHistory:
        """Read a file `save` wrote. Runs no code; a malformed file raises ValueError saying what is wrong."""
        src = Path(path)
        if not src.is_file():
            raise ValueError(f"history file {str(src)!r} does not exist or is not a file")
        try:
            with np.load(src, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise ValueError(f"{str(src)!r} is not a history file (.npz written by SnapshotHistory.save): "
                             f"{err}") from None
        return cls._from_arrays(data, str(src))

    @classmethod
    def _from_arrays(cls, data: dict[str, np.ndarray], where: str) -> SnapshotHistory:
        need = ("header", "frames", "offsets", "key", "times", "seqs", "events")
        missing = [k for k in need if k not in data]
        if missing:
            raise ValueError(f"{where}: not a history file, missing {missing}")
        try:
            header = json.loads(data["header"].tobytes())
        except ValueError as err:
            raise ValueError(f"{where}: the header is not JSON ({err})") from None
        if not isinstance(header, dict) or header.get("format") != HISTORY_FORMAT:
            raise ValueError(f"{where}: format {header.get('format') if isinstance(header, dict) else header!r} "
                             f"is not {HISTORY_FORMAT!r}")
        off, n = data["offsets"], len(data["times"])
        frames = data["frames"].tobytes()
        if (off.ndim != 1 or len(off) != n + 1 or off[0] != 0 or off[-1] != len(frames) or np.any(np.diff(off) < 0)
                or not len(data["key"]) == len(data["seqs"]) == n
                or (n and not data["key"][0]) or np.any(np.diff(data["times"]) < 0)):
            raise ValueError(f"{where}: the frame index is inconsistent ({n} frames, offsets {off.shape})")
        if data["events"].size % EVENT_RECORD.itemsize:
            raise ValueError(f"{where}: the event log is not whole records")
        try:
            hist = cls(max_bytes=max(int(header["max_bytes"]), 4096), keyframe_every=int(header["keyframe_every"]))
            page_size = header["page_size"]  # None: nothing was ever recorded
            hist.page_size = None if page_size is None else int(page_size)
            hist.device, hist.dropped = str(header["device"]), int(header["dropped"])
            hist._events_base = int(header["events_base"])
            step_keys = [str(k) for k in header["steps"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: the header is malformed ({err!r})") from None
        hist._blobs = [frames[off[i]:off[i + 1]] for i in range(n)]
        hist._blob_bytes = len(frames)
        hist._key, hist._times = data["key"].tolist(), data["times"].astype(np.float64).tolist()
        hist._seqs = data["seqs"].astype(np.int64).tolist()
        hist._events.append(data["events"].view(EVENT_RECORD).copy() if data["events"].size
                            else np.zeros(0, EVENT_RECORD))
        missing = [k for k in step_keys if f"step_{k}" not in data]
        if missing or (step_keys and "time_s" not in step_keys):
            raise ValueError(f"{where}: step columns missing {missing or ['time_s']}")
        if len({len(data[f"step_{k}"]) for k in step_keys}) > 1:
            raise ValueError(f"{where}: step columns of different lengths")
        if step_keys:
            hist._log_steps({k: data[f"step_{k}"] for k in step_keys})
        for i in range(n):  # every frame decodes, or the file is refused now rather than on a scrub
            try:
                hist._state(i)
            except (ValueError, KeyError, TypeError, zlib.error) as err:
                raise ValueError(f"{where}: frame {i} is corrupt ({err!r})") from None
        if n:
            hist._last = hist._state(n - 1)
        return hist


class _Log:
    """An append-only log of records kept as chunks (appending never copies what is there); the
    chunks merge into one array when read."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self._chunks: deque[np.ndarray] = deque()
        self._len = 0

    def __len__(self) -> int:
        return self._len

    @property
    def nbytes(self) -> int:
        return self._len * self.dtype.itemsize

    def append(self, rows: np.ndarray) -> None:
        if len(rows):
            self._chunks.append(rows)
            self._len += len(rows)

    def drop_front(self, n: int) -> None:
        while n > 0 and self._chunks:
            first = self._chunks[0]
            if len(first) <= n:
                self._chunks.popleft()
                n -= len(first)
                self._len -= len(first)
            else:
                self._chunks[0] = first[n:]
                self._len -= n
                n = 0

    def array(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = deque([np.concatenate(list(self._chunks))])
        return self._chunks[0] if self._chunks else np.zeros(0, self.dtype)


def _delta(old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``new`` that are not in ``old`` as they are, and ids of ``old`` gone from ``new`` (both
    tables sorted by id: two binary searches, no sort)."""
    if not len(old):
        return new, old["id"]
    if not len(new):
        return new, old["id"]
    pos = np.minimum(np.searchsorted(old["id"], new["id"]), len(old) - 1)
    match = old[pos]
    same = match["id"] == new["id"]
    for name in _BLOCK.names or ():  # field by field: a structured == costs more than the fields
        if name != "id":
            same &= match[name] == new[name]
    back = np.minimum(np.searchsorted(new["id"], old["id"]), len(new) - 1)
    gone = new["id"][back] != old["id"]
    return new[~same], old["id"][gone]


def _decode(blob: bytes, prev: _State | None, index: int) -> _State:
    raw = zlib.decompress(blob)
    n_meta = int.from_bytes(raw[:4], "little")
    meta = json.loads(raw[4:4 + n_meta])
    pos = 4 + n_meta
    n_rows = int.from_bytes(raw[pos:pos + 8], "little")
    rows = np.frombuffer(raw[pos + 8:pos + 8 + n_rows], dtype=_BLOCK)
    removed = np.frombuffer(raw[pos + 8 + n_rows:], dtype="<i8")
    if meta["key"]:
        return _State(index, rows.copy(), meta["head"], meta["stats"], meta.get("summary", {}))
    if prev is None:
        raise ValueError(f"frame {index} is a delta with no frame before it")
    keep = prev.table[~np.isin(prev.table["id"], np.concatenate((removed, rows["id"])))]
    table = np.concatenate((keep, rows))
    table = table[np.argsort(table["id"], kind="stable")]
    summary = {**prev.summary, **meta.get("summary", {})}
    return _State(index, table, {**prev.head, **meta["head"]}, {**prev.stats, **meta["stats"]}, summary)
