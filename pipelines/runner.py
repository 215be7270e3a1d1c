"""The runner: a validated recipe becomes a Ray Data streaming plan, then an assembly.

Each source's input units become a dataset of blocks; the source and its own steps, then the shared
steps, run as `map_batches` (actor pools for operators that hold state). The driver streams the
result into the sample pool, then assembles shards and writes the catalog.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from operators.base import Operator, Source, get_operator
from operators.sample import InputUnit, Item, Rejection, Sample, dumps, items_to_table, table_to_items
from pipelines.assembly import assemble
from pipelines.catalog import previous_runs, write_catalog
from pipelines.pool import Pool, PoolWriter, next_run_number
from pipelines.recipe import BoundStep, Recipe, RecipeError, load_recipe

log = logging.getLogger(__name__)


@dataclass
class StepStats:
    path: str
    op: str
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BuildResult:
    output: Path
    run: int
    inputs: int
    skipped_inputs: int
    samples: int
    rejected: int
    seconds: float
    steps: list[StepStats]
    streams: dict[str, int]
    mixture: list[dict[str, Any]]
    assembly: dict[str, Any]
    phases: dict[str, float] = field(default_factory=dict)  # seconds: stream, assembly, catalog


def _count_units(items: list[Item]) -> int:
    return sum(1 for it in items if isinstance(it, (Sample, InputUnit)))


class OperatorAdapter:
    """Runs one operator on Arrow batches, streaming its output in bounded tables (a source may
    turn one input into gigabytes of pages); ends with a `stats` row for the driver's summary."""

    max_rows = 256
    max_bytes = 32 << 20

    def __init__(self, op_name: str, config: dict[str, Any], path: str):
        cls = get_operator(op_name)
        self.op: Operator = cls(cls.Config(**config))
        self.path = path

    def __call__(self, table: pa.Table) -> Iterator[pa.Table]:
        is_stats = pc.equal(table.column("kind"), "stats")
        passthrough = table.filter(is_stats)
        items = table_to_items(table.filter(pc.invert(is_stats)))
        seconds = 0.0
        n_out = 0
        rejected: dict[str, int] = defaultdict(int)
        chunk: list[Item] = []
        size = 0
        produced = self.op.iter_batch(items)
        while True:
            t0 = time.perf_counter()
            it = next(produced, None)
            seconds += time.perf_counter() - t0
            if it is None:
                break
            chunk.append(it)
            if isinstance(it, Sample):
                n_out += 1
                size += sum(len(b) for b in it.image_bytes) + len(it.text or "")
            elif isinstance(it, Rejection) and it.operator == self.op.name:
                rejected[it.reason] += 1
            if len(chunk) >= self.max_rows or size >= self.max_bytes:
                yield items_to_table(chunk)
                chunk, size = [], 0
        stats = {"path": self.path, "op": self.op.name, "in": _count_units(items), "out": n_out,
                 "seconds": seconds, "rejected": rejected}
        stats_row = pa.table({"kind": ["stats"], "key": [""], "input": [""], "operator": [self.op.name],
                              "reason": [""], "detail": [""], "json": [dumps(stats)], "images": [[]]},
                             schema=table.schema)
        yield pa.concat_tables([items_to_table(chunk), passthrough, stats_row])


def _map(ds: Any, step: BoundStep) -> Any:
    import ray.data

    res = step.cls.resources
    workers = step.spec.workers or res.workers
    batch_size = step.spec.batch_size or res.batch_size
    kwargs: dict[str, Any] = {"batch_format": "pyarrow", "batch_size": batch_size, "num_cpus": res.num_cpus,
                              "zero_copy_batch": True}
    if res.num_gpus:
        kwargs["num_gpus"] = res.num_gpus
    if res.memory_mb:
        kwargs["memory"] = res.memory_mb * (1 << 20)
    ctor = {"op_name": step.name, "config": step.config.model_dump(mode="json"), "path": step.path}
    if res.actor:
        return ds.map_batches(OperatorAdapter, fn_constructor_kwargs=ctor,
                              compute=ray.data.ActorPoolStrategy(size=workers), **kwargs)
    compute = ray.data.TaskPoolStrategy(size=workers) if step.spec.workers else None
    return ds.map_batches(_stateless, fn_kwargs=ctor, compute=compute, **kwargs)


def _stateless(table: pa.Table, op_name: str, config: dict[str, Any], path: str) -> Iterator[pa.Table]:
    yield from OperatorAdapter(op_name, config, path)(table)


def plan_inputs(recipe: Recipe) -> list[tuple[BoundStep, list[BoundStep], list[str]]]:
    """Enumerate every source's input units on the driver; a missing input fails here, before work."""
    planned = []
    for src, chain in recipe.sources:
        op = src.build()
        if not isinstance(op, Source):
            raise RecipeError(f"{src.path}.op: {src.name!r} is not a source operator")
        try:
            units = op.list_inputs()
        except (ValueError, FileNotFoundError) as e:
            raise RecipeError(f"{src.path}.with: {e}") from None
        if len(set(units)) != len(units):
            raise RecipeError(f"{src.path}: {src.name} listed duplicate input units")
        planned.append((src, chain, units))
    return planned


