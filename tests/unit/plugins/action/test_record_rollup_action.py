"""The record_rollup action plugin, run in-process with ansible-core's real Task, PlayContext and loader."""
from __future__ import annotations

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader
from ansible.template import Templar

from ansible_collections.cleanwithsnapshot.release.plugins.action import record_rollup as rollup_action
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import make_record
from ansible_collections.cleanwithsnapshot.release.plugins.modules import record_rollup as rollup_doc


def run_rollup(args, check_mode=False):
    task = Task()
    task.action = "cleanwithsnapshot.release.record_rollup"
    task.args = args
    task.check_mode = check_mode
    play_context = PlayContext()
    loader = DataLoader()
    action = rollup_action.ActionModule(task, connection_loader.get("local", play_context, None), play_context,
                                        loader, Templar(loader=loader), None)
    return action.run(task_vars={})


def test_documented_options_match_the_argument_spec():
    options = yaml.safe_load(rollup_doc.DOCUMENTATION)["options"]
    assert set(options) == set(rollup_action.ARGUMENT_SPEC)
    for name, spec in rollup_action.ARGUMENT_SPEC.items():
        assert options[name]["type"] == spec["type"], name
        assert options[name].get("default") == spec.get("default"), name


def test_nested_lists_are_flattened_and_the_worst_part_decides():
    rounds = [[make_record("health.readiness", "pass", "200")],
              [make_record("slo.error_rate", "fail", "5.2 % > 1 %"), make_record("alerts.firing", "pass", "none")]]
    result = run_rollup({"criterion": "soak.window", "label": "soak of 2 rounds", "records": rounds})
    record = result["records"][0]
    assert result["status"] == "fail" and record["criterion"] == "soak.window"
    assert record["summary"] == "soak of 2 rounds: slo.error_rate fail: 5.2 % > 1 %"
    assert len(record["evidence"]["parts"]) == 3 and not result["changed"]


def test_check_mode_skips_when_asked_and_secrets_are_masked():
    part = make_record("health.readiness", "pass", "200", evidence={"token": "s3cr3t-value"})
    result = run_rollup({"criterion": "soak.window", "records": [part], "skip_in_check_mode": True,
                         "evidence": {"password": "hunter2-hunter2"}}, check_mode=True)
    record = result["records"][0]
    assert record["status"] == "skipped" and "planned in check mode" in record["summary"]
    assert record["skip_reason"] == "check_mode"  # what the gate reads, not the summary
    assert "hunter2" not in repr(result)


def test_nothing_to_combine_is_an_error():
    result = run_rollup({"criterion": "soak.window", "records": []})
    assert result["status"] == "error"


def test_registered_results_give_their_records_and_a_failed_task_is_an_error_part():
    ok = {"records": [make_record("health.readiness", "pass", "200")], "changed": False}
    broken = {"failed": True, "msg": "metrics[0].condition.op: unknown operator 'lesser'"}
    skipped = {"skipped": True, "skip_reason": "Conditional result was False"}
    result = run_rollup({"criterion": "soak.window", "name": "soak.window.round.1", "label": "round 1",
                         "results": [ok, broken, skipped]})
    record = result["records"][0]
    assert record["status"] == "error" and record["name"] == "soak.window.round.1"
    assert "unknown operator 'lesser'" in record["summary"]
    assert [p["status"] for p in record["evidence"]["parts"]] == ["pass", "error"]
