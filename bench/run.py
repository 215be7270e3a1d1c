"""Benchmark harness: `python -m bench.run [NAME ...] [--quick]`.

Each `bench/bench_<name>.py` defines `run(quick: bool) -> dict` that measures side by side in one run
(ours vs the bare library loop, 1 vs 2 workers, ours vs an established tool) and returns its figures.
The harness writes them to `bench/results/<name>.json` and prints a table.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.extend(_flatten(v, name + "."))
        else:
            out.append((name, v))
    return out


def main(argv: list[str]) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")]
    if not names:
        names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                       if m.name.startswith("bench_"))
    console = Console()
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in names:
        mod = importlib.import_module(f"bench.bench_{name}")
        console.rule(f"bench {name}")
        t0 = time.perf_counter()
        try:
            res = mod.run(quick=quick)
        except Exception as e:  # one broken benchmark must not hide the others' figures
            console.print(f"[red]bench {name} failed: {e!r}")
            failed += 1
            continue
        res = {"bench": name, "machine": f"{platform.machine()} {os.cpu_count()} cpus",
               "seconds": round(time.perf_counter() - t0, 1), "quick": quick, "results": res}
        out = RESULTS / f"{name}.json"
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(res, indent=2, sort_keys=True))
        tmp.replace(out)
        table = Table(title=f"{name} -> {out}")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for k, v in _flatten(res["results"]):
            table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
        console.print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
