"""Builds on the shared local Ray session: ledger balance, shard round trip, determinism, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
import webdataset as wds
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.runner import build
from pipelines.verify import verify
from tests.pipelines.engine_data import (
    BROKEN_IMAGES,
    BROKEN_TEXT_RECORDS,
    GOOD_IMAGES,
    GOOD_TEXTS,
    make_inputs,
    write_recipe,
)

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def built(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("engine")
    inputs = make_inputs(root / "in")
    recipe = write_recipe(root, inputs)
    first = build(recipe, root / "out1")
    second = build(recipe, root / "out2")
    return root, recipe, first, second


def _manifests(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((out / "shards").glob("*/manifest.json"))}


def test_ledger_balances_and_counts(built):
    root, _, first, _ = built
    out = root / "out1"
    assert verify(out) == []
    con = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    n_inputs = con.sql("SELECT count(*) FROM inputs").fetchall()[0][0]
    assert n_inputs == 2 + GOOD_IMAGES + 1 + sum(BROKEN_IMAGES.values())  # 2 text files + every image file
    assert first.samples == GOOD_TEXTS + 1 + GOOD_IMAGES + 1
    reasons = dict(con.sql("SELECT reason, count(*) FROM ledger WHERE status = 'rejected' GROUP BY 1").fetchall())
    assert reasons == {**BROKEN_TEXT_RECORDS, **BROKEN_IMAGES, "exact_duplicate": 1}
    dup = con.sql("SELECT s.input, s.kept, s.selected, l.detail FROM samples s JOIN ledger l USING (key) "
                  "WHERE l.reason = 'exact_duplicate'").fetchall()
    assert len(dup) == 1 and dup[0][0].rsplit("/", 1)[1] in ("img03.png", "zz_copy_of_img03.png")
    assert dup[0][1:3] == (False, False)
    kept_key = dup[0][3].removeprefix("duplicate_of=")
    kept = con.sql(f"SELECT input, kept, selected FROM samples WHERE key = '{kept_key}'").fetchall()
    assert kept[0][1:] == (True, True) and kept[0][0] != dup[0][0]  # the other copy stays
    # every input is accounted for: accepted samples or a rejection
    orphan = con.sql("SELECT count(*) FROM inputs WHERE input NOT IN (SELECT input FROM ledger)").fetchall()[0][0]
    assert orphan == 0
    steps = {s.path: s for s in first.steps}
    assert steps["sources.0"].rows_in == 2 and steps["sources.0"].rows_out == GOOD_TEXTS + 1
    assert steps["sources.1"].rejected == BROKEN_IMAGES


def test_mixture_and_streams(built):
    root, _, first, _ = built
    # stage 2 wants 70% text : 30% captions; captions (12) are the scarce category -> 40 total
    assert first.streams == {"stage1-multimodal": GOOD_IMAGES, "stage2-multimodal": GOOD_IMAGES,
                             "stage2-text": 28, "stage3-text": 1}
    mix = {(r["stage"], r["category"]): r for r in first.mixture}
    assert mix[("stage2", "text_only")]["achieved"] == 28 and mix[("stage2", "text_only")]["available"] == GOOD_TEXTS


def test_shards_round_trip_with_webdataset(built):
    root, _, _, _ = built
    out = root / "out1"
    man = _manifests(out)["stage2-multimodal"]
    assert [s["count"] for s in man["shards"]] == [7, 5]  # maxcount 7
    urls = [str(out / "shards" / "stage2-multimodal" / s["name"]) for s in man["shards"]]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert len(samples) == GOOD_IMAGES
    pool_bytes = {}
    for p in sorted((root / "in" / "images").glob("img*.png")):
        pool_bytes[p.read_bytes()] = p
    for s in samples:
        meta = json.loads(s["json"])
        assert meta["key"] == s["__key__"] and meta["images"] == ["0.png"]
        assert s["0.png"] in pool_bytes  # the exact bytes of an input image
        assert meta["text"].startswith("<image>\n")


def test_builds_are_byte_identical(built):
    root = built[0]
    a, b = _manifests(root / "out1"), _manifests(root / "out2")
    assert a == b and len(a) == 4
    for stream, m in a.items():
        for s in m["shards"]:
            assert (root / "out1/shards" / stream / s["name"]).read_bytes() == \
                   (root / "out2/shards" / stream / s["name"]).read_bytes()


def test_verify_catches_tampering(built, tmp_path):
    root = built[0]
    copy = tmp_path / "copy"
    shutil.copytree(root / "out1", copy)
    shard = sorted((copy / "shards" / "stage2-text").glob("*.tar"))[0]
    data = bytearray(shard.read_bytes())
    data[600] ^= 0xFF
    shard.write_bytes(bytes(data))
    (copy / "shards" / "stage1-multimodal" / "stage1-multimodal-000001.tar").unlink()
    problems = verify(copy)
    assert any("sha256 differs" in p for p in problems)
    assert any("listed in the manifest but missing" in p for p in problems)


def test_resume_after_kill_gives_identical_shards(built, tmp_path):
    root, recipe, _, _ = built
    out = tmp_path / "killed"
    shutil.copytree(root / "out1", out)
    # a kill between a part's sample files and its ledger part: samples without `done` markers
    for p in (out / "pool" / "_ledger").glob("*.parquet"):
        p.unlink()
    shutil.rmtree(out / "shards")
    (out / "catalog.duckdb").unlink()
    with pytest.raises(Exception, match="pass --resume"):
        build(recipe, out)
    res = build(recipe, out, resume=True)
    assert res.skipped_inputs == 0 and res.run == 2
    assert _manifests(out) == _manifests(root / "out1")
    assert verify(out) == []
    again = build(recipe, out, resume=True)  # nothing left to do: only assembly re-runs
    assert again.skipped_inputs == again.inputs
    assert _manifests(out) == _manifests(root / "out1")


def test_cli_build_verify_stats_inspect(built, tmp_path):
    root, recipe, _, _ = built
    runner = CliRunner()
    out = tmp_path / "cli"
    r = runner.invoke(app, ["build", str(recipe), "--output", str(out), "--set", "assembly.seed=3"])
    assert r.exit_code == 0, r.output
    assert "sources.1" in r.output and "images.folder" in r.output and "corrupt_image: 1" in r.output
    assert "assembly dedup.exact: candidates 54, hashed 13, removed 1" in r.output
    r = runner.invoke(app, ["verify", str(out)])
    assert r.exit_code == 0 and "ledger balances" in r.output
    r = runner.invoke(app, ["stats", str(out), "--json"])
    s = json.loads(r.output)
    assert s["by_source"] == {"images": GOOD_IMAGES + 1, "text": GOOD_TEXTS + 1}
    assert s["rejections"]["build:images.folder:corrupt_image"] == 1
    shard = next((out / "shards" / "stage1-multimodal").glob("*.tar"))
    r = runner.invoke(app, ["inspect", str(shard), "-n", "2", "--out", str(tmp_path / "imgs")])
    assert r.exit_code == 0 and "2 sample(s)" in r.output
    assert len(list((tmp_path / "imgs").glob("*.png"))) == 2
    r = runner.invoke(app, ["verify", str(tmp_path)])
    assert r.exit_code == 2 and "no catalog" in r.output
