"""Turn one rendered page into training samples: screenshot->code, screen OCR/grounding/summary,
widget captions, an interleaved document and alt-text captions; parts that fail checks become rejections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from operators.sample import Rejection, Sample
from operators.web.browser import RenderedPage
from operators.web.common import page_key

GENERIC_ALT = {"image", "photo", "picture", "img", "logo", "icon", "banner", "spacer", "thumbnail", "graphic"}
FILENAME_ALT = re.compile(r"(\.(jpe?g|png|gif|webp|svg|bmp)$)|^(img|dsc|image|photo)[_\- ]?\d+", re.IGNORECASE)
SOURCE = "web"


@dataclass
class SampleOptions:
    kinds: tuple[str, ...] = ("code", "ocr", "grounding", "summary", "widgets", "interleaved", "alt")
    max_code_chars: int = 30000
    max_grounding: int = 4
    max_widgets: int = 4
    max_ocr_boxes: int = 40
    min_image_side: int = 32  # interleaved document
    min_caption_side: int = 64  # alt-text captions
    max_image_pixels: int = 40_000_000
    min_alt_words: int = 3
    max_alt_chars: int = 300


def _tag(leaf: str) -> list[dict[str, Any]]:
    return [{"id": leaf, "confidence": 1.0, "source": "web.render"}]


def check_image(data: bytes, min_side: int, max_pixels: int) -> tuple[bytes, str] | tuple[None, str]:
    """(bytes, ext) for an image Pillow can fully decode and that is big enough, else (None, reason)."""
    from PIL import Image

    if not data:
        return None, "image_missing"
    try:
        with Image.open(BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                return None, "image_too_large"
            fmt = (im.format or "").upper()
            im.load()  # a truncated or corrupt file fails here, not later in the trainer
            if min(w, h) < min_side:
                return None, "image_too_small"
            if fmt in ("PNG", "JPEG"):
                return data, "png" if fmt == "PNG" else "jpg"
            buf = BytesIO()
            im.convert("RGBA" if im.mode in ("RGBA", "LA", "P") else "RGB").save(buf, "PNG")
            return buf.getvalue(), "png"
    except Image.DecompressionBombError:
        return None, "image_too_large"
    except Exception as e:  # noqa: BLE001  Pillow raises many types for broken files: "not an image"
        return None, f"bad_image:{type(e).__name__}"


def alt_verdict(alt: str, present: bool, opt: SampleOptions) -> str | None:
    """None when the alt text is a usable caption, else the filter that refused it."""
    if not present:
        return "no_alt"
    a = alt.strip()
    if not a:
        return "empty_alt"  # decorative image by the page author's own declaration
    if FILENAME_ALT.search(a):
        return "filename_alt"
    if a.lower() in GENERIC_ALT:
        return "generic_alt"
    if len(a.split()) < opt.min_alt_words:
        return "short_alt"
    if len(a) > opt.max_alt_chars:
        return "long_alt"
    if sum(c.isalpha() for c in a) < 0.6 * len(a.replace(" ", "")):
        return "non_text_alt"
    return None


def _box(b: dict[str, Any], scale: float) -> list[int]:
    return [round(b["x"] * scale), round(b["y"] * scale),
            round((b["x"] + b["w"]) * scale), round((b["y"] + b["h"]) * scale)]


def _norm_box(box: list[int], w: int, h: int) -> str:
    """Boxes in prompts are [x0, y0, x1, y1] on a 0-999 grid of the image, as grounding data usually is."""
    x0, y0, x1, y1 = box
    return f"[{x0 * 999 // w}, {y0 * 999 // h}, {x1 * 999 // w}, {y1 * 999 // h}]"


def first_tile_boxes(items: list[dict[str, Any]], page: RenderedPage) -> list[dict[str, Any]]:
    """Items wholly inside the first tile, with `box` in that tile's pixels."""
    W, H = page.tile_sizes[0]
    out = []
    for it in items:
        box = _box(it, page.scale)
        if box[0] >= 0 and box[1] >= 0 and box[2] <= W and box[3] <= H and box[2] > box[0] and box[3] > box[1]:
            out.append({**{k: v for k, v in it.items() if k not in ("x", "y", "w", "h")}, "box": box})
    return out


