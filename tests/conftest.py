"""Shared fixtures: a real PostgreSQL cluster for the whole session, and module runners."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".build" / "collections"))
sys.path.insert(0, str(ROOT / "tests" / "harness"))
sys.path.insert(0, str(ROOT / "tests"))

from pgcluster import running_or_new  # noqa: E402  pylint: disable=wrong-import-position
from modrun import run_module  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
pytest_plugins = ("refstack_fixtures",)


@pytest.fixture(scope="session")
def pg_server():
    """Connection facts of a running PostgreSQL server: the one named by PGHARNESS_STATE, or a
    fresh cluster started for this test session and removed after it."""
    with running_or_new() as facts:
        yield facts


@pytest.fixture()
def module_runner():
    return run_module
