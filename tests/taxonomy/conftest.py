"""Fixtures for taxonomy tests: a writable copy of the bundled taxonomy and a small catalog."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from taxonomy.schema import DEFAULT_PATH, load
from taxonomy.synthetic import demo_catalog


@pytest.fixture
def tax_file(tmp_path: Path) -> Path:
    p = tmp_path / "tax.yaml"
    shutil.copy(DEFAULT_PATH, p)
    return p


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    out = tmp_path / "build"
    demo_catalog(out, load(DEFAULT_PATH), n=6)
    return out
