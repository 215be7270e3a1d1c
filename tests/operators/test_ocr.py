"""ocr.ppocr and ocr.tesseract on short pages rendered at 150 DPI from born-digital PDFs, whose text
layer is the ground truth; scanned pages from pdf.extract get their text filled; bad images are rejected."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from operators.base import get_operator, run_operator
from operators.ocr.assemble import cer, edit_distance
from operators.ocr.ops import PpOcrRecognizer, TesseractRecognizer
from operators.pdf.extract import PdfExtractor
from operators.pdf.synth import make_text_pages, rasterise, stdlib_paragraphs
from operators.sample import Rejection, Sample


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """Five lines of real body text (10 pt serif) rendered at 150 DPI, and their text layer."""
    import pymupdf

    d = tmp_path_factory.mktemp("ocr")
    make_text_pages(d / "body.pdf", stdlib_paragraphs()[4:], 1, font="serif", fontsize=10)
    doc = pymupdf.open(str(d / "body.pdf"))
    # flags=0: ligatures expanded (fl, not U+FB02), as a reader would type the text
    lines = [ln for b in doc[0].get_text("dict", flags=0)["blocks"] for ln in b["lines"]][:5]
    clip = pymupdf.Rect(lines[0]["bbox"]) | pymupdf.Rect(lines[-1]["bbox"])
    clip = pymupdf.Rect(clip.x0 - 6, clip.y0 - 2, clip.x1 + 6, clip.y1 + 2)
    truth = "\n".join("".join(sp["text"] for sp in ln["spans"]) for ln in lines)
    png = doc[0].get_pixmap(dpi=150, clip=clip).tobytes("png")
    # the same lines as a one-page 'scan' (an image-only PDF) for the pdf.extract -> OCR route
    short = pymupdf.open()
    p = short.new_page(width=clip.width + 72, height=clip.height + 72)
    p.show_pdf_page(pymupdf.Rect(36, 36, 36 + clip.width, 36 + clip.height), doc, 0, clip=clip)
    short.save(str(d / "short.pdf"))
    rasterise(d / "short.pdf", d / "scan.pdf", dpi=150)
    return {"png": png, "truth": truth, "scan": d / "scan.pdf", "dir": d}


@pytest.fixture(scope="module")
def ppocr():
    op = PpOcrRecognizer({"threads": 2})
    op.ensure_setup()
    yield op
    op.teardown()


@pytest.fixture(scope="module")
def tesseract():
    op = TesseractRecognizer({})
    op.ensure_setup()
    yield op
    op.teardown()


def _image_sample(png: bytes, key: str = "img-0001") -> Sample:
    s = Sample(key=key, input=f"{key}.png", source="image", task="doc_ocr", category="document_ocr", stage=[1, 2])
    s.add_image(png, "png")
    return s


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("same", "same") == 0
    assert cer("a  b\nc", "a b c") == 0.0


@pytest.mark.parametrize("engine,max_cer", [("ppocr", 0.03), ("tesseract", 0.05)])
def test_ocr_cer_on_rendered_text(page, engine, max_cer, request):
    op = request.getfixturevalue(engine)
    out = run_operator(op, [_image_sample(page["png"])])
    s = out[0]
    assert isinstance(s, Sample) and s.text.startswith("<image>\n")
    lines = s.meta["ocr"]["lines"]
    assert len(lines) == 5  # one per visual line, in order
    assert all(set(ln) == {"text", "box", "conf"} and 0 < ln["conf"] <= 1 for ln in lines)
    assert [ln["box"][1] for ln in lines] == sorted(ln["box"][1] for ln in lines)
    err = cer(s.text.removeprefix("<image>\n"), page["truth"])
    print(f"{engine} CER {err:.4f} on {len(page['truth'])} chars")
    assert err <= max_cer
    assert s.meta["needs_ocr"] is False and s.scores["ocr_confidence"] > 0.8


def test_line_crops_are_scene_text_samples(page, ppocr):
    out = run_operator(ppocr, [_image_sample(page["png"], "img-crops")])
    crops = [s for s in out if isinstance(s, Sample) and s.category == "scene_text_ocr"]
    assert 3 <= len(crops) <= 5
    for c in crops:
        assert c.key.startswith("img-crops-l") and c.stage == [2] and c.meta["conf"] >= 0.9
        w, h = Image.open(io.BytesIO(c.image_bytes[0])).size
        assert w > 4 * h and 20 < h < 80  # a single text line at 150 DPI
        assert c.text.removeprefix("<image>\n") in " ".join(page["truth"].split())


def test_scanned_pdf_pages_get_their_text_from_ocr(page, ppocr):
    ex = PdfExtractor({"inputs": str(page["scan"]), "dpi": 150, "emit": ["doc_ocr", "ocr_sft"]})
    pages = ex.run()
    ex.teardown()
    assert [s.meta["needs_ocr"] for s in pages] == [True, True]
    out = run_operator(ppocr, pages)
    doc, sft = [s for s in out if s.category in ("document_ocr", "inhouse_taxonomy")]
    assert cer(doc.text.removeprefix("<image>\n"), page["truth"]) <= 0.03
    assert sft.messages[1]["content"] == doc.text.removeprefix("<image>\n")  # one OCR, shared by both
    assert not doc.meta["needs_ocr"] and doc.meta["ocr"]["engine"] == "rapidocr"
    assert any(s.category == "scene_text_ocr" for s in out)


def test_pages_with_text_pass_through_untouched(ppocr):
    s = _image_sample(b"not even decoded", "img-has-text")
    s.text = "<image>\nAlready transcribed."
    assert run_operator(ppocr, [s]) == [s]


def test_bad_images_are_rejected(page, tesseract, tmp_path):
    big = io.BytesIO()
    Image.new("L", (7000, 6000), 255).save(big, "PNG")
    white = io.BytesIO()
    Image.new("RGB", (400, 200), "white").save(white, "PNG")
    samples = [_image_sample(b"\x89PNG\r\n\x1a\n garbage", "img-bad"), _image_sample(big.getvalue(), "img-big"),
               _image_sample(white.getvalue(), "img-white")]
    out = run_operator(tesseract, samples)
    assert [(r.key, r.reason) for r in out] == [
        ("img-bad", "bad_image"), ("img-big", "image_too_large"), ("img-white", "no_text_found")]
    assert all(isinstance(r, Rejection) for r in out)


def test_ocr_timeout_kills_the_worker(page):
    op = TesseractRecognizer({"timeout_s": 0.05})
    op.ensure_setup()
    pid = op._worker.pid
    out = run_operator(op, [_image_sample(page["png"], "img-slow")])
    assert [(r.reason, r.key) for r in out] == [("ocr_timeout", "img-slow")]
    assert not op._worker.alive() and pid is not None
    op.teardown()


def test_registered_with_the_same_interface():
    assert get_operator("ocr.ppocr") is PpOcrRecognizer and get_operator("ocr.tesseract") is TesseractRecognizer
    with pytest.raises(ValueError, match="engine"):
        PpOcrRecognizer.parse_config({"engine": "easyocr"})


def test_paddleocr_engine_with_local_models(page):
    model_dir = os.environ.get("DSVL_PADDLE_MODELS", "")
    try:
        import paddleocr  # noqa: F401
    except ImportError:
        pytest.skip("paddleocr is not installed (it pins numpy<2.4, so it lives outside this venv); "
                    "install it with local PP-OCR models and set DSVL_PADDLE_MODELS=<dir with det/ and rec/>")
    if not (os.path.isdir(os.path.join(model_dir, "det")) and os.path.isdir(os.path.join(model_dir, "rec"))):
        pytest.skip(f"DSVL_PADDLE_MODELS={model_dir!r} has no det/ and rec/ PP-OCR model directories")
    op = PpOcrRecognizer({"engine": "paddleocr", "paddle_model_dir": model_dir})
    out = run_operator(op, [_image_sample(page["png"])])
    op.teardown()
    assert cer(out[0].text.removeprefix("<image>\n"), page["truth"]) <= 0.05
