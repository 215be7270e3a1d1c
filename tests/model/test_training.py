"""The tiny model learns: it overfits one mixed batch, trains under bf16 autocast, and text-only works."""

from __future__ import annotations

import torch

from model.vlm import MultiModalityCausalLM

from .conftest import picture


def batch(processor):
    convs = [
        [
            {"role": "user", "content": "<image>\nWhat colour is the square?"},
            {"role": "assistant", "content": "The square is red."},
        ],
        [
            {"role": "user", "content": "Compare <image> with <image>"},
            {"role": "assistant", "content": "The first is tall, the second is green."},
        ],
    ]
    ims = [[picture()], [picture(80, 160), picture(60, 60, (0, 200, 0))]]
    return processor(convs, ims, train=True)


def test_tiny_overfits_one_batch(processor, tiny_cfg):
    torch.manual_seed(0)
    m = MultiModalityCausalLM(tiny_cfg).train()
    m.set_trainable(3)
    b = batch(processor)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-3, betas=(0.9, 0.95))
    losses = []
    for _ in range(40):
        loss = m(**b).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[0] > 5.0  # ~ln(vocab) at init
    assert losses[-1] < 0.1, losses[-5:]
    # and the frozen SAM tower did not move while the adaptor's downsample convs did
    assert m.sam.blocks[0].attn.qkv.weight.grad is None
    m.eval()
    g = processor(
        [[{"role": "user", "content": "<image>\nWhat colour is the square?"}]], [[picture()]], train=False
    )
    out = m.generate(
        g["input_ids"],
        g["attention_mask"],
        g["pixel_values"],
        g["images_seq_mask"],
        g["images_emb_mask"],
        max_new_tokens=12,
        eos_id=processor.tokenizer.eos_id,
    )
    assert processor.decode(out[0]).strip() == "The square is red."


def test_stage1_trains_only_the_adaptor(processor, tiny_cfg):
    torch.manual_seed(0)
    m = MultiModalityCausalLM(tiny_cfg).train()
    m.set_trainable(1)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    m(**batch(processor)).loss.backward()
    opt.step()
    changed = {n for n, p in m.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith(("adaptor.", "sam.downsamples.")) for n in changed)


def test_bf16_autocast_forward_backward(processor, tiny_cfg):
    torch.manual_seed(0)
    m = MultiModalityCausalLM(tiny_cfg).train()
    b = batch(processor)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(**b)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    with torch.no_grad():
        ref = m(**b).loss
    assert abs(out.loss.item() - ref.item()) < 0.1  # bf16 is close to fp32 at init
    assert out.n_tokens == int((b["labels"][:, 1:] != -100).sum()) > 10


def test_text_only_batch(processor, tiny_cfg):
    torch.manual_seed(0)
    m = MultiModalityCausalLM(tiny_cfg)
    enc = [
        processor.encode_text("A short text sample."),
        processor.encode_text("Another, longer text sample here."),
    ]
    b = processor.collate_text(enc)
    assert b["pixel_values"] is None and b["attention_mask"][0].sum() < b["attention_mask"][1].sum()
    out = m(**b)
    assert out.logits.shape[:2] == b["input_ids"].shape and 5 < out.loss.item() < 8


def test_right_padding_is_invisible_to_real_tokens(processor, tiny_cfg):
    torch.manual_seed(0)
    m = MultiModalityCausalLM(tiny_cfg).eval()
    b = batch(processor)
    assert b["attention_mask"][0].sum() < b["attention_mask"].shape[1]  # row 0 is padded
    alone = processor(
        [
            [
                {"role": "user", "content": "<image>\nWhat colour is the square?"},
                {"role": "assistant", "content": "The square is red."},
            ]
        ],
        [[picture()]],
    )
    n = alone["input_ids"].shape[1]
    with torch.no_grad():
        in_batch = m(**b).logits[0, :n]
        single = m(**alone).logits[0]
    assert torch.allclose(in_batch, single, atol=1e-5)
