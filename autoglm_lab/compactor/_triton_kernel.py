"""The compaction copy kernel, as a plain function: `_triton` wraps it with ``triton.jit`` on first use
(so TRITON_INTERPRET is read then, not at import). Imported only where Triton is installed."""

from __future__ import annotations

import triton.language as tl


def copy_chunks(seg, tmp, table, BLOCK: tl.constexpr):
    """One program per row of ``table`` (src word, dst word, words, mode; int64): copy that many int64
    words, segment to segment (mode 0), segment to ``tmp`` (1) or ``tmp`` to segment (2), in tiles of
    BLOCK. Offsets and lengths are multiples of 8 words (pages are multiples of 64 bytes): the hints
    let the compiler use 16-byte vector loads and stores."""
    row = table + tl.program_id(0).to(tl.int64) * 4
    src = tl.multiple_of(tl.load(row), 8)
    dst = tl.multiple_of(tl.load(row + 1), 8)
    n = tl.multiple_of(tl.load(row + 2), 8)
    mode = tl.load(row + 3)
    src_ptr = seg + src
    dst_ptr = seg + dst
    if mode == 1:
        dst_ptr = tmp + dst
    if mode == 2:
        src_ptr = tmp + src
    for off in range(0, n, BLOCK):
        idx = off + tl.arange(0, BLOCK)
        mask = idx < n
        tl.store(dst_ptr + idx, tl.load(src_ptr + idx, mask=mask), mask=mask)
