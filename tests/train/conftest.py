"""Fixtures for the trainer tests: synthetic shards in the engine's format and one trained tokenizer."""

from __future__ import annotations

import pytest
import torch

from tests.train.shardgen import write_shards


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Two cores shared by several test processes: one torch thread avoids oversubscription stalls
    (a tiny-model step takes 60 ms with one thread, seconds with two on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> object:
    """48 text + 48 image samples per pretraining stream, 16 per shard (3 shards per stream)."""
    return write_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="session")
def processor(shards):
    from model.config import VLMConfig
    from model.processor import VLChatProcessor
    from model.tokenizer import train_tokenizer

    tars = sorted(str(p) for p in (shards / "shards").glob("*/*.tar"))
    tok = train_tokenizer(tars, vocab_size=512, from_files=True)
    return VLChatProcessor(tok, VLMConfig.from_name("tiny"))
