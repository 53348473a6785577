"""Shared fixtures: a real PostgreSQL cluster for the whole session, module runners, a scripted HTTP
server on loopback (``server``) and a loopback port nothing listens on (``closed_port``)."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".build" / "collections"))
sys.path.insert(0, str(ROOT / "tests" / "harness"))
sys.path.insert(0, str(ROOT / "tests"))

from pgcluster import running_or_new  # noqa: E402  pylint: disable=wrong-import-position
from modrun import run_module  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
from scripted_http import ScriptedServer  # noqa: E402  pylint: disable=wrong-import-position
pytest_plugins = ("refstack_fixtures", "monitoring_fixtures")


@pytest.fixture(scope="session", autouse=True)
def rate_ledger_dir(tmp_path_factory):
    """One rate-limit ledger for the session (module runs and ansible-playbook runs alike), not the user's own."""
    path = tmp_path_factory.mktemp("rate-ledger")
    previous = os.environ.get("CWS_RATE_LEDGER_DIR")
    os.environ["CWS_RATE_LEDGER_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("CWS_RATE_LEDGER_DIR", None)
    else:
        os.environ["CWS_RATE_LEDGER_DIR"] = previous


@pytest.fixture(scope="session")
def pg_server():
    """Connection facts of a running PostgreSQL server: the one named by PGHARNESS_STATE, or a
    fresh cluster started for this test session and removed after it."""
    with running_or_new() as facts:
        yield facts


@pytest.fixture()
def module_runner():
    return run_module


@pytest.fixture()
def server():
    """A scripted HTTP server on loopback (tests/harness/scripted_http.py)."""
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture()
def closed_port():
    """A loopback port with nothing listening (bound once, then released): connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
