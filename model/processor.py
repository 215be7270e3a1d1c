"""Chat processor: images to padded squares, the "deepseek" chat template, image-token expansion, batching.

Images: longest side resized to the preset size (bicubic, antialiased), padded to a centred square with the
preset colour, values in [0, 1]; each vision tower normalises (and the SigLIP view is resized from this
padded high-res image) inside the model, as in the public code, so one tensor serves both towers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from PIL import Image

from model.config import VLMConfig
from model.tokenizer import IMAGE, VLTokenizer

DEFAULT_SYSTEM = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that "
    "the user provides, and assist the user with a variety of tasks using natural language."
)
PLACEHOLDER = re.compile(r"<image>|" + re.escape(IMAGE))
IGNORE = -100


@dataclass
class _Row:
    ids: list[int]
    labels: list[int]
    image_pos: list[bool]
    images: list[torch.Tensor]


class VLChatProcessor:
    def __init__(
        self, tokenizer: VLTokenizer, config: VLMConfig, system_prompt: str = DEFAULT_SYSTEM
    ) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.system_prompt = system_prompt
        self.image_tokens = config.image_tokens

    # ---- images ----------------------------------------------------------------------------------
    def preprocess_image(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (3, S, S) float in [0, 1]: longest side to S, centred on a pad-colour square."""
        S, color = self.config.image_size, tuple(self.config.pad_color)
        w, h = image.size
        if w <= 0 or h <= 0:
            raise ValueError(f"empty image {w}x{h}")
        if image.mode.startswith("I") or image.mode == "F":
            # 16/32-bit grey (scans, PNG-16): Pillow's RGB conversion clips at 255, so rescale first
            import numpy as np

            arr = np.asarray(image, dtype=np.float32)
            top = 65535.0 if arr.max(initial=0) > 255 else 255.0
            image = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8), mode="L")
        if image.mode in ("RGBA", "LA", "P", "PA"):
            # transparent areas take the pad colour, as padding does
            rgba = image.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (*color, 255))
            image = Image.alpha_composite(bg, rgba)
        image = image.convert("RGB")
        m = max(w, h)
        nw = min(S, max(int(w / m * S), self.config.min_image_side))
        nh = min(S, max(int(h / m * S), self.config.min_image_side))
        # Pillow's bicubic filter widens its support when shrinking, i.e. it is antialiased
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", (S, S), color)
        canvas.paste(image, ((S - nw) // 2, (S - nh) // 2))
        x = torch.frombuffer(bytearray(canvas.tobytes()), dtype=torch.uint8).view(S, S, 3)
        return x.permute(2, 0, 1).float().div_(255.0)  # (3, S, S)

    # ---- text ------------------------------------------------------------------------------------
    def template_segments(self, messages: list[dict], generation: bool) -> list[tuple[str | None, bool]]:
        """The "deepseek" template as (text, supervised) segments:
        `{system}\\n\\nUser: {u}\\n\\nAssistant: {a}<EOS>User: ...`; generation ends with `Assistant:`."""
        if not messages:
            raise ValueError("empty conversation")
        system = self.system_prompt
        if messages[0].get("role") == "system":
            system, messages = messages[0].get("content", ""), messages[1:]
        segs: list[tuple[str | None, bool]] = [(system + "\n\n", False)] if system else []
        for msg in messages:
            role, content = msg.get("role"), msg.get("content") or ""
            if role == "user":
                segs.append((f"User: {content}\n\n", False))
            elif role == "assistant":
                segs.append(("Assistant:", False))
                segs.append((f" {content}", True))
                segs.append((None, True))  # None = the EOS id, supervised
            else:
                raise ValueError(f"unknown role {role!r}; expected user or assistant")
        if generation and messages[-1].get("role") == "user":
            segs.append(("Assistant:", False))
        return segs

    def _tokenize(self, messages: list[dict], images: list[Image.Image], generation: bool) -> _Row:
        tok = self.tokenizer
        ids, labels, pos = [tok.bos_id], [IGNORE], [False]
        n_ph = 0
        for text, supervised in self.template_segments(messages, generation):
            if text is None:
                ids.append(tok.eos_id)
                labels.append(tok.eos_id if supervised else IGNORE)
                pos.append(False)
                continue
            parts = PLACEHOLDER.split(text)
            for k, part in enumerate(parts):
                if k > 0:  # a placeholder stood before this part
                    n_ph += 1
                    ids += [tok.image_id] * self.image_tokens
                    labels += [IGNORE] * self.image_tokens
                    pos += [True] * self.image_tokens
                if part:
                    t = tok.encode(part)
                    ids += t
                    labels += t if supervised else [IGNORE] * len(t)
                    pos += [False] * len(t)
        if n_ph != len(images):
            raise ValueError(f"{n_ph} image placeholders but {len(images)} images")
        return _Row(ids, labels, pos, [self.preprocess_image(im) for im in images])

    def encode_text(self, text: str) -> dict[str, list[int]]:
        """A text-only LM sample: BOS + text + EOS, every token supervised."""
        ids = [self.tokenizer.bos_id, *self.tokenizer.encode(text), self.tokenizer.eos_id]
        return {"input_ids": ids, "labels": list(ids)}

    # ---- batching --------------------------------------------------------------------------------
    def __call__(
        self,
        conversations: list[list[dict]],
        images: list[list[Image.Image]] | None = None,
        train: bool = True,
        max_length: int | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """Batch of conversations -> model inputs. Right padding when train, left padding otherwise."""
        images = images if images is not None else [[] for _ in conversations]
        if len(images) != len(conversations):
            raise ValueError(f"{len(conversations)} conversations but {len(images)} image lists")
        rows = [self._tokenize(c, list(ims), generation=not train) for c, ims in zip(conversations, images)]
        return self._collate(rows, left_pad=not train, max_length=max_length)

    def collate_text(
        self, samples: list[dict[str, list[int]]], max_length: int | None = None
    ) -> dict[str, torch.Tensor | None]:
        """Batch `encode_text` outputs (or packed rows with the same keys) with right padding."""
        rows = [_Row(s["input_ids"], s["labels"], [False] * len(s["input_ids"]), []) for s in samples]
        return self._collate(rows, left_pad=False, max_length=max_length)

    def _collate(
        self, rows: list[_Row], left_pad: bool, max_length: int | None
    ) -> dict[str, torch.Tensor | None]:
        if not rows:
            raise ValueError("empty batch")
        if max_length is not None:
            for r in rows:
                if len(r.ids) > max_length:
                    if any(r.image_pos[max_length:]):
                        raise ValueError(f"image tokens beyond max_length={max_length} ({len(r.ids)} tokens)")
                    r.ids, r.labels, r.image_pos = (
                        r.ids[:max_length],
                        r.labels[:max_length],
                        r.image_pos[:max_length],
                    )
        B, T = len(rows), max(len(r.ids) for r in rows)
        n_img = max(len(r.images) for r in rows)
        input_ids = torch.full((B, T), self.tokenizer.pad_id, dtype=torch.long)
        labels = torch.full((B, T), IGNORE, dtype=torch.long)
        attention = torch.zeros(B, T, dtype=torch.long)
        seq_mask = torch.zeros(B, T, dtype=torch.bool)
        emb_mask = torch.zeros(B, n_img, self.image_tokens, dtype=torch.bool)
        S = self.config.image_size
        pixels = torch.zeros(B, n_img, 3, S, S) if n_img else None
        for b, r in enumerate(rows):
            n = len(r.ids)
            sl = slice(T - n, T) if left_pad else slice(0, n)
            input_ids[b, sl] = torch.tensor(r.ids, dtype=torch.long)
            labels[b, sl] = torch.tensor(r.labels, dtype=torch.long)
            attention[b, sl] = 1
            seq_mask[b, sl] = torch.tensor(r.image_pos, dtype=torch.bool)
            for i, im in enumerate(r.images):
                assert pixels is not None
                pixels[b, i] = im
                emb_mask[b, i] = True
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "pixel_values": pixels,
            "images_seq_mask": seq_mask,
            "images_emb_mask": emb_mask,
        }

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        if self.tokenizer.eos_id in ids:
            ids = ids[: ids.index(self.tokenizer.eos_id)]
        return self.tokenizer.decode(ids)
