"""Taxonomy: tagger accuracy on held-out labelled prompts per main category (fastText vs the keyword rules
alone), and the balancer's L1 distance and time on a 1,000,000-row synthetic catalog (vs a bare DuckDB
window-function selection doing the same per-leaf sampling).

The labelled prompts are synthetic (built from the taxonomy's examples and keywords), not human labels.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa


def _tagger(quick: bool) -> dict:
    from taxonomy.schema import DEFAULT_PATH, load
    from taxonomy.synthetic import labelled_prompts
    from taxonomy.tagger import Tagger, split, train

    tax = load(DEFAULT_PATH)
    examples = labelled_prompts(tax, per_node=20 if quick else 60, seed=0)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        report = train(examples, tax, Path(d) / "tagger.bin", holdout=0.2, seed=0, epoch=30)
        train_s = time.perf_counter() - t0
        ft = Tagger(tax, Path(d) / "tagger.bin", k=1, threshold=0.0)
        rules = Tagger(tax)
        held = [(text, ids) for key, text, ids in examples if split(key, 0, 0.2)]
        t0 = time.perf_counter()
        for text, _ in held:
            ft.predict(text)
        per_s = len(held) / (time.perf_counter() - t0)
        both = Tagger(tax, Path(d) / "tagger.bin", k=1, threshold=0.0)
        combined = sum(int(bool(tags) and tags[0]["id"] in ids) for text, ids in held
                       for tags in [both.tag(text)]) / max(1, len(held))
    # baseline: keyword rules alone, top-1 (ties broken by id) on the same held-out prompts
    per = defaultdict(lambda: [0, 0])
    for text, ids in held:
        tags = [t for t in rules.tag(text) if t["source"] == "rule:keyword"]
        c = per[tax.main_of(ids[0])]
        c[0] += 1
        c[1] += int(bool(tags) and tags[0]["id"] in ids)
    return {
        "labelled_prompts": len(examples), "heldout": report["heldout"], "train_seconds": round(train_s, 2),
        "predict_per_s": round(per_s),
        "fasttext_leaf_accuracy": report["leaf_accuracy"], "fasttext_main_accuracy": report["main_accuracy"],
        "combined_leaf_accuracy": round(combined, 4),
        "rules_leaf_accuracy": round(sum(c[1] for c in per.values()) / max(1, len(held)), 4),
        "per_main_leaf_accuracy": {m: v["leaf_accuracy"] for m, v in report["per_main"].items()},
        "per_main_rules_accuracy": {m: round(c[1] / c[0], 4) for m, c in sorted(per.items())},
    }


def synthetic_candidates(n: int, seed: int = 0) -> pa.Table:
    """n candidate rows tagged with leaves drawn from a skewed (log-normal) distribution, 5% untagged."""
    from taxonomy.schema import DEFAULT_PATH, load

    ids = np.array([x.id for x in load(DEFAULT_PATH).labelable()])
    rng = np.random.default_rng(seed)
    p = rng.lognormal(0, 1.5, len(ids))
    p /= p.sum()
    leaf = rng.choice(len(ids), size=n, p=p)
    tagged = rng.random(n) >= 0.05
    offsets = np.concatenate([[0], np.cumsum(tagged)]).astype(np.int32)
    keys = pa.array([f"syn-{i:08d}" for i in range(n)])
    return pa.table({"key": keys, "input": keys, "category": pa.array(["general_instruct"] * n),
                     "taxonomy": pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids[leaf[tagged]])),
                     "repeat": pa.array(np.ones(n, np.int32))})


def _bare_duckdb(t: pa.Table, plan: dict[str, int]) -> float:
    """The same per-leaf selection written as one DuckDB window query (no alias resolution, no report)."""
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect()
    con.register("cand", t)
    con.register("plan", pa.table({"leaf": list(plan), "d": list(plan.values())}))
    con.sql("""SELECT key, CASE WHEN d <= n THEN (rn <= d)::INT ELSE d // n + (rn <= d % n)::INT END AS rep FROM (
        SELECT key, leaf, d, count(*) OVER (PARTITION BY leaf) n,
               row_number() OVER (PARTITION BY leaf ORDER BY hash(key, 0::UBIGINT)) rn
        FROM (SELECT key, taxonomy[1] AS leaf FROM cand WHERE len(taxonomy) > 0) JOIN plan USING (leaf))
        WHERE rep > 0""").to_arrow_table()
    con.close()
    return time.perf_counter() - t0


def _balancer(quick: bool) -> dict:
    from operators.base import get_assembly_step
    from taxonomy.balance import BalanceConfig, balance_table
    from taxonomy.schema import DEFAULT_PATH, load

    n = 100_000 if quick else 1_000_000
    t = synthetic_candidates(n)
    tax = load(DEFAULT_PATH)
    out: dict = {"rows": n}
    for name, total in (("keep_volume", None), ("total_30pct", int(n * 0.3))):
        cfg = BalanceConfig(seed=0, max_repeat=3, floor=50, total=total)
        t0 = time.perf_counter()
        _, _, rep = balance_table(t, tax, cfg)
        secs = time.perf_counter() - t0
        out[name] = {"seconds": round(secs, 2), "rows_per_s": round(n / secs), "l1_before": rep["l1_before"],
                     "l1_after": rep["l1"], "rows_out": rep["rows_out"], "balanced_total": rep["balanced_total"],
                     "capped_leaves": len(rep["capped_leaves"]), "removed": rep["removed"]}
        if name == "keep_volume":
            plan = {k: int(v) for k, v in rep["counts_after"].items()}
            out["bare_duckdb_window_seconds"] = round(_bare_duckdb(t, plan), 2)
    # the whole assembly step, including one ledger Rejection per removed row
    step = get_assembly_step("taxonomy.balance")({"total": int(n * 0.3)})
    t0 = time.perf_counter()
    _, rejections, _ = step.run(t, None)
    out["assembly_step_seconds_with_rejections"] = round(time.perf_counter() - t0, 2)
    out["rejections"] = len(rejections)
    out["ours_vs_bare_duckdb_time_ratio"] = round(out["keep_volume"]["seconds"] / out["bare_duckdb_window_seconds"], 2)
    return out


def run(quick: bool) -> dict:
    return {"tagger": _tagger(quick), "balancer": _balancer(quick)}
