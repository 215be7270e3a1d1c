"""pdf.extract on born-digital and scanned PDFs built in the test from real stdlib docstrings."""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from operators.base import get_operator
from operators.pdf.extract import PdfExtractor
from operators.pdf.layout import reading_order, scan_verdict
from operators.pdf.synth import make_document, rasterise, stdlib_paragraphs
from operators.sample import Rejection, Sample

KEY_RE = re.compile(r"^pdf-[0-9a-f]{16}-p\d{4}$")


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pdfs")
    paras = stdlib_paragraphs()
    born = d / "json_notes.pdf"
    pages = make_document(born, "The json module", paras[:40], header="Python standard library notes")
    scanned = d / "scanned.pdf"
    make_document(d / "short.pdf", "Heaps", paras[40:46], two_column_page=False, table=False,
                  rotated_page=False, figures=0)
    rasterise(d / "short.pdf", scanned, dpi=100)
    (d / "short.pdf").unlink()
    return {"born": born, "pages": pages, "scanned": scanned, "paras": paras}


@pytest.fixture(scope="module")
def extracted(pdfs):
    op = PdfExtractor({"inputs": str(pdfs["born"].parent), "dpi": 72})
    assert op.list_inputs() == sorted([str(pdfs["born"]), str(pdfs["scanned"])])
    out = op.run()
    op.teardown()
    return out


def test_registered_and_config_validated():
    assert get_operator("pdf.extract") is PdfExtractor
    with pytest.raises(ValueError, match="emit"):
        PdfExtractor.parse_config({"emit": ["bogus"]})
    with pytest.raises(ValueError, match="unknown key"):
        PdfExtractor.parse_config({"dpii": 3})


def test_born_digital_pages_become_samples(pdfs, extracted):
    born = [s for s in extracted if isinstance(s, Sample) and s.input == str(pdfs["born"])]
    doc_ocr = [s for s in born if s.task == "doc_ocr"]
    sft = [s for s in born if s.task == "ocr_transcription"]
    assert len(doc_ocr) == pdfs["pages"] == len(sft)
    assert all(KEY_RE.match(s.key) for s in doc_ocr)
    assert [s.meta["page"] for s in doc_ocr] == list(range(1, pdfs["pages"] + 1))
    first = doc_ocr[0]
    assert first.category == "document_ocr" and first.stage == [1, 2] and first.images == ["0.png"]
    img = Image.open(io.BytesIO(first.image_bytes[0]))
    assert img.size == (612, 792)  # letter at 72 dpi
    md = first.text
    assert md.startswith("<image>\n# The json module")
    assert "## Section 1" in md
    assert len(re.findall(r"^- ", md, re.MULTILINE)) >= 4  # the bullet list
    assert re.search(r"^1\. ", md, re.MULTILINE) or any(re.search(r"^1\. ", s.text, re.MULTILINE) for s in doc_ocr[:3])
    assert "Python standard library notes" not in md  # running header kept out of the markdown
    assert first.meta["headers"] == ["Python standard library notes"] and first.meta["footers"] == ["1"]
    assert first.meta["fonts"] and first.meta["text_coverage"] > 0.05 and first.meta["needs_ocr"] is False
    s = sft[0]
    assert s.category == "inhouse_taxonomy" and s.stage == [3] and s.key == first.key + "-sft"
    assert s.taxonomy[0]["id"] == "printed-text"
    assert s.messages[0]["content"].startswith("<image>\n") and "JSON" in s.messages[1]["content"]


