"""Page layout from PyMuPDF's text dict: lines and blocks in reading order, headers and footers,
light markdown (headings by font size, lists, paragraphs, tables), page facts and scanned-page verdicts.

Pure functions over plain data (no I/O) so that the worker process and the tests share them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Box = tuple[float, float, float, float]

BULLET_RE = re.compile(r"^\s*([\u2022\u2023\u25e6\u2043\u2219\u25aa\u25cf\u2013\u2014*\-])\s+")
NUMBERED_RE = re.compile(r"^\s*(\(?\d{1,3}[.)]|\(?[a-z][.)])\s+")
CAPTION_RE = re.compile(r"^\s*(fig(ure)?|table|plate|chart|illustration)\.?\s*\d*", re.IGNORECASE)


@dataclass
class Line:
    text: str
    bbox: Box
    size: float  # largest span font size (pt)
    bold: bool
    font: str


@dataclass
class Block:
    lines: list[Line]
    bbox: Box
    role: str = "body"  # body | header | footer | caption | table

    @property
    def text(self) -> str:
        return "\n".join(ln.text for ln in self.lines)


@dataclass
class Figure:
    bbox: Box
    caption: str = ""
    xref: int = 0


@dataclass
class PageLayout:
    width: float
    height: float
    blocks: list[Block]  # reading order, headers first and footers last
    figures: list[Figure] = field(default_factory=list)
    tables: list[tuple[Box, str]] = field(default_factory=list)  # (bbox, markdown)
    body_size: float = 10.0
    chars: int = 0

    def plain_text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks if b.text.strip())


def transform_box(box: Box, m: Any) -> Box:
    """Apply an affine matrix (a, b, c, d, e, f) to a box and return its normalised bounds."""
    a, b, c, d, e, f = m
    if (a, b, c, d, e, f) == (1, 0, 0, 1, 0, 0):
        return (box[0], box[1], box[2], box[3])
    xs, ys = [], []
    for x, y in ((box[0], box[1]), (box[2], box[1]), (box[0], box[3]), (box[2], box[3])):
        xs.append(a * x + c * y + e)
        ys.append(b * x + d * y + f)
    return (min(xs), min(ys), max(xs), max(ys))


def dominant_rotation(text_dict: dict[str, Any]) -> int:
    """The page /Rotate value (0/90/180/270) that makes most characters read left to right."""
    votes: Counter[int] = Counter()
    for blk in text_dict.get("blocks", []):
        for ln in blk.get("lines", []):
            dx, dy = ln.get("dir", (1.0, 0.0))
            n = sum(len(s.get("text", "")) for s in ln.get("spans", []))
            # Angle of the text baseline in unrotated space (y down); /Rotate turns clockwise.
            angle = round(math.degrees(math.atan2(dy, dx)) / 90) * 90 % 360
            votes[(360 - angle) % 360] += n
    return votes.most_common(1)[0][0] if votes else 0


def build_blocks(text_dict: dict[str, Any], matrix: Any) -> tuple[list[Block], int]:
    """Blocks of text lines in display coordinates (`matrix` = page.rotation_matrix)."""
    blocks: list[Block] = []
    chars = 0
    for blk in text_dict.get("blocks", []):
        if blk.get("type", 0) != 0:
            continue
        lines: list[Line] = []
        for ln in blk.get("lines", []):
            spans = [s for s in ln.get("spans", []) if s.get("text")]
            text = "".join(s["text"] for s in spans).rstrip()
            if not text.strip():
                continue
            chars += len(text)
            main = max(spans, key=lambda s: len(s["text"].strip()))
            lines.append(
                Line(
                    text=text,
                    bbox=transform_box(tuple(ln["bbox"]), matrix),
                    size=round(max(s.get("size", 0.0) for s in spans), 1),
                    bold=bool(main.get("flags", 0) & 16) or "bold" in main.get("font", "").lower(),
                    font=main.get("font", ""),
                )
            )
        if lines:
            lines.sort(key=lambda ln: (round(ln.bbox[1], 0), ln.bbox[0]))
            blocks.append(Block(lines, _union([ln.bbox for ln in lines])))
    return blocks, chars


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def reading_order(boxes: list[Box], width: float) -> list[int]:
    """Indices of `boxes` in reading order for single- and multi-column pages.

    Narrow boxes are clustered into columns by their horizontal extent; a box that crosses
    a column gutter (a title, a full-width paragraph or figure) closes one section and opens the
    next, and inside a section the columns are read left to right, each top to bottom.
    """
    if not boxes:
        return []
    narrow = [i for i, b in enumerate(boxes) if (b[2] - b[0]) < 0.55 * width]
    cols: list[list[float]] = []
    for i in sorted(narrow, key=lambda i: boxes[i][0]):
        x0, x1 = boxes[i][0], boxes[i][2]
        if cols and x0 < cols[-1][1] - 2:
            cols[-1][1] = max(cols[-1][1], x1)
        else:
            cols.append([x0, x1])

    def col_of(b: Box) -> int:
        hits = [k for k, (c0, c1) in enumerate(cols) if _overlap(b[0], b[2], c0, c1) > 1.0]
        return hits[0] if len(hits) == 1 else -1  # -1: spans a gutter (or no column at all)

    order: list[int] = []
    section: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0])):
        if len(cols) > 1 and col_of(boxes[i]) == -1:
            order.extend(sorted(section, key=lambda j: (col_of(boxes[j]), boxes[j][1], boxes[j][0])))
            section = []
            order.append(i)
        else:
            section.append(i)
    order.extend(sorted(section, key=lambda j: (col_of(boxes[j]) if len(cols) > 1 else 0, boxes[j][1], boxes[j][0])))
    return order


def mark_margins(blocks: list[Block], height: float, band: float = 0.08) -> None:
    """Short blocks in the top or bottom band of the page are running headers/footers (page numbers)."""
    for b in blocks:
        short = len(b.lines) <= 2 and len(b.text) <= 100
        if short and b.bbox[3] <= height * band:
            b.role = "header"
        elif short and b.bbox[1] >= height * (1 - band):
            b.role = "footer"


def body_font_size(blocks: list[Block]) -> float:
    sizes: Counter[float] = Counter()
    for b in blocks:
        for ln in b.lines:
            sizes[ln.size] += len(ln.text)
    return sizes.most_common(1)[0][0] if sizes else 10.0


def order_blocks(blocks: list[Block], width: float, height: float) -> list[Block]:
    mark_margins(blocks, height)
    head = sorted((b for b in blocks if b.role == "header"), key=lambda b: (b.bbox[1], b.bbox[0]))
    foot = sorted((b for b in blocks if b.role == "footer"), key=lambda b: (b.bbox[1], b.bbox[0]))
    body = [b for b in blocks if b.role not in ("header", "footer")]
    idx = reading_order([b.bbox for b in body], width)
    return head + [body[i] for i in idx] + foot


def attach_captions(figures: list[Figure], blocks: list[Block], gap: float = 36.0) -> None:
    """The nearest short block just below (else just above) a figure that looks like a caption."""
    for fig in figures:
        best, best_d = None, gap
        for b in blocks:
            if b.role != "body" or len(b.text) > 400:
                continue
            if _overlap(fig.bbox[0], fig.bbox[2], b.bbox[0], b.bbox[2]) <= 0:
                continue
            below = b.bbox[1] - fig.bbox[3]
            above = fig.bbox[1] - b.bbox[3]
            d = below if below >= -2 else (above + 6 if above >= -2 else None)
            if d is not None and d < best_d and (CAPTION_RE.match(b.text) or d < gap / 3):
                best, best_d = b, d
        if best is not None:
            best.role = "caption"
            fig.caption = " ".join(best.text.split())


def _line_md(text: str) -> tuple[str, bool]:
    m = BULLET_RE.match(text)
    if m:
        return "- " + text[m.end():].strip(), True
    m = NUMBERED_RE.match(text)
    if m:
        return m.group(1).strip("()").rstrip(".)") + ". " + text[m.end():].strip(), True
    return text.strip(), False


def heading_level(line: Line, body: float) -> int:
    if len(line.text) > 120 or line.size < body * 1.15:
        return 0
    if line.size >= body * 1.6:
        return 1
    return 2 if line.size >= body * 1.3 else 3


def block_markdown(b: Block, body: float) -> str:
    """Markdown for one block: headings, list items and paragraphs (hyphenated line ends joined)."""
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(re.sub(r"(\w)- (\w)", r"\1\2", " ".join(para)))
            para.clear()

    for ln in b.lines:
        level = heading_level(ln, body)
        if level:
            flush()
            out.append("#" * level + " " + ln.text.strip())
            continue
        text, is_item = _line_md(ln.text)
        if is_item:
            flush()
            out.append(text)
        elif out and not para and out[-1].startswith(("- ", "1", "2", "3", "4", "5", "6", "7", "8", "9")) \
                and _line_md(out[-1])[1] and not out[-1].startswith("#"):
            out[-1] += " " + text  # continuation line of a list item
        else:
            para.append(text)
    flush()
    sep = "\n" if all(_line_md(o)[1] for o in out) else "\n\n"
    return sep.join(out)


def to_markdown(layout: PageLayout, figure_marker: str = "") -> str:
    """Light markdown of the page body; tables replace the blocks they cover; figures optional."""
    covered: set[int] = set()
    for tb, md in layout.tables:
        for k, b in enumerate(layout.blocks):
            if _overlap(b.bbox[0], b.bbox[2], tb[0], tb[2]) > 0 and _overlap(b.bbox[1], b.bbox[3], tb[1], tb[3]) > 0.5 * (b.bbox[3] - b.bbox[1]):
                covered.add(k)
    out: list[str] = []
    tables_left = list(layout.tables)
    for k, b in enumerate(layout.blocks):
        if b.role in ("header", "footer"):
            continue
        if k in covered:
            for t in [t for t in tables_left if _overlap(b.bbox[1], b.bbox[3], t[0][1], t[0][3]) > 0]:
                out.append(t[1])
                tables_left.remove(t)
            continue
        if b.role == "caption":
            out.append("*" + " ".join(b.text.split()) + "*")
        else:
            out.append(block_markdown(b, layout.body_size))
    out.extend(md for _, md in tables_left)
    return "\n\n".join(o for o in out if o.strip())


_SPACE = re.compile(r"\s")
_BAD = re.compile("[\ufffd\ue000-\uf8ff\x00-\x08\x0b\x0e-\x1f\x7f]")  # replacement, private use, controls
_ALNUM = re.compile(r"[^\W_]")


def text_quality(text: str) -> tuple[float, float]:
    """(bad-character ratio, letter ratio) of a text layer: replacement/private-use/control
    characters betray a broken font encoding; few letters betray glyph-id garbage. The first 1000
    characters are a large enough sample and keep this cheap on dense pages."""
    text = text[:1000]
    n = len(text) - len(_SPACE.findall(text))
    if n <= 0:
        return 0.0, 0.0
    return len(_BAD.findall(text)) / n, len(_ALNUM.findall(text)) / n


def scan_verdict(
    chars: int, text: str, image_coverage: float, min_chars: int = 30, max_bad: float = 0.1, min_letters: float = 0.5
) -> tuple[bool, str]:
    """(needs_ocr, reason) for a page: no or negligible text layer over an image, or garbage text."""
    if chars < min_chars:
        if image_coverage >= 0.3:
            return True, "no_text_layer"
        return False, "blank" if chars == 0 else "sparse_text"
    bad, letters = text_quality(text)
    if bad > max_bad:
        return True, "garbage_text_layer"
    if letters < min_letters:
        return True, "garbage_text_layer"
    return False, "text_layer"
