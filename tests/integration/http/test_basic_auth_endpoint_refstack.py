"""basic_auth_endpoint against the reference service: the authorization matrix of the admin API as it
really works (Basic Auth + X-Auth-MFA, 401 reasons, 403/409 problem+json, rate limit 30/min), each
relevant fault caught, passwords never printed."""
from __future__ import annotations

import base64
import uuid

import pytest

from modrun import records_by_name

pytestmark = pytest.mark.integration

ALL = ("owner", "admin", "dispatcher", "accountant", "viewer")
READS = [
    {"name": "export_dlq", "criterion": "admin.export_dlq", "path": "/v1/admin/export-dead-letter?limit=1",
     "expect": {"owner": 200, "admin": 200, "viewer": 200},
     "assertions": [{"path": "@", "op": "type", "value": "object"}, {"path": "items", "op": "type", "value": "array"},
                    {"path": "total", "op": "type", "value": "integer"}]},
    {"name": "outbox_dlq", "criterion": "admin.outbox_dlq", "path": "/v1/admin/outbox/dead-letter?limit=1",
     "expect": {"admin": 200, "viewer": 200}, "assertions": [{"path": "@", "op": "type", "value": "array"}]},
    {"name": "metrics_csv", "criterion": "smoke.metrics_csv", "path": "/v1/admin/metrics?format=csv",
     "expect": {"admin": 200, "accountant": 200, "viewer": 403}, "content_type": "text/csv", "body_regex": "^range_start,"},
    {"name": "queue_photos", "criterion": "smoke.queue", "path": "/v1/admin/queue/photos?status=pending&limit=1",
     "expect": {"dispatcher": 200, "viewer": 403},
     "assertions": [{"path": "@", "op": "type", "value": "object"}, {"path": "pending_count", "op": "type", "value": "integer"}]},
    {"name": "profile", "path": "/v1/admin/profile", "expect": {"viewer": 200},
     "assertions": [{"path": "role", "op": "==", "value": "viewer"}]},
]
WRITES = [
    {"name": "cleanup", "criterion": "admin.cleanup", "path": "/v1/admin/cleanup", "method": "POST",
     "expect": {"admin": 202, "accountant": 202, "dispatcher": 403, "viewer": 403},
     "assertions": [{"path": "deleted", "op": "type", "value": "integer"}]},
    {"name": "email_scan", "criterion": "admin.email_scan", "path": "/v1/admin/email-scan", "method": "POST",
     "expect": {"admin": 202, "accountant": 403, "viewer": 403},
     "assertions": [{"path": "sent", "op": "type", "value": "integer"}, {"path": "skipped", "op": "type", "value": "integer"}]},
    {"name": "retention", "criterion": "admin.retention", "path": "/v1/admin/retention/cleanup", "method": "POST",
     "expect": {"admin": 200, "viewer": 403},
     "assertions": [{"path": "leads_anonymized", "op": "type", "value": "integer"},
                    {"path": "invoices_detached", "op": "type", "value": "integer"}]},
]


def roles_of(stack, names=ALL):
    return {role: {"username": stack.credentials[role][0], "password": stack.credentials[role][1]} for role in names}


def assert_no_password(stack, result):
    for user, password in stack.credentials.values():
        assert password not in result.raw
        assert base64.b64encode(("%s:%s" % (user, password)).encode()).decode() not in result.raw
    assert "Traceback" not in result.raw


def run(module_runner, stack, endpoints, check_mode=False, **extra):
    args = {"base_url": stack.base_url, "roles": roles_of(stack), "endpoints": endpoints, "retries": 1, "backoff": 0.2}
    args.update(extra)
    result = module_runner("basic_auth_endpoint", args, check_mode=check_mode)
    assert_no_password(stack, result)
    return result


