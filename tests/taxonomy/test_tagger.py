"""The tagger: task and keyword rules, the fastText classifier trained on labels, the `taxonomy.tag` operator."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.base import get_operator, run_operator
from operators.sample import Sample
from taxonomy.catalog import LabelStore
from taxonomy.schema import DEFAULT_PATH, load
from taxonomy.synthetic import labelled_prompts, write_catalog
from taxonomy.tagger import Tagger, examples_from_labels, split, train


@pytest.fixture(scope="module")
def tax():
    return load(DEFAULT_PATH)


@pytest.fixture(scope="module")
def model(tax, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tagger") / "tagger.bin"
    report = train(labelled_prompts(tax, per_node=30, seed=0), tax, out, holdout=0.2, seed=0, epoch=25)
    return out, report


def test_rules(tax):
    t = Tagger(tax)
    tags = t.tag("<image>\nHow many apples are on the table?", task="chart_qa")
    assert tags[0] == {"id": "graph-interpretation", "confidence": 0.9, "source": "rule:task"}
    assert {"id": "counting", "confidence": 0.5, "source": "rule:keyword"} in tags
    # word boundaries: "bitmap" must not fire the Map leaf
    assert "map" not in t.keyword_hits("convert this bitmap")
    # existing tags from the source are kept (resolved through aliases), highest confidence first
    assert t.tag("", existing=[{"id": "printed-text", "confidence": 1.0, "source": "pdf.extract"}])[0] == {
        "id": "printed-text", "confidence": 1.0, "source": "pdf.extract"}
    assert t.tag("nothing to see") == []
    # per-turn keyword rules: each question of a conversation is seen; ties keep the first turn first
    turns = ["How many circles are there?", "What colour is the square?"]
    assert [x["id"] for x in t.tag("\n".join(turns), turns=turns)] == ["counting", "object-attribute-description"]


def test_fasttext_heldout_accuracy_per_main(tax, model):
    path, report = model
    assert report["labels"] == 89 and report["heldout"] > 300
    assert set(report["per_main"]) == {"recognition", "conversion", "analysis", "commonsense-reasoning",
                                       "logical-reasoning", "evaluation", "multi-graph", "safety"}
    assert report["leaf_accuracy"] > 0.6 and report["main_accuracy"] >= report["leaf_accuracy"]
    assert all(v["n"] > 0 and 0 <= v["leaf_accuracy"] <= 1 for v in report["per_main"].values())
    t = Tagger(tax, path, k=1, threshold=0.0)
    pred = t.predict("Write the matplotlib code that draws this chart.")
    assert pred[0][0] == "chart-to-code" and 0 < pred[0][1] <= 1.0


def test_split_is_stable():
    held = [k for k in (f"k{i}" for i in range(1000)) if split(k, 0, 0.2)]
    assert 150 < len(held) < 250 and held == [k for k in (f"k{i}" for i in range(1000)) if split(k, 0, 0.2)]


def test_tag_operator(tax, model):
    op = get_operator("taxonomy.tag")({"model": str(model[0]), "max_tags": 2, "categories": ["general_instruct"]})
    s = Sample(key="s1", input="x", source="llava", task="instruct", category="general_instruct", stage=[3],
               messages=[{"role": "user", "content": "<image>\nWrite the LaTeX for this equation."},
                         {"role": "assistant", "content": "E = mc^2"}])
    other = Sample(key="s2", input="x", source="web", task="page", category="interleaved", stage=[2], text="hi")
    out = run_operator(op, [s, other])
    pre = Sample(key="s3", input="x", source="charts", task="chart_qa", category="general_instruct", stage=[2],
                 text="How many bars?")
    assert run_operator(get_operator("taxonomy.tag")({}), [pre])[0].taxonomy == []  # stage 2: not tagged
    assert out[0].taxonomy[0]["id"] == "formula-to-code" and len(out[0].taxonomy) <= 2
    assert {t["source"] for t in out[0].taxonomy} <= {"fasttext", "rule:keyword", "rule:task"}
    assert out[1].taxonomy == [] and out[0].provenance["operators"]["taxonomy.tag"] == "1"


def test_examples_from_labels(tmp_path, tax):
    samples = [{"key": f"s{i}", "source": "t", "task": "t", "category": "general_instruct", "stage": [3],
                "messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "a"}],
                "images": []} for i in range(3)]
    write_catalog(tmp_path, samples, {})
    store = LabelStore(tmp_path / "annotations.duckdb")
    store.add("s0", "a", "label", ["counting"])
    store.add("s1", "a", "skip", [])
    store.add("s2", "a", "label", ["theme"])
    store.add("s2", "b", "flag", [], "bad image")  # the latest decision wins
    assert examples_from_labels(tmp_path) == [("s0", "question 0", ["counting"])]
