"""The bundled taxonomy and the schema's validation rules."""

from __future__ import annotations

import pytest
import yaml

from taxonomy.schema import DEFAULT_PATH, Taxonomy, load

SHARED_IDS = ["graph-interpretation", "table-interpretation", "chart-to-code", "ui-to-code", "formula-to-code",
              "flowchart-to-code", "text-summary", "text-interpretation", "printed-text", "handwritten-text",
              "specified-format", "specified-language-transcription", "pointing-description",
              "position-description", "counting", "object-attribute-description"]


def test_bundled_counts_and_shared_ids():
    tax = load(DEFAULT_PATH)
    assert tax.counts() == {"main": 8, "secondary": 19, "leaf": 88, "labelable": 89}
    labelable = {n.id for n in tax.labelable()}
    assert set(SHARED_IDS) <= labelable
    assert "humor-reasoning" in labelable  # a secondary without leaves is labelable itself
    # leaves directly under main categories (no secondary level)
    assert {n.parent for n in tax.nodes if n.kind == "leaf" and tax.node(n.parent).kind == "main"} == {
        "evaluation", "safety"}
    # repeated names get parent-qualified ids
    assert tax.node("professional-chart-analysis-others").name == "Others"
    assert tax.node("multi-graph-comparison-attribute-comparison").parent == "multi-graph-comparison"
    assert tax.main_of("counting") == "recognition" and tax.path("counting")[1] == "local-description"
    assert abs(sum(tax.target_weights().values()) - 1.0) < 1e-9
    assert all(n.keywords and n.examples for n in tax.labelable())


def _data():
    return yaml.safe_load(DEFAULT_PATH.read_text())


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["nodes"].append(dict(d["nodes"][5])), "duplicate node ids"),
    (lambda d: d["nodes"][3].update(parent="nowhere"), "does not exist"),
    (lambda d: d["nodes"][3].update(weight=-1.0), "greater than or equal to 0"),
    (lambda d: d["aliases"].update({"old-theme": "gone"}), "does not point to a live node"),
    (lambda d: d["aliases"].update({"counting": "theme"}), "is also a node id"),
    (lambda d: d["nodes"][2].update(parent="theme"), "cannot sit under the leaf"),
    (lambda d: d["nodes"][0].update(parent="analysis"), "cannot sit under the main"),
    (lambda d: d["nodes"][2].update(id="Not A Slug"), "should match pattern"),
    (lambda d: d["nodes"][2].update(colour="red"), "Extra inputs are not permitted"),
])
def test_validation_rejects(mutate, message):
    d = _data()
    mutate(d)
    with pytest.raises(ValueError, match=message):
        Taxonomy.model_validate(d)


def test_retired_parent_and_alias_to_retired(tmp_path):
    d = _data()
    for n in d["nodes"]:
        if n["id"] == "global-description":
            n["retired"] = True
    with pytest.raises(ValueError, match="parent 'global-description' is retired"):
        Taxonomy.model_validate(d)
    d = _data()
    next(n for n in d["nodes"] if n["id"] == "theme")["retired"] = True
    d["aliases"]["old-theme"] = "theme"
    with pytest.raises(ValueError, match="does not point to a live node"):
        Taxonomy.model_validate(d)
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="not a YAML mapping"):
        load(bad)
