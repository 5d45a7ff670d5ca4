"""KV-cache layouts: where a sequence's keys and values live in the `PagedPool`.

```
contiguous  seq 7: [ t0 t1 ... t95 | spare ]           one block; growing past its capacity allocates a
                                                        bigger block, copies the tokens, frees the old one
paged       seq 7: table -> [t0..t63] [t64..t127] ...   fixed blocks of block_tokens, never copied
```

Every block holds ``(tokens, 2, num_layers, num_kv_heads, head_dim)``: token-major, so growing a
contiguous cache copies one prefix and a paged block is a plain slice of tokens.
Tensors are re-read from ``block.tensor`` on every access because compaction may move blocks.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from ..pool import Block, PagedPool

if TYPE_CHECKING:
    from ._model import ModelConfig

__all__ = ["SeqKV", "KVLayout", "ContiguousKV", "PagedKV", "make_layout", "LAYOUTS"]

LAYOUTS = ("contiguous", "paged")


class SeqKV:
    """One sequence's KV blocks. ``capacity`` tokens are reserved, ``owner`` is the session key."""

    __slots__ = ("blocks", "capacity", "layout", "owner")

    def __init__(self, layout: KVLayout, owner: int) -> None:
        self.layout = layout
        self.blocks: list[Block] = []
        self.capacity = 0
        self.owner = owner

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.blocks)


