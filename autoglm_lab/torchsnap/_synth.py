"""`synthetic_snapshot`: seeded PyTorch memory snapshots, made by running the allocator model.

A small serving-like program drives `CachingAllocatorModel` (free running, with a device capacity):
long-lived weights, KV caches that grow by re-allocation (the new copy before the old is freed),
per-step activations freed out of order, some of them on a second stream with stream-ordered frees
(``free_requested`` now, ``free_completed`` a step later), an occasional large workspace, and
``empty_cache()`` calls. The model records the trace torch would (``segment_alloc`` before the
``alloc`` it serves, ``oom`` with ``device_free`` when even a released cache is not enough), and the
final state becomes the segments. So every field and action of the format appears, and the OOMs are
ones torch's rules produce. Options give the legacy forms, a ring buffer that overflowed (frees
whose allocs fell off), expandable segments and extra keys.
"""

from __future__ import annotations

import pickle
import random
from os import PathLike
from pathlib import Path
from typing import Any

from ._model import CachingAllocatorModel
from ._schema import ACTIONS, Action

__all__ = ["synthetic_snapshot", "write_synthetic_snapshot", "run_program"]

_SITES = (
    ("serve/model.py", 88, "attention"), ("serve/model.py", 131, "mlp"), ("serve/kv_cache.py", 40, "grow"),
    ("serve/engine.py", 212, "prefill"), ("serve/engine.py", 260, "decode"), ("serve/weights.py", 17, "load"),
    ("serve/engine.py", 301, "workspace"), ("serve/sampler.py", 55, "logits"),
)
_CALLERS = ({"filename": "serve/main.py", "line": 12, "name": "main"},
            {"filename": "/usr/lib/python3/site-packages/torch/nn/modules/module.py", "line": 1751,
             "name": "_call_impl"})


def _stacks(depth: int) -> dict[str, list[dict[str, Any]]]:
    # each frame one dict, shared by every stack it is in (as torch pickles them: one dict per distinct
    # frame); ``depth`` frames a stack: the call site, module calls in between, the callers
    middle = [{"filename": "/usr/lib/python3/site-packages/torch/nn/modules/module.py", "line": 1762 + k % 2,
               "name": "_call_impl" if k % 2 else "forward"} for k in range(max(0, depth - 1 - len(_CALLERS)))]
    out = {}
    for fname, line, name in _SITES:
        top = {"filename": fname, "line": line, "name": name}
        if name == "attention":
            top = {**top, "fx_node_op": "call_function", "fx_node_name": "sdpa"}
        out[name] = [top, *middle, *_CALLERS][:depth]
    return out


