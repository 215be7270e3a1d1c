"""Processor: padded image squares, chat template, placeholder expansion, label masks, padding."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from model.processor import DEFAULT_SYSTEM, VLChatProcessor

from .conftest import picture


def test_image_is_resized_and_centred_on_the_pad_colour(processor):
    x = processor.preprocess_image(picture(200, 100))  # wide: 128 x 64 content, 32 rows of pad above/below
    assert x.shape == (3, 128, 128) and x.dtype == torch.float32
    pad = torch.tensor([122, 116, 104]) / 255
    assert torch.allclose(x[:, 0, 0], pad) and torch.allclose(x[:, 127, 64], pad)
    assert torch.allclose(x[:, 31, 64], pad) and not torch.allclose(x[:, 32, 1], pad)
    assert torch.allclose(x[:, 64, 64], torch.tensor([220, 30, 30]) / 255, atol=0.02)  # the red square
    tall = processor.preprocess_image(picture(50, 400))
    assert torch.allclose(tall[:, 64, 0], pad) and torch.allclose(
        tall[:, 64, 64], torch.tensor([220, 30, 30]) / 255, atol=0.02
    )


def test_transparent_and_odd_images(processor):
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # fully transparent -> pad colour
    x = processor.preprocess_image(rgba)
    assert torch.allclose(x[:, 64, 64], torch.tensor([122, 116, 104]) / 255, atol=1 / 255)
    sliver = processor.preprocess_image(Image.new("L", (1000, 1), 255))  # 1 pixel high: kept >= 14 rows
    assert (sliver[0, :, 64] > 0.99).sum() == 14
    assert processor.preprocess_image(Image.new("RGB", (1, 1))).shape == (3, 128, 128)
    grey16 = processor.preprocess_image(Image.new("I;16", (64, 64), 32768))  # half of 16-bit range
    assert abs(grey16[0, 64, 64].item() - 0.5) < 0.01
    cmyk = processor.preprocess_image(Image.new("CMYK", (64, 64), (0, 255, 255, 0)))  # red
    assert torch.allclose(cmyk[:, 64, 64], torch.tensor([1.0, 0.0, 0.0]), atol=0.01)


def test_template_and_label_masks(processor, tokenizer):
    conv = [
        {"role": "user", "content": "<image>\nWhat is it?"},
        {"role": "assistant", "content": "A red box."},
        {"role": "user", "content": "Sure?"},
        {"role": "assistant", "content": "Yes."},
    ]
    b = processor([conv], [[picture()]], train=True)
    ids, labels = b["input_ids"][0].tolist(), b["labels"][0].tolist()
    assert ids[0] == tokenizer.bos_id
    n = processor.image_tokens
    assert ids.count(tokenizer.image_id) == n and b["images_seq_mask"][0].sum() == n
    first = ids.index(tokenizer.image_id)
    assert ids[first : first + n] == [tokenizer.image_id] * n  # one contiguous run per image
    text = tokenizer.decode(ids, skip_special_tokens=False).replace("<image_placeholder>", "")
    assert text == (
        f"<｜begin▁of▁sentence｜>{DEFAULT_SYSTEM}\n\nUser: \nWhat is it?\n\nAssistant: A red box."
        "<｜end▁of▁sentence｜>User: Sure?\n\nAssistant: Yes.<｜end▁of▁sentence｜>"
    )
    supervised = [t for t in labels if t != -100]
    assert (
        tokenizer.decode(supervised, skip_special_tokens=False)
        == " A red box.<｜end▁of▁sentence｜> Yes.<｜end▁of▁sentence｜>"
    )
    assert all(labels[i] == -100 for i in range(len(ids)) if b["images_seq_mask"][0, i])


def test_batch_padding_sides_and_several_images(processor, tokenizer):
    convs = [
        [{"role": "user", "content": "<image> vs <image>"}, {"role": "assistant", "content": "Same."}],
        [{"role": "user", "content": "No image here."}, {"role": "assistant", "content": "Fine."}],
    ]
    ims = [[picture(), picture(30, 90)], []]
    tr = processor(convs, ims, train=True)
    assert tr["pixel_values"].shape == (2, 2, 3, 128, 128)
    assert (
        tr["images_emb_mask"].tolist()[1] == [[False] * 16, [False] * 16] and tr["images_emb_mask"][0].all()
    )
    assert tr["images_seq_mask"].sum() == tr["images_emb_mask"].sum() == 32
    assert tr["attention_mask"][1, 0] == 1 and tr["attention_mask"][1, -1] == 0  # right padding
    assert tr["input_ids"][1, -1] == tokenizer.pad_id and tr["labels"][1, -1] == -100
    gen = processor([c[:1] for c in convs], ims, train=False)
    assert gen["attention_mask"][1, 0] == 0 and gen["attention_mask"][1, -1] == 1  # left padding
    assert tokenizer.decode(gen["input_ids"][1, -3:].tolist()).endswith("Assistant:")


def test_placeholder_count_must_match(processor):
    with pytest.raises(ValueError, match="1 image placeholders but 2 images"):
        processor([[{"role": "user", "content": "<image>"}]], [[picture(), picture()]])
    with pytest.raises(ValueError, match="unknown role"):
        processor([[{"role": "robot", "content": "hi"}]])
    with pytest.raises(ValueError, match="image tokens beyond max_length"):
        processor(
            [[{"role": "user", "content": "long text " * 30 + "<image>"}]], [[picture()]], max_length=64
        )


def test_special_strings_in_data_stay_text(processor, tokenizer):
    b = processor([[{"role": "user", "content": "<｜end▁of▁sentence｜> <image_placeholder_x>"}]], train=False)
    ids = b["input_ids"][0].tolist()
    assert tokenizer.eos_id not in ids and tokenizer.image_id not in ids


def test_encode_text_supervises_everything(processor, tokenizer):
    enc = processor.encode_text("plain text")
    assert enc["input_ids"][0] == tokenizer.bos_id and enc["input_ids"][-1] == tokenizer.eos_id
    assert enc["labels"] == enc["input_ids"]
    b = processor.collate_text([enc, processor.encode_text("x")], max_length=4)
    assert b["input_ids"].shape == (2, 4) and b["labels"][1, -1] == -100


def test_1_3b_preset_processor(tokenizer):
    from model.config import VLMConfig

    p = VLChatProcessor(tokenizer, VLMConfig.from_name("1.3b"))
    x = p.preprocess_image(picture(100, 300))
    assert x.shape == (3, 384, 384) and torch.allclose(x[:, 0, 0], torch.tensor([127.0] * 3) / 255)
    b = p([[{"role": "user", "content": "<image>"}]], [[picture()]], train=False)
    assert b["images_seq_mask"].sum() == 576
