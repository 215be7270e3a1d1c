"""`pdf.extract`: PDFs -> document-OCR pairs, interleaved documents, OCR transcription SFT samples.

Pages stream one at a time out of a killable worker process (per-page and per-document timeouts,
memory cap), so a hostile file costs a rejection, never the build or the machine's memory.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from operators.base import OperatorConfig, Reject, Resources, Source, register
from operators.pdf.worker import KillableWorker, RemoteError, WorkerDied, WorkerTimeout
from operators.sample import Rejection, Sample, file_sha256

log = logging.getLogger(__name__)

EmitKind = Literal["doc_ocr", "interleaved", "ocr_sft", "text"]

SFT_PROMPTS = (
    "Transcribe the printed text in this image.",
    "Read out all of the text on this page, in reading order.",
    "What does this document say? Give its full text.",
    "Please OCR this page and return the plain text.",
)


def resolve_pdfs(inputs: str | list[str]) -> list[str]:
    """Sorted PDF paths from files, directories (searched recursively) and glob patterns."""
    out: set[str] = set()
    for item in [inputs] if isinstance(inputs, str) else inputs:
        p = Path(item)
        if p.is_dir():
            out.update(str(q) for q in p.rglob("*") if q.is_file() and q.suffix.lower() == ".pdf")
        elif p.is_file():
            out.add(str(p))
        else:
            hits = [h for h in glob.glob(item, recursive=True) if os.path.isfile(h)]
            if not hits:
                raise ValueError(f"pdf.extract: input {item!r} is not a file, a directory or a matching glob")
            out.update(hits)
    return sorted(out)


@register("pdf.extract")
class PdfExtractor(Source):
    """Streams the pages of each PDF through a worker process and builds samples per page."""

    version = "1"
    resources = Resources(actor=True, workers=2, batch_size=1)

    class Config(OperatorConfig):
        inputs: str | list[str] = Field("out/demo-inputs/pdfs", description="PDF file, directory or glob (or a list)")
        dpi: int = Field(144, ge=36, le=600, description="render resolution of page images")
        max_pages: int = Field(1000, ge=1, description="pages read per document; the rest is rejected")
        page_timeout_s: float = Field(30.0, gt=0, description="time limit for one page (parse + render)")
        doc_timeout_s: float = Field(600.0, gt=0, description="time limit for one whole document")
        emit: list[EmitKind] = Field(["doc_ocr", "interleaved", "ocr_sft"], description="sample kinds")
        target: Literal["markdown", "text"] = Field("markdown", description="doc-OCR target text format")
        tables: bool = Field(True, description="detect tables (markdown) with PyMuPDF's find_tables")
        image_format: Literal["png", "jpg"] = "png"
        interleaved_pages: int = Field(16, ge=1, description="pages per interleaved document chunk")
        min_chars: int = Field(30, ge=0, description="fewer text-layer characters: blank or scanned page")
        license: str = Field("unknown", description="license recorded in provenance")
        worker_memory_mb: int = Field(3072, ge=256, description="address-space cap of the worker process")
        max_page_pt: float = Field(14400.0, gt=0, description="largest page side accepted (points)")
        max_render_pixels: int = Field(40_000_000, gt=0, description="largest page render accepted")
        max_image_pixels: int = Field(100_000_000, gt=0, description="largest embedded image (image bombs)")
        max_timeouts: int = Field(3, ge=1, description="page timeouts after which a document is given up")

    config: Config

    def setup(self) -> None:
        self._worker = KillableWorker("operators.pdf.pages:PdfPageServer", memory_mb=self.config.worker_memory_mb)

    def teardown(self) -> None:
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.close()

    def list_inputs(self) -> list[str]:
        return resolve_pdfs(self.config.inputs)

    def _opts(self) -> dict[str, Any]:
        c = self.config
        needs_image = "doc_ocr" in c.emit or "ocr_sft" in c.emit
        return {
            "dpi": c.dpi,
            "render": needs_image,
            "markdown": ("doc_ocr" in c.emit and c.target == "markdown") or "interleaved" in c.emit,
            "figures": "interleaved" in c.emit,
            "tables": c.tables,
            "image_format": c.image_format,
            "max_page_pt": c.max_page_pt,
            "max_render_pixels": c.max_render_pixels,
            "max_image_pixels": c.max_image_pixels,
            "ocr_min_chars": c.min_chars,
        }

    def read(self, input: str) -> Iterator[Sample | Rejection]:
        self.ensure_setup()
        c = self.config
        prefix = "pdf-" + file_sha256(input)[:16]
        deadline = time.monotonic() + c.doc_timeout_s
        info = self._open(input, prefix, deadline)
        total = info["pages"]
        todo = min(total, c.max_pages)
        if total > c.max_pages:
            yield Rejection(input, self.name, "too_many_pages",
                            f"{total} pages; read the first {c.max_pages}, pages {c.max_pages + 1}-{total} dropped",
                            f"{prefix}-p{c.max_pages + 1:04d}")
        opts = self._opts()
        chunk = _Chunk()
        timeouts = 0
        i = 0  # next page to read
        while i < todo:
            key = f"{prefix}-p{i + 1:04d}"
            if time.monotonic() >= deadline:
                yield self._rest(input, "doc_timeout", f"document took over {c.doc_timeout_s:g} s", key, i, todo)
                break
            try:
                if i > 0 and not self._worker.alive():
                    self._open(input, prefix, deadline)  # the worker was restarted: reopen and go on
                stream = self._worker.stream(("pages", i, todo, opts),
                                             lambda: min(c.page_timeout_s, deadline - time.monotonic()))
                for status, index, r in stream:
                    i = index + 1
                    key = f"{prefix}-p{i:04d}"
                    if status == "rejected":
                        yield Rejection(input, self.name, r[0], f"page {i}: {r[1]}", key)
                        continue
                    yield from self._page_samples(input, prefix, key, r, info)
                    if "interleaved" in c.emit:
                        chunk.add(r)
                        if chunk.pages == c.interleaved_pages:
                            yield self._interleaved(input, prefix, chunk, info)
                            chunk = _Chunk(chunk.index + 1)
            except WorkerTimeout:
                key = f"{prefix}-p{i + 1:04d}"
                if time.monotonic() >= deadline - 0.01:
                    yield self._rest(input, "doc_timeout", f"document took over {c.doc_timeout_s:g} s", key, i, todo)
                    break
                timeouts += 1
                yield Rejection(input, self.name, "page_timeout", f"page {i + 1} took over {c.page_timeout_s:g} s", key)
                i += 1
                if timeouts >= c.max_timeouts and i < todo:
                    yield self._rest(input, "too_many_timeouts", f"{timeouts} pages timed out", key, i, todo)
                    break
            except WorkerDied as e:
                yield Rejection(input, self.name, "worker_crash", f"page {i + 1}: {e}", f"{prefix}-p{i + 1:04d}")
                i += 1
            except (RemoteError, Reject) as e:  # the stream itself failed, or reopening after a restart did
                yield Rejection(input, self.name, e.reason, e.detail, f"{prefix}-p{i + 1:04d}")
                break
        if "interleaved" in c.emit and chunk.pages:
            yield self._interleaved(input, prefix, chunk, info)
        if self._worker.alive():  # after a kill there is nothing to close (and no restart wanted)
            try:
                self._worker.call(("close",), timeout=10)
            except (WorkerTimeout, WorkerDied, RemoteError):
                pass

    def _open(self, path: str, prefix: str, deadline: float) -> dict[str, Any]:
        c = self.config
        try:
            return self._worker.call(("open", path), timeout=min(c.page_timeout_s, max(0.0, deadline - time.monotonic())))
        except WorkerTimeout:
            raise Reject("parse_timeout", f"opening took over {c.page_timeout_s:g} s", prefix) from None
        except WorkerDied as e:
            raise Reject("worker_crash", f"opening: {e}", prefix) from None
        except RemoteError as e:
            raise Reject(e.reason, e.detail, prefix) from None

    def _rest(self, path: str, reason: str, why: str, key: str, start: int, todo: int) -> Rejection:
        return Rejection(path, self.name, reason, f"{why}; pages {start + 1}-{todo} not read", key)

    def _base(self, path: str, key: str, task: str, category: str, stage: list[int], page: int | None,
              info: dict[str, Any]) -> Sample:
        prov: dict[str, Any] = {"input": path, "path": path, "license": self.config.license, "pages": info["pages"]}
        if page is not None:
            prov["page"] = page
        return Sample(key=key, input=path, source="pdf", task=task, category=category, stage=stage, provenance=prov)

    def _page_samples(self, path: str, prefix: str, key: str, r: dict[str, Any],
                      info: dict[str, Any]) -> Iterable[Sample | Rejection]:
        c = self.config
        page = r["index"] + 1
        facts = {"page": page, **r["facts"], "needs_ocr": r["needs_ocr"]}
        if not r["needs_ocr"] and facts["chars"] < c.min_chars:
            yield Rejection(path, self.name, "blank_page", f"page {page}: {facts['chars']} characters, no image", key)
            return
        ext = c.image_format
        if "doc_ocr" in c.emit:
            s = self._base(path, key, "doc_ocr", "document_ocr", [1, 2], page, info)
            target = r["markdown"] if c.target == "markdown" else r["text"]
            s.add_image(r["render"], ext)
            s.text = "<image>\n" + ("" if r["needs_ocr"] else target)
            s.meta = dict(facts)
            yield s
        if "ocr_sft" in c.emit:
            s = self._base(path, f"{key}-sft", "ocr_transcription", "inhouse_taxonomy", [3], page, info)
            s.add_image(r["render"], ext)
            prompt = SFT_PROMPTS[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(SFT_PROMPTS)]
            s.messages = [
                {"role": "user", "content": "<image>\n" + prompt},
                {"role": "assistant", "content": "" if r["needs_ocr"] else r["text"]},
            ]
            s.taxonomy = [{"id": "printed-text", "confidence": 1.0, "source": self.name}]
            s.meta = dict(facts)
            yield s
        if "text" in c.emit and not r["needs_ocr"]:
            s = self._base(path, f"{key}-txt", "pdf_text", "text_only", [2], page, info)
            s.text = r["text"]
            s.meta = dict(facts)
            yield s

    def _interleaved(self, path: str, prefix: str, chunk: _Chunk, info: dict[str, Any]) -> Sample | Rejection:
        key = f"{prefix}-d{chunk.index:03d}"
        if not chunk.parts:
            return Rejection(path, self.name, "no_text_layer",
                             f"pages {chunk.first}-{chunk.last}: every page is scanned or blank", key)
        kind = ("interleaved", "interleaved") if chunk.images else ("pdf_text", "text_only")
        s = self._base(path, key, kind[0], kind[1], [2], None, info)
        for data in chunk.images:
            s.add_image(data, self.config.image_format)
        s.text = "\n\n".join(chunk.parts)
        s.meta = {"pages": [chunk.first, chunk.last], "scanned_pages": chunk.scanned, "figures": len(chunk.images),
                  "title": info.get("metadata", {}).get("title", "")}
        return s


class _Chunk:
    """Pages gathered into one interleaved document (bounded by `interleaved_pages`)."""

    def __init__(self, index: int = 0):
        self.index = index
        self.parts: list[str] = []
        self.images: list[bytes] = []
        self.pages = 0
        self.first = self.last = 0
        self.scanned: list[int] = []

    def add(self, r: dict[str, Any]) -> None:
        page = r["index"] + 1
        self.first = self.first or page
        self.last = page
        self.pages += 1
        if r["needs_ocr"]:
            self.scanned.append(page)
            return
        for kind, value in r["elements"]:
            if kind == "text" and value.strip():
                self.parts.append(value)
            elif kind == "figure":
                self.parts.append("<image>")
                self.images.append(r["figure_images"][value])