def test_table_two_columns_and_rotated_page(pdfs, extracted):
    doc_ocr = [s for s in extracted if isinstance(s, Sample) and s.task == "doc_ocr" and s.input == str(pdfs["born"])]
    table = [s for s in doc_ocr if "|Module|Kind|Purpose|" in s.text]
    assert len(table) == 1 and "|heapq|algorithm|heap queue|" in table[0].text
    assert table[0].meta["tables"] == 1
    # the two-column notes pages: paragraphs come out in the source order (left column, then right)
    paras = pdfs["paras"][20:40]
    notes = [s for s in doc_ocr if ": notes" in s.text]
    assert notes
    text = " ".join(" ".join(s.text.split()) for s in doc_ocr[notes[0].meta["page"] - 1:])
    pos = [text.find(p[:60]) for p in paras if text.find(p[:60]) >= 0]
    assert len(pos) >= 10 and pos == sorted(pos)
    rotated = doc_ocr[-1]
    assert rotated.meta["rotation"] == 90 and rotated.meta["render_rotation"] == 0
    img = Image.open(io.BytesIO(rotated.image_bytes[0]))
    assert img.width < img.height  # rendered upright, not sideways
    assert pdfs["paras"][39][:50] in " ".join(rotated.text.split())


def test_interleaved_document_has_figures_with_captions(pdfs, extracted):
    inter = [s for s in extracted if isinstance(s, Sample) and s.category == "interleaved"]
    assert len(inter) == 1
    doc = inter[0]
    assert doc.stage == [2] and doc.key.endswith("-d000")
    assert len(doc.images) >= 2 and doc.text.count("<image>") == len(doc.images)
    assert re.search(r"<image>\n\nFigure 1: ", doc.text)
    for data in doc.image_bytes:
        w, h = Image.open(io.BytesIO(data)).size
        assert 200 < w < 400 and 100 < h < 300  # the chart, cropped (260 pt wide at 72 dpi)


def test_scanned_pages_are_routed_to_ocr(pdfs, extracted):
    items = [it for it in extracted if it.input == str(pdfs["scanned"])]
    pages = [s for s in items if isinstance(s, Sample) and s.task == "doc_ocr"]
    assert pages and all(s.meta["needs_ocr"] and s.meta["text_layer"] == "no_text_layer" for s in pages)
    assert all(s.text == "<image>\n" for s in pages)
    rej = [r for r in items if isinstance(r, Rejection)]
    assert [r.reason for r in rej] == ["no_text_layer"]  # no interleaved document from scans


def test_keys_come_from_file_content(pdfs, extracted):
    digest = hashlib.sha256(pdfs["born"].read_bytes()).hexdigest()[:16]
    keys = [s.key for s in extracted if isinstance(s, Sample) and s.input == str(pdfs["born"])]
    assert keys[0] == f"pdf-{digest}-p0001" and keys[-1] == f"pdf-{digest}-d000"
    assert len(set(keys)) == len(keys)


def test_reading_order_and_scan_verdict_units():
    # title across both columns, then left column (2 blocks), right column (2 blocks), then a footer line
    boxes = [(50, 50, 550, 70), (320, 100, 550, 200), (50, 100, 290, 200), (50, 210, 290, 300),
             (320, 210, 550, 300), (50, 320, 550, 340)]
    assert reading_order(boxes, 600) == [0, 2, 3, 1, 4, 5]
    assert scan_verdict(0, "", 0.9) == (True, "no_text_layer")
    assert scan_verdict(0, "", 0.0) == (False, "blank")
    assert scan_verdict(200, "\ufffd" * 150 + "ab" * 25, 0.0) == (True, "garbage_text_layer")
    assert scan_verdict(200, "%$#@!&*" * 30, 0.0) == (True, "garbage_text_layer")
    assert scan_verdict(200, "Plain readable English text. " * 8, 0.0) == (False, "text_layer")


def test_recipe_loads_and_run_op_writes_rows(pdfs, tmp_path):
    import json

    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.recipe import load_recipe

    recipe_path = Path(__file__).resolve().parents[2] / "pipelines" / "documents.yaml"
    recipe = load_recipe(recipe_path, [f"inputs={pdfs['scanned']}", "dpi=72"])
    assert [s.name for s in recipe.sources[0][1]] == ["ocr.ppocr", "filter.ocr_confidence"]
    res = CliRunner().invoke(app, ["run-op", "pdf.extract", str(pdfs["scanned"]), "--out", str(tmp_path),
                                   "--set", "dpi=72", "--set", "emit=doc_ocr"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert rows and all(r["meta"]["needs_ocr"] for r in rows)
    assert all(os.path.getsize(f) > 1000 for r in rows for f in r["image_files"])
