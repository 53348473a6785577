"""pytest fixtures for the reference stack (a plugin module: tests/conftest.py lists it in pytest_plugins).

- ``ref_stack`` (session): a started RefStack on the ``pg_server`` cluster with the real service's rate limit
  (30 requests a minute per client), stopped (database and roles dropped) at the end of the session.
- ``healthy_stack`` (function): ``ref_stack`` with ``clear_faults()`` before and after the test, so a
  test may switch any fault on and the next test still starts from the healthy (GO) state, and with a fresh
  rate-limit window (``RefStack.fresh_rate_window``): each test is a new operator session on a freshly started
  service, and the runs inside one test share the window as consecutive runs do in production.
"""
from __future__ import annotations

import os

import pytest

from refstack import started_stack


@pytest.fixture(scope="session")
def ref_stack(pg_server):
    # A per-process name, so test processes sharing one cluster (PGHARNESS_STATE, xdist) never collide.
    with started_stack(pg_server, "cws_%d" % os.getpid()) as stack:
        yield stack


@pytest.fixture()
def healthy_stack(ref_stack):
    ref_stack.clear_faults()
    ref_stack.fresh_rate_window()
    yield ref_stack
    ref_stack.clear_faults()
