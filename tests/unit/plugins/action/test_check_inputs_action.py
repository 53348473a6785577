"""The check_inputs action plugin, run in-process with ansible-core's real Task, PlayContext, DataLoader, Templar and
local connection: it reads the named variables through the templar (role defaults handing over inventory variables),
names the one the user set, and fails with every problem at once."""
from __future__ import annotations

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader
from ansible.template import Templar, trust_as_template

from ansible_collections.cleanwithsnapshot.release.plugins.action import check_inputs as action_plugin
from ansible_collections.cleanwithsnapshot.release.plugins.modules import check_inputs as action_doc

ROLE_DEFAULTS = {
    "gate_waivers": "{{ release_waivers | default([]) }}",
    "gate_advisory": "{{ release_advisory_criteria | default([]) }}",
    "verify_api_base_url": "{{ release_api_base_url }}",
    "verify_rls_tables": [],
    "verify_rls_table_pattern": "",
}
VERIFY_TASK = {
    "waivers": ["gate_waivers", "release_waivers"],
    "criteria": ["gate_advisory", "release_advisory_criteria"],
    "urls": ["verify_api_base_url"],
    "one_of": [["verify_rls_tables", "verify_rls_table_pattern"]],
}


def trusted(value):
    """Variables as a play holds them: strings from role defaults and inventories are templates."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(item) for item in value]
    if isinstance(value, dict):
        return dict((key, trusted(item)) for key, item in value.items())
    return value


def run(args, inventory):
    task_vars = trusted(dict(ROLE_DEFAULTS, **inventory))
    task = Task()
    task.action = "cleanwithsnapshot.release.check_inputs"
    task.args = args
    play_context = PlayContext()
    loader = DataLoader()
    action = action_plugin.ActionModule(task, connection_loader.get("local", play_context, None), play_context,
                                        loader, Templar(loader=loader, variables=task_vars), None)
    return action.run(task_vars=task_vars)


def test_documented_options_match_the_argument_spec():
    options = yaml.safe_load(action_doc.DOCUMENTATION)["options"]
    assert set(options) == set(action_plugin.ARGUMENT_SPEC)
    for name, spec in action_plugin.ARGUMENT_SPEC.items():
        assert (options[name]["type"], options[name].get("elements"), options[name].get("default")) == (
            spec["type"], spec.get("elements"), spec.get("default")), name
    returned = yaml.safe_load(action_doc.RETURN)
    result = run(VERIFY_TASK, {"release_api_base_url": "https://api.example.com", "verify_rls_tables": ["leads"]})
    assert not result.get("failed"), result
    for key in ("errors", "expired_waivers"):
        assert key in returned and key in result, key


def test_every_problem_is_named_by_the_inventory_variable_once():
    result = run(VERIFY_TASK, {
        "release_waivers": [{"criterion": "backup.freshnes", "reason": "moving hosts", "expires": "2099-01-01"},
                            {"criterion": "smoke.docs", "reason": "docs off", "expires": "2020-01-01"}],
        "release_advisory_criteria": ["config.strip"],
        "release_api_base_url": "",
    })
    assert result["failed"] is True
    assert result["errors"] == [
        "release_waivers[0].criterion: backup.freshnes is not a known criterion (did you mean backup.freshness?)",
        "release_advisory_criteria[0]: config.strip is not a known criterion (did you mean config.stripe or "
        "config.storage?)",
        "release_api_base_url: not set (an http:// or https:// URL, like https://api.example.com)",
        "verify_rls_tables or verify_rls_table_pattern: none is set; one of them must be",
    ]
    # The first problem whole at the start of the message: a report that shortens it keeps the suggestion.
    assert result["msg"].startswith(result["errors"][0])
    assert result["msg"].endswith("(4 inputs are wrong; nothing was checked)")
    assert result["expired_waivers"] == ["release_waivers[1] (smoke.docs) expired on 2020-01-01: it waives nothing"]
    assert result["warnings"] == result["expired_waivers"]


def test_an_undefined_inventory_variable_is_named_as_not_set():
    result = run({"urls": ["verify_api_base_url"]}, {})
    assert result["errors"] == [
        "release_api_base_url: not set (an http:// or https:// URL, like https://api.example.com)"]


def test_a_role_variable_set_directly_is_named_as_such():
    result = run({"waivers": ["gate_waivers", "release_waivers"]},
                 {"gate_waivers": [{"criterion": "rls.isolaton", "reason": "r", "expires": "2099-01-01"}]})
    assert result["errors"] == [
        "gate_waivers[0].criterion: rls.isolaton is not a known criterion (did you mean rls.isolation?)"]


def test_criteria_of_the_runs_own_probes_are_known():
    args = {"criteria": ["release_advisory_criteria"], "known_criteria": ["custom.checkout"]}
    assert not run(args, {"release_advisory_criteria": ["custom.checkout"]}).get("failed")
    assert run(dict(args, known_criteria=[]), {"release_advisory_criteria": ["custom.checkout"]})["failed"] is True


@pytest.mark.parametrize("inventory", [
    {"release_api_base_url": "http://127.0.0.1:8000", "verify_rls_table_pattern": "^tenant_"},
    {"release_api_base_url": "https://api.example.com", "verify_rls_tables": ["leads"],
     "release_waivers": [{"criterion": "backup.freshness", "reason": "r", "expires": "2099-01-01"}],
     "release_advisory_criteria": ["config.stripe"]},
])
def test_usable_inputs_pass(inventory):
    result = run(VERIFY_TASK, inventory)
    assert not result.get("failed") and result["errors"] == [] and result["changed"] is False


def test_the_gate_names_its_waivers_by_the_variable_the_user_set(tmp_path):
    from ansible_collections.cleanwithsnapshot.release.plugins.action import gate as gate_action
    from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import make_record

    task_vars = trusted(dict(ROLE_DEFAULTS, release_waivers=[]))
    task = Task()
    task.action = "cleanwithsnapshot.release.gate"
    task.args = {"records": [make_record("health.liveness", "pass", "ok")], "artifacts_dir": str(tmp_path),
                 "waivers": [{"criterion": "backup.freshnes", "reason": "r", "expires": "2099-01-01"}],
                 "advisory": ["config.strip"], "fail_on_nogo": False,
                 "input_variables": {"waivers": "gate_waivers", "advisory": "gate_advisory"}}
    play_context = PlayContext()
    loader = DataLoader()
    action = gate_action.ActionModule(task, connection_loader.get("local", play_context, None), play_context, loader,
                                      Templar(loader=loader, variables=task_vars), None)
    result = action.run(task_vars=task_vars)
    assert result["verdict"] == "NO-GO-INCONCLUSIVE" and result["failed"] is True
    assert result["input_errors"][0] == (
        "release_waivers[0].criterion: backup.freshnes is not a known criterion (did you mean backup.freshness?)")
    # Not set in the inventory: still named as the inventory sets it.
    assert result["input_errors"][1].startswith("release_advisory_criteria: config.strip is not a known criterion")
    assert "release_waivers[0].criterion: backup.freshnes" in result["msg"]