def test_healthy_matrix_passes_and_credentialed_writes_are_only_planned(module_runner, healthy_stack):
    result = run(module_runner, healthy_stack, READS + WRITES, jobs_status={"max_age_seconds": 3600})
    by_name = records_by_name(result)
    bad = [r["summary"] for r in result["records"] if r["status"] not in ("pass", "skipped")]
    assert result["status"] == "pass", bad
    assert by_name["metrics_csv:viewer"]["evidence"]["reason"] == "forbidden_permission"
    assert by_name["export_dlq:anonymous"]["evidence"]["reason"] == "mfa_required"
    assert by_name["export_dlq:wrong_password"]["evidence"]["reason"] == "invalid_credentials"
    assert by_name["jobs_status"]["criterion"] == "jobs.status" and by_name["jobs_status"]["status"] == "pass"
    skipped = sorted(r["name"] for r in result["records"] if r["status"] == "skipped")
    expected_skips = []
    for endpoint in WRITES:
        expected_skips += ["%s:%s" % (endpoint["name"], role) for role in endpoint["expect"]] + [endpoint["name"]]
    assert skipped == sorted(expected_skips)
    # anonymous and wrong-password probes of the writes were sent and refused
    assert by_name["cleanup:anonymous"]["status"] == "pass"
    assert by_name["retention:wrong_password"]["evidence"]["status_code"] == 401
    criteria = {r["criterion"] for r in result["records"]}
    assert {"auth.anonymous", "auth.wrong_password", "auth.roles", "admin.export_dlq", "admin.outbox_dlq",
            "smoke.metrics_csv", "smoke.queue", "jobs.status"} <= criteria


def test_allowed_writes_run_and_their_answers_have_the_real_shapes(module_runner, healthy_stack):
    result = run(module_runner, healthy_stack, WRITES, allow_writes=True)
    by_name = records_by_name(result)
    assert result["status"] == "pass", [r["summary"] for r in result["records"] if r["status"] != "pass"]
    assert by_name["cleanup"]["criterion"] == "admin.cleanup" and by_name["cleanup"]["evidence"]["status_code"] == 202
    assert by_name["retention"]["evidence"]["status_code"] == 200
    assert by_name["email_scan:accountant"]["evidence"]["status_code"] == 403


def test_check_mode_never_sends_credentialed_writes(module_runner, healthy_stack):
    result = run(module_runner, healthy_stack, WRITES, check_mode=True, allow_writes=True)
    criteria = ("auth.roles", "admin.cleanup", "admin.email_scan", "admin.retention")
    writes = [r for r in result["records"] if r["criterion"] in criteria]
    assert writes and all(r["status"] == "skipped" and "check mode" in r["summary"] for r in writes)


def test_admin_open_is_caught_for_every_endpoint(module_runner, healthy_stack):
    healthy_stack.set_fault("admin_open")
    result = run(module_runner, healthy_stack, READS + WRITES)
    anonymous = [r for r in result["records"] if r["criterion"] == "auth.anonymous"]
    assert len(anonymous) == len(READS + WRITES)
    for record in anonymous:
        assert record["status"] == "fail"
        assert "answered WITHOUT credentials" in record["summary"]
        assert record["evidence"]["status_code"] in (200, 202)


def test_weak_role_allowed_is_caught(module_runner, healthy_stack):
    healthy_stack.set_fault("weak_role_allowed")
    by_name = records_by_name(run(module_runner, healthy_stack, READS))
    for name in ("metrics_csv:viewer", "queue_photos:viewer"):
        assert by_name[name]["status"] == "fail"
        assert "status_code in [403] (actual 200)" in by_name[name]["summary"]
    assert by_name["export_dlq:viewer"]["status"] == "pass"


