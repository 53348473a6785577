"""The default rate limit (30 requests per minute per client, health paths exempt), on a second service
process started against the session stack's database without RATE_LIMIT_PER_MINUTE."""
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
def default_limit_service(ref_stack, tmp_path):
    env = ref_stack.process_env()
    env.pop("RATE_LIMIT_PER_MINUTE")
    env["REFSERVICE_STATE_DIR"] = str(tmp_path)
    port_file = tmp_path / "service.json"
    proc = subprocess.Popen([sys.executable, "-m", "refservice", "--port-file", str(port_file)], env=env,
                            cwd=str(refstack.SERVICE_ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "service did not start"
            time.sleep(0.05)
        yield "http://127.0.0.1:%d" % json.loads(port_file.read_text())["port"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


def test_default_rate_limit_is_30(default_limit_service, ref_stack):
    base = default_limit_service
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
