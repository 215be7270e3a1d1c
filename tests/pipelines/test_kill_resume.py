"""A build killed with SIGKILL midway, re-run with --resume, ends with byte-identical shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.runner import build
from pipelines.verify import verify

pytestmark = pytest.mark.ray

RECIPE = {
    "name": "kill-test",
    "params": {"charts": 24},
    "sources": [{"op": "charts.synth", "with": {"count": "${charts}", "seed": 5}, "batch_size": 2}],
    "assembly": {"seed": 1, "shards": {"maxcount": 25}},
    "build": {"flush_rows": 6},
}


def _manifests(out: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((out / "shards").glob("*/manifest.json"))}


def test_sigkill_then_resume(tmp_path, ray_session):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    killed = tmp_path / "killed"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "build", str(recipe), "--output", str(killed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    ledger = killed / "pool" / "_ledger"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ledger.exists() and len(list(ledger.glob("*.parquet"))) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the build finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # driver, its local Ray cluster and workers
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (killed / "catalog.duckdb").exists()
    res = build(recipe, killed, resume=True)
    assert 0 < res.skipped_inputs < res.inputs
    clean = tmp_path / "clean"
    build(recipe, clean)
    assert _manifests(killed) == _manifests(clean) and _manifests(clean)
    assert verify(killed) == []
