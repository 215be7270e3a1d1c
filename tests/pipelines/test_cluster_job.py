"""A build submitted as a Ray job to a real (single-node) Ray cluster, then an incremental re-run."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipelines.verify import verify

pytestmark = pytest.mark.ray


@pytest.fixture()
def cluster(tmp_path):
    """A single-node Ray cluster of its own (`ray start --block` in a new session), stopped by killing
    that session: `ray stop` would also stop every other Ray on the machine, the tests' own included."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16), "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    env.pop("RAY_ADDRESS", None)
    ray = shutil.which("ray", path=bin_dir)
    temp = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    start = [ray, "start", "--head", "--block", "--port=6391", "--dashboard-port=8291", "--num-cpus=1",
             "--disable-usage-stats", f"--temp-dir={temp}",
             # ports of its own: the tests' embedded Ray already holds the default agent ports
             "--dashboard-agent-listen-port=52391", "--dashboard-agent-grpc-port=52392",
             "--metrics-export-port=52393", "--runtime-env-agent-port=52394", "--ray-client-server-port=10391",
             "--min-worker-port=20400", "--max-worker-port=20999"]
    head = subprocess.Popen(start, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert head.poll() is None, "ray start exited early"
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", 8291)) == 0:
                    break
            time.sleep(0.5)
        yield env
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
                head.wait(timeout=20)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        shutil.rmtree(temp, ignore_errors=True)


def test_submit_build_and_incremental_rerun(tmp_path, cluster):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text("".join(json.dumps({"text": f"first batch {i}"}) + "\n" for i in range(5)))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: job\nparams: {inputs: none}\nsources:\n  - op: text.jsonl\n    with: {inputs: '${inputs}'}\n"
        "assembly:\n  mixture: {stage2: {ratios: {text_only: 1.0}}}\n"
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipelines.cli", "submit", str(recipe), "--output", str(out),
           "--address", "http://127.0.0.1:8291", "--set", f"inputs={data}", "--wait"]
    r = subprocess.run(cmd, env=cluster, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "SUCCEEDED" in r.stdout, r.stdout + r.stderr
    assert verify(out) == []
    # a scheduled re-run after new data arrived: only the new file is read
    (data / "b.jsonl").write_text("".join(json.dumps({"text": f"second batch {i}"}) + "\n" for i in range(3)))
    r = subprocess.run(cmd, env=cluster, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert verify(out) == []
    import duckdb

    con = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    runs = con.sql("SELECT run, info FROM runs ORDER BY run").fetchall()
    assert [r[0] for r in runs] == [1, 2]
    assert json.loads(runs[1][1])["skipped_inputs"] == 1
    assert con.sql("SELECT count(*) FROM samples").fetchall()[0][0] == 8
