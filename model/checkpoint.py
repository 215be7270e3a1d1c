"""Checkpoint I/O: sharded safetensors with an index, our config.json, and the public DeepSeek-VL naming.

A checkpoint directory holds `config.json`, `model.safetensors` or `model-0000i-of-0000n.safetensors` plus
`model.safetensors.index.json`, and optionally `tokenizer.json`. Public checkpoints (vision_model /
aligner / language_model keys, HF config.json) load through the same `load_model`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from model.config import VLMConfig
from model.vlm import MultiModalityCausalLM

log = logging.getLogger(__name__)

CONFIG = "config.json"
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
FORMAT = "dsvl-data/deepseek-vl"

# In public checkpoints but not used by the public forward pass: the SigLIP attention-pool head
# (ignore_head=True) and HybridVisionTower's two LayerNorms; RoPE inverse frequencies are recomputed.
PUBLIC_UNUSED = re.compile(r"\.attn_pool\.|^vision_model\.(high|low)_layer_norm\.|rotary_emb\.inv_freq$")

_LLM_RENAMES = [
    (r"^llm\.tok_embeddings\.", "language_model.model.embed_tokens."),
    (r"^llm\.layers\.(\d+)\.attn\.wq\.", r"language_model.model.layers.\1.self_attn.q_proj."),
    (r"^llm\.layers\.(\d+)\.attn\.wk\.", r"language_model.model.layers.\1.self_attn.k_proj."),
    (r"^llm\.layers\.(\d+)\.attn\.wv\.", r"language_model.model.layers.\1.self_attn.v_proj."),
    (r"^llm\.layers\.(\d+)\.attn\.wo\.", r"language_model.model.layers.\1.self_attn.o_proj."),
    (r"^llm\.layers\.(\d+)\.attn_norm\.", r"language_model.model.layers.\1.input_layernorm."),
    (r"^llm\.layers\.(\d+)\.mlp_norm\.", r"language_model.model.layers.\1.post_attention_layernorm."),
    (r"^llm\.layers\.(\d+)\.mlp\.w_gate\.", r"language_model.model.layers.\1.mlp.gate_proj."),
    (r"^llm\.layers\.(\d+)\.mlp\.w_up\.", r"language_model.model.layers.\1.mlp.up_proj."),
    (r"^llm\.layers\.(\d+)\.mlp\.w_down\.", r"language_model.model.layers.\1.mlp.down_proj."),
    (r"^llm\.norm\.", "language_model.model.norm."),
    (r"^llm\.lm_head\.", "language_model.lm_head."),
]


def public_name(name: str, hybrid: bool) -> str:
    """Our parameter name -> the name in the public DeepSeek-VL checkpoints."""
    rules = [
        (
            r"^vision\.",
            "vision_model.vision_tower_low.vision_tower." if hybrid else "vision_model.vision_tower.",
        ),
        (r"^sam\.", "vision_model.vision_tower_high.vision_tower."),
        (r"^adaptor\.high_proj\.", "aligner.high_up_proj."),
        (r"^adaptor\.low_proj\.", "aligner.low_up_proj."),
        (r"^adaptor\.out_proj\.", "aligner.layers.1."),  # layers.0 is the GELU
        (r"^adaptor\.fc1\.", "aligner.layers.0."),
        (r"^adaptor\.fc2\.", "aligner.layers.2."),
        *_LLM_RENAMES,
    ]
    for pat, rep in rules:
        new, n = re.subn(pat, rep, name)
        if n:
            return new
    raise KeyError(f"no public name for {name}")


def to_public_state_dict(model: MultiModalityCausalLM) -> dict[str, torch.Tensor]:
    hybrid = model.config.hybrid
    return {public_name(k, hybrid): v for k, v in model.state_dict().items()}


@dataclass
class LoadReport:
    loaded: int = 0
    skipped: list[str] = field(default_factory=list)  # known-unused public keys
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def load_public_state_dict(
    model: MultiModalityCausalLM, state: dict[str, torch.Tensor], strict: bool = True, assign: bool = False
) -> LoadReport:
    """Load a state dict in public naming; shapes are checked by `load_state_dict`."""
    ours = {public_name(k, model.config.hybrid): k for k in model.state_dict()}
    report, converted = LoadReport(), {}
    for k, v in state.items():
        if k in ours:
            converted[ours[k]] = v
        elif PUBLIC_UNUSED.search(k):
            report.skipped.append(k)
        else:
            report.unexpected.append(k)
    report.missing = sorted(set(ours.values()) - set(converted))
    if strict and (report.missing or report.unexpected):
        raise KeyError(
            f"public state dict does not match the {model.config.name} model: "
            f"missing {report.missing[:5]}, unexpected {report.unexpected[:5]}"
        )
    model.load_state_dict(converted, strict=strict, assign=assign)
    report.loaded = len(converted)
    return report


def save_state_dict(
    state: dict[str, torch.Tensor],
    directory: str | Path,
    max_shard_bytes: int = 4 * 2**30,
    metadata: dict[str, str] | None = None,
) -> list[Path]:
    """Write safetensors shards (keys sorted, greedily packed) and an index when there is more than one."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(state):
        t = state[k].detach().contiguous().cpu()
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = t
        size += nbytes
    names = (
        [SINGLE]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    for stale in list(d.glob("model*.safetensors")) + [d / INDEX]:
        if stale.name not in names and stale.exists():
            stale.unlink()  # a previous save with another shard count must not linger
    paths = []
    for name, shard in zip(names, shards):
        tmp = d / (name + ".tmp")
        save_file(shard, str(tmp), metadata={"format": "pt", **(metadata or {})})
        tmp.replace(d / name)
        paths.append(d / name)
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
            "weight_map": {k: n for n, s in zip(names, shards) for k in s},
        }
        _write_json(d / INDEX, index)
    return paths


