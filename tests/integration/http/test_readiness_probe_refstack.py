"""readiness_probe against the reference service (real HTTP, real PostgreSQL, real job runner): healthy
-> pass, each fault -> fail or error naming the probe and its evidence, a service that is down -> liveness fails
and nothing else is sent, wait mode for a deploy."""
from __future__ import annotations

import threading

import pytest

from modrun import records_by_name
from reference_service.refhelpers import query

pytestmark = pytest.mark.integration

ESTIMATE = {"beds": 2, "baths": 1.5, "cleaning_type": "deep"}


def probes(stack):
    """The probes a verify role would send (the built-in kinds plus smoke calls)."""
    return [
        {"kind": "healthz"},
        {"kind": "readyz"},
        {"kind": "backup"},
        {"kind": "security_headers"},
        {"name": "estimate", "criterion": "smoke.estimate", "path": "/v1/estimate", "method": "POST", "write": False,
         "json_body": ESTIMATE, "assertions": [{"path": "pricing_config_id", "op": "==", "value": "economy"},
                                               {"path": "total_before_tax", "op": "type", "value": "number"},
                                               {"path": "total_before_tax", "op": ">", "value": 0}]},
        {"name": "validation", "criterion": "smoke.validation", "path": "/v1/leads", "method": "POST", "write": False,
         "json_body": {"name": "x"}, "status_code": 422, "content_type": "application/problem+json",
         "assertions": [{"path": "errors[].field", "op": "contains", "value": "address"}]},
        {"name": "docs", "criterion": "smoke.docs", "path": "/openapi.json", "blocking": False,
         "assertions": [{"path": "openapi", "op": "regex", "value": r"^3\."}]},
        {"name": "web_root", "criterion": "web.root", "path": "/", "content_type": "text/html"},
        {"name": "metrics", "criterion": "metrics.endpoint", "path": "/metrics", "bearer_token": stack.metrics_token,
         "blocking": False, "content_type": "text/plain"},
        {"name": "metrics_closed", "criterion": "metrics.endpoint", "path": "/metrics", "status_code": 401,
         "blocking": False},
    ]


def run(module_runner, stack, check_mode=False, **extra):
    args = {"base_url": stack.base_url, "probes": probes(stack), "retries": 1, "backoff": 0.2, "deadline": 20}
    args.update(extra)
    result = module_runner("readiness_probe", args, check_mode=check_mode)
    assert stack.metrics_token not in result.raw
    assert "Traceback" not in result.raw
    return result


def test_healthy_service_passes(module_runner, healthy_stack):
    result = run(module_runner, healthy_stack, check_mode=True)
    by_name = records_by_name(result)
    assert result["status"] == "pass", [r["summary"] for r in result["records"] if r["status"] != "pass"]
    assert by_name["readyz:migrations"]["evidence"]["current_version"] == healthy_stack.expected_head
    assert by_name["readyz:jobs"]["evidence"]["threshold_seconds"] == 180
    assert by_name["backup"]["evidence"]["age_seconds"] < 3600
    assert result["counts"] == {"pass": len(result["records"]), "fail": 0, "error": 0, "skipped": 0}


LEAD = {"name": "Release Gate Smoke", "phone": "+1 555 0100", "email": "smoke@example.com", "postal_code": "M5V 2T6",
        "address": "1 Smoke Test Street", "preferred_dates": ["2030-01-01"], "structured_inputs": ESTIMATE}
ESTIMATE_PROBE = {"name": "estimate", "criterion": "smoke.estimate", "path": "/v1/estimate", "method": "POST",
                  "write": False, "json_body": ESTIMATE}


def lead_probe(**extra):
    probe = {"name": "lead", "criterion": "smoke.lead", "path": "/v1/leads", "method": "POST", "json_body": LEAD,
             "body_from": [{"probe": "estimate", "key": "estimate_snapshot"}], "status_code": 201,
             "assertions": [{"path": "lead_id", "op": "regex", "value": "^[0-9a-f-]{36}$"}]}
    probe.update(extra)
    return probe


