"""`quality.langid`: fastText lid.176 language identification of a sample's text (or page/OCR text).

Sets `sample.lang` and `scores["lang_score"]`; a recipe may keep only some languages above a score.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path

from pydantic import Field

from operators.base import Operator, OperatorConfig, Reject, Resources, register
from operators.quality.text import file_sha256, load_fasttext, predict, sample_text
from operators.sample import Rejection, Sample

log = logging.getLogger(__name__)


def default_lid_path() -> Path:
    """lid.176.ftz as extracted by scripts/setup.sh into the venv (never downloaded at run time)."""
    return Path(sys.prefix) / "share" / "dsvl-models" / "lid.176.ftz"


@register("quality.langid")
class LanguageIdentifier(Operator):
    """Label each sample's language with fastText lid.176; optionally keep only some languages."""

    version = "1"
    resources = Resources(actor=True, workers=1, batch_size=256)

    class Config(OperatorConfig):
        model_path: str | None = Field(None, description="lid model file; default: the venv's lid.176.ftz")
        languages: list[str] = Field(default_factory=list, description="keep only these ISO codes; [] keeps all")
        min_score: float = Field(0.0, ge=0.0, le=1.0, description="reject when the top label scores below")
        meta_fields: list[str] = Field(
            default_factory=lambda: ["ocr_text", "page_text"],
            description="meta keys read when a sample has no text of its own (page or OCR text)",
        )
        min_chars: int = Field(1, ge=0, description="shorter texts keep lang unset instead of guessing")

    config: Config

    def setup(self) -> None:
        path = Path(self.config.model_path) if self.config.model_path else default_lid_path()
        if not path.is_file():
            raise FileNotFoundError(f"quality.langid: no language-id model at {path} (run scripts/setup.sh)")
        self.model = load_fasttext(path)
        self.model_sha256 = file_sha256(path)

    def text_of(self, sample: Sample) -> str:
        text = sample_text(sample.text, sample.messages)
        if not text:
            parts = [str(sample.meta[f]) for f in self.config.meta_fields if sample.meta.get(f)]
            text = "\n".join(parts)
        return text

    def identify(self, text: str) -> tuple[str, float]:
        (prob, label), = predict(self.model, text, k=1)
        return label.removeprefix("__label__"), float(prob)

    def process(self, sample: Sample) -> Iterable[Sample | Rejection]:
        text = self.text_of(sample)
        if len(text) < max(self.config.min_chars, 1):
            return [sample]  # image-only sample: nothing to identify, nothing to filter on
        lang, score = self.identify(text)
        sample.lang = lang
        sample.scores["lang_score"] = round(score, 4)
        sample.provenance.setdefault("models", {})[self.name] = self.model_sha256
        if self.config.languages and lang not in self.config.languages:
            raise Reject("language_not_allowed", f"lang={lang} score={score:.3f}")
        if score < self.config.min_score:
            raise Reject("low_language_score", f"lang={lang} score={score:.3f} < {self.config.min_score}")
        return [sample]

