"""Assembly: the global part of a build, from the sample pool to shards and catalog.

Runs the recipe's assembly steps (dedup, balancing) over the whole pool, selects the mixture per
stage, and writes one WebDataset stream per stage and modality. A pure function of the pool and the
recipe: re-running it (e.g. after `--resume`) gives byte-identical shards.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from operators.base import AssemblyStep
from pipelines.mixture import Selection, select
from pipelines.pool import Pool
from pipelines.recipe import AssemblySpec
from pipelines.shards import ShardInfo, ShardWriter

log = logging.getLogger(__name__)


@dataclass
class AssemblyResult:
    pool_candidates: pa.Table  # every sample in the pool
    candidates: pa.Table  # those left after the assembly steps
    removed: list[dict[str, Any]]
    selection: Selection
    shards: dict[str, list[ShardInfo]]
    step_reports: dict[str, Any] = field(default_factory=dict)

    def selections_table(self, shard_of: dict[tuple[str, int], str]) -> pa.Table:
        rows = []
        for stream, items in self.selection.streams.items():
            for pos, (key, copy) in enumerate(items):
                rows.append({"stream": stream, "pos": pos, "key": key, "copy": copy,
                             "member_key": member_key(key, copy), "shard": shard_of.get((stream, pos), "")})
        schema = pa.schema([("stream", pa.string()), ("pos", pa.int64()), ("key", pa.string()),
                            ("copy", pa.int32()), ("member_key", pa.string()), ("shard", pa.string())])
        return pa.Table.from_pylist(rows, schema=schema)

    def mixture_table(self) -> pa.Table:
        rows = [{"stage": r.stage, **row} for r in self.selection.reports for row in r.rows]
        schema = pa.schema([("stage", pa.string()), ("category", pa.string()), ("ratio", pa.float64()),
                            ("target", pa.int64()), ("achieved", pa.int64()), ("available", pa.int64())])
        return pa.Table.from_pylist(rows, schema=schema)

    def shards_table(self) -> pa.Table:
        rows = [{"stream": s, "name": i.name, "count": i.count, "bytes": i.bytes, "sha256": i.sha256}
                for s, infos in self.shards.items() for i in infos]
        schema = pa.schema([("stream", pa.string()), ("name", pa.string()), ("count", pa.int64()),
                            ("bytes", pa.int64()), ("sha256", pa.string())])
        return pa.Table.from_pylist(rows, schema=schema)


def member_key(key: str, copy: int) -> str:
    """Up-sampled copies need their own tar key (WebDataset groups members by key)."""
    return key if copy == 0 else f"{key}_r{copy}"


def assemble(pool: Pool, spec: AssemblySpec, steps: list[AssemblyStep], out: Path) -> tuple[AssemblyResult, pa.Table]:
    candidates = everything = pool.candidates()
    removed: list[dict[str, Any]] = []
    reports: dict[str, Any] = {}
    for step in steps:
        before = candidates.num_rows
        candidates, rejected, report = step.run(candidates, pool)
        removed.extend({"input": r.input, "key": r.key, "operator": r.operator or step.name,
                        "reason": r.reason, "detail": r.detail} for r in rejected)
        reports[step.name] = report
        log.info("assembly %s: %d -> %d candidates", step.name, before, candidates.num_rows)
    selection = select(candidates, spec)
    result = AssemblyResult(everything, candidates, removed, selection, {}, reports)
    shard_of = _write_streams(pool, selection, spec, out / "shards", result)
    return result, result.selections_table(shard_of)


def _write_streams(pool: Pool, selection: Selection, spec: AssemblySpec, root: Path,
                   result: AssemblyResult) -> dict[tuple[str, int], str]:
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.iterdir():  # streams that this assembly no longer produces
        if stale.is_dir() and stale.name not in selection.streams:
            shutil.rmtree(stale)
    shard_of: dict[tuple[str, int], str] = {}
    maxsize = int(spec.shards.maxsize_mb * (1 << 20))
    for stream, items in sorted(selection.streams.items()):
        writer = ShardWriter(root / stream, stream, spec.shards.maxcount, maxsize)
        order = pa.table({"pos": list(range(len(items))), "key": [k for k, _ in items],
                          "copy": [c for _, c in items]})
        pool.con.register("order_t", order)
        q = ("SELECT o.pos, o.key, o.copy, m.json, m.images FROM order_t o JOIN ("
             "SELECT key, json, images FROM (SELECT key, json, images, row_number() OVER "
             "(PARTITION BY key ORDER BY pool_file) rn FROM samples_raw WHERE key IN (SELECT key FROM order_t)) "
             "WHERE rn = 1) m USING (key) ORDER BY o.pos")
        reader = pool.con.sql(q).to_arrow_reader(256)
        for batch in reader:
            d = batch.to_pydict()
            for i, pos in enumerate(d["pos"]):
                members = {"json": d["json"][i].encode("utf-8")}
                names = json.loads(d["json"][i]).get("images", [])
                imgs = d["images"][i] or []
                if len(names) != len(imgs):
                    raise RuntimeError(f"pool sample {d['key'][i]}: {len(names)} image names, {len(imgs)} images")
                members.update(zip(names, imgs))
                shard_of[(stream, pos)] = writer.write(member_key(d["key"][i], d["copy"][i]), members)
        pool.con.unregister("order_t")
        result.shards[stream] = writer.close()
    return shard_of
