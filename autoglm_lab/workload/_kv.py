"""KV-cache layouts: where a sequence's keys and values live in the `PagedPool`.

```
contiguous  seq 7: [ t0 t1 ... t95 | spare ]           one block; growing past its capacity allocates a
                                                        bigger block, copies the tokens, frees the old one
paged       seq 7: table -> [t0..t63] [t64..t127] ...   fixed blocks of block_tokens, never copied
```

A contiguous block holds ``(tokens, 2, num_layers, num_kv_heads, head_dim)``: token-major, so growing
it copies one prefix. A paged block holds one slice of tokens as ``(num_layers, tokens, 2,
num_kv_heads, head_dim)``: a layer's keys and values of the block are one contiguous run (`KVLayout.view`
shows both as (tokens, 2, L, H, D)). Tensors are re-read from ``block.tensor`` on every access
because compaction may move blocks.

Reading paged KV (`KVHandle.read`) never concatenates blocks: the block table becomes one index of
runs into the segment's storage, kept on the sequence until a block is added or moves, and each
layer's keys and values are gathered with one ``index_select`` of whole runs into a reused scratch
buffer (the way paged-attention kernels read blocks in place; whole runs stream where per-token
rows would not). Blocks on several segments fall back to one copy per block into the same buffer.
"""

from __future__ import annotations

