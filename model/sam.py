"""SAM-B ViTDet image encoder, the high-res branch of the hybrid vision encoder (spec §1.1).

Windowed attention with global blocks, decomposed relative positions, the neck, a bilinear resize to
96x96 in fp32 and two stride-2 convs give 24x24x1024; the released extra branch re-uses the features of
the first global block (its own neck copy, same resize and convs) scaled by a zero-initialised scalar.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from model.config import SAMConfig


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of (B, C, H, W)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative position embeddings for every (query, key) offset along one axis: (q_size, k_size, hd)."""
    max_rel = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_rel:  # a checkpoint trained at another size: resample linearly
        rel_pos = F.interpolate(rel_pos.T[None], size=max_rel, mode="linear")[0].T
    q = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    return rel_pos[((q - k) + (k_size - 1) * max(q_size / k_size, 1.0)).long()]


class Attention(nn.Module):
    """Multi-head attention on a (B, H, W, C) grid with decomposed relative position bias (MViTv2)."""

    def __init__(self, dim: int, n_head: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.n_head = n_head
        hd = dim // n_head
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, hd))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, hd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        q, k, v = self.qkv(x).view(B, H * W, 3, self.n_head, -1).permute(2, 0, 3, 1, 4)  # (B, h, HW, hd)
        Rh = get_rel_pos(H, H, self.rel_pos_h).to(q.dtype)  # (H, H, hd)
        Rw = get_rel_pos(W, W, self.rel_pos_w).to(q.dtype)  # (W, W, hd)
        r_q = q.reshape(B, self.n_head, H, W, -1)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, Rh)  # (B, h, H, W, H)
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, Rw)  # (B, h, H, W, W)
        # the bias is added to the scaled logits, as in SAM; SDPA takes it as a float mask
        bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(B, self.n_head, H * W, H * W)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, h, HW, hd)
        return self.proj(y.transpose(1, 2).reshape(B, H, W, C))


def window_partition(x: torch.Tensor, ws: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * nW, ws, ws, C), zero-padding H and W up to multiples of ws."""
    B, H, W, C = x.shape
    ph, pw = (ws - H % ws) % ws, (ws - W % ws) % ws
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    Hp, Wp = H + ph, W + pw
    x = x.view(B, Hp // ws, ws, Wp // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws, ws, C), (Hp, Wp)


def window_unpartition(
    w: torch.Tensor, ws: int, pad_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    Hp, Wp = pad_hw
    H, W = hw
    B = w.shape[0] // (Hp * Wp // ws // ws)
    x = w.view(B, Hp // ws, Wp // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, -1)
    return x[:, :H, :W, :].contiguous()


class MLPBlock(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class Block(nn.Module):
    def __init__(self, cfg: SAMConfig, window_size: int) -> None:
        super().__init__()
        self.window_size = window_size  # 0 = global attention over the whole grid
        size = (window_size, window_size) if window_size else (cfg.grid, cfg.grid)
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.attn = Attention(cfg.width, cfg.heads, size)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.mlp = MLPBlock(cfg.width, int(cfg.width * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)  # (B, 64, 64, 768)
        if self.window_size:
            H, W = x.shape[1:3]
            x, pad_hw = window_partition(x, self.window_size)  # (B*25, 14, 14, 768)
            x = window_unpartition(self.attn(x), self.window_size, pad_hw, (H, W))
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


def _neck(cfg: SAMConfig) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cfg.width, cfg.out_chans, kernel_size=1, bias=False),
        LayerNorm2d(cfg.out_chans),
        nn.Conv2d(cfg.out_chans, cfg.out_chans, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(cfg.out_chans),
    )


class PatchEmbed(nn.Module):
    def __init__(self, cfg: SAMConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # (B, 3, 1024, 1024) -> (B, 64, 64, 768)


class SAMViTDet(nn.Module):
    def __init__(self, cfg: SAMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.grad_checkpointing = False
        self.patch_embed = PatchEmbed(cfg)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid, cfg.grid, cfg.width))
        self.blocks = nn.ModuleList(
            Block(cfg, 0 if i in cfg.global_attn_indexes else cfg.window_size) for i in range(cfg.layers)
        )
        self.neck = _neck(cfg)
        convs, c_in = [], cfg.out_chans
        for c_out in cfg.downsample_channels:
            convs.append(nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1, bias=False))
            c_in = c_out
        self.downsamples = nn.Sequential(*convs)
        # the released extra branch; alpha starts at 0 so a fresh model equals the paper's encoder
        self.hd_alpha_downsamples = nn.Parameter(torch.zeros(1))
        self.neck_hd = copy.deepcopy(self.neck)
        self.init_buffers()

    def init_buffers(self, device: torch.device | str | None = None) -> None:
        self.register_buffer(
            "pixel_mean", torch.tensor(self.cfg.mean, device=device).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(self.cfg.std, device=device).view(1, 3, 1, 1), persistent=False
        )

    def _resize_down(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 256, 64, 64) -> bilinear to (B, 256, 96, 96) in fp32 -> convs -> (B, 1024, 24, 24)."""
        dtype = x.dtype
        s = self.cfg.interp_size
        x = F.interpolate(x.float(), size=(s, s), mode="bilinear", align_corners=False).to(dtype)
        return self.downsamples(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, 1024, 1024) in [0, 1] -> (B, 576, 1024)."""
        x = (images - self.pixel_mean.to(images.dtype)) / self.pixel_std.to(images.dtype)
        x = self.patch_embed(x) + self.pos_embed  # (B, 64, 64, 768)
        first_global = None
        for blk in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
            if first_global is None and blk.window_size == 0:
                first_global = x  # (B, 64, 64, 768) after block 2
        out = self._resize_down(self.neck(x.permute(0, 3, 1, 2)))  # (B, 1024, 24, 24)
        if first_global is not None:
            hd = self._resize_down(self.neck_hd(first_global.permute(0, 3, 1, 2)))
            out = out + hd * self.hd_alpha_downsamples
        return out.flatten(2).transpose(1, 2)  # (B, 576, 1024)
