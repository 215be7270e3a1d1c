"""Hostile PDFs: each ends as a rejection with a specific reason and the run goes on; memory stays
bounded on a 2,000-page document because pages stream out of the worker one at a time."""

from __future__ import annotations

import os
import zlib

import psutil
import pytest

from operators.pdf.extract import PdfExtractor
from operators.sample import Rejection, Sample


def _text_page(doc, text="A short page of real text about the json module and its encoder.", **kw):
    page = doc.new_page(**kw)
    page.insert_text((36, 72), text, fontsize=11)
    return page


def raw_pdf(pages: int, lines: int = 2) -> bytes:
    """A valid PDF with many small text pages, written directly (PyMuPDF's new_page is quadratic)."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(pages))
            + b"] /Count %d >>" % pages,
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i in range(pages):
        text = b"".join(b"BT /F1 7 Tf 20 %d Td (Page %d: heapq keeps a list ordered as a binary heap, line %d.) Tj ET\n"
                        % (380 - 14 * k, i + 1, k) for k in range(lines))
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 400] /Resources << /Font << /F1 3 0 R >> >>"
                    b" /Contents %d 0 R >>" % (5 + 2 * i))
        objs.append(b"<< /Length %d >>\nstream\n" % len(text) + text + b"endstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def make_bad_pdfs(d):
    import pymupdf

    paths = {}
    good = pymupdf.open()
    for i in range(3):
        _text_page(good, f"Page {i + 1}: JSON is a lightweight data interchange format used widely.")
    good_bytes = good.tobytes()
    (d / "good.pdf").write_bytes(good_bytes)
    paths["good"] = d / "good.pdf"

    (d / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20 + b"\n%%EOF\n")
    paths["corrupt"] = d / "corrupt.pdf"
    (d / "notpdf.pdf").write_text("This is a plain text file that someone named .pdf\n" * 20)
    paths["notpdf"] = d / "notpdf.pdf"
    (d / "empty.pdf").write_bytes(b"")
    paths["empty"] = d / "empty.pdf"
    (d / "truncated.pdf").write_bytes(good_bytes[: len(good_bytes) * 6 // 10])
    paths["truncated"] = d / "truncated.pdf"

    enc = pymupdf.open("pdf", good_bytes)
    enc.save(str(d / "encrypted.pdf"), encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
    paths["encrypted"] = d / "encrypted.pdf"

    (d / "zero.pdf").write_bytes(
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    paths["zero"] = d / "zero.pdf"

    (d / "many.pdf").write_bytes(raw_pdf(5000))
    paths["many"] = d / "many.pdf"

    giant = pymupdf.open()
    _text_page(giant, "A page the size of a football pitch, far beyond the PDF limit.", width=20000, height=20000)
    _text_page(giant, "A page small enough for the PDF spec but too large to render at this resolution.",
               width=14000, height=14000)
    _text_page(giant)
    giant.save(str(d / "giant.pdf"))
    paths["giant"] = d / "giant.pdf"

    # a decompression bomb: a tiny deflate stream that declares a 5000 x 5000 grey image
    bomb = pymupdf.open()
    page = _text_page(bomb, "This page shows a decompression bomb.")
    page.insert_image(pymupdf.Rect(72, 100, 300, 300), stream=pymupdf.Pixmap(pymupdf.csGRAY, (0, 0, 8, 8)).tobytes())
    xref = page.get_images()[0][0]
    side = 5000
    co = zlib.compressobj(9)
    data = b"".join(co.compress(bytes(side * 100)) for _ in range(side // 100)) + co.flush()
    bomb.update_object(xref, f"<< /Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace "
                             f"/DeviceGray /BitsPerComponent 8 /Filter /FlateDecode /Length {len(data)} >>")
    bomb.update_stream(xref, data, compress=False)
    bomb.save(str(d / "bomb.pdf"))
    paths["bomb"] = d / "bomb.pdf"

    # a text layer of unmapped glyphs (what broken font encodings give): routed to OCR, not trusted
    garbage = pymupdf.open()
    garbage.new_page().insert_textbox(pymupdf.Rect(72, 72, 540, 700), "".join(chr(0xE000 + i % 300) for i in range(400)),
                                      fontsize=11, fontfile="/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                                      fontname="dv")
    garbage.save(str(d / "garbage.pdf"))
    paths["garbage"] = d / "garbage.pdf"

    # a page whose content stream takes seconds to interpret: the page timeout kills the worker
    slow = pymupdf.open()
    _text_page(slow, "The first page is fine and holds enough real text to count.")
    page = _text_page(slow, "A page whose content stream never seems to end.")
    cx = page.get_contents()[0]
    slow.update_stream(cx, slow.xref_stream(cx) + b"\n" + b"0 0 m 1 1 l S\n" * 1_500_000)
    _text_page(slow, "The third page is fine again and is read after the worker restarts.")
    slow.save(str(d / "slow.pdf"), deflate=True)
    paths["slow"] = d / "slow.pdf"
    return paths


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return make_bad_pdfs(tmp_path_factory.mktemp("bad"))


def _reasons(out, path):
    return [(r.reason, r.key) for r in out if isinstance(r, Rejection) and r.input == str(path)]


def test_every_bad_pdf_is_rejected_with_a_reason(bad):
    op = PdfExtractor({"inputs": str(bad["good"].parent), "dpi": 72, "max_pages": 3, "page_timeout_s": 1.0,
                       "max_image_pixels": 20_000_000, "emit": ["doc_ocr"]})
    out = op.run()
    op.teardown()
    one = {name: [r for r, _ in _reasons(out, p)] for name, p in bad.items()}
    assert one["corrupt"] == ["corrupt_pdf"]
    assert one["notpdf"] == ["not_a_pdf"]
    assert one["empty"] == ["empty_file"]
    assert one["truncated"] == ["truncated_pdf"]
    assert one["encrypted"] == ["encrypted_pdf"]
    assert one["zero"] == ["empty_pdf"]
    assert one["many"] == ["too_many_pages"]
    assert one["giant"] == ["page_too_large", "page_too_large"]
    assert one["bomb"] == ["image_bomb"]
    assert one["slow"] == ["page_timeout"]
    assert one["good"] == [] and one["garbage"] == []
    garbage = [s for s in out if isinstance(s, Sample) and s.input == str(bad["garbage"])]
    assert [(s.meta["needs_ocr"], s.meta["text_layer"]) for s in garbage] == [(True, "garbage_text_layer")]

    def pages(p):
        return sorted(s.meta["page"] for s in out if isinstance(s, Sample) and s.input == str(p))

    assert pages(bad["good"]) == [1, 2, 3]
    assert pages(bad["many"]) == [1, 2, 3]  # capped at max_pages, with a record of the rest
    many = next(r for r in out if isinstance(r, Rejection) and r.reason == "too_many_pages")
    assert "5000 pages" in many.detail and many.key.endswith("-p0004")
    assert pages(bad["giant"]) == [3]
    assert pages(bad["slow"]) == [1, 3]  # the worker was killed on page 2 and restarted for page 3
    slow = next(r for r in out if isinstance(r, Rejection) and r.reason == "page_timeout")
    assert slow.key.endswith("-p0002")
    keys = [r.key for r in out if isinstance(r, Rejection)]
    assert all(k.startswith("pdf-") for k in keys)


def test_document_timeout_stops_the_document(bad):
    op = PdfExtractor({"inputs": str(bad["slow"]), "dpi": 72, "page_timeout_s": 60, "doc_timeout_s": 0.5,
                       "emit": ["doc_ocr"]})
    out = op.run()
    op.teardown()
    rej = [r for r in out if isinstance(r, Rejection)]
    assert [r.reason for r in rej] == ["doc_timeout"]
    assert "not read" in rej[0].detail
    assert len([s for s in out if isinstance(s, Sample)]) <= 1


def test_memory_stays_bounded_on_2000_pages(tmp_path):
    path = tmp_path / "long.pdf"
    path.write_bytes(raw_pdf(2000))
    op = PdfExtractor({"inputs": str(path), "dpi": 36, "max_pages": 2000, "tables": False,
                       "emit": ["doc_ocr", "interleaved"], "interleaved_pages": 50})
    op.ensure_setup()
    me = psutil.Process(os.getpid())
    base = me.memory_info().rss
    peak_parent = peak_child = 0
    n = 0
    for item in op.read(str(path)):  # consume as a stream, keep nothing
        n += isinstance(item, Sample)
        if n % 200 == 0:
            peak_parent = max(peak_parent, me.memory_info().rss - base)
            peak_child = max(peak_child, op._worker.rss_bytes())
    op.teardown()
    assert n == 2000 + 40
    assert peak_parent < 80 * 2**20, f"parent grew {peak_parent / 2**20:.0f} MB"
    assert 0 < peak_child < 400 * 2**20, f"worker RSS {peak_child / 2**20:.0f} MB"
