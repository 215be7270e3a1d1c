"""`ocr.ppocr` and `ocr.tesseract`: fill the text of pages that need OCR (scanned pages from
`pdf.extract`, bare images) and cut confident text lines into scene-text-style OCR samples.

Each actor owns one engine inside a killable worker process, so a hanging page is a rejection.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import Field

from operators.base import Operator, OperatorConfig, Reject, Resources, register
from operators.pdf.worker import KillableWorker, RemoteError, WorkerDied, WorkerTimeout
from operators.sample import Rejection, Sample

log = logging.getLogger(__name__)


class OcrConfig(OperatorConfig):
    force: bool = Field(False, description="OCR every image, not only pages marked needs_ocr or without text")
    timeout_s: float = Field(180.0, gt=0, description="time limit for one image")
    threads: int = Field(0, ge=0, description="engine threads per worker (0: the engine's default)")
    max_image_pixels: int = Field(40_000_000, gt=0, description="larger images are rejected")
    crops: bool = Field(True, description="emit confident text lines as scene-text OCR samples")
    min_line_conf: float = Field(0.9, ge=0, le=1, description="confidence a line needs to become a crop")
    min_crop_chars: int = Field(4, ge=1)
    max_crops: int = Field(12, ge=0, description="crops per page")
    worker_memory_mb: int = Field(4096, ge=512)


class _OcrOperator(Operator):
    """Shared behaviour; subclasses name the engine and its options."""

    resources = Resources(actor=True, workers=1, batch_size=4)
    engine_kind: ClassVar[str] = ""
    config: OcrConfig

    def engine_opts(self) -> dict[str, Any]:
        return {"threads": self.config.threads}

    def setup(self) -> None:
        self._worker = KillableWorker("operators.ocr.server:OcrServer",
                                      {"kind": self.engine_kind, "opts": self.engine_opts()},
                                      memory_mb=self.config.worker_memory_mb)
        try:
            self._worker.start()  # loads the models once per actor
        except (WorkerDied, WorkerTimeout) as e:
            from operators.base import SystematicError

            raise SystematicError(f"{self.name}: the OCR engine does not start: {e}") from e
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def teardown(self) -> None:
        if getattr(self, "_worker", None) is not None:
            self._worker.close()

    def ocr_image(self, data: bytes) -> dict[str, Any]:
        """OCR one encoded image (cached: the doc-OCR and SFT samples of a page share one render)."""
        self.ensure_setup()
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._cache:
            self._cache.move_to_end(digest)
            return self._cache[digest]
        try:
            res = self._worker.call(("ocr", data, self.config.max_image_pixels), timeout=self.config.timeout_s)
        except WorkerTimeout:
            raise Reject("ocr_timeout", f"{self.engine_kind} took over {self.config.timeout_s:g} s") from None
        except WorkerDied as e:
            raise Reject("ocr_crash", str(e)) from None
        except RemoteError as e:
            raise Reject(e.reason, e.detail) from None
        self._cache[digest] = res
        while len(self._cache) > 4:
            self._cache.popitem(last=False)
        return res

    def wants_ocr(self, s: Sample) -> bool:
        if self.config.force or s.meta.get("needs_ocr"):
            return True
        if s.messages is not None:
            return any(m["role"] == "assistant" and not m["content"].strip() for m in s.messages)
        return s.text is None or s.text.replace("<image>", "").strip() == ""

    def process(self, sample: Sample) -> Iterable[Sample | Rejection]:
        if not self.wants_ocr(sample):
            return [sample]
        if not sample.image_bytes:
            raise Reject("no_image", "nothing to OCR")
        res = self.ocr_image(sample.image_bytes[0])
        text = res["text"].strip()
        if not text:
            raise Reject("no_text_found", f"{self.engine_kind}: no text lines in a {res['size'][0]} x "
                                          f"{res['size'][1]} image")
        confs = [ln["conf"] for ln in res["lines"]]
        mean_conf = round(sum(confs) / len(confs), 4)
        if sample.messages is not None:
            for m in sample.messages:
                if m["role"] == "assistant" and (not m["content"].strip() or self.config.force):
                    m["content"] = text
        elif sample.text is None or sample.text.replace("<image>", "").strip() == "" or self.config.force:
            sample.text = "<image>\n" + text
        sample.meta = {**sample.meta, "needs_ocr": False,
                       "ocr": {"engine": self.engine_kind, "lines": res["lines"], "mean_conf": mean_conf}}
        sample.scores = {**sample.scores, "ocr_confidence": mean_conf}
        out: list[Sample | Rejection] = [sample]
        if self.config.crops and sample.messages is None:  # one set of crops per page image
            out.extend(self.line_crops(sample, res))
        return out

    def line_crops(self, page: Sample, res: dict[str, Any]) -> list[Sample]:
        """Confident lines cut out of the page: image -> line text, like scene-text OCR data."""
        from PIL import Image

        c = self.config
        good = [(k, ln) for k, ln in enumerate(res["lines"])
                if ln["conf"] >= c.min_line_conf and len(ln["text"].strip()) >= c.min_crop_chars]
        if not good:
            return []
        step = max(1, len(good) // max(1, c.max_crops))  # spread over the page, deterministically
        chosen = good[::step][: c.max_crops]
        img = Image.open(io.BytesIO(page.image_bytes[0])).convert("RGB")
        out = []
        for k, ln in chosen:
            x0, y0, x1, y1 = ln["box"]
            pad = max(2.0, 0.15 * (y1 - y0))
            box = (int(max(0, x0 - pad)), int(max(0, y0 - pad)), int(min(img.width, x1 + pad)),
                   int(min(img.height, y1 + pad)))
            if box[2] - box[0] < 8 or box[3] - box[1] < 8:
                continue
            buf = io.BytesIO()
            img.crop(box).save(buf, "PNG")
            s = Sample(key=f"{page.key}-l{k:03d}", input=page.input, source=page.source, task="scene_text_ocr",
                       category="scene_text_ocr", stage=[2], text="<image>\n" + ln["text"].strip(),
                       provenance=dict(page.provenance))
            s.provenance.pop("operators", None)
            s.add_image(buf.getvalue(), "png")
            s.meta = {"parent": page.key, "conf": ln["conf"], "box": list(box), "engine": self.engine_kind}
            s.scores = {"ocr_confidence": ln["conf"]}
            out.append(s)
        return out


@register("ocr.ppocr")
class PpOcrRecognizer(_OcrOperator):
    """PaddleOCR's PP-OCR models: on ONNX Runtime via rapidocr (default) or the paddleocr package."""

    version = "1"

    class Config(OcrConfig):
        engine: Literal["rapidocr", "paddleocr"] = Field("rapidocr", description="runtime for the PP-OCR models")
        paddle_model_dir: str | None = Field(None, description="paddleocr engine: dir with det/ and rec/ models")
        use_cls: bool = Field(False, description="per-line 0/180 direction classifier (rapidocr)")
        upscale: float = Field(1.0, ge=0.5, le=4.0, description="resize factor before detection (rapidocr)")
        box_thresh: float = Field(0.5, gt=0, lt=1)
        unclip_ratio: float = Field(1.6, gt=0)

    config: Config

    @property
    def engine_kind(self) -> str:  # type: ignore[override]
        return self.config.engine

    def engine_opts(self) -> dict[str, Any]:
        c = self.config
        if c.engine == "paddleocr":
            if not c.paddle_model_dir:
                raise ValueError("ocr.ppocr: engine 'paddleocr' needs paddle_model_dir (local det/ and rec/ models)")
            return {"model_dir": c.paddle_model_dir, "threads": c.threads}
        return {"threads": c.threads, "use_cls": c.use_cls, "upscale": c.upscale, "box_thresh": c.box_thresh,
                "unclip_ratio": c.unclip_ratio}


@register("ocr.tesseract")
class TesseractRecognizer(_OcrOperator):
    """Debian's Tesseract 5 with the same output as `ocr.ppocr`, for comparison and as a fallback."""

    version = "1"
    engine_kind = "tesseract"

    class Config(OcrConfig):
        lang: str = Field("eng", description="tesseract language pack(s), e.g. eng or eng+deu")
        psm: int = Field(3, ge=0, le=13, description="tesseract page segmentation mode")

    config: Config

    def engine_opts(self) -> dict[str, Any]:
        return {"lang": self.config.lang, "psm": self.config.psm, "threads": max(1, self.config.threads)}
