"""Two CPU processes (gloo): DDP gives the gradients of one process on the whole batch; FSDP2 trains,
and its checkpoint resumes under DDP."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from model.checkpoint import load_model
from model.config import VLMConfig
from model.vlm import MultiModalityCausalLM


def _model() -> MultiModalityCausalLM:
    torch.manual_seed(0)
    model = MultiModalityCausalLM(VLMConfig.from_name("tiny"))
    model.set_trainable(2)
    return model


def _batches() -> list[dict]:
    """A multimodal and a text-only batch of 4 equal rows (equal supervised tokens per rank)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(4, 500, (4, 40), generator=g)
    seq = torch.zeros(4, 40, dtype=torch.bool)
    seq[:, 2:18] = True
    labels = ids.masked_fill(seq, -100)
    mm = {"input_ids": ids, "labels": labels, "images_seq_mask": seq,
          "pixel_values": torch.rand(4, 1, 3, 128, 128, generator=g),
          "images_emb_mask": torch.ones(4, 1, 16, dtype=torch.bool)}
    return [mm, {"input_ids": ids, "labels": ids}]


def _grads(model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()
    return {n.removeprefix("module."): p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, world: int, port: int, out: str, shards: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from tests.train.shardgen import tiny
    from train.distributed import setup, wrap
    from train.loop import train

    env = setup()
    ddp = wrap(_model(), "ddp", env)
    grads = [_grads(ddp, {k: v[2 * rank: 2 * rank + 2] for k, v in b.items()}) for b in _batches()]
    if rank == 0:
        torch.save(grads, os.path.join(out, "ddp_grads.pt"))
    res = train(tiny(2, steps=3, distributed="fsdp", data__seq_len=128, mixing={"language_share": 0.5, "warmup_steps": 0},
                     checkpoint={"every": 2, "keep_last": 2}, eval={"every": 1000, "batches": 1, "mc_path": None}),
                shards, os.path.join(out, "fsdp"))
    # a run stopped after step 2 resumes under DDP: full state dicts make the strategies interchangeable
    cut = os.path.join(out, "cut")
    if rank == 0:
        shutil.copytree(os.path.join(out, "fsdp", "checkpoints", "step-00000002"),
                        os.path.join(cut, "checkpoints", "step-00000002"))
        shutil.copy(os.path.join(out, "fsdp", "tokenizer.json"), cut)
    dist.barrier()
    again = train(tiny(2, steps=3, distributed="ddp", data__seq_len=128,
                       mixing={"language_share": 0.5, "warmup_steps": 0},
                       eval={"every": 1000, "batches": 1, "mc_path": None}), shards, cut, resume=True)
    if rank == 0:
        with open(os.path.join(out, "fsdp.json"), "w") as f:
            json.dump({"fsdp": res, "ddp_resumed": again}, f)
    dist.destroy_process_group()


def test_ddp_gradients_match_one_process_and_fsdp_trains(shards, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork skips re-importing torch in each child (seconds on a loaded 2-core machine); with a live Ray
    # session (other areas' tests in the same pytest run) its threads make fork unsafe, so spawn then
    ray = sys.modules.get("ray")
    method = "spawn" if ray is not None and ray.is_initialized() else "fork"
    mp.start_processes(_worker, args=(2, port, str(tmp_path), str(shards)), nprocs=2, join=True,
                       start_method=method)

    model = _model()
    ref = [_grads(model, b) for b in _batches()]
    ddp = torch.load(tmp_path / "ddp_grads.pt")
    for one, two in zip(ref, ddp, strict=True):
        # the text-only batch leaves the adaptor without gradients in both (DDP's unused parameters)
        assert one.keys() == two.keys() and len(one) > 10
        for name in one:
            torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(n.startswith("adaptor.") for n in ref[0]) and not any(n.startswith("adaptor.") for n in ref[1])

    both = json.loads((tmp_path / "fsdp.json").read_text())
    res = both["fsdp"]
    assert both["ddp_resumed"]["losses"] == pytest.approx(res["losses"][2:], rel=1e-4)
    assert res["steps"] == 3 and len(res["losses"]) == 3 and all(math.isfinite(x) for x in res["losses"])
    assert set(res["streams"]) == {"text", "multimodal"}
    ckpts = sorted((tmp_path / "fsdp" / "checkpoints").iterdir())
    assert [p.name for p in ckpts] == ["step-00000002", "step-00000003"]
    state = json.loads((ckpts[-1] / "state.json").read_text())
    assert len(state["loader"]) == 2  # each rank's data position
    full = load_model(ckpts[-1])  # FSDP shards gathered into a full, loadable model
    assert sum(p.numel() for p in full.parameters()) == sum(p.numel() for p in _model().parameters()) - \
        (_model().llm.tok_embeddings.weight.numel() + _model().llm.lm_head.weight.numel()) + \
        full.llm.tok_embeddings.weight.numel() + full.llm.lm_head.weight.numel()
