"""Chart synthesis speed: bare matplotlib loop vs the operator vs the engine on local Ray, 1 and 2 workers.

All three draw the same charts (same seed and unit ids). The bare loop only executes each chart's
script and saves the PNG; the operator adds data, styles, code, markdown, QA and sample building.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

import yaml


def _plans(n: int, seed: int) -> list:
    from operators.charts import ChartConfig, plan_chart, unit_rng

    cfg = ChartConfig(count=n, seed=seed)
    plans = []
    for i in range(n):
        rng, _ = unit_rng(f"charts.synth:seed={seed}:i={i:06d}")
        plans.append(plan_chart(cfg.kinds[i % len(cfg.kinds)], rng, cfg))
    return plans


def _bare_worker(args: tuple[int, int]) -> float:
    seed, n = args
    return bare_loop(_plans(n, seed))


def bare_loop(plans: list) -> float:
    """Plain matplotlib: run each script body, save PNG to memory, close the figure. Returns seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    for p in plans:
        body = p.code.rstrip("\n").rsplit("\n", 1)[0]
        ns: dict = {}
        with matplotlib.rc_context():
            matplotlib.rcdefaults()  # the scripts expect default rc state, as in a fresh process
            exec(compile(body, "<chart>", "exec"), ns)  # noqa: S102 - the operator's own scripts
            buf = io.BytesIO()
            ns["fig"].savefig(buf, format="png", dpi=p.style.dpi, metadata={"Software": None})
            plt.close(ns["fig"])
    return time.perf_counter() - t0


def operator_direct(n: int, seed: int) -> int:
    from operators.charts import ChartSynthesizer

    return len(ChartSynthesizer({"count": n, "seed": seed}).run())


def engine(n: int, seed: int, workers: int, root: Path) -> dict:
    from pipelines.runner import build

    recipe = {
        "name": f"bench-charts-{workers}w",
        "sources": [{"op": "charts.synth", "with": {"count": n, "seed": seed}, "workers": workers}],
        "assembly": {"seed": 0, "missing_categories": "renormalize"},
    }
    path = root / f"charts_{workers}w.yaml"
    path.write_text(yaml.safe_dump(recipe))
    c0 = _tree_cpu()
    t0 = time.perf_counter()
    res = build(path, root / f"out_{workers}w")
    wall = time.perf_counter() - t0
    cpu = _tree_cpu() - c0
    op_secs = sum(s.seconds for s in res.steps if s.op == "charts.synth")
    return {
        "seconds": round(wall, 2),
        "charts_per_s": round(n / wall, 2),
        "samples": res.samples,
        "operator_seconds_in_workers": round(op_secs, 2),
        "cpu_s_all_processes": round(cpu, 2),
    }


def _tree_cpu() -> float:
    """CPU seconds of this process and every process under it (the embedded Ray: raylet, GCS, workers)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:  # a worker that exited between listing and reading
            continue
    return total


def _timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - w0, time.process_time() - c0


def run(quick: bool) -> dict:
    """Rounds alternate the methods and the best round counts: the machine is shared, so the minimum
    is the least disturbed measurement. CPU seconds are reported beside wall seconds for the same reason."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    n = 28 if quick else 56  # multiples of the 14 kinds, so every kind weighs the same
    rounds = 2 if quick else 3
    seed = 3
    bare_loop(_plans(14, seed + 1000))  # warm: font cache, imports, first figure
    plans = _plans(n, seed)
    bare_w, bare_c, op_w, op_c = [], [], [], []
    for _ in range(rounds):
        w, c = _timed(bare_loop, plans)
        bare_w.append(w)
        bare_c.append(c)
        w, c = _timed(operator_direct, n, seed)
        op_w.append(w)
        op_c.append(c)
    bw, bc, ow, oc = min(bare_w), min(bare_c), min(op_w), min(op_c)
    out: dict = {
        "charts": n,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "load_avg_1min_at_start": round(os.getloadavg()[0], 1),  # other users' work on the same cores
        "bare_matplotlib": {"wall_s": round(bw, 2), "cpu_s": round(bc, 2), "charts_per_s": round(n / bw, 2)},
        "operator_direct": {"wall_s": round(ow, 2), "cpu_s": round(oc, 2), "charts_per_s": round(n / ow, 2)},
        "operator_overhead_pct_cpu": round((oc / bc - 1) * 100, 1),
        "operator_overhead_pct_wall": round((ow / bw - 1) * 100, 1),
    }
    # The hardware ceiling for this workload: the bare loop in 2 processes vs 1 (no engine at all).
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_bare_worker, [(seed + 1000, 2), (seed + 1001, 2)])  # warm both processes
        half = n // 2
        t0 = time.perf_counter()
        pool.map(_bare_worker, [(seed, n)])
        one_proc = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool.map(_bare_worker, [(seed, half), (seed + 7, n - half)])
        two_proc = time.perf_counter() - t0
    out["bare_matplotlib_2_vs_1_processes"] = round(one_proc / two_proc, 2)
    import ray

    # address="local": our own embedded cluster, never one another process left running here
    ray.init(
        address="local",
        num_cpus=min(2, os.cpu_count() or 2),
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    runs: dict[int, list[dict]] = {1: [], 2: []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "warm").mkdir()
            engine(14, seed + 2000, 2, root / "warm")  # start Ray workers and import modules once
            for r in range(rounds):
                for w in (1, 2):
                    (root / f"r{r}").mkdir(exist_ok=True)
                    runs[w].append(engine(n, seed, w, root / f"r{r}"))
    finally:
        ray.shutdown()
    e1 = min(runs[1], key=lambda e: e["seconds"])
    e2 = min(runs[2], key=lambda e: e["seconds"])
    out["engine_1_worker"] = e1
    out["engine_2_workers"] = e2
    # Time the 1-worker build spends outside the operator (scheduling, Arrow rows, pool, assembly,
    # shards, catalog): less sensitive to a busy machine than comparing two separate wall times.
    out["engine_time_outside_operator_pct"] = round(
        (e1["seconds"] - e1["operator_seconds_in_workers"]) / e1["operator_seconds_in_workers"] * 100, 1
    )
    out["engine_overhead_vs_operator_pct"] = round((e1["seconds"] / ow - 1) * 100, 1)
    # CPU seconds barely depend on what else runs on the machine: the steadiest overhead figure.
    out["engine_cpu_overhead_vs_operator_pct"] = round((e1["cpu_s_all_processes"] / oc - 1) * 100, 1)
    out["engine_cpu_overhead_vs_bare_pct"] = round((e1["cpu_s_all_processes"] / bc - 1) * 100, 1)
    out["engine_overhead_vs_bare_pct"] = round((e1["seconds"] / bw - 1) * 100, 1)
    out["speedup_2_vs_1_workers"] = round(e1["seconds"] / e2["seconds"], 2)
    out["load_avg_1min_at_end"] = round(os.getloadavg()[0], 1)
    return out
