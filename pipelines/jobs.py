"""Cluster jobs: submit a build to a Ray cluster through the Ray Jobs API.

The job runs `dsvl-data build ... --resume` on the cluster, so a scheduled job (see
pipelines/deploy/) that is submitted again later processes only inputs that are new since the last run.
"""

from __future__ import annotations

import shlex
from pathlib import Path


def build_entrypoint(recipe: str, output: str, sets: list[str], resume: bool = True) -> str:
    args = ["dsvl-data", "build", recipe, "--output", output, "--address", "auto"]
    for s in sets:
        args += ["--set", s]
    if resume:
        args.append("--resume")
    return shlex.join(args)


def submit(address: str, recipe: str, output: str, sets: list[str], working_dir: Path | None = None,
           submission_id: str | None = None, wait: bool = False, timeout_s: float = 3600) -> tuple[str, str]:
    """Submit the build; returns (submission id, final status or PENDING when not waiting)."""
    import time

    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(address)
    runtime_env = {"working_dir": str(working_dir)} if working_dir else None
    # a head that has just started answers before its job agent is up: retry that, not other errors
    give_up = time.monotonic() + 120
    while True:
        try:
            job = client.submit_job(entrypoint=build_entrypoint(recipe, output, sets), runtime_env=runtime_env,
                                    submission_id=submission_id, metadata={"tool": "dsvl-data", "recipe": recipe})
            break
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.monotonic() > give_up:
                raise
            time.sleep(2.0)
    if not wait:
        return job, "PENDING"
    end = time.monotonic() + timeout_s
    status = client.get_job_status(job)
    while status not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED} and time.monotonic() < end:
        time.sleep(1.0)
        status = client.get_job_status(job)
    return job, str(status.value if hasattr(status, "value") else status)
