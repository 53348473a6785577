"""basic_auth_endpoint run as Ansible runs it, against a scripted HTTP server on loopback: input errors
naming the option, password canaries, pacing and 429 handling, and the jobs-status rules. The
reference-service matrix is covered by tests/integration/http/."""
from __future__ import annotations

import base64
import datetime
import time

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import auth_matrix

from scripted_http import answer
from modrun import records_by_name

CANARY = "canary-Ba-3vT8w"
ROLES = {"admin": {"username": "ops-admin", "password": CANARY + "-admin"},
         "viewer": {"username": "ops-viewer", "password": CANARY + "-viewer"}}


def run(module_runner, args, check_mode=False):
    return module_runner("basic_auth_endpoint", args, check_mode=check_mode)


def fake_admin_api(handler):
    """401 without or with wrong credentials, 403 for the viewer, 200 for the admin; echoes the
    Authorization header in a response header (a server that leaks must not make the module leak)."""
    auth = handler.headers.get("Authorization", "")
    echo = {"X-Echo": auth}
    if not auth:
        return answer(401, {"detail": "Admin access requires MFA"}, dict(echo, **{"X-Admin-Auth-Fail-Reason": "mfa_required"}))
    user, _sep, password = base64.b64decode(auth.split()[1]).decode().partition(":")
    if handler.headers.get("X-Auth-MFA") != "true":
        return answer(401, {"detail": "Admin access requires MFA"}, dict(echo, **{"X-Admin-Auth-Fail-Reason": "mfa_required"}))
    if ROLES.get(user.replace("ops-", ""), {}).get("password") != password:
        return answer(401, {"detail": "Invalid authentication", "you_sent": auth},
                      dict(echo, **{"X-Admin-Auth-Fail-Reason": "invalid_credentials"}))
    if user == "ops-viewer":
        return answer(403, {"title": "Forbidden", "status": 403, "detail": "Forbidden"}, echo,
                      content_type="application/problem+json")
    return answer(200, {"items": [], "total": 0, "echo": auth}, echo)


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("change, needle", [
    ({"roles": {"admin": ROLES["admin"], "viewer": {"username": "ops-viewer"}}}, "roles.viewer has no credentials: password is missing"),
    ({"roles": {"admin": ROLES["admin"], "viewer": {"password": CANARY}}}, "roles.viewer has no credentials: username is missing"),
    ({"roles": {"admin": ROLES["admin"], "viewer": None}}, "roles.viewer must be a dict"),
    ({"roles": {"admin": dict(ROLES["admin"], pasword="x")}}, "roles.admin has unknown keys: pasword"),
    ({"roles": {"anonymous": ROLES["admin"]}}, "'anonymous' is reserved"),
    ({"endpoints": [{"name": "e", "path": "/x", "expect": {"owner": 200}}]},
     "endpoints[0] (name 'e').expect: 'owner' is neither anonymous, wrong_password nor a role"),
    ({"endpoints": [{"name": "e", "path": "/x", "expect": {"admin": "ok"}}]}, "endpoints[0] (name 'e').expect.admin must be an HTTP status"),
    ({"endpoints": [{"name": "e", "path": "/x", "expect": {"admin": 99}}]}, "is not an HTTP status"),
    ({"endpoints": [{"name": "e", "path": "/x", "body": "x", "json_body": {"a": 1}}]},
     "parameters are mutually exclusive: body|json_body found in endpoints"),
    ({"endpoints": [{"name": "e", "path": "/x", "criterion": "Admin", "expect": {"admin": 200}}]}, ".criterion 'Admin' is not a criterion id"),
    ({"endpoints": [{"name": "e", "path": "/x", "criterion": "admin.x", "expect": {"viewer": 403}}]},
     "criterion admin.x needs a role expected to get a 2xx"),
    ({"endpoints": [{"name": "e", "path": "/x", "functional_role": "owner", "expect": {"admin": 200}}]}, "functional_role 'owner'"),
    ({"endpoints": [{"name": "e", "path": "/x"}, {"name": "e", "path": "/y"}]}, "endpoints[1] (name 'e'): the name is used twice"),
    ({"endpoints": [{"name": "e", "path": "/x", "assertions": [{"path": "a", "op": "like", "value": 1}]}]},
     "endpoints[0] (name 'e').assertions[0].op 'like' is not a known operator"),
    ({"endpoints": [{"name": "e", "path": "/x", "assertions": [{"path": "items[", "value": 1}]}]},
     "endpoints[0] (name 'e').assertions[0].path 'items[' is not a valid JMESPath expression"),
    ({"base_url": "ftp://host"}, "base_url: 'ftp://host' is not an http:// or https:// URL"),
    ({"timeout": -5}, "timeout must be greater than 0"),
    ({"rate_limit": {"requests": -1}}, "rate_limit.requests must be 0 (no limit) or more"),
    ({"rate_limit": {"requests": 5, "margin": 5}}, "rate_limit.margin (5) must be smaller than rate_limit.requests (5)"),
    ({"wrong_password_role": "owner"}, "wrong_password_role 'owner' is not one of roles"),
    ({"jobs_status": {"role": "owner"}}, "jobs_status.role 'owner' is not a role of roles"),
    ({"jobs_status": {"max_age_seconds": 0}}, "jobs_status.max_age_seconds must be greater than 0"),
])
def test_bad_input_fails_naming_the_option(module_runner, change, needle):
    args = {"base_url": "http://127.0.0.1:9", "roles": ROLES,
            "endpoints": [{"name": "profile", "path": "/v1/admin/profile", "expect": {"admin": 200}}]}
    args.update(change)
    result = run(module_runner, args)
    assert result.get("failed") is True, result
    assert needle in result["msg"]
    assert CANARY not in result.raw
    assert "Traceback" not in result.raw


