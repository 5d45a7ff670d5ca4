"""`TinyGLM`: a small GLM-style decoder (RMSNorm, rotary embeddings, grouped-query attention, SwiGLU).

Weights are random from a seed (nothing is downloaded). The decoder never owns its KV cache: each
call gets, per sequence, a `KVAccess` that writes the new keys/values into pool blocks and reads the
whole context back from them, so attention really reads tensors that live in the `PagedPool`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F

from ..pool import resolve_device

__all__ = ["ModelConfig", "TinyGLM", "KVAccess", "DTYPES"]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of a `TinyGLM`. KV bytes per token = 2 x num_layers x num_kv_heads x head_dim x dtype bytes."""

    vocab_size: int = 512
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 32
    ffn_size: int = 344
    rope_theta: float = 10000.0
    dtype: str = "float32"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "ffn_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65536:
                raise ValueError(f"{name}={value!r} is not allowed: use an integer from 1 to 65536")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not allowed: it must be a multiple of "
                             f"num_kv_heads={self.num_kv_heads} (grouped-query attention)")
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} is not allowed: rotary embeddings need an even head_dim")
        if not isinstance(self.dtype, str) or self.dtype not in DTYPES:  # a list is unhashable
            raise ValueError(f"dtype={self.dtype!r} is not allowed: choose one of {', '.join(map(repr, DTYPES))}")
        theta = self.rope_theta
        if isinstance(theta, bool) or not isinstance(theta, int | float) or not (math.isfinite(theta) and theta > 0):
            raise ValueError(f"rope_theta={theta!r} is not allowed: use a finite number > 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed={self.seed!r} is not allowed: use an integer from 0 to {2**63 - 1}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.torch_dtype.itemsize


class KVAccess(Protocol):
    """One sequence's KV cache as the decoder sees it; tensors are (tokens, num_kv_heads, head_dim)."""

    def write(self, layer: int, start: int, keys: torch.Tensor, values: torch.Tensor) -> None: ...

    def read(self, layer: int, end: int) -> tuple[torch.Tensor, torch.Tensor]: ...


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Layer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h, d = cfg.hidden_size, cfg.head_dim
        self.attn_norm = RMSNorm(h)
        self.qkv = nn.Linear(h, (cfg.num_heads + 2 * cfg.num_kv_heads) * d, bias=True)  # GLM keeps a qkv bias
        self.out = nn.Linear(cfg.num_heads * d, h, bias=False)
        self.ffn_norm = RMSNorm(h)
        self.gate_up = nn.Linear(h, 2 * cfg.ffn_size, bias=False)
        self.down = nn.Linear(cfg.ffn_size, h, bias=False)


class TinyGLM(nn.Module):
    """A GLM-style decoder with random weights. `step` runs one scheduler iteration's tokens."""

    def __init__(self, config: ModelConfig | None = None, device: torch.device | str = "cpu") -> None:
        """``device``: a torch device or a name as `PoolConfig.device` takes it ("auto": CUDA when present);
        `ServingSim` passes its pool's device, so the weights sit next to the KV cache."""
        super().__init__()
        if config is not None and not isinstance(config, ModelConfig):
            raise TypeError(f"config={config!r} is not allowed: use None or a ModelConfig, not {type(config).__name__}")
        if isinstance(device, str):
            device = resolve_device(device)
        cfg = self.config = config if config is not None else ModelConfig()
        gen = torch.Generator().manual_seed(cfg.seed)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        with torch.no_grad():
            for p in self.parameters():
                if p.dim() > 1:
                    p.copy_(torch.randn(p.shape, generator=gen) * p.shape[-1] ** -0.5)
        self.to(device=device, dtype=cfg.torch_dtype).eval()
        self._rope_cache = torch.empty(0, cfg.head_dim // 2, 2)

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def _rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        need = int(positions.max()) + 1
        if self._rope_cache.shape[0] < need or self._rope_cache.device != positions.device:
            size = max(need, 2 * self._rope_cache.shape[0], 256)
            half = self.config.head_dim // 2
            inv = self.config.rope_theta ** (-torch.arange(half, dtype=torch.float32, device=positions.device) / half)
            ang = torch.outer(torch.arange(size, dtype=torch.float32, device=positions.device), inv)
            self._rope_cache = torch.stack((ang.cos(), ang.sin()), -1)
        cs = self._rope_cache[positions].to(self.config.torch_dtype)
        return cs[..., 0].unsqueeze(1), cs[..., 1].unsqueeze(1)

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)

    @torch.no_grad()
    def step(self, tokens: list[torch.Tensor], starts: list[int], caches: list[KVAccess], *,
             return_logits: bool = False) -> torch.Tensor:
        """Run ``tokens[i]`` (1-D ids) of sequence ``i`` at positions ``starts[i]...``; return its next token ids
        (``return_logits=True``: the logits of each sequence's last position, (batch, vocab_size)).

        Keys/values of the new tokens are written through ``caches[i]`` before attention reads the
        context ``[0, starts[i] + len(tokens[i]))`` back from it.
        """
        cfg = self.config
        lens = [int(t.shape[0]) for t in tokens]
        ids = torch.cat(tokens).to(self.device)
        positions = torch.cat([torch.arange(s, s + n) for s, n in zip(starts, lens, strict=True)]).to(self.device)
        cos, sin = self._rope(positions)
        x = self.embed(ids)
        nq, nkv, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        for li, layer in enumerate(self.layers):
            qkv = layer.qkv(layer.attn_norm(x))
            q = self._rotate(qkv[:, :nq * d].view(-1, nq, d), cos, sin)
            k = self._rotate(qkv[:, nq * d:(nq + nkv) * d].view(-1, nkv, d), cos, sin)
            v = qkv[:, (nq + nkv) * d:].view(-1, nkv, d)
            outs = []
            offset = 0
            for i, n in enumerate(lens):
                start, sl = starts[i], slice(offset, offset + n)
                caches[i].write(li, start, k[sl], v[sl])
                keys, values = caches[i].read(li, start + n)
                outs.append(self._attend(q[sl], keys, values, start))
                offset += n
            x = x + layer.out(torch.cat(outs).flatten(1))
            gate, up = layer.gate_up(layer.ffn_norm(x)).chunk(2, -1)
            x = x + layer.down(F.silu(gate) * up)
        last = torch.tensor(lens).cumsum(0).to(self.device) - 1
        logits = self.lm_head(self.norm(x[last]))
        return logits if return_logits else logits.argmax(-1)

    @staticmethod
    def _attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, start: int) -> torch.Tensor:
        n, total = q.shape[0], keys.shape[0]
        mask = None
        if n > 1:  # causal within the chunk, full view of the cached prefix
            keys_at = torch.arange(total, device=q.device)[None, :]
            mask = keys_at <= torch.arange(start, start + n, device=q.device)[:, None]
        out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], keys.transpose(0, 1)[None],
                                             values.transpose(0, 1)[None], attn_mask=mask, enable_gqa=True)
        return out[0].transpose(0, 1)
