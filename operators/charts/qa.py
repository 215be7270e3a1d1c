"""Question-answer pairs about a chart, with answers computed from its data table.

Each question carries a structured `ask` ({"op", "row"/"rows", "col"/"cols", "threshold"}) stored in the
sample's meta, so the answer can be recomputed from meta["table"] without this module.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from operators.charts.data import ChartTable

QA_TYPES = ("lookup", "max", "min", "comparison", "difference", "sum", "average", "trend", "counting")


@dataclass(frozen=True)
class QAPair:
    qa_type: str
    question: str
    answer: str
    ask: dict[str, Any]


def _a(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _threshold_text(t: ChartTable, th: float) -> str:
    num = t.fmt(th) if t.decimals else str(int(th))
    return num + "%" if t.unit == "%" else num


def plural(word: str) -> str:
    w = word.lower()
    if w.endswith("y") and w[-2:-1] not in "aeiou":
        return w[:-1] + "ies"
    return w if w.endswith("s") else w + "s"


def _unit(t: ChartTable, col: int) -> str:
    return t.x_unit if (t.x_unit and col == 0) else t.unit


def fmt_number(v: float, decimals: int, unit: str) -> str:
    num = f"{v:.{decimals}f}"
    if not unit:
        return num
    return f"{num}%" if unit == "%" else f"{num} {unit}"


class _Builder:
    def __init__(self, t: ChartTable):
        self.t = t
        self.out: list[QAPair] = []

    def add(self, qa_type: str, question: str, answer: str, **ask: Any) -> None:
        self.out.append(QAPair(qa_type, question, answer, ask))

    def val(self, v: float, col: int, decimals: int | None = None) -> str:
        return fmt_number(v, self.t.decimals if decimals is None else decimals, _unit(self.t, col))


def _unique_extreme(col: list[float], fn) -> int | None:
    best = fn(col)
    idx = [i for i, v in enumerate(col) if v == best]
    return idx[0] if len(idx) == 1 else None


def _threshold(col: list[float], decimals: int, rng: np.random.Generator) -> float | None:
    """A round number strictly between two neighbouring values, so the count is unambiguous."""
    vals = sorted(set(col))
    gaps = []
    for a, b in itertools.pairwise(vals):
        for d in range(decimals + 1):
            mid = round((a + b) / 2, d)
            if a < mid < b:
                gaps.append(mid)
                break
    if not gaps:
        return None
    return float(gaps[int(rng.integers(len(gaps)))])


def categorical(t: ChartTable, kind: str, rng: np.random.Generator) -> list[QAPair]:
    """Questions for tables of categories x series (bars, lines, areas, pies, heatmaps, table images)."""
    b = _Builder(t)
    ln = t.label_name
    lns = "bins" if kind == "histogram" else plural(ln)
    multi = len(t.series) > 1
    for j, name in enumerate(t.series):
        col = t.column(j)
        of = f" for {name}" if multi else ""
        i = int(rng.integers(len(col)))
        lab = t.labels[i]
        if kind == "histogram":
            q = f"How many values fall in the range {lab}?"
        elif kind in ("pie", "donut"):
            q = f"What share does {lab} account for?"
        else:
            q = f"What is the value of {name} in {lab}?" if multi else f"What is the value for {lab}?"
        b.add("lookup", q, b.val(col[i], j), op="lookup", row=lab, col=name)
        for qa_type, fn, word in (("max", max, "highest"), ("min", min, "lowest")):
            k = _unique_extreme(col, fn)
            if k is None:
                continue
            if kind == "histogram":
                q = f"Which range contains the {'most' if fn is max else 'fewest'} values?"
            elif kind in ("pie", "donut"):
                q = f"Which {ln.lower()} has the {'largest' if fn is max else 'smallest'} share?"
            else:
                q = f"Which {ln.lower()} has the {word} value{of}?"
            b.add(qa_type, q, t.labels[k], op="argmax" if fn is max else "argmin", col=name)
        if len(col) >= 2:
            a, c = (int(x) for x in rng.choice(len(col), size=2, replace=False))
            if col[a] != col[c]:
                b.add(
                    "comparison",
                    f"Which range contains more values: {t.labels[a]} or {t.labels[c]}?"
                    if kind == "histogram"
                    else f"Which is higher{of}: {t.labels[a]} or {t.labels[c]}?",
                    t.labels[a] if col[a] > col[c] else t.labels[c],
                    op="higher",
                    rows=[t.labels[a], t.labels[c]],
                    col=name,
                )
                hi, lo = (a, c) if col[a] > col[c] else (c, a)
                b.add(
                    "difference",
                    f"How much higher is {t.labels[hi]} than {t.labels[lo]}{of}?",
                    b.val(col[hi] - col[lo], j),
                    op="diff",
                    rows=[t.labels[hi], t.labels[lo]],
                    col=name,
                )
        if kind == "histogram":
            b.add(
                "sum",
                "How many values does the histogram count in total?",
                b.val(sum(col), j),
                op="sum",
                col=name,
            )
        elif kind not in ("pie", "donut"):
            b.add("sum", f"What is the total{of} across all {lns}?", b.val(sum(col), j), op="sum", col=name)
            b.add(
                "average",
                f"What is the average value{of} across all {lns}? Round to two decimals.",
                b.val(math.fsum(col) / len(col), j, decimals=2),
                op="mean",
                col=name,
            )
        if t.ordered and kind != "histogram" and col[0] != col[-1]:
            b.add(
                "trend",
                f"Did the value{of} increase or decrease from {t.labels[0]} to {t.labels[-1]}?",
                "increased" if col[-1] > col[0] else "decreased",
                op="trend",
                col=name,
            )
        th = _threshold(col, t.decimals, rng)
        if th is not None:
            what = {"histogram": "count", "pie": "share", "donut": "share"}.get(kind, f"value{of}")
            b.add(
                "counting",
                f"How many {lns} have {_a(what)} above {_threshold_text(t, th)}?",
                str(sum(v > th for v in col)),
                op="count_above",
                col=name,
                threshold=th,
            )
    b.add("counting", f"How many {lns} are shown?", str(len(t.labels)), op="count_rows")
    if multi:
        b.add("counting", "How many data series are shown?", str(len(t.series)), op="count_cols")
        i = int(rng.integers(len(t.labels)))
        stacked = kind in ("stacked_bar", "area")
        q = (
            f"What is the combined height of the stack for {t.labels[i]}?"
            if stacked
            else f"What is the sum of all series for {t.labels[i]}?"
        )
        b.add("sum", q, b.val(sum(t.values[i]), 0), op="row_sum", row=t.labels[i])
    return b.out


def scatter(t: ChartTable, rng: np.random.Generator, annotated: bool) -> list[QAPair]:
    b = _Builder(t)
    xn, yn = t.series
    x, y = t.column(0), t.column(1)
    b.add("counting", "How many points are plotted?", str(len(x)), op="count_rows")
    b.add("max", f"What is the highest {yn.lower()} shown?", b.val(max(y), 1), op="max_value", col=yn)
    b.add("min", f"What is the lowest {xn.lower()} shown?", b.val(min(x), 0), op="min_value", col=xn)
    b.add(
        "average",
        f"What is the average {yn.lower()}? Round to two decimals.",
        b.val(math.fsum(y) / len(y), 1, decimals=2),
        op="mean",
        col=yn,
    )
    r = float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and np.std(x) > 0 and np.std(y) > 0 else 0.0
    if abs(r) >= 0.3:
        b.add(
            "trend",
            f"Is the relationship between {xn.lower()} and {yn.lower()} positive or negative?",
            "positive" if r > 0 else "negative",
            op="corr",
            cols=[xn, yn],
        )
    th = _threshold(y, t.decimals, rng)
    if th is not None:
        b.add(
            "counting",
            f"How many points have {_a(yn.lower())} above {t.fmt(th)}?",
            str(sum(v > th for v in y)),
            op="count_above",
            col=yn,
            threshold=th,
        )
    if annotated:
        i = int(rng.integers(len(x)))
        b.add(
            "lookup",
            f"What is the {yn.lower()} of {t.labels[i]}?",
            b.val(y[i], 1),
            op="lookup",
            row=t.labels[i],
            col=yn,
        )
    return b.out


def box(t: ChartTable, rng: np.random.Generator) -> list[QAPair]:
    b = _Builder(t)
    ln = t.label_name.lower()
    med = t.column(2)
    i = int(rng.integers(len(t.labels)))
    lab = t.labels[i]
    b.add("lookup", f"What is the median for {lab}?", b.val(med[i], 2), op="lookup", row=lab, col="Median")
    b.add(
        "lookup",
        f"What is the maximum value for {lab}?",
        b.val(t.values[i][4], 4),
        op="lookup",
        row=lab,
        col="Max",
    )
    for qa_type, fn, word in (("max", max, "highest"), ("min", min, "lowest")):
        k = _unique_extreme(med, fn)
        if k is not None:
            b.add(
                qa_type,
                f"Which {ln} has the {word} median?",
                t.labels[k],
                op="argmax" if fn is max else "argmin",
                col="Median",
            )
    if len(med) >= 2:
        a, c = (int(x) for x in rng.choice(len(med), size=2, replace=False))
        if med[a] != med[c]:
            b.add(
                "comparison",
                f"Which has the higher median: {t.labels[a]} or {t.labels[c]}?",
                t.labels[a] if med[a] > med[c] else t.labels[c],
                op="higher",
                rows=[t.labels[a], t.labels[c]],
                col="Median",
            )
    b.add(
        "difference",
        f"What is the interquartile range (Q3 minus Q1) for {lab}?",
        b.val(t.values[i][3] - t.values[i][1], 0),
        op="diff_cols",
        row=lab,
        cols=["Q3", "Q1"],
    )
    b.add("counting", f"How many {plural(ln)} are compared?", str(len(t.labels)), op="count_rows")
    return b.out


def questions(
    t: ChartTable, kind: str, rng: np.random.Generator, n: int, annotated: bool = False
) -> list[QAPair]:
    """Up to `n` questions, spread over as many question types as the chart supports."""
    if kind == "scatter":
        cands = scatter(t, rng, annotated)
    elif kind == "box":
        cands = box(t, rng)
    else:
        cands = categorical(t, kind, rng)
    by_type: dict[str, list[QAPair]] = {}
    for c in cands:
        by_type.setdefault(c.qa_type, []).append(c)
    types = [q for q in QA_TYPES if q in by_type]
    order = [types[i] for i in rng.permutation(len(types))]
    picked: list[QAPair] = []
    while len(picked) < n and any(by_type[q] for q in order):
        for q in order:
            if by_type[q] and len(picked) < n:
                picked.append(by_type[q].pop(int(rng.integers(len(by_type[q])))))
    return picked
