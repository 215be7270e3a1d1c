"""Typed training configuration: one YAML file per stage (train/configs/), validated at load time.

Every key of the YAML is a field below; an unknown key or a bad value fails with the key's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

CONFIG_DIR = Path(__file__).parent / "configs"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Where samples come from and how they become batches."""

    streams: dict[Literal["text", "multimodal"], str] = Field(
        default_factory=lambda: {"text": "stage2-text", "multimodal": "stage2-multimodal"},
        description="modality -> shard stream name under <data>/shards/")
    sft_streams: dict[Literal["text", "multimodal"], str] = Field(
        default_factory=lambda: {"text": "stage3-text", "multimodal": "stage3-multimodal"},
        description="streams used for the optional SFT share of stage 2")
    seq_len: int = Field(512, ge=16)
    batch_size: int = Field(8, ge=1, description="rows per micro-batch per process")
    global_batch: int | None = Field(None, ge=1, description="rows per optimizer step over all ranks; "
                                     "sets the accumulation to global_batch / (batch_size * world)")
    packing: bool = Field(False, description="concatenate samples into seq_len rows (stage 2)")
    shuffle_buffer: int = Field(64, ge=1)
    workers: int = Field(0, ge=0, description="DataLoader worker processes per stream")
    seed: int = 0
    heldout_percent: float = Field(5.0, ge=0, lt=100,
                                   description="share of samples (by key hash) kept for validation")


class MixingConfig(_Strict):
    """Which modality each optimizer step draws (modality-grouped steps, spec section 2)."""

    language_share: float = Field(0.7, ge=0, le=1, description="target share of all-text steps")
    warmup_steps: int = Field(0, ge=0, description="steps over which the share decays from 1.0")
    shape: Literal["linear", "cosine", "step"] = "linear"
    sft_share: float = Field(0.0, ge=0, le=1, description="share of steps drawn from the SFT streams")


class OptimConfig(_Strict):
    lr: float = Field(gt=0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine floor as a share of lr")
    step_milestones: list[float] = Field(default_factory=lambda: [0.8, 0.9],
                                         description="share of total steps where the step schedule drops")
    step_gamma: float = Field(0.316, gt=0, le=1, description="factor per milestone (DeepSeek LLM: sqrt 0.1)")
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    grad_clip: float = Field(1.0, gt=0)
    accumulation: int = Field(1, ge=1, description="micro-batches per optimizer step")


class CheckpointConfig(_Strict):
    every: int = Field(100, ge=1)
    keep_last: int = Field(3, ge=1)


class EvalConfig(_Strict):
    every: int = Field(100, ge=1)
    batches: int = Field(4, ge=1, description="validation batches per modality")
    mc_path: str | None = Field("mc-heldout.json",
                                description="multiple-choice set (relative to train/configs/ or absolute)")


class TrainConfig(_Strict):
    """One stage of training."""

    name: str
    stage: Literal[1, 2, 3]
    model: str = Field(description="model preset: tiny | 1.3b | 7b")
    steps: int = Field(ge=1, description="total optimizer steps (the schedules span these)")
    tokenizer: str | None = Field(None, description="tokenizer.json; None trains a byte-level BPE on the data")
    tokenizer_vocab: int = Field(4096, ge=300, description="vocabulary of a tokenizer trained on the data")
    init_from: str | None = Field(None, description="model weights to start from (previous stage)")
    distributed: Literal["ddp", "fsdp"] = "ddp"
    activation_checkpointing: bool = False
    bf16: bool = Field(True, description="bf16 autocast when on a GPU (CPU runs stay fp32)")
    log_every: int = Field(1, ge=1)
    data: DataConfig = Field(default_factory=DataConfig)
    mixing: MixingConfig = Field(default_factory=MixingConfig)
    optim: OptimConfig
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


def load_config(path: str | Path, steps: int | None = None) -> TrainConfig:
    """Read a stage YAML (a path, or a name under train/configs/ such as `tiny-stage2`)."""
    p = Path(path)
    if not p.exists() and (CONFIG_DIR / f"{path}.yaml").exists():
        p = CONFIG_DIR / f"{path}.yaml"
    raw = yaml.safe_load(p.read_text())
    if not isinstance(raw, dict):
        raise TypeError(f"{p}: expected a mapping of config keys")
    if steps is not None:
        raw["steps"] = steps
        # a shortened run keeps the warm-ups inside it
        for part in ("optim", "mixing"):
            if part in raw and raw[part].get("warmup_steps", 0) > steps:
                raw[part]["warmup_steps"] = max(steps // 10, 0)
    return TrainConfig.model_validate(raw)
