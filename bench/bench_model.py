"""Model speed side by side: KV-cache decoding vs full recomputation, activation checkpointing on vs off,
SAM relative-position attention through SDPA vs the explicit softmax of the reference code, and (only
where CUDA exists) a 1.3b bf16 forward+backward step with its peak memory.
"""

from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn.functional as F


def _best(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _decode(quick: bool) -> dict:
    from model.config import VLMConfig
    from model.vlm import MultiModalityCausalLM

    cfg = VLMConfig.from_name("tiny")
    llm = dataclasses.replace(cfg.llm, n_layer=4, n_embd=256, n_head=4, intermediate=688, vocab_size=4096)
    cfg = dataclasses.replace(cfg, llm=llm, aligner=dataclasses.replace(cfg.aligner, n_embed=256))
    torch.manual_seed(0)
    m = MultiModalityCausalLM(cfg).eval()
    T, new = (128, 16) if quick else (256, 32)
    ids = torch.randint(4, 4000, (1, T))
    res = {}
    for name, cache in (("cached", True), ("recompute", False)):
        s = _best(lambda c=cache: m.generate(ids, max_new_tokens=new, use_cache=c), 1 if quick else 2)
        res[f"{name}_tokens_per_s"] = round(new / s, 1)
    res["cache_speedup"] = round(res["cached_tokens_per_s"] / res["recompute_tokens_per_s"], 2)
    res["prompt_tokens"], res["new_tokens"] = T, new
    return res


def _train_step(quick: bool) -> dict:
    from model.config import VLMConfig
    from model.vlm import MultiModalityCausalLM

    cfg = VLMConfig.from_name("tiny")
    torch.manual_seed(0)
    m = MultiModalityCausalLM(cfg).train()
    B, T = 2, 96
    ids = torch.randint(4, 500, (B, T))
    seq = torch.zeros(B, T, dtype=torch.bool)
    seq[:, 4:20] = True
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones(B, T),
        "labels": ids,
        "pixel_values": torch.rand(B, 1, 3, 128, 128),
        "images_seq_mask": seq,
        "images_emb_mask": torch.ones(B, 1, 16, dtype=torch.bool),
    }
    res = {}
    for flag in (False, True):
        m.set_grad_checkpointing(flag)
        s = _best(lambda: m(**batch).loss.backward(), 3 if quick else 8)
        res[f"tiny_step_ms_{'ckpt' if flag else 'plain'}"] = round(1000 * s, 1)
    res["ckpt_cost_ratio"] = round(res["tiny_step_ms_ckpt"] / res["tiny_step_ms_plain"], 2)
    return res


def _sam_attention(quick: bool) -> dict:
    from model.sam import Attention, get_rel_pos

    g = 16 if quick else 24  # 7b's global blocks use 64 (4096 tokens); smaller here to spare shared CPUs
    torch.manual_seed(0)
    attn = Attention(dim=768, n_head=12, input_size=(g, g)).eval()
    x = torch.randn(1, g, g, 768)

    def explicit() -> torch.Tensor:  # the public code's formula: materialised logits + bias + softmax
        B, H, W, C = x.shape
        q, k, v = attn.qkv(x).view(B, H * W, 3, 12, -1).permute(2, 0, 3, 1, 4)
        logits = (q * 64**-0.5) @ k.transpose(-2, -1)
        rq = q.reshape(B, 12, H, W, -1)
        rh = torch.einsum("bnhwc,hkc->bnhwk", rq, get_rel_pos(H, H, attn.rel_pos_h))
        rw = torch.einsum("bnhwc,wkc->bnhwk", rq, get_rel_pos(W, W, attn.rel_pos_w))
        logits = logits.view(B, 12, H, W, H, W) + rh[..., :, None] + rw[..., None, :]
        y = F.softmax(logits.view(B, 12, H * W, H * W), -1) @ v
        return attn.proj(y.transpose(1, 2).reshape(B, H, W, C))

    with torch.no_grad():
        ours = _best(lambda: attn(x), 3)
        ref = _best(explicit, 3)
        diff = (attn(x) - explicit()).abs().max().item()
    return {
        "tokens": g * g,
        "sdpa_ms": round(1000 * ours, 1),
        "explicit_ms": round(1000 * ref, 1),
        "speedup": round(ref / ours, 2),
        "max_abs_diff": diff,
    }


def bf16_step(device: str = "cuda", preset: str = "1.3b", B: int = 2, T: int = 1024) -> dict:
    """One bf16-autocast forward+backward at stage 3: one image per sequence, time and peak memory.

    On CUDA with the defaults this is the issue's GPU check (1.3b, 576 image tokens in 1024).
    """
    from model.config import VLMConfig
    from model.vlm import MultiModalityCausalLM

    dev = torch.device(device)
    cfg = VLMConfig.from_name(preset)
    m = MultiModalityCausalLM(cfg).to(dev).train()
    m.set_trainable(3)
    n, S = cfg.image_tokens, cfg.image_size
    ids = torch.randint(4, cfg.llm.vocab_size, (B, T), device=dev)
    seq = torch.zeros(B, T, dtype=torch.bool, device=dev)
    seq[:, 8 : 8 + n] = True
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones(B, T, device=dev),
        "labels": ids,
        "pixel_values": torch.rand(B, 1, 3, S, S, device=dev),
        "images_seq_mask": seq,
        "images_emb_mask": torch.ones(B, 1, n, dtype=torch.bool, device=dev),
    }
    cuda = dev.type == "cuda"
    losses = []

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = m(**batch).loss
        loss.backward()
        m.zero_grad(set_to_none=True)
        losses.append(loss.detach().item())
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    s = _best(step, 3)
    return {
        "device": torch.cuda.get_device_name() if cuda else device,
        "preset": preset,
        "batch": [B, T],
        "step_s": round(s, 3),
        "tokens_per_s": round(B * T / s),
        "loss": round(losses[-1], 3),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    }


def run(quick: bool) -> dict:
    # one intra-op thread: on a shared 2-core machine two threads spin under load and the timings scatter
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = {
            "torch_threads": 1,
            "decode": _decode(quick),
            "train_step": _train_step(quick),
            "sam_global_attention": _sam_attention(quick),
        }
    finally:
        torch.set_num_threads(before)
    res["gpu_1_3b_bf16_step"] = bf16_step() if torch.cuda.is_available() else "no CUDA device here"
    return res


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=1))