def build(
    recipe_path: str | Path,
    output: str | Path,
    overrides: list[str] | None = None,
    address: str | None = None,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> BuildResult:
    recipe = load_recipe(recipe_path, overrides)
    return build_recipe(recipe, output, address=address, resume=resume, progress=progress)


def logical_cpus_needed(recipe: Recipe) -> float:
    """CPUs that the recipe's actor pools hold for the whole build, plus one for tasks."""
    steps = [s for src, chain in recipe.sources for s in (src, *chain)] + recipe.steps
    held = sum((s.spec.workers or s.cls.resources.workers) * s.cls.resources.num_cpus
               for s in steps if s.cls.resources.actor)
    return held + 1.0


def _init_ray(address: str | None, cpus_needed: float) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        else:
            # Actor pools hold their CPUs for the whole streaming build; on a small machine the
            # logical CPU count is raised so every pool can start (the OS shares the real cores).
            cpus = max(os.cpu_count() or 1, math.ceil(cpus_needed))
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="ERROR",
                     log_to_driver=False)  # "local": never join a cluster some `ray start` left behind
    have = ray.cluster_resources().get("CPU", 0)
    if have < cpus_needed:
        raise RecipeError(f"the recipe's actor pools need {cpus_needed:g} CPUs but the Ray cluster has {have:g}: "
                          "lower `workers` on the steps or add nodes")


def build_recipe(recipe: Recipe, output: str | Path, address: str | None = None, resume: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> BuildResult:
    out = Path(output)
    pool_root = out / "pool"
    if pool_root.exists() and any(pool_root.rglob("*.parquet")) and not resume:
        raise RecipeError(f"output {out} already holds a build: pass --resume to continue it, or use a new folder")
    planned = plan_inputs(recipe)  # validates inputs before any work
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    done = Pool(pool_root).done_inputs() if resume else set()
    run = next_run_number(pool_root)
    todo = [(src, chain, [u for u in units if u not in done]) for src, chain, units in planned]
    n_todo = sum(len(u) for _, _, u in todo)
    stats: dict[str, StepStats] = {}
    for src, chain, _ in planned:
        for step in [src, *chain, *recipe.steps]:
            stats.setdefault(step.path, StepStats(step.path, step.name))
    if n_todo:
        _init_ray(address, logical_cpus_needed(recipe))
        bs = recipe.model.build
        writer = PoolWriter(pool_root, run, bs.flush_rows, int(bs.flush_mb * (1 << 20)))
        finished = 0
        for table in _execute(recipe, todo):
            kinds = table.column("kind")
            st = table.filter(pc.equal(kinds, "stats"))
            for js in st.column("json").to_pylist():
                s = json.loads(js)
                agg = stats[s["path"]]
                agg.rows_in += s["in"]
                agg.rows_out += s["out"]
                agg.seconds += s["seconds"]
                for reason, n in s["rejected"].items():
                    agg.rejected[reason] = agg.rejected.get(reason, 0) + n
            rest = table.filter(pc.invert(pc.equal(kinds, "stats")))
            writer.add(rest)
            finished += pc.sum(pc.equal(rest.column("kind"), "done")).as_py() or 0
            if progress:
                progress(finished, n_todo)
        writer.close()
    t_stream = time.perf_counter()
    pool = Pool(pool_root)
    result, selections = assemble(pool, recipe.model.assembly, recipe.assembly_steps, out)
    inputs = pa.table({"input": [u for _, _, units in planned for u in units],
                       "source_op": [src.name for src, _, units in planned for _ in units]})
    t_assembly = time.perf_counter()
    runs = previous_runs(out)
    seconds = time.perf_counter() - t0
    runs.append({"run": run, "recipe": recipe.path, "name": recipe.name, "started": started,
                 "seconds": round(seconds, 3), "status": "ok", "resume": resume,
                 "info": json.dumps({"recipe": recipe.raw, "skipped_inputs": len(done),
                                     "assembly": result.step_reports, "phases": {}}, sort_keys=True, default=str)})
    write_catalog(out, pool.con, result.pool_candidates, result.removed, selections, result.shards_table(),
                  inputs, result.mixture_table(), runs)
    n_rej = pool.con.sql("SELECT count(*) FROM rejections").fetchall()[0][0]
    phases = {"stream": t_stream - t0, "assembly": t_assembly - t_stream, "catalog": time.perf_counter() - t_assembly}
    return BuildResult(
        output=out, run=run, inputs=sum(len(u) for _, _, u in planned), skipped_inputs=len(done),
        samples=result.pool_candidates.num_rows, rejected=int(n_rej) + len(result.removed), seconds=seconds,
        steps=list(stats.values()), streams={s: len(v) for s, v in result.selection.streams.items()},
        mixture=result.mixture_table().to_pylist(), assembly=result.step_reports, phases=phases,
    )


def _execute(recipe: Recipe, todo: list[tuple[BoundStep, list[BoundStep], list[str]]]) -> Iterator[pa.Table]:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # a `done` marker must follow its input's samples
    ctx.enable_progress_bars = False
    branches = []
    for src, chain, units in todo:
        if not units:
            continue
        bs = src.spec.batch_size or src.cls.resources.batch_size
        blocks = [items_to_table([InputUnit(u) for u in units[i:i + bs]]) for i in range(0, len(units), bs)]
        ds = ray.data.from_arrow(blocks)
        for step in [src, *chain]:
            ds = _map(ds, step)
        branches.append(ds)
    if not branches:
        return
    ds = branches[0] if len(branches) == 1 else branches[0].union(*branches[1:])
    for step in recipe.steps:
        ds = _map(ds, step)
    yield from ds.iter_batches(batch_format="pyarrow", batch_size=None)


def run_local(op: Operator, items: list[Item], batch_size: int = 16) -> list[Item]:
    """Run one operator over items without Ray, batch by batch (run-op, tests)."""
    out: list[Item] = []
    for i in range(0, len(items), batch_size):
        out.extend(op.process_batch(items[i:i + batch_size]))
    return out

