"""Schedules as pure functions of the optimizer step: learning rate, language share, step modality.

Nothing here holds state, so a resumed run recomputes exactly what the uninterrupted run would have used.
"""

from __future__ import annotations

import math
import random
from typing import Literal

from train.config import MixingConfig, OptimConfig

Modality = Literal["text", "multimodal"]


def lr_at(step: int, optim: OptimConfig, total_steps: int) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warm-up, then cosine, step or constant."""
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return optim.lr
    span = max(total_steps - optim.warmup_steps, 1)
    progress = min(max((step - optim.warmup_steps) / span, 0.0), 1.0)
    if optim.schedule == "cosine":
        floor = optim.min_lr_ratio
        return optim.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    # "step": DeepSeek LLM's multi-step schedule, milestones as shares of the whole run
    drops = sum(1 for m in optim.step_milestones if step >= m * total_steps)
    return optim.lr * optim.step_gamma ** drops


def language_share_at(step: int, mixing: MixingConfig) -> float:
    """Share of all-text steps at `step`: 1.0 decaying to the target over the warm-up (spec section 2)."""
    target = mixing.language_share
    if mixing.warmup_steps == 0:
        return target
    p = min(step / mixing.warmup_steps, 1.0)
    if mixing.shape == "linear":
        decay = p
    elif mixing.shape == "cosine":
        decay = 0.5 * (1 - math.cos(math.pi * p))
    else:  # "step": four equal drops
        decay = math.floor(p * 4) / 4
    return 1.0 - (1.0 - target) * decay


def step_plan(step: int, mixing: MixingConfig, seed: int) -> tuple[Modality, bool]:
    """(modality, from the SFT streams?) of optimizer step `step`; the same on every rank and on resume."""
    # a string seed goes through sha512, so the draw does not depend on PYTHONHASHSEED or the process
    rng = random.Random(f"dsvl-mix:{seed}:{step}")
    modality: Modality = "text" if rng.random() < language_share_at(step, mixing) else "multimodal"
    sft = rng.random() < mixing.sft_share
    return modality, sft
