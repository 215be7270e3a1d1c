"""`dsvl-data report DIR`: one self-contained HTML page about a build, read from its DuckDB catalog.

Counts per source, task, category, stream, language and taxonomy, rejection reasons, score histograms
(matplotlib, embedded as base64 PNG), the mixture, the shards, and a gallery of thumbnails with text.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from pipelines.catalog import open_catalog, stats

log = logging.getLogger(__name__)

GALLERY_SIZE = 24
THUMB_PX = 224
TEXT_CHARS = 400


@dataclass
class Chart:
    title: str
    png: str  # base64
    rows: list[tuple[str, Any]] = field(default_factory=list)


@dataclass
class Thumb:
    key: str
    caption: str
    text: str
    images: list[str]  # base64 JPEG


def _fig_png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def bar_chart(title: str, counts: dict[str, int], top: int = 30) -> Chart:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.28 * max(len(items), 1)))
    labels = [k[:60] for k, _ in items][::-1]
    values = [v for _, v in items][::-1]
    ax.barh(labels or ["(none)"], values or [0], color="#4c72b0")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v}", va="center", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel("samples")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.margins(x=0.12)
    ax.tick_params(axis="y", labelsize=8)
    return Chart(title, _fig_png(fig), sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def histogram(title: str, values: list[float]) -> Chart:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.6))
    ax.hist(values, bins=min(30, max(5, int(math.sqrt(len(values))))), color="#dd8452", edgecolor="white")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("samples", fontsize=8)
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.tick_params(labelsize=8)
    vs = sorted(values)
    rows = [("n", len(vs)), ("min", round(vs[0], 4)), ("median", round(vs[len(vs) // 2], 4)),
            ("max", round(vs[-1], 4))]
    return Chart(title, _fig_png(fig), rows)


def _table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.sql("SELECT table_name FROM information_schema.tables").fetchall()}


def score_values(con: duckdb.DuckDBPyConnection, kept_only: bool = False) -> dict[str, list[float]]:
    """Every numeric score in the samples' `scores` JSON, by name."""
    q = "SELECT scores FROM samples" + (" WHERE kept" if kept_only else "")
    out: dict[str, list[float]] = {}
    for (raw,) in con.sql(q).fetchall():
        try:
            scores = json.loads(raw) if isinstance(raw, str) else (raw or {})
        except json.JSONDecodeError:
            continue
        for name, v in scores.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out.setdefault(name, []).append(float(v))
    return dict(sorted(out.items()))


def _resolve_pool_file(out: Path, pool_file: str) -> Path | None:
    p = Path(pool_file)
    if p.is_file():
        return p
    parts = p.parts
    if "pool" in parts:  # the catalog stored a path relative to where the build ran
        q = out.joinpath(*parts[parts.index("pool"):])
        if q.is_file():
            return q
    return None


def _thumbnail(data: bytes) -> str | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (THUMB_PX, THUMB_PX))
            img = img.convert("RGB")
            img.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=80)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None
    return base64.b64encode(buf.getvalue()).decode("ascii")


def gallery(con: duckdb.DuckDBPyConnection, out: Path, size: int = GALLERY_SIZE) -> list[Thumb]:
    """Kept multimodal samples (selected ones first), read back from their pool files."""
    from operators.quality.text import sample_text

    rows = con.sql(
        "SELECT key, json, pool_file FROM samples WHERE n_images > 0 AND kept "
        f"ORDER BY selected DESC, key LIMIT {int(size)}").fetchall()
    by_file: dict[Path, list[str]] = {}
    meta: dict[str, tuple[dict, Path | None]] = {}
    for key, js, pool_file in rows:
        path = _resolve_pool_file(out, pool_file or "")
        meta[key] = (json.loads(js), path)
        if path:
            by_file.setdefault(path, []).append(key)
    images: dict[str, list[bytes]] = {}
    reader = duckdb.connect()
    for path, keys in by_file.items():
        placeholders = ", ".join("?" for _ in keys)
        q = (f"SELECT key, images FROM read_parquet(?) WHERE kind = 'sample' AND key IN ({placeholders})")
        for key, imgs in reader.execute(q, [str(path), *keys]).fetchall():
            images.setdefault(key, imgs or [])
    reader.close()
    thumbs = []
    for key, _, _ in rows:
        d, _ = meta[key]
        text = sample_text(d.get("text"), d.get("messages"))
        caption = " · ".join(str(x) for x in (d.get("source"), d.get("task"), d.get("lang")) if x)
        tax = ", ".join(t.get("id", "") if isinstance(t, dict) else str(t) for t in d.get("taxonomy", []))
        if tax:
            caption += f" · {tax}"
        pics = [t for t in (_thumbnail(b) for b in images.get(key, [])[:4]) if t]
        thumbs.append(Thumb(key, caption, text[:TEXT_CHARS] + ("…" if len(text) > TEXT_CHARS else ""), pics))
    return thumbs


