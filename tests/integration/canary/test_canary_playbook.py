"""playbooks/canary.yml run for real with ansible-playbook against real Prometheus, Alertmanager and Caddy and two
reference service processes (conftest.py), with the role's default judge and limits (sequential; 1 % 5xx, 5 % slower
than 0.25 s, against stable): a healthy canary is promoted; 20 % 5xx, a p95 over 500 ms, Prometheus down, no traffic
and a firing page alert each roll it back (NO-GO, naming the criterion); allow_unknown accepts the undecided; check
mode changes nothing; a canary of another version in progress and bad stages are refused. The stages are shorter
than the real ones (canary_env.canary_vars), long enough for the judge to pass a healthy canary at the test's load."""
from __future__ import annotations

import datetime
import json

import pytest

from monitoring import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def outcomes(report):
    return {c["criterion"]: c["outcome"] for c in report["criteria"]}


def records(report, criterion):
    return [r for c in report["criteria"] if c["criterion"] == criterion for r in c["records"]]


def stage_names(report):
    return sorted(r["name"] for r in records(report, "canary.step") if r["name"].split(".")[-1].isdigit())


def explain(report):
    return [(c["criterion"], c["outcome"], c["summary"][:300]) for c in report["criteria"] if c["outcome"] != "pass"]


def assert_rolled_back(env, report):
    assert report["verdict"] == "NO-GO", report["failing"]
    assert outcomes(report)["canary.rolled_back"] == "fail"
    assert json.loads(env.state_file.read_text())["status"] == "rolled_back"
    assert env.services.pid("canary") is None, "the canary must be removed"
    assert env.caddy.read_upstreams() == [env.stable_hostport], "no traffic may go to the canary"


def test_a_healthy_canary_is_promoted_and_a_rerun_has_nothing_to_do(canary_env, canary_playbook):
    proc, report, load = canary_playbook(load_seconds=150)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["verdict"] == "GO", report["failing"] + report["inconclusive"]
    assert stage_names(report) == ["canary.step.100", "canary.step.50"]
    assert all(r["status"] == "pass" for r in records(report, "canary.step"))
    for criterion in ("slo.error_rate", "slo.latency_p95", "slo.availability", "slo.vs_stable", "alerts.firing",
                      "monitoring.configured", "canary.promoted"):
        assert outcomes(report)[criterion] == "pass", criterion
    # The split was real: the canary answered part of the load, and the analysis saw its traffic.
    assert load.by_upstream[canary_env.canary_hostport] > 0 and load.by_upstream[canary_env.stable_hostport] > 0
    error_rate = records(report, "slo.error_rate")[0]
    last = error_rate["evidence"]["measurements"][-1]
    # the last look passed: confidently within 1 %, counted from the stage's start
    assert last["outcome"] == "successful" and last["final"] is True and last["bad"] == 0 and last["total"] > 0
    slow = records(report, "slo.latency_p95")[0]["evidence"]["measurements"][-1]
    assert slow["bad"] <= slow["total"] and "p95" in slow  # the raw p95 is kept as evidence, never judged
    state = json.loads(canary_env.state_file.read_text())
    assert state["status"] == "promoted" and [s["weight"] for s in state["steps"]] == [50, 100]
    assert canary_env.services.pid("canary") is None
    assert canary_env.caddy.read_upstreams() == [canary_env.stable_hostport]

    again, report2, dummy = canary_playbook()
    assert again.returncode == 0, again.stdout[-3000:]
    assert report2["verdict"] == "GO"
    assert "already promoted" in records(report2, "canary.promoted")[0]["summary"]
    assert canary_env.services.pid("canary") is None


def test_twenty_percent_5xx_is_rolled_back_at_the_first_stage(canary_env, canary_playbook):
    canary_env.canary_faults(error_fraction={"fraction": 0.2})
    proc, report, dummy = canary_playbook(load_seconds=90)
    assert proc.returncode != 0
    assert_rolled_back(canary_env, report)
    assert outcomes(report)["slo.error_rate"] == "fail"
    assert stage_names(report) == ["canary.step.50"]
    assert "stage 50 %" in records(report, "canary.rolled_back")[0]["summary"]
    failed = records(report, "slo.error_rate")[0]
    assert "confidently above 1 %" in failed["summary"], failed["summary"]
    assert len(failed["evidence"]["measurements"]) < 10  # decided long before the stage's last look


def test_a_canary_with_p95_over_500_ms_is_rolled_back(canary_env, canary_playbook):
    canary_env.canary_faults(added_latency={"ms": 600})
    proc, report, dummy = canary_playbook(load_seconds=90)
    assert proc.returncode != 0
    assert_rolled_back(canary_env, report)
    assert outcomes(report)["slo.latency_p95"] == "fail"
    assert stage_names(report) == ["canary.step.50"]