def load_state_dict(directory: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    d = Path(directory)
    if (d / INDEX).exists():
        files = sorted(set(json.loads((d / INDEX).read_text())["weight_map"].values()))
    elif (d / SINGLE).exists():
        files = [SINGLE]
    else:
        raise FileNotFoundError(f"no {SINGLE} or {INDEX} in {d}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(d / f), device=device))
    return state


def save_model(
    model: MultiModalityCausalLM,
    directory: str | Path,
    max_shard_bytes: int = 4 * 2**30,
    public_naming: bool = False,
) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = to_public_state_dict(model) if public_naming else model.state_dict()
    save_state_dict(state, d, max_shard_bytes)
    _write_json(
        d / CONFIG,
        {"format": FORMAT, "naming": "public" if public_naming else "dsvl", "config": model.config.to_dict()},
    )
    return d


def config_from_public(d: dict[str, Any]) -> VLMConfig:
    """A public DeepSeek-VL HF config.json -> our config (preset by vision class, LLM dims from the file)."""
    hybrid = "Hybrid" in str(d.get("vision_config", {}).get("cls", ""))
    lc = d["language_config"]
    overrides = {
        k: lc[src]
        for k, src in (
            ("n_layer", "num_hidden_layers"),
            ("n_embd", "hidden_size"),
            ("n_head", "num_attention_heads"),
            ("intermediate", "intermediate_size"),
            ("vocab_size", "vocab_size"),
            ("max_seq_len", "max_position_embeddings"),
            ("rope_theta", "rope_theta"),
            ("norm_eps", "rms_norm_eps"),
        )
        if src in lc
    }
    return VLMConfig.from_name("7b" if hybrid else "1.3b", **overrides)


def load_model(
    directory: str | Path, device: str = "cpu", dtype: torch.dtype | None = None
) -> MultiModalityCausalLM:
    """Build the model from a checkpoint directory (ours or public) without a throw-away random init."""
    d = Path(directory)
    meta = json.loads((d / CONFIG).read_text())
    public = meta.get("format") != FORMAT
    cfg = config_from_public(meta) if public else VLMConfig.from_dict(meta["config"])
    with torch.device("meta"):
        model = MultiModalityCausalLM(cfg)
    state = load_state_dict(d, device=device)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    if public or meta.get("naming") == "public":
        report = load_public_state_dict(model, state, strict=True, assign=True)
        log.info("loaded %d public tensors, skipped %d unused", report.loaded, len(report.skipped))
    else:
        model.load_state_dict(state, strict=True, assign=True)
    model.init_buffers(device)
    return model.eval()


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    tmp.replace(path)