def test_ansible_validation_error_leaks_no_password(module_runner):
    result = run(module_runner, {"base_url": "http://127.0.0.1:9", "roles": ROLES, "retries": "lots",
                                 "endpoints": [{"name": "p", "path": "/v1/admin/profile"}]})
    assert result["failed"] is True and "retries" in result["msg"]
    assert CANARY not in result.raw
    assert "ops-admin" in result.raw  # usernames are not secrets and stay readable


# ------------------------------------------------------------------------------------------ matrix

def test_matrix_on_a_well_behaved_server_and_no_password_anywhere(module_runner, server):
    server.script("/v1/admin/export-dead-letter", fake_admin_api)
    server.script("/v1/admin/metrics", fake_admin_api)
    result = run(module_runner, {
        "base_url": server.base_url, "roles": ROLES, "rate_limit": {"requests": 0},
        "endpoints": [
            {"name": "export_dlq", "criterion": "admin.export_dlq", "path": "/v1/admin/export-dead-letter?limit=1",
             "expect": {"admin": 200}, "assertions": [{"path": "@", "op": "type", "value": "object"},
                                                      {"path": "echo", "op": "==", "value": "not this"}]},
            {"name": "metrics", "path": "/v1/admin/metrics", "expect": {"admin": 200, "viewer": 403}},
        ]})
    by_name = records_by_name(result)
    assert by_name["export_dlq:anonymous"]["status"] == "pass"
    assert by_name["export_dlq:anonymous"]["evidence"]["reason"] == "mfa_required"
    assert by_name["export_dlq:wrong_password"]["status"] == "pass"
    assert by_name["export_dlq:admin"]["status"] == "pass"
    assert by_name["metrics:viewer"]["status"] == "pass"
    assert by_name["export_dlq"]["status"] == "fail"  # the echo assertion
    assert CANARY not in result.raw
    for role in ROLES.values():
        token = base64.b64encode(("%s:%s" % (role["username"], role["password"])).encode()).decode()
        assert token not in result.raw
    # the anonymous probe carried neither credentials nor the MFA header
    anonymous = [h for h in server.hits("/v1/admin/export-dead-letter") if "Authorization" not in h["headers"]]
    assert anonymous and all("X-Auth-Mfa" not in h["headers"] and "X-Auth-MFA" not in h["headers"] for h in anonymous)


