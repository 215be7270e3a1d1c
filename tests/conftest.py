"""Shared fixtures: one local Ray session for every test that needs Ray (ray.init costs ~5 s)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=8,  # logical: recipes with several actor pools must start on 2 cores
                  include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 object_store_memory=1 << 30)
    yield ray
    ray.shutdown()