def collect(out: str | Path) -> dict[str, Any]:
    """Everything the page shows, as plain data (charts already rendered)."""
    out = Path(out)
    s = stats(out)
    con = open_catalog(out)
    try:
        tables = _table_names(con)
        charts = [bar_chart(title, s[k]) for title, k in (
            ("Samples per source", "by_source"), ("Samples per task", "by_task"),
            ("Samples per category", "by_category"), ("Selected samples per stream", "by_stream"),
            ("Samples per language", "by_lang"), ("Samples per taxonomy leaf", "by_taxonomy"),
            ("Rejections (phase:operator:reason)", "rejections"))]
        hists = [histogram(name, vals) for name, vals in score_values(con).items()]
        mixture = con.sql("SELECT * FROM mixture ORDER BY ALL").to_arrow_table().to_pylist() \
            if "mixture" in tables else []
        shards = con.sql("SELECT stream, count(*) AS shards, sum(count) AS samples, sum(bytes) AS bytes "
                         "FROM shards GROUP BY 1 ORDER BY 1").fetchall() if "shards" in tables else []
        rejections = con.sql(
            "SELECT phase, operator, reason, count(*) AS n, min(detail) AS example FROM ledger "
            "WHERE status = 'rejected' GROUP BY ALL ORDER BY n DESC, phase, operator, reason").fetchall()
        runs = con.sql("SELECT * FROM runs").to_arrow_table().to_pylist() if "runs" in tables else []
        thumbs = gallery(con, out)
    finally:
        con.close()
    summary = {"samples": s["samples"], "kept": s["kept"], "inputs": s["inputs"],
               "rejected": sum(s["rejections"].values()), "shards": sum(s["shards"].values())}
    return {"title": f"dsvl-data build report: {out.name or out}", "summary": summary, "charts": charts,
            "hists": hists, "rejections": rejections, "mixture": mixture, "shards": shards, "runs": runs, "gallery": thumbs}


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font-family: DejaVu Sans, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 12px; margin: 6px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
.num { text-align: right; } .grid { display: flex; flex-wrap: wrap; gap: 16px; }
.chart { max-width: 100%; } .card { width: 250px; border: 1px solid #ddd; padding: 8px; font-size: 11px; }
.card img { max-width: 100%; display: block; margin-bottom: 4px; }
.card pre { white-space: pre-wrap; word-break: break-word; max-height: 160px; overflow: auto; }
.summary span { display: inline-block; margin-right: 20px; font-size: 15px; }
</style></head><body>
<h1>{{ title }}</h1>
<div class="summary">{% for k, v in summary.items() %}<span><b>{{ v }}</b> {{ k }}</span>{% endfor %}</div>
{% if runs %}<h2>Runs</h2><table><tr>{% for k in runs[0].keys() if k != 'info' %}<th>{{ k }}</th>{% endfor %}</tr>
{% for r in runs %}<tr>{% for k, v in r.items() if k != 'info' %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table>{% endif %}
<h2>Counts</h2>
<div class="grid">{% for c in charts %}<div><img class="chart plot" alt="{{ c.title }}"
 src="data:image/png;base64,{{ c.png }}">
<details><summary>{{ c.title }}: {{ c.rows|length }} values</summary><table>
{% for k, v in c.rows %}<tr><td>{{ k }}</td><td class="num">{{ v }}</td></tr>{% endfor %}</table></details>
</div>{% endfor %}</div>
<h2>Rejection reasons</h2>{% if rejections %}<table><tr><th>phase</th><th>operator</th><th>reason</th>
<th>count</th><th>example detail</th></tr>{% for ph, op, reason, n, ex in rejections %}<tr><td>{{ ph }}</td>
<td>{{ op }}</td><td>{{ reason }}</td><td class="num">{{ n }}</td><td>{{ (ex or '')[:200] }}</td></tr>
{% endfor %}</table>{% else %}<p>Nothing was rejected.</p>{% endif %}
<h2>Score histograms</h2>
{% if hists %}<div class="grid">{% for h in hists %}<div><img class="chart plot" alt="{{ h.title }}"
 src="data:image/png;base64,{{ h.png }}"><table>{% for k, v in h.rows %}<tr><td>{{ k }}</td>
<td class="num">{{ v }}</td></tr>{% endfor %}</table></div>{% endfor %}</div>
{% else %}<p>No sample carries a score.</p>{% endif %}
{% if mixture %}<h2>Mixture</h2><table><tr>{% for k in mixture[0].keys() %}<th>{{ k }}</th>{% endfor %}</tr>
{% for r in mixture %}<tr>{% for v in r.values() %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
<h2>Shards</h2>{% if shards %}<table><tr><th>stream</th><th>shards</th><th>samples</th><th>bytes</th></tr>
{% for s in shards %}<tr>{% for v in s %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>No shards written.</p>{% endif %}
<h2>Gallery</h2>{% if gallery %}<div class="grid">{% for t in gallery %}<div class="card">
{% for img in t.images %}<img class="thumb" alt="{{ t.key }}" src="data:image/jpeg;base64,{{ img }}">{% endfor %}
<b>{{ t.key }}</b><br>{{ t.caption }}<pre>{{ t.text }}</pre></div>{% endfor %}</div>
{% else %}<p>No kept sample has an image.</p>{% endif %}
</body></html>
"""


def render(data: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)  # sample text is hostile
    return env.from_string(TEMPLATE).render(**data)


def write_report(out_dir: str | Path, html_path: str | Path | None = None) -> Path:
    """Write the report (default `<DIR>/report.html`) atomically; returns its path."""
    out_dir = Path(out_dir)
    target = Path(html_path) if html_path else out_dir / "report.html"
    html = render(collect(out_dir))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(html, encoding="utf-8", errors="replace")  # a lone surrogate in sample text
    os.replace(tmp, target)
    log.info("report: %s (%d bytes)", target, len(html))
    return target
