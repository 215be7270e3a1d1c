"""charts.synth: emitted code redraws its chart, output is deterministic, bad config and data are reported."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from operators.base import Reject
from operators.charts import KINDS, ChartSynthesizer, chart_from_table
from operators.charts import data as D
from operators.charts.style import draw_style
from operators.sample import Rejection, Sample
from tests.operators.test_charts import SEED, rendered_one_per_kind

# one subprocess runs each script in a fresh default rc state, as `python chart.py` would
RUNNER = textwrap.dedent("""
    import runpy, sys, os
    import matplotlib
    for path in sys.argv[1:]:
        os.chdir(os.path.dirname(path))
        with matplotlib.rc_context():
            matplotlib.rcdefaults()
            runpy.run_path(path, run_name="__main__")
""")


@pytest.fixture(scope="module")
def charts() -> dict[str, tuple[bytes, str]]:
    out: dict[str, tuple[bytes, str]] = {}
    for s in rendered_one_per_kind():
        assert isinstance(s, Sample), s
        if s.task == "chart_to_code" and s.text:
            out[s.meta["chart_kind"]] = (s.image_bytes[0], s.text[len("<image>\n") :])
    assert set(out) == set(KINDS)
    return out


def test_code_reproduces_every_chart_byte_for_byte(charts, tmp_path: Path):
    paths = []
    for kind, (_, code) in charts.items():
        d = tmp_path / kind
        d.mkdir()
        (d / "chart.py").write_text(code)
        paths.append(str(d / "chart.py"))
    subprocess.run([sys.executable, "-c", RUNNER, *paths], check=True, timeout=120, capture_output=True)
    for kind, (img, _) in charts.items():
        assert (tmp_path / kind / "chart.png").read_bytes() == img, f"{kind}: the code draws another image"


def test_one_script_runs_standalone(charts, tmp_path: Path):
    img, code = charts["heatmap"]
    (tmp_path / "chart.py").write_text(code)
    subprocess.run([sys.executable, "chart.py"], cwd=tmp_path, check=True, timeout=60, capture_output=True)
    assert (tmp_path / "chart.png").read_bytes() == img


def test_code_sample_shapes(charts):
    for kind, (_, code) in charts.items():
        tree = ast.parse(code)
        imports = {
            a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names
        }
        assert "matplotlib.pyplot" in imports, kind
        assert 'fig.savefig("chart.png"' in code.replace("'", '"') and '"Software": None' in code


def test_same_seed_same_bytes_other_seed_differs():
    units = [f"charts.synth:seed={SEED}:i={i:06d}" for i in (2, 7, 12)]  # grouped_bar, scatter, heatmap
    first = [s for s in rendered_one_per_kind() if s.input in units]  # a run made earlier in the session
    again = ChartSynthesizer({"count": len(KINDS), "seed": SEED, "qa_per_chart": 3}).run(units)
    assert len(first) == len(again) == 3 * 7
    assert [s.to_json() for s in again] == [s.to_json() for s in first]
    assert [s.image_bytes for s in again] == [s.image_bytes for s in first]
    other = ChartSynthesizer({"seed": SEED + 1}).run([f"charts.synth:seed={SEED + 1}:i=000002"])
    assert other[0].image_bytes[0] != first[0].image_bytes[0] and other[0].key != first[0].key


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"kinds": ["bar", "radar"]}, "sources.0.with.kinds", ["radar", "grouped_bar", "heatmap"]),
        ({"kinds": []}, "sources.0.with.kinds", ["at least one kind"]),
        ({"dpi_min": 150, "dpi_max": 100}, "sources.0.with", ["dpi_min"]),
        ({"count": 0}, "sources.0.with.count", ["greater than or equal to 1"]),
        ({"max_rows": 100000}, "sources.0.with.max_rows", ["less than or equal to 40"]),
        ({"image_format": "gif"}, "sources.0.with.image_format", ["png"]),
        ({"colour": "red"}, "sources.0.with.colour", ["unknown key", "qa_per_chart"]),
    ],
)
def test_config_errors_name_the_key(values, key, words):
    with pytest.raises(ValueError) as e:
        ChartSynthesizer.parse_config(values, prefix="sources.0.with")
    msg = str(e.value)
    assert key in msg, msg
    for w in words:
        assert w in msg, msg


def test_bad_unit_ids_are_rejected_not_raised():
    out = ChartSynthesizer({"count": 2}).run(["charts.synth:seed=0:i=abc", "../etc/passwd", ""])
    assert [type(o) for o in out] == [Rejection] * 3
    assert {o.reason for o in out} == {"bad_unit_id"}


def _table(values, labels=None) -> D.ChartTable:
    labels = labels or [f"L{i}" for i in range(len(values))]
    return D.ChartTable(
        title="T",
        label_name="Name",
        labels=labels,
        series=["A"],
        values=[[v] for v in values],
        unit="kg",
        decimals=1,
    )


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        (_table([]), "empty_table"),
        (_table([1.0, float("nan"), 3.0]), "non_finite_value"),
        (_table([1.0, float("inf")]), "non_finite_value"),
        (_table([1.0, 2.0], labels=["x", "x"]), "duplicate_labels"),
        (
            D.ChartTable(
                title="T",
                label_name="N",
                labels=["a", "b"],
                series=["A"],
                values=[[1.0]],
                unit="",
                decimals=0,
            ),
            "ragged_table",
        ),
    ],
)
def test_bad_tables_become_rejections(table, reason):
    style = draw_style(np.random.default_rng(0), 72, 80)
    with pytest.raises(Reject) as e:
        chart_from_table("bar", table, style)
    assert e.value.reason == reason


def test_bad_generator_output_is_a_ledger_rejection(monkeypatch):
    """A generator that returns NaNs must end as a Rejection of that unit, and the next unit still works."""
    spec = KINDS["bar"]
    monkeypatch.setitem(
        KINDS, "bar", spec.__class__(lambda r, c, f: _table([2.0, float("nan")]), spec.body, spec.taxonomy)
    )
    out = ChartSynthesizer({"count": 2, "kinds": ["bar", "pie"], "qa_per_chart": 1}).run()
    assert isinstance(out[0], Rejection) and out[0].reason == "non_finite_value"
    assert out[0].input == "charts.synth:seed=0:i=000000"
    assert all(isinstance(s, Sample) and s.meta["chart_kind"] == "pie" for s in out[1:]) and len(out) == 6


def test_hostile_labels_render_and_stay_literal():
    labels = ["Q\"1'", "R&D $5$ \\n", "naïve — Zürich", "x" * 80]
    t = _table([3.5, 1.25, 7.0, 2.0], labels=labels)
    for kind in ("bar", "table"):
        style = draw_style(np.random.default_rng(1), 72, 72)
        chart = chart_from_table(kind, t, style)
        assert chart.image.startswith(b"\x89PNG")
        tree = ast.parse(chart.code)
        consts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert all(any(lab in c for c in consts) for lab in labels)
    assert "| R&D $5$ \\n |" in t.to_markdown()


def test_labels_the_font_cannot_draw_are_rejected():
    t = _table([3.5, 1.25], labels=["Tokyo 東京", "Osaka"])
    with pytest.raises(Reject) as e:
        chart_from_table("bar", t, draw_style(np.random.default_rng(1), 72, 72))
    assert e.value.reason == "missing_glyph"