def test_lead_is_a_write_planned_in_check_mode_and_created_otherwise(module_runner, healthy_stack):
    # The lead's estimate_snapshot is the estimate probe's own answer: the whole /v1/estimate response.
    args = {"base_url": healthy_stack.base_url, "probes": [lead_probe(), ESTIMATE_PROBE]}
    planned = records_by_name(module_runner("readiness_probe", args, check_mode=True))
    assert planned["lead"]["status"] == "skipped" and planned["estimate"]["status"] == "pass"
    created = module_runner("readiness_probe", args)
    by_name = records_by_name(created)
    assert by_name["lead"]["status"] == "pass", by_name["lead"]["summary"]
    assert by_name["lead"]["evidence"]["status_code"] == 201
    assert by_name["lead"]["evidence"]["body_from"] == [{"probe": "estimate", "key": "estimate_snapshot"}]


def test_partial_snapshot_gets_the_422_naming_each_missing_field(module_runner, healthy_stack):
    # What the old default payload got from the real service once writes were allowed.
    partial = dict(LEAD, estimate_snapshot={"pricing_config_id": "economy", "total_before_tax": 157.5})
    probe = lead_probe(json_body=partial, body_from=None)
    record = module_runner("readiness_probe", {"base_url": healthy_stack.base_url, "probes": [probe]})["records"][0]
    assert record["status"] == "fail"
    assert "status_code in [201] (actual 422)" in record["summary"]
    for field in ("estimate_snapshot.pricing_config_version", "estimate_snapshot.config_hash", "estimate_snapshot.rate"):
        assert field in record["evidence"]["body_excerpt"]


def test_lead_of_a_broken_estimate_is_inconclusive_and_not_sent(module_runner, healthy_stack):
    healthy_stack.set_fault("estimate_broken")
    before = healthy_stack_leads(healthy_stack)
    result = module_runner("readiness_probe", {"base_url": healthy_stack.base_url, "probes": [ESTIMATE_PROBE, lead_probe()]})
    by_name = records_by_name(result)
    assert by_name["estimate"]["status"] == "fail"
    assert by_name["lead"]["status"] == "error"
    assert "its body_from source 'estimate' did not pass (fail)" in by_name["lead"]["summary"]
    assert healthy_stack_leads(healthy_stack) == before


def healthy_stack_leads(stack):
    return query(stack, "SELECT count(*) FROM leads")[0][0]


def test_heartbeat_passes_with_jobs_enabled_unset_like_the_real_service(module_runner, healthy_stack, tmp_path):
    # JOB_HEARTBEAT_REQUIRED=true, JOBS_ENABLED unset: jobs_enabled false, the heartbeat (from the job runner
    # outside the API process) fresh. A pass, with the flag in the evidence.
    service = healthy_stack.extra_service(tmp_path, drop=["JOBS_ENABLED"])
    try:
        result = module_runner("readiness_probe", {"base_url": service.base_url, "probes": [{"kind": "readyz"}]})
    finally:
        service.stop()
    by_name = records_by_name(result)
    assert result["status"] == "pass", [r["summary"] for r in result["records"]]
    jobs = by_name["readyz:jobs"]
    assert jobs["evidence"]["enabled"] is True and jobs["evidence"]["jobs_enabled"] is False
    assert jobs["evidence"]["runner_id"] and jobs["evidence"]["age_seconds"] < 180
    # The stack's own .env sets JOBS_ENABLED=true, as the production examples do: the same pass.
    result = module_runner("readiness_probe", {"base_url": healthy_stack.base_url, "probes": [{"kind": "readyz"}]})
    jobs = records_by_name(result)["readyz:jobs"]
    assert jobs["status"] == "pass" and jobs["evidence"]["jobs_enabled"] is True


# fault -> {record name: (status, text the summary must contain)}
FAULTS = [
    ("readyz_db_down", {}, {"readyz": ("fail", "failing checks: db (database check failed)"),
                            "readyz:migrations": ("fail", "migrations_current == true (actual false)"),
                            "readyz:jobs": ("fail", "job heartbeat check failed")}),
    ("heartbeat_stale", {"age_seconds": 3600}, {"readyz": ("fail", "jobs (heartbeat 36"),
                                                "readyz:jobs": ("fail", "age_seconds < 180 (actual 3600")}),
    ("heartbeat_missing", {}, {"readyz": ("fail", "jobs (job heartbeat missing)"),
                               "readyz:jobs": ("fail", "job heartbeat missing")}),
    ("backup_marker_stale", {"age_hours": 30}, {"backup": ("fail", "backup too old")}),
    ("backup_marker_missing", {}, {"backup": ("fail", "backup marker missing")}),
    ("wrong_shape", {}, {"readyz": ("fail", "checks[?name=='jobs'].ok == true (actual null)"),
                         "readyz:jobs": ("fail", "(actual null)")}),
    ("security_headers_missing", {}, {"security_headers": ("fail", "header:X-Frame-Options == 'DENY' (actual null)")}),
    ("metrics_open", {}, {"metrics_closed": ("fail", "status_code in [401] (actual 200)")}),
    ("estimate_broken", {}, {"estimate": ("fail", "status_code in [200] (actual 500)")}),
]


