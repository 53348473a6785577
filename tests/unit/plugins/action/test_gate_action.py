"""The gate action plugin, run in-process with ansible-core's real Task, PlayContext, DataLoader,
Templar and local connection (no playbook): options, check mode, failure, stats, report writing."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader
from ansible.template import Templar

from ansible_collections.cleanwithsnapshot.release.plugins.action import gate as gate_action
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import SKIP_CHECK_MODE, make_record
from ansible_collections.cleanwithsnapshot.release.plugins.modules import gate as gate_doc

CANARY = "CANARY-gate-6d0c1e"


def run_gate(args, check_mode=False, task_vars=None):
    task = Task()
    task.action = "cleanwithsnapshot.release.gate"
    task.args = args
    task.check_mode = check_mode
    play_context = PlayContext()
    loader = DataLoader()
    action = gate_action.ActionModule(task, connection_loader.get("local", play_context, None), play_context,
                                      loader, Templar(loader=loader), None)
    return action.run(task_vars=task_vars if task_vars is not None else {})


def passing():
    return [make_record("health.liveness", "pass", "200 ok"), make_record("rls.isolation", "pass", "isolated")]


def test_documented_options_match_the_argument_spec():
    options = yaml.safe_load(gate_doc.DOCUMENTATION)["options"]
    assert set(options) == set(gate_action.ARGUMENT_SPEC)
    for name, spec in gate_action.ARGUMENT_SPEC.items():
        doc = options[name]
        assert doc["type"] == spec["type"], name
        assert doc.get("elements") == spec.get("elements") or (doc.get("elements"), spec.get("elements")) == ("raw", "raw"), name
        assert doc.get("default") == spec.get("default"), name
    returned = yaml.safe_load(gate_doc.RETURN)
    result = run_gate({"records": passing(), "artifacts_dir": "/tmp/unused-%d" % os.getpid()})
    shutil.rmtree("/tmp/unused-%d" % os.getpid())
    for key in ("verdict", "mode", "release", "msg", "failing", "inconclusive", "waived", "advisory", "input_errors",
                "counts", "criteria", "reports", "run_dir", "removed_runs", "ansible_stats"):
        assert key in returned and key in result, key


def test_go_writes_reports_and_publishes_stats(tmp_path):
    result = run_gate({"records": passing(), "artifacts_dir": str(tmp_path), "release": "v2026.11.1"})
    assert result["verdict"] == "GO" and not result.get("failed") and result["changed"] is False
    assert result["mode"] == "normal"
    run_dir = tmp_path / os.path.basename(result["run_dir"])
    assert result["reports"] == {"json": str(run_dir / "gonogo.json"), "markdown": str(run_dir / "gonogo.md"),
                                 "junit": str(run_dir / "junit.xml")}
    assert run_dir.name.endswith("Z-run-v2026.11.1")  # no playbook file outside ansible-playbook
    stats = result["ansible_stats"]
    assert stats["per_host"] is False and stats["aggregate"] is False
    assert stats["data"]["gonogo_verdict"] == "GO" and stats["data"]["gonogo_failing"] == []
    assert stats["data"]["gonogo_report"]["json"] == str(run_dir / "gonogo.json")
    assert stats["data"]["gonogo_report"]["run_dir"] == str(run_dir)
    assert json.loads((tmp_path / "gonogo.json").read_text())["release"] == "v2026.11.1"


def test_nogo_fails_the_task_with_a_message_naming_the_criteria(tmp_path):
    records = passing() + [dict(make_record("health.readiness", "fail", "/readyz 503: jobs not ok"), host="app1")]
    result = run_gate({"records": records, "artifacts_dir": str(tmp_path)})
    assert result["failed"] is True and result["verdict"] == "NO-GO"
    assert "FAILED health.readiness: app1: /readyz 503: jobs not ok" in result["msg"]
    assert result["failing"] == ["health.readiness"]
    assert (tmp_path / "gonogo.md").read_text().startswith("# Release gate: NO-GO")


def test_nogo_without_fail_on_nogo_returns_ok_with_the_verdict(tmp_path):
    records = passing() + [make_record("jobs.heartbeat", "error", "connection refused")]
    result = run_gate({"records": records, "artifacts_dir": str(tmp_path), "fail_on_nogo": False})
    assert not result.get("failed")
    assert result["verdict"] == "NO-GO-INCONCLUSIVE"
    assert result["ansible_stats"]["data"]["gonogo_verdict"] == "NO-GO-INCONCLUSIVE"


def test_bad_input_fails_even_without_fail_on_nogo(tmp_path):
    records = passing() + [{"criterion": "health.readiness", "status": "green"}]
    result = run_gate({"records": records, "artifacts_dir": str(tmp_path), "fail_on_nogo": False})
    assert result["failed"] is True
    assert result["verdict"] == "NO-GO-INCONCLUSIVE"
    assert result["input_errors"] == ["records[2].status: unknown status green (expected pass, fail, error or skipped)"]
    assert "INPUT records[2].status" in result["msg"]


def test_check_mode_writes_reports_that_say_check(tmp_path):
    records = passing() + [make_record("smoke.lead", "skipped", "POST planned, not sent", skip_reason=SKIP_CHECK_MODE)]
    result = run_gate({"records": records, "artifacts_dir": str(tmp_path), "required_criteria": ["smoke.lead"]},
                      check_mode=True)
    assert result["mode"] == "check"
    assert result["verdict"] == "NO-GO-INCONCLUSIVE" and result["failed"] is True
    report = json.loads((tmp_path / "gonogo.json").read_text())
    assert report["mode"] == "check" and report["inconclusive"] == ["smoke.lead"]
    assert "(check mode)" in result["msg"]


def test_default_artifacts_dir_is_next_to_the_playbook(tmp_path):
    result = run_gate({"records": passing()}, task_vars={"playbook_dir": str(tmp_path)})
    assert result["reports"]["json"] == os.path.join(result["run_dir"], "gonogo.json")
    assert os.path.dirname(result["run_dir"]) == str(tmp_path / "artifacts")
    assert (tmp_path / "artifacts" / "latest" / "junit.xml").is_file()


def test_publish_stats_false(tmp_path):
    result = run_gate({"records": passing(), "artifacts_dir": str(tmp_path), "publish_stats": False})
    assert "ansible_stats" not in result


def test_unwritable_artifacts_dir_fails_with_a_clear_message(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_gate({"records": passing(), "artifacts_dir": str(blocker / "reports")})
    assert result["failed"] is True
    assert result["msg"].startswith("could not write the reports to %s" % (blocker / "reports"))
    assert result["verdict"] == "GO"  # the decision itself stands; the task fails for the missing reports
    assert "reports" not in result


def test_redact_values_mask_a_leaked_secret_everywhere(tmp_path):
    records = passing() + [make_record("auth.roles", "fail", "viewer login with %s accepted" % CANARY,
                                       evidence={"echo": "body had %s" % CANARY})]
    result = run_gate({"records": records, "artifacts_dir": str(tmp_path), "redact_values": [CANARY]})
    assert CANARY not in json.dumps(result)
    for name in ("gonogo.json", "gonogo.md", "junit.xml"):
        assert CANARY not in (tmp_path / name).read_text()
    assert "viewer login with ******** accepted" in result["msg"]


def test_results_from_many_hosts(tmp_path):
    results = {"app1": {"records": passing()}, "app2": {"records": [make_record("host.disk", "fail", "12 GB free")]}}
    result = run_gate({"results": results, "artifacts_dir": str(tmp_path)})
    assert result["verdict"] == "NO-GO"
    assert "FAILED host.disk: app2: 12 GB free" in result["msg"]


@pytest.mark.parametrize("args, fragment", [
    ({"fail_on_nogo": "perhaps"}, "fail_on_nogo"),
    ({"records": [], "colour": "red"}, "colour"),
])
def test_bad_options_fail_the_task(args, fragment):
    with pytest.raises(AnsibleActionFail) as info:
        run_gate(args)
    assert fragment in str(info.value)


@pytest.mark.parametrize("waivers, error", [
    ("backup.drill", "waivers: must be a list, got str"),
    ({"criterion": "backup.drill", "reason": "r", "expires": "2099-01-01"}, "waivers: must be a list, got dict"),
    (["backup.drill"], "waivers[0]: a waiver must be a mapping, got str"),
])
def test_waivers_of_the_wrong_shape_are_reported_not_a_task_without_a_report(tmp_path, waivers, error):
    result = run_gate({"records": passing(), "artifacts_dir": str(tmp_path), "waivers": waivers})
    assert result["failed"] is True and result["verdict"] == "NO-GO-INCONCLUSIVE"
    assert result["input_errors"] == [error]
    assert os.path.exists(result["reports"]["json"])


def test_expired_waiver_is_warned_about(tmp_path):
    waivers = [{"criterion": "backup.freshness", "reason": "old", "expires": "2001-02-03"}]
    result = run_gate({"records": passing(), "artifacts_dir": str(tmp_path), "waivers": waivers})
    assert result["warnings"] == ["waivers[0] for backup.freshness expired on 2001-02-03 and was ignored"]
    assert result["verdict"] == "GO"


@pytest.mark.parametrize("option", ["keep_runs", "stats_markdown_bytes"])
def test_a_negative_count_is_refused_naming_the_option(tmp_path, option):
    result = run_gate({"records": passing(), "artifacts_dir": str(tmp_path), option: -1})
    assert result["failed"] is True and result["msg"].startswith("option %s: -1 is negative" % option)
    assert os.listdir(str(tmp_path)) == []  # refused before anything was decided or written


def test_each_decision_keeps_its_folder_and_keep_runs_prunes_the_oldest(tmp_path):
    first = run_gate({"records": passing(), "artifacts_dir": str(tmp_path), "keep_runs": 2, "playbook": "verify.yml"})
    second = run_gate({"records": passing(), "artifacts_dir": str(tmp_path), "keep_runs": 2, "playbook": "verify.yml"})
    third = run_gate({"records": passing(), "artifacts_dir": str(tmp_path), "keep_runs": 2, "playbook": "verify.yml"})
    assert os.path.basename(first["run_dir"]).endswith("Z-verify")
    assert first["removed_runs"] == [] and second["removed_runs"] == []
    assert third["removed_runs"] == [os.path.basename(first["run_dir"])]
    assert not os.path.exists(first["run_dir"]) and os.path.isdir(second["run_dir"])
    assert os.readlink(str(tmp_path / "latest")) == os.path.basename(third["run_dir"])
