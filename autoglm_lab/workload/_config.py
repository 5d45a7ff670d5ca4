"""`ServingConfig`: every knob of the serving simulator, validated in one place.

The constructor, `ServingConfig.replace` and `ServingSim.configure` share the validation, so a bad
value from a notebook or a dashboard slider is refused the same way: a `ValueError` naming the
field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from ..pool import check_int
from ._kv import LAYOUTS
from ._model import DTYPES, ModelConfig

__all__ = ["ServingConfig", "MODEL_FIELDS", "REUSE_STRATEGIES", "COMPUTE_MODES"]

# The workload's enumerations, defined once: validation, the CLI's choices and the dashboard's options
# read these (KV layouts live with their classes in _kv).
REUSE_STRATEGIES = ("none", "lru", "ttl", "lfu")
COMPUTE_MODES = ("none", "model")
_CHOICES: dict[str, tuple[Any, ...]] = {
    "kv_layout": LAYOUTS,
    "compute": COMPUTE_MODES,
    "cache_reuse_strategy": REUSE_STRATEGIES,
    "model_dtype": tuple(DTYPES),
    "adaptive_batching": (True, False),
    "prewarm": (True, False),
    "leak_sessions": (True, False),
    "check_invariants": (True, False),
}
# name -> (low, high) for integers
_INTS: dict[str, tuple[int, int]] = {
    "max_batch_size": (1, 65536), "max_batched_tokens": (1, 1 << 24), "max_context_length": (2, 1 << 24),
    "seed": (0, 2**63 - 1), "num_layers": (1, 256), "hidden_size": (8, 65536), "num_heads": (1, 1024),
    "num_kv_heads": (1, 1024), "head_dim": (2, 4096), "ffn_size": (1, 1 << 20), "vocab_size": (2, 1 << 20),
    "history_limit": (16, 1 << 30), "recent_capacity": (16, 1 << 24),
}
# name -> (low, allow None); floats must be finite and >= low (> low when low == 0 and strict)
_FLOATS: dict[str, tuple[float, bool]] = {
    "cache_ttl_s": (0.0, False), "session_timeout_s": (0.0, True), "request_rate_scale": (0.0, False),
    "cost_step_s": (0.0, False), "cost_token_s": (0.0, False), "cost_attention_s": (0.0, False),
    "copy_bytes_per_s": (0.0, False), "prewarm_fraction": (0.0, False), "cost_growth_s": (0.0, True),
}
_STRICT = {"cache_ttl_s", "session_timeout_s", "request_rate_scale", "copy_bytes_per_s"}
# name -> (low, high) for floats with a range: beyond it the simulated clocks overflow or stop resolving steps
_RANGES: dict[str, tuple[float, float]] = {"request_rate_scale": (1e-6, 1e6), "prewarm_fraction": (0.0, 1.0)}
# ServingConfig field -> ModelConfig field
MODEL_FIELDS = {
    "num_layers": "num_layers", "hidden_size": "hidden_size", "num_heads": "num_heads",
    "num_kv_heads": "num_kv_heads", "head_dim": "head_dim", "ffn_size": "ffn_size",
    "vocab_size": "vocab_size", "model_dtype": "dtype", "seed": "seed",
}


@dataclass(frozen=True)
class ServingConfig:
    """Configuration of a `ServingSim`; every field may change while it runs (`ServingSim.configure`).

    kv_layout: "contiguous" (one re-allocated block per sequence) or "paged" (fixed KV blocks).
    block_tokens: tokens per KV block (paged) and growth step (contiguous); None = one pool page.
    compute: "model" runs `TinyGLM` (wall-clock latency); "none" keeps every allocation, free and
        compaction but replaces the arithmetic by the cost model below (virtual clock).
    max_batch_size, max_batched_tokens: limits of one continuous-batching step (chunked prefill).
    adaptive_batching: admit only what free memory allows and shrink the batch when memory is low.
    max_context_length: longer prompts are rejected; generation stops there.
    session_timeout_s: a session idle this long is closed and its cached KV freed (None: never).
    cache_reuse_strategy: "none" frees KV when a request ends. Otherwise finished KV stays in the pool
        as cached (evictable) blocks, reused by a session's next turn or, for requests with
        `Request.block_hashes`, by any request sharing the prefix; an allocation that finds no free
        run evicts cached KV first: "lru" the least recently used, "lfu" the least often used, "ttl"
        like lru and also drops what was unused for ``cache_ttl_s``.
    prewarm: prefix blocks: pin the most often requested cached blocks (up to ``prewarm_fraction``
        of the pool) so no eviction takes them; sessions: recompute the evicted KV of hot
        (multi-turn) sessions when memory is free again.
    request_rate_scale: arrivals come this many times faster than the trace says (1e-6 to 1e6).
    leak_sessions: the bug switch: closed sessions forget to free their KV (for teaching).
    seed: seeds the model weights and the token ids.
    num_layers ... model_dtype: sizes of the `TinyGLM` (its KV bytes per token).
    cost_step_s, cost_token_s, cost_attention_s: compute="none" latency = step + token x tokens
        + attention x attended (query, key) pairs; copy_bytes_per_s prices re-allocation copies and
        compaction moves; cost_growth_s prices one growth of the pool (a new segment); None: the
        wall time the real segment allocation took (so a run that grows is not exactly repeatable).
    history_limit: per-step rows kept for `results()`; recent_capacity: rows of `recent_steps()`.
    check_invariants: run ``pool.check_invariants()`` after every step (slow; for debugging).
    """

    kv_layout: Literal["contiguous", "paged"] = "paged"
    block_tokens: int | None = None
    compute: Literal["none", "model"] = "none"
    max_batch_size: int = 32
    max_batched_tokens: int = 2048
    adaptive_batching: bool = True
    max_context_length: int = 8192
    session_timeout_s: float | None = 60.0
    cache_reuse_strategy: Literal["none", "lru", "ttl", "lfu"] = "none"
    cache_ttl_s: float = 30.0
    prewarm: bool = False
    prewarm_fraction: float = 0.25
    request_rate_scale: float = 1.0
    leak_sessions: bool = False
    seed: int = 0
    num_layers: int = 2
    hidden_size: int = 128
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 32
    ffn_size: int = 344
    vocab_size: int = 512
    model_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    cost_step_s: float = 5e-4
    cost_token_s: float = 2e-5
    cost_attention_s: float = 2e-9
    copy_bytes_per_s: float = 10e9
    cost_growth_s: float | None = None
    history_limit: int = 1_000_000
    recent_capacity: int = 4096
    check_invariants: bool = False

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
                raise ValueError(f"{name}={value!r} is not allowed: choose one of {', '.join(map(repr, allowed))}")
        for name, (low, high) in _INTS.items():
            check_int(name, getattr(self, name), low, high)
        if self.block_tokens is not None:
            check_int("block_tokens", self.block_tokens, 1, 1 << 20)
        for name, (low, optional) in _FLOATS.items():
            value = getattr(self, name)
            if value is None and optional:
                continue
            strict = name in _STRICT
            ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) \
                and (value > low if strict else value >= low)
            if not ok:
                bound = f"> {low}" if strict else f">= {low}"
                none = " or None" if optional else ""
                raise ValueError(f"{name}={value!r} is not allowed: use a finite number {bound}{none}")
            if name in _RANGES and not _RANGES[name][0] <= value <= _RANGES[name][1]:
                low_r, high_r = _RANGES[name]
                raise ValueError(f"{name}={value!r} is not allowed: use a number from {low_r:g} to {high_r:g}")
            object.__setattr__(self, name, float(value))
        self.model_config()  # cross-field checks (heads vs kv heads, even head_dim)

    def model_config(self) -> ModelConfig:
        """The `ModelConfig` of these model fields."""
        return ModelConfig(**{m: getattr(self, s) for s, m in MODEL_FIELDS.items()})

    def replace(self, **changes: Any) -> ServingConfig:
        """A new, validated config with ``changes`` applied; unknown names raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown ServingConfig field(s) {unknown}; known fields: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

