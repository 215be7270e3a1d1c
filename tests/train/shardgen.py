"""Test helpers: synthetic shards in the data engine's format (shard contract), written with the engine's
ShardWriter, and the tiny stage presets shortened for tests.

Text documents, captions and SFT dialogues about coloured shapes: regular enough that a tiny model's
loss falls within a few dozen steps, and with images so that the vision path is exercised.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

from pipelines.shards import ShardWriter
from train.config import CONFIG_DIR, TrainConfig

COLORS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle")
WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "big", "small", "house")


def shape_png(color: str, shape: str, size: int = 48) -> bytes:
    img = Image.new("RGB", (size, size + 8), (255, 255, 255))  # not square: exercises the padding
    d = ImageDraw.Draw(img)
    box = (8, 12, size - 8, size - 4)
    (d.rectangle if shape == "square" else d.ellipse)(box, fill=COLORS[color])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _meta(key: str, stage: list[int], task: str, **body: object) -> dict:
    return {"key": key, "source": "synthetic", "task": task, "category": task, "stage": stage,
            "images": [], "taxonomy": [], "lang": "en", "scores": {},
            "provenance": {"input": key, "path": "synthetic", "license": "CC0", "operators": {}}, **body}


def text_sample(rng: random.Random, i: int, stage: int) -> tuple[str, dict[str, bytes]]:
    key = f"txt-s{stage}-{i:05d}"
    if stage == 3:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        msgs = [{"role": "user", "content": f"What is {a} plus {b}?"},
                {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]
        meta = _meta(key, [3], "text-sft", messages=msgs)
    else:
        sents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))).capitalize() + "."
                 for _ in range(rng.randint(2, 5))]
        meta = _meta(key, [2], "text", text=" ".join(sents))
    return key, {"json": json.dumps(meta).encode()}


def image_sample(rng: random.Random, i: int, stage: int) -> tuple[str, dict[str, bytes]]:
    key = f"img-s{stage}-{i:05d}"
    color, shape = rng.choice(sorted(COLORS)), rng.choice(SHAPES)
    members = {"0.png": shape_png(color, shape)}
    if stage == 3:
        msgs = [{"role": "user", "content": "<image>\nWhat color is the shape?"},
                {"role": "assistant", "content": f"The {shape} is {color}."}]
        meta = _meta(key, [3], "caption-sft", messages=msgs, images=["0.png"])
    elif rng.random() < 0.3:  # an interleaved document with two images
        color2, shape2 = rng.choice(sorted(COLORS)), rng.choice(SHAPES)
        members["1.png"] = shape_png(color2, shape2)
        text = f"<image>\nFirst a {color} {shape}. Then <image> a {color2} {shape2}."
        meta = _meta(key, [1, 2], "interleaved", text=text, images=["0.png", "1.png"])
    else:
        meta = _meta(key, [1, 2], "caption", text=f"<image>\nA {color} {shape} on a white background.",
                     images=["0.png"])
    members["json"] = json.dumps(meta).encode()
    return key, members


def write_shards(out: Path, n_text: int = 48, n_image: int = 48, per_shard: int = 16,
                 seed: int = 0) -> Path:
    """`<out>/shards/stage{1,2,3}-{text,multimodal}/` streams like `make demo` writes; returns out."""
    rng = random.Random(seed)
    streams = {
        "stage1-multimodal": [image_sample(rng, i, 1) for i in range(n_image)],
        "stage2-text": [text_sample(rng, i, 2) for i in range(n_text)],
        "stage2-multimodal": [image_sample(rng, i, 2) for i in range(n_image)],
        "stage3-text": [text_sample(rng, i, 3) for i in range(n_text // 2)],
        "stage3-multimodal": [image_sample(rng, i, 3) for i in range(n_image // 2)],
    }
    for stream, samples in streams.items():
        writer = ShardWriter(out / "shards" / stream, stream, maxcount=per_shard)
        for key, members in samples:
            writer.write(key, members)
        writer.close()
    return out


def tiny(stage: int, **changes: object) -> TrainConfig:
    """A tiny-stageN preset for tests: evaluation and checkpoints only at the end unless changed;
    `part__field=value` changes one field of a section, `part=value` replaces it."""
    raw = yaml.safe_load((CONFIG_DIR / f"tiny-stage{stage}.yaml").read_text())
    raw["eval"] = {"every": 1000, "batches": 2, "mc_path": None}
    raw["checkpoint"] = {"every": 1000, "keep_last": 2}
    for key, value in changes.items():
        part, _, field = key.partition("__")
        if field:
            raw.setdefault(part, {})[field] = value
        else:
            raw[part] = value
    return TrainConfig.model_validate(raw)
