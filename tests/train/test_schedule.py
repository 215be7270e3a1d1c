"""Schedules are pure functions of the step: learning rate, language-share warm-up, step modality."""

from __future__ import annotations

import itertools
import math

import pytest
from pydantic import ValidationError

from train.config import CONFIG_DIR, MixingConfig, OptimConfig, load_config
from train.schedule import language_share_at, lr_at, step_plan


def test_cosine_with_warmup() -> None:
    o = OptimConfig(lr=1e-3, schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, o, 110) == pytest.approx(1e-4)
    assert lr_at(9, o, 110) == pytest.approx(1e-3)
    assert lr_at(10, o, 110) == pytest.approx(1e-3)
    assert lr_at(60, o, 110) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert lr_at(110, o, 110) == pytest.approx(1e-4)
    lrs = [lr_at(s, o, 110) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    # pure: any order of calls gives the same values
    assert [lr_at(s, o, 110) for s in reversed(range(111))][::-1] == [lr_at(s, o, 110) for s in range(111)]


def test_step_schedule_drops_at_milestones() -> None:
    o = OptimConfig(lr=3e-5, schedule="step", warmup_steps=20, step_milestones=[0.8, 0.9], step_gamma=0.316)
    assert lr_at(5, o, 1000) == pytest.approx(3e-5 * 6 / 20)
    assert lr_at(799, o, 1000) == pytest.approx(3e-5)
    assert lr_at(800, o, 1000) == pytest.approx(3e-5 * 0.316)
    assert lr_at(899, o, 1000) == pytest.approx(3e-5 * 0.316)
    assert lr_at(900, o, 1000) == pytest.approx(3e-5 * 0.316 ** 2)


@pytest.mark.parametrize(("shape", "quarter", "half"), [("linear", 0.925, 0.85),
                                                         ("cosine", 1 - 0.3 * (1 - math.cos(math.pi / 4)) / 2, 0.85),
                                                         ("step", 0.925, 0.85)])
def test_language_share_warmup_shapes(shape: str, quarter: float, half: float) -> None:
    m = MixingConfig(language_share=0.7, warmup_steps=100, shape=shape)
    assert language_share_at(0, m) == 1.0
    assert language_share_at(25, m) == pytest.approx(quarter)
    assert language_share_at(50, m) == pytest.approx(half)
    assert language_share_at(100, m) == pytest.approx(0.7)
    assert language_share_at(10_000, m) == pytest.approx(0.7)
    shares = [language_share_at(s, m) for s in range(101)]
    assert all(a >= b for a, b in itertools.pairwise(shares))
    if shape == "step":
        assert language_share_at(24, m) == 1.0  # flat between drops


def test_modality_mixing_follows_the_warmup() -> None:
    m = MixingConfig(language_share=0.7, warmup_steps=2000, shape="linear", sft_share=0.1)
    plans = [step_plan(s, m, seed=3) for s in range(10_000)]
    early = [p[0] for p in plans[:200]]
    late = [p[0] for p in plans[2000:]]
    assert early.count("text") / 200 > 0.9
    assert late.count("text") / len(late) == pytest.approx(0.7, abs=0.02)
    assert sum(p[1] for p in plans) / len(plans) == pytest.approx(0.1, abs=0.01)
    # every rank and a resumed run draw the same plan; another seed draws another
    assert [step_plan(s, m, seed=3) for s in range(9_999, -1, -1)][::-1] == plans
    assert [step_plan(s, m, seed=4) for s in range(2000, 2100)] != plans[2000:2100]
    stage1 = MixingConfig(language_share=0.0)
    assert {step_plan(s, stage1, 0)[0] for s in range(100)} == {"multimodal"}


def test_stage_configs_follow_the_spec() -> None:
    s1, s2, s3 = (load_config(f"stage{i}") for i in (1, 2, 3))
    s2small = load_config("stage2-1.3b")
    assert (s1.stage, s1.optim.lr, s1.optim.schedule, s1.optim.warmup_steps, s1.steps) == (1, 1e-3, "cosine", 128, 15000)
    assert (s1.data.global_batch, s1.data.seq_len, s1.data.packing) == (256, 512, False)
    assert (s2.optim.lr, s2.optim.schedule, s2.optim.warmup_steps, s2.steps, s2.data.global_batch) == \
        (4.2e-5, "step", 2000, 42000, 2304)
    assert (s2small.optim.lr, s2small.steps, s2small.data.global_batch, s2small.model) == (3e-5, 96000, 1024, "1.3b")
    assert s2.data.packing and s2.data.seq_len == 4096 and s2.mixing.language_share == 0.7
    assert (s3.optim.lr, s3.optim.schedule, s3.optim.warmup_steps, s3.steps, s3.data.packing) == \
        (2e-5, "cosine", 256, 10000, False)
    for c in (s1, s2, s3):
        assert c.optim.betas == (0.9, 0.95) and c.optim.grad_clip == 1.0 and c.optim.weight_decay == 0.0
    for tiny in sorted(CONFIG_DIR.glob("tiny-*.yaml")):
        assert load_config(tiny).model == "tiny"


def test_config_errors_name_the_key(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstage: 2\nmodel: tiny\nsteps: 5\noptim: {lr: 0.1, schedul: cosine}\n")
    with pytest.raises(ValidationError, match="schedul"):
        load_config(bad)
    bad.write_text("name: x\nstage: 4\nmodel: tiny\nsteps: 5\noptim: {lr: 0.1}\n")
    with pytest.raises(ValidationError, match="stage"):
        load_config(bad)
    short = load_config("tiny-stage2", steps=4)  # a shortened run keeps its warm-ups inside it
    assert short.steps == 4 and short.optim.warmup_steps <= 4 and short.mixing.warmup_steps <= 4
