"""charts.synth: every kind renders and yields its samples; QA answers match an independent recomputation.

The QA check below re-derives each answer from meta["table"] and meta["ask"] with its own arithmetic,
never calling operators.charts.qa.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from operators.base import get_operator
from operators.charts import KINDS, ChartSynthesizer
from operators.charts import data as D
from operators.charts.qa import questions
from operators.sample import Rejection, Sample

QA_PER_CHART = 3
SEED = 7


@functools.lru_cache(maxsize=1)
def rendered_one_per_kind() -> tuple[Sample | Rejection, ...]:
    """One chart of every kind, rendered once per test session (test_charts_code.py reuses it)."""
    op = ChartSynthesizer({"count": len(KINDS), "seed": SEED, "qa_per_chart": QA_PER_CHART})
    return tuple(op.run())


@pytest.fixture(scope="module")
def one_per_kind() -> list[Sample | Rejection]:
    return list(rendered_one_per_kind())


def _by_unit(items: list[Sample | Rejection]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for s in items:
        assert isinstance(s, Sample), f"unexpected rejection {s}"
        out.setdefault(s.input, []).append(s)
    return out


def test_registered_and_lists_deterministic_units():
    assert get_operator("charts.synth") is ChartSynthesizer
    op = ChartSynthesizer({"count": 3, "seed": 5})
    assert op.list_inputs() == [f"charts.synth:seed=5:i={i:06d}" for i in range(3)]


def test_every_kind_renders_with_its_samples(one_per_kind):
    assert len(KINDS) >= 14
    units = _by_unit(one_per_kind)
    assert len(units) == len(KINDS)
    kinds_seen = Counter()
    for unit, samples in units.items():
        kind = samples[0].meta["chart_kind"]
        kinds_seen[kind] += 1
        tasks = Counter((s.task, tuple(s.stage), s.category) for s in samples)
        assert tasks[("chart_to_table", (2,), "table_chart")] == 1
        assert tasks[("chart_to_code", (2,), "web_code")] == 1
        assert tasks[("chart_to_table", (3,), "table_chart")] == 1
        assert tasks[("chart_to_code", (3,), "web_code")] == 1
        assert tasks[("chart_qa", (3,), "table_chart")] == QA_PER_CHART, (kind, tasks)
        img = samples[0].image_bytes[0]
        assert img.startswith(b"\x89PNG\r\n\x1a\n")
        im = Image.open(io.BytesIO(img))
        assert im.format == "PNG" and 300 <= im.width <= 1400 and 200 <= im.height <= 1000, im.size
        # a real drawing, not a blank canvas: many distinct colours
        assert len(im.convert("RGB").getcolors(1 << 20)) > 20
        keys = [s.key for s in samples]
        assert len(set(keys)) == len(keys)
        for s in samples:
            assert s.images == ["0.png"] and s.image_bytes == [img]
            assert s.source == "charts.synth" and s.lang == "en"
            assert s.provenance["input"] == unit
            tag = s.taxonomy[0]
            assert tag["confidence"] == 1.0 and tag["source"] == "rule:charts.synth"
            want = (
                "chart-to-code"
                if s.task == "chart_to_code"
                else "table-interpretation"
                if kind == "table"
                else "graph-interpretation"
            )
            assert tag["id"] == want
            if s.messages is not None:
                assert s.messages[0]["role"] == "user" and s.messages[0]["content"].startswith("<image>\n")
                assert s.messages[1]["role"] == "assistant" and s.messages[1]["content"]
                assert sum(m["content"].count("<image>") for m in s.messages) == 1
            else:
                assert s.text.startswith("<image>\n") and s.text.count("<image>") == 1
    assert set(kinds_seen) == set(KINDS)


def _parse_markdown(md: str) -> list[list[str]]:
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows if not set(r) <= set("|-: ")]


def test_markdown_table_holds_the_chart_data(one_per_kind):
    for samples in _by_unit(one_per_kind).values():
        table = samples[0].meta["table"]
        pre = next(s for s in samples if s.task == "chart_to_table" and s.text)
        parsed = _parse_markdown(pre.text)
        assert len(parsed) == len(table["rows"]) + 1
        d = table["decimals"]
        for row, prow in zip(table["rows"], parsed[1:]):
            assert prow[0] == row[0].replace("|", "\\|")
            assert prow[1:] == [f"{v:.{d}f}" for v in row[1:]]
        sft = next(s for s in samples if s.task == "chart_to_table" and s.messages)
        assert sft.messages[1]["content"] == pre.text[len("<image>\n") :]


# --- independent recomputation of QA answers -----------------------------------------------------


def _expected(table: dict, ask: dict) -> str:
    cols = table["columns"]
    rows = {r[0]: r[1:] for r in table["rows"]}
    unit = table.get("unit", "")
    dec = table["decimals"]

    def col(name: str) -> list[float]:
        j = cols.index(name) - 1
        return [r[1:][j] for r in table["rows"]]

    def cell(row: str, name: str) -> float:
        return rows[row][cols.index(name) - 1]

    def num(v: float, d: int = dec, u: str | None = None) -> str:
        u = unit if u is None else u
        s = f"{v:.{d}f}"
        return s + ("%" if u == "%" else f" {u}" if u else "")

    op = ask["op"]
    if op == "lookup":
        return num(cell(ask["row"], ask["col"]), u=_col_unit(table, ask["col"]))
    if op in ("argmax", "argmin"):
        c = col(ask["col"])
        target = max(c) if op == "argmax" else min(c)
        assert c.count(target) == 1, "a max/min question needs a unique answer"
        return table["rows"][c.index(target)][0]
    if op in ("max_value", "min_value"):
        c = col(ask["col"])
        return num(max(c) if op == "max_value" else min(c), u=_col_unit(table, ask["col"]))
    if op == "higher":
        a, b = ask["rows"]
        va, vb = cell(a, ask["col"]), cell(b, ask["col"])
        assert va != vb
        return a if va > vb else b
    if op == "diff":
        a, b = ask["rows"]
        assert cell(a, ask["col"]) > cell(b, ask["col"])
        return num(cell(a, ask["col"]) - cell(b, ask["col"]))
    if op == "diff_cols":
        c1, c2 = ask["cols"]
        return num(cell(ask["row"], c1) - cell(ask["row"], c2))
    if op == "sum":
        return num(math.fsum(col(ask["col"])))
    if op == "row_sum":
        return num(math.fsum(rows[ask["row"]]))
    if op == "mean":
        c = col(ask["col"])
        return num(math.fsum(c) / len(c), 2, _col_unit(table, ask["col"]))
    if op == "trend":
        c = col(ask["col"])
        assert table["ordered"] and c[0] != c[-1]
        return "increased" if c[-1] > c[0] else "decreased"
    if op == "corr":
        x, y = col(ask["cols"][0]), col(ask["cols"][1])
        mx, my = sum(x) / len(x), sum(y) / len(y)
        cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
        return "positive" if cov > 0 else "negative"
    if op == "count_above":
        c = col(ask["col"])
        assert ask["threshold"] not in c
        return str(sum(1 for v in c if v > ask["threshold"]))
    if op == "count_rows":
        return str(len(table["rows"]))
    if op == "count_cols":
        return str(len(cols) - 1)
    raise AssertionError(f"unknown op {op}")


def _col_unit(table: dict, name: str) -> str:
    return table["x_unit"] if table.get("x_unit") and table["columns"].index(name) == 1 else table["unit"]


def test_qa_answers_match_independent_recomputation(one_per_kind):
    types = Counter()
    for s in one_per_kind:
        if s.task != "chart_qa":
            continue
        table, ask = s.meta["table"], s.meta["ask"]
        assert s.messages[1]["content"] == _expected(table, ask), (s.meta["chart_kind"], ask, s.messages)
        types[s.meta["qa_type"]] += 1
    assert sum(types.values()) == QA_PER_CHART * len(KINDS)


def test_qa_over_many_tables_covers_every_type():
    """Hundreds of tables (no rendering): every answer recomputed, every question type produced."""
    types = Counter()
    for i in range(280):
        kind = list(KINDS)[i % len(KINDS)]
        rng = np.random.default_rng([99, i])
        t = KINDS[kind].table(rng, 12, 0.5)
        D.validate(t)
        meta = t.as_meta()
        for qa in questions(t, kind, rng, 20, annotated=True):
            assert qa.answer == _expected(meta, qa.ask), (kind, qa)
            assert "<image>" not in qa.question
            types[qa.qa_type] += 1
    assert set(types) == {
        "lookup",
        "max",
        "min",
        "comparison",
        "difference",
        "sum",
        "average",
        "trend",
        "counting",
    }
    assert min(types.values()) >= 20, types


def test_real_tables_match_the_files_they_come_from():
    import pandas as pd

    rng = np.random.default_rng(3)
    t = D.real_yearly_close(rng, 6, 3)
    assert t.source.endswith("Stocks.csv") and len(t.labels) == 6 and len(t.series) == 3
    df = pd.read_csv(D._sample_data("Stocks.csv"), comment="#", parse_dates=["Date"])
    df = df[df["Date"].dt.day == 1]
    name_to_ticker = {v: k for k, v in D.TICKER_NAMES.items()}
    for year, row in zip(t.labels, t.values):
        for name, v in zip(t.series, row):
            ref = df[df["Date"].dt.year == int(year)][name_to_ticker[name]].mean()
            assert v == pytest.approx(round(ref, 1), abs=0.051)
    vol = D.real_msft_volume(rng, 8)
    ref = pd.read_csv(D._sample_data("msft.csv")).set_index("Date")["Volume"]
    for lab, row in zip(vol.labels, vol.values):
        assert row[0] == round(ref[lab] / 1e6, 1)
    ret = D.real_goog_returns(rng, 3)
    assert len(ret.labels) == 3 and all(len(s) >= 40 for s in ret.samples)


def test_styles_and_sources_vary_across_charts():
    """Plans only (no rendering): styles, sizes and data sources spread over what the config allows."""
    from operators.charts import ChartConfig, plan_chart, unit_rng

    cfg = ChartConfig(count=210, seed=1, dpi_min=70, dpi_max=100)
    plans = []
    for i in range(cfg.count):
        rng, _ = unit_rng(f"charts.synth:seed=1:i={i:06d}")
        plans.append(plan_chart(cfg.kinds[i % len(cfg.kinds)], rng, cfg))
    styles = [p.style for p in plans]
    assert len({s.sheet for s in styles}) >= 6 and len({s.font for s in styles}) == 4
    assert len({tuple(s.palette) for s in styles}) >= 10 and len({s.figsize for s in styles}) >= 5
    assert all(70 <= s.dpi <= 100 for s in styles) and len({s.dpi for s in styles}) >= 15
    assert {s.value_labels for s in styles} == {True, False} and {s.grid for s in styles} == {True, False}
    assert {s.legend_loc for s in styles} >= {"best", "outside"} and {s.highlight for s in styles} == {
        True,
        False,
    }
    sources = Counter(p.table.source.rsplit("/", 1)[-1] for p in plans)
    assert {"synthetic", "Stocks.csv", "msft.csv", "goog.npz"} <= set(sources), sources
    assert 0.15 < 1 - sources["synthetic"] / len(plans) < 0.45  # real_fraction defaults to 0.3
    assert len({p.table.title.split(":")[0] for p in plans}) >= 12  # many themes, not one
