"""Text helpers shared by the quality, filter and dedup operators: which text a sample carries,
and the normal form used for exact-duplicate hashing and shingling.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

from operators.sample import file_sha256  # noqa: F401  (re-exported: quality modules hash their models)

_WS = re.compile(r"\s+")
_IMAGE_TAG = "<image>"


def sample_text(text: str | None, messages: list[dict[str, Any]] | None) -> str:
    """All the words of a sample: its text, or its messages joined by newlines, without `<image>` tags."""
    if messages:
        parts = [str(m.get("content", "")) for m in messages]
        body = "\n".join(parts)
    else:
        body = text or ""
    return body.replace(_IMAGE_TAG, " ").strip()


def valid_utf8(text: str) -> str:
    """Lone surrogates (from JSON escapes like "\\ud800") cannot be encoded: they become "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")


def normalise_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: trivially different copies hash the same."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", valid_utf8(text)).casefold()).strip()


def one_line(text: str, limit: int = 20000) -> str:
    """fastText reads one line per document; long documents are cut (the head decides the label)."""
    return _WS.sub(" ", valid_utf8(text[:limit])).strip()


def load_fasttext(path: str | Path) -> Any:
    """Load a fastText model quietly (the library prints a deprecation warning on every load)."""
    import fasttext

    fasttext.FastText.eprint = lambda *a, **k: None  # silence "load_model does not return ..."
    return fasttext.load_model(str(path))


def predict(model: Any, text: str, k: int = 1, threshold: float = 0.0) -> list[tuple[float, str]]:
    """(probability, label) pairs; `f.predict` with "strict" is the call that is right under numpy 2."""
    return model.f.predict(one_line(text) + "\n", k, threshold, "strict")
