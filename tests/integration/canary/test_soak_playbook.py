"""playbooks/soak.yml run for real against the stable reference service, Prometheus and Alertmanager (conftest.py):
healthy traffic is GO with one soak.window record over every round; 5xx on the stable service fails the soak at
the first round that sees them, which ends it early; no traffic is inconclusive, never a pass; check mode is never a GO."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def window(report):
    return [r for c in report["criteria"] if c["criterion"] == "soak.window" for r in c["records"]][0]


def test_a_healthy_soak_is_go_over_every_round(canary_playbook):
    # Three rounds 8 s apart, scheduled from the soak's start. A round's work (three checks and a roll-up) normally
    # fits in an interval; on a loaded machine one may not, and the round whose turn passed is skipped and counted.
    proc, report, dummy = canary_playbook(playbook="soak.yml", load_seconds=60, soak_duration_seconds=24,
                                          soak_interval_seconds=8)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert report["verdict"] == "GO"
    record = window(report)
    evidence = record["evidence"]
    assert record["status"] == "pass" and evidence["rounds_planned"] == 3
    ran = [k for k in (1, 2, 3) if k not in evidence["rounds_skipped"]]
    assert evidence["rounds_run"] == len(ran) and 3 in ran  # the last round always runs
    assert [p["name"] for p in evidence["parts"]] == ["soak.window.round.%d" % k for k in ran]
    assert evidence["started_at"].endswith("Z")


def test_errors_on_the_stable_service_fail_the_soak_and_end_it_early(canary_env, canary_playbook):
    canary_env.service_faults("stable", error_fraction={"fraction": 0.05})
    # Six rounds planned; the first window may still hold the healthy traffic of the test before.
    proc, report, dummy = canary_playbook(playbook="soak.yml", load_seconds=60, soak_duration_seconds=18)
    assert proc.returncode != 0
    assert report["verdict"] == "NO-GO"
    record = window(report)
    parts = record["evidence"]["parts"]
    assert record["status"] == "fail" and record["evidence"]["rounds_run"] == len(parts) < 6
    assert [p["status"] for p in parts] == ["pass"] * (len(parts) - 1) + ["fail"]
    assert "stopped at the first failure" in record["summary"]
    # The fault's 500s show in the error rate, and in a probe whenever one lands on a failing request: either names it.
    assert "slo.error_rate" in record["summary"] or "Internal Server Error" in record["summary"], record["summary"]


def test_no_traffic_is_inconclusive(canary_playbook):
    # No load: the soak's own probes are the only requests counted from its start, far from the ~230 clean requests
    # the sequential judge needs to show a 5xx share within 1 %. The last round is final: inconclusive, never a pass.
    proc, report, dummy = canary_playbook(playbook="soak.yml")
    assert proc.returncode != 0
    assert report["verdict"] == "NO-GO-INCONCLUSIVE"
    summary = window(report)["summary"]
    assert window(report)["status"] == "error" and ("no traffic" in summary or "a pass needs at least" in summary), \
        summary


def test_check_mode_runs_one_round_and_is_never_go(canary_playbook):
    proc, report, dummy = canary_playbook(playbook="soak.yml", check=True, load_seconds=30)
    assert proc.returncode != 0
    assert report["verdict"] != "GO" and report["mode"] == "check"
    record = window(report)
    assert record["status"] == "skipped" and "planned in check mode" in record["summary"]
    assert len(record["evidence"]["parts"]) == 1
