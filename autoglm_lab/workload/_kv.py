"""KV-cache layouts: where a sequence's keys and values live in the `PagedPool`.

```
contiguous  seq 7: [ t0 t1 ... t95 | spare ]           one block; growing past its capacity allocates a
                                                        bigger block, copies the tokens, frees the old one
paged       seq 7: table -> [t0..t63] [t64..t127] ...   fixed blocks of block_tokens, never copied
```

Every block holds ``(tokens, 2, num_layers, num_kv_heads, head_dim)``: token-major, so growing a
contiguous cache copies one prefix and a paged block is a plain slice of tokens.
Tensors are re-read from ``block.tensor`` on every access because compaction may move blocks.

Reading paged KV (`KVHandle.read`) never concatenates blocks: the block table becomes one index of
(num_kv_heads x head_dim) rows into the segment's storage, built once per step, and each layer's
keys and values are gathered with one ``index_select`` each into a reused scratch buffer (the way
paged-attention kernels read blocks in place). Blocks on several segments fall back to one copy per
block into the same buffer.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import TYPE_CHECKING

import torch

from ..pool import Block, PagedPool

if TYPE_CHECKING:
    from ._model import ModelConfig

__all__ = ["SeqKV", "KVLayout", "ContiguousKV", "PagedKV", "make_layout", "LAYOUTS"]

LAYOUTS = ("contiguous", "paged")


class SeqKV:
    """One sequence's KV blocks. ``capacity`` tokens are reserved, ``owner`` is the session key, ``tag``
    the pool tag its blocks carry (the request and session: the page map colours and names them)."""

    __slots__ = ("blocks", "capacity", "gather", "layout", "owner", "tag")

    def __init__(self, layout: KVLayout, owner: int, tag: str | None = None) -> None:
        self.layout = layout
        self.blocks: list[Block] = []
        self.capacity = 0
        self.owner = owner
        self.tag = tag if tag is not None else layout.tag
        # paged: (block places, storage rows, index (2 x layers, capacity)); rebuilt when a block moves or is added
        self.gather: tuple[tuple[int, ...], torch.Tensor, torch.Tensor] | None = None

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
        self.evicted = 0       # cached blocks freed (the pool counts each as an eviction)

    def new(self, owner: int, tag: str | None = None) -> SeqKV:
        """A sequence of session ``owner`` whose blocks carry ``tag`` (default: the layout's)."""
        return SeqKV(self, owner, tag)

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

    def _alloc(self, tokens: int, seq: SeqKV) -> Block:
        blk = self.pool.alloc((tokens, *self.row), self.dtype, tag=seq.tag)
        self.owners[blk.id] = (blk, seq.owner)
        self.live_pages += blk.num_pages
        return blk

    def _free(self, blk: Block) -> None:
        del self.owners[blk.id]
        self.live_pages -= blk.num_pages
        if blk.cached:
            self.evicted += 1
        self.pool.free(blk)

    def free_blocks(self, blocks: list[Block]) -> float:
        """Free ``blocks`` of this layout; seconds spent."""
        t0 = time.perf_counter()
        for blk in blocks:
            self._free(blk)
        return time.perf_counter() - t0

    def unit_pages(self) -> int:
        """Pages of a typical KV allocation of this layout (what a free run must hold to be useful)."""
        return max(1, -(-self.block_bytes // self.pool.page_size))

    def reserve(self, seq: SeqKV, tokens: int, length: int) -> float:
        """Make room for ``tokens`` tokens (``length`` are filled); seconds spent.

        On `PoolExhausted` the sequence is left as it was."""
        raise NotImplementedError

    def release(self, seq: SeqKV, keep: Collection[int] = ()) -> float:
        """Free every block of ``seq`` but those whose id is in ``keep`` (the prefix cache's); seconds spent."""
        t0 = time.perf_counter()
        for blk in seq.blocks:
            if blk.id not in keep:
                self._free(blk)
        seq.blocks = []
        seq.capacity = 0
        seq.gather = None
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
        blk = self._alloc(cap, seq)
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

    def __init__(self, pool: PagedPool, model: ModelConfig, block_tokens: int, tag: str) -> None:
        super().__init__(pool, model, block_tokens, tag)
        self.chunk = model.num_kv_heads * model.head_dim  # elements of one layer's K (or V) of one token
        self._scratch: torch.Tensor | None = None          # (2, tokens, chunk): gathered K and V
        self._storages: dict[tuple[int, int], torch.Tensor] = {}  # (data_ptr, nbytes) -> (rows, chunk) view
        self._steps: torch.Tensor | None = None              # chunk offset of each token within a block
        self._layer_offsets: torch.Tensor | None = None      # K of layer l at +l, V at +L+l

    def scratch(self, tokens: int) -> torch.Tensor:
        """A reused (2, >= tokens, chunk) buffer for gathered keys and values (overwritten by every read)."""
        buf = self._scratch
        if buf is None or buf.shape[1] < tokens:
            size = max(tokens, 256 if buf is None else 2 * buf.shape[1])
            buf = self._scratch = torch.empty((2, size, self.chunk), dtype=self.dtype, device=self.pool.device)
        return buf

    def gather_index(self, seq: SeqKV) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(rows, index)``: ``rows`` views the segment's storage as (n, chunk); ``index[l, t]`` is the row
        of layer l's key of token t (all ``capacity`` tokens), ``index[L + l, t]`` its value. Kept on the
        sequence until a block is added or moves. None when the blocks lie on several segments or off
        the chunk grid (then `KVHandle.read` copies per block)."""
        blocks = seq.blocks
        places = tuple(b.first_page for b in blocks)  # changes when compaction moves a block
        cached = seq.gather
        if cached is not None and cached[0] == places:
            return cached[1], cached[2]
        seq.gather = None
        first = blocks[0].tensor
        storage = first.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if self.pool.num_segments > 1 and any(b.tensor.untyped_storage().data_ptr() != key[0] for b in blocks):
            return None
        offsets = [b.tensor.storage_offset() for b in blocks]
        chunk = self.chunk
        if any(o % chunk for o in offsets):
            return None
        rows = self._storages.get(key)
        if rows is None:
            flat = first.new_empty(0).set_(storage, 0, (storage.nbytes() // first.element_size(),), (1,))
            rows = flat[:flat.numel() // chunk * chunk].view(-1, chunk)
            if len(self._storages) > 64:
                self._storages.clear()
            self._storages[key] = rows
        steps, layers = self._steps, self._layer_offsets
        if steps is None or layers is None:
            per_token = 2 * self.model.num_layers  # a token's row holds 2 x L chunks
            steps = self._steps = torch.arange(self.block_tokens, device=rows.device) * per_token
            layers = self._layer_offsets = torch.arange(per_token, device=rows.device)
        base = torch.tensor(offsets, dtype=torch.int64).to(rows.device, non_blocking=True) // chunk
        index = (base[:, None] + steps[None, :]).flatten()
        index = index[None, :] + layers[:, None]
        seq.gather = (places, rows, index)
        return rows, index

    def bytes_for(self, tokens: int) -> int:
        return -(-tokens // self.block_tokens) * self.block_bytes

    def reserve(self, seq: SeqKV, tokens: int, length: int) -> float:
        if tokens <= seq.capacity:
            return 0.0
        t0 = time.perf_counter()
        new: list[Block] = []
        try:
            for _ in range(-(-(tokens - seq.capacity) // self.block_tokens)):
                new.append(self._alloc(self.block_tokens, seq))
        except MemoryError:
            for blk in new:
                self._free(blk)
            raise
        seq.blocks.extend(new)
        seq.capacity += len(new) * self.block_tokens
        return time.perf_counter() - t0

    def view(self, seq: SeqKV, start: int, end: int) -> torch.Tensor:
        """Tokens ``[start, end)``; several blocks are concatenated (a copy: not used by attention)."""
        bt = self.block_tokens
        first, last = start // bt, (end - 1) // bt
        if first == last:
            return seq.blocks[first].tensor[start - first * bt:end - first * bt]
        parts = [b.tensor for b in seq.blocks[first:last + 1]]
        return torch.cat(parts)[start - first * bt:end - first * bt]


class KVHandle:
    """`KVAccess` for the decoder: one sequence in one layout, for one model step (a paged handle
    keeps its gather index for the step; blocks do not move while the simulator holds the pool lock)."""

    __slots__ = ("_plan", "seq")

    def __init__(self, seq: SeqKV) -> None:
        self.seq = seq
        # paged, per step: (end, keys out, values out, keys shaped, values shaped, rows, index[:, :end] or None)
        self._plan: tuple | None = None

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
        """Keys and values of tokens ``[0, end)``, (end, num_kv_heads, head_dim). Paged: gathered into the
        layout's scratch buffer, valid until the next read of any sequence of that layout."""
        seq = self.seq
        layout = seq.layout
        if not isinstance(layout, PagedKV):
            kv = layout.view(seq, 0, end)
            return kv[:, 0, layer], kv[:, 1, layer]
        plan = self._plan
        if plan is None or plan[0] != end:  # once per step: the views and the index, for every layer
            shape = (end, layout.model.num_kv_heads, layout.model.head_dim)
            buf = layout.scratch(end)
            keys, values = buf[0, :end], buf[1, :end]
            found = layout.gather_index(seq)
            rows, index = found if found is not None else (None, None)
            plan = self._plan = (end, keys, values, keys.view(shape), values.view(shape), rows,
                                 None if index is None else index[:, :end])
        _, keys, values, keys_out, values_out, rows, index = plan
        if index is not None:
            torch.index_select(rows, 0, index[layer], out=keys)
            torch.index_select(rows, 0, index[layout.model.num_layers + layer], out=values)
            return keys_out, values_out
        bt = layout.block_tokens
        for i, blk in enumerate(seq.blocks[:-(-end // bt)]):  # several segments: one copy per block
            n = min(bt, end - i * bt)
            src = blk.tensor[:n]
            keys[i * bt:i * bt + n].copy_(src[:, 0, layer].reshape(n, -1))
            values[i * bt:i * bt + n].copy_(src[:, 1, layer].reshape(n, -1))
        return keys_out, values_out


def make_layout(name: str, pool: PagedPool, model: ModelConfig, block_tokens: int | None, tag: str) -> KVLayout:
    """The layout called ``name``; ``block_tokens=None`` picks one pool page per KV block."""
    if block_tokens is None:
        block_tokens = max(1, pool.page_size // model.kv_bytes_per_token)
    cls = {"contiguous": ContiguousKV, "paged": PagedKV}.get(name)
    if cls is None:
        raise ValueError(f"kv_layout={name!r} is not allowed: choose one of {', '.join(map(repr, LAYOUTS))}")
    return cls(pool, model, block_tokens, tag)
