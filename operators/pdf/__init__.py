"""PDF operators: `pdf.extract` (text layer, layout, markdown, renders, figures, scanned-page routing).

Heavy imports (pymupdf) happen inside the worker process, never at import time.
"""

from operators.pdf.extract import PdfExtractor

__all__ = ["PdfExtractor"]
