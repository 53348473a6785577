"""What a second bring-up of the real service showed, reproduced: the jobs check reports the JOBS_ENABLED flag
apart from the heartbeat check, and a lead's estimate_snapshot must be a whole /v1/estimate answer."""
from __future__ import annotations

import pytest
import requests

from refhelpers import CLIENT, assert_problem, post

pytestmark = pytest.mark.integration

ESTIMATE = {"beds": 2, "baths": 1.5, "cleaning_type": "deep"}
LEAD = {"name": "Smoke Lead", "phone": "780-555-0000", "email": "lead@example.com", "postal_code": "T5J0N3",
        "address": "1 Smoke St", "preferred_dates": ["2026-03-01 morning"], "structured_inputs": ESTIMATE}
# The fields of the real service's estimate answer (its response model), the required ones first.
REQUIRED = ("pricing_config_id", "pricing_config_version", "config_hash", "rate", "team_size", "time_on_site_hours",
            "billed_cleaner_hours", "labor_cost", "discount_amount", "add_ons_cost", "total_before_tax", "confidence")
OPTIONAL = ("assumptions", "missing_info", "breakdown")


def jobs_check(base_url):
    resp = requests.get(base_url + "/readyz", headers=CLIENT, timeout=15)
    return resp.status_code, [c for c in resp.json()["checks"] if c["name"] == "jobs"][0]


def test_jobs_enabled_is_the_flag_and_the_heartbeat_check_runs_without_it(healthy_stack, tmp_path):
    status, jobs = jobs_check(healthy_stack.base_url)  # the stack's .env: JOBS_ENABLED=true
    assert status == 200 and jobs["ok"] is True
    assert jobs["detail"]["enabled"] is True and jobs["detail"]["jobs_enabled"] is True
    service = healthy_stack.extra_service(tmp_path, drop=["JOBS_ENABLED"])
    try:
        status, jobs = jobs_check(service.base_url)
        assert status == 200 and jobs["ok"] is True, jobs
        assert jobs["detail"]["enabled"] is True and jobs["detail"]["jobs_enabled"] is False
        assert set(jobs["detail"]) == {"enabled", "last_heartbeat", "runner_id", "age_seconds", "threshold_seconds",
                                       "jobs_enabled"}
    finally:
        service.stop()
    service = healthy_stack.extra_service(tmp_path, drop=["JOBS_ENABLED"], JOB_HEARTBEAT_REQUIRED="false")
    try:
        status, jobs = jobs_check(service.base_url)
        assert status == 200 and jobs["detail"] == {"enabled": False, "message": "job heartbeat check disabled",
                                                    "jobs_enabled": False}
    finally:
        service.stop()


def test_estimate_answer_has_the_real_fields(healthy_stack):
    resp = post(healthy_stack, "/v1/estimate", json=ESTIMATE)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == set(REQUIRED + OPTIONAL)
    assert body["pricing_config_id"] == "economy" and body["pricing_config_version"] == "v1"
    assert body["config_hash"].startswith("sha256:") and body["rate"] == 35.0 and body["total_before_tax"] == 157.5
    assert body["breakdown"]["total_before_tax"] == 157.5 and isinstance(body["assumptions"], list)


def test_lead_wants_a_whole_estimate_answer_as_snapshot(healthy_stack):
    partial = dict(LEAD, estimate_snapshot={"pricing_config_id": "economy", "total_before_tax": 157.5,
                                            "assumptions": ["release smoke"]})
    body = assert_problem(post(healthy_stack, "/v1/leads", json=partial), 422)
    missing = [error["field"] for error in body["errors"]]
    assert missing == ["estimate_snapshot.%s" % name for name in REQUIRED
                       if name not in ("pricing_config_id", "total_before_tax")]
    assert all(error["type"] == "missing" for error in body["errors"])
    snapshot = post(healthy_stack, "/v1/estimate", json=ESTIMATE).json()
    wrong = dict(snapshot, rate="35", breakdown=dict(snapshot["breakdown"], team_size=None))
    body = assert_problem(post(healthy_stack, "/v1/leads", json=dict(LEAD, estimate_snapshot=wrong)), 422)
    assert [error["field"] for error in body["errors"]] == ["estimate_snapshot.rate", "estimate_snapshot.breakdown.team_size"]
    resp = post(healthy_stack, "/v1/leads", json=dict(LEAD, estimate_snapshot=snapshot))
    assert resp.status_code == 201, resp.text
