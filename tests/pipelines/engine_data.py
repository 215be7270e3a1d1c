"""Small real inputs for engine tests: text corpora (with broken records) and captioned images."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

GOOD_TEXTS = 40
BROKEN_TEXT_RECORDS = {"invalid_json": 1, "empty_text": 1, "undecodable": 1, "not_an_object": 1}
GOOD_IMAGES = 12
BROKEN_IMAGES = {"corrupt_image": 1, "missing_caption": 1}


def make_inputs(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    texts = root / "texts"
    texts.mkdir(exist_ok=True)
    with open(texts / "a.jsonl", "w") as f:
        f.writelines(json.dumps({"text": f"Record {i}: the quick brown fox jumps over {i} lazy dogs.", "lang": "en"}) + "\n" for i in range(GOOD_TEXTS // 2))
        f.write("{not json\n")
        f.write(json.dumps({"text": "   "}) + "\n")
    with open(texts / "b.jsonl", "wb") as f:
        f.writelines(json.dumps({"text": f"Entry {i} describes a river that is {i} km long."}).encode() + b"\n" for i in range(GOOD_TEXTS // 2, GOOD_TEXTS))
        f.write(b'{"text": "latin-1 \xe9t\xe9"}\n')
        f.write(b"[1, 2, 3]\n")
        f.write(json.dumps({"messages": [{"role": "user", "content": "What is 2+2?"},
                                         {"role": "assistant", "content": "4"}]}).encode() + b"\n")
    images = root / "images"
    images.mkdir(exist_ok=True)
    for i in range(GOOD_IMAGES):
        im = Image.new("RGB", (64 + 8 * i, 48), (20 * i % 256, 80, 160))
        ImageDraw.Draw(im).rectangle([4, 4, 20 + i, 30], fill=(255, 255, 255))
        im.save(images / f"img{i:02d}.png")
        (images / f"img{i:02d}.txt").write_text(f"A blue card with a white box number {i}.")
    # an exact copy (same bytes, same caption) under another name: dedup.exact removes it in assembly
    (images / "zz_copy_of_img03.png").write_bytes((images / "img03.png").read_bytes())
    (images / "zz_copy_of_img03.txt").write_text((images / "img03.txt").read_text())
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (images / "broken.txt").write_text("A broken file.")
    Image.new("RGB", (32, 32)).save(images / "nocaption.png")
    return {"texts": texts, "images": images}


def write_recipe(root: Path, inputs: dict[str, Path], maxcount: int = 7) -> Path:
    recipe = {
        "name": "engine-test",
        "params": {"texts": str(inputs["texts"]), "images": str(inputs["images"])},
        "sources": [
            {"op": "text.jsonl", "with": {"inputs": "${texts}"}},
            {"op": "images.folder", "with": {"inputs": "${images}"}},
        ],
        "assembly": {
            "seed": 7,
            "steps": [{"step": "dedup.exact", "with": {"by": "images"}}],
            "mixture": {
                "stage1": {"ratios": {"caption": 1.0}},
                "stage2": {"ratios": {"text_only": 0.7, "caption": 0.3}},
                "stage3": {"ratios": {"text_sft": 1.0}},
            },
            "shards": {"maxcount": maxcount},
        },
    }
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path
