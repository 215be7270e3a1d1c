"""`taxonomy.balance`: an assembly step that balances tagged samples towards the taxonomy's target weights.

DuckDB counts samples per primary leaf; per leaf we down-sample (a seeded, stable choice) or up-sample
(`repeat`, capped), with a floor for rare leaves; the report holds targets vs achieved and their L1 distance.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from pydantic import Field

from operators.base import AssemblyStep, OperatorConfig, PoolReader, register_assembly
from operators.sample import Rejection
from taxonomy.schema import DEFAULT_PATH, Taxonomy, load

log = logging.getLogger(__name__)


class BalanceConfig(OperatorConfig):
    taxonomy: str = Field("", description="taxonomy YAML; empty = the bundled deepseek_vl.yaml")
    seed: int = Field(0, description="seed of the per-leaf selection order")
    max_repeat: int = Field(3, ge=1, description="cap on how often one sample may be repeated")
    floor: int = Field(20, ge=0, description="rare leaves keep at least this many (as far as repeats allow)")
    total: int | None = Field(None, ge=1, description="target number of balanced rows (wins over total_fraction)")
    total_fraction: float = Field(1.0, gt=0.0, le=10.0, description="target rows as a share of the tagged rows; "
                                  "below 1 trades volume for a closer match to the weights")
    categories: list[str] = Field(default_factory=list, description="balance only these categories (empty = all tagged)")
    stages: list[int] = Field([3], description="balance only rows feeding one of these stages (empty = all); "
                              "pretraining rows that carry tags are left alone by default")


def plan_targets(counts: dict[str, int], weights: dict[str, float], total: int, max_repeat: int,
                 floor: int) -> dict[str, int]:
    """Rows wanted per leaf: `total` split by weight, water-filled so that a leaf capped at
    `count * max_repeat` hands its shortfall to the others; then the floor for rare leaves."""
    want: dict[str, float] = {}
    free = {leaf for leaf in counts if weights.get(leaf, 0.0) > 0}
    remaining = float(total)
    while free:
        wsum = sum(weights[leaf] for leaf in free)
        share = {leaf: remaining * weights[leaf] / wsum for leaf in free}
        capped = {leaf for leaf in free if share[leaf] > counts[leaf] * max_repeat}
        if not capped:
            want.update(share)
            break
        for leaf in capped:
            want[leaf] = counts[leaf] * max_repeat
            remaining -= want[leaf]
        free -= capped
    out = {}
    for leaf, n in counts.items():
        d = round(want.get(leaf, 0.0))
        if weights.get(leaf, 0.0) > 0:
            d = max(d, min(floor, n * max_repeat))
        out[leaf] = d
    return out


def _shares(counts: dict[str, float]) -> dict[str, float]:
    s = sum(counts.values())
    return {k: (v / s if s else 0.0) for k, v in counts.items()}


def l1(a: dict[str, float], b: dict[str, float]) -> float:
    return float(sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b)))


def balance_table(candidates: pa.Table, tax: Taxonomy, cfg: BalanceConfig
                  ) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """(kept rows with `repeat` set, removed rows (key, input, leaf, reason), report)."""
    t0 = time.perf_counter()
    n_rows = candidates.num_rows
    resolved = {i: tax.resolve(i) for i in tax.reserved_ids()}
    labelable = {n.id for n in tax.labelable()}
    mapping = pa.table({"old": [k for k, v in resolved.items() if v in labelable],
                        "leaf": [v for v in resolved.values() if v in labelable]})
    cand = candidates.append_column("__rid", pa.array(np.arange(n_rows, dtype=np.int64)))
    con = duckdb.connect()
    con.register("cand", cand)
    con.register("mapping", mapping)
    con.register("cats", pa.table({"category": pa.array(cfg.categories, pa.string())}))
    cat_filter = "AND c.category IN (SELECT category FROM cats)" if cfg.categories else ""
    if cfg.stages and "stage" in candidates.column_names:
        cat_filter += f" AND len(list_intersect(c.stage, {[int(x) for x in cfg.stages]})) > 0"
    # primary leaf = the first tag, resolved through aliases; rows without one pass through untouched.
    # hash(key, seed) gives each row a stable pseudo-random rank inside its leaf (duckdb is pinned).
    con.execute(f"""CREATE TEMP TABLE t AS SELECT c.__rid AS rid, m.leaf, hash(c.key, {int(cfg.seed)}::UBIGINT) AS h
        FROM cand c JOIN mapping m ON m.old = c.taxonomy[1] WHERE len(c.taxonomy) > 0 {cat_filter}""")
    counts = dict(con.execute("SELECT leaf, count(*) FROM t GROUP BY leaf ORDER BY leaf").fetchall())
    leaves = list(counts)
    con.register("codes", pa.table({"leaf": leaves, "code": pa.array(range(len(leaves)), pa.int64())}))
    t = con.sql("SELECT rid, code, h FROM t JOIN codes USING (leaf) ORDER BY rid").to_arrow_table()
    con.close()
    code = t.column("code").to_numpy()  # (tagged,) leaf index per row
    rid = t.column("rid").to_numpy()
    n_per_leaf = np.array([counts[leaf] for leaf in leaves], np.int64)
    weights = {n.id: n.weight for n in tax.labelable()}
    eligible = len(rid)
    total = cfg.total or max(1, round(eligible * cfg.total_fraction))
    plan = plan_targets(counts, weights, total, cfg.max_repeat, cfg.floor)

    order = np.lexsort((rid, t.column("h").to_numpy(), code))  # by leaf, then hash, then row
    starts = np.concatenate([[0], np.cumsum(n_per_leaf)[:-1]])
    rank = np.empty(eligible, np.int64)
    rank[order] = np.arange(eligible) - starts[code[order]]
    n = n_per_leaf[code]
    d = np.array([plan[leaf] for leaf in leaves], np.int64)[code] if leaves else np.zeros(0, np.int64)
    rep = np.where(d <= n, rank < d, d // np.maximum(n, 1) + (rank < d % np.maximum(n, 1))).astype(np.int32)
    achieved_counts = {leaf: float(v) for leaf, v in
                       zip(leaves, np.bincount(code, weights=rep, minlength=len(leaves)))}

    new_repeat = (candidates.column("repeat").to_numpy(zero_copy_only=False).astype(np.int32)
                  if "repeat" in candidates.column_names else np.ones(n_rows, np.int32))
    new_repeat[rid] = rep
    gone = rid[rep == 0]
    keep = np.ones(n_rows, bool)
    keep[gone] = False
    rep_arr = pa.array(new_repeat, pa.int32())
    out = candidates
    if "repeat" in out.column_names:
        out = out.set_column(out.column_names.index("repeat"), "repeat", rep_arr)
    else:
        out = out.append_column("repeat", rep_arr)
    kept = out.filter(pa.array(keep))
    src = "input" if "input" in candidates.column_names else "key"
    removed = pa.table({"key": candidates.column("key").take(pa.array(gone)),
                        "input": candidates.column(src).take(pa.array(gone)),
                        "leaf": pa.array(np.array(leaves, dtype=object)[code[rep == 0]] if leaves else [],
                                         pa.string())})
    targets = _shares({k: weights.get(k, 0.0) for k in counts})
    before, achieved = _shares({k: float(v) for k, v in counts.items()}), _shares(achieved_counts)
    missing = sorted(k for k, w in weights.items() if w > 0 and k not in counts)
    report = {
        "rows_in": n_rows, "tagged_rows": eligible, "untouched_rows": n_rows - eligible,
        "rows_out": int(keep.sum()), "removed": len(gone),
        "balanced_total": int(sum(achieved_counts.values())), "target_total": int(total),
        "upsampled_rows": int((rep > 1).sum()), "max_repeat_used": int(rep.max()) if len(rep) else 0,
        "capped_leaves": sorted(k for k in counts if plan[k] == counts[k] * cfg.max_repeat > counts[k]),
        "leaves": len(counts), "missing_leaves": missing,
        "targets": {k: round(v, 6) for k, v in sorted(targets.items())},
        "achieved": {k: round(v, 6) for k, v in sorted(achieved.items())},
        "counts_before": dict(sorted(counts.items())),
        "counts_after": {k: int(v) for k, v in sorted(achieved_counts.items())},
        "l1_before": round(l1(before, targets), 6), "l1": round(l1(achieved, targets), 6),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log.info("taxonomy.balance: %d tagged rows over %d leaves -> %d (L1 %.4f -> %.4f, %d missing leaves)",
             eligible, len(counts), report["balanced_total"], report["l1_before"], report["l1"], len(missing))
    return kept, removed, report


@register_assembly("taxonomy.balance")
class TaxonomyBalancer(AssemblyStep):
    Config = BalanceConfig
    version = "1"

    def run(self, candidates: pa.Table, pool: PoolReader | None = None
            ) -> tuple[pa.Table, list[Rejection], dict[str, Any]]:
        cfg = self.config
        tax = load(cfg.taxonomy or DEFAULT_PATH)
        kept, removed, report = balance_table(candidates, tax, cfg)
        d = removed.to_pydict()
        rejections = [Rejection(inp, self.name, "balance_downsampled", f"leaf {leaf} over its target", key)
                      for key, inp, leaf in zip(d["key"], d["input"], d["leaf"])]
        return kept, rejections, report
