"""Vision-language adaptor (spec §1.2): maps vision tokens to the LLM width.

Hybrid (7B): SAM tokens and SigLIP tokens are each up-projected to half the LLM width, concatenated
(SAM half first), then GELU and a Linear. MLP (1.3B): Linear, GELU, Linear.
"""

from __future__ import annotations

import torch
from torch import nn

from model.config import AdaptorConfig


class HybridAdaptor(nn.Module):
    def __init__(self, cfg: AdaptorConfig) -> None:
        super().__init__()
        self.high_proj = nn.Linear(cfg.high_dim, cfg.n_embed // 2)
        self.low_proj = nn.Linear(cfg.low_dim, cfg.n_embed // 2)
        self.act = nn.GELU()
        self.out_proj = nn.Linear(cfg.n_embed, cfg.n_embed)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """high (B, 576, 1024), low (B, 576, 1024) -> (B, 576, 4096)."""
        x = torch.cat([self.high_proj(high), self.low_proj(low)], dim=-1)  # (B, 576, 4096)
        return self.out_proj(self.act(x))


class MlpAdaptor(nn.Module):
    def __init__(self, cfg: AdaptorConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.low_dim, cfg.n_embed)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(cfg.n_embed, cfg.n_embed)

    def forward(self, high: torch.Tensor | None, low: torch.Tensor) -> torch.Tensor:
        """low (B, 576, 1024) -> (B, 576, 2048); `high` is unused (no SAM branch)."""
        return self.fc2(self.act(self.fc1(low)))


def build_adaptor(cfg: AdaptorConfig) -> nn.Module:
    if cfg.kind == "hybrid":
        return HybridAdaptor(cfg)
    if cfg.kind == "mlp":
        return MlpAdaptor(cfg)
    raise ValueError(f"unknown adaptor kind {cfg.kind!r}; known: hybrid, mlp")
