"""Config pieces shared by the web operators: list fields that also accept "a,b" strings from `--set`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from operators.sample import content_key
from operators.web.net import normalize_url


def _split_list(v: Any) -> Any:
    if v is None:
        return []
    if isinstance(v, str):
        return [p.strip() for p in v.replace("\n", ",").split(",") if p.strip()]
    if isinstance(v, (list, tuple)):
        out: list[str] = []
        for x in v:
            out.extend(_split_list(x) if isinstance(x, str) else [x])
        return out
    return v


StrList = Annotated[list[str], BeforeValidator(_split_list)]


def page_key(url: str) -> str:
    """`web-<sha256(normalised url)[:16]>`: the identity of a page and the prefix of its samples' keys."""
    return content_key("web", normalize_url(url))
