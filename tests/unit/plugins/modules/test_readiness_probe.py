"""readiness_probe run as Ansible runs it (a separate process), against a scripted HTTP server on
loopback: input errors, modes, retries, check mode, redaction. The reference-service behaviour is
covered by tests/integration/http/."""
from __future__ import annotations

import base64
import json
import threading

import pytest

from scripted_http import answer
from modrun import records_by_name

CANARY = "canary-Rp-7Qx2z"
READY = {"ok": True, "checks": [
    {"name": "db", "ok": True, "ms": 1.0, "detail": {"message": "database reachable"}},
    {"name": "migrations", "ok": True, "ms": 1.0, "detail": {"migrations_current": True, "current_version": "h1",
                                                             "expected_head": "h1", "expected_heads": ["h1"]}},
    {"name": "jobs", "ok": True, "ms": 1.0, "detail": {"enabled": True, "age_seconds": 4.0, "threshold_seconds": 180}},
]}
NOT_READY = {"ok": False, "checks": [
    {"name": "db", "ok": True, "ms": 1.0, "detail": {}},
    {"name": "migrations", "ok": True, "ms": 1.0, "detail": {"migrations_current": True}},
    {"name": "jobs", "ok": False, "ms": 1.0, "detail": {"enabled": True, "message": "job heartbeat missing",
                                                        "threshold_seconds": 180}},
]}


def run(module_runner, args, check_mode=False):
    return module_runner("readiness_probe", args, check_mode=check_mode)


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("args, needle", [
    ({"probes": [{"name": "x", "criterion": "smoke.x", "url": "ftp://example.test/"}]},
     "probes[0] (name 'x').url: 'ftp://example.test/' is not an http:// or https:// URL"),
    ({"base_url": "not a url", "probes": [{"kind": "healthz"}]}, "base_url: "),
    ({"probes": [{"kind": "healthz"}]}, "probes[0] (name 'healthz'): url is required when base_url is not set"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"name": "q", "criterion": "smoke.x", "path": "/",
                                                   "assertions": [{"path": "status", "op": "equals", "value": 1}]}]},
     "probes[0] (name 'q').assertions[0].op 'equals' is not a known operator"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"name": "q", "criterion": "smoke.x", "path": "/",
                                                   "assertions": [{"path": "checks[?name==", "value": 1}]}]},
     "probes[0] (name 'q').assertions[0].path 'checks[?name==' is not a valid JMESPath expression"),
    ({"base_url": "http://127.0.0.1:9", "timeout": -1, "probes": [{"kind": "healthz"}]}, "timeout must be greater than 0"),
    ({"base_url": "http://127.0.0.1:9", "deadline": 0, "probes": [{"kind": "healthz"}]}, "deadline must be greater than 0"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz", "timeout": -3}]},
     "probes[0] (name 'healthz').timeout must be greater than 0"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"name": "c", "path": "/x"}]},
     "probes[0] (name 'c'): criterion is required for kind custom"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"name": "c", "path": "/x", "criterion": "Smoke"}]},
     "probes[0] (name 'c').criterion 'Smoke' is not a criterion id"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz"}, {"kind": "healthz"}]},
     "probes[1] (name 'healthz'): name 'healthz' is already used by probes[0]"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "readyz"}, {"name": "readyz:jobs", "criterion": "a.b", "path": "/"}]},
     "name 'readyz:jobs' is already used"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "tls"}]}, "probes[0] (name 'tls'): kind tls needs an https:// URL"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz", "status_code": "abc"}]},
     "probes[0] (name 'healthz').status_code must be an integer"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz", "status_code": [200, 700]}]},
     "status_code 700 is not an HTTP status"),
    ({"base_url": "http://127.0.0.1:9", "consecutive_successes": 0, "probes": [{"kind": "healthz"}]},
     "consecutive_successes must be 1 or more"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz", "url": "http://h/", "path": "/x"}]},
     "parameters are mutually exclusive: url|path found in probes"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz", "body": "x", "json_body": {"a": 1}}]},
     "parameters are mutually exclusive: body|json_body found in probes"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz", "url_username": "u", "url_password": CANARY,
                                                   "bearer_token": CANARY}]},
     "parameters are mutually exclusive: bearer_token|url_password found in probes"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"name": "c", "criterion": "smoke.c"}]},
     "kind is custom but any of the following are missing: url, path found in probes"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz", "required_headers": [{"name": "A", "regex": "("}]}]},
     "probes[0] (name 'healthz').required_headers[0].regex"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz", "mode": "x"}]}, "probes.mode"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz", "url_password": CANARY}]},
     "missing parameter(s) required by 'url_password': url_username found in probes"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz"}], "admin": {
        "roles": {"admin": {"username": "ops", "password": CANARY}},
        "endpoints": [{"name": "e", "path": "/x", "body": "x", "json_body": {"a": 1}}]}},
     "admin: parameters are mutually exclusive: body|json_body found in endpoints"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz"}, {
        "name": "lead", "criterion": "smoke.lead", "path": "/v1/leads", "method": "POST", "body": "x",
        "body_from": [{"probe": "healthz", "key": "k"}]}]},
     "probes[1] (name 'lead'): body_from fills json_body; it cannot be used with body"),
    ({"base_url": "http://127.0.0.1:9", "probes": [{"kind": "healthz"}, {
        "name": "lead", "criterion": "smoke.lead", "path": "/v1/leads", "method": "POST",
        "body_from": [{"probe": "healthz"}]}]},
     "key"),
])
def test_bad_input_fails_naming_the_option(module_runner, args, needle):
    args = dict(args)
    for probe in args.get("probes", []):
        probe.setdefault("headers", {"Authorization": "Bearer %s" % CANARY})
    result = run(module_runner, args)
    assert result.get("failed") is True, result
    assert needle in result["msg"]
    assert "Traceback" not in result.raw
    assert CANARY not in result.raw


