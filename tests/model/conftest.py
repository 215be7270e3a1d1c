"""Shared fixtures for the model tests: one trained tokenizer, the tiny config, a processor, a picture."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A bar chart shows sales rising from 2021 to 2023.",
    "User: What is in the image?\n\nAssistant: A red square on a blue background.",
    "Transcribe the printed text in the document page.",
    "def plot(x):\n    return plt.plot(x)\n",
] * 40


@pytest.fixture(autouse=True)
def one_torch_thread():
    # the 2-core machine is shared: two intra-op threads under load spin and run 10-30x slower
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer():
    from model.tokenizer import train_tokenizer

    return train_tokenizer(CORPUS, vocab_size=600)


@pytest.fixture(scope="session")
def tiny_cfg(tokenizer):
    from model.config import VLMConfig

    return VLMConfig.from_name("tiny", vocab_size=tokenizer.vocab_size)


@pytest.fixture()
def processor(tokenizer, tiny_cfg):
    from model.processor import VLChatProcessor

    return VLChatProcessor(tokenizer, tiny_cfg)


def picture(w: int = 200, h: int = 100, color=(220, 30, 30)) -> Image.Image:
    im = Image.new("RGB", (w, h), (20, 40, 200))
    ImageDraw.Draw(im).rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=color)
    return im
