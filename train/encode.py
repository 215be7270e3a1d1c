"""Sample JSON (shard contract) -> one training example, through the model's processor.

SFT samples (`messages`) go through the chat template, so only assistant answers and their EOS are
supervised; pretraining samples (`text`, `<image>` placeholders in order) get BOS + text + EOS with every
text token supervised and the image tokens masked.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections import Counter

import torch
from PIL import Image

from model.processor import IGNORE, PLACEHOLDER, VLChatProcessor

log = logging.getLogger(__name__)


class SampleEncoder:
    """Callable used inside the loader (and its worker processes): sample dict -> example or None.

    Unusable samples (broken image, placeholder/image mismatch, nothing supervised within seq_len) are
    skipped, logged and counted in `skipped` by reason; samples cut to seq_len are counted in `truncated`.
    """

    def __init__(self, processor: VLChatProcessor, seq_len: int) -> None:
        self.processor, self.seq_len = processor, seq_len
        self.skipped: Counter[str] = Counter()
        self.truncated = 0

    def fresh(self) -> SampleEncoder:
        """Another encoder on the same processor with its own counters (one per stream)."""
        return SampleEncoder(self.processor, self.seq_len)

    @property
    def pad_id(self) -> int:
        return self.processor.tokenizer.pad_id

    def skip(self, key: object, reason: str, detail: str = "") -> None:
        """Count and log a sample that cannot be trained on (also used by the loader for shard-level faults)."""
        self.skipped[reason] += 1
        log.warning("skipping sample %s: %s %s", key, reason, detail)

    def _images(self, sample: dict) -> list[Image.Image] | None:
        out = []
        for data in sample.get("image_bytes") or []:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    im = Image.open(io.BytesIO(data))
                    im.load()
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning,
                    Image.DecompressionBombError) as e:
                self.skip(sample.get("key"), "bad_image", repr(e)[:200])
                return None
            out.append(im)
        return out

    def _pretrain(self, text: str, images: list[Image.Image]) -> dict:
        tok, n_img = self.processor.tokenizer, self.processor.image_tokens
        ids, labels, pos = [tok.bos_id], [tok.bos_id], [False]
        parts = PLACEHOLDER.split(text)
        if len(parts) - 1 != len(images):
            raise ValueError(f"{len(parts) - 1} image placeholders but {len(images)} images")
        for k, part in enumerate(parts):
            if k > 0:
                ids += [tok.image_id] * n_img
                labels += [IGNORE] * n_img
                pos += [True] * n_img
            t = tok.encode(part) if part else []
            ids += t
            labels += t
            pos += [False] * len(t)
        ids.append(tok.eos_id)
        labels.append(tok.eos_id)
        pos.append(False)
        pixels = torch.stack([self.processor.preprocess_image(im) for im in images]) if images else None
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "images_seq_mask": torch.tensor(pos), "pixel_values": pixels}

    def _sft(self, messages: list[dict], images: list[Image.Image]) -> dict:
        b = self.processor([messages], [images], train=True)
        n = int(b["attention_mask"][0].sum())
        pixels = b["pixel_values"][0] if b["pixel_values"] is not None else None  # (n_img, 3, S, S)
        return {"input_ids": b["input_ids"][0, :n], "labels": b["labels"][0, :n],
                "images_seq_mask": b["images_seq_mask"][0, :n], "pixel_values": pixels}

    def __call__(self, sample: dict, packed: bool = False) -> dict | None:
        """`packed`: the stream packs rows, so a long text-only sample may span several."""
        images = self._images(sample)
        if images is None:
            return None
        try:
            if sample.get("messages"):
                ex = self._sft(sample["messages"], images)
            else:
                ex = self._pretrain(sample["text"], images)
        except ValueError as e:  # placeholder/image mismatch, unknown role, empty conversation
            self.skip(sample.get("key"), "bad_sample", str(e)[:200])
            return None
        n = ex["input_ids"].numel()
        # packing cuts long text-only samples across rows; anything else is cut to one row
        if n > self.seq_len and not (packed and ex["pixel_values"] is None):
            ex = self._cut(ex)
            if ex is None:
                self.skip(sample.get("key"), "too_long", f"{n} tokens, nothing usable in {self.seq_len}")
                return None
            self.truncated += 1
        return ex

    def _cut(self, ex: dict) -> dict | None:
        """The first seq_len tokens, never through an image: an image that does not fit whole is dropped
        with the rest (a long interleaved document keeps its first pages)."""
        cut, per = self.seq_len, self.processor.image_tokens
        pos = ex["images_seq_mask"].nonzero().flatten()  # (n_img * per,) image token positions
        kept = sum(1 for k in range(pos.numel() // per) if int(pos[(k + 1) * per - 1]) < cut)
        if kept * per < pos.numel():
            cut = min(cut, int(pos[kept * per]))
        if cut < 2 or not bool((ex["labels"][1:cut] != IGNORE).any()):
            return None
        pixels = ex["pixel_values"][:kept] if kept else None
        return {"input_ids": ex["input_ids"][:cut], "labels": ex["labels"][:cut],
                "images_seq_mask": ex["images_seq_mask"][:cut], "pixel_values": pixels}
