"""WebDataset streams with exact resume, in open_clip's order: shard list -> seeded shuffle -> split by
node -> split by worker -> read + parse -> shuffle buffer -> decode/encode -> batch (or pack, then batch).

Each (rank, worker) "slot" reads a deterministic sample order per epoch, a pure function of (seed, epoch,
slot). The loader state is, per slot, (epoch, cursor: index of the next sample in that order, token offset
within it) plus the worker the next batch comes from; a resumed slot re-reads the samples before the
cursor as bytes (no decoding, no tokenizing) and continues, so the next batch equals the uninterrupted
run's. Epochs end with a flush, so no state crosses an epoch.
"""

from __future__ import annotations

import logging
import random
import tarfile
from collections import Counter
from collections.abc import Iterator
from itertools import count
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from train.batching import Cursor, SequencePacker, collate, slice_example
from train.encode import SampleEncoder
from train.shards import SampleError, is_heldout, iter_tar, parse_sample, sample_key

log = logging.getLogger(__name__)

class StreamDataset(IterableDataset):
    """One shard stream (e.g. stage2-text) as an endless (train) or one-pass (val) batch iterator."""

    def __init__(self, shards: list[str], encode: SampleEncoder, *, batch_size: int, seq_len: int, pad_id: int,
                 image_tokens: int, packing: bool = False, shuffle_buffer: int = 64, seed: int = 0,
                 rank: int = 0, world: int = 1, split: str = "train", heldout_percent: float = 0.0,
                 heldout: frozenset[str] | None = None, start: dict | None = None) -> None:
        if not shards:
            raise ValueError("a stream needs at least one shard")
        self.shards, self.encode = list(shards), encode
        self.batch_size, self.seq_len, self.pad_id = batch_size, seq_len, pad_id
        self.image_tokens, self.packing = image_tokens, packing
        self.shuffle_buffer, self.seed, self.rank, self.world = shuffle_buffer, seed, rank, world
        # an explicit held-out key set (small streams) wins over the hash threshold
        self.split, self.heldout_percent, self.heldout = split, heldout_percent, heldout
        self.start = start or {"slots": {}, "next_worker": 0}

    # -- the reading order ------------------------------------------------------------------
    def _slot(self) -> tuple[int, int, int]:
        """(logical worker, workers per rank, global slot); resume rotates which worker goes first."""
        info = get_worker_info()
        workers = info.num_workers if info else 1
        wid = info.id if info else 0
        logical = (wid + self.start.get("next_worker", 0)) % workers
        return logical, workers, self.rank * workers + logical

    def _raw(self, epoch: int, worker: int, workers: int) -> Iterator[dict]:
        shards = list(self.shards)
        random.Random(f"shards:{self.seed}:{epoch}").shuffle(shards)  # same order on every rank
        slots, slot = self.world * workers, self.rank * workers + worker
        if len(shards) >= slots:
            mine = shards[self.rank::self.world][worker::workers]  # split by node, then by worker
            stride = 1
        else:
            # fewer shards than readers (small corpora): every slot reads all, keeps every slots-th sample
            mine, stride = shards, slots
        i = 0
        for path in mine:
            try:
                for raw in iter_tar(path):
                    key = sample_key(raw)
                    held = key in self.heldout if self.heldout is not None else \
                        is_heldout(key, self.heldout_percent)
                    if held != (self.split == "val"):
                        continue
                    if stride == 1 or i % stride == slot:
                        yield raw
                    i += 1
            except (tarfile.TarError, OSError, ValueError) as e:  # truncated or corrupt shard: keep the rest
                self.encode.skip(path, "bad_shard", repr(e)[:200])

    def _shuffled(self, raws: Iterator[dict], epoch: int, slot: int) -> Iterator[dict]:
        if self.split == "val" or self.shuffle_buffer <= 1:
            yield from raws
            return
        rng = random.Random(f"buffer:{self.seed}:{epoch}:{slot}")
        buf: list[dict] = []
        for raw in raws:
            buf.append(raw)
            if len(buf) >= self.shuffle_buffer:
                j = rng.randrange(len(buf))
                buf[j], buf[-1] = buf[-1], buf[j]
                yield buf.pop()
        rng.shuffle(buf)
        yield from buf

    def _examples(self, epoch: int, worker: int, workers: int, slot: int,
                  cursor: Cursor) -> Iterator[tuple[int, dict]]:
        """(index in this reader's epoch order, example), from `cursor` on; the samples before it are read
        and shuffled (cheap: bytes) but not decoded, which is what makes a resume fast."""
        for i, raw in enumerate(self._shuffled(self._raw(epoch, worker, workers), epoch, slot)):
            if i < cursor[0]:
                continue
            try:
                sample = parse_sample(raw)
            except SampleError as e:
                self.encode.skip(raw.get("__key__"), e.reason, str(e))
                continue
            example = self.encode(sample, packed=self.packing)
            if example is None:
                continue
            if i == cursor[0] and cursor[1]:  # the rest of a text sample split across packed rows
                example = slice_example(example, cursor[1], example["input_ids"].numel())
            yield i, example

    def _batches(self, epoch: int, worker: int, workers: int, slot: int,
                 cursor: Cursor = (0, 0)) -> Iterator[tuple[Cursor, dict]]:
        """(cursor after the batch, batch) for one epoch of this reader."""
        examples = self._examples(epoch, worker, workers, slot, cursor)
        if self.packing:
            rows = _packed(examples, self.seq_len, self.encode)
        else:
            rows = (((i + 1, 0), e) for i, e in examples)
        group: list[dict] = []
        for after, row in rows:
            group.append(row)
            if len(group) == self.batch_size:
                yield after, collate(group, self.pad_id, self.image_tokens)
                group = []
        if group:  # the short last batch of an epoch keeps tiny corpora usable
            yield EPOCH_DONE, collate(group, self.pad_id, self.image_tokens)

    def __iter__(self) -> Iterator[dict]:
        worker, workers, slot = self._slot()
        epoch, index, offset = self.start["slots"].get(str(slot), (0, 0, 0))
        cursor: Cursor = (index, offset)
        if cursor == EPOCH_DONE:
            epoch, cursor = epoch + 1, (0, 0)
        epochs = count(epoch) if self.split == "train" else [0]
        for ep in epochs:
            yielded = False
            for after, batch in self._batches(ep, worker, workers, slot, cursor):
                yielded = True
                batch["_slot"], batch["_epoch"], batch["_cursor"] = slot, ep, after
                # a worker process's counters live in that process: they travel with its batches
                batch["_worker"], batch["_counts"] = worker, (dict(self.encode.skipped), self.encode.truncated)
                yield batch
            if not yielded and cursor == (0, 0) and self.split == "train":  # an endless loop would hang
                raise RuntimeError(f"slot {slot} of {self.shards[0]}... has no usable {self.split} samples "
                                   f"(skipped so far: {dict(self.encode.skipped)})")
            cursor = (0, 0)


