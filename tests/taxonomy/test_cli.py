"""`dsvl-data taxonomy ...` through typer's CliRunner on the real app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from pipelines.cli import app
from taxonomy.catalog import LabelStore
from taxonomy.schema import DEFAULT_PATH, load
from taxonomy.synthetic import labelled_prompts, write_catalog

runner = CliRunner()


def test_validate_bundled_prints_counts():
    r = runner.invoke(app, ["taxonomy", "validate", str(DEFAULT_PATH)])
    assert r.exit_code == 0, r.output
    assert "main 8, secondary 19, leaf 88 (labelable 89)" in r.output


def test_validate_invalid(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_PATH.read_text().replace("parent: global-description", "parent: nowhere", 1))
    r = runner.invoke(app, ["taxonomy", "validate", str(bad)])
    assert r.exit_code == 1 and "parent 'nowhere' does not exist" in r.output


def test_edit_commands_diff_show_migrate(tax_file: Path, catalog_dir: Path, tmp_path: Path):
    before = tmp_path / "before.yaml"
    before.write_text(tax_file.read_text())
    f = ["--file", str(tax_file), "--who", "cli-test"]
    steps = [
        ["add", "Sticker Recognition", "--parent", "local-description", "--keyword", "sticker",
         "--example", "What does this sticker show?", "--weight", "0.5"],
        ["rename", "theme", "--new-id", "image-theme", "--name", "Image Theme"],
        ["move", "counting", "global-description"],
        ["merge", "logo-recognition", "person-recognition"],
        ["retire", "currency-recognition"],
    ]
    for s in steps:
        r = runner.invoke(app, ["taxonomy", *s, *f])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["taxonomy", "retire", "recognition", *f])
    assert r.exit_code == 1 and "live children" in r.output
    tax = load(tax_file)
    assert tax.version == 6 and tax.node("sticker-recognition").weight == 0.5
    assert tax.aliases == {"theme": "image-theme", "logo-recognition": "person-recognition"}
    r = runner.invoke(app, ["taxonomy", "diff", str(before), str(tax_file)])
    d = json.loads(r.output)
    assert d["added"] == ["sticker-recognition"] and d["renamed"] == {"theme": "image-theme"}
    assert d["merged"] == {"logo-recognition": "person-recognition"} and d["retired"] == ["currency-recognition"]
    # tags in the catalog: migrate rewrites old ids, show counts them per node
    import duckdb

    with duckdb.connect(str(catalog_dir / "catalog.duckdb")) as con:
        con.execute("UPDATE samples SET taxonomy = ['theme'] WHERE key IN ('demo-0000', 'demo-0001')")
    r = runner.invoke(app, ["taxonomy", "migrate", str(catalog_dir), "--file", str(tax_file)])
    assert r.exit_code == 0 and json.loads(r.output)["samples_rewritten"] == 2
    r = runner.invoke(app, ["taxonomy", "show", "--file", str(tax_file), "--catalog", str(catalog_dir)])
    assert r.exit_code == 0
    line = next(x for x in r.output.splitlines() if "(image-theme" in x)
    assert line.rstrip().endswith(" 2")


def test_serve_refuses_public_bind_without_token():
    r = runner.invoke(app, ["taxonomy", "serve", "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "give --token" in r.output


def test_train_tagger(tmp_path: Path):
    tax = load(DEFAULT_PATH)
    prompts = labelled_prompts(tax, per_node=12, seed=1)
    samples = [{"key": k, "source": "t", "task": "t", "category": "general_instruct", "stage": [3], "images": [],
                "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "a"}]}
               for k, text, _ in prompts]
    write_catalog(tmp_path, samples, {})
    store = LabelStore(tmp_path / "annotations.duckdb")
    import duckdb
    import pyarrow as pa

    rows = pa.table({"key": [k for k, _, _ in prompts], "labels": [ids for _, _, ids in prompts]})
    with duckdb.connect(str(store.path)) as con:  # bulk insert of annotators' decisions
        con.register("rows", rows)
        con.execute("INSERT INTO labels SELECT key, 'ann', 'label', labels, '', 1, now()::TIMESTAMP FROM rows")
    out = tmp_path / "tagger.bin"
    r = runner.invoke(app, ["taxonomy", "train-tagger", "--catalog", str(tmp_path), "--out", str(out),
                            "--epoch", "20"])
    assert r.exit_code == 0, r.output
    rep = json.loads(Path(str(out) + ".report.json").read_text())
    assert out.stat().st_size > 1000 and rep["train"] + rep["heldout"] == len(prompts)
    assert len(rep["per_main"]) == 8 and rep["leaf_accuracy"] > 0.3
