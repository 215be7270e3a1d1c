"""`dsvl-data report DIR` on a catalog written by the engine's own catalog writer: the page is
self-contained, escapes hostile text, and its plots load in headless Chromium.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image
from typer.testing import CliRunner

from operators.sample import Done, Rejection, Sample, items_to_table
from pipelines.catalog import write_catalog
from pipelines.cli import app
from pipelines.pool import Pool, PoolWriter
from pipelines.report import collect

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (120, 80), color).save(buf, "PNG")
    return buf.getvalue()


def make_build(out: Path) -> None:
    """A small build folder: pool Parquet parts and catalog.duckdb, as the engine writes them."""
    items: list = []
    for i in range(6):
        s = Sample(key=f"cap-{i}", input=f"caps.jsonl#{i}", source="caption.jsonl", task="caption",
                   category="caption", stage=[1, 2], text=f"A colour swatch number {i}." + (HOSTILE if i == 0 else ""),
                   lang="en", scores={"lang_score": 0.5 + i / 20, "quality": i / 6},
                   taxonomy=[{"id": "object-attribute-description", "confidence": 0.9, "source": "tagger"}])
        s.add_image(_png((40 * i, 100, 200)), "png")
        items += [s, Done(s.input, 1)]
    for i, (lang, text) in enumerate([("de", "Ein kurzer deutscher Satz."), ("fr", "Une phrase en français.")]):
        s = Sample(key=f"txt-{i}", input=f"text.jsonl#{i}", source="text.jsonl", task="text",
                   category="text_only", stage=[2], text=text, lang=lang, scores={"lang_score": 0.9})
        items += [s, Done(s.input, 1)]
    items += [Rejection("caps.jsonl#9", "filter.image", "blank_image", "grey std 0.00 < 3.0", "cap-9"),
              Done("caps.jsonl#9", 0)]
    writer = PoolWriter(out / "pool", run=1)
    writer.add(items_to_table(items))
    writer.close()
    pool = Pool(out / "pool")
    cands = pool.candidates()
    removed = [{"input": "caps.jsonl#5", "key": "cap-5", "operator": "dedup.near", "reason": "near_duplicate",
                "detail": "duplicate_of=cap-4"}]
    kept = [k for k in cands.column("key").to_pylist() if k != "cap-5"]
    sel = pa.table({"stream": ["stage1-multimodal" if k.startswith("cap") else "stage2-text" for k in kept],
                    "pos": list(range(len(kept))), "key": kept, "copy": pa.array([0] * len(kept), pa.int32()),
                    "member_key": kept, "shard": ["000000.tar"] * len(kept)})
    shards = pa.table({"stream": ["stage1-multimodal", "stage2-text"], "name": ["000000.tar"] * 2,
                       "count": [5, 2], "bytes": [20480, 4096], "sha256": ["0" * 64, "1" * 64]})
    inputs = pa.table({"input": sorted({it.input for it in items}), "source_op": ["x"] * 9})
    mixture = pa.table({"stage": ["1"], "category": ["caption"], "ratio": [1.0], "target": [5], "achieved": [5],
                        "available": [5]})
    runs = [{"run": 1, "recipe": "test.yaml", "name": "test", "started": "2026-01-01T00:00:00Z",
             "seconds": 1.0, "status": "ok", "resume": False, "info": "{}"}]
    write_catalog(out, pool.con, cands, removed, sel, shards, inputs, mixture, runs)


def test_collect_counts_from_catalog(tmp_path):
    make_build(tmp_path)
    data = collect(tmp_path)
    assert data["summary"] == {"samples": 8, "kept": 7, "inputs": 9, "rejected": 2, "shards": 2}
    charts = {c.title: dict(c.rows) for c in data["charts"]}
    assert charts["Samples per source"] == {"caption.jsonl": 6, "text.jsonl": 2}
    assert charts["Samples per language"] == {"en": 6, "de": 1, "fr": 1}
    assert charts["Samples per taxonomy leaf"] == {"object-attribute-description": 6}
    assert charts["Selected samples per stream"] == {"stage1-multimodal": 5, "stage2-text": 2}
    assert charts["Rejections (phase:operator:reason)"] == {"build:filter.image:blank_image": 1,
                                                           "assembly:dedup.near:near_duplicate": 1}
    hists = {h.title: dict(h.rows) for h in data["hists"]}
    assert hists["lang_score"]["n"] == 8 and hists["quality"]["max"] == round(5 / 6, 4)
    assert [t.key for t in data["gallery"]] == ["cap-0", "cap-1", "cap-2", "cap-3", "cap-4"]  # cap-5 removed
    assert all(len(t.images) == 1 for t in data["gallery"])


@pytest.mark.browser
def test_report_opens_in_chromium_with_plots(tmp_path):
    from playwright.sync_api import sync_playwright

    make_build(tmp_path)
    target = tmp_path / "site" / "report.html"
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(target)])
    assert res.exit_code == 0, res.output
    html = target.read_text()
    assert "<script>" not in html and "&lt;script&gt;window.__pwned" in html  # sample text is escaped
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)  # nothing outside the file
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(target.as_uri())
            page.wait_for_load_state("load")
            plots = page.eval_on_selector_all(
                "img.plot", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
            thumbs = page.eval_on_selector_all("img.thumb", "els => els.map(e => e.naturalWidth)")
            pwned = page.evaluate("window.__pwned || 0")
            body = page.inner_text("body")
        finally:
            browser.close()
    assert len(plots) == 7 + 2  # seven count charts and two score histograms
    assert all(ok and w > 100 and h > 50 for ok, w, h in plots), plots
    assert thumbs == [120] * 5
    assert pwned == 0
    assert "near_duplicate" in body and "A colour swatch number 3." in body


def test_report_cli_without_catalog_fails_cleanly(tmp_path):
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 1 and "no catalog" in res.output
    assert not (tmp_path / "report.html").exists()
