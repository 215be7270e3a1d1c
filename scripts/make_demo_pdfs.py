"""Make the demo PDFs with PyMuPDF from real text on this machine (stdlib docstrings, license texts):
multi-page documents with headings, lists, a ruled table, figures with captions, a two-column page,
a rotated page, and one rasterised 'scanned' PDF. Usage: python scripts/make_demo_pdfs.py [OUT_DIR]
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from operators.pdf.synth import make_document, make_text_pages, rasterise, stdlib_paragraphs

log = logging.getLogger("make_demo_pdfs")
LICENSE = Path("/usr/share/common-licenses/Apache-2.0")


def main(out_dir: str = "out/demo-inputs/pdfs") -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    json_csv = stdlib_paragraphs(("json", "csv", "textwrap", "string"))
    made.append(out / "stdlib_text_formats.pdf")
    make_document(made[-1], "Text formats in the Python standard library", json_csv[:40],
                  header="Python standard library notes")
    logs = stdlib_paragraphs(("logging", "argparse", "subprocess"))
    made.append(out / "stdlib_tools_two_column.pdf")
    make_document(made[-1], "Logging, arguments and processes", logs[:36], columns=2, rotated_page=False,
                  header="Python standard library notes")
    if LICENSE.is_file():  # real running text: the Apache License 2.0 shipped with Debian
        text = LICENSE.read_text(encoding="utf-8")
        paras = [" ".join(p.split()) for p in text.split("\n\n") if len(p.split()) > 8]
        made.append(out / "apache_license.pdf")
        make_text_pages(made[-1], paras, 3, font="serif", fontsize=10)
    scan_src = out / "_scan_source.pdf"
    heaps = stdlib_paragraphs(("heapq", "itertools", "functools"))
    make_document(scan_src, "Heaps and iterators", heaps[:8], two_column_page=False, table=False,
                  rotated_page=False, figures=0)
    made.append(out / "scanned_heapq.pdf")
    rasterise(scan_src, made[-1], dpi=150)
    scan_src.unlink()
    for p in made:
        log.info("wrote %s (%d bytes)", p, p.stat().st_size)
    return made


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main(*sys.argv[1:2])
