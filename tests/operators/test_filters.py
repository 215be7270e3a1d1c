"""filter.image, filter.text (Gopher rules) and filter.ocr_confidence: each drop reason with known inputs."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from operators.base import run_operator
from operators.filters import ImageFilter, OcrConfidenceFilter, TextFilter
from operators.sample import Rejection, Sample


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def photo(w: int = 200, h: int = 150, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3))


def sample_with(*images: bytes, text: str = "A photo of something.") -> Sample:
    s = Sample(key="k1", input="in1", source="test", task="caption", category="caption", stage=[1], text=text)
    for b in images:
        s.add_image(b, "png")
    return s


def bomb_png(w: int, h: int) -> bytes:
    """A PNG header claiming w x h pixels with almost no data (a decompression bomb's header)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(
        b"IEND", b"")


def one_pixel_dots(w: int, h: int, frac: float) -> np.ndarray:
    arr = np.full((h, w), 255)
    rng = np.random.default_rng(1)
    arr.flat[rng.choice(w * h, int(w * h * frac), replace=False)] = 0
    return arr


@pytest.mark.parametrize(("data", "reason"), [
    (png(photo()), None),
    (png(photo(20, 150)), "image_too_small"),
    (png(photo(1000, 100)), "extreme_aspect"),
    (png(np.full((100, 100, 3), 200)), "blank_image"),
    (png(np.full((100, 100, 3), 200) + (np.arange(100) % 7 == 0)[None, :, None]), "blank_image"),
    (png(one_pixel_dots(200, 200, 0.01)), "low_entropy_image"),  # std 25, entropy 0.08 bits
    (png(one_pixel_dots(200, 200, 0.30)), None),  # a two-tone page with real content passes
    (b"not an image at all", "unreadable_image"),
    (png(photo())[:300], "unreadable_image"),  # truncated pixel data
    (bomb_png(20000, 20000), "image_too_large"),
])
def test_image_filter(data, reason):
    out = run_operator(ImageFilter({}), [sample_with(png(photo(seed=5)), data)])
    if reason is None:
        assert isinstance(out[0], Sample)
    else:
        assert isinstance(out[0], Rejection) and out[0].reason == reason, out
        assert out[0].detail.startswith("image 1: ") and out[0].key == "k1" and out[0].operator == "filter.image"


def test_image_filter_thresholds_are_configurable():
    data = png(photo(64, 64))
    assert ImageFilter({}).check(data) is True
    assert ImageFilter({"min_width": 65}).check(data)[1] == "image_too_small"
    assert ImageFilter({"min_entropy": 7.99}).check(data)[1] == "low_entropy_image"
    assert ImageFilter({}).keep(sample_with()) is True  # text-only samples pass


GOOD = ("The museum opened a new wing this spring. It holds paintings from the early period of the city, "
        "and the curators wrote short notes for each of them. Visitors can walk through the rooms in order, "
        "and a guide explains the history of the building with care.")


@pytest.mark.parametrize(("text", "lang", "reason"), [
    (GOOD, "en", None),
    ("Too short here.", "en", "text_too_short"),
    ("a b c d e f g h i j", "en", "mean_word_length"),
    (("Internationalization telecommunications counterrevolutionaries electroencephalography "
      "characteristically"), "en", "mean_word_length"),
    (GOOD + " #tag #news #art #city #museum #paint #history #wing #spring #notes #guide #rooms #now "
     "#free #best #top #viral #daily #love #share", "en", "symbol_ratio"),
    ("\n".join(f"- item number {i} in the list of things" for i in range(10)), "en", "bullet_lines"),
    ("\n".join(f"and then the story went on and on for a long while, chapter {i}..." for i in range(10)), "en", "ellipsis_lines"),
    ("1234 5678 9012 3456 7890 2468 1357 the cat sat", "en", "alpha_words"),
    (" ".join(["cats dogs birds fish trees rivers stones clouds winds rains"] * 3), "en", "stop_words"),
    ("\n".join(["Buy our product today at the best price."] * 4 + [GOOD]), "en", "duplicate_lines"),
    (GOOD + "\n\n" + GOOD + "\n\nA different closing paragraph that ends here.", "en", "duplicate_paragraphs"),
    (GOOD + " " + "the museum " * 20, "en", "top_ngram_repetition"),
    (GOOD + " " + GOOD, "en", "duplicate_ngram_repetition"),
    ("北京是中华人民共和国的首都，也是全国的政治、文化和国际交往中心，有着三千多年的建城史。", "zh", None),
    ("   ", "en", "empty_text"),
])
def test_text_filter_gopher_rules(text, lang, reason):
    s = Sample(key="t1", input="in", source="test", task="text", category="text_only", stage=[2], text=text,
               lang=lang)
    out = run_operator(TextFilter({}), [s])
    if reason is None:
        assert isinstance(out[0], Sample), out
    else:
        assert isinstance(out[0], Rejection) and out[0].reason == reason, out


def test_text_filter_huge_and_odd_text():
    huge = Sample(key="h", input="in", source="test", task="text", category="text_only", stage=[2],
                  text="word " * 150_000, lang="en")
    out = run_operator(TextFilter({}), [huge])
    assert out[0].reason == "text_too_long" and out[0].detail == "150000 words > 100000"
    odd = Sample(key="o", input="in", source="test", task="text", category="text_only", stage=[2],
                 text="\ud800\x00 " + GOOD, lang=None)  # lone surrogate and NUL; no language known
    assert isinstance(run_operator(TextFilter({}), [odd])[0], Sample)


def test_text_filter_reads_messages_and_gopher_min_words():
    s = Sample(key="t2", input="in", source="test", task="sft", category="general_instruct", stage=[3],
               messages=[{"role": "user", "content": "<image>\nWhat is shown?"},
                         {"role": "assistant", "content": "A red bus waiting at a stop in the rain."}])
    assert isinstance(run_operator(TextFilter({}), [s])[0], Sample)
    out = run_operator(TextFilter({"min_words": 50}), [s])  # Gopher's web-page minimum
    assert out[0].reason == "text_too_short" and out[0].detail == "13 words < 50"
    chart_qa = sample_with(png(photo()), text="2019: 13.5 | 2020: 14.1 | 2021: 15.0")
    assert isinstance(run_operator(TextFilter({}), [chart_qa])[0], Sample)  # multimodal: not checked by default
    out = run_operator(TextFilter({"modalities": ["text", "multimodal"]}), [chart_qa])
    assert out[0].reason == "alpha_words"


def test_ocr_confidence_filter():
    def with_score(v):
        s = sample_with(png(photo()))
        if v is not None:
            s.scores["ocr_confidence"] = v
        return s

    f = OcrConfidenceFilter({"min_confidence": 0.8})
    out = run_operator(f, [with_score(0.95), with_score(0.5), with_score(None)])
    assert [type(o).__name__ for o in out] == ["Sample", "Rejection", "Sample"]
    assert out[1].reason == "low_ocr_confidence" and out[1].detail == "ocr_confidence=0.500 < 0.8"
    out = run_operator(OcrConfidenceFilter({"missing": "reject"}), [with_score(None)])
    assert out[0].reason == "missing_ocr_confidence"
    with pytest.raises(ValueError, match="min_confidence"):
        OcrConfidenceFilter.parse_config({"min_confidence": 2})
