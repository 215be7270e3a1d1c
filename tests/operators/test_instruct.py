"""Instruction importers: LLaVA JSON and ShareGPT JSON/JSONL with an image folder -> SFT samples or rejections."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from operators.instruct import LlavaImporter, ShareGptImporter
from operators.sample import Rejection, Sample


def _png(path: Path, color=(200, 30, 30), size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _llava_set(tmp: Path) -> Path:
    img = tmp / "images"
    img.mkdir()
    png = _png(img / "a.png")
    Image.new("RGB", (16, 16), (0, 0, 255)).save(img / "b.jpg", "JPEG")
    Image.new("RGB", (16, 16), (0, 255, 0)).save(img / "c.webp", "WEBP")
    (img / "broken.png").write_bytes(png[:40])  # truncated: header only
    (img / "text.png").write_text("not an image")
    recs = [
        {"id": "ok1", "image": "a.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the square?"}, {"from": "gpt", "value": "Red."},
            {"from": "human", "value": "Is it big?"}, {"from": "gpt", "value": "No, 32 by 24 pixels."}]},
        {"id": "ok2-noplaceholder", "image": "b.jpg", "conversations": [
            {"from": "human", "value": "Describe the image."}, {"from": "gpt", "value": "A blue square."}]},
        {"id": "ok3-webp", "image": "c.webp", "conversations": [
            {"from": "human", "value": "<image> colour?"}, {"from": "gpt", "value": "Green."}]},
        {"id": "text-only", "conversations": [
            {"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"}]},
        {"id": "missing", "image": "nope.png", "conversations": [
            {"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]},
        {"id": "truncated", "image": "broken.png", "conversations": [
            {"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]},
        {"id": "notimage", "image": "text.png", "conversations": [
            {"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]},
        {"id": "role", "image": "a.png", "conversations": [
            {"from": "narrator", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]},
        {"id": "placeholders", "image": "a.png", "conversations": [
            {"from": "human", "value": "<image><image>\nq"}, {"from": "gpt", "value": "a"}]},
        {"id": "empty", "image": "a.png", "conversations": [
            {"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "   "}]},
        {"id": "escape", "image": "../../etc/passwd", "conversations": [
            {"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]},
        {"id": "order", "conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]},
        "not a dict",
        {"id": "noconv"},
    ]
    f = tmp / "llava.json"
    f.write_text(json.dumps(recs))
    return f


def test_llava_importer_samples_and_rejections(tmp_path: Path):
    f = _llava_set(tmp_path)
    op = LlavaImporter({"inputs": str(f), "image_root": str(tmp_path / "images"), "license": "cc-by-4.0"})
    out = op.run()
    samples = [s for s in out if isinstance(s, Sample)]
    rej = {r.key: r.reason for r in out if isinstance(r, Rejection)}
    assert [s.provenance["record"] for s in samples] == ["ok1", "ok2-noplaceholder", "ok3-webp", "text-only"]
    assert rej == {
        "llava.json#4": "missing_image", "llava.json#5": "unreadable_image", "llava.json#6": "unreadable_image",
        "llava.json#7": "unknown_role", "llava.json#8": "placeholder_mismatch", "llava.json#9": "empty_answer",
        "llava.json#10": "image_outside_root", "llava.json#11": "bad_turn_order", "llava.json#12": "bad_record",
        "llava.json#13": "bad_record"}
    s = samples[0]
    assert s.category == "general_instruct" and s.stage == [3] and s.source == "llava"
    assert s.messages[0] == {"role": "user", "content": "<image>\nWhat colour is the square?"}
    assert [m["role"] for m in s.messages] == ["user", "assistant", "user", "assistant"]
    assert s.images == ["0.png"] and s.image_bytes[0] == (tmp_path / "images" / "a.png").read_bytes()
    assert samples[1].messages[0]["content"].startswith("<image>\n") and samples[1].images == ["0.jpg"]
    webp = samples[2]
    assert webp.images == ["0.png"] and Image.open(io.BytesIO(webp.image_bytes[0])).getpixel((1, 1))[1] > 200
    assert samples[3].category == "text_sft" and samples[3].images == []
    # keys are deterministic: a second run gives the same keys
    assert [x.key for x in op.run() if isinstance(x, Sample)] == [x.key for x in samples]
    assert s.to_json()["provenance"]["license"] == "cc-by-4.0"


def test_sharegpt_jsonl_and_json(tmp_path: Path):
    _png(tmp_path / "x.png")
    _png(tmp_path / "y.png", (0, 0, 0))
    lines = [
        json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "<image><image>Compare."},
                                 {"role": "assistant", "content": "One is red, one is black."}],
                    "images": ["x.png", "y.png"]}),
        "{not json",
        json.dumps({"conversations": [{"from": "human", "value": "<image>q"}, {"from": "gpt", "value": "a"}],
                    "images": ["x.png", "y.png"]}),
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]}),
        "x" * 300,
    ]
    (tmp_path / "set.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "set2.json").write_text(json.dumps({"data": [
        {"conversations": [{"from": "user", "value": "Hello"}, {"from": "assistant", "value": "Hi!"}]}]}))
    (tmp_path / "bad.json").write_text("[{")
    op = ShareGptImporter({"inputs": str(tmp_path), "max_record_bytes": 250, "source": "sharegpt4v"})
    assert [Path(p).name for p in op.list_inputs()] == ["bad.json", "set.jsonl", "set2.json"]
    out = op.run()
    samples = [s for s in out if isinstance(s, Sample)]
    rej = sorted((r.key, r.reason) for r in out if isinstance(r, Rejection) and r.key)
    assert rej == [("set.jsonl#1", "bad_json"), ("set.jsonl#2", "placeholder_mismatch"),
                   ("set.jsonl#3", "unknown_role"), ("set.jsonl#4", "record_too_large")]
    # a file that is not JSON at all is one rejection for the whole unit
    assert any(r.reason == "bad_json" and r.input.endswith("bad.json") for r in out if isinstance(r, Rejection))
    assert len(samples) == 2
    two = samples[0]
    assert two.images == ["0.png", "1.png"] and two.meta["system"] == "Be brief."
    assert two.source == "sharegpt4v" and two.modality == "multimodal"
    assert samples[1].messages == [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}]


def test_decompression_bomb_and_missing_input(tmp_path: Path):
    Image.new("L", (5000, 5000)).save(tmp_path / "big.png", "PNG")  # small file, 25 Mpx
    (tmp_path / "d.json").write_text(json.dumps([{"image": "big.png", "conversations": [
        {"from": "human", "value": "<image>q"}, {"from": "gpt", "value": "a"}]}]))
    out = LlavaImporter({"inputs": str(tmp_path / "d.json"), "max_image_pixels": 1_000_000}).run()
    assert [(r.reason, r.key) for r in out] == [("image_too_large", "d.json#0")]
    big = LlavaImporter({"inputs": str(tmp_path / "d.json"), "max_json_bytes": 10}).run()
    assert [r.reason for r in big] == ["file_too_large"]
    import pytest

    with pytest.raises(ValueError, match="does not exist"):
        LlavaImporter({"inputs": str(tmp_path / "none.json")}).list_inputs()
