"""From encoded examples to model batches: right-padding collate and stage-2 sequence packing.

An example is {"input_ids": (T,), "labels": (T,), "images_seq_mask": (T,) bool, "pixel_values": (n, 3, H, W)
or None}; a batch adds attention_mask (B, T) and images_emb_mask (B, N_img, image_tokens).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

IGNORE = -100


def collate(examples: list[dict], pad_id: int, image_tokens: int) -> dict:
    """Right-pad a list of examples into one batch (training needs no left padding)."""
    B = len(examples)
    T = max(e["input_ids"].numel() for e in examples)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    labels = torch.full((B, T), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    images_seq_mask = torch.zeros((B, T), dtype=torch.bool)
    n_img = [0 if e["pixel_values"] is None else e["pixel_values"].shape[0] for e in examples]
    for i, e in enumerate(examples):
        t = e["input_ids"].numel()
        input_ids[i, :t] = e["input_ids"]
        labels[i, :t] = e["labels"]
        attention_mask[i, :t] = 1
        images_seq_mask[i, :t] = e["images_seq_mask"]
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
             "images_seq_mask": images_seq_mask, "pixel_values": None, "images_emb_mask": None}
    N = max(n_img)
    if N > 0:
        shape = next(e["pixel_values"].shape[1:] for e in examples if e["pixel_values"] is not None)
        pixel_values = torch.zeros((B, N, *shape), dtype=torch.float32)  # (B, N_img, 3, H, W)
        images_emb_mask = torch.zeros((B, N, image_tokens), dtype=torch.bool)
        for i, e in enumerate(examples):
            if n_img[i]:
                pixel_values[i, : n_img[i]] = e["pixel_values"]
                images_emb_mask[i, : n_img[i]] = True
        batch["pixel_values"] = pixel_values
        batch["images_emb_mask"] = images_emb_mask
    return batch


def concat(examples: list[dict]) -> dict:
    """One packed row from several examples (documents attend across the row: plain causal packing)."""
    pix = [e["pixel_values"] for e in examples if e["pixel_values"] is not None]
    return {
        "input_ids": torch.cat([e["input_ids"] for e in examples]),
        "labels": torch.cat([e["labels"] for e in examples]),
        "images_seq_mask": torch.cat([e["images_seq_mask"] for e in examples]),
        "pixel_values": torch.cat(pix) if pix else None,
    }


def slice_example(e: dict, start: int, end: int) -> dict:
    """Tokens [start, end) of a text-only example."""
    return {"input_ids": e["input_ids"][start:end], "labels": e["labels"][start:end],
            "images_seq_mask": e["images_seq_mask"][start:end], "pixel_values": None}


Cursor = tuple[int, int]  # (index of the next sample in the reader's epoch order, token offset within it)


class SequencePacker:
    """Packs examples into rows of at most seq_len tokens.

    Text-only examples are cut at row boundaries (a continuous token stream, as in LLM pretraining);
    an example holding images is never cut (its image tokens must stay whole): it starts a new row when it
    does not fit, and one longer than seq_len is counted in `too_long` and skipped. Every row comes with
    the cursor where packing resumes after it: when a row is handed out the packer holds nothing else, so
    that cursor is all a resumed reader needs.
    """

    def __init__(self, seq_len: int) -> None:
        self.seq_len = seq_len
        self.parts: list[dict] = []
        self.used = 0
        self.too_long = 0

    def add(self, i: int, e: dict) -> Iterator[tuple[Cursor, dict]]:
        """Example `e`, the reader's i-th sample of the epoch -> completed (cursor, row) pairs."""
        n = e["input_ids"].numel()
        if e["pixel_values"] is not None:
            if n > self.seq_len:  # the encoder cuts these first; kept as a guard
                self.too_long += 1
                return
            if self.used + n > self.seq_len:
                yield from (((i, 0), row) for row in self.flush())
            self.parts.append(e)
            self.used += n
            return
        start = 0
        while start < n:
            take = min(self.seq_len - self.used, n - start)
            self.parts.append(slice_example(e, start, start + take))
            self.used += take
            start += take
            if self.used == self.seq_len:
                cursor = (i, start) if start < n else (i + 1, 0)
                yield from ((cursor, row) for row in self.flush())

    def flush(self) -> Iterator[dict]:
        if self.parts:
            row = concat(self.parts)
            self.parts, self.used = [], 0
            yield row
