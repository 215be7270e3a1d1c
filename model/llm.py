"""LLaMA-style decoder (DeepSeek LLM, spec §1.3): RMSNorm, rotary embeddings, SwiGLU, SDPA and a KV cache.

Rotary embeddings use the rotate-half layout of HF LLaMA so public weights load without permutation.
Padding is handled with an attention mask (left padding for generation, right padding for training).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from model.config import LLMConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # normalise in fp32 like the reference, then cast back before the gain
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class KVCache:
    """Preallocated keys/values per layer: (n_layer, B, h, max_len, hd); `length` tokens are filled."""

    def __init__(self, n_layer: int, max_len: int) -> None:
        self.n_layer, self.max_len, self.length = n_layer, max_len, 0
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, h, t, hd = k.shape
        if self.k is None:
            self.k = k.new_zeros(self.n_layer, B, h, self.max_len, hd)
            self.v = v.new_zeros(self.n_layer, B, h, self.max_len, hd)
        assert self.v is not None
        end = self.length + t
        if end > self.max_len:
            raise ValueError(f"KV cache full: {end} > {self.max_len} tokens")
        self.k[layer, :, :, self.length : end] = k.to(self.k.dtype)
        self.v[layer, :, :, self.length : end] = v.to(self.v.dtype)
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, t: int) -> None:
        self.length += t


class Attention(nn.Module):
    def __init__(self, cfg: LLMConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.head_dim
        d = cfg.n_embd
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q = self.wq(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, h, T, hd)
        k = self.wk(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, h, past + T, hd)
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self, cfg: LLMConfig) -> None:
        super().__init__()
        self.w_gate = nn.Linear(cfg.n_embd, cfg.intermediate, bias=False)
        self.w_up = nn.Linear(cfg.n_embd, cfg.intermediate, bias=False)
        self.w_down = nn.Linear(cfg.intermediate, cfg.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class Block(nn.Module):
    def __init__(self, cfg: LLMConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, cache, layer)
        return x + self.mlp(self.mlp_norm(x))


def build_mask(
    attention_mask: torch.Tensor | None, T: int, past: int, device: torch.device
) -> torch.Tensor | None:
    """Boolean SDPA mask (B, 1, T, past + T): causal and not padding; None when plain causal suffices."""
    if attention_mask is None:
        if past == 0 or T == 1:
            return None  # is_causal (or a single query seeing the whole cache)
        attention_mask = torch.ones(1, past + T, dtype=torch.bool, device=device)
    q_pos = torch.arange(past, past + T, device=device)[:, None]
    k_pos = torch.arange(past + T, device=device)[None, :]
    mask = (k_pos <= q_pos)[None] & attention_mask[:, None, :].bool()  # (B, T, past + T)
    # a left-padded query row would otherwise see no key at all and give NaN; let it see itself
    mask = mask | (k_pos == q_pos)[None]
    return mask[:, None]


class LLaMA(nn.Module):
    def __init__(self, cfg: LLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.grad_checkpointing = False
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.init_buffers()

    def init_buffers(self, device: torch.device | str | None = None) -> None:
        hd = self.cfg.head_dim
        inv = 1.0 / self.cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32, device=device) / hd)
        self.register_buffer("inv_freq", inv, persistent=False)

    def rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (B, T) -> cos, sin (B, 1, T, hd), computed in fp32."""
        freqs = positions[..., None].float() * self.inv_freq.float()  # (B, T, hd/2)
        emb = torch.cat((freqs, freqs), dim=-1)[:, None]
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Token ids (B, T) or embeddings (B, T, d) -> logits (B, T, vocab).

        attention_mask (B, past + T): 1 for real tokens, 0 for padding, covering the cached tokens too.
        """
        x = self.tok_embeddings(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, d)
        B, T, _ = x.shape
        past = kv_cache.length if kv_cache is not None else 0
        if attention_mask is not None:
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]  # (B, T)
        else:
            positions = torch.arange(past, past + T, device=x.device)[None].expand(B, T)
        cos, sin = self.rope(positions, x.dtype)
        mask = build_mask(attention_mask, T, past, x.device)
        for i, layer in enumerate(self.layers):
            if self.grad_checkpointing and self.training and kv_cache is None and torch.is_grad_enabled():
                x = checkpoint(layer, x, cos, sin, mask, use_reentrant=False)
            else:
                x = layer(x, cos, sin, mask, kv_cache, i)
        if kv_cache is not None:
            kv_cache.advance(T)
        if last_only:  # decoding needs one position; skips a (B, T, 102400) prefill projection
            x = x[:, -1:]
        return self.lm_head(self.norm(x))  # (B, T or 1, vocab)
