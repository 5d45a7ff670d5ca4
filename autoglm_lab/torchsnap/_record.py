"""`record_oom_snapshot`: a real PyTorch memory snapshot with a fragmentation OOM, on a CUDA device.

Run it on a machine with a GPU to get a small real snapshot (a test fixture, or a check of the
allocator model against the real allocator: ``tests/torchsnap/test_real_gpu.py`` does both)."""

from __future__ import annotations

import random
from os import PathLike
from pathlib import Path

__all__ = ["record_oom_snapshot"]


def record_oom_snapshot(path: str | PathLike[str], *, budget_bytes: int = 1 << 30, max_entries: int = 4000,
                        seed: int = 0) -> Path:
    """Leave ``budget_bytes`` of the current CUDA device free (a ballast tensor takes the rest, before
    the history starts: it is an allocation from before the trace), then, with the allocator's
    history recorded: tensors of 2-9 MiB (they share 20 MiB segments) up to 90 % of the budget, every
    other one freed, and a request for 30 % of the budget, which the holes cannot hold and the device
    cannot back: an OOM. The snapshot is dumped to ``path`` and everything is freed again."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("record_oom_snapshot needs a CUDA device")
    rng = random.Random(seed)
    out = Path(path)
    torch.cuda.empty_cache()
    free, _total = torch.cuda.mem_get_info()
    if free <= budget_bytes:
        raise RuntimeError(f"the device has {free} bytes free, not more than budget_bytes={budget_bytes}")
    ballast = torch.empty(free - budget_bytes, dtype=torch.uint8, device="cuda")
    held: list[torch.Tensor] = []
    torch.cuda.memory._record_memory_history(max_entries=max_entries, stacks="python")
    try:
        base = torch.cuda.memory_reserved()
        while True:
            size = rng.randint(2 << 20, 9 << 20)
            if torch.cuda.memory_reserved() - base + (20 << 20) > 0.9 * budget_bytes:
                break
            held.append(torch.empty(size, dtype=torch.uint8, device="cuda"))
        del held[::2]
        try:
            big = torch.empty(int(0.3 * budget_bytes), dtype=torch.uint8, device="cuda")
            del big
        except torch.OutOfMemoryError:
            pass
        torch.cuda.memory._dump_snapshot(str(out))
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
        held.clear()
        del ballast
        torch.cuda.empty_cache()
    return out
