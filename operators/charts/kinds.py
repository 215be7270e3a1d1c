"""One drawing function per chart kind: each picks its data table and writes the matplotlib code body.

The code body is the single source of truth for the image: the operator renders a chart by running
exactly the code it emits, so the chart-to-code target redraws the chart by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from operators.charts import data as D
from operators.charts.code import literal
from operators.charts.data import ChartTable
from operators.charts.style import ChartStyle


@dataclass(frozen=True)
class KindSpec:
    table: Callable[[np.random.Generator, int, float], ChartTable]  # (rng, max_rows, real_fraction)
    body: Callable[[ChartTable, ChartStyle], list[str]]
    taxonomy: str  # graph-interpretation or table-interpretation


def _r(x: object) -> str:
    """A Python literal; floats keep the table's rounding, so code and table hold the same numbers."""
    return literal(x)


def _n(rng: np.random.Generator, lo: int, hi: int, cap: int) -> int:
    return max(min(lo, cap), min(int(rng.integers(lo, hi + 1)), cap))


def _ylabel(t: ChartTable) -> str:
    if len(t.series) == 1 and t.series[0] not in ("Count", "Share"):
        return f"{t.series[0]} ({t.unit})" if t.unit else t.series[0]
    return t.unit or "Value"


def _darkest(colors: list[str]) -> str:
    """The palette colour with the lowest luminance, darkened: white header text must stay readable."""

    def lum(c: str) -> float:
        r, g, b = (int(c[i : i + 2], 16) for i in (1, 3, 5))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    c = min(colors, key=lum)
    f = min(1.0, 100 / max(lum(c), 1.0))  # darken light palettes (set2, pastel) to a readable header
    return "#" + "".join(f"{int(int(c[i : i + 2], 16) * f):02x}" for i in (1, 3, 5))


def _fmt_spec(t: ChartTable) -> str:
    return f"%.{t.decimals}f"


# --- table choices per kind -------------------------------------------------------------------


def _single(
    rng: np.random.Generator, cap: int, real: float, positive: bool = False, ordered: bool = False
) -> ChartTable:
    if rng.random() < real:
        if rng.random() < 0.5:
            return D.real_msft_volume(rng, _n(rng, 5, 10, cap))
        return D.real_yearly_close(rng, _n(rng, 5, 10, cap), 1)
    return D.synthetic_table(rng, _n(rng, 4, 10, cap), 1, positive=positive, ordered=ordered)


def _multi(
    rng: np.random.Generator,
    cap: int,
    real: float,
    rows: tuple[int, int],
    k: tuple[int, int],
    positive: bool = False,
    ordered: bool = False,
) -> ChartTable:
    if rng.random() < real:
        return D.real_yearly_close(rng, _n(rng, *rows, cap), int(rng.integers(k[0], k[1] + 1)))
    return D.synthetic_table(
        rng, _n(rng, *rows, cap), int(rng.integers(k[0], k[1] + 1)), positive=positive, ordered=ordered
    )


def _pie_table(rng: np.random.Generator, cap: int, real: float) -> ChartTable:
    return D.shares(D.synthetic_table(rng, _n(rng, 3, 7, cap), 1, positive=True))


def _scatter_table(rng: np.random.Generator, cap: int, real: float) -> ChartTable:
    if rng.random() < real:
        return D.real_msft_scatter(rng, _n(rng, 12, 40, 3 * cap))  # points are cheap to read: 3x the row cap
    return D.synthetic_scatter(rng, _n(rng, 8, 30, 3 * cap))


def _hist_table(rng: np.random.Generator, cap: int, real: float) -> ChartTable:
    src = D.real_goog_returns(rng, 1) if rng.random() < real else D.synthetic_samples(rng, 1, 120)
    return D.histogram_table(src, _n(rng, 6, 12, cap))


def _box_table(rng: np.random.Generator, cap: int, real: float) -> ChartTable:
    n = _n(rng, 3, 5, cap)
    src = D.real_goog_returns(rng, n) if rng.random() < real else D.synthetic_samples(rng, n, 40)
    return D.box_table(src)


# --- code bodies ------------------------------------------------------------------------------