@pytest.mark.parametrize("fault, params, expected", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_fault_is_caught_by_the_probe_that_owns_it(module_runner, healthy_stack, fault, params, expected):
    healthy_stack.set_fault(fault, **params)
    result = run(module_runner, healthy_stack, check_mode=True)
    by_name = records_by_name(result)
    for name, (status, text) in expected.items():
        record = by_name[name]
        assert record["status"] == status, record
        assert record["summary"].startswith(name + ":")
        assert text in record["summary"], record["summary"]
        assert record["evidence"]["failed"], "a failing record carries the failed checks as evidence"
    others = [r for r in result["records"] if r["name"] not in expected]
    assert all(r["status"] == "pass" for r in others), [r["summary"] for r in others if r["status"] != "pass"]


def test_service_down_fails_liveness_and_nothing_else_is_sent(module_runner, healthy_stack):
    healthy_stack.set_fault("service_down")
    # Ample deadline: a refused connection answers at once, and the liveness precondition stops everything else.
    result = run(module_runner, healthy_stack, deadline=30, backoff=0.2)
    by_name = records_by_name(result)
    assert by_name["healthz"]["status"] == "fail"
    assert "the service refuses connections" in by_name["healthz"]["summary"]
    others = [r for r in result["records"] if r["name"] != "healthz"]
    assert others and all(r["status"] == "error" and r["evidence"]["sent"] is False for r in others)
    assert result["requests_sent"] == by_name["healthz"]["evidence"]["attempts"]


def test_slow_service_breaks_the_latency_budget_and_the_timeout(module_runner, healthy_stack):
    healthy_stack.set_fault("slow", delay=1)
    budget = module_runner("readiness_probe", {"base_url": healthy_stack.base_url,
                                               "probes": [{"kind": "healthz", "max_latency_ms": 500}]})
    record = budget["records"][0]
    assert record["status"] == "fail"
    assert record["evidence"]["failed"][0]["path"] == "latency_ms"
    # An answer later than the liveness probe's timeout: the connection was accepted and nothing came back in time,
    # which the liveness precondition reports as the service's failure (hung), not as the gate's.
    timeout = module_runner("readiness_probe", {"base_url": healthy_stack.base_url, "timeout": 0.3, "retries": 1,
                                                "backoff": 0.1, "probes": [{"kind": "healthz"}]})
    assert timeout["records"][0]["status"] == "fail"
    assert "sent no answer within" in timeout["records"][0]["summary"]
    assert timeout["records"][0]["evidence"]["attempts"] == 2


def test_wait_mode_passes_once_the_job_runner_has_run(module_runner, healthy_stack):
    healthy_stack.set_fault("heartbeat_missing")
    runner = threading.Timer(1.5, healthy_stack.run_jobs_once)
    runner.start()
    try:
        result = module_runner("readiness_probe", {"base_url": healthy_stack.base_url, "mode": "wait", "deadline": 30,
                                                   "interval": 0.5, "consecutive_successes": 2,
                                                   "probes": [{"kind": "readyz"}]})
    finally:
        runner.join()
    by_name = records_by_name(result)
    assert result["status"] == "pass", by_name["readyz"]["summary"]
    assert by_name["readyz"]["evidence"]["evaluations"] >= 3
    assert by_name["readyz"]["evidence"]["consecutive_successes"] == 2


def test_check_mode_with_consecutive_successes_on_a_steady_service(module_runner, healthy_stack):
    result = module_runner("readiness_probe", {"base_url": healthy_stack.base_url, "consecutive_successes": 3,
                                               "interval": 0.2, "probes": [{"kind": "healthz"}, {"kind": "readyz"}]},
                           check_mode=True)
    assert result["status"] == "pass"
    assert all(r["evidence"]["evaluations"] == 3 for r in result["records"])