def test_credentialed_writes_are_skipped_unless_allowed_and_never_in_check_mode(module_runner, server):
    server.script("/v1/admin/cleanup", fake_admin_api)
    args = {"base_url": server.base_url, "roles": ROLES, "rate_limit": {"requests": 0},
            "endpoints": [{"name": "cleanup", "criterion": "admin.cleanup", "path": "/v1/admin/cleanup", "method": "POST",
                           "expect": {"admin": 200, "viewer": 403}}]}
    by_name = records_by_name(run(module_runner, args))
    assert by_name["cleanup:admin"]["status"] == "skipped"
    assert "writes not allowed" in by_name["cleanup:admin"]["summary"]
    assert by_name["cleanup"]["status"] == "skipped"
    assert by_name["cleanup:anonymous"]["status"] == "pass"
    assert all("Authorization" not in h["headers"] or "wrong-" in base64.b64decode(h["headers"]["Authorization"].split()[1]).decode()
               for h in server.hits("/v1/admin/cleanup"))
    before = len(server.hits("/v1/admin/cleanup"))
    by_name = records_by_name(run(module_runner, dict(args, allow_writes=True), check_mode=True))
    assert "not sent in check mode" in by_name["cleanup:admin"]["summary"]
    assert len(server.hits("/v1/admin/cleanup")) == before + 2  # anonymous + wrong password only
    by_name = records_by_name(run(module_runner, dict(args, allow_writes=True)))
    assert by_name["cleanup"]["status"] == "pass"
    assert by_name["cleanup:viewer"]["status"] == "pass"


def test_the_budget_keeps_under_the_limit_and_never_passes_the_deadline(module_runner, server):
    server.script("/v1/admin/profile", fake_admin_api)
    endpoints = [{"name": "profile", "path": "/v1/admin/profile", "expect": {"admin": 200, "viewer": 403}}]
    result = run(module_runner, {"base_url": server.base_url, "roles": ROLES, "rate_limit": {"requests": 3, "margin": 0},
                                 "deadline": 3, "endpoints": endpoints})
    statuses = [r["status"] for r in result["records"]]
    assert statuses.count("error") == 1  # the fourth request would have to wait for the window
    error = [r for r in result["records"] if r["status"] == "error"][0]
    assert "has no room before the deadline" in error["summary"]
    assert len(server.hits("/v1/admin/profile")) == 3
    assert result["rate_limit"]["counted"] == 3 and result["rate_limit"]["budget"] == 3


def test_sends_of_earlier_runs_count_against_the_budget(module_runner, server):
    server.script("/v1/admin/profile", fake_admin_api)
    now = time.time()
    endpoints = [{"name": "profile", "path": "/v1/admin/profile", "expect": {"admin": 200, "wrong_password": "skip"}}]
    result = run(module_runner, {"base_url": server.base_url, "roles": ROLES, "deadline": 3, "endpoints": endpoints,
                                 "rate_limit": {"requests": 3, "margin": 1, "history": [now - 30.0, now - 10.0]}})
    # Two of the budget of two are taken by the earlier run: nothing goes before the deadline.
    assert {r["status"] for r in result["records"]} == {"error"}
    assert server.hits("/v1/admin/profile") == []
    assert result["rate_limit"]["history_in_window"] == 2


def test_persistent_429_is_an_error_record(module_runner, server):
    server.script("/v1/admin/profile", answer(429, {"title": "Too Many Requests"}, content_type="application/problem+json"))
    result = run(module_runner, {"base_url": server.base_url, "roles": ROLES, "retries": 1, "backoff": 0.05,
                                 "rate_limit": {"requests": 0},
                                 "endpoints": [{"name": "profile", "path": "/v1/admin/profile", "expect": {"admin": 200}}]})
    assert {r["status"] for r in result["records"]} == {"error"}
    assert all("rate limited (429)" in r["summary"] for r in result["records"])


def test_read_only_mode_expects_409_before_authentication(module_runner, server):
    conflict = {"title": "Conflict", "status": 409, "detail": "Admin writes temporarily disabled"}
    server.script("/v1/admin/cleanup", answer(409, conflict, content_type="application/problem+json"))
    result = run(module_runner, {"base_url": server.base_url, "roles": ROLES, "rate_limit": {"requests": 0},
                                 "read_only_mode": True,
                                 "endpoints": [{"name": "cleanup", "criterion": "admin.cleanup", "path": "/v1/admin/cleanup",
                                                "method": "POST", "expect": {"admin": 202}}]})
    by_name = records_by_name(result)
    assert by_name["cleanup:read_only"]["criterion"] == "switches.read_only"
    assert by_name["cleanup:read_only"]["status"] == "pass"
    assert by_name["cleanup:anonymous"]["status"] == "pass"
    assert by_name["cleanup"]["status"] == "skipped"


