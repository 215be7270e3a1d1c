"""Text from OCR lines: fragments of one visual line are merged, then lines are put in reading
order (columns left to right); plus the character error rate used by tests and benchmarks.
"""

from __future__ import annotations

import numpy as np

from operators.ocr.engines import OcrLine
from operators.pdf.layout import reading_order


def merge_fragments(lines: list[OcrLine], max_gap: float = 1.2, min_overlap: float = 0.6) -> list[OcrLine]:
    """Join boxes that sit on the same visual line with a small gap (the detector often splits a
    line at wide spaces); a column gutter is wider than `max_gap` line heights and stays open."""
    rest = sorted(lines, key=lambda ln: (ln.box[0], ln.box[1]))
    merged: list[OcrLine] = []
    for ln in rest:
        h = ln.box[3] - ln.box[1]
        for m in merged:
            mh = m.box[3] - m.box[1]
            ov = min(m.box[3], ln.box[3]) - max(m.box[1], ln.box[1])
            gap = ln.box[0] - m.box[2]
            if ov >= min_overlap * min(h, mh) and -0.5 * h <= gap <= max_gap * max(h, mh):
                conf = (m.conf * len(m.text) + ln.conf * len(ln.text)) / max(1, len(m.text) + len(ln.text))
                box = (m.box[0], min(m.box[1], ln.box[1]), max(m.box[2], ln.box[2]), max(m.box[3], ln.box[3]))
                merged[merged.index(m)] = OcrLine(m.text + " " + ln.text, box, conf)
                break
        else:
            merged.append(ln)
    return merged


def assemble(lines: list[OcrLine], width: float) -> tuple[list[OcrLine], str]:
    """Lines in reading order and the page text (one line per row, blank line between columns)."""
    merged = merge_fragments(lines)
    order = reading_order([ln.box for ln in merged], width)
    ordered = [merged[i] for i in order]
    return ordered, "\n".join(ln.text for ln in ordered)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one numpy row at a time (insertions via a running minimum)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(len(b) + 1)
    prev = idx.copy()
    for i, ch in enumerate(a, 1):
        c = ord(ch)
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (bb != c))
        prev = np.minimum.accumulate(cur - idx) + idx
    return int(prev[-1])


def normalise(text: str) -> str:
    return " ".join(text.split())


def cer(hyp: str, ref: str) -> float:
    """Character error rate after whitespace normalisation."""
    r = normalise(ref)
    return edit_distance(normalise(hyp), r) / max(1, len(r))
