"""Born-digital and scanned PDFs made with PyMuPDF from real text (Python stdlib docstrings), for the
demo, the tests and the benchmarks: headings, lists, a ruled table, figures with captions, a
two-column page, a rotated page, and rasterised copies that have no text layer.
"""

from __future__ import annotations

import html
import importlib
import inspect
import io
import re
from pathlib import Path
from typing import Any

_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_URL = re.compile(r"\s*<https?://[^>]+>")
DOC_MODULES = ("json", "textwrap", "argparse", "logging", "subprocess", "pathlib", "collections", "csv",
               "datetime", "heapq", "itertools", "functools", "string", "zipfile", "tarfile", "email", "unittest")


def stdlib_paragraphs(modules: tuple[str, ...] = DOC_MODULES, min_len: int = 120) -> list[str]:
    """Prose paragraphs from the docstrings of stdlib modules and their public classes and functions."""
    out: list[str] = []
    seen: set[str] = set()
    for name in modules:
        mod = importlib.import_module(name)
        docs = [inspect.getdoc(mod) or ""]
        for attr in sorted(dir(mod)):
            obj = getattr(mod, attr, None)
            if not attr.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj)):
                docs.append(inspect.getdoc(obj) or "")
        for doc in docs:
            for para in re.split(r"\n\s*\n", doc):
                text = " ".join(_RST_ROLE.sub(r"\1", para).replace("``", "").split())
                text = _URL.sub("", text).replace(" ,", ",").replace(" .", ".")
                letters = sum(c.isalpha() for c in text)
                # prose only: no code examples, tables or argument lists
                if len(text) >= min_len and letters > 0.75 * len(text) and ">>>" not in text and text not in seen:
                    seen.add(text)
                    out.append(text)
    return out


def bar_chart_png(values: list[int], labels: list[str], size: tuple[int, int] = (480, 300)) -> bytes:
    """A small bar chart drawn with Pillow (a figure for the interleaved documents)."""
    from PIL import Image, ImageDraw

    w, h = size
    img = Image.new("RGB", size, "white")
    dr = ImageDraw.Draw(img)
    dr.line([(40, 20), (40, h - 40), (w - 10, h - 40)], fill="black", width=2)
    top = max(values) or 1
    step = (w - 60) // max(1, len(values))
    for i, (v, lab) in enumerate(zip(values, labels)):
        x0 = 50 + i * step
        bar_h = int((h - 70) * v / top)
        dr.rectangle([x0, h - 40 - bar_h, x0 + step - 16, h - 40], fill=(40 + 30 * i % 200, 90, 200))
        dr.text((x0, h - 32), lab[:8], fill="black")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _story_pages(writer: Any, story: Any, rects: list[Any], mediabox: Any) -> int:
    """Flow a Story into pages, filling `rects` (one per column) on each page."""
    more, pages = 1, 0
    while more:
        dev = writer.begin_page(mediabox)
        for r in rects:
            more, _ = story.place(r)
            story.draw(dev)
            if not more:
                break
        writer.end_page()
        pages += 1
    return pages


def document_html(title: str, paras: list[str], figures: list[str]) -> str:
    """A chapter: title, sections with paragraphs, a bullet list, a numbered list and figures."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for k, p in enumerate(paras):
        if k % 5 == 0:
            parts.append(f"<h2>Section {k // 5 + 1}: {html.escape(' '.join(p.split()[:4]))}</h2>")
        parts.append(f"<p>{html.escape(p)}</p>")
        if k == 2:
            items = [" ".join(q.split()[:9]) for q in paras[3:7]]
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        if k == 6:
            items = [" ".join(q.split()[:7]) for q in paras[7:10]]
            parts.append("<ol>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ol>")
        if k % 7 == 3 and figures:
            name = figures[(k // 7) % len(figures)]
            parts.append(f'<img src="{name}" width="260"/>')
            parts.append(f"<p><i>Figure {k // 7 + 1}: {html.escape(' '.join(p.split()[:8]))}.</i></p>")
    return "\n".join(parts)


def draw_table_page(doc: Any, rows: list[list[str]], title: str, note: str) -> None:
    """A page with a heading, a ruled table (lines PyMuPDF's find_tables can see) and a paragraph."""
    import pymupdf

    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 90), title, fontsize=18, fontname="hebo")
    x0, y0, cw, rh = 72, 120, 156, 22
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            page.insert_text((x0 + 6 + c * cw, y0 + 15 + r * rh), cell, fontsize=10,
                             fontname="hebo" if r == 0 else "helv")
    for r in range(len(rows) + 1):
        page.draw_line((x0, y0 + r * rh), (x0 + cw * len(rows[0]), y0 + r * rh))
    for c in range(len(rows[0]) + 1):
        page.draw_line((x0 + c * cw, y0), (x0 + c * cw, y0 + len(rows) * rh))
    page.insert_textbox(pymupdf.Rect(72, y0 + len(rows) * rh + 30, 540, 720), note, fontsize=10, fontname="helv")


