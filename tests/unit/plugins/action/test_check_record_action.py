"""The check_record action plugin, run in-process with ansible-core's real Task, PlayContext and loader."""
from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader
from ansible.template import Templar

from ansible_collections.cleanwithsnapshot.release.plugins.action import check_record as record_action
from ansible_collections.cleanwithsnapshot.release.plugins.modules import check_record as record_doc


def run_check_record(args, check_mode=False):
    task = Task()
    task.action = "cleanwithsnapshot.release.check_record"
    task.args = args
    task.check_mode = check_mode
    play_context = PlayContext()
    loader = DataLoader()
    action = record_action.ActionModule(task, connection_loader.get("local", play_context, None), play_context,
                                        loader, Templar(loader=loader), None)
    return action.run(task_vars={})


def test_documented_options_match_the_argument_spec():
    doc = yaml.safe_load(record_doc.DOCUMENTATION)["options"]
    assert set(doc) == set(record_action.ARGUMENT_SPEC)
    suboptions = doc["records"]["suboptions"]
    assert set(suboptions) == set(record_action.RECORD_SPEC)
    for name, spec in record_action.RECORD_SPEC.items():
        assert suboptions[name]["type"] == spec["type"], name
        assert suboptions[name].get("default") == spec.get("default"), name
        assert suboptions[name].get("choices") == spec.get("choices"), name


def test_records_are_built_with_defaults_and_handed_over_in_the_gate_shape():
    result = run_check_record({"host": "app1", "records": [
        {"criterion": "deploy.migrate", "status": "pass", "summary": "alembic upgrade head succeeded",
         "evidence": {"rc": 0}, "duration_ms": "1234.56", "skip_reason": None},
        {"criterion": "deploy.services", "name": "deploy.services.readiness", "status": "skipped",
         "summary": "readiness wait disabled", "skip_reason": "not_requested"},
    ]})
    assert not result.get("failed") and not result["changed"]
    migrate, readiness = result["records"]
    assert migrate == {"criterion": "deploy.migrate", "name": "deploy.migrate", "status": "pass", "blocking": True,
                       "summary": "alembic upgrade head succeeded", "evidence": {"rc": 0}, "duration_ms": 1234.6}
    assert readiness["skip_reason"] == "not_requested" and readiness["name"] == "deploy.services.readiness"
    assert result["results"] == [{"records": result["records"], "host": "app1"}]


def test_a_skip_reason_on_a_decided_record_is_refused_naming_the_record():
    result = run_check_record({"records": [
        {"criterion": "deploy.migrate", "status": "pass", "summary": "ok"},
        {"criterion": "deploy.services", "status": "fail", "summary": "down", "skip_reason": "check_mode"},
    ]})
    assert result["failed"] and result["msg"].startswith("records[1]: skip_reason 'check_mode' needs status skipped")


def test_an_unknown_status_is_refused_by_the_argument_spec():
    with pytest.raises(AnsibleActionFail, match="status must be one of: pass, fail, error, skipped, got: maybe found in records"):
        run_check_record({"records": [{"criterion": "deploy.migrate", "status": "maybe", "summary": "?"}]})


def test_secrets_are_masked_in_every_field():
    result = run_check_record({"redact_values": ["hunter2-hunter2"], "records": [
        {"criterion": "deploy.migrate", "status": "fail",
         "summary": "FAILED: could not connect to postgresql://owner:s3cret@db:5432/app as hunter2-hunter2",
         "evidence": {"password": "plain-value", "output_tail": ["dsn postgresql://owner:s3cret@db/app"]}}]})
    text = repr(result)
    assert "s3cret" not in text and "hunter2" not in text and "plain-value" not in text
    assert result["records"][0]["summary"].startswith("FAILED: could not connect to postgresql://owner:********@db")
