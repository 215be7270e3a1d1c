"""Filters: image size/aspect/blank/low-entropy (`filter.image`), Gopher-style text heuristics
(`filter.text`) and OCR confidence (`filter.ocr_confidence`). Each drop names the rule that fired.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from typing import Literal

from pydantic import Field

from operators.base import Filter, OperatorConfig, Resources, register
from operators.quality.text import sample_text
from operators.sample import Sample

Verdict = bool | tuple[bool, str, str]


@register("filter.image")
class ImageFilter(Filter):
    """Drop samples with an unreadable, huge, tiny, extremely elongated, blank or near-empty image."""

    version = "1"
    resources = Resources(batch_size=64)

    class Config(OperatorConfig):
        min_width: int = Field(32, ge=1)
        min_height: int = Field(32, ge=1)
        max_aspect: float = Field(8.0, ge=1.0, description="max of width/height and height/width")
        max_pixels: int = Field(80_000_000, ge=1, description="larger is refused before decoding (bombs)")
        min_std: float = Field(3.0, ge=0.0, description="grey-level std below this is a blank image")
        min_entropy: float = Field(0.5, ge=0.0, le=8.0, description="grey-histogram entropy in bits")

    config: Config

    def keep(self, sample: Sample) -> Verdict:
        for i, data in enumerate(sample.image_bytes):
            verdict = self.check(data)
            if verdict is not True:
                _, reason, detail = verdict
                return False, reason, f"image {i}: {detail}"
        return True

    def check(self, data: bytes) -> Verdict:
        from PIL import Image, ImageStat

        c = self.config
        # what PIL raises for broken headers or pixel data (UnidentifiedImageError is an OSError)
        _PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
        try:
            img = Image.open(io.BytesIO(data))
            w, h = img.size  # header only: nothing decoded yet
        except Image.DecompressionBombError as e:  # PIL refuses past twice its own pixel limit
            return False, "image_too_large", str(e)[:300]
        except _PIL_ERRORS as e:
            return False, "unreadable_image", f"{type(e).__name__}: {e}"[:300]
        if w * h > c.max_pixels:
            return False, "image_too_large", f"{w}x{h} > {c.max_pixels} pixels"
        if w < c.min_width or h < c.min_height:
            return False, "image_too_small", f"{w}x{h} < {c.min_width}x{c.min_height}"
        aspect = max(w / h, h / w)
        if aspect > c.max_aspect:
            return False, "extreme_aspect", f"{w}x{h} aspect {aspect:.1f} > {c.max_aspect}"
        try:
            img.draft("L", (512, 512))  # JPEG decodes at reduced scale: statistics need no full size
            grey = img.convert("L")
            grey.thumbnail((512, 512))
        except _PIL_ERRORS as e:  # truncated or corrupt pixel data
            return False, "unreadable_image", f"{type(e).__name__}: {e}"[:300]
        std = ImageStat.Stat(grey).stddev[0]
        if std < c.min_std:
            return False, "blank_image", f"grey std {std:.2f} < {c.min_std}"
        entropy = grey.entropy()
        if entropy < c.min_entropy:
            return False, "low_entropy_image", f"entropy {entropy:.2f} bits < {c.min_entropy}"
        return True


# --- text -------------------------------------------------------------------------------------

STOP_WORDS = {"en": frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})}
NO_SPACE_LANGS = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "wuu", "yue"})
_WORD = re.compile(r"\S+")
_ALPHA = re.compile(r"[^\W\d_]")
_PARA = re.compile(r"\n\s*\n")
_BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "–", "-", "*", "‣", "⁃")


@register("filter.text")
class TextFilter(Filter):
    """Gopher-style rules (Rae et al. 2021, App. A): quality heuristics and repetition removal.

    Thresholds are Gopher's, except `min_words` (Gopher: 50, for web pages; captions here are shorter).
    Word rules count characters for languages written without spaces (zh, ja, th, ...). By default only
    text-only samples are checked: chart answers and OCR tables are numbers, not prose.
    """

    version = "1"
    resources = Resources(batch_size=256)

    class Config(OperatorConfig):
        modalities: list[str] = Field(default_factory=lambda: ["text"], description="text | multimodal")
        min_words: int = Field(5, ge=0)
        max_words: int = Field(100_000, ge=1)
        min_mean_word_length: float = 3.0
        max_mean_word_length: float = 10.0
        max_symbol_ratio: float = Field(0.1, description="('#' + ellipses) per word")
        max_bullet_lines: float = Field(0.9, description="fraction of lines starting with a bullet")
        max_ellipsis_lines: float = Field(0.3, description="fraction of lines ending with an ellipsis")
        min_alpha_words: float = Field(0.8, description="fraction of words with a letter")
        min_stop_words: int = Field(2, ge=0)
        stop_words_from: int = Field(20, ge=0, description="apply the stop-word rule from this many words")
        max_dup_lines: float = 0.3
        max_dup_paragraphs: float = 0.3
        max_dup_line_chars: float = 0.2
        max_dup_paragraph_chars: float = 0.2
        top_ngrams: dict[int, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
        dup_ngrams: dict[int, float] = Field(
            default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
        )

    config: Config

    def keep(self, sample: Sample) -> Verdict:
        if sample.modality not in self.config.modalities:
            return True
        text = sample_text(sample.text, sample.messages)
        if not text.strip():
            return False, "empty_text", ""
        return self.check(text, sample.lang)

    def check(self, text: str, lang: str | None = None) -> Verdict:
        c = self.config
        no_space = (lang or "").split("-")[0] in NO_SPACE_LANGS
        words = [ch for ch in text if not ch.isspace()] if no_space else _WORD.findall(text)
        n = len(words)
        if n < c.min_words:
            return False, "text_too_short", f"{n} words < {c.min_words}"
        if n > c.max_words:
            return False, "text_too_long", f"{n} words > {c.max_words}"
        if not no_space:
            mean = sum(len(w) for w in words) / n
            if not c.min_mean_word_length <= mean <= c.max_mean_word_length:
                bounds = f"[{c.min_mean_word_length}, {c.max_mean_word_length}]"
                return False, "mean_word_length", f"{mean:.1f} not in {bounds}"
        symbols = text.count("#") + text.count("...") + text.count("…")
        if symbols / n > c.max_symbol_ratio:
            return False, "symbol_ratio", f"{symbols / n:.2f} > {c.max_symbol_ratio}"
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines:
            bullets = sum(ln.startswith(_BULLETS) for ln in lines) / len(lines)
            if bullets > c.max_bullet_lines:
                return False, "bullet_lines", f"{bullets:.2f} > {c.max_bullet_lines}"
            ellipsis = sum(ln.endswith(("...", "…")) for ln in lines) / len(lines)
            if ellipsis > c.max_ellipsis_lines:
                return False, "ellipsis_lines", f"{ellipsis:.2f} > {c.max_ellipsis_lines}"
        alpha = sum(bool(_ALPHA.search(w)) for w in words) / n
        if alpha < c.min_alpha_words:
            return False, "alpha_words", f"{alpha:.2f} < {c.min_alpha_words}"
        stops = STOP_WORDS.get(lang or "en") if not no_space else None
        if stops and n >= c.stop_words_from and c.min_stop_words:
            found = sum(w.lower().strip(".,;:!?\"'()") in stops for w in words)
            if found < c.min_stop_words:
                return False, "stop_words", f"{found} stop words < {c.min_stop_words}"
        return self._repetition(text, lines, words)

    def _repetition(self, text: str, lines: list[str], words: list[str]) -> Verdict:
        c = self.config
        paras = [p.strip() for p in _PARA.split(text) if p.strip()]
        for name, parts, max_frac, max_chars in (  # paragraphs first, as Gopher (a repeated one repeats lines)
            ("duplicate_paragraphs", paras, c.max_dup_paragraphs, c.max_dup_paragraph_chars),
            ("duplicate_lines", lines, c.max_dup_lines, c.max_dup_line_chars),
        ):
            if len(parts) < 2:
                continue
            dup_n, dup_chars = _duplicates(parts)
            total_chars = sum(len(p) for p in parts)
            if dup_n / len(parts) > max_frac:
                return False, name, f"{dup_n}/{len(parts)} repeated > {max_frac}"
            if dup_chars / total_chars > max_chars:
                return False, name, f"{dup_chars / total_chars:.2f} of chars repeated > {max_chars}"
        total = sum(len(w) for w in words)
        for n, max_frac in sorted(c.top_ngrams.items()):
            grams = _ngrams(words, n)
            if not grams:
                continue
            gram, count = Counter(grams).most_common(1)[0]
            frac = count * sum(len(w) for w in gram) / total
            if count > 1 and frac > max_frac:
                return False, "top_ngram_repetition", f"top {n}-gram covers {frac:.2f} > {max_frac}"
        for n, max_frac in sorted(c.dup_ngrams.items()):
            frac = _dup_ngram_char_fraction(words, n) / total if total else 0.0
            if frac > max_frac:
                return False, "duplicate_ngram_repetition", f"repeated {n}-grams cover {frac:.2f} > {max_frac}"
        return True


def _duplicates(parts: list[str]) -> tuple[int, int]:
    """Elements (and their chars) that repeat an earlier element."""
    seen: set[str] = set()
    n = chars = 0
    for p in parts:
        if p in seen:
            n += 1
            chars += len(p)
        seen.add(p)
    return n, chars


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def _dup_ngram_char_fraction(words: list[str], n: int) -> int:
    """Chars of words inside an n-gram seen before (each word counted once), as in Gopher."""
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(words)
    for i, g in enumerate(_ngrams(words, n)):
        if g in seen:
            for j in range(i, i + n):
                covered[j] = True
        seen.add(g)
    return sum(len(w) for w, cov in zip(words, covered) if cov)


# --- OCR confidence ---------------------------------------------------------------------------


@register("filter.ocr_confidence")
class OcrConfidenceFilter(Filter):
    """Drop OCR'd samples whose mean recognition confidence (a score set by the OCR operator) is low."""

    version = "1"

    class Config(OperatorConfig):
        score_name: str = Field("ocr_confidence", description="key in sample.scores")
        min_confidence: float = Field(0.8, ge=0.0, le=1.0)
        missing: Literal["keep", "reject"] = Field("keep", description="samples never OCR'd have no score")

    config: Config

    def keep(self, sample: Sample) -> Verdict:
        c = self.config
        value = sample.scores.get(c.score_name)
        if value is None:
            return True if c.missing == "keep" else (False, "missing_ocr_confidence", c.score_name)
        if float(value) < c.min_confidence:
            return False, "low_ocr_confidence", f"{c.score_name}={float(value):.3f} < {c.min_confidence}"
        return True
