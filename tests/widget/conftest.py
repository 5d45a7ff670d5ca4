from __future__ import annotations

from typing import Any

import pytest

import autoglm_lab as al


@pytest.fixture
def small_pool() -> al.PagedPool:
    """16 pages of 4 KiB on the CPU, in one segment."""
    return al.PagedPool(al.PoolConfig(page_size="4KiB", memory_pool_initial_size="64KiB", max_size="128KiB",
                                      device="cpu"))


class Outbox:
    """Records what a widget sends to the front end (custom messages with their buffers)."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []      # comm messages as sent
        self.messages: list[tuple[dict[str, Any], list[bytes]]] = []  # one per frame, batches unpacked

    def __call__(self, content: dict[str, Any], buffers: list[Any] | None = None) -> None:
        self.sent.append((content, [bytes(b) for b in buffers or []]))
        if content.get("type") == "batch":  # several views' frames in one message: one entry each
            for (kind, key), buf in zip(content["parts"], buffers or [], strict=True):
                self.messages.append(({"type": kind} if key is None else {"type": kind, "key": key}, [bytes(buf)]))
        else:
            self.messages.append((content, [bytes(b) for b in buffers or []]))

    def of(self, kind: str) -> list[tuple[dict[str, Any], list[bytes]]]:
        return [m for m in self.messages if m[0].get("type") == kind]


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()
