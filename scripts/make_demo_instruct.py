"""Write the demo's instruction set in LLaVA format: drawn scenes with questions whose answers are
computed from the drawing (counting, colours, positions), plus a few broken records that the importer
must turn into ledger rejections. Usage: python scripts/make_demo_instruct.py OUT_DIR [--n N]
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
SHAPES = ("circle", "square")


def _scene(rng: random.Random) -> tuple[Image.Image, list[dict]]:
    w, h = 320, 240
    im = Image.new("RGB", (w, h), (245, 245, 240))
    d = ImageDraw.Draw(im)
    objs = []
    for _ in range(rng.randint(2, 7)):
        colour = rng.choice(list(COLOURS))
        shape = rng.choice(SHAPES)
        r = rng.randint(12, 26)
        x, y = rng.randint(r, w - r), rng.randint(r, h - r)
        box = [x - r, y - r, x + r, y + r]
        (d.ellipse if shape == "circle" else d.rectangle)(box, fill=COLOURS[colour], outline=(0, 0, 0))
        objs.append({"colour": colour, "shape": shape, "x": x, "y": y})
    return im, objs


def _qa(rng: random.Random, objs: list[dict]) -> list[tuple[str, str]]:
    shape = rng.choice(SHAPES)
    n = sum(o["shape"] == shape for o in objs)
    colour = rng.choice(list(COLOURS))
    m = sum(o["colour"] == colour for o in objs)
    left = min(objs, key=lambda o: o["x"])
    return [
        (f"How many {shape}s are in the image?", f"There {'is' if n == 1 else 'are'} {n} {shape}{'' if n == 1 else 's'}."),
        (f"Count the {colour} objects.", f"{m}"),
        ("What colour is the leftmost object, and what is its shape?",
         f"The leftmost object is a {left['colour']} {left['shape']}."),
    ]


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    n = int(argv[argv.index("--n") + 1]) if "--n" in argv else 60
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    records = []
    for i in range(n):
        im, objs = _scene(rng)
        name = f"images/scene{i:04d}.png"
        im.save(out / name)
        conv = []
        for j, (q, a) in enumerate(_qa(rng, objs)[: rng.randint(1, 3)]):
            conv.append({"from": "human", "value": ("<image>\n" if j == 0 else "") + q})
            conv.append({"from": "gpt", "value": a})
        records.append({"id": f"scene{i:04d}", "image": name, "conversations": conv})
    # broken records: each must end as a ledger rejection with its own reason
    records.append({"id": "missing-image", "image": "images/nope.png",
                    "conversations": [{"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": "A scene."}]})
    records.append({"id": "no-placeholder", "image": "images/scene0000.png",
                    "conversations": [{"from": "human", "value": "<image>\n<image>\nCompare."}, {"from": "gpt", "value": "Same."}]})
    records.append({"id": "empty-answer", "image": "images/scene0001.png",
                    "conversations": [{"from": "human", "value": "<image>\nDescribe it."}, {"from": "gpt", "value": " "}]})
    records.append({"id": "bad-role", "image": "images/scene0002.png",
                    "conversations": [{"from": "robot", "value": "<image>\nHi"}, {"from": "gpt", "value": "Hello."}]})
    (out / "llava.json").write_text(json.dumps(records, indent=1))
    print(f"demo instructions: {n} scenes, {len(records)} records (4 broken) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
