"""dedup.exact and dedup.near with known duplicate pairs, over in-memory and Parquet pools (and Ray once)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw

from operators.base import PoolReader
from operators.dedup import ExactDeduplicator, NearDeduplicator, groups_from_pairs, image_phash
from operators.sample import Sample, items_to_table


class MemoryPool(PoolReader):
    """Samples held in memory; `files` is empty so steps read through `iter_samples`."""

    def __init__(self, samples: list[Sample]):
        self.samples = samples
        self.files = []

    def iter_samples(self, keys=None, with_images=True):
        for s in sorted(self.samples, key=lambda s: s.key):
            if keys is None or s.key in keys:
                yield s


class ParquetPool(MemoryPool):
    """Samples written to Parquet files in the pool's row schema, `n_files` of them."""

    def __init__(self, samples: list[Sample], folder: Path, n_files: int = 2):
        super().__init__(samples)
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(n_files):
            path = folder / f"part-{f:03d}.parquet"
            pq.write_table(items_to_table(samples[f::n_files]), path)
            self.files.append(str(path))


def candidates(samples: list[Sample]) -> pa.Table:
    return pa.table({
        "key": [s.key for s in samples],
        "input": [s.input for s in samples],
        "modality": [s.modality for s in samples],
        "repeat": pa.array([1] * len(samples), pa.int32()),
    })


def scene(seed: int, w: int = 320, h: int = 240) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)).resize((w, h))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        box = [x0, y0, x0 + int(rng.integers(20, 160)), y0 + int(rng.integers(20, 120))]
        draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def image_sample(key: str, data: bytes, text: str = "a picture") -> Sample:
    s = Sample(key=key, input=f"in:{key}", source="test", task="caption", category="caption", stage=[1, 2],
               text=text)
    s.add_image(data, "png")
    return s


def text_sample(key: str, text: str) -> Sample:
    return Sample(key=key, input=f"in:{key}", source="test", task="text", category="text_only", stage=[2],
                  text=text)


# --- dedup.exact --------------------------------------------------------------------------------


def test_exact_removes_copies_up_to_case_and_whitespace_and_keeps_smallest_key(tmp_path):
    img = encode(scene(1))
    samples = [
        image_sample("b-copy", img, "A  Red Ball\n on grass"),
        image_sample("a-orig", img, "a red ball on grass"),
        image_sample("c-other-image", encode(scene(2)), "a red ball on grass"),
        text_sample("d-text", "Hello world, this is text."),
        text_sample("e-text", "hello   WORLD, this is text."),
        text_sample("f-text", "Hello world, this is other text."),
    ]
    kept, removed, report = ExactDeduplicator({}).run(candidates(samples), ParquetPool(samples, tmp_path))
    assert sorted(kept.column("key").to_pylist()) == ["a-orig", "c-other-image", "d-text", "f-text"]
    assert {(r.key, r.reason, r.detail, r.operator, r.input) for r in removed} == {
        ("b-copy", "exact_duplicate", "duplicate_of=a-orig", "dedup.exact", "in:b-copy"),
        ("e-text", "exact_duplicate", "duplicate_of=d-text", "dedup.exact", "in:e-text"),
    }
    assert report["removed"] == 2 and report["candidates"] == 6
    # by text only, the caption of another image counts as a copy too
    _, removed, _ = ExactDeduplicator({"by": "text"}).run(candidates(samples), MemoryPool(samples))
    assert sorted(r.key for r in removed) == ["b-copy", "c-other-image", "e-text"]
    # by images only: the two samples holding the same bytes
    _, removed, _ = ExactDeduplicator({"by": "images"}).run(candidates(samples), MemoryPool(samples))
    assert [(r.key, r.detail) for r in removed] == [("b-copy", "duplicate_of=a-orig")]


