"""The refstack CLI: start on a given cluster, apply and clear faults, run the jobs, stop cleanly."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
import requests

import refstack
from refhelpers import TIMEOUT

pytestmark = pytest.mark.integration
CLI = os.path.join(os.path.dirname(os.path.abspath(refstack.__file__)), "refstack.py")


def _cli(*args):
    proc = subprocess.run([sys.executable, CLI] + list(args), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _superuser_rows(pg, statement, params):
    import psycopg2  # pylint: disable=import-outside-toplevel
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"], dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    finally:
        conn.close()


def test_cli_lifecycle(pg_server, tmp_path):
    pg_state, state = tmp_path / "pg.json", tmp_path / "stack.json"
    pg_state.write_text(json.dumps(pg_server))
    name = "cwscli_%d" % os.getpid()
    out = _cli("start", "--state", str(state), "--pg-state", str(pg_state), "--name", name, "--rate-limit", "100")
    assert "up at http://127.0.0.1:" in out
    try:
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
        facts = json.loads(state.read_text())["facts"]
        base = facts["base_url"]
        assert facts["db"]["dbname"] == name and facts["rate_limit"] == 100
        assert requests.get(base + "/readyz", timeout=TIMEOUT).status_code == 200

        _cli("fault", "backup_marker_stale", "--param", "age_hours=48", "--state", str(state))
        assert requests.get(base + "/healthz/backup", timeout=TIMEOUT).status_code == 503
        _cli("fault", "service_down", "--state", str(state))
        with pytest.raises(requests.ConnectionError):
            requests.get(base + "/healthz", timeout=3)
        _cli("clear", "--state", str(state))
        assert requests.get(base + "/healthz/backup", timeout=TIMEOUT).status_code == 200
        assert requests.get(base + "/readyz", timeout=TIMEOUT).status_code == 200
        new_pid = json.loads(state.read_text())["facts"]["service_pid"]
        assert new_pid and new_pid != facts["service_pid"]

        summary = json.loads(_cli("jobs", "--state", str(state)))
        assert set(summary["jobs"]) == {"outbox-delivery", "storage-janitor", "email-dlq"}
    finally:
        _cli("stop", "--state", str(state))
    assert not state.exists()
    assert _superuser_rows(pg_server, "SELECT 1 FROM pg_database WHERE datname = %s", (name,)) == []
    assert _superuser_rows(pg_server, "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (name + "%",)) == []
    with pytest.raises(requests.ConnectionError):
        requests.get(base + "/healthz", timeout=3)
