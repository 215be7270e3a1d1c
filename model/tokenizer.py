"""Byte-level BPE tokenizer (HF `tokenizers`) with the DeepSeek-VL special tokens.

Train on text files, JSONL, WebDataset shards (their `text` / `messages`) or any iterator of strings;
save and load `tokenizer.json` by path. Text is always encoded literally: a special-token string inside
user data stays text and never becomes a control id.
"""

from __future__ import annotations

import json
import logging
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

log = logging.getLogger(__name__)

# the strings of the public DeepSeek tokenizer, so its tokenizer.json loads through the same class
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
IMAGE = "<image_placeholder>"
PAD = "<｜▁pad▁｜>"
SPECIALS = (BOS, EOS, IMAGE, PAD)


class VLTokenizer:
    """A `tokenizers.Tokenizer` plus the ids the processor and the trainer need."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        missing = [s for s in SPECIALS if tokenizer.token_to_id(s) is None]
        if missing:  # e.g. a public tokenizer without a pad token: append them after the vocab
            log.info("adding missing special tokens %s", missing)
            tokenizer.add_special_tokens(missing)
        tokenizer.encode_special_tokens = True  # special strings in data are encoded as plain text
        self.tok = tokenizer
        self.bos_id, self.eos_id, self.image_id, self.pad_id = (self._id(s) for s in (BOS, EOS, IMAGE, PAD))

    def _id(self, s: str) -> int:
        i = self.tok.token_to_id(s)
        assert i is not None
        return i

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Text -> ids, no BOS/EOS added."""
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        tmp = path.with_suffix(".json.tmp")
        self.tok.save(str(tmp))
        tmp.replace(path)
        return path

    @classmethod
    def from_file(cls, path: str | Path) -> VLTokenizer:
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer.json at {path}")
        return cls(Tokenizer.from_file(str(path)))


def iter_texts(paths: Iterable[str | Path]) -> Iterator[str]:
    """Strings from .txt/.md files (whole file), .jsonl (`text`), or WebDataset .tar shards (`.json`
    members: `text`, or the contents of `messages`)."""
    for p in map(Path, paths):
        if p.suffix == ".tar":
            with tarfile.open(p) as tf:
                for m in tf:
                    if m.isfile() and m.name.endswith(".json"):
                        f = tf.extractfile(m)
                        if f is not None:
                            yield from _record_texts(json.loads(f.read()))
        elif p.suffix == ".jsonl":
            with p.open(encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.strip():
                        yield from _record_texts(json.loads(line))
        else:
            yield p.read_text(encoding="utf-8", errors="replace")


def _record_texts(rec: dict) -> Iterator[str]:
    if rec.get("text"):
        yield rec["text"]
    for msg in rec.get("messages") or []:
        if msg.get("content"):
            yield msg["content"]


def train_tokenizer(
    texts: Iterable[str] | Iterable[str | Path],
    vocab_size: int = 8192,
    min_frequency: int = 2,
    from_files: bool = False,
) -> VLTokenizer:
    """Train a byte-level BPE. `texts` is an iterator of strings, or of paths when from_files=True."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    source = iter_texts(texts) if from_files else iter(texts)  # type: ignore[arg-type]
    tok.train_from_iterator(source, trainer=trainer)
    return VLTokenizer(tok)
