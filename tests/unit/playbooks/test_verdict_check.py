"""No tag selection gets a gating playbook around its verdict (issue: `verify.yml --skip-tags gate` ended rc 0).

Every playbook that runs the gate ends with the gate role's verdict_made task, and ansible-playbook itself (its
--list-tasks, which applies the same tag selection as a run) must keep that task under --skip-tags gate, --tags of
another part, and --skip-tags always (Ansible's one documented way to skip an `always` task). The run that shows
the task failing without a verdict is tests/integration/playbooks/test_verdict_cannot_be_skipped.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOKS = ROOT / "playbooks"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# ansible-playbook --list-tasks runs: a minute on a loaded machine.
pytestmark = [pytest.mark.slow]
CHECK_TASK = "cleanwithsnapshot.release.gate : Fail when this run made no verdict"


def _runs_the_gate(path):
    text = path.read_text()
    return "cleanwithsnapshot.release.gate" in text or "import_playbook" in text


GATING = sorted(p.name for p in PLAYBOOKS.glob("*.yml") if _runs_the_gate(p))


def test_the_gating_playbooks_are_found():
    # A playbook added later that gates is covered by the tests below without being named here.
    assert {"verify.yml", "release.yml", "deploy.yml", "rollback.yml", "canary.yml", "soak.yml",
            "backup_drill.yml", "preflight.yml"} <= set(GATING)


@pytest.mark.parametrize("name", GATING)
def test_every_gating_playbook_ends_with_the_verdict_check(name):
    last_play = yaml.safe_load((PLAYBOOKS / name).read_text())[-1]
    assert last_play["hosts"] == "localhost"
    last_task = last_play["tasks"][-1]
    assert last_task["ansible.builtin.import_role"] == {"name": "cleanwithsnapshot.release.gate",
                                                        "tasks_from": "verdict_made"}
    assert "tags" not in last_task, "the task file chooses its own tags; a tag here would let it be skipped"


def listed_tasks_of_last_play(name, *selection):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), name, "-i", "localhost,", "--list-tasks"] + list(selection),
                          cwd=str(PLAYBOOKS), env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last_play = proc.stdout.rsplit("  play #", 1)[1]
    assert "Make sure this run made a verdict" in last_play.splitlines()[0]
    return last_play


@pytest.mark.parametrize("name", GATING)
@pytest.mark.parametrize("selection", [
    ["--skip-tags", "gate"],
    ["--skip-tags", "always,gate", "--tags", "verify"],
], ids=["skip-gate", "skip-always-and-gate-run-verify"])
def test_the_verdict_check_survives_the_tag_selection(name, selection):
    assert CHECK_TASK in listed_tasks_of_last_play(name, *selection)


@pytest.mark.parametrize("selection", [
    [],
    ["--tags", "preflight"],
    ["--skip-tags", "always"],
    ["--tags", "tagged", "--skip-tags", "always"],
    ["--tags", "untagged", "--skip-tags", "always"],
    ["--tags", "never", "--skip-tags", "always,verdict"],
])
def test_the_verdict_check_survives_every_selection_that_runs_a_task(selection):
    assert CHECK_TASK in listed_tasks_of_last_play("verify.yml", *selection)


def test_a_selection_that_runs_no_task_at_all_leaves_it_out_too():
    """The documented boundary: --skip-tags all,always runs no task (no check, no lock, no report)."""
    listed = listed_tasks_of_last_play("verify.yml", "--skip-tags", "all,always")
    assert CHECK_TASK not in listed
    whole = subprocess.run([str(ANSIBLE_PLAYBOOK), "verify.yml", "-i", "localhost,", "--list-tasks", "--skip-tags",
                            "all,always"], cwd=str(PLAYBOOKS), capture_output=True, text=True, timeout=300,
                           check=False, env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections")))
    assert "cleanwithsnapshot.release.verify :" not in whole.stdout
