"""The OCR side of the killable worker: one engine per worker process, PNG/JPEG bytes in, lines out."""

from __future__ import annotations

import io
import time
from typing import Any

from operators.base import Reject
from operators.ocr.assemble import assemble
from operators.ocr.engines import make_engine


class OcrServer:
    """Handles ("ocr", image_bytes, max_pixels) requests with the engine it loaded at start."""

    def __init__(self, kind: str, opts: dict[str, Any]):
        self.engine = make_engine(kind, **opts)

    def handle(self, msg: tuple[Any, ...]) -> dict[str, Any]:
        if msg[0] != "ocr":
            raise ValueError(f"unknown request {msg[0]!r}")
        return self.ocr(msg[1], msg[2])

    def ocr(self, data: bytes, max_pixels: int) -> dict[str, Any]:
        import numpy as np
        from PIL import Image

        try:
            im = Image.open(io.BytesIO(data))  # reads the header only: the size is known before decoding
        except Exception as e:  # noqa: BLE001 - PIL raises many types for undecodable data
            raise Reject("bad_image", f"{type(e).__name__}: {e}") from None
        if im.width * im.height > max_pixels:
            raise Reject("image_too_large", f"{im.width} x {im.height} pixels (max {max_pixels})")
        try:
            rgb = np.asarray(im.convert("RGB"))
        except Exception as e:  # noqa: BLE001 - truncated or corrupt image data
            raise Reject("bad_image", f"{type(e).__name__}: {e}") from None
        t0 = time.perf_counter()
        lines = self.engine(rgb)
        ordered, text = assemble(lines, rgb.shape[1]) if self.engine.name != "tesseract" else (
            lines, "\n".join(ln.text for ln in lines))
        return {
            "lines": [ln.to_dict() for ln in ordered],
            "text": text,
            "size": [int(rgb.shape[1]), int(rgb.shape[0])],
            "seconds": round(time.perf_counter() - t0, 3),
        }