def test_undeclared_read_only_mode_is_one_failure_of_the_read_only_criterion(module_runner, server):
    # read_only_mode false (the default) but every write answers 409 before authentication, as ADMIN_READ_ONLY does
    conflict = {"type": "about:blank", "title": "Conflict", "status": 409, "detail": "Admin writes temporarily disabled",
                "errors": []}
    server.script("/v1/admin/cleanup", answer(409, conflict, content_type="application/problem+json"))
    server.script("/v1/admin/profile", fake_admin_api)
    endpoints = [{"name": "cleanup", "criterion": "admin.cleanup", "path": "/v1/admin/cleanup", "method": "POST",
                  "expect": {"admin": 202, "viewer": 403}},
                 {"name": "profile", "path": "/v1/admin/profile", "expect": {"admin": 200, "viewer": 403}}]
    result = run(module_runner, {"base_url": server.base_url, "roles": ROLES, "rate_limit": {"requests": 0},
                                 "allow_writes": True, "read_only_criterion": "switches.admin_read_only",
                                 "endpoints": endpoints})
    by_name = records_by_name(result)
    failing = [r for r in result["records"] if r["status"] in ("fail", "error")]
    assert [(r["criterion"], r["name"]) for r in failing] == [("switches.admin_read_only", "cleanup:read_only")]
    record = failing[0]
    assert "answered 409 problem+json without credentials, as ops-admin with a wrong password, as role admin, as role" \
           " viewer (Admin writes temporarily disabled)" in record["summary"]
    assert "but read_only_mode is false" in record["summary"]
    assert record["evidence"]["identities"] == ["anonymous", "wrong_password", "admin", "viewer"]
    for name in ("cleanup:anonymous", "cleanup:wrong_password", "cleanup:admin", "cleanup:viewer", "cleanup"):
        assert by_name[name]["status"] == "skipped", by_name[name]["summary"]
    assert "check mode" not in " ".join(r["summary"] for r in result["records"])  # the gate must not read them so
    assert by_name["profile:anonymous"]["status"] == "pass" and by_name["profile:viewer"]["status"] == "pass"
    assert CANARY not in result.raw


# ------------------------------------------------------------------------------------------ jobs status

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
OPTIONS = {"max_age_seconds": 900, "max_consecutive_failures": 1, "required_jobs": [], "ignore_jobs": [],
           "allow_empty": False}


def job(name, age=60, failures=0, error=None, success=True):
    stamp = (NOW - datetime.timedelta(seconds=age)).isoformat() if success else None
    return {"name": name, "last_heartbeat": NOW.isoformat(), "runner_id": "h:1", "last_success_at": stamp,
            "last_error": error, "last_error_at": None, "consecutive_failures": failures}


def failed_paths(jobs, **options):
    results, _jobs = auth_matrix.evaluate_jobs(jobs, dict(OPTIONS, **options), NOW)
    return [r["path"] for r in results if not r["ok"]]


def test_jobs_all_fresh_pass():
    assert failed_paths([job("jobs-runner"), job("outbox-delivery"), job("email-dlq")]) == []


def test_job_stale_or_never_succeeded_fails():
    assert failed_paths([job("outbox-delivery", age=901)]) == ["[?name=='outbox-delivery'].last_success_age_seconds"]
    assert failed_paths([job("email-dlq", success=False, failures=1)]) == ["[?name=='email-dlq'].last_success_at"]


def test_job_failing_every_cycle_fails():
    paths = failed_paths([job("email-dlq", failures=2, error="provider unreachable")])
    assert paths == ["[?name=='email-dlq'].consecutive_failures"]
    results, _jobs = auth_matrix.evaluate_jobs([job("email-dlq", failures=2, error="provider unreachable")], OPTIONS, NOW)
    assert "provider unreachable" in [r for r in results if not r["ok"]][0]["note"]


def test_jobs_empty_list_fails_closed_unless_allowed():
    assert failed_paths([]) == ["length(@)"]
    assert failed_paths([], allow_empty=True) == []


def test_required_and_ignored_jobs():
    assert failed_paths([job("a")], required_jobs=["a", "b"]) == ["[?name=='b']"]
    assert failed_paths([job("a", age=99999)], ignore_jobs=["a"]) == []


def test_jobs_wrong_shape_fails():
    assert failed_paths({"items": []}) == ["@"]


def test_timestamps_with_z_and_naive():
    assert auth_matrix.parse_timestamp("2026-03-01T11:59:00Z") == NOW - datetime.timedelta(seconds=60)
    assert auth_matrix.parse_timestamp("2026-03-01T11:59:00") == NOW - datetime.timedelta(seconds=60)
    assert auth_matrix.parse_timestamp("yesterday") is None