def test_validation_error_of_ansible_itself_leaks_no_secret(module_runner):
    args = {"base_url": "http://ops:%s@127.0.0.1:9/" % CANARY, "retries": "many",
            "headers": {"Cookie": "session=%s" % CANARY},
            "probes": [{"kind": "healthz", "bearer_token": CANARY, "headers": {"Authorization": "Bearer %s" % CANARY}},
                       {"name": "m", "criterion": "metrics.endpoint", "path": "/metrics", "url_username": "u",
                        "url_password": CANARY}]}
    result = run(module_runner, args)
    assert result["failed"] is True and "retries" in result["msg"]
    assert CANARY not in result.raw


# ------------------------------------------------------------------------------------------ secrets

def test_no_secret_anywhere_even_when_the_server_echoes_it(module_runner, server):
    def echo(handler):
        auth = handler.headers.get("Authorization", "")
        return answer(401, {"detail": "bad token", "you_sent": auth, "token": CANARY}, {"X-Echo": auth})
    server.script("/metrics", echo)
    server.script("/v1/x", echo)
    basic = base64.b64encode(("u:%s" % CANARY).encode()).decode()
    probes = [
        {"name": "metrics", "criterion": "metrics.endpoint", "path": "/metrics?token=%s" % CANARY,
         "bearer_token": CANARY, "assertions": [{"path": "you_sent", "op": "==", "value": "x"},
                                                {"path": "token", "op": "==", "value": "y"}],
         "required_headers": [{"name": "X-Echo", "value": "nope"}]},
        {"name": "basic", "criterion": "smoke.x", "path": "/v1/x", "url_username": "u", "url_password": CANARY},
        {"name": "hdr", "criterion": "smoke.y", "path": "/v1/x", "headers": {"X-Api-Key": CANARY}},
    ]
    args = {"base_url": "http://ops:%s@127.0.0.1:%d" % (CANARY, server.port), "retries": 0, "probes": probes}
    result = run(module_runner, args)
    assert result["status"] == "fail"
    assert CANARY not in result.raw
    assert basic not in result.raw
    record = records_by_name(result)["metrics"]
    assert record["evidence"]["status_code"] == 401
    assert "********" in record["evidence"]["url"]
    # the server did get the real token
    assert any(h["headers"].get("Authorization") == "Bearer %s" % CANARY for h in server.hits("/metrics"))


