"""OCR operators: `ocr.ppocr` (PP-OCR via rapidocr/ONNX Runtime, or paddleocr) and `ocr.tesseract`.

Engines load inside a worker process per actor (`setup()`), never at import time.
"""

from operators.ocr.ops import PpOcrRecognizer, TesseractRecognizer

__all__ = ["PpOcrRecognizer", "TesseractRecognizer"]