def _finish(
    t: ChartTable,
    s: ChartStyle,
    legend: bool = False,
    xlabel: str | None = None,
    ylabel: str | None = None,
    grid_axis: str = "y",
) -> list[str]:
    out = []
    if s.title:
        out.append(f"ax.set_title({_r(t.title)})")
    if xlabel:
        out.append(f"ax.set_xlabel({_r(xlabel)})")
    if ylabel:
        out.append(f"ax.set_ylabel({_r(ylabel)})")
    if s.grid:
        out += [f'ax.grid(True, axis="{grid_axis}", linestyle="--", alpha=0.5)', "ax.set_axisbelow(True)"]
    if legend:
        if s.legend_loc == "outside":
            out.append('ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)')
        else:
            out.append(f"ax.legend(loc={_r(s.legend_loc)})")
    return out


def _rotate(t: ChartTable) -> list[str]:
    if len(t.labels) > 6 or max(len(x) for x in t.labels) > 8:
        return ['plt.setp(ax.get_xticklabels(), rotation=40, ha="right")']
    return []


def _highlight(t: ChartTable, s: ChartStyle) -> list[str]:
    if not s.highlight or s.value_labels:
        return []
    return [
        "k = values.index(max(values))",
        (
            f'ax.annotate("Peak: {_fmt_spec(t)}" % values[k], xy=(k, values[k]), xytext=(0, 16), '
            'textcoords="offset points", ha="center",'
        ),
        '            arrowprops={"arrowstyle": "->", "color": "black"}, fontsize=8)',
        "ax.margins(y=0.15)",
    ]


def body_bar(t: ChartTable, s: ChartStyle) -> list[str]:
    out = [
        f"labels = {_r(t.labels)}",
        f"values = {_r(t.column(0))}",
        "",
        f"fig, ax = plt.subplots(figsize={_r(s.figsize)})",
        f"bars = ax.bar(labels, values, width={s.bar_width}, color={_r(s.color(0))}, alpha={s.alpha})",
    ]
    if s.value_labels:
        out.append(f'ax.bar_label(bars, fmt="{_fmt_spec(t)}", padding=2)')
    if any(v < 0 for v in t.column(0)):
        out.append('ax.axhline(0, color="black", linewidth=0.8)')
    return out + _highlight(t, s) + _rotate(t) + _finish(t, s, xlabel=t.label_name, ylabel=_ylabel(t))


def body_hbar(t: ChartTable, s: ChartStyle) -> list[str]:
    h = max(s.figsize[1], 0.38 * len(t.labels) + 1.2)
    out = [
        f"labels = {_r(t.labels)}",
        f"values = {_r(t.column(0))}",
        "",
        f"fig, ax = plt.subplots(figsize=({s.figsize[0]}, {round(h, 2)}))",
        f"bars = ax.barh(labels, values, height={s.bar_width}, color={_r(s.palette[: len(t.labels)])})",
        "ax.invert_yaxis()  # first row on top, as in the table",
    ]
    if s.value_labels:
        out.append(f'ax.bar_label(bars, fmt="{_fmt_spec(t)}", padding=3)')
    return out + _finish(t, s, xlabel=_ylabel(t), grid_axis="x")


def _series_dict(t: ChartTable) -> str:
    items = ",\n".join(f"    {_r(name)}: {_r(t.column(j))}" for j, name in enumerate(t.series))
    return "series = {\n" + items + ",\n}"


def body_grouped_bar(t: ChartTable, s: ChartStyle) -> list[str]:
    k = len(t.series)
    out = [
        f"labels = {_r(t.labels)}",
        _series_dict(t),
        f"colors = {_r(s.palette[:k])}",
        "",
        f"fig, ax = plt.subplots(figsize={_r(s.figsize)})",
        f"width = {round(s.bar_width / k, 4)}",
        "for i, (name, vals) in enumerate(series.items()):",
        f"    offset = (i - {(k - 1) / 2}) * width",
        "    xs = [j + offset for j in range(len(labels))]",
        "    bars = ax.bar(xs, vals, width, label=name, color=colors[i])",
    ]
    if s.value_labels:
        out.append(f'    ax.bar_label(bars, fmt="{_fmt_spec(t)}", padding=1, fontsize=7)')
    out.append("ax.set_xticks(range(len(labels)), labels)")
    if any(v < 0 for row in t.values for v in row):
        out.append('ax.axhline(0, color="black", linewidth=0.8)')
    return out + _rotate(t) + _finish(t, s, legend=True, xlabel=t.label_name, ylabel=_ylabel(t))