# ------------------------------------------------------------------------------------------ behaviour

def test_builtin_kinds_pass_on_the_real_shapes(module_runner, server):
    headers = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
    server.script("/healthz", answer(200, {"status": "ok"}, headers))
    server.script("/readyz", answer(200, READY))
    server.script("/healthz/backup", answer(200, {"backup_ok": True, "last_backup_utc": "2026-01-01T00:00:00Z", "age_seconds": 60}))
    result = run(module_runner, {"base_url": server.base_url, "probes": [
        {"kind": "healthz"}, {"kind": "readyz"}, {"kind": "backup"}, {"kind": "security_headers"}]})
    by_name = records_by_name(result)
    assert result["status"] == "pass", [r["summary"] for r in result["records"]]
    assert sorted(by_name) == ["backup", "healthz", "readyz", "readyz:jobs", "readyz:migrations", "security_headers"]
    assert by_name["readyz:migrations"]["criterion"] == "migrations.readyz"
    assert by_name["readyz:jobs"]["criterion"] == "jobs.heartbeat"
    assert by_name["readyz:jobs"]["evidence"]["age_seconds"] == 4.0
    assert by_name["security_headers"]["criterion"] == "headers.security"


def test_readyz_names_each_failing_sub_check(module_runner, server):
    server.script("/readyz", answer(503, NOT_READY))
    result = run(module_runner, {"base_url": server.base_url, "probes": [{"kind": "readyz"}]})
    by_name = records_by_name(result)
    assert by_name["readyz"]["status"] == "fail"
    assert "failing checks: jobs (job heartbeat missing)" in by_name["readyz"]["summary"]
    assert by_name["readyz"]["evidence"]["failing_checks"] == ["jobs (job heartbeat missing)"]
    assert by_name["readyz:migrations"]["status"] == "pass"
    assert by_name["readyz:jobs"]["status"] == "fail"


def test_heartbeat_disabled_fails_unless_allowed(module_runner, server):
    checks = [{"name": "db", "ok": True},
              {"name": "migrations", "ok": True, "detail": {"migrations_current": True}},
              {"name": "jobs", "ok": True, "detail": {"enabled": False, "jobs_enabled": False}}]
    body = {"ok": True, "checks": checks}
    server.script("/readyz", answer(200, body))
    strict = records_by_name(run(module_runner, {"base_url": server.base_url, "probes": [{"kind": "readyz"}]}))
    assert strict["readyz:jobs"]["status"] == "fail"
    lenient = records_by_name(run(module_runner, {"base_url": server.base_url,
                                                  "probes": [{"kind": "readyz", "allow_heartbeat_disabled": True}]}))
    assert lenient["readyz:jobs"]["status"] == "pass"


def test_heartbeat_of_an_external_runner_passes_with_jobs_enabled_false(module_runner, server):
    # The real service with JOB_HEARTBEAT_REQUIRED=true and JOBS_ENABLED unset: the heartbeat check runs
    # (enabled) and a runner outside the API process writes the heartbeat; jobs_enabled is only the flag.
    jobs = {"name": "jobs", "ok": True, "ms": 1.0, "detail": {
        "enabled": True, "jobs_enabled": False, "age_seconds": 10.9, "threshold_seconds": 180,
        "last_heartbeat": "2026-03-01T10:00:00+00:00", "runner_id": "runner-1"}}
    server.script("/readyz", answer(200, dict(READY, checks=READY["checks"][:2] + [jobs])))
    result = run(module_runner, {"base_url": server.base_url, "probes": [{"kind": "readyz"}]})
    record = records_by_name(result)["readyz:jobs"]
    assert record["status"] == "pass", record["summary"]
    assert record["evidence"]["jobs_enabled"] is False and record["evidence"]["enabled"] is True
    assert record["evidence"]["runner_id"] == "runner-1"
    assert "10.9s old (limit 180s); jobs_enabled false" in record["summary"]
    # jobs_enabled never gates: a stale heartbeat still fails, whatever the flag says
    stale = dict(jobs, ok=False, detail=dict(jobs["detail"], jobs_enabled=True, age_seconds=400.0))
    server.script("/readyz", answer(503, dict(READY, ok=False, checks=READY["checks"][:2] + [stale])))
    record = records_by_name(run(module_runner, {"base_url": server.base_url, "probes": [{"kind": "readyz"}]}))["readyz:jobs"]
    assert record["status"] == "fail" and "age_seconds < 180 (actual 400.0)" in record["summary"]