def build_samples(page: RenderedPage, input: str, opt: SampleOptions,
                  operator: str = "web.render") -> list[Sample | Rejection]:
    base = page_key(page.url)
    d = page.data
    out: list[Sample | Rejection] = []
    meta = {"url": page.url, "viewport": list(page.viewport), "scale": page.scale, "doc_size": list(page.doc_size),
            "captured_height": page.captured_height, "tiles": len(page.tiles), "blocked": len(page.blocked)}
    prov = {"input": input, "url": page.url, "license": "unknown"}

    def new(suffix: str, task: str, category: str, stage: list[int], tiles: int = 0, **kw: Any) -> Sample:
        s = Sample(key=f"{base}-{suffix}", input=input, source=SOURCE, task=task, category=category, stage=stage,
                   lang=d.get("lang") or None, provenance=dict(prov), meta=dict(meta), **kw)
        for t in page.tiles[:tiles]:
            s.add_image(t, page.image_ext)
        return s

    def reject(suffix: str, reason: str, detail: str) -> None:
        out.append(Rejection(input, operator, reason, detail[:500], f"{base}-{suffix}"))

    n, W, H = len(page.tiles), page.tile_sizes[0][0], page.tile_sizes[0][1]
    shots = "<image>" * n
    if "code" in opt.kinds:
        html = d["html"]
        if len(html) > opt.max_code_chars:
            reject("code", "code_too_long", f"{len(html)} chars > {opt.max_code_chars}")
        else:
            out.append(new("code", "screenshot_to_html", "web_code", [2], n, text=f"{shots}\n{html}"))
            out.append(new("ui2code", "ui_to_code", "web_code", [3], n, taxonomy=_tag("ui-to-code"), messages=[
                {"role": "user", "content": f"{shots}\nWrite the HTML and CSS that reproduce this web page."},
                {"role": "assistant", "content": html}]))

    boxes = first_tile_boxes(d["boxes"], page)
    seen: set[str] = set()
    unique = [b for b in boxes if b["text"] and not (b["text"] in seen or seen.add(b["text"]))]
    if "ocr" in opt.kinds and unique:
        lines = "\n".join(f"{_norm_box(b['box'], W, H)} {b['text']}" for b in unique[: opt.max_ocr_boxes])
        out.append(new("ocr", "screen_ocr_boxes", "table_chart", [2, 3], 1, taxonomy=_tag("printed-text"),
                       messages=[{"role": "user", "content": "<image>\nRead all the text on this screen, each "
                                  "line with its box [x0, y0, x1, y1] on a 0-999 grid."},
                                 {"role": "assistant", "content": lines}]))
        out[-1].meta["boxes"] = unique
    if "grounding" in opt.kinds and unique:
        turns: list[dict[str, str]] = []
        for i, b in enumerate(unique[: opt.max_grounding]):
            q = f"Where is the text \"{b['text'][:80]}\"? Answer with a box [x0, y0, x1, y1] on a 0-999 grid."
            turns += [{"role": "user", "content": ("<image>\n" if i == 0 else "") + q},
                      {"role": "assistant", "content": _norm_box(b["box"], W, H)}]
        out.append(new("ground", "text_grounding", "table_chart", [2, 3], 1, messages=turns,
                       taxonomy=_tag("position-description")))
        out[-1].meta["boxes"] = unique[: opt.max_grounding]
    if "summary" in opt.kinds:
        heads = [b["text"] for b in d["blocks"] if b["type"] == "text" and b["tag"] in ("h1", "h2", "h3")][:4]
        paras = [b["text"] for b in d["blocks"] if b["type"] == "text" and b["tag"] == "p" and len(b["text"]) > 40]
        if d.get("title") or heads:
            summary = f"A web page titled \"{d.get('title') or heads[0]}\""
            if heads:
                summary += " with the headings " + ", ".join(f"\"{h}\"" for h in heads)
            summary += "." + (f" It says: {paras[0]}" if paras else "")
            out.append(new("summary", "screen_summary", "table_chart", [2, 3], 1, taxonomy=_tag("text-summary"),
                           messages=[{"role": "user", "content": "<image>\nSummarise this screen in a few sentences."},
                                     {"role": "assistant", "content": summary}]))
        else:
            reject("summary", "no_title_or_headings", page.url)
    if "widgets" in opt.kinds:
        widgets = [w for w in first_tile_boxes(d["widgets"], page) if w["label"]][: opt.max_widgets]
        turns = []
        for i, w in enumerate(widgets):
            kind = {"a": "link", "select": "drop-down list", "textarea": "text area", "text": "text field"}.get(
                w["type"], w["type"] if w["tag"] == "input" else w["tag"])
            turns += [{"role": "user", "content": ("<image>\n" if i == 0 else "")
                       + f"What is the widget at {_norm_box(w['box'], W, H)}?"},
                      {"role": "assistant", "content": f"A {kind} labelled \"{w['label'][:120]}\"."}]
        if turns:
            out.append(new("widgets", "widget_caption", "table_chart", [2, 3], 1, messages=turns,
                           taxonomy=_tag("pointing-description")))
            out[-1].meta["widgets"] = widgets
    _images_and_captions(page, d, opt, new, reject, out)
    return out


def _images_and_captions(page: RenderedPage, d: dict[str, Any], opt: SampleOptions, new: Any, reject: Any,
                         out: list[Sample | Rejection]) -> None:
    doc = new("doc", "interleaved_web", "interleaved", [2])
    parts: list[str] = []
    img_no = 0
    for blk in d["blocks"]:
        if blk["type"] == "text":
            parts.append(blk["text"])
            continue
        img_no += 1
        _ctype, data = page.images.get(blk["src"], ("", b""))
        checked, ext = check_image(data, opt.min_image_side, opt.max_image_pixels)
        if checked is None:
            reason = ext.split(":")[0]
            reject(f"img{img_no}", reason, f"{blk['src']} {ext}")
            continue
        if "interleaved" in opt.kinds:
            doc.add_image(checked, ext)
            parts.append("<image>")
        if "alt" in opt.kinds:
            why = alt_verdict(blk["alt"], blk["alt_present"], opt)
            small = min(blk["natural_w"], blk["natural_h"]) < opt.min_caption_side
            if why or small:
                reject(f"alt{img_no}", "alt_filtered", f"{why or 'image_too_small'}: {blk['alt'][:100]!r} {blk['src']}")
            else:
                cap = new(f"alt{img_no}", "alt_caption", "caption", [1, 2], text=f"<image>\n{blk['alt']}")
                cap.add_image(checked, ext)
                cap.meta["image_url"] = blk["src"]
                out.append(cap)
    if "interleaved" in opt.kinds:
        if doc.images and sum(len(p) for p in parts if p != "<image>") >= 20:
            doc.text = "\n\n".join(parts)
            out.append(doc)
        else:
            reject("doc", "not_interleaved", f"{len(doc.images)} usable images, {len(parts)} blocks")
