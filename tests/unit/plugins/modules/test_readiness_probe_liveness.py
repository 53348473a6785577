"""readiness_probe's order of sending and its liveness precondition, run as Ansible runs it against loopback listeners:
a service that refuses connections, one that accepts and never answers (hung), one whose accept queue is full (no
connection: may be the network), and a scripted service for the order. Assertions are on classifications and
request counts; every deadline leaves ample room (a refused connection answers at once)."""
from __future__ import annotations

import contextlib
import socket

import pytest

from modrun import records_by_name
from scripted_http import answer

ADMIN_PASSWORD = "liveness-admin-pw-1"
ROOMY = {"deadline": 30, "timeout": 20}


def admin_matrix():
    return {"roles": {"admin": {"username": "ops", "password": ADMIN_PASSWORD}},
            "endpoints": [{"name": "profile", "criterion": "auth.roles", "path": "/v1/admin/profile",
                           "expect": {"admin": 200}}],
            "jobs_status": {"max_age_seconds": 900}}


def probes():
    return [{"kind": "healthz", "timeout": 1.0, "retries": 1}, {"kind": "readyz"},
            {"name": "estimate", "criterion": "smoke.estimate", "path": "/v1/estimate", "method": "POST", "write": False,
             "json_body": {"beds": 2}},
            {"name": "openapi", "criterion": "smoke.docs", "path": "/openapi.json", "blocking": False}]


@contextlib.contextmanager
def silent_listener(backlog=16, fill=0):
    """A port that accepts connections (the kernel completes them) and never reads or answers; with ``fill``
    connections queued on a backlog of 0, further connects get no answer at all."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(backlog)
    fillers = []
    try:
        for dummy in range(fill):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(server.getsockname())
            fillers.append(filler)
        yield "http://127.0.0.1:%d" % server.getsockname()[1]
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def assert_nothing_else_sent(result, liveness_words):
    by_name = records_by_name(result)
    assert liveness_words in by_name["healthz"]["summary"], by_name["healthz"]["summary"]
    others = [r for r in result["records"] if r["name"] != "healthz"]
    expected = {"readyz", "readyz:migrations", "readyz:jobs", "estimate", "openapi", "profile:admin",
                "profile:anonymous", "jobs_status"}
    assert {r["name"] for r in others} >= expected
    for record in others:
        assert record["status"] == "error", record
        assert record["evidence"]["sent"] is False, record
        assert "not sent: the precondition probe 'healthz' (health.liveness) got no answer" in record["summary"]
    assert result["admin_requests_sent"] == 0
    assert result["requests_sent"] == by_name["healthz"]["evidence"]["attempts"] == 2  # retries: 1
    assert result["rate_limit"]["counted"] == 0


def test_a_service_that_refuses_connections_fails_liveness_and_nothing_else_is_sent(module_runner, closed_port):
    result = module_runner("readiness_probe", dict(ROOMY, base_url="http://127.0.0.1:%d" % closed_port, probes=probes(),
                                                   admin=admin_matrix(), backoff=0.05))
    healthz = records_by_name(result)["healthz"]
    assert healthz["status"] == "fail" and healthz["evidence"]["service_fault"] == "refused"
    assert_nothing_else_sent(result, "the service refuses connections")
    assert ADMIN_PASSWORD not in result.raw


def test_a_hung_service_fails_liveness_as_hung_and_nothing_else_is_sent(module_runner):
    with silent_listener() as url:
        result = module_runner("readiness_probe", dict(ROOMY, base_url=url, probes=probes(), admin=admin_matrix(),
                                                       backoff=0.05))
    healthz = records_by_name(result)["healthz"]
    assert healthz["status"] == "fail" and healthz["evidence"]["service_fault"] == "hung"
    assert_nothing_else_sent(result, "the service accepted the connection but sent no answer within")


def test_no_connection_at_all_is_inconclusive_for_liveness_and_nothing_else_is_sent(module_runner):
    with silent_listener(backlog=0, fill=3) as url:
        result = module_runner("readiness_probe", dict(ROOMY, base_url=url, probes=probes(), admin=admin_matrix(),
                                                       backoff=0.05, connect_timeout=1.0))
    healthz = records_by_name(result)["healthz"]
    assert healthz["status"] == "error" and "service_fault" not in healthz["evidence"]
    assert "connect_timeout" in healthz["summary"] and "cannot decide" in healthz["summary"]
    # Nothing else: its first attempt already timed out connecting, the retry too.
    others = [r for r in result["records"] if r["name"] != "healthz"]
    assert all(r["evidence"].get("sent") is False for r in others)
    assert result["admin_requests_sent"] == 0


def test_liveness_first_and_alone_then_blocking_probes_and_the_matrix_then_the_advisory_ones(module_runner, server):
    seen_by_healthz = []

    def healthz(_handler):
        # Every other request waits for this answer: none has arrived while it is being answered.
        seen_by_healthz.append(len(server.requests))
        return answer(200, {"status": "ok"})

    def admin(handler):
        if "Authorization" not in handler.headers:
            return answer(401, {"detail": "Admin access requires MFA"}, {"X-Admin-Auth-Fail-Reason": "mfa_required"})
        return answer(200, {"username": "ops", "role": "admin", "permissions": ["view"]})
    server.script("/healthz", healthz)
    server.script("/readyz", answer(200, {"ok": True, "checks": [
        {"name": "db", "ok": True, "detail": {}},
        {"name": "migrations", "ok": True, "detail": {"migrations_current": True}},
        {"name": "jobs", "ok": True, "detail": {"enabled": True, "age_seconds": 1, "threshold_seconds": 180}}]}))
    server.script("/v1/estimate", answer(200, {"total_before_tax": 1}))
    server.script("/openapi.json", answer(200, {"openapi": "3.1.0"}))
    server.script("/v1/admin/profile", admin)
    server.script("/v1/admin/jobs/status", admin)
    result = module_runner("readiness_probe", dict(ROOMY, base_url=server.base_url, probes=probes(),
                                                   admin=admin_matrix()))
    assert seen_by_healthz == [1]
    paths = [r["path"].split("?", 1)[0] for r in server.requests]
    assert paths[0] == "/healthz" and paths[-1] == "/openapi.json"
    assert paths.count("/openapi.json") == 1
    assert set(paths[1:-1]) == {"/readyz", "/v1/estimate", "/v1/admin/profile", "/v1/admin/jobs/status"}
    assert result["requests_sent"] == len(server.requests)


@pytest.mark.parametrize("precondition", [True, False])
def test_a_liveness_answer_that_fails_its_checks_does_not_stop_the_others(module_runner, server, precondition):
    server.script("/healthz", answer(500, {"status": "error"}))
    server.script("/v1/estimate", answer(200, {"total_before_tax": 1}))
    probe_list = [{"kind": "healthz", "precondition": precondition}, probes()[2]]
    result = module_runner("readiness_probe", dict(ROOMY, base_url=server.base_url, probes=probe_list))
    by_name = records_by_name(result)
    assert by_name["healthz"]["status"] == "fail" and by_name["estimate"]["status"] == "pass"