class KVLayout:
    """Allocates, grows and frees `SeqKV`s in a pool, and remembers which session owns each live block."""

    name = ""

    def __init__(self, pool: PagedPool, model: ModelConfig, block_tokens: int, tag: str) -> None:
        self.pool = pool
        self.model = model
        self.block_tokens = block_tokens
        self.tag = tag
        self.row = (2, model.num_layers, model.num_kv_heads, model.head_dim)
        self.dtype = model.torch_dtype
        self.bytes_per_token = model.kv_bytes_per_token
        self.owners: dict[int, tuple[Block, int]] = {}  # block id -> (block, session key): the leak detector's view
        self.copied_bytes = 0  # bytes copied by re-allocation (contiguous growth)
        self.live_pages = 0    # pages held by this layout's live blocks

    def new(self, owner: int) -> SeqKV:
        return SeqKV(self, owner)

    def tokens_for(self, tokens: int) -> int:
        """Tokens reserved for a context of ``tokens`` (rounded up to whole KV blocks)."""
        bt = self.block_tokens
        return -(-tokens // bt) * bt

    def bytes_for(self, tokens: int) -> int:
        """Pool bytes (whole pages) a context of ``tokens`` occupies."""
        page = self.pool.page_size
        return -(-self.tokens_for(tokens) * self.bytes_per_token // page) * page

    @property
    def block_bytes(self) -> int:
        """Pool bytes (whole pages) of one KV block of ``block_tokens``."""
        page = self.pool.page_size
        return -(-self.block_tokens * self.bytes_per_token // page) * page

    def _alloc(self, tokens: int, owner: int) -> Block:
        blk = self.pool.alloc((tokens, *self.row), self.dtype, tag=self.tag)
        self.owners[blk.id] = (blk, owner)
        self.live_pages += blk.num_pages
        return blk

    def _free(self, blk: Block) -> None:
        del self.owners[blk.id]
        self.live_pages -= blk.num_pages
        self.pool.free(blk)

    def unit_pages(self) -> int:
        """Pages of a typical KV allocation of this layout (what a free run must hold to be useful)."""
        return max(1, -(-self.block_bytes // self.pool.page_size))

    def reserve(self, seq: SeqKV, tokens: int, length: int) -> float:
        """Make room for ``tokens`` tokens (``length`` are filled); seconds spent.

        On `PoolExhausted` the sequence is left as it was."""
        raise NotImplementedError

    def release(self, seq: SeqKV) -> float:
        """Free every block of ``seq``; seconds spent."""
        t0 = time.perf_counter()
        for blk in seq.blocks:
            self._free(blk)
        seq.blocks = []
        seq.capacity = 0
        return time.perf_counter() - t0

    def view(self, seq: SeqKV, start: int, end: int) -> torch.Tensor:
        """Tokens ``[start, end)`` as one (n, 2, L, H, D) tensor (a view when they lie in one block)."""
        raise NotImplementedError


class ContiguousKV(KVLayout):
    """Each sequence is one block, re-allocated (allocate new, copy, free old) in steps of ``block_tokens``."""

    name = "contiguous"

    def unit_pages(self) -> int:
        if not self.owners:
            return super().unit_pages()
        return max(1, -(-self.live_pages // len(self.owners)))

    def reserve(self, seq: SeqKV, tokens: int, length: int) -> float:
        if tokens <= seq.capacity:
            return 0.0
        t0 = time.perf_counter()
        cap = self.tokens_for(tokens)
        blk = self._alloc(cap, seq.owner)
        if seq.blocks:
            old = seq.blocks[0]
            if length:
                # pool.copy_bytes: an in-thread memmove on CPU (torch's threaded copy_ spins a core)
                self.pool.copy_bytes(blk, old, length * self.bytes_per_token)
                self.copied_bytes += length * self.bytes_per_token
            self._free(old)
        seq.blocks = [blk]
        seq.capacity = cap
        return time.perf_counter() - t0

    def view(self, seq: SeqKV, start: int, end: int) -> torch.Tensor:
        return seq.blocks[0].tensor[start:end]


class PagedKV(KVLayout):
    """Fixed blocks of ``block_tokens`` tokens and a block table per sequence (the vLLM way)."""

    name = "paged"

    def bytes_for(self, tokens: int) -> int:
        return -(-tokens // self.block_tokens) * self.block_bytes

    def reserve(self, seq: SeqKV, tokens: int, length: int) -> float:
        if tokens <= seq.capacity:
            return 0.0
        t0 = time.perf_counter()
        new: list[Block] = []
        try:
            for _ in range(-(-(tokens - seq.capacity) // self.block_tokens)):
                new.append(self._alloc(self.block_tokens, seq.owner))
        except MemoryError:
            for blk in new:
                self._free(blk)
            raise
        seq.blocks.extend(new)
        seq.capacity += len(new) * self.block_tokens
        return time.perf_counter() - t0

    def view(self, seq: SeqKV, start: int, end: int) -> torch.Tensor:
        bt = self.block_tokens
        first, last = start // bt, (end - 1) // bt
        if first == last:
            return seq.blocks[first].tensor[start - first * bt:end - first * bt]
        parts = [b.tensor for b in seq.blocks[first:last + 1]]
        return torch.cat(parts)[start - first * bt:end - first * bt]


class KVHandle:
    """`KVAccess` for the decoder: one sequence in one layout."""

    __slots__ = ("seq",)

    def __init__(self, seq: SeqKV) -> None:
        self.seq = seq

    def write(self, layer: int, start: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        seq, n = self.seq, keys.shape[0]
        layout = seq.layout
        bt = layout.block_tokens if isinstance(layout, PagedKV) else n + start
        pos = start
        while pos < start + n:  # a chunk may straddle paged blocks
            end = min(start + n, (pos // bt + 1) * bt)
            dst = layout.view(seq, pos, end)
            dst[:, 0, layer] = keys[pos - start:end - start]
            dst[:, 1, layer] = values[pos - start:end - start]
            pos = end

    def read(self, layer: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        kv = self.seq.layout.view(self.seq, 0, end)
        return kv[:, 0, layer], kv[:, 1, layer]


def make_layout(name: str, pool: PagedPool, model: ModelConfig, block_tokens: int | None, tag: str) -> KVLayout:
    """The layout called ``name``; ``block_tokens=None`` picks one pool page per KV block."""
    if block_tokens is None:
        block_tokens = max(1, pool.page_size // model.kv_bytes_per_token)
    cls = {"contiguous": ContiguousKV, "paged": PagedKV}.get(name)
    if cls is None:
        raise ValueError(f"kv_layout={name!r} is not allowed: choose one of {', '.join(map(repr, LAYOUTS))}")
    return cls(pool, model, block_tokens, tag)
