"""The PDF side of the killable worker: opens one document and turns one page at a time into
text, markdown, a render, figures and page facts. Runs inside `KillableWorker`'s child process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from operators.base import Reject
from operators.pdf.layout import (
    Block,
    Figure,
    Line,
    PageLayout,
    attach_captions,
    block_markdown,
    body_font_size,
    build_blocks,
    dominant_rotation,
    order_blocks,
    reading_order,
    scan_verdict,
    to_markdown,
    transform_box,
)

log = logging.getLogger(__name__)

DEFAULT_OPTS: dict[str, Any] = {
    "dpi": 144,
    "render": True,
    "markdown": True,
    "figures": True,
    "tables": True,
    "image_format": "png",
    "max_page_pt": 14400.0,  # 200 in, the PDF spec's page size limit at UserUnit 1
    "max_render_pixels": 40_000_000,
    "max_image_pixels": 100_000_000,
    "min_figure_pt": 48.0,
    "ocr_min_chars": 30,
}


def _text_flags() -> int:
    import pymupdf

    # No image payloads in the dict (speed, memory); ligatures expanded like pdftotext does.
    return (pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_IMAGES & ~pymupdf.TEXT_PRESERVE_LIGATURES) \
        | pymupdf.TEXT_MEDIABOX_CLIP


class PdfPageServer:
    """Handles ("open", path), ("page", index, opts) and ("close",) requests for one document at a time."""

    def __init__(self) -> None:
        import pymupdf

        pymupdf.TOOLS.mupdf_display_errors(False)
        pymupdf.TOOLS.mupdf_display_warnings(False)
        self.pymupdf = pymupdf
        self.doc: Any = None
        self.flags = _text_flags()

    def handle(self, msg: tuple[Any, ...]) -> Any:
        if msg[0] == "open":
            return self.open(msg[1])
        if msg[0] == "page":
            return self.page(msg[1], {**DEFAULT_OPTS, **msg[2]})
        if msg[0] == "pages":
            return self.pages(msg[1], msg[2], {**DEFAULT_OPTS, **msg[3]})
        if msg[0] == "close":
            self.close()
            return None
        raise ValueError(f"unknown request {msg[0]!r}")

    def close(self) -> None:
        if self.doc is not None:
            self.doc.close()
            self.doc = None
        self.pymupdf.TOOLS.store_shrink(100)  # drop MuPDF's resource cache between documents

    def open(self, path: str) -> dict[str, Any]:
        self.close()
        size = os.path.getsize(path)
        if size == 0:
            raise Reject("empty_file", "0 bytes")
        with open(path, "rb") as f:
            head = f.read(1024)
            f.seek(max(0, size - 2048))
            tail = f.read()
        if b"%PDF-" not in head:
            raise Reject("not_a_pdf", f"no %PDF- header in the first 1024 bytes of {size} bytes")
        truncated = b"%%EOF" not in tail
        try:
            doc = self.pymupdf.open(path, filetype="pdf")
        except Exception as e:  # noqa: BLE001 - MuPDF raises several types for unreadable files
            reason = "truncated_pdf" if truncated else "corrupt_pdf"
            raise Reject(reason, f"{type(e).__name__}: {e}") from None
        if doc.needs_pass and not doc.authenticate(""):
            doc.close()
            raise Reject("encrypted_pdf", "password required")
        if truncated:
            pages = doc.page_count
            doc.close()
            raise Reject("truncated_pdf", f"no %%EOF trailer ({size} bytes, {pages} pages recoverable)")
        try:
            pages = doc.page_count
        except Exception as e:  # noqa: BLE001 - a broken page tree
            doc.close()
            raise Reject("corrupt_pdf", f"page tree: {e}") from None
        if pages == 0:
            doc.close()
            raise Reject("empty_pdf", "the document has no pages")
        self.doc = doc
        meta = {k: v for k, v in (doc.metadata or {}).items() if v and k in ("title", "author", "subject", "creator", "producer")}
        return {"pages": pages, "repaired": bool(doc.is_repaired), "encrypted": bool(doc.is_encrypted), "metadata": meta}

    def pages(self, start: int, stop: int, opts: dict[str, Any]) -> Iterator[tuple[str, int, Any]]:
        """Stream ("ok", i, result) or ("rejected", i, (reason, detail)) for pages start..stop-1."""
        for i in range(start, stop):
            try:
                yield "ok", i, self.page(i, opts)
            except Reject as r:
                yield "rejected", i, (r.reason, r.detail)
            except MemoryError:
                yield "rejected", i, ("out_of_memory", "the worker's memory cap was reached")
            except Exception as e:  # noqa: BLE001 - one broken page must not end the document
                yield "rejected", i, ("page_error", f"{type(e).__name__}: {e}"[:500])

    def page(self, index: int, opts: dict[str, Any]) -> dict[str, Any]:
        pymupdf = self.pymupdf
        if self.doc is None:
            raise Reject("worker_error", "no open document")
        try:
            page = self.doc.load_page(index)
        except Exception as e:  # noqa: BLE001 - a broken page object
            raise Reject("page_error", f"load_page: {e}") from None
        rect = page.rect
        if rect.is_empty or max(rect.width, rect.height) > opts["max_page_pt"]:
            raise Reject("page_too_large", f"{rect.width:.0f} x {rect.height:.0f} pt (max {opts['max_page_pt']:.0f})")
        zoom = opts["dpi"] / 72.0
        if opts["render"] and rect.width * rect.height * zoom * zoom > opts["max_render_pixels"]:
            raise Reject("page_too_large", f"{rect.width:.0f} x {rect.height:.0f} pt at {opts['dpi']} dpi "
                         f"exceeds {opts['max_render_pixels']} pixels")
        if opts["render"] or opts["figures"]:  # only rendering decodes images; text extraction never does
            for img in page.get_images(full=True):
                if img[2] * img[3] > opts["max_image_pixels"]:
                    raise Reject("image_bomb", f"image xref {img[0]} declares {img[2]} x {img[3]} pixels")

        original_rotation = upright = page.rotation
        if opts["render"] or opts["markdown"] or opts["figures"]:
            d = page.get_text("dict", flags=self.flags)
            upright = dominant_rotation(d) if d.get("blocks") else original_rotation
            if upright != original_rotation:
                page.set_rotation(upright)  # in memory only: renders and boxes come out upright
            blocks, chars = build_blocks(d, page.rotation_matrix)
        else:  # text only: blocks are enough for reading order and cost far less than the full dict
            blocks, chars = text_blocks(page.get_text("blocks", flags=self.flags), page.rotation_matrix)
        m = page.rotation_matrix
        width, height = page.rect.width, page.rect.height
        blocks = order_blocks(blocks, width, height)
        plain = "\n\n".join(b.text for b in blocks)

        want_figures = opts["figures"]
        infos = page.get_image_info() if (want_figures or chars < opts["ocr_min_chars"]) else []
        page_area = max(1.0, width * height)
        img_boxes = [transform_box(tuple(i["bbox"]), m) for i in infos]
        img_boxes = [(max(0, b[0]), max(0, b[1]), min(width, b[2]), min(height, b[3])) for b in img_boxes]
        image_coverage = min(1.0, sum(max(0, b[2] - b[0]) * max(0, b[3] - b[1]) for b in img_boxes) / page_area)
        needs_ocr, scan_reason = scan_verdict(chars, plain, image_coverage, opts["ocr_min_chars"])

        figures: list[Figure] = []
        if want_figures and not needs_ocr:
            mf = opts["min_figure_pt"]
            for b, info in zip(img_boxes, infos):
                w, h = b[2] - b[0], b[3] - b[1]
                if w >= mf and h >= mf and w * h < 0.85 * page_area:
                    figures.append(Figure(b, xref=info.get("xref", 0)))
            attach_captions(figures, blocks)

        tables: list[tuple[Any, str]] = []
        if opts["tables"] and opts["markdown"] and not needs_ocr and _has_rulings(page):
            try:
                for t in page.find_tables().tables:
                    tables.append((transform_box(tuple(t.bbox), m), t.to_markdown().strip()))
            except Exception as e:  # noqa: BLE001 - table finding is best effort; the text is still there
                log.debug("find_tables failed on page %d: %s", index, e)

        body = body_font_size(blocks)
        layout = PageLayout(width, height, blocks, figures, tables, body, chars)
        out: dict[str, Any] = {
            "index": index,
            "text": plain,
            "markdown": to_markdown(layout) if opts["markdown"] and not needs_ocr else "",
            "elements": interleaved_elements(layout) if want_figures and not needs_ocr else [],
            "needs_ocr": needs_ocr,
            "facts": {
                "width_pt": round(width, 1),
                "height_pt": round(height, 1),
                "rotation": original_rotation,
                "render_rotation": upright,
                "chars": chars,
                "text_coverage": round(_line_coverage(blocks, page_area), 4),
                "image_coverage": round(image_coverage, 4),
                "fonts": sorted({ln.font for b in blocks for ln in b.lines})[:20],
                "body_font_size": body,
                "blocks": len(blocks),
                "headers": [b.text for b in blocks if b.role == "header"],
                "footers": [b.text for b in blocks if b.role == "footer"],
                "figures": len(figures),
                "tables": len(tables),
                "text_layer": scan_reason,
            },
            "render": b"",
            "figure_images": [],
        }
        fmt = opts["image_format"]
        if opts["render"]:
            pix = page.get_pixmap(dpi=opts["dpi"], alpha=False)
            out["render"] = pix.tobytes(fmt)
            out["facts"]["render_px"] = [pix.width, pix.height]
            del pix
        for f in figures:
            pix = page.get_pixmap(clip=pymupdf.Rect(f.bbox), dpi=opts["dpi"], alpha=False)
            out["figure_images"].append(pix.tobytes(fmt))
            del pix
        return out


def text_blocks(raw: list[tuple[Any, ...]], matrix: Any) -> tuple[list[Block], int]:
    """Blocks from get_text("blocks") tuples (x0, y0, x1, y1, text, number, type), one pseudo-line each."""
    blocks, chars = [], 0
    for x0, y0, x1, y1, text, _, kind in raw:
        text = text.strip("\n")
        if kind != 0 or not text.strip():
            continue
        chars += len(text) - text.count("\n")
        box = transform_box((x0, y0, x1, y1), matrix)
        blocks.append(Block([Line(text, box, 0.0, False, "")], box))
    return blocks, chars


def _has_rulings(page: Any, at_least: int = 4) -> bool:
    """Whether the page draws enough straight rules or rectangles to hold a table; find_tables
    costs about a second per page, so text-only pages skip it."""
    n = 0
    for d in page.get_cdrawings():
        for item in d.get("items", ()):
            if item[0] == "re" or (item[0] == "l" and (abs(item[1][0] - item[2][0]) < 1 or abs(item[1][1] - item[2][1]) < 1)):
                n += 1
                if n >= at_least:
                    return True
    return False


def _line_coverage(blocks: list[Block], area: float) -> float:
    return min(1.0, sum((ln.bbox[2] - ln.bbox[0]) * (ln.bbox[3] - ln.bbox[1]) for b in blocks for ln in b.lines) / area)


def interleaved_elements(layout: PageLayout) -> list[tuple[str, Any]]:
    """The page body as ("text", markdown) and ("figure", index) items in reading order; a figure's
    caption is written right after it."""
    body = [b for b in layout.blocks if b.role in ("body", "caption")]
    boxes = [b.bbox for b in body] + [f.bbox for f in layout.figures]
    out: list[tuple[str, Any]] = []
    for i in reading_order(boxes, layout.width):
        if i < len(body):
            b = body[i]
            if b.role == "body":
                out.append(("text", block_markdown(b, layout.body_size)))
        else:
            k = i - len(body)
            out.append(("figure", k))
            if layout.figures[k].caption:
                out.append(("text", layout.figures[k].caption))
    return out


__all__ = ["DEFAULT_OPTS", "Block", "PdfPageServer", "interleaved_elements"]
