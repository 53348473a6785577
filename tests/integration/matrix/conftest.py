"""Fixtures of the fault matrix, the flake detector and the secret canaries.

Markers: every test here is ``integration`` and ``slow``; the cases outside the representative CI subset are also
``matrix_full``. Those are deselected unless the run selects markers itself (``-m ...``) or CWS_MATRIX_FULL=1 is
set (scripts/fault_matrix.sh does that), so a plain ``pytest tests/integration`` runs the subset only.

- ``matrix_stack`` (session): a reference stack of its own, with the real rate limit (30 requests a minute per
  client), and the application directory layout preflight expects.
- ``matrix`` (function): a MatrixContext on that stack, back to the healthy state before and after the test, on a
  fresh rate-limit window (a new operator session on a freshly started service).
"""
from __future__ import annotations

import os

import pytest

from matrix_harness import MatrixContext, make_tls_material
from refstack import started_stack

FULL_MARK = "matrix_full"


def pytest_configure(config):
    config.addinivalue_line("markers", "%s: fault matrix case outside the CI subset (scripts/fault_matrix.sh runs them)"
                            % FULL_MARK)


def pytest_collection_modifyitems(config, items):
    if config.getoption("markexpr", "") or os.environ.get("CWS_MATRIX_FULL") == "1":
        return
    keep, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker(FULL_MARK) else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session")
def matrix_stack(pg_server):
    with started_stack(pg_server, "cws_mx_%d" % os.getpid(), layout=True) as stack:
        yield stack


@pytest.fixture(scope="session")
def matrix_tls_factory(tmp_path_factory):
    cache = {}

    def factory():
        if "material" not in cache:
            cache["material"] = make_tls_material(tmp_path_factory.mktemp("matrix-tls"))
        return cache["material"]
    return factory


@pytest.fixture()
def matrix(matrix_stack, tmp_path, matrix_tls_factory):
    ctx = MatrixContext(matrix_stack, tmp_path, matrix_tls_factory)
    ctx.reset()
    try:
        yield ctx
    finally:
        ctx.reset()