def test_read_only_switch(module_runner, healthy_stack):
    # declared off, but the service refuses writes (409 before authentication): one failure per write endpoint,
    # under the read-only criterion; the authentication checks of those answers are not judged, never failed
    healthy_stack.set_fault("read_only")
    # The writes and one read: 18 requests, inside one rate-limit window.
    result = run(module_runner, healthy_stack, WRITES + READS[:1], allow_writes=True)
    by_name = records_by_name(result)
    failed = sorted(r["name"] for r in result["records"] if r["status"] not in ("pass", "skipped"))
    assert failed == ["cleanup:read_only", "email_scan:read_only", "retention:read_only"]
    record = by_name["cleanup:read_only"]
    assert record["criterion"] == "switches.read_only" and record["status"] == "fail"
    assert "read-only mode is on) but read_only_mode is false" in record["summary"]
    assert record["evidence"]["detail"] == "Admin writes temporarily disabled"
    assert record["evidence"]["identities"] == ["anonymous", "wrong_password", "admin", "accountant", "dispatcher", "viewer"]
    for name in ("cleanup:anonymous", "cleanup:wrong_password", "retention:viewer", "email_scan:admin"):
        assert by_name[name]["status"] == "skipped", by_name[name]
        assert by_name[name]["evidence"]["skip_reason"] == "read_only_refused"
    assert by_name["cleanup"]["status"] == "skipped" and "cleanup:read_only" in by_name["cleanup"]["summary"]
    assert {r["criterion"] for r in result["records"] if r["status"] == "fail"} == {"switches.read_only"}
    assert by_name["export_dlq:anonymous"]["status"] == "pass"  # reads still authenticate
    # declared on and on: 409 problem+json before authentication (a new session: the first run filled the window)
    healthy_stack.fresh_rate_window()
    result = run(module_runner, healthy_stack, WRITES + READS[:1], read_only_mode=True, allow_writes=True)
    by_name = records_by_name(result)
    assert result["status"] == "pass", [r["summary"] for r in result["records"] if r["status"] not in ("pass", "skipped")]
    assert by_name["cleanup:read_only"]["criterion"] == "switches.read_only"
    assert by_name["cleanup:admin"]["evidence"]["status_code"] == 409
    assert by_name["cleanup"]["status"] == "skipped"
    assert by_name["export_dlq"]["status"] == "pass"  # reads stay open


def test_read_only_declared_but_off_fails(module_runner, healthy_stack):
    result = run(module_runner, healthy_stack, WRITES, read_only_mode=True)
    record = records_by_name(result)["cleanup:read_only"]
    assert record["status"] == "fail"
    assert "read-only mode is declared" in record["summary"]
    assert record["evidence"]["status_code"] == 401


def test_wrong_shape_is_caught(module_runner, healthy_stack):
    healthy_stack.set_fault("wrong_shape")
    record = records_by_name(run(module_runner, healthy_stack, READS))["export_dlq"]
    assert record["status"] == "fail"
    assert "@ type 'object' (actual 'array')" in record["summary"]


def test_failing_job_is_caught(module_runner, healthy_stack):
    healthy_stack.set_fault("job_failing", job="email-dlq", cycles=2)
    result = run(module_runner, healthy_stack, [], jobs_status={"max_age_seconds": 3600})
    record = records_by_name(result)["jobs_status"]
    assert record["status"] == "fail"
    assert "[?name=='email-dlq'].consecutive_failures <= 1 (actual 2)" in record["summary"]
    assert "simulated failure" in record["summary"]


def test_jobs_before_any_run_fail_closed(module_runner, healthy_stack):
    healthy_stack.set_fault("heartbeat_missing")
    record = records_by_name(run(module_runner, healthy_stack, [], jobs_status={}))["jobs_status"]
    assert record["status"] == "fail" and "no job has reported yet" in record["summary"]


def test_service_down_gives_error_records_quickly(module_runner, healthy_stack):
    healthy_stack.set_fault("service_down")
    result = run(module_runner, healthy_stack, READS[:2], deadline=30)
    assert {r["status"] for r in result["records"]} == {"error"}
    # Ended by the refusals, not by waiting out the deadline.
    assert all("deadline" not in r["summary"] for r in result["records"]), [r["summary"] for r in result["records"]]


