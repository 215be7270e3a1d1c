"""Importers of existing instruction sets as SFT samples: LLaVA-style JSON and ShareGPT-style JSON/JSONL,
with images from a folder. Each bad record becomes a rejection with a specific reason.

Input units are files; a record's rejection carries the file as input and `<file>#<index>` as key.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from operators.base import OperatorConfig, Reject, Source, register
from operators.sample import Rejection, Sample, content_key

log = logging.getLogger(__name__)

USER_ROLES = {"human", "user"}
ASSISTANT_ROLES = {"gpt", "assistant", "bot", "model"}
SYSTEM_ROLES = {"system"}
PLACEHOLDER = "<image>"


class InstructConfig(OperatorConfig):
    inputs: str = Field(..., description="a .json/.jsonl file, or a folder of them")
    image_root: str = Field("", description="folder that image paths are relative to; default: the file's folder")
    source: str = Field("", description="source name recorded on samples; default: the importer's name")
    task: str = Field("instruct", description="task recorded on samples (the tagger may map it to leaves)")
    category: str = Field("general_instruct", description="mixture category of samples with images")
    text_category: str = Field("text_sft", description="mixture category of text-only records")
    license: str = Field("", description="license recorded in provenance")
    max_image_bytes: int = Field(20 << 20, ge=1, description="larger image files are rejected")
    max_image_pixels: int = Field(64_000_000, ge=1, description="larger images (decompression bombs) are rejected")
    max_record_bytes: int = Field(1 << 20, ge=1, description="JSONL lines longer than this are rejected")
    max_json_bytes: int = Field(4 << 30, ge=1, description="a .json file (parsed whole) larger than this is "
                                "rejected; use JSONL for bigger sets")


def _read_records(path: Path, max_record_bytes: int, max_json_bytes: int) -> Iterator[tuple[int, Any]]:
    """(index, record) pairs; a record that is not JSON yields (index, Reject) instead of stopping."""
    if path.suffix == ".jsonl":
        with open(path, "rb") as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                if len(line) > max_record_bytes:
                    yield i, Reject("record_too_large", f"{len(line)} bytes")
                    continue
                try:
                    yield i, json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    yield i, Reject("bad_json", str(e)[:200])
        return
    size = path.stat().st_size
    if size > max_json_bytes:
        raise Reject("file_too_large", f"{size} bytes; convert to JSONL to stream it")
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Reject("bad_json", str(e)[:200]) from None
    if isinstance(data, dict):  # some sets wrap the list: {"data": [...]}
        data = next((v for v in data.values() if isinstance(v, list)), None)
    if not isinstance(data, list):
        raise Reject("bad_json", "expected a list of records")
    yield from enumerate(data)


class InstructImporter(Source):
    """Shared reading and checking; subclasses say how a record names its turns and images."""

    Config = InstructConfig
    version = "1"

    def list_inputs(self) -> list[str]:
        p = Path(self.config.inputs)
        if p.is_dir():
            files = sorted(str(f) for f in p.rglob("*") if f.suffix in (".json", ".jsonl") and f.is_file())
        elif p.is_file():
            files = [str(p)]
        else:
            raise ValueError(f"{self.name}: inputs {p} does not exist")
        return files

    # --- record parsing (format specific) ---
    def turns(self, rec: dict[str, Any]) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def image_refs(self, rec: dict[str, Any]) -> list[str]:
        v = rec.get("images", rec.get("image"))
        if v is None:
            return []
        refs = [v] if isinstance(v, str) else v
        if not isinstance(refs, list) or not all(isinstance(r, str) and r for r in refs):
            raise Reject("bad_record", f"images must be a path or a list of paths, got {type(v).__name__}")
        return refs

    # --- shared checks ---
    def read(self, input: str) -> Iterable[Sample | Rejection]:
        path = Path(input)
        root = Path(self.config.image_root) if self.config.image_root else path.parent
        for i, rec in _read_records(path, self.config.max_record_bytes, self.config.max_json_bytes):
            unit = f"{path.name}#{i}"
            if isinstance(rec, Reject):
                yield Rejection(input, self.name, rec.reason, rec.detail, unit)
                continue
            try:
                yield self.convert(rec, i, path, root)
            except Reject as r:
                yield Rejection(input, self.name, r.reason, r.detail, unit)

    def convert(self, rec: Any, index: int, path: Path, root: Path) -> Sample:
        if not isinstance(rec, dict):
            raise Reject("bad_record", f"record is a {type(rec).__name__}, not an object")
        messages, system = [], []
        for role, content in self.turns(rec):
            if not isinstance(role, str) or not isinstance(content, str):
                raise Reject("bad_record", "a turn without a string role and content")
            r = role.lower()
            if r in SYSTEM_ROLES:
                system.append(content)
            elif r in USER_ROLES:
                messages.append({"role": "user", "content": content})
            elif r in ASSISTANT_ROLES:
                messages.append({"role": "assistant", "content": content})
            else:
                raise Reject("unknown_role", f"role {role!r}")
        if not messages:
            raise Reject("bad_record", "no conversation turns")
        for j, m in enumerate(messages):
            if m["role"] != ("user" if j % 2 == 0 else "assistant"):
                raise Reject("bad_turn_order", f"turn {j} is {m['role']}; turns must alternate user/assistant")
        if messages[-1]["role"] != "assistant":
            raise Reject("bad_turn_order", "the conversation ends without an answer")
        empty = [j for j, m in enumerate(messages) if m["role"] == "assistant" and not m["content"].strip()]
        if empty:
            raise Reject("empty_answer", f"assistant turn {empty[0]} is empty")
        if any(m["role"] == "user" and not m["content"].replace(PLACEHOLDER, "").strip() and
               j > 0 for j, m in enumerate(messages)):
            raise Reject("empty_question", "a user turn after the first has no text")
        refs = self.image_refs(rec)
        n_ph = sum(m["content"].count(PLACEHOLDER) for m in messages)
        if refs and n_ph == 0 and len(refs) == 1:
            # LLaVA-style sets sometimes omit the placeholder for a single image: it goes first
            messages[0]["content"] = PLACEHOLDER + "\n" + messages[0]["content"]
            n_ph = 1
        if n_ph != len(refs):
            raise Reject("placeholder_mismatch", f"{n_ph} {PLACEHOLDER} placeholders for {len(refs)} images")
        rid = str(rec.get("id", index))
        sample = Sample(
            key=content_key(self.source_name(), path.name, rid, json.dumps(messages, sort_keys=True), *refs),
            input=str(path), source=self.source_name(), task=self.config.task,
            category=self.config.category if refs else self.config.text_category, stage=[3],
            messages=messages,
            provenance={"input": str(path), "path": str(path), "record": rid, "images": refs,
                        "license": self.config.license},
        )
        if system:
            sample.meta["system"] = "\n".join(system)
        for ref in refs:
            data, ext = self.load_image(ref, root)
            sample.add_image(data, ext)
        return sample

    def source_name(self) -> str:
        return self.config.source or self.name.split(".")[-1]

    def load_image(self, ref: str, root: Path) -> tuple[bytes, str]:
        """The image's bytes (JPEG/PNG kept as they are, other formats re-encoded as PNG) and extension."""
        from PIL import Image

        rootr = root.resolve()
        p = (root / ref).resolve()
        if not p.is_relative_to(rootr):  # "../../etc/passwd" and absolute paths stay inside the image root
            raise Reject("image_outside_root", ref)
        if not p.is_file():
            raise Reject("missing_image", ref)
        size = p.stat().st_size
        if size > self.config.max_image_bytes:
            raise Reject("image_too_large", f"{ref}: {size} bytes")
        data = p.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > self.config.max_image_pixels:
                    raise Reject("image_too_large", f"{ref}: {im.width}x{im.height} pixels")
                fmt = im.format
                im.load()  # decodes fully: truncated files fail here, not in the trainer
                if fmt in ("JPEG", "PNG"):
                    return data, "jpg" if fmt == "JPEG" else "png"
                buf = io.BytesIO()
                im.convert("RGBA" if "A" in im.getbands() else "RGB").save(buf, "PNG")
                return buf.getvalue(), "png"
        except Reject:
            raise
        except Image.DecompressionBombError as e:
            raise Reject("image_too_large", f"{ref}: {e}") from None
        except (OSError, SyntaxError, ValueError) as e:  # PIL's ways of saying "not an image I can read"
            raise Reject("unreadable_image", f"{ref}: {e}") from None


@register("instruct.llava")
class LlavaImporter(InstructImporter):
    """LLaVA-style: [{"id", "image": "path" | ["paths"], "conversations": [{"from": "human"|"gpt", "value"}]}]."""

    def turns(self, rec: dict[str, Any]) -> list[tuple[str, Any]]:
        conv = rec.get("conversations")
        if not isinstance(conv, list):
            raise Reject("bad_record", "no `conversations` list")
        return [(t.get("from"), t.get("value")) if isinstance(t, dict) else (None, None) for t in conv]


@register("instruct.sharegpt")
class ShareGptImporter(InstructImporter):
    """ShareGPT-style JSON or JSONL: {"conversations": [{"from", "value"}]} or {"messages": [{"role",
    "content"}]}, images in "images" (or "image")."""

    def turns(self, rec: dict[str, Any]) -> list[tuple[str, Any]]:
        conv = rec.get("messages", rec.get("conversations"))
        if not isinstance(conv, list):
            raise Reject("bad_record", "no `messages` or `conversations` list")
        out = []
        for t in conv:
            if not isinstance(t, dict):
                out.append((None, None))
            else:
                out.append((t.get("role", t.get("from")), t.get("content", t.get("value"))))
        return out
