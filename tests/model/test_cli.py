"""CLI: `dsvl-data model info` and `dsvl-data chat` through typer's CliRunner."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from pipelines.cli import app

from .conftest import picture

runner = CliRunner()


def test_model_info_json_7b():
    res = runner.invoke(app, ["model", "info", "--preset", "7b", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    p = data["params"]
    assert data["image_tokens"] == 576
    assert p["adaptor_mlp"] == 20_979_712 and p["adaptor_convs"] == 5_898_240
    assert p["total"] == p["vision"] + p["adaptor"] + p["llm"] and 7.2e9 < p["total"] < 7.4e9


def test_model_info_table_and_bad_preset():
    res = runner.invoke(app, ["model", "info", "--preset", "1.3b"])
    assert res.exit_code == 0 and "adaptor" in res.output and "6.3" in res.output
    bad = runner.invoke(app, ["model", "info", "--preset", "70b"])
    assert bad.exit_code != 0 and "unknown preset" in bad.output


def test_chat_answers_with_a_checkpoint(tmp_path, tiny_cfg, tokenizer, processor):
    from model.checkpoint import save_model
    from model.vlm import MultiModalityCausalLM

    torch.manual_seed(0)
    m = MultiModalityCausalLM(tiny_cfg).eval()
    save_model(m, tmp_path / "ckpt")
    tokenizer.save(tmp_path / "ckpt" / "tokenizer.json")
    picture().save(tmp_path / "img.png")
    res = runner.invoke(
        app,
        [
            "chat",
            "--checkpoint",
            str(tmp_path / "ckpt"),
            "--image",
            str(tmp_path / "img.png"),
            "--max-new-tokens",
            "6",
            "--repetition-penalty",
            "1.0",
            "What is shown?",
        ],
    )
    assert res.exit_code == 0, res.output
    b = processor([[{"role": "user", "content": "<image>\nWhat is shown?"}]], [[picture()]], train=False)
    out = m.generate(
        b["input_ids"],
        b["attention_mask"],
        b["pixel_values"],
        b["images_seq_mask"],
        b["images_emb_mask"],
        max_new_tokens=6,
        eos_id=tokenizer.eos_id,
        pad_id=tokenizer.pad_id,
    )
    assert res.output.strip() == processor.decode(out[0]).strip()
    bf16 = runner.invoke(
        app,
        [
            "chat",
            "--checkpoint",
            str(tmp_path / "ckpt"),
            "--image",
            str(tmp_path / "img.png"),
            "--max-new-tokens",
            "4",
            "--dtype",
            "bfloat16",
            "--temperature",
            "0.8",
            "Hi?",
        ],
    )
    assert bf16.exit_code == 0, bf16.output
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    bad = runner.invoke(
        app, ["chat", "--checkpoint", str(tmp_path / "ckpt"), "--image", str(tmp_path / "broken.png"), "hi"]
    )
    assert bad.exit_code != 0 and "unreadable image" in bad.output
    two = runner.invoke(
        app,
        [
            "chat",
            "--checkpoint",
            str(tmp_path / "ckpt"),
            "--image",
            str(tmp_path / "img.png"),
            "<image> and <image>?",
        ],
    )
    assert two.exit_code != 0 and "2 <image> placeholders but 1 images" in two.output
    (tmp_path / "ckpt" / "tokenizer.json").unlink()
    notok = runner.invoke(
        app, ["chat", "--checkpoint", str(tmp_path / "ckpt"), "--image", str(tmp_path / "img.png"), "hi"]
    )
    assert notok.exit_code != 0 and "no tokenizer.json" in notok.output