# ------------------------------------------------------------------------------------------ rate limit

def fresh_client():
    """127.0.0.1 is a trusted proxy of the stack: X-Forwarded-For names the client the limit counts, and the ledger
    keeps that client's sends apart (rate_limit.client)."""
    address = "10.%d.%d.%d" % tuple(uuid.uuid4().bytes[:3])
    return {"extra_headers": {"X-Auth-MFA": "true", "X-Forwarded-For": address}, "anonymous_extra_headers": True,
            "rate_limit": {"client": address}}


def test_the_budget_stays_under_the_real_rate_limit(module_runner, throttled_stack):
    endpoints = [dict(READS[0], name="export_dlq_%d" % i, expect={"admin": 200, "viewer": 200}) for i in range(5)]
    endpoints += [dict(READS[1], name="outbox_%d" % i) for i in range(3)]  # 8 x 4 = 32 requests
    result = run(module_runner, throttled_stack, endpoints, deadline=6, **fresh_client())
    statuses = [r["status"] for r in result["records"]]
    answered = [r for r in result["records"] if r["evidence"].get("status_code")]
    assert all(r["evidence"]["status_code"] != 429 for r in answered)
    # The budget is the limit less the margin: 29 go at once, the rest would wait past the deadline for the window.
    assert result["requests_sent"] == 29 and result["rate_limit"]["counted"] == 29
    errors = [r for r in result["records"] if r["status"] == "error"]
    assert errors and all("has no room before the deadline" in r["summary"] for r in errors)
    auth = [r for r in result["records"] if r["criterion"].startswith("auth.")]
    assert [r["status"] for r in auth].count("error") == 32 - 29
    assert statuses.count("fail") == 0


def test_the_next_run_waits_for_the_window_instead_of_drawing_a_429(module_runner, throttled_stack):
    """Two runs back to back as one client: the ledger hands the second the first's sends, so it waits until the
    oldest leaves the window and every request is decided."""
    client = fresh_client()
    first_endpoints = [dict(READS[0], name="export_dlq_%d" % i, expect={"admin": 200, "viewer": 200}) for i in range(6)]
    first = run(module_runner, throttled_stack, first_endpoints, **client)  # 24 requests of the budget of 29
    assert {r["status"] for r in first["records"]} == {"pass"}, [r["summary"] for r in first["records"]]
    second_endpoints = [dict(READS[1], name="outbox_%d" % i) for i in range(2)]  # 8 more: 3 have to wait
    second = run(module_runner, throttled_stack, second_endpoints, deadline=120, **client)
    assert {r["status"] for r in second["records"]} == {"pass"}, [r["summary"] for r in second["records"]]
    report = second["rate_limit"]
    assert report["history_in_window"] == 24 and report["counted"] == 8 and report["throttled"] == 0
    # It waited, but never longer than one window (60 s) after the first run's oldest send.
    assert 0 < report["waited_s"] <= 60.0 + 1.0


def test_without_a_budget_a_persistent_429_is_an_error_never_a_verdict(module_runner, throttled_stack):
    endpoints = [dict(READS[0], name="export_dlq_%d" % i, expect={"admin": 200, "viewer": 200}) for i in range(9)]
    client = fresh_client()
    client["rate_limit"]["requests"] = 0  # a limit nobody told the module about
    result = run(module_runner, throttled_stack, endpoints, retries=2, backoff=0.2, deadline=10, concurrency=4, **client)
    throttled = [r for r in result["records"] if r["evidence"].get("error") == "rate limited"]
    assert throttled, [r["summary"] for r in result["records"]]
    assert all(r["status"] == "error" and "rate limited (429)" in r["summary"] for r in throttled)
    decided = [r for r in result["records"] if r not in throttled]
    assert all(r["status"] == "pass" for r in decided)
    assert len(decided) >= 25  # 30 requests were allowed, a few of them functional records reuse
