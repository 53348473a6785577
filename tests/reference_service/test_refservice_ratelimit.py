"""Settings that need a service process of their own, on the session stack's database: the default rate
limit (30 requests per minute per client, health paths exempt) and an untrusted proxy."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests

import refstack
from refhelpers import HEALTH_PATHS, MFA, assert_problem

pytestmark = pytest.mark.integration


@pytest.fixture()
def spawn_service(ref_stack, tmp_path):
    """Start extra service processes on the session stack's database with changed settings."""
    procs = []

    def spawn(drop=(), **changes):
        env = ref_stack.process_env()
        for key in drop:
            env.pop(key)
        env.update(changes)
        env["REFSERVICE_STATE_DIR"] = str(tmp_path)
        port_file = tmp_path / ("service-%d.json" % len(procs))
        proc = subprocess.Popen([sys.executable, "-m", "refservice", "--port-file", str(port_file)], env=env,
                                cwd=str(refstack.SERVICE_ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        deadline = time.monotonic() + 15
        while not port_file.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "service did not start"
            time.sleep(0.05)
        return "http://127.0.0.1:%d" % json.loads(port_file.read_text())["port"]

    yield spawn
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


def test_default_rate_limit_is_30(spawn_service, healthy_stack):
    # The healthy stack: /readyz is asserted 200, and the jobs heartbeat it reads (180 s TTL) is refreshed
    # only by a stack reset, so after minutes of other tests in this process it would be stale.
    ref_stack = healthy_stack
    base = spawn_service(drop=("RATE_LIMIT_PER_MINUTE",))
    with requests.Session() as session:
        for i in range(30):
            resp = session.get(base + "/openapi.json", timeout=10)
            assert resp.status_code == 200, (i, resp.text)
            if i == 10:
                for path in HEALTH_PATHS:  # exempt: not counted
                    assert session.get(base + path, timeout=10).status_code == 200
        limited = session.get(base + "/openapi.json", timeout=10)
        body = assert_problem(limited, 429)
        assert body["type"].endswith("rate-limit") and "Retry-After" not in limited.headers
        assert_problem(session.get(base + "/v1/admin/profile", auth=tuple(ref_stack.credentials["viewer"]),
                                   headers=MFA, timeout=10), 429)
        for path in HEALTH_PATHS:  # still answered while the client is limited
            assert session.get(base + path, timeout=10).status_code == 200, path
        # Another client behind the trusted proxy (X-Forwarded-For) has its own budget.
        other = session.get(base + "/openapi.json", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10)
        assert other.status_code == 200


def test_untrusted_proxy(spawn_service, ref_stack):
    base = spawn_service(TRUSTED_PROXY_IPS="10.9.9.9")
    resp = requests.get(base + "/v1/admin/profile", auth=tuple(ref_stack.credentials["owner"]), headers=MFA, timeout=10)
    assert resp.status_code == 401 and resp.headers["X-Admin-Auth-Fail-Reason"] == "proxy_untrusted"
    assert resp.headers["WWW-Authenticate"] == "Basic" and set(resp.json()) == {"detail"}
