"""The taxonomy parts inside a real build: LLaVA import -> taxonomy.tag -> taxonomy.balance -> catalog -> app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from taxonomy.catalog import Catalog

QUESTIONS = ["How many people are in the picture?", "Read the text in the image.",
             "Write the HTML for this web page screenshot.", "What colour is the car?"]


@pytest.mark.ray
def test_sft_build_tags_and_balances(ray_session, tmp_path: Path):
    from pipelines.runner import build

    img = tmp_path / "img"
    img.mkdir()
    recs = []
    for i in range(24):  # counting is over-represented: 12 of 24
        Image.new("RGB", (24, 16), (i * 9, 90, 200)).save(img / f"{i}.png")
        q = QUESTIONS[0] if i < 12 else QUESTIONS[1 + i % 3]
        recs.append({"id": f"r{i}", "image": f"{i}.png",
                     "conversations": [{"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": f"a{i}"}]})
    recs.append({"id": "bad", "image": "gone.png",
                 "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]})
    (tmp_path / "llava.json").write_text(json.dumps(recs))
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(f"""
name: sft-test
sources:
  - op: instruct.llava
    with: {{inputs: {tmp_path / 'llava.json'}, image_root: {img}}}
steps: [{{op: taxonomy.tag, with: {{categories: [general_instruct]}}}}]
assembly:
  steps: [{{step: taxonomy.balance, with: {{floor: 0, max_repeat: 2}}}}]
  mixture: {{stage3: {{ratios: {{general_instruct: 1.0}}}}}}
""")
    out = tmp_path / "out"
    build(recipe, out)
    cat = Catalog(out)
    # 24 tagged samples over 4 leaves -> 6 each: counting down-sampled 12 -> 6, the others stay at 4 x 1.5
    assert cat.tag_counts() == {"counting": 6, "printed-text": 4, "ui-to-code": 4, "object-attribute-description": 4}
    key = cat.keys()[0]
    s = cat.sample(key)
    assert s["stage"] == [3] and s["taxonomy"][0]["source"] == "rule:keyword"
    assert cat.images(key)[0][:4] == b"\x89PNG"
