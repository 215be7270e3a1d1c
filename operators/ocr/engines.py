"""OCR engines behind one interface: an RGB image in, text lines (text, box, confidence) out.

PP-OCR runs on ONNX Runtime through rapidocr (models ship in its wheel) or through the paddleocr
package from local model directories; Tesseract is Debian's binary through pytesseract.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass
class OcrLine:
    text: str
    box: Box  # axis-aligned (x0, y0, x1, y1) in image pixels
    conf: float  # 0..1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["box"] = [round(v, 1) for v in self.box]
        d["conf"] = round(self.conf, 4)
        return d


def _quad_box(quad: Any) -> Box:
    xs = [float(p[0]) for p in quad]
    ys = [float(p[1]) for p in quad]
    return (min(xs), min(ys), max(xs), max(ys))


class RapidOcrEngine:
    """PP-OCR (det + rec, optional direction classifier) on ONNX Runtime via rapidocr's bundled models.

    The direction classifier is off by default: it squeezes each line to 192 px wide, and on long
    document lines it flips some of them by 180 degrees, which costs several points of CER on pages
    that `pdf.extract` already renders upright.
    """

    name = "ppocr"

    def __init__(self, threads: int = 0, use_cls: bool = False, upscale: float = 1.0, box_thresh: float = 0.5,
                 unclip_ratio: float = 1.6, text_score: float = 0.5, det_max_side: int = 2048):
        from rapidocr import RapidOCR

        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.use_cls": use_cls,
            "Global.text_score": text_score,
            "Global.max_side_len": 4096,
            "Det.box_thresh": box_thresh,
            "Det.unclip_ratio": unclip_ratio,
            # rapidocr's default ('min' side >= 736) blows a 1000 x 200 line strip up to 3700 x 736 px
            # before detection; a page at 150 DPI is already large enough, so only cap the long side.
            "Det.limit_type": "max",
            "Det.limit_side_len": det_max_side,
        }
        if threads > 0:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        self.upscale = upscale
        self.engine = RapidOCR(params=params)

    def __call__(self, img: Any) -> list[OcrLine]:
        import cv2

        scale = self.upscale
        if scale != 1.0:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        res = self.engine(img)
        if res.boxes is None or res.txts is None:
            return []
        out = []
        for quad, text, score in zip(res.boxes, res.txts, res.scores):
            x0, y0, x1, y1 = _quad_box(quad)
            out.append(OcrLine(text, (x0 / scale, y0 / scale, x1 / scale, y1 / scale), float(score)))
        return out


class TesseractEngine:
    """Tesseract 5 (LSTM) through pytesseract; words are grouped into its own lines, in its order."""

    name = "tesseract"

    def __init__(self, lang: str = "eng", psm: int = 3, threads: int = 1):
        import pytesseract

        os.environ["OMP_THREAD_LIMIT"] = str(max(1, threads))  # one worker = one core, like PP-OCR
        self.pt = pytesseract
        self.lang = lang
        self.config = f"--psm {psm}"
        self.version = str(pytesseract.get_tesseract_version())

    def __call__(self, img: Any) -> list[OcrLine]:
        d = self.pt.image_to_data(img, lang=self.lang, config=self.config, output_type=self.pt.Output.DICT)
        lines: dict[tuple[int, int, int], list[int]] = {}
        for i, word in enumerate(d["text"]):
            if word.strip() and float(d["conf"][i]) >= 0:
                lines.setdefault((d["block_num"][i], d["par_num"][i], d["line_num"][i]), []).append(i)
        out = []
        for idx in lines.values():  # dicts keep tesseract's reading order
            x0 = min(d["left"][i] for i in idx)
            y0 = min(d["top"][i] for i in idx)
            x1 = max(d["left"][i] + d["width"][i] for i in idx)
            y1 = max(d["top"][i] + d["height"][i] for i in idx)
            conf = sum(float(d["conf"][i]) for i in idx) / len(idx) / 100.0
            out.append(OcrLine(" ".join(d["text"][i] for i in idx), (x0, y0, x1, y1), conf))
        return out


class PaddleOcrEngine:
    """PP-OCR through the paddleocr package, from model directories on local disk (never a hub)."""

    name = "paddleocr"

    def __init__(self, model_dir: str, threads: int = 0):
        root = Path(model_dir)
        det, rec = root / "det", root / "rec"
        if not det.is_dir() or not rec.is_dir():
            raise FileNotFoundError(f"paddleocr needs {det} and {rec} (exported PP-OCR inference models)")
        from paddleocr import PaddleOCR  # optional: installed only where its models are provided

        kw: dict[str, Any] = {
            "text_detection_model_dir": str(det),
            "text_recognition_model_dir": str(rec),
            "use_doc_orientation_classify": False,
            "use_doc_unwarping": False,
            "use_textline_orientation": False,
        }
        if threads > 0:
            kw["cpu_threads"] = threads
        self.engine = PaddleOCR(**kw)

    def __call__(self, img: Any) -> list[OcrLine]:
        out = []
        for res in self.engine.predict(img):
            for quad, text, score in zip(res["rec_polys"], res["rec_texts"], res["rec_scores"]):
                out.append(OcrLine(text, _quad_box(quad), float(score)))
        return out


def make_engine(kind: str, **opts: Any) -> Any:
    if kind == "rapidocr":
        return RapidOcrEngine(**opts)
    if kind == "tesseract":
        return TesseractEngine(**opts)
    if kind == "paddleocr":
        return PaddleOcrEngine(**opts)
    raise ValueError(f"unknown OCR engine {kind!r}; known: rapidocr, tesseract, paddleocr")