def body_stacked_bar(t: ChartTable, s: ChartStyle) -> list[str]:
    k = len(t.series)
    out = [
        f"labels = {_r(t.labels)}",
        _series_dict(t),
        f"colors = {_r(s.palette[:k])}",
        "",
        f"fig, ax = plt.subplots(figsize={_r(s.figsize)})",
        "bottom = [0.0] * len(labels)",
        "for i, (name, vals) in enumerate(series.items()):",
        f"    bars = ax.bar(labels, vals, {s.bar_width}, bottom=bottom, label=name, color=colors[i])",
    ]
    if s.value_labels:
        out.append(f'    ax.bar_label(bars, fmt="{_fmt_spec(t)}", label_type="center", fontsize=7)')
    out.append("    bottom = [b + v for b, v in zip(bottom, vals)]")
    return out + _rotate(t) + _finish(t, s, legend=True, xlabel=t.label_name, ylabel=_ylabel(t))


def body_line(t: ChartTable, s: ChartStyle) -> list[str]:
    out = [
        f"labels = {_r(t.labels)}",
        f"values = {_r(t.column(0))}",
        "",
        f"fig, ax = plt.subplots(figsize={_r(s.figsize)})",
        (
            f"ax.plot(labels, values, marker={_r(s.marker or 'o')}, linestyle={_r(s.linestyle)}, "
            f"color={_r(s.color(0))}, linewidth=2)"
        ),
    ]
    if s.value_labels:
        out += [
            "for x, y in zip(labels, values):",
            (
                f'    ax.annotate("{_fmt_spec(t)}" % y, (x, y), textcoords="offset points", xytext=(0, 6), '
                'ha="center", fontsize=8)'
            ),
        ]
    return (
        out
        + _highlight(t, s)
        + _rotate(t)
        + _finish(t, s, xlabel=t.label_name, ylabel=_ylabel(t), grid_axis="both")
    )


def body_multi_line(t: ChartTable, s: ChartStyle) -> list[str]:
    k = len(t.series)
    out = [
        f"labels = {_r(t.labels)}",
        _series_dict(t),
        f"colors = {_r(s.palette[:k])}",
        "",
        f"fig, ax = plt.subplots(figsize={_r(s.figsize)})",
        "for i, (name, vals) in enumerate(series.items()):",
        (
            f"    ax.plot(labels, vals, marker={_r(s.marker)}, linestyle={_r(s.linestyle)}, color=colors[i], "
            "label=name, linewidth=1.8)"
        ),
    ]
    return (
        out
        + _rotate(t)
        + _finish(t, s, legend=True, xlabel=t.label_name, ylabel=_ylabel(t), grid_axis="both")
    )


def body_area(t: ChartTable, s: ChartStyle) -> list[str]:
    k = len(t.series)
    out = [
        f"labels = {_r(t.labels)}",
        _series_dict(t),
        f"colors = {_r(s.palette[:k])}",
        "",
        f"fig, ax = plt.subplots(figsize={_r(s.figsize)})",
        "xs = list(range(len(labels)))",
        f"ax.stackplot(xs, *series.values(), labels=list(series), colors=colors, alpha={min(s.alpha, 0.85)})",
        "ax.set_xticks(xs, labels)",
        "ax.set_xlim(0, len(labels) - 1)",
    ]
    return (
        out
        + _rotate(t)
        + _finish(
            t, s, legend=k > 1, xlabel=t.label_name, ylabel=_ylabel(t) if k == 1 else f"{t.unit} (stacked)"
        )
    )


