"""The training loop on shards in the engine's format: loss falls in every stage, exact resume, the CLI."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from tests.train.shardgen import tiny
from train.loop import train


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_loss_falls_in_every_stage(shards, tmp_path, stage) -> None:
    changes: dict = {"steps": 14}
    if stage == 2:  # a shorter modality warm-up leaves multimodal steps in 14; MC evaluation runs here
        changes["mixing__warmup_steps"] = 4
        changes["data__seq_len"] = 128
        changes["eval"] = {"every": 1000, "batches": 2, "mc_path": "mc-heldout.json"}
    res = train(tiny(stage, **changes), shards, tmp_path / "run")
    first, last = res["val"][0], res["val"][-1]
    assert (first["step"], last["step"], res["steps"]) == (0, 14, 14)
    modalities = ["multimodal"] if stage == 1 else ["text", "multimodal"]
    # falls well beyond noise: stage 1 trains only the adaptor of a random, frozen LLM; stage 2 spends
    # most of its 14 steps on text (the modality warm-up)
    margin = {(1, "multimodal"): 0.3, (2, "multimodal"): 0.5}
    for m in modalities:
        fall = first[f"val/{m}_loss"] - last[f"val/{m}_loss"]
        assert fall > margin.get((stage, m), 1.0), (m, first, last)
    assert all(math.isfinite(x) for x in res["losses"]) and res["skipped"] == {}
    if stage == 1:
        assert set(res["streams"]) == {"multimodal"}
    else:
        assert set(res["streams"]) >= {"text", "multimodal"}
    if stage == 2:
        # the synthetic corpus shares no words with the held-out questions: only check the metric is sane
        assert 0 <= last["val/mc_accuracy"] <= 1 and 1 < last["val/mc_ppl"] < 1e6
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "train/loss" in x] == list(range(1, 15))
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))


def test_resume_continues_exactly(shards, tmp_path) -> None:
    cfg = tiny(2, steps=8, checkpoint={"every": 3, "keep_last": 3},
               mixing={"language_share": 0.4, "warmup_steps": 0, "sft_share": 0.4})
    full = train(cfg, shards, tmp_path / "full")
    # streams in use before the cut continue after it, and one starts fresh after it
    assert full["streams"] == ["text", "multimodal", "sft-text", "multimodal", "multimodal", "multimodal",
                               "text", "sft-multimodal"]
    # a run that stopped after step 3: only that checkpoint (and the tokenizer) exist
    cut = tmp_path / "cut"
    (cut / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "full" / "checkpoints" / "step-00000003", cut / "checkpoints" / "step-00000003")
    shutil.copy(tmp_path / "full" / "tokenizer.json", cut / "tokenizer.json")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    result = CliRunner().invoke(app, ["train", str(tmp_path / "cfg.yaml"), "--data", str(shards),
                                      "--out", str(cut), "--resume"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["steps"] == 8 and summary["checkpoint"].endswith("step-00000008")
    metrics = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
    resumed = [x["train/loss"] for x in metrics if "train/loss" in x]
    assert resumed == full["losses"][3:]  # bit-identical: model, optimizer, data position all restored


def test_cli_rejects_bad_input(tmp_path) -> None:
    r = CliRunner().invoke(app, ["train", "no-such-config", "--data", str(tmp_path)])
    assert r.exit_code != 0 and "no-such-config" in r.output
    r = CliRunner().invoke(app, ["train", "tiny-stage2", "--data", str(tmp_path)])
    assert r.exit_code != 0 and "no shards" in r.output
    (tmp_path / "shards" / "other-stream").mkdir(parents=True)  # a build without this stage's streams
    r = CliRunner().invoke(app, ["train", "tiny-stage1", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "stage1-multimodal" in r.output


def test_activation_checkpointing_and_accumulation(shards, tmp_path) -> None:
    """Recomputing activations changes nothing numerically; accumulation runs micro-batches per step."""
    base = {"steps": 2, "optim__accumulation": 2, "data__batch_size": 2}
    plain = train(tiny(3, **base), shards, tmp_path / "plain")
    recomputed = train(tiny(3, activation_checkpointing=True, **base), shards, tmp_path / "ckpt")
    assert plain["accumulation"] == 2
    assert recomputed["losses"] == pytest.approx(plain["losses"], rel=1e-5)
    by_global = train(tiny(3, steps=1, data__global_batch=8, data__batch_size=2), shards, tmp_path / "global")
    assert by_global["accumulation"] == 4  # 8 rows per step / (2 rows x 1 process)


def test_stages_chain_through_init_from(shards, tmp_path) -> None:
    """Stage 3 starts from stage 1's run directory: its weights and its tokenizer."""
    from model.checkpoint import load_state_dict

    one = train(tiny(1, steps=2), shards, tmp_path / "stage1")
    r = CliRunner().invoke(app, ["train", str(tmp_path / "cfg3.yaml"), "--init-from", str(tmp_path / "nope")])
    assert r.exit_code != 0
    (tmp_path / "cfg3.yaml").write_text(yaml.safe_dump(tiny(3, steps=1, optim__lr=1e-9).model_dump(mode="json")))
    r = CliRunner().invoke(app, ["train", str(tmp_path / "cfg3.yaml"), "--data", str(shards), "--out",
                                 str(tmp_path / "stage3"), "--init-from", str(tmp_path / "stage1")])
    assert r.exit_code == 0, r.output
    before = load_state_dict(one["checkpoint"])
    after = load_state_dict(tmp_path / "stage3" / "checkpoints" / "step-00000001")
    adaptor = [k for k in before if k.startswith("adaptor.")]
    assert adaptor and all(torch.allclose(before[k], after[k], atol=1e-6) for k in adaptor)
    torch.manual_seed(0)
    from model.config import VLMConfig
    from model.vlm import MultiModalityCausalLM

    init = MultiModalityCausalLM(VLMConfig.from_name("tiny")).state_dict()
    assert not all(torch.equal(init[k], before[k]) for k in adaptor)  # stage 1 did move the adaptor
    # a fresh run into the same directory replaces the earlier run instead of mixing with it
    train(tiny(1, steps=1), shards, tmp_path / "stage1")
    lines = [json.loads(x) for x in (tmp_path / "stage1" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "train/loss" in x] == [1]
    assert [p.name for p in (tmp_path / "stage1" / "checkpoints").iterdir()] == ["step-00000001"]
    assert (tmp_path / "stage3" / "tokenizer.json").read_text() == (tmp_path / "stage1" / "tokenizer.json").read_text()
