"""Generation: the KV cache equals full recomputation, left padding is invisible, sampling controls work."""

from __future__ import annotations

import pytest
import torch

from model.generation import SamplingConfig, apply_repetition_penalty, next_token, top_p_filter
from model.vlm import MultiModalityCausalLM

from .conftest import picture


@pytest.fixture(scope="module")
def model64(tiny_cfg):
    torch.manual_seed(0)
    # float64 so that cached and recomputed logits agree to ~1e-12 and argmax ties cannot flip
    return MultiModalityCausalLM(tiny_cfg).double().eval()


def prompts(processor):
    convs = [
        [{"role": "user", "content": "<image>\nWhat is the red shape?"}],
        [{"role": "user", "content": "Describe both: <image> and <image>"}],
        [{"role": "user", "content": "Say hello."}],
    ]
    b = processor(convs, [[picture()], [picture(80, 160), picture(50, 50, (0, 200, 0))], []], train=False)
    b["pixel_values"] = b["pixel_values"].double()
    b.pop("labels")
    return b


def test_kv_cache_equals_full_recomputation(model64, processor, tokenizer):
    b = prompts(processor)
    assert b["attention_mask"][:, 0].tolist() == [0, 1, 0]  # left padded, the 2-image prompt is longest
    kw = {"max_new_tokens": 12, "eos_id": None, "pad_id": tokenizer.pad_id}
    cached = model64.generate(**b, use_cache=True, **kw)
    full = model64.generate(**b, use_cache=False, **kw)
    assert cached.shape == (3, 12) and torch.equal(cached, full)
    # and with sampling under the same random stream
    skw = dict(kw, do_sample=True, temperature=0.9, top_p=0.9, repetition_penalty=1.3)
    s1 = model64.generate(**b, use_cache=True, generator=torch.Generator().manual_seed(7), **skw)
    s2 = model64.generate(**b, use_cache=False, generator=torch.Generator().manual_seed(7), **skw)
    assert torch.equal(s1, s2)


def test_cached_logits_match_a_single_forward(model64, processor):
    b = prompts(processor)
    from model.llm import KVCache

    emb = model64.prepare_inputs_embeds(
        b["input_ids"], b["pixel_values"], b["images_seq_mask"], b["images_emb_mask"]
    )
    am = b["attention_mask"]
    full = model64.llm(inputs_embeds=emb, attention_mask=am)
    cache = KVCache(model64.config.llm.n_layer, emb.shape[1])
    T0 = emb.shape[1] - 5
    parts = [model64.llm(inputs_embeds=emb[:, :T0], attention_mask=am[:, :T0], kv_cache=cache)]
    for t in range(T0, emb.shape[1]):
        parts.append(
            model64.llm(inputs_embeds=emb[:, t : t + 1], attention_mask=am[:, : t + 1], kv_cache=cache)
        )
    got = torch.cat(parts, 1)
    real = am.bool()
    assert torch.allclose(got[real], full[real], atol=1e-9)


def test_left_padding_does_not_change_the_answer(model64, processor, tokenizer):
    b = prompts(processor)
    kw = {"max_new_tokens": 8, "eos_id": None, "pad_id": tokenizer.pad_id}
    batched = model64.generate(**b, **kw)
    single = processor([[{"role": "user", "content": "Say hello."}]], train=False)
    single.pop("labels")
    alone = model64.generate(**single, **kw)
    assert torch.equal(batched[2], alone[0])


def test_eos_stops_and_pads(model64, processor, tokenizer):
    b = prompts(processor)
    first = model64.generate(**b, max_new_tokens=1)[:, 0]
    eos = int(first[0])  # pretend the first row's first token is EOS
    out = model64.generate(**b, max_new_tokens=6, eos_id=eos, pad_id=tokenizer.pad_id)
    assert out[0, 0] == eos and (out[0, 1:] == tokenizer.pad_id).all()


def test_top_p_and_repetition_penalty():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.1)).sum() == 1  # always at least one token
    pen = apply_repetition_penalty(torch.tensor([[2.0, -2.0, 1.0]]), torch.tensor([[True, True, False]]), 2.0)
    assert pen.tolist() == [[1.0, -4.0, 1.0]]
    seen = torch.tensor([[True, False, False, False]])
    assert next_token(torch.tensor([[3.0, 2.9, 0.0, 0.0]]), seen, SamplingConfig(repetition_penalty=1.2)) == 1
    g = torch.Generator().manual_seed(0)
    draws = [
        int(next_token(logits, seen & False, SamplingConfig(do_sample=True, top_p=0.7), g))
        for _ in range(200)
    ]
    assert set(draws) == {0, 1}
    with pytest.raises(ValueError):
        SamplingConfig(do_sample=True, temperature=0)
