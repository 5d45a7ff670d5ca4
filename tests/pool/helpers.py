"""Shared helpers for pool and compactor tests."""

from __future__ import annotations

import torch

import autoglm_lab as al


def small_pool(device: str = "cpu", *, pages: int = 16, max_pages: int | None = None, page: int = 4096,
               **kw: object) -> al.PagedPool:
    cfg = al.PoolConfig(page_size=page, memory_pool_initial_size=pages * page,
                        max_size=(max_pages or pages) * page, device=device, **kw)  # type: ignore[arg-type]
    return al.PagedPool(cfg)


def pattern(block: al.Block) -> torch.Tensor:
    """A byte pattern unique to the block (id and offset mixed), to catch any moved or lost byte."""
    n = block.nbytes
    idx = torch.arange(n, dtype=torch.int64, device=block.tensor.device)
    return ((idx * 131 + block.id * 7919 + 17) % 251).to(torch.uint8)


def write_pattern(block: al.Block) -> None:
    block.tensor.view(-1).view(torch.uint8)[: block.nbytes].copy_(pattern(block))


def check_pattern(block: al.Block) -> None:
    got = block.tensor.reshape(-1).view(torch.uint8)[: block.nbytes]
    assert torch.equal(got, pattern(block)), f"bytes of {block} changed"
