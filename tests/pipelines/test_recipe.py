"""Recipe errors fail before any work and name the key and the allowed values."""

from __future__ import annotations

import pytest

from pipelines.recipe import RecipeError, load_recipe, recipe_from_dict
from pipelines.runner import build_recipe

BASE = {
    "name": "t",
    "params": {"inputs": "PLACEHOLDER"},
    "sources": [{"op": "text.jsonl", "with": {"inputs": "${inputs}"}}],
}


def _recipe(tmp_path, **changes):
    d = {**BASE, "params": {"inputs": str(tmp_path)}, **changes}
    return d


def test_unknown_operator_lists_known(tmp_path):
    with pytest.raises(RecipeError) as e:
        recipe_from_dict(_recipe(tmp_path, sources=[{"op": "pdf.nope"}]))
    msg = str(e.value)
    assert msg.startswith("sources.0.op: unknown operator 'pdf.nope'")
    assert "text.jsonl" in msg and "images.folder" in msg


def test_unknown_operator_key_lists_allowed(tmp_path):
    with pytest.raises(RecipeError) as e:
        recipe_from_dict(_recipe(tmp_path), overrides=["sources.0.with.colour=red"])
    assert "sources.0.with.colour: unknown key; allowed keys: inputs, text_field" in str(e.value)


def test_wrong_type_names_key(tmp_path):
    with pytest.raises(RecipeError) as e:
        recipe_from_dict(_recipe(tmp_path), overrides=["sources.0.with.min_chars=many"])
    assert "sources.0.with.min_chars" in str(e.value) and "'many'" in str(e.value)


def test_unknown_recipe_key_and_stage(tmp_path):
    with pytest.raises(RecipeError, match="sourcez: unknown key; allowed keys: name, description, params"):
        recipe_from_dict({**_recipe(tmp_path), "sourcez": []})
    with pytest.raises(RecipeError, match="unknown stage 'stage9'"):
        recipe_from_dict(_recipe(tmp_path, assembly={"mixture": {"stage9": {"ratios": {"caption": 1}}}}))
    with pytest.raises(RecipeError, match="unknown category 'memes'"):
        recipe_from_dict(_recipe(tmp_path, assembly={"mixture": {"stage2": {"ratios": {"memes": 1}}}}))


def test_unknown_parameter_and_bad_override(tmp_path):
    d = _recipe(tmp_path)
    d["sources"] = [{"op": "text.jsonl", "with": {"inputs": "${corpus}"}}]
    with pytest.raises(RecipeError, match=r"unknown parameter \$\{corpus\}; recipe params: inputs"):
        recipe_from_dict(d)
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        recipe_from_dict(_recipe(tmp_path), overrides=["inputs"])
    with pytest.raises(RecipeError, match="not a recipe parameter or key"):
        recipe_from_dict(_recipe(tmp_path), overrides=["seeds=1"])
    with pytest.raises(RecipeError, match="index out of range"):
        recipe_from_dict(_recipe(tmp_path), overrides=["sources.3.op=text.jsonl"])


def test_param_override_keeps_type(tmp_path):
    r = recipe_from_dict(_recipe(tmp_path), overrides=[f"inputs=[{tmp_path}, {tmp_path}/x]"])
    assert r.sources[0][0].config.inputs == [str(tmp_path), f"{tmp_path}/x"]


def test_missing_input_fails_before_work(tmp_path):
    missing = tmp_path / "nothing-here"
    r = recipe_from_dict(_recipe(tmp_path), overrides=[f"inputs={missing}"])
    out = tmp_path / "out"
    with pytest.raises(RecipeError, match=r"sources.0.with: inputs: .*nothing-here' does not exist"):
        build_recipe(r, out)
    assert not out.exists()  # nothing written, Ray never started


def test_missing_recipe_file_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(bad)


def test_shipped_recipes_validate():
    from pathlib import Path

    recipes = sorted(Path("pipelines").glob("*.yaml"))
    assert any(p.name == "demo.yaml" for p in recipes)
    for p in recipes:
        load_recipe(p)  # operators, keys and params resolve