ESTIMATE_ANSWER = {"pricing_config_id": "economy", "pricing_config_version": "v1", "config_hash": "sha256:ab",
                   "rate": 35.0, "total_before_tax": 157.5, "breakdown": {"team_size": 1}, "assumptions": []}


def lead_probe(**extra):
    probe = {"name": "lead", "criterion": "smoke.lead", "path": "/v1/leads", "method": "POST", "status_code": 201,
             "json_body": {"name": "Smoke", "estimate_snapshot": {"stale": True}},
             "body_from": [{"probe": "estimate", "key": "estimate_snapshot"}]}
    probe.update(extra)
    return probe


def estimate_probe():
    return {"name": "estimate", "criterion": "smoke.estimate", "path": "/v1/estimate", "method": "POST", "write": False,
            "json_body": {"beds": 2, "baths": 1.5, "cleaning_type": "deep"}}


def test_body_from_sends_the_source_answer_after_the_source_and_the_rest_concurrently(module_runner, server):
    estimate_arrived, healthz_arrived = threading.Event(), threading.Event()

    # Each answers only once the other arrived (30 s of room): they pass only when both were in flight at once.
    def estimate(_handler):
        estimate_arrived.set()
        return answer(200, ESTIMATE_ANSWER if healthz_arrived.wait(30) else {"detail": "healthz not sent meanwhile"})

    def healthz(_handler):
        healthz_arrived.set()
        return answer(200, {"status": "ok" if estimate_arrived.wait(30) else "estimate not sent meanwhile"})
    server.script("/v1/estimate", estimate)
    server.script("/v1/leads", answer(201, {"lead_id": "l-1"}))
    server.script("/healthz", healthz)
    # Not a precondition here: the point is that probes without body_from run side by side with the sources.
    probes = [lead_probe(), {"kind": "healthz", "precondition": False}, estimate_probe()]
    result = run(module_runner, {"base_url": server.base_url, "probes": probes})
    by_name = records_by_name(result)
    assert result["status"] == "pass", [r["summary"] for r in result["records"]]
    assert [r["name"] for r in result["records"]] == ["lead", "healthz", "estimate"]  # probe order, as given
    leads = server.hits("/v1/leads", "POST")
    assert len(leads) == 1
    assert json.loads(leads[0]["body"]) == {"name": "Smoke", "estimate_snapshot": ESTIMATE_ANSWER}
    assert leads[0]["headers"]["Content-Type"] == "application/json"
    paths = [r["path"] for r in server.requests]
    assert paths.index("/v1/estimate") < paths.index("/v1/leads")
    assert by_name["lead"]["evidence"]["body_from"] == [{"probe": "estimate", "key": "estimate_snapshot"}]


def test_body_from_a_failed_source_is_an_error_and_nothing_is_sent(module_runner, server):
    server.script("/v1/estimate", answer(500, {"title": "Internal Server Error"}, content_type="application/problem+json"))
    server.script("/v1/leads", answer(201, {"lead_id": "l-1"}))
    result = run(module_runner, {"base_url": server.base_url, "probes": [lead_probe(), estimate_probe()]})
    by_name = records_by_name(result)
    assert by_name["estimate"]["status"] == "fail"
    lead = by_name["lead"]
    assert lead["status"] == "error"
    assert "not sent: its body_from source 'estimate' did not pass (fail)" in lead["summary"]
    assert lead["evidence"]["sent"] is False
    assert server.hits("/v1/leads") == []


