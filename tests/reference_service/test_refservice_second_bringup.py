"""What a second bring-up of the real service showed, reproduced: the jobs check reports the JOBS_ENABLED flag
apart from the heartbeat check."""
from __future__ import annotations

import pytest
import requests

from refhelpers import CLIENT

pytestmark = pytest.mark.integration

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
