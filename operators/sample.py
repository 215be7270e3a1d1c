"""The items that flow between operators: samples, rejections and per-input markers.

A Sample follows the Sample JSON contract of DESIGN.md; its media travel beside it as bytes.
Rows are encoded as a fixed Arrow schema so any operator can run inside Ray Data unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Union

import pyarrow as pa

# Mixture categories (spec Table 1 for pretraining, Table 2 for SFT).
PRETRAIN_CATEGORIES = (
    "interleaved",
    "caption",
    "table_chart",
    "web_code",
    "scene_text_ocr",
    "document_ocr",
    "text_only",
)
SFT_CATEGORIES = ("inhouse_taxonomy", "general_instruct", "table_chart", "web_code", "text_sft")

ROW_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # "input" | "sample" | "rejection" | "done"
        ("key", pa.string()),
        ("input", pa.string()),
        ("operator", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("json", pa.string()),
        ("images", pa.list_(pa.binary())),
    ]
)


def content_key(prefix: str, *parts: str | bytes, n: int = 16) -> str:
    """A deterministic sample key from content or source identity: `<prefix>-<sha256[:n]>`."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8") if isinstance(p, str) else p)
        h.update(b"\x00")
    return f"{prefix}-{h.hexdigest()[:n]}"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Sample:
    """One candidate training sample (Sample JSON contract) plus its image bytes.

    `images` holds member names ("0.png", "1.jpg") in image order; `image_bytes` the matching data.
    `stage` lists the training stages (1, 2, 3) the sample may feed; `category` is its mixture class.
    """

    key: str
    input: str
    source: str
    task: str
    category: str
    stage: list[int]
    text: str | None = None
    messages: list[dict[str, str]] | None = None
    images: list[str] = field(default_factory=list)
    image_bytes: list[bytes] = field(default_factory=list)
    taxonomy: list[dict[str, Any]] = field(default_factory=list)  # [{"id", "confidence", "source"}]
    lang: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def modality(self) -> str:
        return "multimodal" if self.images else "text"

    def add_image(self, data: bytes, ext: str) -> str:
        """Append one image; returns its member name (e.g. "0.png")."""
        name = f"{len(self.images)}.{ext.lower().lstrip('.')}"
        self.images.append(name)
        self.image_bytes.append(data)
        return name

    def to_json(self) -> dict[str, Any]:
        """The shard's `<key>.json` member: everything but the image bytes."""
        out: dict[str, Any] = {
            "key": self.key,
            "source": self.source,
            "task": self.task,
            "category": self.category,
            "stage": self.stage,
            "images": self.images,
            "taxonomy": self.taxonomy,
            "lang": self.lang,
            "scores": self.scores,
            "provenance": self.provenance,
        }
        if self.text is not None:
            out["text"] = self.text
        if self.messages is not None:
            out["messages"] = self.messages
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any], image_bytes: list[bytes], input: str = "") -> Sample:
        return cls(
            key=d["key"],
            input=input or d.get("provenance", {}).get("input", ""),
            source=d["source"],
            task=d["task"],
            category=d["category"],
            stage=list(d["stage"]),
            text=d.get("text"),
            messages=d.get("messages"),
            images=list(d.get("images", [])),
            image_bytes=list(image_bytes),
            taxonomy=list(d.get("taxonomy", [])),
            lang=d.get("lang"),
            scores=dict(d.get("scores", {})),
            provenance=dict(d.get("provenance", {})),
            meta=dict(d.get("meta", {})),
        )

    def record_operator(self, name: str, version: str) -> None:
        self.provenance.setdefault("operators", {})[name] = version


@dataclass
class Rejection:
    """An input unit (file, page, record, URL, sample) that did not become a sample, and why."""

    input: str
    operator: str
    reason: str  # short snake_case, e.g. "encrypted_pdf", "render_timeout"
    detail: str = ""
    key: str = ""  # the unit's own id where it has one (sample key, page key)


@dataclass
class InputUnit:
    """An input given to a source: a path, URL, record reference or generator seed."""

    input: str


@dataclass
class Done:
    """Marks that a source has emitted everything for one input (used for resume)."""

    input: str
    count: int = 0


Item = Union[Sample, Rejection, InputUnit, Done]


def _dumps(d: dict[str, Any]) -> str:
    return json.dumps(d, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def items_to_table(items: Iterable[Item]) -> pa.Table:
    cols: dict[str, list[Any]] = {n: [] for n in ROW_SCHEMA.names}
    for it in items:
        if isinstance(it, Sample):
            row = ("sample", it.key, it.input, "", "", "", _dumps(it.to_json()), it.image_bytes)
        elif isinstance(it, Rejection):
            row = ("rejection", it.key, it.input, it.operator, it.reason, it.detail, "", [])
        elif isinstance(it, Done):
            row = ("done", "", it.input, "", "", str(it.count), "", [])
        elif isinstance(it, InputUnit):
            row = ("input", "", it.input, "", "", "", "", [])
        else:  # pragma: no cover - a programming error, not bad input
            raise TypeError(f"not a pipeline item: {type(it).__name__}")
        for name, value in zip(ROW_SCHEMA.names, row):
            cols[name].append(value)
    return pa.table(cols, schema=ROW_SCHEMA)


def table_to_items(table: pa.Table) -> list[Item]:
    out: list[Item] = []
    d = table.to_pydict()
    for i, kind in enumerate(d["kind"]):
        if kind == "sample":
            out.append(Sample.from_json(json.loads(d["json"][i]), d["images"][i] or [], d["input"][i]))
        elif kind == "rejection":
            out.append(Rejection(d["input"][i], d["operator"][i], d["reason"][i], d["detail"][i], d["key"][i]))
        elif kind == "done":
            out.append(Done(d["input"][i], int(d["detail"][i] or 0)))
        elif kind == "input":
            out.append(InputUnit(d["input"][i]))
        else:
            raise ValueError(f"unknown row kind {kind!r}")
    return out


def dumps(d: dict[str, Any]) -> str:
    """Canonical JSON (sorted keys, compact, UTF-8): the one encoding written to pool and shards."""
    return _dumps(d)
