"""Data tables for chart synthesis: real tables shipped offline by matplotlib, and seeded generators.

Every chart is drawn from one `ChartTable` (a label column plus numeric columns); the same table is the
chart-to-table target and the ground truth that question answers are computed from.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from operators.base import Reject

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@dataclass
class ChartTable:
    """A label column and numeric series; `samples` holds raw values for histogram and box charts."""

    title: str
    label_name: str  # header of the label column ("Month", "Country")
    labels: list[str]
    series: list[str]  # numeric column names
    values: list[list[float]]  # values[row][series], already rounded to `decimals`
    unit: str  # unit of the values ("mm", "%", "million USD"); "" when unitless
    decimals: int
    ordered: bool = False  # labels follow an order (time), so trends make sense
    x_unit: str = ""  # scatter: unit of the first series (x); `unit` is then the y unit
    source: str = "synthetic"  # "synthetic" or the real file the data came from
    samples: list[list[float]] = field(default_factory=list)  # histogram/box raw data per series
    edges: list[float] = field(default_factory=list)  # histogram bin edges

    @property
    def columns(self) -> list[str]:
        return [self.label_name, *self.series]

    def as_meta(self) -> dict[str, Any]:
        """The table as stored in sample.meta["table"]: plain columns and rows."""
        rows = [[lab, *vals] for lab, vals in zip(self.labels, self.values)]
        return {
            "columns": self.columns,
            "rows": rows,
            "unit": self.unit,
            "decimals": self.decimals,
            "ordered": self.ordered,
            "title": self.title,
            "x_unit": self.x_unit,
        }

    def column(self, j: int) -> list[float]:
        return [row[j] for row in self.values]

    def fmt(self, v: float) -> str:
        return f"{v:.{self.decimals}f}"

    def to_markdown(self, with_title: bool = True) -> str:
        """The chart-to-table target; the title only when the image shows it."""
        if self.x_unit and len(self.series) == 2:
            head = [self.label_name, f"{self.series[0]} ({self.x_unit})", f"{self.series[1]} ({self.unit})"]
        elif len(self.series) == 1 and self.unit:
            head = [self.label_name, f"{self.series[0]} ({self.unit})"]
        else:
            head = self.columns
        lines = [
            "| " + " | ".join(_md_cell(h) for h in head) + " |",
            "|" + "|".join([" --- "] + [" ---: "] * len(self.series)) + "|",
        ]
        for lab, vals in zip(self.labels, self.values):
            lines.append("| " + " | ".join([_md_cell(lab)] + [self.fmt(v) for v in vals]) + " |")
        caption = self.title if with_title else ""
        if self.unit and len(self.series) > 1 and not self.x_unit:
            caption = f"{caption} (values in {self.unit})" if caption else f"Values in {self.unit}"
        return (f"{caption}\n\n" if caption else "") + "\n".join(lines)


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def validate(table: ChartTable) -> None:
    """Reject tables that cannot make an honest chart: empty, ragged, or holding NaN/inf."""
    if not table.labels or not table.series:
        raise Reject("empty_table", f"{len(table.labels)} rows, {len(table.series)} series")
    if len(table.values) != len(table.labels) or any(len(r) != len(table.series) for r in table.values):
        raise Reject("ragged_table", f"{len(table.labels)} labels for {len(table.values)} rows")
    for r, row in enumerate(table.values):
        for c, v in enumerate(row):
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise Reject("non_finite_value", f"row {table.labels[r]!r} column {table.series[c]!r}: {v!r}")
    for vals in table.samples:
        if not vals or not all(math.isfinite(v) for v in vals):
            raise Reject("non_finite_value", "empty or non-finite raw sample")
    if len(set(table.labels)) != len(table.labels):
        raise Reject("duplicate_labels", ", ".join(table.labels[:5]))


# --- real tables shipped by matplotlib (mpl-data/sample_data) -----------------------------------


def _sample_data(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


@lru_cache(maxsize=1)
def stocks_monthly() -> tuple[list[str], dict[str, list[float | None]]]:
    """Stocks.csv (Yahoo Finance monthly closes 1990-2022): dates and one column per ticker."""
    dates: list[str] = []
    cols: dict[str, list[float | None]] = {}
    with open(_sample_data("Stocks.csv"), newline="") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    header = rows[0]
    for name in header[1:]:
        cols[name] = []
    for r in rows[1:]:
        if not r[0].endswith("-01") or all(not c for c in r[1:]):
            continue  # the file interleaves empty mid-month rows
        dates.append(r[0])
        for name, c in zip(header[1:], r[1:]):
            cols[name].append(float(c) if c else None)
    return dates, cols


@lru_cache(maxsize=1)
def goog_daily() -> tuple[list[str], np.ndarray]:
    """goog.npz: Google daily prices 2004-2008 (dates, adjusted close)."""
    with np.load(_sample_data("goog.npz")) as z:
        d = z["price_data"]
    return [str(x) for x in d["date"]], np.asarray(d["adj_close"], dtype=float)


@lru_cache(maxsize=1)
def msft_daily() -> list[dict[str, str]]:
    """msft.csv: Microsoft daily prices and volume, Jun-Sep 2003, oldest first."""
    with open(_sample_data("msft.csv"), newline="") as f:
        return list(reversed(list(csv.DictReader(f))))


TICKER_NAMES = {
    "IBM": "IBM",
    "AAPL": "Apple",
    "MSFT": "Microsoft",
    "XRX": "Xerox",
    "AMZN": "Amazon",
    "DELL": "Dell",
    "GOOGL": "Alphabet",
    "ADBE": "Adobe",
    "^GSPC": "S&P 500",
    "^IXIC": "Nasdaq Composite",
}
STOCKS_SOURCE = "matplotlib/mpl-data/sample_data/Stocks.csv"


def real_yearly_close(rng: np.random.Generator, n_rows: int, n_series: int) -> ChartTable:
    """Average monthly close per year for a few tickers, over years where all of them traded."""
    dates, cols = stocks_monthly()
    years = sorted({d[:4] for d in dates})
    tickers = [t for t in cols if not t.startswith("^")]
    chosen = list(rng.choice(tickers, size=min(n_series, len(tickers)), replace=False))
    full = [y for y in years if all(_year_vals(dates, cols[t], y) for t in chosen)]
    n = min(n_rows, len(full))
    start = int(rng.integers(0, len(full) - n + 1))
    ys = full[start : start + n]
    vals = [[round(float(np.mean(_year_vals(dates, cols[t], y))), 1) for t in chosen] for y in ys]
    return ChartTable(
        title="Average monthly closing price by year",
        label_name="Year",
        labels=ys,
        series=[TICKER_NAMES[t] for t in chosen],
        values=vals,
        unit="USD",
        decimals=1,
        ordered=True,
        source=STOCKS_SOURCE,
    )


def _year_vals(dates: list[str], col: list[float | None], year: str) -> list[float]:
    vals = [v for d, v in zip(dates, col) if d.startswith(year)]
    return vals if vals and all(v is not None for v in vals) else []  # type: ignore[return-value]


def real_msft_volume(rng: np.random.Generator, n_rows: int) -> ChartTable:
    days = msft_daily()
    n = min(n_rows, len(days))
    start = int(rng.integers(0, len(days) - n + 1))
    sel = days[start : start + n]
    return ChartTable(
        title="Microsoft daily trading volume, 2003",
        label_name="Date",
        labels=[d["Date"] for d in sel],
        series=["Volume"],
        values=[[round(int(d["Volume"]) / 1e6, 1)] for d in sel],
        unit="million shares",
        decimals=1,
        ordered=True,
        source="matplotlib/mpl-data/sample_data/msft.csv",
    )


def real_msft_scatter(rng: np.random.Generator, n_rows: int) -> ChartTable:
    days = msft_daily()
    n = min(n_rows, len(days))
    start = int(rng.integers(0, len(days) - n + 1))
    sel = days[start : start + n]
    vals = [[round(int(d["Volume"]) / 1e6, 1), round(float(d["High"]) - float(d["Low"]), 2)] for d in sel]
    return ChartTable(
        title="Microsoft: daily volume vs price range, 2003",
        label_name="Date",
        labels=[d["Date"] for d in sel],
        series=["Volume", "High-low range"],
        values=vals,
        unit="USD",
        x_unit="million shares",
        decimals=2,
        ordered=False,
        source="matplotlib/mpl-data/sample_data/msft.csv",
    )


def real_goog_returns(rng: np.random.Generator, n_groups: int) -> ChartTable:
    """Google daily returns (%) in one quarter of each chosen year: raw samples for histogram and box."""
    dates, close = goog_daily()
    ret = np.round(np.diff(close) / close[:-1] * 100, 2)
    q = int(rng.integers(1, 5))
    months = {f"-{m:02d}-" for m in range(3 * q - 2, 3 * q + 1)}
    per_year: dict[str, int] = {}
    for d in dates[1:]:
        if d[4:8] in months:
            per_year[d[:4]] = per_year.get(d[:4], 0) + 1
    years = sorted(
        y for y, n in per_year.items() if n >= 50
    )  # whole quarters only (data is 2004-08..2008-10)
    groups = sorted(rng.choice(years, size=min(n_groups, len(years)), replace=False).tolist())
    samples = [
        [float(r) for d, r in zip(dates[1:], ret) if d.startswith(y) and d[4:8] in months] for y in groups
    ]
    return ChartTable(
        title=f"Google daily returns, Q{q}",
        label_name="Year",
        labels=groups,
        series=[],
        values=[],
        unit="%",
        decimals=2,
        ordered=True,
        source="matplotlib/mpl-data/sample_data/goog.npz",
        samples=samples,
    )


# --- seeded generators with meaningful labels and units ----------------------------------------

CITIES = ["Lisbon", "Oslo", "Mumbai", "Lima", "Nairobi", "Seoul", "Toronto", "Cairo", "Sydney", "Madrid"]
THEMES: list[dict[str, Any]] = [
    {
        "title": "Monthly rainfall",
        "label": "Month",
        "labels": MONTHS,
        "series": CITIES,
        "unit": "mm",
        "range": (5, 240),
        "decimals": 0,
        "ordered": True,
    },
    {
        "title": "Average temperature",
        "label": "Month",
        "labels": MONTHS,
        "series": CITIES,
        "unit": "°C",
        "range": (-6, 34),
        "decimals": 1,
        "ordered": True,
        "signed": True,
    },
    {
        "title": "Quarterly revenue by region",
        "label": "Quarter",
        "labels": [f"Q{q} {y}" for y in (2022, 2023, 2024) for q in (1, 2, 3, 4)],
        "series": ["North", "South", "East", "West", "Central"],
        "unit": "million USD",
        "range": (12, 140),
        "decimals": 1,
        "ordered": True,
    },
    {
        "title": "Students enrolled by faculty",
        "label": "Faculty",
        "labels": ["Engineering", "Medicine", "Law", "Arts", "Science", "Business", "Education", "Nursing"],
        "series": ["2021", "2022", "2023", "2024"],
        "unit": "students",
        "range": (180, 3200),
        "decimals": 0,
    },
    {
        "title": "Electricity generation by source",
        "label": "Source",
        "labels": ["Coal", "Gas", "Nuclear", "Hydro", "Wind", "Solar", "Biomass", "Oil"],
        "series": ["Germany", "France", "Spain", "Poland", "Italy"],
        "unit": "TWh",
        "range": (3, 180),
        "decimals": 1,
    },
    {
        "title": "Website visits by weekday",
        "label": "Day",
        "labels": WEEKDAYS,
        "series": ["Desktop", "Mobile", "Tablet"],
        "unit": "thousand visits",
        "range": (4, 95),
        "decimals": 1,
        "ordered": True,
    },
    {
        "title": "Crop yield",
        "label": "Crop",
        "labels": ["Wheat", "Maize", "Rice", "Barley", "Soybean", "Sorghum", "Oats", "Potato"],
        "series": ["2020", "2021", "2022", "2023"],
        "unit": "t/ha",
        "range": (1.5, 11),
        "decimals": 2,
    },
    {
        "title": "Average commute time",
        "label": "City",
        "labels": CITIES,
        "series": ["Car", "Public transport", "Bicycle"],
        "unit": "minutes",
        "range": (12, 68),
        "decimals": 0,
    },
    {
        "title": "Employee satisfaction score (0-10)",
        "label": "Department",
        "labels": ["Sales", "Support", "R&D", "Finance", "HR", "Legal", "Operations", "Marketing"],
        "series": ["2023", "2024"],
        "unit": "points",
        "range": (4.2, 9.6),
        "decimals": 1,
    },
    {
        "title": "Smartphone shipments by brand",
        "label": "Brand",
        "labels": ["Apple", "Samsung", "Xiaomi", "Oppo", "Vivo", "Transsion", "Honor", "Motorola"],
        "series": ["Shipments"],
        "unit": "million units",
        "range": (8, 240),
        "decimals": 1,
    },
    {
        "title": "Annual net profit",
        "label": "Year",
        "labels": [str(y) for y in range(2011, 2025)],
        "series": ["Retail", "Wholesale", "Online"],
        "unit": "million EUR",
        "range": (-20, 90),
        "decimals": 1,
        "ordered": True,
        "signed": True,
    },
]

SCATTER_THEMES: list[dict[str, Any]] = [
    {
        "title": "Study time vs exam score",
        "label": "Student",
        "prefix": "S",
        "x": "Study time",
        "x_unit": "hours",
        "y": "Exam score",
        "unit": "points",
        "xr": (1, 30),
        "slope": 2.1,
        "icept": 38,
        "noise": 7,
        "yr": (0, 100),
    },
    {
        "title": "Engine size vs fuel consumption",
        "label": "Model",
        "prefix": "Car ",
        "x": "Engine size",
        "x_unit": "L",
        "y": "Fuel consumption",
        "unit": "L/100 km",
        "xr": (1.0, 5.0),
        "slope": 2.2,
        "icept": 3.1,
        "noise": 0.9,
        "yr": (2.0, 25.0),
    },
    {
        "title": "Advertising spend vs sales",
        "label": "Store",
        "prefix": "Store ",
        "x": "Ad spend",
        "x_unit": "thousand USD",
        "y": "Sales",
        "unit": "thousand USD",
        "xr": (5, 60),
        "slope": 4.5,
        "icept": 40,
        "noise": 25,
        "yr": (5, 600),
    },
]

DIST_THEMES: list[dict[str, Any]] = [
    {
        "title": "Delivery time by courier",
        "label": "Courier",
        "labels": ["FastShip", "ParcelGo", "QuickPost", "Swift", "CityDrop"],
        "unit": "minutes",
        "mean": (25, 55),
        "sd": (5, 14),
        "decimals": 1,
    },
    {
        "title": "Adult height by region",
        "label": "Region",
        "labels": ["North", "South", "East", "West", "Islands"],
        "unit": "cm",
        "mean": (162, 178),
        "sd": (6, 9),
        "decimals": 1,
    },
    {
        "title": "API response time by server",
        "label": "Server",
        "labels": ["eu-1", "eu-2", "us-1", "us-2", "ap-1"],
        "unit": "ms",
        "mean": (80, 240),
        "sd": (15, 60),
        "decimals": 0,
    },
]


def synthetic_table(
    rng: np.random.Generator, n_rows: int, n_series: int, positive: bool = False, ordered: bool = False
) -> ChartTable:
    """A category x series table from a theme; ordered labels get smooth series (random walks)."""
    themes = [t for t in THEMES if not (positive and t.get("signed")) and (t.get("ordered") or not ordered)]
    if n_series > 1:
        themes = [t for t in themes if len(t["series"]) > 1]
    th = themes[int(rng.integers(len(themes)))]
    n = min(n_rows, len(th["labels"]))
    if th.get("ordered"):
        start = int(rng.integers(0, len(th["labels"]) - n + 1))
        labels = th["labels"][start : start + n]
    else:
        labels = [th["labels"][i] for i in sorted(rng.choice(len(th["labels"]), size=n, replace=False))]
    k = min(n_series, len(th["series"]))
    series = [th["series"][i] for i in sorted(rng.choice(len(th["series"]), size=k, replace=False))]
    lo, hi = th["range"]
    cols = []
    for _ in series:
        if th.get("ordered"):
            walk = np.cumsum(rng.normal(0, (hi - lo) * 0.12, size=n))
            span = float(walk.max() - walk.min())
            if span > (hi - lo) * 0.9:  # rescale rather than clip: clipping makes flat runs and ties
                walk = walk * ((hi - lo) * 0.9 / span)
                span = (hi - lo) * 0.9
            col = walk - walk.min() + rng.uniform(lo, hi - span)
        else:
            col = rng.uniform(lo, hi, size=n)
        cols.append(np.round(col, th["decimals"]))
    vals = [[float(c[i]) for c in cols] for i in range(n)]
    title = th["title"]
    if k == 1 and len(th["series"]) > 1:
        title = f"{title}: {series[0]}"
    return ChartTable(
        title=title,
        label_name=th["label"],
        labels=list(labels),
        series=series,
        values=vals,
        unit=th["unit"],
        decimals=th["decimals"],
        ordered=bool(th.get("ordered")),
    )


def synthetic_scatter(rng: np.random.Generator, n_rows: int) -> ChartTable:
    th = SCATTER_THEMES[int(rng.integers(len(SCATTER_THEMES)))]
    n = max(3, n_rows)
    x = np.round(rng.uniform(*th["xr"], size=n), 1)
    y = th["icept"] + th["slope"] * x + rng.normal(0, th["noise"], size=n)
    y = np.round(np.clip(y, *th["yr"]), 1)  # scores and consumptions stay within their possible range
    width = len(str(n))
    labels = [f"{th['prefix']}{i + 1:0{width}d}" for i in range(n)]
    return ChartTable(
        title=th["title"],
        label_name=th["label"],
        labels=labels,
        series=[th["x"], th["y"]],
        values=[[float(a), float(b)] for a, b in zip(x, y)],
        unit=th["unit"],
        x_unit=th["x_unit"],
        decimals=1,
    )


def synthetic_samples(rng: np.random.Generator, n_groups: int, n_points: int) -> ChartTable:
    th = DIST_THEMES[int(rng.integers(len(DIST_THEMES)))]
    k = min(n_groups, len(th["labels"]))
    labels = [th["labels"][i] for i in sorted(rng.choice(len(th["labels"]), size=k, replace=False))]
    samples = []
    for _ in labels:
        mu, sd = rng.uniform(*th["mean"]), rng.uniform(*th["sd"])
        samples.append([float(v) for v in np.round(rng.normal(mu, sd, size=n_points), th["decimals"])])
    return ChartTable(
        title=th["title"],
        label_name=th["label"],
        labels=labels,
        series=[],
        values=[],
        unit=th["unit"],
        decimals=th["decimals"],
        samples=samples,
    )


def histogram_table(src: ChartTable, n_bins: int) -> ChartTable:
    """Bin the first raw sample into `n_bins` round-width bins; the table lists count per bin."""
    data = np.asarray(src.samples[0], dtype=float)
    lo, hi = float(data.min()), float(data.max())
    width = _nice_step((hi - lo) / max(n_bins, 1))
    start = math.floor(lo / width) * width
    nb = math.floor((hi - start) / width) + 1
    edges = [round(start + i * width, 6) for i in range(nb + 1)]
    counts, _ = np.histogram(data, bins=edges)
    dec = 0 if width >= 1 else max(0, -math.floor(math.log10(width)))
    labels = [f"{edges[i]:.{dec}f} to {edges[i + 1]:.{dec}f}" for i in range(nb)]
    return ChartTable(
        title=f"{src.title}: {src.labels[0]}",
        label_name=f"Range ({src.unit})",
        labels=labels,
        series=["Count"],
        values=[[float(c)] for c in counts],
        unit="",
        decimals=0,
        ordered=True,
        source=src.source,
        samples=[src.samples[0]],
        edges=edges,
    )


def box_table(src: ChartTable) -> ChartTable:
    """Five-number summary per group, as matplotlib draws it with whiskers at the extremes."""
    rows = []
    for vals in src.samples:
        a = np.asarray(vals, dtype=float)
        q = np.percentile(a, [0, 25, 50, 75, 100])
        rows.append([round(float(v), src.decimals + 1) for v in q])
    return ChartTable(
        title=src.title,
        label_name=src.label_name,
        labels=src.labels,
        series=["Min", "Q1", "Median", "Q3", "Max"],
        values=rows,
        unit=src.unit,
        decimals=src.decimals + 1,
        ordered=src.ordered,
        source=src.source,
        samples=src.samples,
    )


def shares(table: ChartTable) -> ChartTable:
    """Turn a one-series table into percentage shares that add up to exactly 100.0."""
    vals = [max(row[0], 0.0) for row in table.values]
    total = sum(vals)
    if total <= 0:
        raise Reject("empty_table", "no positive values for a share chart")
    pct = [round(v / total * 100, 1) for v in vals]
    big = int(np.argmax(pct))
    pct[big] = round(pct[big] + 100.0 - sum(pct), 1)  # absorb rounding so the shares sum to 100
    return ChartTable(
        title=f"Share of {table.title[0].lower()}{table.title[1:]}",
        label_name=table.label_name,
        labels=table.labels,
        series=["Share"],
        values=[[p] for p in pct],
        unit="%",
        decimals=1,
        source=table.source,
    )


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag
