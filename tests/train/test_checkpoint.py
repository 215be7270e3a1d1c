"""Checkpoints: atomic, keep the last K, round-trip model + optimizer, readable by model.checkpoint."""

from __future__ import annotations

import json

import torch

from model.checkpoint import load_model
from model.config import VLMConfig
from model.vlm import MultiModalityCausalLM
from train import checkpoint as ckpt


def _model_and_opt() -> tuple[MultiModalityCausalLM, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = MultiModalityCausalLM(VLMConfig.from_name("tiny"))
    model.set_trainable(1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.95))
    return model, opt


def _one_step(model, opt) -> None:
    ids = torch.randint(0, 500, (2, 40))
    seq = torch.zeros(2, 40, dtype=torch.bool)
    seq[:, 2:18] = True
    out = model(ids, labels=ids, pixel_values=torch.rand(2, 1, 3, 128, 128), images_seq_mask=seq,
                images_emb_mask=torch.ones(2, 1, 16, dtype=torch.bool))
    out.loss.backward()
    opt.step()
    opt.zero_grad()


def test_keep_last_k_and_ignore_half_written(tmp_path) -> None:
    model, opt = _model_and_opt()
    d = tmp_path / "checkpoints"
    for step in (10, 20, 30, 40, 50):
        ckpt.save(d, step, model, opt, {"loader": [{}]}, keep_last=2, model_config=model.config.to_dict())
    assert [p.name for p in ckpt.checkpoints(d)] == ["step-00000040", "step-00000050"]
    (d / "step-00000060.tmp").mkdir()  # a run killed while writing
    (d / "step-00000070").mkdir()  # no state.json: not complete either
    assert ckpt.latest(d).name == "step-00000050"
    assert json.loads((d / "step-00000050" / "state.json").read_text())["step"] == 50


def test_round_trip_and_model_loader_compatibility(tmp_path) -> None:
    model, opt = _model_and_opt()
    _one_step(model, opt)
    path = ckpt.save(tmp_path, 1, model, opt, {"loader": [{"text": {"slots": {"0": [0, 3]}}}]}, keep_last=1,
                     model_config=model.config.to_dict())
    other, other_opt = _model_and_opt()
    _one_step(other, other_opt)
    _one_step(other, other_opt)
    state = ckpt.restore(path, other, other_opt)
    assert state["step"] == 1 and state["loader"][0]["text"]["slots"]["0"] == [0, 3]
    for (n, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    sa, sb = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) for k in sa)
    # the same directory is a model directory for `dsvl-data chat` / load_model
    loaded = load_model(path)
    assert torch.equal(loaded.adaptor.state_dict()[next(iter(loaded.adaptor.state_dict()))],
                       model.adaptor.state_dict()[next(iter(model.adaptor.state_dict()))])