def body_scatter(t: ChartTable, s: ChartStyle) -> list[str]:
    out = [
        f"names = {_r(t.labels)}",
        f"x = {_r(t.column(0))}",
        f"y = {_r(t.column(1))}",
        "",
        f"fig, ax = plt.subplots(figsize={_r(s.figsize)})",
        (
            f'ax.scatter(x, y, s=45, color={_r(s.color(0))}, alpha={s.alpha}, edgecolors="white", '
            f"marker={_r(s.marker if s.marker in ('o', 's', '^', 'D', 'v') else 'o')})"
        ),
    ]
    if s.value_labels and len(t.labels) <= 15:
        out += [
            "for name, xi, yi in zip(names, x, y):",
            '    ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)',
        ]
    return out + _finish(
        t, s, xlabel=f"{t.series[0]} ({t.x_unit})", ylabel=f"{t.series[1]} ({t.unit})", grid_axis="both"
    )


def _pie(t: ChartTable, s: ChartStyle, donut: bool) -> list[str]:
    n = len(t.labels)
    wedge = '{"width": 0.42, "edgecolor": "white"}' if donut else '{"edgecolor": "white"}'
    side = min(s.figsize)
    out = [
        f"labels = {_r(t.labels)}",
        f"shares = {_r(t.column(0))}  # percent",
        "",
        f"fig, ax = plt.subplots(figsize=({side + 1.6}, {side}))",
        'texts = [f"{name}\\n{share:.1f}%" for name, share in zip(labels, shares)]',
        (
            f"ax.pie(shares, labels=texts, colors={_r(s.palette[:n])}, startangle=90, counterclock=False, "
            f'wedgeprops={wedge}, textprops={{"fontsize": {s.font_size - 1}}})'
        ),
    ]
    if s.title:
        out.append(f"ax.set_title({_r(t.title)})")
    return out


def body_pie(t: ChartTable, s: ChartStyle) -> list[str]:
    return _pie(t, s, donut=False)


def body_donut(t: ChartTable, s: ChartStyle) -> list[str]:
    return _pie(t, s, donut=True)


def body_histogram(t: ChartTable, s: ChartStyle) -> list[str]:
    out = [
        f"data = {_r(t.samples[0])}",
        f"bins = {_r(t.edges)}",
        "",
        f"fig, ax = plt.subplots(figsize={_r(s.figsize)})",
        (
            f'counts, edges, bars = ax.hist(data, bins=bins, color={_r(s.color(0))}, edgecolor="white", '
            f"alpha={s.alpha})"
        ),
        "ax.set_xticks(bins)",
    ]
    if s.value_labels:
        out.append('ax.bar_label(bars, fmt="%d", padding=2)')
    if len(t.edges) > 8:
        out.append('plt.setp(ax.get_xticklabels(), rotation=40, ha="right")')
    unit = t.label_name[len("Range (") : -1]
    return out + _finish(t, s, xlabel=unit, ylabel="Count")


def body_box(t: ChartTable, s: ChartStyle) -> list[str]:
    k = len(t.labels)
    groups = ",\n".join(f"    {_r(name)}: {_r(vals)}" for name, vals in zip(t.labels, t.samples))
    out = [
        "groups = {\n" + groups + ",\n}",
        f"colors = {_r(s.palette[:k])}",
        "",
        f"fig, ax = plt.subplots(figsize={_r(s.figsize)})",
        "# whiskers at the minimum and maximum (no outlier points)",
        (
            "box = ax.boxplot(list(groups.values()), tick_labels=list(groups), whis=(0, 100), "
            "patch_artist=True, widths=0.5)"
        ),
        'for patch, color in zip(box["boxes"], colors):',
        f"    patch.set_facecolor(color)\n    patch.set_alpha({s.alpha})",
    ]
    return out + _finish(t, s, xlabel=t.label_name, ylabel=t.unit)