def test_body_from_path_with_nothing_there_is_an_error(module_runner, server):
    server.script("/v1/estimate", answer(200, ESTIMATE_ANSWER))
    probe = lead_probe(body_from=[{"probe": "estimate", "key": "estimate_snapshot", "path": "quote.total"}])
    result = run(module_runner, {"base_url": server.base_url, "probes": [estimate_probe(), probe]})
    lead = records_by_name(result)["lead"]
    assert lead["status"] == "error"
    assert "the answer of 'estimate' has nothing at path 'quote.total' for key 'estimate_snapshot'" in lead["summary"]
    assert server.hits("/v1/leads") == []


def test_body_from_unknown_source_or_cycle_is_an_error_record_even_in_check_mode(module_runner, server):
    server.script("/healthz", answer(200, {"status": "ok"}))
    probes = [{"kind": "healthz"},
              lead_probe(body_from=[{"probe": "estimat", "key": "estimate_snapshot"}]),
              {"name": "a", "criterion": "smoke.a", "path": "/a", "write": False, "body_from": [{"probe": "b", "key": "x"}]},
              {"name": "b", "criterion": "smoke.b", "path": "/b", "write": False, "body_from": [{"probe": "a", "key": "x"}]}]
    for check_mode in (True, False):
        result = run(module_runner, {"base_url": server.base_url, "probes": probes}, check_mode=check_mode)
        by_name = records_by_name(result)
        assert by_name["healthz"]["status"] == "pass"
        assert by_name["lead"]["status"] == "error"
        assert "body_from names 'estimat', not a probe of this call (probes: healthz, lead, a, b)" in by_name["lead"]["summary"]
        for name in ("a", "b"):
            assert by_name[name]["status"] == "error"
            assert "body_from makes a cycle of sources: a -> b -> a" in by_name[name]["summary"]
        assert result["status"] == "error"
    assert [r["path"] for r in server.requests] == ["/healthz", "/healthz"]


def test_body_from_write_probe_is_only_planned_in_check_mode(module_runner, server):
    server.script("/v1/estimate", answer(200, ESTIMATE_ANSWER))
    result = run(module_runner, {"base_url": server.base_url, "probes": [estimate_probe(), lead_probe()]},
                 check_mode=True)
    by_name = records_by_name(result)
    assert by_name["estimate"]["status"] == "pass"
    assert by_name["lead"]["status"] == "skipped" and "planned, not sent in check mode" in by_name["lead"]["summary"]
    assert server.hits("/v1/leads") == []


def test_write_probe_is_only_planned_in_check_mode(module_runner, server):
    server.script("/v1/leads", answer(201, {"lead_id": "x"}))
    server.script("/v1/estimate", answer(200, {"pricing_config_id": "economy", "total_before_tax": 157.5}))
    probes = [{"name": "lead", "criterion": "smoke.lead", "path": "/v1/leads", "method": "POST", "json_body": {"a": 1},
               "status_code": 201},
              {"name": "estimate", "criterion": "smoke.estimate", "path": "/v1/estimate", "method": "POST", "write": False,
               "json_body": {"beds": 2, "baths": 1.5, "cleaning_type": "deep"},
               "assertions": [{"path": "total_before_tax", "op": ">", "value": 0}]}]
    result = run(module_runner, {"base_url": server.base_url, "probes": probes}, check_mode=True)
    by_name = records_by_name(result)
    assert by_name["lead"]["status"] == "skipped"
    assert "planned, not sent in check mode" in by_name["lead"]["summary"]
    assert by_name["estimate"]["status"] == "pass"
    assert server.hits("/v1/leads") == []
    assert len(server.hits("/v1/estimate", "POST")) == 1
    result = run(module_runner, {"base_url": server.base_url, "probes": probes})
    assert records_by_name(result)["lead"]["status"] == "pass"
    assert len(server.hits("/v1/leads", "POST")) == 1


