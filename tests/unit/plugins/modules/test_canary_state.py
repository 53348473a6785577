"""canary_state run as Ansible runs it on a node, on a real state file in tmp_path: start, resume, refuse,
promote, roll back, check mode and bad input."""
from __future__ import annotations

import json
import os

import pytest

from harness.modrun import run_module
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import canary_state as cs
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import make_record

STAGES = [10, 25, 50, 100]


def _begin(path, version="v3", check_mode=False, **extra):
    return run_module("canary_state", dict(path=str(path), action="begin", version=version, stages=STAGES,
                                           started_by="ops@controller", **extra), check_mode=check_mode)


def _step(path, weight, status="pass", **extra):
    record = make_record("slo.error_rate", status, "error rate 0.2 %" if status == "pass" else "error rate 5.0 % > 1 %")
    return run_module("canary_state", dict(path=str(path), action="step", weight=weight, records=[record], **extra))


def test_a_fresh_run_starts_and_a_rerun_resumes_after_the_last_accepted_stage(tmp_path):
    path = tmp_path / "canary.json"
    first = _begin(path)
    assert first["changed"] and first["mode"] == "start" and first["stages_left"] == STAGES
    assert json.loads(path.read_text())["status"] == "running"
    assert oct(os.stat(path).st_mode & 0o777) == "0o640"
    assert _step(path, 10)["accepted"] is True
    assert _step(path, 25)["accepted"] is True
    again = _begin(path)
    assert not again["changed"] and again["mode"] == "resume" and again["stages_left"] == [50, 100]


def test_another_version_in_progress_is_refused_naming_it_unless_restart(tmp_path):
    path = tmp_path / "canary.json"
    _begin(path, "v3")
    refused = _begin(path, "v4")
    assert refused.get("failed") and "a canary of v3 is in progress" in refused["msg"]
    assert "ops@controller" in refused["msg"] and "canary_restart" in refused["msg"]
    restarted = _begin(path, "v4", restart=True)
    assert restarted["mode"] == "start"
    state = json.loads(path.read_text())
    assert state["version"] == "v4" and state["history"][-1]["status"] == "abandoned"


def test_a_failed_stage_is_not_accepted_and_a_resume_goes_to_the_rollback(tmp_path):
    path = tmp_path / "canary.json"
    _begin(path)
    step = _step(path, 10, status="fail")
    assert step["accepted"] is False
    stage_record = step["records"][-1]
    assert stage_record["criterion"] == "canary.step" and stage_record["name"] == "canary.step.10"
    assert stage_record["status"] == "fail" and "error rate 5.0 % > 1 %" in stage_record["summary"]
    resumed = _begin(path)
    assert resumed["stages_left"] == [] and resumed["failed_step"]["weight"] == 10
    finished = run_module("canary_state", dict(path=str(path), action="finish", outcome="rolled_back",
                                               problems=["canary container still running"]))
    record = finished["records"][0]
    assert record["criterion"] == "canary.rolled_back" and record["status"] == "fail"
    assert "stage 10 %" in record["summary"] and "canary container still running" in record["summary"]
    assert json.loads(path.read_text())["status"] == "rolled_back"


def test_an_undecided_stage_rolls_back_unless_unknown_is_allowed(tmp_path):
    path = tmp_path / "canary.json"
    _begin(path)
    assert _step(path, 10, status="error")["accepted"] is False
    allowed = _step(path, 10, status="error", allow_unknown=True)
    assert allowed["accepted"] is True
    assert all(not r["blocking"] for r in allowed["records"] if r["status"] == "error")
    assert "allow_unknown" in allowed["records"][-1]["summary"]


def test_a_promoted_version_has_nothing_left_to_do(tmp_path):
    path = tmp_path / "canary.json"
    _begin(path)
    for weight in STAGES:
        _step(path, weight)
    promoted = run_module("canary_state", dict(path=str(path), action="finish", outcome="promoted"))
    assert promoted["records"][0]["status"] == "pass" and "10 %, 25 %, 50 %, 100 %" in promoted["records"][0]["summary"]
    again = _begin(path)
    assert again["mode"] == "done" and not again["changed"] and again["records"][0]["criterion"] == "canary.promoted"
    assert _begin(path, "v4")["mode"] == "start"


def test_check_mode_plans_and_writes_nothing(tmp_path):
    path = tmp_path / "canary.json"
    planned = _begin(path, check_mode=True)
    assert planned["changed"] and planned["mode"] == "start" and not path.exists()
    assert planned["records"][0]["status"] == "skipped" and "check mode" in planned["records"][0]["summary"]
    assert planned["records"][0]["skip_reason"] == "check_mode"


@pytest.mark.parametrize("stages, message", [
    ([10, 10, 50], "stages[1]: weight 10 does not increase"),
    ([0, 50], "stages[0]: weight 0 is outside 1-100"),
    ([10, 101], "stages[1]: weight 101 is outside 1-100"),
    ([], "stages: give at least one traffic stage"),
])
def test_bad_stages_are_refused_naming_the_option(tmp_path, stages, message):
    result = run_module("canary_state", dict(path=str(tmp_path / "c.json"), action="begin", version="v3", stages=stages))
    assert result.get("failed") and message in result["msg"] and "Traceback" not in result.raw


def test_an_unreadable_state_is_an_error_never_no_canary(tmp_path):
    path = tmp_path / "canary.json"
    path.write_text("{not json")
    result = _begin(path)
    assert result.get("failed") and "cannot be read" in result["msg"] and path.read_text() == "{not json"


def test_a_step_outside_the_recorded_stages_is_refused(tmp_path):
    path = tmp_path / "canary.json"
    _begin(path)
    result = _step(path, 30)
    assert result.get("failed") and "weight: 30 is not one of the recorded stages" in result["msg"]


def test_validate_stages_rejects_booleans_and_floats():
    with pytest.raises(cs.CanaryStateError, match=r"stages\[0\]"):
        cs.validate_stages([True, 50])
    with pytest.raises(cs.CanaryStateError, match=r"stages\[1\]"):
        cs.validate_stages([10, 2.5])


def test_a_stage_check_task_that_failed_without_records_stops_the_canary(tmp_path):
    path = tmp_path / "canary.json"
    _begin(path)
    result = run_module("canary_state", dict(path=str(path), action="step", weight=10, results=[
        {"records": [make_record("canary.step", "pass", "split applied", name="canary.step.split")]},
        {"failed": True, "msg": "metrics[0].condition.op: unknown operator"},
        {"skipped": True}]))
    assert result["accepted"] is False
    assert "unknown operator" in result["records"][-1]["summary"]
