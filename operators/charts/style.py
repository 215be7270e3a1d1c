"""Visual styles for synthesized charts: fonts, palettes, sizes, grids, legends, annotations, DPI.

Only fonts and style sheets that ship inside matplotlib are used, so generated code redraws the same
image wherever that matplotlib version is installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FONTS = ["DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono", "STIXGeneral"]
STYLE_SHEETS = [
    "default",
    "ggplot",
    "bmh",
    "seaborn-v0_8-whitegrid",
    "seaborn-v0_8-darkgrid",
    "Solarize_Light2",
    "fivethirtyeight",
    "classic",
]
PALETTES: dict[str, list[str]] = {
    "tab10": ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"],
    "set2": ["#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3"],
    "dark2": ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"],
    "okabe_ito": ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"],
    "muted": ["#4878d0", "#ee854a", "#6acc64", "#d65f5f", "#956cb4", "#8c613c", "#dc7ec0", "#797979"],
    "ocean": ["#03045e", "#0077b6", "#00b4d8", "#90e0ef", "#023e8a", "#48cae4", "#0096c7", "#ade8f4"],
    "warm": ["#9c0d38", "#ce5374", "#f4a259", "#5b8e7d", "#8cb369", "#bc4b51", "#f4e285", "#3d5a80"],
}
COLORMAPS = ["viridis", "magma", "cividis", "Blues", "YlOrRd", "coolwarm", "PuBuGn", "RdYlGn"]
SIZES = [(6.4, 4.0), (7.2, 4.5), (6.0, 4.5), (8.0, 4.8), (5.6, 4.2), (7.0, 5.0)]
LEGEND_LOCS = ["best", "upper left", "upper right", "lower right", "outside"]
MARKERS = ["o", "s", "^", "D", "v", "x", ""]
LINESTYLES = ["-", "--", "-.", ":"]


@dataclass(frozen=True)
class ChartStyle:
    """All visual choices for one chart; drawn once from the chart's own random stream."""

    sheet: str
    font: str
    font_size: int
    palette: list[str]
    cmap: str
    figsize: tuple[float, float]
    dpi: int
    grid: bool
    legend_loc: str
    value_labels: bool  # write each value on its bar/point/cell
    hide_top_right: bool
    title: bool
    marker: str
    linestyle: str
    bar_width: float
    alpha: float
    highlight: bool  # an arrow annotation on the largest value

    def color(self, i: int) -> str:
        return self.palette[i % len(self.palette)]

    def rc(self) -> dict[str, object]:
        """rcParams every script sets; parse_math off so labels with '$' stay literal text."""
        rc: dict[str, object] = {
            "font.family": self.font,
            "font.size": self.font_size,
            "text.parse_math": False,
            "axes.titlesize": self.font_size + 2,
        }
        if self.hide_top_right:
            rc.update({"axes.spines.top": False, "axes.spines.right": False})
        return rc


def draw_style(rng: np.random.Generator, dpi_min: int, dpi_max: int) -> ChartStyle:
    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    palette = list(PALETTES[pick(sorted(PALETTES))])
    shift = int(rng.integers(len(palette)))
    return ChartStyle(
        sheet=pick(STYLE_SHEETS),
        font=pick(FONTS),
        font_size=int(rng.integers(8, 12)),
        palette=palette[shift:] + palette[:shift],
        cmap=pick(COLORMAPS),
        figsize=pick(SIZES),
        dpi=int(rng.integers(dpi_min, dpi_max + 1)),
        grid=bool(rng.random() < 0.5),
        legend_loc=pick(LEGEND_LOCS),
        value_labels=bool(rng.random() < 0.45),
        hide_top_right=bool(rng.random() < 0.4),
        title=bool(rng.random() < 0.85),
        marker=pick(MARKERS),
        linestyle=pick(LINESTYLES[:2] if rng.random() < 0.8 else LINESTYLES),
        bar_width=float(pick([0.6, 0.7, 0.8])),
        alpha=float(pick([1.0, 0.9, 0.75])),
        highlight=bool(rng.random() < 0.35),
    )
