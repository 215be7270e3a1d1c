"""Evaluation while training: validation loss per modality (the competitive dynamics of spec section 2)
and multiple-choice perplexity (score every option, pick the lowest perplexity) on a small held-out set.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from train.batching import IGNORE, collate
from train.config import CONFIG_DIR
from train.loader import to_device


@torch.no_grad()
def validation_loss(model: torch.nn.Module, batches: Iterator[dict], limit: int, device: torch.device,
                    autocast: Callable) -> tuple[float, int]:
    """Token-weighted mean loss over up to `limit` batches: (loss, supervised tokens). Every rank reads the
    same held-out batches (sharded models need the same forwards on all ranks), so nothing is reduced."""
    total, tokens = 0.0, 0
    for batch in itertools.islice(batches, limit):
        n = int((batch["labels"][:, 1:] != IGNORE).sum())
        if n == 0:
            continue
        with autocast():
            out = model(**to_device(batch, device))
        total += float(out.loss) * n
        tokens += n
    return (total / tokens if tokens else float("nan")), tokens


def load_mc_items(path: str | None) -> list[dict]:
    """[{"question", "options": [...], "answer": index}] from a JSON file (relative to train/configs/)."""
    if not path:
        return []
    p = Path(path)
    if not p.is_absolute() and not p.exists():
        p = CONFIG_DIR / path
    items = json.loads(p.read_text())
    for it in items:
        if not (0 <= it["answer"] < len(it["options"])):
            raise ValueError(f"{p}: answer index out of range in {it['question']!r}")
    return items


@torch.no_grad()
def mc_perplexity(model: torch.nn.Module, items: list[dict], encode: Callable[[dict], dict | None],
                  pad_id: int, image_tokens: int, device: torch.device, autocast: Callable) -> dict:
    """Accuracy of lowest-perplexity choice and mean perplexity of the right answers."""
    correct, ppl_right = 0, 0.0
    for it in items:
        # an empty system prompt keeps the rows short; every option sees the same prompt anyway
        rows = [encode({"messages": [{"role": "system", "content": ""},
                                     {"role": "user", "content": it["question"]},
                                     {"role": "assistant", "content": opt}], "image_bytes": []})
                for opt in it["options"]]
        batch = to_device(collate(rows, pad_id, image_tokens), device)
        with autocast():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits  # (n_opt, T, V)
        target = batch["labels"][:, 1:]  # (n_opt, T-1)
        nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), target, ignore_index=IGNORE,
                              reduction="none")  # (n_opt, T-1)
        n = (target != IGNORE).sum(1).clamp(min=1)
        ppl = torch.exp(nll.sum(1) / n)  # (n_opt,)
        correct += int(int(ppl.argmin()) == it["answer"])
        ppl_right += float(ppl[it["answer"]])
    k = max(len(items), 1)
    return {"mc_accuracy": correct / k, "mc_ppl": ppl_right / k if items else math.nan}
