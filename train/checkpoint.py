"""Training checkpoints: model, optimizer, step, config and loader state, written atomically.

Layout: <out>/checkpoints/step-00000100/ is a model directory `model.checkpoint.load_model` (and so
`dsvl-data chat`) reads (config.json, model*.safetensors, tokenizer.json) plus optimizer.pt and state.json.
It is written under a `.tmp` name and renamed, so a killed run never leaves a half checkpoint that resume
would pick up; only the last K are kept. Full (unsharded) state dicts make DDP, FSDP and one process
interchangeable.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from model.checkpoint import CONFIG, FORMAT, load_state_dict, save_state_dict

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step-(\d{8})$")
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def checkpoints(ckpt_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (half-written `.tmp` directories are ignored)."""
    if not ckpt_dir.exists():
        return []
    found = [p for p in ckpt_dir.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)
             and (p / "state.json").exists()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest(ckpt_dir: Path) -> Path | None:
    found = checkpoints(ckpt_dir)
    return found[-1] if found else None


def save(ckpt_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict,
         keep_last: int, rank: int = 0, model_config: dict | None = None,
         tokenizer: Path | None = None) -> Path | None:
    """Every rank calls this (sharded models gather collectively); rank 0 writes. Returns the path on rank 0."""
    model_sd = get_model_state_dict(model, options=_FULL)
    optim_sd = get_optimizer_state_dict(model, optimizer, options=_FULL)
    if rank != 0:
        return None
    final = ckpt_dir / f"step-{step:08d}"
    tmp = ckpt_dir / f"step-{step:08d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_state_dict(model_sd, tmp)
    if model_config is not None:
        (tmp / CONFIG).write_text(json.dumps({"format": FORMAT, "naming": "dsvl", "config": model_config},
                                             indent=2, sort_keys=True))
    if tokenizer is not None and tokenizer.exists():
        shutil.copyfile(tokenizer, tmp / "tokenizer.json")
    torch.save({"optimizer": optim_sd, "rng": torch.get_rng_state()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=1, sort_keys=True))
    if final.exists():  # a re-run of the same step replaces it
        shutil.rmtree(final)
    tmp.rename(final)
    for old in checkpoints(ckpt_dir)[:-keep_last]:
        shutil.rmtree(old)
    log.info("checkpoint %s", final)
    return final


def load_weights(model: torch.nn.Module, path: Path, strict: bool = True) -> None:
    """Model weights only (e.g. the previous stage's result), into a plain, DDP or FSDP model."""
    sd = load_state_dict(path)
    set_model_state_dict(model, sd, options=StateDictOptions(full_state_dict=True, strict=strict))


def restore(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Model, optimizer and RNG from a checkpoint; returns its state.json (step, loader state, config)."""
    load_weights(model, path)
    blob = torch.load(path / "optimizer.pt", weights_only=True)
    set_optimizer_state_dict(model, optimizer, blob["optimizer"], options=StateDictOptions(full_state_dict=True))
    torch.set_rng_state(blob["rng"])
    return json.loads((path / "state.json").read_text())