def body_heatmap(t: ChartTable, s: ChartStyle) -> list[str]:
    rows = ",\n".join(f"    {_r(list(r))}" for r in t.values)
    out = [
        "import matplotlib.patheffects as pe",
        "",
        f"rows = {_r(t.labels)}",
        f"columns = {_r(t.series)}",
        "matrix = [\n" + rows + ",\n]",
        "",
        f"fig, ax = plt.subplots(figsize={_r(s.figsize)})",
        f'im = ax.imshow(matrix, cmap={_r(s.cmap)}, aspect="auto")',
        "ax.set_xticks(range(len(columns)), columns)",
        "ax.set_yticks(range(len(rows)), rows)",
        f"fig.colorbar(im, ax=ax, label={_r(t.unit)})",
        "for i, row in enumerate(matrix):",
        "    for j, v in enumerate(row):",
        f'        ax.text(j, i, "{_fmt_spec(t)}" % v, ha="center", va="center", fontsize=8,',
        '                path_effects=[pe.withStroke(linewidth=2, foreground="white")])',
        "ax.grid(False)",
    ]
    if len(t.series) > 4 or max(len(c) for c in t.series) > 8:
        out.append('plt.setp(ax.get_xticklabels(), rotation=30, ha="right")')
    if s.title:
        out.append(f"ax.set_title({_r(t.title)})")
    return out


def body_table(t: ChartTable, s: ChartStyle) -> list[str]:
    cells = ",\n".join(f"    {_r([t.fmt(v) for v in r])}" for r in t.values)
    h = round(0.36 * (len(t.labels) + 1) + 1.0, 2)
    w = max(5.0, 1.3 * (len(t.series) + 1))
    out = [
        f"row_labels = {_r(t.labels)}",
        f"columns = {_r(t.series)}",
        "cells = [\n" + cells + ",\n]",
        "",
        f"fig, ax = plt.subplots(figsize=({w}, {h}))",
        'ax.axis("off")',
        (
            'table = ax.table(cellText=cells, rowLabels=row_labels, colLabels=columns, loc="center", '
            'cellLoc="center")'
        ),
        "table.auto_set_font_size(False)",
        f"table.set_fontsize({s.font_size})",
        "table.scale(1, 1.4)",
        "for (r, c), cell in table.get_celld().items():",
        "    if r == 0 or c == -1:",
        f"        cell.set_facecolor({_r(_darkest(s.palette))})",
        '        cell.set_text_props(color="white", weight="bold")',
        "    elif r % 2 == 0:",
        '        cell.set_facecolor("#f2f2f2")',
    ]
    title = f"{t.title} ({t.unit})" if t.unit else t.title
    out.append(f"ax.set_title({_r(title)})")  # a table image always names its unit
    return out


KINDS: dict[str, KindSpec] = {
    "bar": KindSpec(lambda r, c, f: _single(r, c, f), body_bar, "graph-interpretation"),
    "hbar": KindSpec(lambda r, c, f: _single(r, c, f), body_hbar, "graph-interpretation"),
    "grouped_bar": KindSpec(
        lambda r, c, f: _multi(r, c, f, (3, 7), (2, 4)), body_grouped_bar, "graph-interpretation"
    ),
    "stacked_bar": KindSpec(
        lambda r, c, f: _multi(r, c, f, (3, 8), (2, 4), positive=True),
        body_stacked_bar,
        "graph-interpretation",
    ),
    "line": KindSpec(lambda r, c, f: _single(r, c, f, ordered=True), body_line, "graph-interpretation"),
    "multi_line": KindSpec(
        lambda r, c, f: _multi(r, c, f, (5, 12), (2, 4), ordered=True),
        body_multi_line,
        "graph-interpretation",
    ),
    "area": KindSpec(
        lambda r, c, f: _multi(r, c, f, (5, 12), (1, 3), positive=True, ordered=True),
        body_area,
        "graph-interpretation",
    ),
    "scatter": KindSpec(_scatter_table, body_scatter, "graph-interpretation"),
    "pie": KindSpec(_pie_table, body_pie, "graph-interpretation"),
    "donut": KindSpec(_pie_table, body_donut, "graph-interpretation"),
    "histogram": KindSpec(_hist_table, body_histogram, "graph-interpretation"),
    "box": KindSpec(_box_table, body_box, "graph-interpretation"),
    "heatmap": KindSpec(
        lambda r, c, f: _multi(r, c, f, (4, 10), (3, 6)), body_heatmap, "graph-interpretation"
    ),
    "table": KindSpec(lambda r, c, f: _multi(r, c, f, (3, 10), (2, 5)), body_table, "table-interpretation"),
}