def make_document(path: str | Path, title: str, paras: list[str], *, columns: int = 1, two_column_page: bool = True,
                  table: bool = True, rotated_page: bool = True, figures: int = 2, header: str = "") -> int:
    """A born-digital PDF; returns its page count. Page numbers go in the footer, `header` on top."""
    import pymupdf

    arch = pymupdf.Archive()
    names = []
    for i in range(figures):
        name = f"fig{i}.png"
        arch.add(bar_chart_png([3 + i, 7, 5 - i % 3, 9, 4], ["alpha", "beta", "gamma", "delta", "eps"]), name)
        names.append(name)
    buf = io.BytesIO()
    writer = pymupdf.DocumentWriter(buf)
    mb = pymupdf.paper_rect("letter")
    one = [pymupdf.Rect(72, 72, 540, 720)]
    two = [pymupdf.Rect(54, 72, 300, 720), pymupdf.Rect(312, 72, 558, 720)]
    half = len(paras) // 2 if two_column_page else len(paras)
    _story_pages(writer, pymupdf.Story(document_html(title, paras[:half], names), archive=arch),
                 two if columns == 2 else one, mb)
    if two_column_page and paras[half:]:
        body = "".join(f"<p>{html.escape(p)}</p>" for p in paras[half:])
        _story_pages(writer, pymupdf.Story(f"<h2>{html.escape(title)}: notes</h2>{body}"), two, mb)
    writer.close()
    doc = pymupdf.open("pdf", buf.getvalue())
    if table:
        rows = [["Module", "Kind", "Purpose"], ["json", "codec", "JSON encoder"], ["csv", "codec", "CSV files"],
                ["heapq", "algorithm", "heap queue"], ["zipfile", "archive", "ZIP archives"]]
        draw_table_page(doc, rows, "Table 1: Modules used in this document", paras[0])
    if rotated_page:
        page = doc.new_page(width=612, height=792)
        page.insert_textbox(pymupdf.Rect(72, 72, 540, 720), "\n\n".join(paras[-3:]), fontsize=11, fontname="tiro")
        page.set_rotation(90)  # shown landscape with sideways text, as scanners often deliver pages
    for n, page in enumerate(doc, 1):
        if header:
            page.insert_text((72, 40), header, fontsize=8, fontname="helv")
        page.insert_text((300, 770), str(n), fontsize=9, fontname="helv")
    doc.set_metadata({"title": title, "producer": "dsvl-data synth"})
    n = doc.page_count
    doc.save(str(path), garbage=3, deflate=True)
    doc.close()
    return n


def make_text_pages(path: str | Path, paras: list[str], pages: int, font: str = "sans-serif", fontsize: float = 10,
                    columns: int = 1) -> int:
    """Pages of running body text only (the OCR and fidelity benchmarks' ground truth). Each column
    holds whole paragraphs: a paragraph split by a Story is drawn whole and clipped, and that
    invisible text would be in one tool's output and not the other's."""
    import pymupdf

    css = f"* {{font-family: {font}; font-size: {fontsize}pt;}} p {{margin-bottom: 6pt;}}"
    rects = [pymupdf.Rect(72, 72, 540, 720)] if columns == 1 else \
        [pymupdf.Rect(54, 72, 298, 720), pymupdf.Rect(314, 72, 558, 720)]

    def body(k: int, n: int) -> str:
        return "".join(f"<p>{html.escape(paras[(k + j) % len(paras)])}</p>" for j in range(n))

    def fits(rect: Any, k: int, n: int) -> bool:
        probe = pymupdf.open()
        spare, _ = probe.new_page(width=612, height=792).insert_htmlbox(rect, body(k, n), css=css, scale_low=1)
        probe.close()
        return spare >= 0

    doc = pymupdf.open()
    k = 0
    for _ in range(pages):
        page = doc.new_page(width=612, height=792)
        for rect in rects:
            lo, hi = 1, 40  # binary search: how many whole paragraphs fit in this column
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if fits(rect, k, mid) else (lo, mid - 1)
            page.insert_htmlbox(rect, body(k, lo), css=css, scale_low=1)
            k += lo
    doc.save(str(path), garbage=3, deflate=True)
    doc.close()
    return pages


def rasterise(src: str | Path, dst: str | Path, dpi: int = 150, gray: bool = True) -> int:
    """A 'scanned' copy: every page replaced by an image of itself, with no text layer."""
    import pymupdf

    src_doc = pymupdf.open(str(src))
    out = pymupdf.open()
    for page in src_doc:
        pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY if gray else pymupdf.csRGB)
        new = out.new_page(width=page.rect.width, height=page.rect.height)
        new.insert_image(new.rect, stream=pix.tobytes("png"))
    n = out.page_count
    out.save(str(dst), garbage=3, deflate=True)
    out.close()
    src_doc.close()
    return n


LICENSE = Path("/usr/share/common-licenses/Apache-2.0")


def make_demo_set(out_dir: str | Path) -> list[Path]:
    """The demo PDFs: two laid-out documents (one in two columns), a license in running text where
    Debian ships one, and a two-page rasterised scan."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = [out / "stdlib_text_formats.pdf"]
    make_document(made[-1], "Text formats in the Python standard library",
                  stdlib_paragraphs(("json", "csv", "textwrap", "string"))[:40], header="Python standard library notes")
    made.append(out / "stdlib_tools_two_column.pdf")
    make_document(made[-1], "Logging, arguments and processes",
                  stdlib_paragraphs(("logging", "argparse", "subprocess"))[:36], columns=2, rotated_page=False,
                  header="Python standard library notes")
    if LICENSE.is_file():
        text = LICENSE.read_text(encoding="utf-8")
        made.append(out / "apache_license.pdf")
        make_text_pages(made[-1], [" ".join(p.split()) for p in text.split("\n\n") if len(p.split()) > 8], 3,
                        font="serif", fontsize=10)
    src = out / "_scan_source.pdf"
    make_document(src, "Heaps and iterators", stdlib_paragraphs(("heapq", "itertools", "functools"))[:8],
                  two_column_page=False, table=False, rotated_page=False, figures=0)
    made.append(out / "scanned_heapq.pdf")
    rasterise(src, made[-1], dpi=150)
    src.unlink()
    return made
