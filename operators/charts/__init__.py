"""Chart synthesis source `charts.synth`: seeded charts with their table, code and QA samples.

One input unit is one chart ("charts.synth:seed=0:i=000012"); it yields chart-to-table and chart-to-code
pretraining samples, their SFT instruction versions, and question-answer pairs computed from the data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from operators.base import OperatorConfig, Reject, Resources, Source, register
from operators.charts import data as D
from operators.charts.code import render, script
from operators.charts.kinds import KINDS
from operators.charts.qa import questions
from operators.charts.style import ChartStyle, draw_style
from operators.sample import Rejection, Sample, content_key

log = logging.getLogger(__name__)

_UNIT = re.compile(r"^charts\.synth:seed=(\d+):i=(\d+)$")
TABLE_PROMPTS = [
    "Convert this chart into a markdown table.",
    "Extract the underlying data of this chart as a markdown table.",
    "What data is shown in this figure? Answer with a markdown table.",
    "Transcribe the values in this chart into a table.",
]
CODE_PROMPTS = [
    "Write matplotlib code that reproduces this chart.",
    "Generate the Python code that draws this figure.",
    "Give me a Python script using matplotlib to recreate this plot exactly.",
]


class ChartConfig(OperatorConfig):
    count: int = Field(100, ge=1, le=1_000_000, description="number of charts (input units)")
    seed: int = Field(0, ge=0, description="base seed; chart i draws from (seed, i)")
    kinds: list[str] = Field(default_factory=lambda: list(KINDS), description="chart kinds to draw")
    dpi_min: int = Field(72, ge=50, le=300)
    dpi_max: int = Field(110, ge=50, le=300)
    image_format: Literal["png"] = "png"
    qa_per_chart: int = Field(3, ge=0, le=20)
    max_rows: int = Field(
        12,
        ge=3,
        le=40,
        description="cap on table rows (bars, bins, cells); scatter draws up to 3x as many points",
    )
    real_fraction: float = Field(0.3, ge=0.0, le=1.0, description="share of charts drawn from real tables")

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if k not in KINDS]
        if bad:
            raise ValueError(f"unknown chart kind(s) {bad}; allowed: {', '.join(KINDS)}")
        if not v:
            raise ValueError(f"at least one kind is needed; allowed: {', '.join(KINDS)}")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _dpi_range(self) -> ChartConfig:
        if self.dpi_min > self.dpi_max:
            raise ValueError(f"dpi_min ({self.dpi_min}) must not exceed dpi_max ({self.dpi_max})")
        return self


@dataclass
class Chart:
    """One chart: kind, table, style, its script and (once rendered) the PNG bytes."""

    kind: str
    table: D.ChartTable
    style: ChartStyle
    code: str
    image: bytes = b""


def plan_chart(kind: str, rng: np.random.Generator, cfg: ChartConfig) -> Chart:
    """Pick data and style for one chart of `kind` and emit its script (not yet rendered)."""
    table = KINDS[kind].table(rng, cfg.max_rows, cfg.real_fraction)
    return plan_from_table(kind, table, draw_style(rng, cfg.dpi_min, cfg.dpi_max))


def plan_from_table(kind: str, table: D.ChartTable, style: ChartStyle) -> Chart:
    D.validate(table)
    return Chart(kind, table, style, script(KINDS[kind].body(table, style), style))


def chart_from_table(kind: str, table: D.ChartTable, style: ChartStyle) -> Chart:
    chart = plan_from_table(kind, table, style)
    chart.image = render(chart.code, style)
    return chart


def unit_rng(input: str) -> tuple[np.random.Generator, int]:
    """The random stream of one unit id, and the chart index; a malformed id is rejected."""
    m = _UNIT.match(input)
    if not m:
        raise Reject("bad_unit_id", f"expected charts.synth:seed=<n>:i=<n>, got {input[:200]!r}")
    seed, i = int(m.group(1)), int(m.group(2))
    return np.random.default_rng([seed, i]), i


@register("charts.synth")
class ChartSynthesizer(Source):
    """Synthesizes charts of many kinds and styles; every sample keeps the table in meta["table"]."""

    Config = ChartConfig
    version = "1"
    # stateless tasks; small batches because one chart takes ~0.1-0.3 s, so blocks spread over workers
    resources = Resources(batch_size=8)

    def list_inputs(self) -> list[str]:
        c = self.config
        return [f"charts.synth:seed={c.seed}:i={i:06d}" for i in range(c.count)]

    def read(self, input: str) -> Iterable[Sample | Rejection]:
        rng, i = unit_rng(input)
        cfg: ChartConfig = self.config  # type: ignore[assignment]
        chart = plan_chart(cfg.kinds[i % len(cfg.kinds)], rng, cfg)  # round robin: every kind appears
        chart.image = render(chart.code, chart.style)
        log.debug("%s: %s chart from %s, %d bytes", input, chart.kind, chart.table.source, len(chart.image))
        return self.samples(input, chart, rng)

    def samples(self, unit: str, chart: Chart, rng: np.random.Generator) -> list[Sample]:
        t, kind = chart.table, chart.kind
        tax_id = KINDS[kind].taxonomy
        meta = {
            "chart_kind": kind,
            "table": t.as_meta(),
            "style": {"sheet": chart.style.sheet, "font": chart.style.font, "dpi": chart.style.dpi},
        }
        prov = {
            "input": unit,
            "license": "matplotlib sample data" if t.source != "synthetic" else "synthetic",
            "path": t.source,
        }
        md = t.to_markdown(with_title=chart.style.title or kind == "table")
        code_text = chart.code
        out: list[Sample] = []

        def new(task: str, idx: int, category: str, stage: list[int], tax: str, **kw) -> Sample:
            s = Sample(
                key=content_key("chart", unit, task, str(idx)),
                input=unit,
                source=self.name,
                task=task,
                category=category,
                stage=stage,
                lang="en",
                provenance=dict(prov),
                taxonomy=[{"id": tax, "confidence": 1.0, "source": "rule:charts.synth"}],
                meta=dict(meta),
                **kw,
            )
            s.add_image(chart.image, "png")
            return s

        out.append(new("chart_to_table", 0, "table_chart", [2], tax_id, text=f"<image>\n{md}"))
        out.append(new("chart_to_code", 0, "web_code", [2], "chart-to-code", text=f"<image>\n{code_text}"))
        tp = TABLE_PROMPTS[int(rng.integers(len(TABLE_PROMPTS)))]
        out.append(
            new(
                "chart_to_table",
                1,
                "table_chart",
                [3],
                tax_id,
                messages=[
                    {"role": "user", "content": f"<image>\n{tp}"},
                    {"role": "assistant", "content": md},
                ],
            )
        )
        cp = CODE_PROMPTS[int(rng.integers(len(CODE_PROMPTS)))]
        out.append(
            new(
                "chart_to_code",
                1,
                "web_code",
                [3],
                "chart-to-code",
                messages=[
                    {"role": "user", "content": f"<image>\n{cp}"},
                    {"role": "assistant", "content": f"```python\n{code_text}```"},
                ],
            )
        )
        annotated = chart.style.value_labels and len(t.labels) <= 15
        n_qa = self.config.qa_per_chart  # type: ignore[attr-defined]
        for j, qa in enumerate(questions(t, kind, rng, n_qa, annotated)):
            s = new(
                "chart_qa",
                j,
                "table_chart",
                [3],
                tax_id,
                messages=[
                    {"role": "user", "content": f"<image>\n{qa.question}"},
                    {"role": "assistant", "content": qa.answer},
                ],
            )
            s.meta.update({"qa_type": qa.qa_type, "ask": qa.ask, "answer": qa.answer})
            out.append(s)
        return out