def synthetic_snapshot(seed: int = 0, *, steps: int = 300, capacity: int = 112 << 20, num_requests: int = 4,
                       ring_capacity: int | None = None, expandable_segments: bool = False,
                       legacy: str | None = None, second_device: bool = True, extras: bool = True,
                       max_entries: int | None = None, stack_depth: int = 3) -> dict[str, Any] | list[dict[str, Any]]:
    """A snapshot dict as ``torch.cuda.memory._snapshot()`` returns it (pickle it to get a file).

    steps: iterations of the serving loop (about 30 trace entries each); max_entries stops earlier.
    capacity: device bytes the allocator may reserve; OOMs happen when a request does not fit it.
    ring_capacity: keep only the last this many trace entries (torch's ``max_entries``): frees whose
        allocs fell off, segments freed that were never allocated in the trace.
    legacy: None, "list" (a bare list of segments, no trace) or "history" (blocks with ``history``).
    second_device: add an empty trace for device 1 (traces are one list per device).
    extras: ``compile_context`` / ``user_metadata`` on some entries, fx fields on some frames,
        ``external_annotations``.
    stack_depth: frames per captured stack. As in torch, each allocation captures its own stack: a
        list of its own (a frame's dict shared by every stack it is in), which the free of that block
        shares; real stacks run to tens of frames (more with C++ frames).
    """
    if legacy not in (None, "list", "history"):
        raise ValueError(f"legacy={legacy!r} is not allowed: None, 'list' or 'history'")
    for name, value, low in (("steps", steps, 1), ("capacity", capacity, 1 << 20), ("num_requests", num_requests, 1),
                             ("stack_depth", stack_depth, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} is not allowed: an int >= {low}")
    rng = random.Random(seed)
    stacks = _stacks(stack_depth)
    trace: list[dict[str, Any]] = []
    clock = [1_700_000_000_000_000]
    context = ["prefill"]

    def record(action: Action, addr: int, size: int, stream: int, frames: Any) -> None:
        clock[0] += rng.randint(1, 40)
        e: dict[str, Any] = {"action": ACTIONS[action], "size": size, "stream": stream, "time_us": clock[0]}
        e["device_free" if action == Action.OOM else "addr"] = addr
        if frames is not None:
            e["frames"] = frames
        elif action != Action.SNAPSHOT:
            e["frames"] = []
        if extras and action == Action.ALLOC and rng.random() < 0.1:
            e["compile_context"] = context[0]
            e["user_metadata"] = ""
        trace.append(e)

    model = CachingAllocatorModel(capacity, expandable_segments=expandable_segments, recorder=record)

    def full() -> bool:
        return max_entries is not None and len(trace) >= max_entries

    def malloc(size: int, site: str, stream: int = 0) -> int | None:
        return model.malloc(size, stream, list(stacks[site]))  # a stack captured for this allocation

    weights = [malloc(rng.randint(3 << 20, 7 << 20) + rng.randint(0, 511), "load") for _ in range(4)]
    kv: list[tuple[int, int] | None] = [None] * num_requests
    pending: list[int] = []
    for step in range(steps):
        if full():
            break
        context[0] = "decode" if step % 8 else "prefill"
        for waiting in pending:  # last step's stream-ordered frees complete (unless a cache release did)
            if model.pending_at(waiting):
                model.free_completed(waiting)
        pending = []
        # KV caches grow by re-allocation: the new copy exists before the old one is freed
        for r in range(num_requests):
            cur = kv[r]
            if cur is None:
                size = rng.randint(1 << 20, 3 << 20)
                addr = malloc(size, "grow")
                kv[r] = None if addr is None else (addr, size)
            elif cur[1] > capacity // 10:  # long enough: the request finishes
                model.free(cur[0])
                kv[r] = None
            elif rng.random() < 0.25:
                new_size = int(cur[1] * rng.uniform(1.15, 1.4)) + rng.randint(0, 4095)
                addr = malloc(new_size, "grow")
                if addr is not None:
                    model.free(cur[0])
                    kv[r] = (addr, new_size)
            if rng.random() < 0.02 and kv[r] is not None:  # the request finished
                model.free(kv[r][0])  # type: ignore[index]
                kv[r] = None
        # activations: small and large, freed out of order; some on stream 1, freed stream-ordered
        acts = []
        for _ in range(rng.randint(4, 9)):
            site = rng.choice(("attention", "mlp", "logits", "prefill", "decode"))
            size = int(2 ** rng.uniform(9, 21.5)) + rng.randint(0, 300)
            stream = 1 if rng.random() < 0.2 else 0
            addr = malloc(size, site, stream)
            if addr is not None:
                acts.append((addr, stream))
        if rng.random() < 0.08:  # a large workspace, the usual victim of fragmentation
            addr = malloc(rng.randint(capacity // 8, capacity // 5), "workspace")
            if addr is not None:
                acts.append((addr, 0))
        rng.shuffle(acts)
        for done, stream in acts:
            if stream == 1:
                model.free_requested(done)
                pending.append(done)
            else:
                model.free(done)
        if rng.random() < 0.03:
            model.empty_cache()
        if rng.random() < 0.02:
            record(Action.SNAPSHOT, 0, model.active, 0, None)
    record(Action.SNAPSHOT, 0, model.active, 0, None)
    del weights

    segments = model.segment_dicts(0, frame_lists=lambda f: f if f is not None else [])
    if legacy == "list":
        for s in segments:
            for b in s["blocks"]:
                b.pop("address")
        return segments
    if legacy == "history":
        for s in segments:
            for b in s["blocks"]:
                frames = b.pop("frames")
                real = b.pop("requested_size")
                if b["state"] != "inactive":
                    b["history"] = [{"addr": b["address"], "real_size": real, "frames": frames}]
    if ring_capacity is not None and len(trace) > ring_capacity:
        trace = trace[-ring_capacity:]
    out: dict[str, Any] = {
        "segments": segments,
        "device_traces": [trace, []] if second_device else [trace],
        "allocator_settings": {
            "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True" if expandable_segments else "",
            "max_split_size": -1, "garbage_collection_threshold": 0.0, "expandable_segments": expandable_segments,
            "pinned_num_register_threads": 1, "release_lock_on_cudamalloc": False,
            "pinned_use_cuda_host_register": False, "roundup_power2_divisions": {"1": 0, "2": 0, "4": 0},
        },
    }
    if extras:
        out["external_annotations"] = [{"device": 0, "stage": "START", "name": "serve", "time_us": trace[0]["time_us"]
                                        if trace else 0}]
    return out


def write_synthetic_snapshot(path: str | PathLike[str], seed: int = 0, **kwargs: Any) -> Path:
    """Pickle `synthetic_snapshot(seed, **kwargs)` to ``path`` (as ``_dump_snapshot`` would)."""
    out = Path(path)
    with open(out, "wb") as fh:
        pickle.dump(synthetic_snapshot(seed, **kwargs), fh, protocol=4)
    return out


def run_program(ops: list[tuple[Any, ...]], *, capacity: int | None = None, expandable_segments: bool = False,
                ring_capacity: int | None = None) -> dict[str, Any]:
    """The snapshot of a tiny allocation program run on the allocator model, for tests and teaching.

    ops, in order: ``("alloc", name, size)`` or ``("alloc", name, size, stream)``; ``("free", name)``;
    ``("free_requested", name)`` then ``("free_completed", name)`` (a stream-ordered free);
    ``("empty_cache",)``. An alloc that runs out of ``capacity`` records an OOM and binds nothing.
    """
    trace: list[dict[str, Any]] = []
    tick = [0]

    def record(action: Action, addr: int, size: int, stream: int, frames: Any) -> None:
        tick[0] += 1
        e: dict[str, Any] = {"action": ACTIONS[action], "size": size, "stream": stream, "time_us": tick[0],
                             "frames": frames or []}
        e["device_free" if action == Action.OOM else "addr"] = addr
        trace.append(e)

    model = CachingAllocatorModel(capacity, expandable_segments=expandable_segments, recorder=record)
    names: dict[str, int] = {}
    for k, op in enumerate(ops):
        kind = op[0]
        if kind == "alloc":
            frames = [{"filename": "program.py", "line": k + 1, "name": str(op[1])}]
            addr = model.malloc(op[2], op[3] if len(op) > 3 else 0, frames)
            if addr is not None:
                names[op[1]] = addr
        elif kind in ("free", "free_requested", "free_completed"):
            getattr(model, kind)(names[op[1]])
            if kind != "free_requested":
                del names[op[1]]
        elif kind == "empty_cache":
            model.empty_cache()
        else:
            raise ValueError(f"ops[{k}]: {op!r} is not an op: alloc, free, free_requested, free_completed, empty_cache")
    if ring_capacity is not None:
        trace = trace[-ring_capacity:]
    return {"segments": model.segment_dicts(0, frame_lists=lambda f: f or []), "device_traces": [trace],
            "allocator_settings": {"expandable_segments": expandable_segments, "max_split_size": -1}}