def test_check_mode_consecutive_successes_catch_flapping(module_runner, server):
    server.script("/healthz", answer(200, {"status": "ok"}), answer(503, {"status": "down"}), answer(200, {"status": "ok"}))
    result = run(module_runner, {"base_url": server.base_url, "consecutive_successes": 3, "interval": 0.05,
                                 "probes": [{"kind": "healthz"}]})
    record = result["records"][0]
    assert record["status"] == "fail"
    assert "flapping" in record["summary"]
    assert record["evidence"]["evaluations"] == 2
    server.script("/healthz", answer(200, {"status": "ok"}))
    result = run(module_runner, {"base_url": server.base_url, "consecutive_successes": 3, "interval": 0.05,
                                 "probes": [{"kind": "healthz"}]})
    assert result["records"][0]["status"] == "pass"
    assert result["records"][0]["evidence"]["evaluations"] == 3


def test_wait_mode_polls_until_ready(module_runner, server):
    server.script("/readyz", answer(503, NOT_READY), answer(503, NOT_READY), answer(200, READY))
    result = run(module_runner, {"base_url": server.base_url, "mode": "wait", "interval": 0.1, "deadline": 10,
                                 "probes": [{"kind": "readyz"}]})
    assert result["status"] == "pass"
    assert records_by_name(result)["readyz"]["evidence"]["evaluations"] == 3


def test_wait_mode_gives_up_at_the_deadline(module_runner, server):
    server.script("/readyz", answer(503, NOT_READY))
    result = run(module_runner, {"base_url": server.base_url, "mode": "wait", "interval": 0.2, "deadline": 1.5,
                                 "probes": [{"kind": "readyz"}]})
    # Gave up: no more polls than one every interval within the deadline (and the first at once) could make.
    assert 1 <= len(server.hits("/readyz")) <= 1 + 1.5 / 0.2
    record = records_by_name(result)["readyz"]
    assert record["status"] == "fail"
    assert "deadline" in record["summary"]
    assert record["evidence"]["evaluations"] >= 3


def test_service_down_in_wait_mode_fails_liveness_and_sends_nothing_else(module_runner, closed_port):
    # Wait mode polls until the deadline: 8 s leaves ample room for the first request on a loaded machine.
    result = run(module_runner, {"base_url": "http://127.0.0.1:%d" % closed_port, "mode": "wait", "deadline": 8,
                                 "interval": 0.5, "backoff": 0.1, "probes": [{"kind": "healthz"}, {"kind": "readyz"}]})
    by_name = records_by_name(result)
    assert by_name["healthz"]["status"] == "fail"
    assert "the service refuses connections" in by_name["healthz"]["summary"]
    assert by_name["readyz"]["status"] == "error" and by_name["readyz"]["evidence"]["sent"] is False
    assert "not sent: the precondition probe 'healthz'" in by_name["readyz"]["summary"]


def test_a_429_under_the_budget_is_waited_out_for_the_window_never_counted(module_runner, server):
    server.script("/v1/estimate", answer(429, {"title": "Too Many Requests"}, content_type="application/problem+json"))
    probe = {"name": "estimate", "criterion": "smoke.estimate", "path": "/v1/estimate", "method": "POST", "write": False,
             "json_body": {}}
    # With the budget (the defaults: the real limit), a 429 means another client shares the key: the window (60 s)
    # cannot be waited out within a 3 s deadline, so the record is an error saying so, not a fail.
    result = run(module_runner, {"base_url": server.base_url, "deadline": 3, "probes": [probe]})
    record = result["records"][0]
    assert record["status"] == "error"
    assert "another client shares the service's rate-limit key" in json.dumps(record)
    assert result["rate_limit"]["throttled"] == 1 and result["rate_limit"]["counted"] == 0
    assert len(server.hits("/v1/estimate")) == 1


def test_persistent_429_is_an_error_and_a_passing_retry_is_a_pass(module_runner, server):
    server.script("/v1/estimate", answer(429, {"title": "Too Many Requests"}, content_type="application/problem+json"))
    probe = {"name": "estimate", "criterion": "smoke.estimate", "path": "/v1/estimate", "method": "POST", "write": False,
             "json_body": {}}
    # A service without a known limit (rate_limit.requests 0): a 429 is retried with backoff like a transport error.
    unlimited = {"requests": 0}
    result = run(module_runner, {"base_url": server.base_url, "retries": 2, "backoff": 0.05, "probes": [probe],
                                 "rate_limit": unlimited})
    record = result["records"][0]
    assert record["status"] == "error"
    assert "rate limited (429)" in record["summary"]
    assert record["evidence"]["attempts"] == 3
    server.script("/v1/estimate", answer(429), answer(200, {"total_before_tax": 1}))
    result = run(module_runner, {"base_url": server.base_url, "retries": 2, "backoff": 0.05, "probes": [probe],
                                 "rate_limit": unlimited})
    assert result["records"][0]["status"] == "pass"
    assert result["records"][0]["evidence"]["attempts"] == 2