import math
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

    __slots__ = ("blocks", "capacity", "gather", "layout", "owner", "tag", "views")

    def __init__(self, layout: KVLayout, owner: int, tag: str | None = None) -> None:
        self.layout = layout
        self.blocks: list[Block] = []
        self.capacity = 0
        self.owner = owner
        self.tag = tag if tag is not None else layout.tag
        # paged: (block places, storage rows, each layer's index); rebuilt when a block moves or is added
        self.gather: tuple[list[int], torch.Tensor, tuple[torch.Tensor, ...]] | None = None
        # paged: (blocks read, scratch buffer, `PagedKV.views`), kept while those and the gather index stay
        self.views: tuple[int, torch.Tensor, tuple] | None = None

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

    def _shape(self, tokens: int) -> tuple[int, ...]:
        return (tokens, *self.row)

    def _alloc(self, tokens: int, seq: SeqKV) -> Block:
        blk = self.pool.alloc(self._shape(tokens), self.dtype, tag=seq.tag)
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
        seq.gather = seq.views = None
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
        self.run = block_tokens * 2 * model.num_kv_heads * model.head_dim  # elements of one layer of a block
        self._scratch: torch.Tensor | None = None          # (blocks, run): gathered runs
        self._storages: dict[tuple[int, int, int], torch.Tensor] = {}  # (data_ptr, nbytes, row) -> (n, row) view
        self._steps: dict[int, torch.Tensor] = {}  # rows a run -> (L, 1, rows): rows of each layer's run in a block

    def _shape(self, tokens: int) -> tuple[int, ...]:
        m = self.model
        return (m.num_layers, tokens, 2, m.num_kv_heads, m.head_dim)

    def scratch(self, blocks: int) -> torch.Tensor:
        """A reused (>= blocks, run) buffer for gathered runs of keys and values (overwritten by every read)."""
        buf = self._scratch
        if buf is None or buf.shape[0] < blocks:
            size = max(blocks, 4 if buf is None else 2 * buf.shape[0])
            buf = self._scratch = torch.empty((size, self.run), dtype=self.dtype, device=self.pool.device)
        return buf

    def gather_index(self, seq: SeqKV) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]] | None:
        """``(rows, index)``: ``rows`` views the segment's storage as (n, row), ``row`` dividing ``run`` (a
        whole run when the blocks sit on the run grid, as with one block a page); ``index[l]`` lists
        the rows of layer l's run of each block in turn (keys and values of its tokens). Kept on the
        sequence until a block is added or moves. None when the blocks lie on several segments (then
        `KVHandle.read` copies per block)."""
        blocks = seq.blocks
        places = [b.first_page for b in blocks]  # changes when compaction moves a block
        cached = seq.gather
        if cached is not None and cached[0] == places:
            return cached[1], cached[2]
        seq.gather = seq.views = None
        first = blocks[0].tensor
        storage = first.untyped_storage()
        if self.pool.num_segments > 1 and any(b.tensor.untyped_storage().data_ptr() != storage.data_ptr()
                                              for b in blocks):
            return None
        offsets = [b.tensor.storage_offset() for b in blocks]
        row = math.gcd(self.run, *offsets)  # the longest rows every block's runs start on
        key = (storage.data_ptr(), storage.nbytes(), row)
        rows = self._storages.get(key)
        if rows is None:
            flat = first.new_empty(0).set_(storage, 0, (storage.nbytes() // first.element_size(),), (1,))
            rows = flat[:flat.numel() // row * row].view(-1, row)
            if len(self._storages) > 64:
                self._storages.clear()
            self._storages[key] = rows
        per = self.run // row
        steps = self._steps.get(per)
        if steps is None:
            layers = torch.arange(self.model.num_layers, device=rows.device)
            steps = self._steps[per] = (layers[:, None] * per + torch.arange(per, device=rows.device))[:, None, :]
        base = torch.tensor(offsets, dtype=torch.int64).to(rows.device, non_blocking=True) // row
        index = (base[None, :, None] + steps).flatten(1).unbind(0)
        seq.gather = (places, rows, index)
        return rows, index

    def views(self, seq: SeqKV, blocks: int) -> tuple:
        """What reading the first ``blocks`` blocks of ``seq`` needs: (the scratch's runs for them, those
        as gathered rows, keys and values of all their tokens (strided views of the runs, as
        contiguous's), the storage rows, each layer's index); the last two are None when the blocks lie
        on several segments. Kept on the sequence while the gather index, the scratch buffer and
        ``blocks`` stay: decoding rebuilds it once a block."""
        found = self.gather_index(seq)
        buf = self.scratch(blocks)
        cached = seq.views
        if cached is not None and cached[0] == blocks and cached[1] is buf:
            return cached[2]
        m = self.model
        gathered = buf[:blocks]
        keys, values = gathered.view(-1, 2, m.num_kv_heads, m.head_dim).unbind(1)
        if found is None:
            return gathered, gathered, keys, values, None, None
        rows, index = found
        out = gathered.view(-1, rows.shape[1])
        views = gathered, out, keys, values, rows, [i[:out.shape[0]] for i in index]
        seq.views = (blocks, buf, views)
        return views

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
            return seq.blocks[first].tensor.permute(1, 2, 0, 3, 4)[start - first * bt:end - first * bt]
        parts = [b.tensor.permute(1, 2, 0, 3, 4) for b in seq.blocks[first:last + 1]]
        return torch.cat(parts)[start - first * bt:end - first * bt]


class KVHandle:
    """`KVAccess` for the decoder: one sequence in one layout, for one model step (a paged handle
    keeps its gather index for the step; blocks do not move while the simulator holds the pool lock)."""

    __slots__ = ("_plan", "seq")

    def __init__(self, seq: SeqKV) -> None:
        self.seq = seq
        # paged, per step: (end, `PagedKV.views` with keys and values cut to end)
        self._plan: tuple | None = None

    def write(self, layer: int, start: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        seq, n = self.seq, keys.shape[0]
        layout = seq.layout
        if not isinstance(layout, PagedKV):
            dst = layout.view(seq, start, start + n)
            dst[:, 0, layer] = keys
            dst[:, 1, layer] = values
            return
        bt = layout.block_tokens
        pos = start
        while pos < start + n:  # a chunk may straddle blocks
            i = pos // bt
            end = min(start + n, (i + 1) * bt)
            dst = seq.blocks[i].tensor[layer, pos - i * bt:end - i * bt]  # (tokens, 2, H, D)
            whole = end - pos == n  # a decode step: no slicing
            dst[:, 0] = keys if whole else keys[pos - start:end - start]
            dst[:, 1] = values if whole else values[pos - start:end - start]
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
            gathered, out, keys, values, rows, index = layout.views(seq, -(-end // layout.block_tokens))
            plan = self._plan = (end, gathered, out, keys[:end], values[:end], rows, index)
        _, gathered, out, keys, values, rows, index = plan
        if index is not None:
            torch.index_select(rows, 0, index[layer], out=out)  # whole blocks: the last one's spare too
            return keys, values
        for i, blk in enumerate(seq.blocks[:gathered.shape[0]]):  # several segments: one copy per block
            gathered[i].copy_(blk.tensor[layer].reshape(-1))
        return keys, values


def make_layout(name: str, pool: PagedPool, model: ModelConfig, block_tokens: int | None, tag: str) -> KVLayout:
    """The layout called ``name``; ``block_tokens=None`` picks one pool page per KV block."""
    if block_tokens is None:
        block_tokens = max(1, pool.page_size // model.kv_bytes_per_token)
    cls = {"contiguous": ContiguousKV, "paged": PagedKV}.get(name)
    if cls is None:
        raise ValueError(f"kv_layout={name!r} is not allowed: choose one of {', '.join(map(repr, LAYOUTS))}")
    return cls(pool, model, block_tokens, tag)
