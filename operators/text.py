"""Text corpus sources: JSONL and Parquet records become text-only samples (the language stream).

One file is one input unit; each record becomes a sample or a rejection with its line/row number.
Records with `messages` become text-only SFT samples.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from operators.base import OperatorConfig, Resources, Source, register
from operators.sample import Rejection, Sample, content_key


def expand_inputs(patterns: list[str], suffixes: tuple[str, ...]) -> list[str]:
    """Files named directly, inside folders (recursively) or matched by globs; sorted, deduplicated."""
    found: set[str] = set()
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            matches = [m for m in glob.glob(pat, recursive=True) if os.path.isfile(m)]
            if not matches:
                raise ValueError(f"inputs: pattern {pat!r} matches no file")
            found.update(matches)
        elif os.path.isdir(pat):
            found.update(str(p) for p in Path(pat).rglob("*") if p.is_file() and p.name.endswith(suffixes))
        elif os.path.isfile(pat):
            found.add(pat)
        else:
            raise ValueError(f"inputs: {pat!r} does not exist")
    return sorted(found)


class TextConfig(OperatorConfig):
    inputs: list[str] = Field(description="files, folders or globs")
    text_field: str = "text"
    messages_field: str = "messages"
    lang_field: str | None = "lang"
    min_chars: int = Field(1, ge=0)
    max_chars: int = Field(1_000_000, ge=1)
    license: str = "unknown"
    stage: list[int] = Field(default_factory=lambda: [2])

    @field_validator("inputs", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class _TextSource(Source):
    Config = TextConfig
    resources = Resources(batch_size=1)
    suffixes: tuple[str, ...] = ()
    config: TextConfig

    def list_inputs(self) -> list[str]:
        return expand_inputs(self.config.inputs, self.suffixes)

    def _sample(self, path: str, n: int, record: Any) -> Sample | Rejection:
        cfg = self.config
        unit = f"{path}:{n}"
        key = content_key("text", path, str(n))
        if not isinstance(record, dict):
            return Rejection(path, self.name, "not_an_object", f"record {n} is {type(record).__name__}", key)
        messages = record.get(cfg.messages_field)
        text = record.get(cfg.text_field)
        lang = record.get(cfg.lang_field) if cfg.lang_field else None
        prov = {"input": path, "path": path, "record": n, "license": record.get("license", cfg.license)}
        if messages is not None:
            if not _valid_messages(messages):
                return Rejection(path, self.name, "invalid_messages", f"record {n}", key)
            size = sum(len(m["content"]) for m in messages)
            if size > cfg.max_chars:
                return Rejection(path, self.name, "too_long", f"record {n}: {size} chars", key)
            return Sample(key, path, "text", "text_sft", "text_sft", [3], messages=messages,
                          lang=lang if isinstance(lang, str) else None, provenance=prov)
        if not isinstance(text, str) or len(text.strip()) < max(cfg.min_chars, 1):
            return Rejection(path, self.name, "empty_text", f"{unit}: no usable {cfg.text_field!r}", key)
        if len(text) > cfg.max_chars:
            return Rejection(path, self.name, "too_long", f"{unit}: {len(text)} chars > {cfg.max_chars}", key)
        if "\x00" in text:
            return Rejection(path, self.name, "binary_text", f"{unit}: NUL characters", key)
        return Sample(key, path, "text", "text", "text_only", list(cfg.stage), text=text,
                      lang=lang if isinstance(lang, str) else None, provenance=prov)


def _valid_messages(messages: Any) -> bool:
    if not isinstance(messages, list) or not messages:
        return False
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
            return False
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            return False
    return messages[-1]["role"] == "assistant"


@register("text.jsonl")
class JsonlTextReader(_TextSource):
    """JSON Lines: one object per line with a text field (or messages for text-only SFT)."""

    suffixes = (".jsonl", ".json", ".jsonl.txt")

    def read(self, input: str) -> Iterable[Sample | Rejection]:
        limit = self.config.max_chars * 4 + 1024  # bytes: a line past this cannot hold a valid record
        with open(input, "rb") as f:
            for n, raw in enumerate(_lines(f, limit), start=1):
                key = content_key("text", input, str(n))
                if raw is None:
                    yield Rejection(input, self.name, "too_long", f"line {n} longer than {limit} bytes", key)
                    continue
                if not raw.strip():
                    continue  # blank lines are not records
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield Rejection(input, self.name, "undecodable", f"line {n}: {e}", key)
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    yield Rejection(input, self.name, "invalid_json", f"line {n}: {e.msg} at column {e.colno}", key)
                    continue
                yield self._sample(input, n, record)


def _lines(f: Any, limit: int) -> Iterable[bytes | None]:
    """Lines of a binary file; None for a line longer than `limit` (skipped without loading it)."""
    while True:
        line = f.readline(limit)
        if not line:
            return
        if len(line) >= limit and not line.endswith(b"\n"):
            while True:  # drain the rest of the over-long line
                more = f.readline(limit)
                if not more or more.endswith(b"\n"):
                    break
            yield None
            continue
        yield line


@register("text.parquet")
class ParquetTextReader(_TextSource):
    """Parquet files with a text column (row groups stream; the file is never loaded whole)."""

    suffixes = (".parquet",)

    def read(self, input: str) -> Iterable[Sample | Rejection]:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(input)
        except Exception as e:
            raise_reject = Rejection(input, self.name, "unreadable_parquet", f"{type(e).__name__}: {e}")
            yield raise_reject
            return
        names = set(pf.schema_arrow.names)
        if self.config.text_field not in names and self.config.messages_field not in names:
            yield Rejection(input, self.name, "missing_column",
                            f"no {self.config.text_field!r} column; columns: {', '.join(sorted(names))}")
            return
        n = 0
        for batch in pf.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                n += 1
                yield self._sample(input, n, record)
