"""`Block`: a handle to a contiguous run of pages holding one tensor."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from ._errors import InvalidBlockError
from ._impl import BlockBase

if TYPE_CHECKING:
    from ._pool import PagedPool, _Segment

__all__ = ["Block"]


class Block(BlockBase):
    """A live allocation of a `PagedPool`.

    ``tensor`` is a view of the block's pages with the requested shape and dtype. Compaction may move
    a block; its ``id`` stays, and ``block.tensor`` then views the new place with the same contents.
    A tensor obtained *before* a move still points at the old pages and is stale. Where another
    thread may compact (a live dashboard, ``pool.tick``), use the view inside ``with block.hold()
    as t:`` (the block cannot move meanwhile) or under ``with pool.lock:``; see "Threads" in
    `autoglm_lab.pool`. The public fields are read-only: they are the pool's own books.
    """

    __slots__ = ("__weakref__",)  # the fields live in BlockBase (compiled, or _pycore.BlockBase)

    id: int
    nbytes: int
    num_pages: int
    tag: str | None
    dtype: torch.dtype
    shape: tuple[int, ...]
    created_s: float
    _pool: PagedPool
    _seg: _Segment
    _start: int
    _slot: int
    _tensor: torch.Tensor | None
    _freed: bool
    _pins: int

    @property
    def first_page(self) -> int:
        """Global index of the block's first page. It changes when compaction moves the block, and
        when `PagedPool.release_empty_segments` renumbers the pages of later segments (pinned blocks
        too: their bytes stay where they are, only the numbering shifts)."""
        self._check_live("first_page")
        return self._start

    @property
    def tensor(self) -> torch.Tensor:
        """A view of the block's pages, ``shape`` and ``dtype`` as allocated."""
        view = self._tensor
        if view is None:
            # built and cached under the lock: a move between reading the place and caching the
            # view would otherwise leave a view of another block's pages cached
            with self._pool._lock:
                self._check_live("tensor")
                view = self._tensor
                if view is None:
                    view = self._tensor = self._seg.view(self._start, self.nbytes, self.dtype, self.shape)
        return view

    @contextlib.contextmanager
    def hold(self) -> Iterator[torch.Tensor]:
        """``with block.hold() as t:`` the block's tensor, safe to read and write while the body
        runs: the block is pinned, so no compaction (on any thread) moves it meanwhile."""
        with self._pool.pin(self) as blk:
            yield blk.tensor

    @property
    def freed(self) -> bool:
        return self._freed

    @property
    def pinned(self) -> bool:
        return self._pins > 0

    @property
    def cached(self) -> bool:
        """True while the pool holds this block as evictable cache (`PagedPool.set_cached`)."""
        return self.id in self._pool._cached

    @property
    def segment(self) -> int:
        """Position of the block's segment in the pool's segment list."""
        self._check_live("segment")
        return self._pool._segments.index(self._seg)

    def free(self) -> None:
        self._pool.free(self)

    def _check_live(self, what: str) -> None:
        if self._freed:
            raise InvalidBlockError(
                f"block {self.id} (tag={self.tag!r}) was freed; its {what} can no longer be used"
            )

    def __enter__(self) -> Block:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._freed:
            self._pool.free(self)

    def __repr__(self) -> str:
        state = "freed" if self._freed else f"pages {self._start}..{self._start + self.num_pages - 1}"
        return (f"Block(id={self.id}, {tuple(self.shape)} {str(self.dtype).removeprefix('torch.')}, "
                f"{self.nbytes} B, {self.num_pages} page(s), {state}, tag={self.tag!r})")