EPOCH_DONE: Cursor = (2**62, 0)  # the cursor after an epoch's last batch: the next one starts afresh


def _packed(examples: Iterator[tuple[int, dict]], seq_len: int,
            encoder: SampleEncoder) -> Iterator[tuple[Cursor, dict]]:
    packer = SequencePacker(seq_len)
    for i, e in examples:
        yield from packer.add(i, e)
    yield from ((EPOCH_DONE, row) for row in packer.flush())
    if packer.too_long:
        encoder.skipped["too_long"] += packer.too_long


class StreamLoader:
    """A StreamDataset behind a DataLoader, tracking the position of every batch handed out."""

    def __init__(self, dataset: StreamDataset, workers: int = 0) -> None:
        self.dataset, self.workers = dataset, workers
        self.state: dict[str, Any] = {"slots": {}, "next_worker": 0}
        self._it: Iterator[dict] | None = None
        self._counts: dict[int, tuple[dict, int]] = {}  # per worker: (skipped by reason, truncated)

    def load_state_dict(self, state: dict) -> None:
        self.state = {"slots": dict(state["slots"]), "next_worker": state["next_worker"]}
        self._it = None

    def state_dict(self) -> dict:
        return {"slots": dict(self.state["slots"]), "next_worker": self.state["next_worker"]}

    def __next__(self) -> dict:
        if self._it is None:
            self.dataset.start = self.state_dict()
            dl = DataLoader(self.dataset, batch_size=None, num_workers=self.workers,
                            persistent_workers=False, prefetch_factor=2 if self.workers else None)
            self._it = iter(dl)
        batch = next(self._it)
        slot, worker = batch.pop("_slot"), batch.pop("_worker")
        self._counts[worker] = batch.pop("_counts")
        self.state["slots"][str(slot)] = (batch.pop("_epoch"), *batch.pop("_cursor"))
        # the DataLoader hands out batches round-robin over its workers
        self.state["next_worker"] = (worker + 1) % max(self.workers, 1)
        return batch

    def __iter__(self) -> StreamLoader:
        return self

    def counts(self) -> tuple[Counter[str], int]:
        """Samples skipped (by reason) and cut to seq_len so far, over all workers of this stream."""
        skipped: Counter[str] = Counter()
        for s, _ in self._counts.values():
            skipped.update(s)
        return skipped, sum(t for _, t in self._counts.values())


def tokens_in(batch: dict) -> int:
    return int(batch["attention_mask"].sum())


def supervised_in(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != -100).sum())


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}
