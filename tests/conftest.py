"""Shared fixtures: a FRUXON_HOME per test, a real Dagster instance, real LanceDB and SQLite."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Nothing may phone home while tests parse documents or load models.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def settings(tmp_path: Path):
    from fruxon_pipelines.settings import Settings

    return Settings(home=tmp_path / "fruxon", allow_private_networks=True, embed_batch_size=8)


@pytest.fixture
def instance() -> Iterator:
    import dagster as dg

    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def site() -> Iterator:
    from sitegen import Site

    with Site() as site:
        yield site
