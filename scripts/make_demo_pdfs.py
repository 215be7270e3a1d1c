"""Make the demo PDFs with PyMuPDF from real text on this machine (stdlib docstrings, license texts):
multi-page documents with headings, lists, a ruled table, figures with captions, a two-column page,
a rotated page, and one rasterised 'scanned' PDF. Usage: python scripts/make_demo_pdfs.py [OUT_DIR]
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from operators.pdf.synth import make_demo_set

log = logging.getLogger("make_demo_pdfs")

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for p in make_demo_set(sys.argv[1] if len(sys.argv) > 1 else "out/demo-inputs/pdfs"):
        log.info("wrote %s (%d bytes)", p, p.stat().st_size)