def test_latency_budget(module_runner, server):
    server.script("/healthz", answer(200, {"status": "ok"}, delay=0.3))
    result = run(module_runner, {"base_url": server.base_url, "probes": [{"kind": "healthz", "max_latency_ms": 100}]})
    record = result["records"][0]
    assert record["status"] == "fail"
    assert record["evidence"]["failed"][0]["path"] == "latency_ms"
    assert record["evidence"]["failed"][0]["actual"] >= 250
    # Judged on three answers (the default latency_samples), every one over the budget.
    assert len(server.hits("/healthz")) == 3 and len(record["evidence"]["latency_samples_ms"]) == 3
    assert "every one of 3 answers was over the 100 ms budget" in record["summary"]


def test_https_redirect(module_runner, server):
    probe = {"kind": "https_redirect", "url": server.base_url + "/"}
    server.script("/", answer(301, b"", {"Location": "https://api.example.test/"}))
    assert run(module_runner, {"probes": [probe]})["records"][0]["status"] == "pass"
    server.script("/", answer(302, b"", {"Location": "https://api.example.test/"}))
    assert run(module_runner, {"probes": [probe]})["records"][0]["status"] == "fail"
    server.script("/", answer(301, b"", {"Location": "http://api.example.test/"}))
    record = run(module_runner, {"probes": [probe]})["records"][0]
    assert record["status"] == "fail" and "header:Location" in record["summary"]
    server.script("/", answer(200, "<html></html>", content_type="text/html"))
    assert run(module_runner, {"probes": [probe]})["records"][0]["status"] == "fail"


def test_https_redirect_url_is_derived_from_an_https_base_url(module_runner, closed_port):
    # the derived http:// URL is refused here: the point is the URL the module chose
    port = closed_port
    result = run(module_runner, {"base_url": "https://127.0.0.1:%d" % port, "retries": 0,
                                 "probes": [{"kind": "https_redirect"}]})
    assert result["records"][0]["evidence"]["url"] == "http://127.0.0.1:%d/" % port


def test_non_json_body_fails_json_assertions_with_a_reason(module_runner, server):
    server.script("/x", answer(200, "<html>maintenance</html>", content_type="text/html"))
    result = run(module_runner, {"base_url": server.base_url, "probes": [
        {"name": "x", "criterion": "smoke.x", "path": "/x", "assertions": [{"path": "ok", "op": "==", "value": True}]}]})
    failed = result["records"][0]["evidence"]["failed"]
    assert failed[0]["note"].startswith("body is not JSON")
    assert "maintenance" in result["records"][0]["evidence"]["body_excerpt"]


def test_probes_run_concurrently_in_one_call(module_runner, server):
    server.script("/slow", answer(200, {"status": "ok"}, delay=0.5))
    probes = [{"name": "p%d" % i, "criterion": "smoke.x", "path": "/slow"} for i in range(10)]
    result = run(module_runner, {"base_url": server.base_url, "concurrency": 10, "probes": probes})
    assert result["status"] == "pass"
    # Concurrent: at least half of the ten 0.5 s answers were being served at the same moment.
    assert server.max_in_flight >= 5


def test_advisory_probe_does_not_block(module_runner, server):
    server.script("/openapi.json", answer(404, {"detail": "Not Found"}))
    result = run(module_runner, {"base_url": server.base_url, "probes": [
        {"name": "docs", "criterion": "smoke.docs", "path": "/openapi.json", "blocking": False}]})
    assert result["records"][0]["status"] == "fail"
    assert result["records"][0]["blocking"] is False
