"""Preset dimensions, parameter counts per part (meta device) and shapes through each stage."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.config import VLMConfig
from model.vlm import MultiModalityCausalLM, param_counts


def meta_model(name: str) -> MultiModalityCausalLM:
    with torch.device("meta"):
        return MultiModalityCausalLM(VLMConfig.from_name(name))


def llama_count(L: int, d: int, inter: int, vocab: int) -> int:
    # embeddings + untied head + per layer (q, k, v, o, SwiGLU, two RMSNorm gains) + final norm
    return 2 * vocab * d + L * (4 * d * d + 3 * d * inter + 2 * d) + d


def test_7b_counts_per_part():
    c = param_counts(meta_model("7b"))
    assert c["adaptor_mlp"] == 2 * (1024 * 2048 + 2048) + 4096 * 4096 + 4096 == 20_979_712  # ~21.0M
    assert c["adaptor_convs"] == 256 * 512 * 9 + 512 * 1024 * 9 == 5_898_240  # ~5.9M
    assert c["llm"] == llama_count(30, 4096, 11008, 102400)
    # SigLIP-L/16 at 384 without head: patch conv + pos + 24 blocks + final norm
    d = 1024
    block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    assert c["siglip"] == 3 * 16 * 16 * d + d + 576 * d + 24 * block + 2 * d
    assert 89e6 < c["sam"] < 92e6  # SAM-B encoder + its neck + the hd branch (neck copy + alpha)
    assert c["total"] == c["siglip"] + c["sam"] + c["adaptor"] + c["llm"]


def test_1_3b_counts_per_part():
    c = param_counts(meta_model("1.3b"))
    assert c["sam"] == 0 and c["adaptor_convs"] == 0
    assert c["adaptor"] == 1024 * 2048 + 2048 + 2048 * 2048 + 2048 == 6_295_552  # ~6.3M
    assert c["llm"] == llama_count(24, 2048, 5632, 102400)
    assert round(c["total"] / 1e9, 2) == 1.96


def test_preset_facts():
    for name in ("1.3b", "7b"):
        cfg = VLMConfig.from_name(name)
        assert cfg.image_tokens == cfg.vision.n_tokens == 576
        assert cfg.llm.vocab_size == 102400 and cfg.llm.rope_theta == 10000 and cfg.llm.norm_eps == 1e-6
    c7 = VLMConfig.from_name("7b")
    assert c7.sam.n_tokens == 576 and c7.sam.global_attn_indexes == (2, 5, 8, 11) and c7.sam.window_size == 14
    assert c7.pad_color == (122, 116, 104) and VLMConfig.from_name("1.3b").pad_color == (127, 127, 127)
    tiny = VLMConfig.from_name("tiny")
    assert tiny.hybrid and tiny.sam.grid % tiny.sam.window_size != 0  # exercises window padding
    with pytest.raises(ValueError, match="unknown preset"):
        VLMConfig.from_name("70b")
    assert VLMConfig.from_dict(c7.to_dict()) == c7
    wide = VLMConfig.from_name("tiny", n_embd=256, n_head=8)
    assert wide.aligner.n_embed == 256 and wide.llm.head_dim == 32
    with pytest.raises(ValueError, match="hybrid adaptor"):
        dataclasses.replace(c7, sam=None)


def test_7b_shapes_through_each_stage_on_meta():
    m = meta_model("7b")
    with torch.device("meta"):
        x = torch.empty(2, 3, 1024, 1024)
        high = m.sam(x)
        low = m.vision(torch.empty(2, 3, 384, 384))
        assert high.shape == (2, 576, 1024) and low.shape == (2, 576, 1024)  # 1024 features per branch
        assert m.adaptor(high, low).shape == (2, 576, 4096)
        assert m.encode_images(x).shape == (2, 576, 4096)  # takes its own 384 view of the 1024 image
        # the image scatter is data-dependent (boolean masks), so the decoder is checked on its own
        logits = m.llm(inputs_embeds=torch.empty(2, 600, 4096))
        assert logits.shape == (2, 600, 102400)


def test_1_3b_shapes_on_meta():
    m = meta_model("1.3b")
    with torch.device("meta"):
        assert m.encode_images(torch.empty(1, 3, 384, 384)).shape == (1, 576, 2048)


def test_tiny_shapes_real(tiny_cfg):
    torch.manual_seed(0)
    m = MultiModalityCausalLM(tiny_cfg)
    x = torch.rand(3, 3, 128, 128)
    assert m.sam(x).shape == (3, 16, 64)
    assert m.vision(torch.rand(3, 3, 64, 64)).shape == (3, 16, 64)
    assert m.encode_images(x).shape == (3, 16, 128)
