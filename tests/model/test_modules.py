"""Component checks: SAM windows and relative positions against a direct computation, the hd branch,
the SigLIP view, RoPE/RMSNorm, stage freezing and activation checkpointing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.config import SAMConfig
from model.llm import RMSNorm, build_mask, rotate_half
from model.sam import Attention, SAMViTDet, get_rel_pos, window_partition, window_unpartition
from model.vlm import MultiModalityCausalLM


def test_window_partition_pads_and_round_trips():
    x = torch.randn(2, 8, 8, 5)
    w, pad_hw = window_partition(x, 3)
    assert pad_hw == (9, 9) and w.shape == (2 * 9, 3, 3, 5)
    assert torch.equal(window_unpartition(w, 3, pad_hw, (8, 8)), x)
    assert torch.equal(w[0], x[0, :3, :3])  # first window is the top-left corner


def test_rel_pos_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    attn = Attention(dim=16, n_head=2, input_size=(5, 4))
    with torch.no_grad():
        attn.rel_pos_h.normal_()
        attn.rel_pos_w.normal_()
    x = torch.randn(3, 5, 4, 16)
    got = attn(x)
    # reference: the SAM formula written out, logits + q·R_h + q·R_w, explicit softmax
    B, H, W, C = x.shape
    q, k, v = attn.qkv(x).view(B, H * W, 3, 2, 8).permute(2, 0, 3, 1, 4)
    logits = (q * 8**-0.5) @ k.transpose(-2, -1)  # (B, h, HW, HW)
    Rh, Rw = get_rel_pos(H, H, attn.rel_pos_h), get_rel_pos(W, W, attn.rel_pos_w)
    bias = torch.zeros(B, 2, H, W, H, W)
    qg = q.view(B, 2, H, W, 8)
    for i in range(H):
        for j in range(W):
            for a in range(H):
                for b in range(W):
                    bias[:, :, i, j, a, b] = (qg[:, :, i, j] * Rh[i, a]).sum(-1) + (
                        qg[:, :, i, j] * Rw[j, b]
                    ).sum(-1)
    y = (logits + bias.view(B, 2, H * W, H * W)).softmax(-1) @ v
    ref = attn.proj(y.transpose(1, 2).reshape(B, H, W, C))
    assert torch.allclose(got, ref, atol=1e-5)


def test_get_rel_pos_offsets():
    table = torch.arange(7.0)[:, None]  # offsets -3..3 for size 4
    r = get_rel_pos(4, 4, table)[..., 0]
    assert r[0, 0] == 3 and r[3, 0] == 6 and r[0, 3] == 0  # index = q - k + (k_size - 1)


def test_hd_branch_is_zero_at_init_and_live_after():
    torch.manual_seed(0)
    cfg = SAMConfig(
        image_size=64,
        width=32,
        layers=3,
        heads=2,
        window_size=2,
        global_attn_indexes=(1,),
        out_chans=16,
        interp_size=8,
        downsample_channels=(16, 24),
    )
    sam = SAMViTDet(cfg)
    x = torch.rand(2, 3, 64, 64)
    base = sam(x)
    assert base.shape == (2, 4, 24)
    with torch.no_grad():  # the same path without the extra branch
        h = sam.patch_embed((x - sam.pixel_mean) / sam.pixel_std) + sam.pos_embed
        for blk in sam.blocks:
            h = blk(h)
        manual = sam._resize_down(sam.neck(h.permute(0, 3, 1, 2))).flatten(2).transpose(1, 2)
    assert torch.allclose(base, manual, atol=1e-6)
    base.sum().backward()
    assert sam.hd_alpha_downsamples.grad is not None and sam.hd_alpha_downsamples.grad.abs().item() > 0
    with torch.no_grad():
        sam.hd_alpha_downsamples.fill_(0.5)
    assert not torch.allclose(sam(x), base)


def test_sam_interpolation_is_fp32_under_bf16():
    cfg = SAMConfig(
        image_size=64,
        width=32,
        layers=2,
        heads=2,
        window_size=2,
        global_attn_indexes=(1,),
        out_chans=16,
        interp_size=6,
        downsample_channels=(16, 24),
    )
    sam = SAMViTDet(cfg).to(torch.bfloat16)
    out = sam(torch.rand(1, 3, 64, 64, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.shape == (1, 4, 24) and torch.isfinite(out.float()).all()


def test_siglip_view_is_resized_from_the_padded_image(tiny_cfg):
    torch.manual_seed(0)
    m = MultiModalityCausalLM(tiny_cfg).eval()
    x = torch.rand(2, 3, 128, 128)
    low = F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        ref = m.adaptor(m.sam(x), m.vision(low))
        assert torch.allclose(m.encode_images(x), ref, atol=1e-6)


def test_rope_and_rmsnorm():
    x = torch.randn(2, 3, 5, 8)
    theta = torch.randn(2, 1, 5, 4)
    cos, sin = torch.cat([theta, theta], -1).cos(), torch.cat([theta, theta], -1).sin()
    y = x * cos + rotate_half(x) * sin
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # a rotation keeps the norm
    n = RMSNorm(8)
    out = n(torch.randn(4, 8) * 10)
    assert torch.allclose(out.pow(2).mean(-1), torch.ones(4), atol=1e-4)


def test_mask_left_padding_rows_see_only_real_tokens():
    am = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    m = build_mask(am, 4, 0, torch.device("cpu"))[:, 0]
    assert m[0, 3].tolist() == [False, False, True, True]
    assert m[0, 0].tolist() == [True, False, False, False]  # padded row sees itself: no NaN
    assert m[1, 2].tolist() == [True, True, True, False]
    assert build_mask(None, 4, 0, torch.device("cpu")) is None


def test_set_trainable_stages(tiny_cfg):
    m = MultiModalityCausalLM(tiny_cfg)
    parts = {k: {n for n, _ in v} for k, v in m.part_parameters().items()}
    assert {"sam.downsamples.0.weight", "sam.downsamples.1.weight"} <= parts["adaptor"]

    def trainable() -> set[str]:
        return {n for n, p in m.named_parameters() if p.requires_grad}

    m.set_trainable(1)
    assert trainable() == parts["adaptor"]
    m.set_trainable(2)
    assert trainable() == parts["adaptor"] | parts["llm"]
    counts = m.set_trainable(3)
    assert trainable() == parts["adaptor"] | parts["llm"] | parts["siglip"]
    assert counts["sam"] == 0 and counts["siglip"] > 0
    with pytest.raises(ValueError, match="unknown stage"):
        m.set_trainable(4)


def test_grad_checkpointing_gives_the_same_gradients(tiny_cfg):
    torch.manual_seed(0)
    m = MultiModalityCausalLM(tiny_cfg).train()
    ids = torch.randint(4, 300, (2, 24))
    seq = torch.zeros(2, 24, dtype=torch.bool)
    seq[:, 2:18] = True
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones(2, 24),
        "labels": ids,
        "pixel_values": torch.rand(2, 1, 3, 128, 128),
        "images_seq_mask": seq,
        "images_emb_mask": torch.ones(2, 1, 16, dtype=torch.bool),
    }
    m(**batch).loss.backward()
    ref = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    m.set_grad_checkpointing(True)
    m(**batch).loss.backward()
    for n, p in m.named_parameters():
        if n in ref:
            assert torch.allclose(p.grad, ref[n], atol=1e-6, rtol=1e-4), n
    assert any(n.startswith("sam.blocks") for n in ref) and any(n.startswith("vision.blocks") for n in ref)
