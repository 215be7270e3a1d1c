"""Sources called directly, without Ray: every record ends as a sample or a named rejection."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from operators.base import get_operator
from operators.sample import Rejection, Sample, items_to_table, table_to_items
from tests.pipelines.engine_data import (
    BROKEN_IMAGES,
    BROKEN_TEXT_RECORDS,
    GOOD_IMAGES,
    GOOD_TEXTS,
    make_inputs,
)


def test_jsonl_reader_accounts_for_every_record(tmp_path):
    inputs = make_inputs(tmp_path)
    op = get_operator("text.jsonl")({"inputs": [str(inputs["texts"])]})
    out = op.run()
    samples = [o for o in out if isinstance(o, Sample)]
    reasons = Counter(o.reason for o in out if isinstance(o, Rejection))
    assert len(samples) == GOOD_TEXTS + 1  # + one text-only SFT record
    assert dict(reasons) == BROKEN_TEXT_RECORDS
    sft = [s for s in samples if s.messages]
    assert len(sft) == 1 and sft[0].category == "text_sft" and sft[0].stage == [3]
    assert {s.category for s in samples if s.text} == {"text_only"}
    assert len({s.key for s in samples}) == len(samples)
    assert all(s.provenance["operators"] == {"text.jsonl": "1"} for s in samples)


def test_jsonl_huge_line_is_rejected_without_loading(tmp_path):
    p = tmp_path / "huge.jsonl"
    with open(p, "w") as f:
        f.write(json.dumps({"text": "x" * 5_000_000}) + "\n")
        f.write(json.dumps({"text": "a normal line"}) + "\n")
    op = get_operator("text.jsonl")({"inputs": [str(p)], "max_chars": 10_000})
    out = op.run()
    assert [type(o).__name__ for o in out] == ["Rejection", "Sample"]
    assert out[0].reason == "too_long" and "line 1" in out[0].detail


def test_empty_file_is_a_rejection(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("\n\n")
    out = get_operator("text.jsonl")({"inputs": [str(p)]}).run()
    assert len(out) == 1 and out[0].reason == "empty_input"


def test_parquet_reader(tmp_path):
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["one good text", None, "another good text"]}), p)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    op = get_operator("text.parquet")({"inputs": [str(tmp_path)]})
    out = op.run()
    assert sum(isinstance(o, Sample) for o in out) == 2
    assert sorted(o.reason for o in out if isinstance(o, Rejection)) == ["empty_text", "unreadable_parquet"]


def test_image_folder_reader_rejects_broken_and_bombs(tmp_path):
    inputs = make_inputs(tmp_path)
    Image.new("L", (9000, 9000)).save(inputs["images"] / "bomb.png")
    (inputs["images"] / "bomb.txt").write_text("A very large empty image.")
    op = get_operator("images.folder")({"inputs": [str(inputs["images"])], "max_pixels": 50_000_000})
    out = op.run()
    samples = [o for o in out if isinstance(o, Sample)]
    reasons = Counter(o.reason for o in out if isinstance(o, Rejection))
    assert len(samples) == GOOD_IMAGES + 1  # + the exact copy (removed later, in assembly)
    assert dict(reasons) == {**BROKEN_IMAGES, "image_too_large": 1}
    s = samples[0]
    assert s.images == ["0.png"] and s.image_bytes[0].startswith(b"\x89PNG")
    assert s.text.startswith("<image>\nA blue card") and s.category == "caption" and s.stage == [1, 2]


def test_items_roundtrip_through_arrow(tmp_path):
    inputs = make_inputs(tmp_path)
    out = get_operator("images.folder")({"inputs": [str(inputs["images"])]}).run()
    back = table_to_items(items_to_table(out))
    assert [type(o) for o in back] == [type(o) for o in out]
    for a, b in zip(out, back):
        if isinstance(a, Sample):
            assert a.to_json() == b.to_json() and a.image_bytes == b.image_bytes
        else:
            assert a == b