def test_prometheus_down_is_inconclusive_and_rolls_back(canary_env, canary_playbook):
    down = {"url": "http://127.0.0.1:%d" % free_port()}
    proc, report, dummy = canary_playbook(load_seconds=60, canary_prometheus=down)
    assert proc.returncode != 0
    assert_rolled_back(canary_env, report)
    assert outcomes(report)["slo.error_rate"] == "inconclusive"
    assert outcomes(report)["canary.step"] == "inconclusive"


def test_allow_unknown_accepts_an_undecided_canary(canary_env, canary_playbook):
    down = {"url": "http://127.0.0.1:%d" % free_port()}
    proc, report, dummy = canary_playbook(load_seconds=90, canary_prometheus=down, canary_allow_unknown=True,
                                          canary_stages=[50, 100])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert outcomes(report)["canary.promoted"] == "pass"
    assert outcomes(report)["slo.error_rate"] == "advisory"
    assert all("allow_unknown" in r["summary"] for r in records(report, "canary.step") if r["status"] == "error")


def test_no_traffic_is_inconclusive_never_a_pass(canary_env, canary_playbook):
    proc, report, dummy = canary_playbook()
    assert proc.returncode != 0
    assert_rolled_back(canary_env, report)
    error_rate = records(report, "slo.error_rate")[0]
    assert error_rate["status"] == "error" and "traffic" in error_rate["summary"]
    assert outcomes(report)["slo.error_rate"] == "inconclusive"


def test_check_mode_plans_and_changes_nothing(canary_env, canary_playbook):
    before = canary_env.caddy.upstreams_file.read_text()
    proc, report, dummy = canary_playbook(check=True)
    assert proc.returncode != 0  # the gate never says GO for a plan
    assert report["mode"] == "check" and report["verdict"] != "GO"
    assert not canary_env.state_file.exists()
    assert canary_env.services.pid("canary") is None
    assert canary_env.caddy.upstreams_file.read_text() == before
    assert "planned in check mode" in records(report, "canary.step")[0]["summary"]


def test_another_version_in_progress_is_refused_and_bad_stages_named(canary_env, canary_playbook):
    canary_env.state_file.write_text(json.dumps({
        "version": "v2", "stages": [10, 50, 100], "status": "running", "started": "2026-12-01T10:00:00+00:00",
        "started_by": "ops (canary)", "steps": [], "history": []}))
    proc, dummy, dummy2 = canary_playbook()
    assert proc.returncode != 0
    assert "a canary of v2 is in progress" in proc.stdout and "canary_restart" in proc.stdout
    assert canary_env.services.pid("canary") is None
    canary_env.state_file.unlink()
    proc, dummy, dummy2 = canary_playbook(canary_stages=[50, 10])
    assert proc.returncode != 0 and "stages[1]: weight 10 does not increase" in proc.stdout


def test_a_firing_page_alert_is_nogo(canary_env, canary_playbook):
    # The page fires for the whole run, however slow the machine is, and is resolved when the test ends, so the
    # next canary of this file does not find it left over.
    page = {"labels": {"alertname": "CanaryTestPage", "severity": "page", "deployment": "canary"},
            "annotations": {"summary": "a page for the canary test"}}
    now = datetime.datetime.now(datetime.timezone.utc)
    canary_env.alertmanager.post_alerts([dict(page, startsAt=now.isoformat(),
                                              endsAt=(now + datetime.timedelta(minutes=30)).isoformat())])
    try:
        canary_env.alertmanager.wait_for_alert("CanaryTestPage")
        proc, report, dummy = canary_playbook(load_seconds=60)
    finally:
        canary_env.alertmanager.post_alerts([dict(page, startsAt=now.isoformat(),
                                                  endsAt=datetime.datetime.now(datetime.timezone.utc).isoformat())])
    assert proc.returncode != 0
    assert_rolled_back(canary_env, report)
    assert outcomes(report).get("alerts.firing") == "fail", explain(report)
    assert "CanaryTestPage" in records(report, "alerts.firing")[0]["summary"]


def test_the_direct_scrape_source_rolls_back_a_failing_canary_too(canary_env, canary_playbook):
    """Without Prometheus: the role scrapes both variants' /metrics itself (the same counting, from the stage's start)."""
    canary_env.canary_faults(error_fraction={"fraction": 0.2})
    proc, report, dummy = canary_playbook(load_seconds=60, canary_metrics_source="scrape", canary_stages=[50, 100],
                                          canary_scrape_exclude_routes=["/metrics"], canary_alertmanager_url="")
    assert proc.returncode != 0
    assert_rolled_back(canary_env, report)
    assert outcomes(report)["slo.error_rate"] == "fail", explain(report)
    assert "monitoring.configured" not in outcomes(report)  # a Prometheus check: not with the scrape source
