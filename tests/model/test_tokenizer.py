"""Tokenizer: byte-level BPE trained on strings, files and shards; specials; save/load by path."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from model.tokenizer import BOS, EOS, IMAGE, PAD, VLTokenizer, iter_texts, train_tokenizer

from .conftest import CORPUS


def test_trained_tokenizer_specials_and_round_trip(tokenizer):
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.image_id, tokenizer.pad_id) == (0, 1, 2, 3)
    assert 300 < tokenizer.vocab_size <= 600
    for text in ["The quick brown fox.", "ünïcödé ✓ 数据 🚀", "  spaces\n\ttabs  "]:
        assert tokenizer.decode(tokenizer.encode(text)) == text  # byte level: nothing is lost
    # merges were learned: frequent words take far fewer tokens than bytes
    assert len(tokenizer.encode("The quick brown fox jumps over the lazy dog.")) < 20


def test_save_and_load_by_path(tokenizer, tmp_path):
    p = tokenizer.save(tmp_path / "tokenizer.json")
    again = VLTokenizer.from_file(p)
    assert again.encode("A bar chart shows sales.") == tokenizer.encode("A bar chart shows sales.")
    assert VLTokenizer.from_file(tmp_path).image_id == tokenizer.image_id  # a directory works too
    with pytest.raises(FileNotFoundError):
        VLTokenizer.from_file(tmp_path / "missing.json")


def test_train_from_files_and_shards(tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(CORPUS[:5]) * 10)
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in CORPUS[:5]) + "\n\n")
    shard = tmp_path / "s-000000.tar"
    with tarfile.open(shard, "w") as tf:
        for i, rec in enumerate(
            [
                {"key": "k0", "text": "shard text sample"},
                {
                    "key": "k1",
                    "messages": [
                        {"role": "user", "content": "question <image>"},
                        {"role": "assistant", "content": "answer"},
                    ],
                },
            ]
        ):
            data = json.dumps(rec).encode()
            info = tarfile.TarInfo(f"k{i}.json")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        img = tarfile.TarInfo("k1.0.png")
        img.size = 4
        tf.addfile(img, io.BytesIO(b"\x89PNG"))
    paths = [tmp_path / "a.txt", tmp_path / "b.jsonl", shard]
    texts = list(iter_texts(paths))
    assert texts[-3:] == ["shard text sample", "question <image>", "answer"] and len(texts) == 1 + 5 + 3
    tok = train_tokenizer(paths, vocab_size=300, from_files=True)
    assert tok.vocab_size <= 300 and tok.decode(tok.encode("shard text")) == "shard text"


def test_public_style_tokenizer_gets_missing_specials(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.add_special_tokens([BOS, EOS])  # like a tokenizer saved without the image and pad tokens
    tok = VLTokenizer(raw)
    assert tok.bos_id == 0 and tok.eos_id == 1 and {tok.image_id, tok.pad_id} == {2, 3}
    assert raw.token_to_id(IMAGE) == tok.image_id and raw.token_to_id(PAD) == tok.pad_id
