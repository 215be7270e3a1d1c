"""Taxonomy edits: versions, changelog, aliases, reserved ids, conflicts, audit, atomic writes, migration."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from taxonomy import ops
from taxonomy.catalog import Catalog, LabelStore, migrate_catalog
from taxonomy.schema import VersionConflict, load


def test_edit_chain_versions_aliases_and_diff(tax_file: Path):
    t0 = load(tax_file)
    t1 = ops.add(t0, "Meme Template", parent="humor-reasoning", keywords=["meme"], by="ann")
    assert t1.version == t0.version + 1 and t1.changelog[-1].by == "ann"
    assert t1.node("meme-template").kind == "leaf"
    assert "humor-reasoning" not in {n.id for n in t1.labelable()}  # it has a leaf now
    # tree order kept: the new leaf sits right after its parent's subtree
    ids = [n.id for n in t1.nodes]
    assert ids[ids.index("humor-reasoning") + 1] == "meme-template"
    t2 = ops.rename(t1, "theme", new_id="image-theme", name="Image Theme")
    assert t2.aliases["theme"] == "image-theme" and t2.resolve("theme") == "image-theme"
    t3 = ops.merge(t2, "image-theme", "event-behavior")
    assert t3.aliases == {"theme": "event-behavior", "image-theme": "event-behavior"}  # chains flattened
    assert t3.node("event-behavior").weight == 2.0
    t4 = ops.move(t3, "counting", "global-description")
    t5 = ops.retire(t4, "currency-recognition")
    assert t5.resolve("currency-recognition") is None and t5.counts()["leaf"] == 88 + 1 - 1 - 1
    # ids are never reused: retired ids, alias names and live ids are all refused
    for used in ("currency-recognition", "theme", "image-theme", "counting"):
        with pytest.raises(ops.EditError, match="never reused"):
            ops.add(t5, "X", parent="recognition", id=used)
    # a repeated name is parent-qualified automatically
    assert "local-description-counting" in {n.id for n in ops.add(t5, "Counting", parent="local-description").nodes}
    d = ops.diff(t0, t5)
    assert d["version"] == [t0.version, t5.version]
    assert d["added"] == ["meme-template"]
    assert d["merged"] == {"theme": "event-behavior"} and d["retired"] == ["currency-recognition"]
    assert d["moved"] == {"counting": ["local-description", "global-description"]}
    assert d["changed"]["event-behavior"] == ["examples", "keywords", "weight"]


@pytest.mark.parametrize("op,args,message", [
    ("move", {"id": "counting", "parent": "printed-text"}, "cannot sit under the leaf"),
    ("move", {"id": "recognition", "parent": "global-description"}, "under itself|cannot sit"),
    ("merge", {"src": "counting", "dst": "local-description"}, "cannot merge a leaf"),
    ("retire", {"id": "local-description"}, "live children"),
    ("edit", {"id": "counting", "weight": -2.0}, "greater than or equal to 0"),
    ("edit", {"id": "counting", "parent": "x"}, "cannot edit"),
    ("rename", {"id": "nope", "name": "x"}, "no node"),
    ("add", {"name": "!!!", "parent": "recognition"}, "cannot make an id"),
])
def test_refused_edits(tax_file: Path, op, args, message):
    tax = load(tax_file)
    with pytest.raises(ops.EditError, match=message):
        ops.OPS[op](tax, **args)


def test_file_edit_conflict_audit_and_atomic(tax_file: Path):
    v = load(tax_file).version
    new = ops.apply_to_file(tax_file, "edit", {"id": "counting", "description": "Count things."}, "alice",
                            expected_version=v)
    assert new.version == v + 1 and load(tax_file).node("counting").description == "Count things."
    # bob edited against the old version: refused, file unchanged
    with pytest.raises(VersionConflict):
        ops.apply_to_file(tax_file, "edit", {"id": "counting", "description": "bob"}, "bob", expected_version=v)
    assert load(tax_file).node("counting").description == "Count things."
    audit = ops.read_audit(ops.audit_path(tax_file))
    assert [(a["who"], a["op"], a["from_version"], a["to_version"]) for a in audit] == [("alice", "edit", v, v + 1)]
    assert "time" in audit[0]
    text = tax_file.read_text()
    assert text.startswith("# The DeepSeek-VL use-case taxonomy")  # header comments survive saves
    assert not [p for p in tax_file.parent.iterdir() if p.name.endswith(".tmp")]


def test_migrate_catalog_and_labels(tax_file: Path, catalog_dir: Path):
    cat = catalog_dir / "catalog.duckdb"
    with duckdb.connect(str(cat)) as con:
        js = json.loads(con.execute("SELECT json FROM samples WHERE key = 'demo-0000'").fetchone()[0])
        js["taxonomy"] = [{"id": "theme", "confidence": 0.9, "source": "fasttext"},
                          {"id": "currency-recognition", "confidence": 0.5, "source": "rule:keyword"}]
        con.execute("UPDATE samples SET taxonomy = ['theme', 'currency-recognition'], json = ? "
                    "WHERE key = 'demo-0000'", [json.dumps(js)])
    store = LabelStore(catalog_dir / "annotations.duckdb")
    store.add("demo-0001", "ann", "label", ["theme", "counting"])
    ops.apply_to_file(tax_file, "rename", {"id": "theme", "new_id": "image-theme"}, "t")
    ops.apply_to_file(tax_file, "retire", {"id": "currency-recognition"}, "t")
    report = migrate_catalog(catalog_dir, load(tax_file))
    assert report == {"samples_rewritten": 1, "tags_dropped": 1, "dropped_ids": {"currency-recognition": 1},
                      "labels": {"rows_changed": 1, "ids_dropped": 0}}
    s = Catalog(catalog_dir).sample("demo-0000")
    assert s["taxonomy"] == [{"id": "image-theme", "confidence": 0.9, "source": "fasttext"}]
    assert Catalog(catalog_dir).tag_counts() == {"image-theme": 1}
    assert store.latest()[0]["labels"] == ["image-theme", "counting"]
    assert migrate_catalog(catalog_dir, load(tax_file))["samples_rewritten"] == 0  # idempotent


def test_two_concurrent_editors_one_wins(tax_file: Path):
    """Two threads edit against the same version at once: the file lock + version check let exactly one in."""
    import threading

    v = load(tax_file).version
    results: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def editor(who: str) -> None:
        barrier.wait()
        try:
            ops.apply_to_file(tax_file, "edit", {"id": "counting", "description": who}, who, expected_version=v)
            results[who] = "saved"
        except VersionConflict:
            results[who] = "conflict"

    threads = [threading.Thread(target=editor, args=(w,)) for w in ("ann", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == ["conflict", "saved"]
    winner = next(w for w, r in results.items() if r == "saved")
    assert load(tax_file).node("counting").description == winner and load(tax_file).version == v + 1
    assert len(ops.read_audit(ops.audit_path(tax_file))) == 1
