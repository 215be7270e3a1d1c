"""Checkpoints: sharded safetensors round trip, and loading state dicts in the public DeepSeek-VL naming."""

from __future__ import annotations

import json

import pytest
import torch

from model import checkpoint as ck
from model.config import VLMConfig
from model.vlm import MultiModalityCausalLM


def test_sharded_round_trip(tiny_cfg, tmp_path):
    torch.manual_seed(0)
    m = MultiModalityCausalLM(tiny_cfg)
    with torch.no_grad():
        m.sam.hd_alpha_downsamples.fill_(0.25)  # a non-default value must survive too
    ck.save_model(m, tmp_path, max_shard_bytes=1_000_000)
    index = json.loads((tmp_path / ck.INDEX).read_text())
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(shards) >= 3 and set(index["weight_map"].values()) == set(shards)
    total = sum(v.numel() * v.element_size() for v in m.state_dict().values())
    assert index["metadata"]["total_size"] == total
    loaded = ck.load_model(tmp_path)
    assert loaded.config == tiny_cfg
    for (k, a), (k2, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.rand(1, 3, 128, 128)
    assert torch.equal(m.eval().encode_images(x), loaded.encode_images(x))  # buffers rebuilt too
    # saving again unsharded removes the old shards and the index
    ck.save_model(m, tmp_path)
    assert not list(tmp_path.glob("model-*")) and not (tmp_path / ck.INDEX).exists()
    assert ck.load_model(tmp_path, dtype=torch.bfloat16).llm.norm.weight.dtype == torch.bfloat16


def public_tiny_state(cfg: VLMConfig) -> dict[str, torch.Tensor]:
    """A random state dict written from the public module layout (not from our model)."""
    g = torch.Generator().manual_seed(1)
    s: dict[str, tuple[int, ...]] = {}
    low, high = "vision_model.vision_tower_low.vision_tower.", "vision_model.vision_tower_high.vision_tower."
    v, sm, llm = cfg.vision, cfg.sam, cfg.llm
    s[low + "pos_embed"] = (1, v.n_tokens, v.width)
    s[low + "patch_embed.proj.weight"] = (v.width, 3, 16, 16)
    s[low + "patch_embed.proj.bias"] = (v.width,)
    for i in range(v.layers):
        b = f"{low}blocks.{i}."
        for n in ("norm1", "norm2"):
            s[b + n + ".weight"] = s[b + n + ".bias"] = (v.width,)
        s[b + "attn.qkv.weight"], s[b + "attn.qkv.bias"] = (3 * v.width, v.width), (3 * v.width,)
        s[b + "attn.proj.weight"], s[b + "attn.proj.bias"] = (v.width, v.width), (v.width,)
        s[b + "mlp.fc1.weight"], s[b + "mlp.fc1.bias"] = (4 * v.width, v.width), (4 * v.width,)
        s[b + "mlp.fc2.weight"], s[b + "mlp.fc2.bias"] = (v.width, 4 * v.width), (v.width,)
    s[low + "norm.weight"] = s[low + "norm.bias"] = (v.width,)
    s[low + "attn_pool.latent"] = (1, 1, v.width)  # present in the release, unused (ignore_head)
    s["vision_model.high_layer_norm.weight"] = (1024,)  # HybridVisionTower's unused norms
    s[high + "pos_embed"] = (1, sm.grid, sm.grid, sm.width)
    s[high + "patch_embed.proj.weight"], s[high + "patch_embed.proj.bias"] = (
        (sm.width, 3, 16, 16),
        (sm.width,),
    )
    for i in range(sm.layers):
        b = f"{high}blocks.{i}."
        r = sm.grid if i in sm.global_attn_indexes else sm.window_size
        for n in ("norm1", "norm2"):
            s[b + n + ".weight"] = s[b + n + ".bias"] = (sm.width,)
        s[b + "attn.qkv.weight"], s[b + "attn.qkv.bias"] = (3 * sm.width, sm.width), (3 * sm.width,)
        s[b + "attn.proj.weight"], s[b + "attn.proj.bias"] = (sm.width, sm.width), (sm.width,)
        s[b + "attn.rel_pos_h"] = s[b + "attn.rel_pos_w"] = (2 * r - 1, sm.width // sm.heads)
        s[b + "mlp.lin1.weight"], s[b + "mlp.lin1.bias"] = (4 * sm.width, sm.width), (4 * sm.width,)
        s[b + "mlp.lin2.weight"], s[b + "mlp.lin2.bias"] = (sm.width, 4 * sm.width), (sm.width,)
    for neck in ("neck", "neck_hd"):
        s[f"{high}{neck}.0.weight"] = (sm.out_chans, sm.width, 1, 1)
        s[f"{high}{neck}.2.weight"] = (sm.out_chans, sm.out_chans, 3, 3)
        for j in (1, 3):
            s[f"{high}{neck}.{j}.weight"] = s[f"{high}{neck}.{j}.bias"] = (sm.out_chans,)
    s[high + "downsamples.0.weight"] = (sm.downsample_channels[0], sm.out_chans, 3, 3)
    s[high + "downsamples.1.weight"] = (sm.downsample_channels[1], sm.downsample_channels[0], 3, 3)
    s[high + "hd_alpha_downsamples"] = (1,)
    d = llm.n_embd
    s["aligner.high_up_proj.weight"], s["aligner.high_up_proj.bias"] = (d // 2, sm.out_dim), (d // 2,)
    s["aligner.low_up_proj.weight"], s["aligner.low_up_proj.bias"] = (d // 2, v.width), (d // 2,)
    s["aligner.layers.1.weight"], s["aligner.layers.1.bias"] = (d, d), (d,)
    s["language_model.model.embed_tokens.weight"] = (llm.vocab_size, d)
    for i in range(llm.n_layer):
        b = f"language_model.model.layers.{i}."
        for p in "qkvo":
            s[f"{b}self_attn.{p}_proj.weight"] = (d, d)
        s[b + "mlp.gate_proj.weight"] = s[b + "mlp.up_proj.weight"] = (llm.intermediate, d)
        s[b + "mlp.down_proj.weight"] = (d, llm.intermediate)
        s[b + "input_layernorm.weight"] = s[b + "post_attention_layernorm.weight"] = (d,)
        s[b + "self_attn.rotary_emb.inv_freq"] = (llm.head_dim // 2,)
    s["language_model.model.norm.weight"] = (d,)
    s["language_model.lm_head.weight"] = (llm.vocab_size, d)
    return {k: torch.randn(shape, generator=g) for k, shape in s.items()}


def test_public_naming_load(tiny_cfg):
    pub = public_tiny_state(tiny_cfg)
    m = MultiModalityCausalLM(tiny_cfg)
    rep = ck.load_public_state_dict(m, pub)
    assert not rep.missing and not rep.unexpected
    assert len(rep.skipped) == 2 + tiny_cfg.llm.n_layer and rep.loaded == len(m.state_dict())
    assert torch.equal(
        m.llm.layers[1].attn.wk.weight, pub["language_model.model.layers.1.self_attn.k_proj.weight"]
    )
    assert torch.equal(
        m.llm.layers[0].mlp.w_down.weight, pub["language_model.model.layers.0.mlp.down_proj.weight"]
    )
    assert torch.equal(m.adaptor.out_proj.bias, pub["aligner.layers.1.bias"])
    assert torch.equal(
        m.sam.blocks[1].attn.rel_pos_h,
        pub["vision_model.vision_tower_high.vision_tower.blocks.1.attn.rel_pos_h"],
    )
    assert torch.equal(m.vision.pos_embed, pub["vision_model.vision_tower_low.vision_tower.pos_embed"])
    # and back: exporting gives the same public tensors
    out = ck.to_public_state_dict(m)
    assert set(out) == {k for k in pub if k not in rep.skipped}
    assert all(torch.equal(out[k], pub[k]) for k in out)


def test_public_naming_errors(tiny_cfg):
    m = MultiModalityCausalLM(tiny_cfg)
    pub = public_tiny_state(tiny_cfg)
    pub["aligner.layers.1.weight"] = torch.zeros(3, 3)
    with pytest.raises(RuntimeError, match="size mismatch"):
        ck.load_public_state_dict(m, pub)
    pub = public_tiny_state(tiny_cfg)
    del pub["language_model.lm_head.weight"]
    pub["vision_model.something_new"] = torch.zeros(1)
    with pytest.raises(KeyError, match="missing"):
        ck.load_public_state_dict(m, pub)


def test_public_names_of_the_big_presets():
    with torch.device("meta"):
        m7 = MultiModalityCausalLM(VLMConfig.from_name("7b"))
        m1 = MultiModalityCausalLM(VLMConfig.from_name("1.3b"))
    p7 = {k: tuple(v.shape) for k, v in ck.to_public_state_dict(m7).items()}
    assert p7["vision_model.vision_tower_high.vision_tower.blocks.2.attn.rel_pos_h"] == (127, 64)  # global
    assert p7["vision_model.vision_tower_high.vision_tower.blocks.0.attn.rel_pos_h"] == (27, 64)  # window 14
    assert p7["vision_model.vision_tower_high.vision_tower.pos_embed"] == (1, 64, 64, 768)
    assert p7["vision_model.vision_tower_high.vision_tower.downsamples.1.weight"] == (1024, 512, 3, 3)
    assert p7["vision_model.vision_tower_low.vision_tower.pos_embed"] == (1, 576, 1024)
    assert p7["aligner.high_up_proj.weight"] == (2048, 1024) and p7["aligner.layers.1.weight"] == (4096, 4096)
    assert p7["language_model.model.layers.29.mlp.down_proj.weight"] == (4096, 11008)
    p1 = {k: tuple(v.shape) for k, v in ck.to_public_state_dict(m1).items()}
    assert p1["vision_model.vision_tower.blocks.23.mlp.fc2.weight"] == (1024, 4096)
    assert p1["aligner.layers.0.weight"] == (2048, 1024) and p1["aligner.layers.2.weight"] == (2048, 2048)
    assert p1["language_model.lm_head.weight"] == (102400, 2048)


def test_public_config_json():
    cfg = ck.config_from_public(
        {
            "vision_config": {"cls": "HybridVisionTower", "params": {}},
            "aligner_config": {
                "cls": "MlpProjector",
                "params": {"projector_type": "low_high_hybrid_split_mlp_gelu"},
            },
            "language_config": {
                "hidden_size": 4096,
                "intermediate_size": 11008,
                "num_hidden_layers": 30,
                "num_attention_heads": 32,
                "vocab_size": 102400,
                "max_position_embeddings": 16384,
            },
        }
    )
    assert cfg.hybrid and cfg.llm.n_layer == 30 and cfg.llm.max_seq_len == 16384
    small = ck.config_from_public(
        {
            "vision_config": {"cls": "CLIPVisionTower"},
            "language_config": {"hidden_size": 2048, "num_hidden_layers": 24},
        }
    )
    assert not small.hybrid and small.llm.n_embd == 2048


def test_public_directory_loads(tiny_cfg, tmp_path):
    torch.manual_seed(0)
    m = MultiModalityCausalLM(tiny_cfg)
    ck.save_model(m, tmp_path, max_shard_bytes=2_000_000, public_naming=True)
    names = json.loads((tmp_path / ck.INDEX).read_text())["weight_map"]
    assert all(k.startswith(("vision_model.", "aligner.", "language_model.")) for k in names)
    loaded = ck.load_model(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), loaded.state_dict().values()))