def test_exact_and_near_accept_unencodable_text():
    samples = [text_sample("a", "caf\u00e9 \ud800 menu of the day with soup"),
               text_sample("b", "CAF\u00c9 \ud800 menu of the day with soup")]
    _, removed, _ = ExactDeduplicator({}).run(candidates(samples), MemoryPool(samples))
    assert [(r.key, r.detail) for r in removed] == [("b", "duplicate_of=a")]
    _, removed, _ = NearDeduplicator({}).run(candidates(samples), MemoryPool(samples))
    assert [(r.key, r.detail) for r in removed] == [("b", "duplicate_of=a")]


def test_exact_only_looks_at_candidates():
    samples = [text_sample("a", "same"), text_sample("b", "same"), text_sample("c", "same")]
    kept, removed, _ = ExactDeduplicator({}).run(candidates(samples[1:]), MemoryPool(samples))
    assert kept.column("key").to_pylist() == ["b"]
    assert [(r.key, r.detail) for r in removed] == [("c", "duplicate_of=b")]


# --- dedup.near ---------------------------------------------------------------------------------


def _image_set():
    base = scene(10)
    w, h = base.size
    samples = [
        image_sample("img-0-orig", encode(base)),
        image_sample("img-1-resized", encode(base.resize((w * 6 // 10, h * 6 // 10), Image.Resampling.LANCZOS))),
        image_sample("img-2-jpeg", encode(base.convert("RGB"), "JPEG", quality=35)),
        image_sample("img-3-crop", encode(base.crop((4, 3, w - 4, h - 3)))),  # ~5% of the area off
    ]
    samples += [image_sample(f"img-9-distinct-{i}", encode(scene(100 + i))) for i in range(4)]
    samples.append(image_sample("img-8-broken", b"\x89PNG\r\n\x1a\n broken"))
    return samples


def test_near_images_known_pairs(tmp_path):
    samples = _image_set()
    kept, removed, report = NearDeduplicator({"text": False}).run(
        candidates(samples), ParquetPool(samples, tmp_path, n_files=3))
    assert sorted((r.key, r.reason, r.detail) for r in removed) == [
        ("img-1-resized", "near_duplicate", "duplicate_of=img-0-orig"),
        ("img-2-jpeg", "near_duplicate", "duplicate_of=img-0-orig"),
        ("img-3-crop", "near_duplicate", "duplicate_of=img-0-orig"),
    ]
    assert kept.num_rows == len(samples) - 3 and "img-8-broken" in kept.column("key").to_pylist()
    assert report["image_pairs"] == 6  # all pairs among the 4 copies


def test_near_images_threshold_is_real():
    samples = _image_set()[:4]
    d = [(image_phash(s.image_bytes[0])[0] ^ image_phash(samples[0].image_bytes[0])[0]).bit_count()
         for s in samples[1:]]
    assert 0 < max(d) <= 12  # the copies differ, but within the default distance
    strict = {"text": False, "max_distance": 0, "verify_distance": 0}
    _, removed, _ = NearDeduplicator(strict).run(candidates(samples), MemoryPool(samples))
    assert len(removed) < 3  # a zero distance misses the altered copies


def test_near_multi_image_samples_need_every_image_close():
    a, b = encode(scene(20)), encode(scene(21))
    s1 = image_sample("m-1", a)
    s1.add_image(b, "png")
    s2 = image_sample("m-2", encode(Image.open(io.BytesIO(a)).convert("RGB"), "JPEG", quality=50))
    s2.add_image(encode(scene(22)), "png")
    s3 = image_sample("m-3", a)  # one image only: a different sample shape
    s4 = image_sample("m-4", a)
    s4.add_image(encode(Image.open(io.BytesIO(b)).convert("RGB"), "JPEG", quality=50), "jpg")
    samples = [s1, s2, s3, s4]
    _, removed, _ = NearDeduplicator({"text": False}).run(candidates(samples), MemoryPool(samples))
    assert [(r.key, r.detail) for r in removed] == [("m-4", "duplicate_of=m-1")]


def test_near_images_of_one_input_are_kept_unless_asked():
    img = encode(scene(30))
    q1, q2 = image_sample("q-1", img, "How many bars?"), image_sample("q-2", img, "Which bar is tallest?")
    q2.input = q1.input  # two questions about one chart, from one input unit
    other = image_sample("q-3", img, "Another page with the same picture")
    samples = [q1, q2, other]
    _, removed, _ = NearDeduplicator({"text": False}).run(candidates(samples), MemoryPool(samples))
    assert [(r.key, r.detail) for r in removed] == [("q-3", "duplicate_of=q-1")]
    _, removed, _ = NearDeduplicator({"text": False, "images_within_input": True}).run(
        candidates(samples), MemoryPool(samples))
    assert sorted(r.key for r in removed) == ["q-2", "q-3"]


BASE_TEXT = ("The committee met on Tuesday to review the annual budget, and after a long debate it approved "
             "new funding for the public library and two schools in the northern district.")


def test_near_text_known_pairs():
    samples = [
        text_sample("t-0", BASE_TEXT),
        text_sample("t-1", BASE_TEXT.replace("Tuesday", "Wednesday")),
        text_sample("t-2", BASE_TEXT.replace("two schools", "three schools").upper()),
        text_sample("t-3", "A recipe: mix two cups of flour with one cup of water, knead, and bake for an hour."),
        text_sample("t-4", BASE_TEXT[:60] + " Nothing else was decided and the meeting ended early."),
    ]
    # a caption equal to a text is not compared: captions of different images are not duplicates
    mm = image_sample("t-5-caption", encode(scene(3)), BASE_TEXT)
    pool = MemoryPool(samples + [mm])
    _kept, removed, report = NearDeduplicator({"images": False}).run(candidates(samples + [mm]), pool)
    assert sorted((r.key, r.detail) for r in removed) == [("t-1", "duplicate_of=t-0"), ("t-2", "duplicate_of=t-0")]
    assert report["text_pairs"] == 3
    # Jaccard of t-0/t-4 shingles is far below 0.7; at a threshold of 0.2 it joins the group
    _, removed, _ = NearDeduplicator({"images": False, "threshold": 0.2}).run(candidates(samples), pool)
    assert "t-4" in {r.key for r in removed} and "t-3" not in {r.key for r in removed}


def test_groups_from_pairs_keeps_smallest_key_of_a_chain():
    keys = ["d", "b", "c", "a", "e"]
    assert groups_from_pairs(keys, [(0, 1), (1, 2), (2, 3)]) == {"d": "a", "b": "a", "c": "a"}
    assert groups_from_pairs(keys, []) == {}
    # with input units: members from the kept key's unit stay, others point at the kept key
    units = ["u1", "u2", "u1", "u1", "u3"]
    assert groups_from_pairs(keys, [(0, 1), (1, 2), (2, 3)], units) == {"b": "a"}


@pytest.mark.ray
def test_near_and_exact_on_ray_match_in_process(ray_session, tmp_path):
    samples = _image_set() + [text_sample("t-0", BASE_TEXT), text_sample("t-1", BASE_TEXT + " Indeed."),
                              text_sample("t-2", BASE_TEXT)]
    pool = ParquetPool(samples, tmp_path, n_files=3)
    local = NearDeduplicator({"use_ray": False}).run(candidates(samples), pool)
    on_ray = NearDeduplicator({"use_ray": True, "workers": 2}).run(candidates(samples), pool)
    assert [r.detail for r in on_ray[1]] == [r.detail for r in local[1]]
    assert len(on_ray[1]) == 5 and on_ray[2]["removed"] == 5
    _, removed, _ = ExactDeduplicator({"use_ray": True}).run(candidates(samples), pool)
    assert [(r.key, r.detail) for r in removed] == [("t-2", "duplicate_of=t-0")]
