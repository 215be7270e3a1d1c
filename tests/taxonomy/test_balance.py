"""The balancer: per-leaf down/up-sampling towards target weights, cap on repeats, floor, determinism."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from operators.base import get_assembly_step
from taxonomy.balance import BalanceConfig, balance_table, plan_targets
from taxonomy.schema import DEFAULT_PATH, load


def _table(counts: dict[str, int], extra_untagged: int = 0, pretrain: int = 0) -> pa.Table:
    keys, tags, cats, stages = [], [], [], []
    for leaf, n in counts.items():
        for i in range(n):
            keys.append(f"{leaf}-{i:05d}")
            tags.append([leaf])
            cats.append("general_instruct")
            stages.append([3])
    for i in range(extra_untagged):
        keys.append(f"untagged-{i}")
        tags.append([])
        cats.append("text_sft")
        stages.append([3])
    for i in range(pretrain):  # tagged by their source, but pretraining rows: not balanced by default
        keys.append(f"pretrain-{i}")
        tags.append(["chart-to-code"])
        cats.append("web_code")
        stages.append([2])
    n = len(keys)
    return pa.table({"key": keys, "input": [f"in/{k}" for k in keys], "category": cats,
                     "stage": pa.array(stages, pa.list_(pa.int32())),
                     "taxonomy": pa.array(tags, pa.list_(pa.string())), "repeat": pa.array([1] * n, pa.int32())})


def test_plan_targets_waterfill_cap_and_floor():
    counts = {"a": 1000, "b": 100, "c": 2}
    plan = plan_targets(counts, {"a": 1, "b": 1, "c": 1}, total=1102, max_repeat=3, floor=10)
    # c is capped at 2*3=6 and b at 100*3=300; their shortfall goes to a
    assert plan == {"a": 796, "b": 300, "c": 6}
    assert plan_targets({"a": 10}, {"a": 0.0}, 10, 3, 5) == {"a": 0}  # weight 0: none kept, no floor
    assert plan_targets({"a": 1000, "b": 1}, {"a": 100, "b": 1}, 1001, 4, 20)["b"] == 4  # floor within cap


def test_balance_counts_repeats_and_report():
    tax = load(DEFAULT_PATH)
    t = _table({"counting": 3000, "printed-text": 600, "chart-to-code": 300, "theme": 100}, extra_untagged=50,
               pretrain=40)
    cfg = BalanceConfig(max_repeat=3, floor=20, seed=0)
    kept, removed, rep = balance_table(t, tax, cfg)
    assert rep["tagged_rows"] == 4000 and rep["untouched_rows"] == 90
    assert rep["counts_before"] == {"chart-to-code": 300, "counting": 3000, "printed-text": 600, "theme": 100}
    # 4000 over 4 equal weights: theme capped at 300 (100 x 3), chart-to-code at 900, the rest share 2800
    assert rep["counts_after"] == {"chart-to-code": 900, "counting": 1400, "printed-text": 1400, "theme": 300}
    assert rep["capped_leaves"] == ["chart-to-code", "theme"]
    assert rep["l1"] < rep["l1_before"] and rep["l1"] == pytest.approx(sum(
        abs(rep["achieved"][k] - 0.25) for k in rep["achieved"]), abs=1e-5)
    assert removed.num_rows == 3000 - 1400 and rep["removed"] == removed.num_rows
    r = dict(zip(kept.column("key").to_pylist(), kept.column("repeat").to_pylist()))
    assert max(r.values()) == 3 and all(r[f"theme-{i:05d}"] == 3 for i in range(100))
    assert sum(v for k, v in r.items() if k.startswith("printed-text")) == 1400
    assert sum(1 for k in r if k.startswith("printed-text")) == 600  # up-sampled: every row kept, some twice
    assert all(r[f"untagged-{i}"] == 1 for i in range(50))  # untagged rows pass through
    assert all(r[f"pretrain-{i}"] == 1 for i in range(40))  # so do stage-2 rows
    _, _, rep_all = balance_table(t, tax, BalanceConfig(max_repeat=3, floor=20, stages=[]))
    assert rep_all["tagged_rows"] == 4040
    assert kept.num_rows + removed.num_rows == t.num_rows
    # deterministic for a seed, different for another
    kept2, _, _ = balance_table(t, tax, cfg)
    assert kept2.equals(kept)
    kept3, _, _ = balance_table(t, tax, BalanceConfig(max_repeat=3, floor=20, seed=1))
    assert set(kept3.column("key").to_pylist()) != set(kept.column("key").to_pylist())


def test_aliases_weights_and_step_registry(tmp_path):
    from taxonomy import ops
    from taxonomy.schema import save

    tax = ops.rename(load(DEFAULT_PATH), "counting", new_id="object-counting")
    tax = ops.edit(tax, "printed-text", weight=3.0)
    p = tmp_path / "t.yaml"
    save(tax, p)
    t = _table({"counting": 500, "printed-text": 500})  # old id in tags: resolved through the alias
    step = get_assembly_step("taxonomy.balance")({"taxonomy": str(p), "total": 400, "floor": 0})
    kept, rejections, rep = step.run(t, None)
    assert rep["counts_after"] == {"object-counting": 100, "printed-text": 300}
    assert rep["targets"] == {"object-counting": 0.25, "printed-text": 0.75} and rep["l1"] == 0.0
    assert len(rejections) == 600 and {r.reason for r in rejections} == {"balance_downsampled"}
    assert rejections[0].operator == "taxonomy.balance" and rejections[0].input.startswith("in/")
    assert kept.num_rows == 400 and set(np.unique(kept.column("repeat").to_numpy())) == {1}
    # a fraction of the tagged rows as the target total
    _, _, rep_f = get_assembly_step("taxonomy.balance")({"taxonomy": str(p), "total_fraction": 0.5, "floor": 0}).run(t, None)
    assert rep_f["target_total"] == 500 and rep_f["counts_after"] == {"object-counting": 125, "printed-text": 375}
    # categories filter: only listed categories are balanced
    step2 = get_assembly_step("taxonomy.balance")({"categories": ["inhouse_taxonomy"]})
    kept2, rej2, rep2 = step2.run(t, None)
    assert kept2.num_rows == 1000 and rej2 == [] and rep2["tagged_rows"] == 0
