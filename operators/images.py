"""Image-caption pairs from folders: `photo.jpg` + `photo.txt` (or a `captions.jsonl`) -> caption samples.

Images are decoded fully with Pillow before they are accepted, so truncated files and
decompression bombs become rejections here instead of crashing a trainer later.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from operators.base import OperatorConfig, Reject, Resources, Source, register
from operators.sample import Rejection, Sample, content_key
from operators.text import expand_inputs

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ImageFolderConfig(OperatorConfig):
    inputs: list[str] = Field(description="image files, folders or globs")
    captions: str | None = Field(None, description="optional JSONL of {file, caption}; else sidecar .txt")
    min_side: int = Field(16, ge=1)
    max_pixels: int = Field(64_000_000, ge=1, description="larger images are rejected as decompression bombs")
    max_bytes: int = Field(50 << 20, ge=1)
    min_caption_chars: int = Field(3, ge=0)
    license: str = "unknown"
    stage: list[int] = Field(default_factory=lambda: [1, 2])

    @field_validator("inputs", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


def check_image(data: bytes, max_pixels: int, min_side: int) -> tuple[str, int, int]:
    """Decode fully; returns (format, width, height) or raises Reject with a specific reason."""
    from PIL import Image

    if not data:
        raise Reject("empty_image", "0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise Reject("image_too_large", f"{w}x{h} > {max_pixels} pixels")
                fmt = (im.format or "").lower()
                im.load()
    except Reject:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise Reject("decompression_bomb", str(e)[:200]) from None
    except OSError as e:
        raise Reject("corrupt_image", f"{type(e).__name__}: {e}"[:300]) from None
    except Exception as e:  # Pillow raises assorted errors on hostile files
        raise Reject("corrupt_image", f"{type(e).__name__}: {e}"[:300]) from None
    if min(w, h) < min_side:
        raise Reject("image_too_small", f"{w}x{h} < {min_side}")
    return fmt, w, h


@register("images.folder")
class ImageCaptionReader(Source):
    """One image file is one input unit; its caption comes from a sidecar .txt or a captions JSONL."""

    Config = ImageFolderConfig
    resources = Resources(batch_size=8)
    config: ImageFolderConfig

    def setup(self) -> None:
        self._captions: dict[str, str] = {}
        if self.config.captions:
            for line in Path(self.config.captions).read_text(encoding="utf-8").splitlines():
                if line.strip():
                    d = json.loads(line)
                    self._captions[Path(d["file"]).name] = d["caption"]

    def list_inputs(self) -> list[str]:
        return [p for p in expand_inputs(self.config.inputs, IMAGE_SUFFIXES) if p.lower().endswith(IMAGE_SUFFIXES)]

    def read(self, input: str) -> Iterable[Sample | Rejection]:
        cfg = self.config
        path = Path(input)
        if path.stat().st_size > cfg.max_bytes:
            raise Reject("file_too_large", f"{path.stat().st_size} bytes > {cfg.max_bytes}")
        caption = self._captions.get(path.name)
        if caption is None:
            side = path.with_suffix(".txt")
            caption = side.read_text(encoding="utf-8", errors="strict") if side.exists() else None
        if caption is None or len(caption.strip()) < cfg.min_caption_chars:
            raise Reject("missing_caption", f"no caption for {path.name}")
        data = path.read_bytes()
        fmt, w, h = check_image(data, cfg.max_pixels, cfg.min_side)
        ext = {"jpeg": "jpg", "png": "png", "webp": "webp", "gif": "gif", "bmp": "bmp", "tiff": "tiff"}.get(fmt)
        if ext is None:
            raise Reject("unsupported_image_format", fmt or "unknown")
        s = Sample(content_key("img", input, data), input, "images", "caption", "caption", list(cfg.stage),
                   text="<image>\n" + caption.strip(), lang=None,
                   provenance={"input": input, "path": input, "license": cfg.license},
                   meta={"width": w, "height": h})
        s.add_image(data, ext)
        yield s
