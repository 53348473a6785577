"""Runs the collection's playbooks for real with ansible-playbook against a reference stack, as the playbook tests do:
the stack's facts are the local inventory's vars file (CWS_LOCAL_STACK), and the artifacts and HOME are the test's
own folder, so runs of different tests share nothing but the stack."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from local_inventory import inventory_vars

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


class PlaybookRunner:
    """One test's runs of the playbooks against ``stack``; ``artifacts`` is where their reports go."""

    def __init__(self, stack, tmp_path):
        self.home = Path(tmp_path)
        self.artifacts = self.home / "artifacts"
        self.vars_file = self.home / "local-stack.json"
        self.vars_file.write_text(json.dumps(inventory_vars(stack.facts())))

    def run(self, name, *extra):
        """``ansible-playbook <name> -i local <extra...>`` from playbooks/; the finished process."""
        env = dict(os.environ, CWS_LOCAL_STACK=str(self.vars_file), CWS_ARTIFACTS_DIR=str(self.artifacts),
                   ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"), ANSIBLE_NOCOLOR="1",
                   HOME=str(self.home))
        return subprocess.run([str(ANSIBLE_PLAYBOOK), name, "-i", "local"] + list(extra), cwd=str(PLAYBOOKS), env=env,
                              capture_output=True, text=True, timeout=600, check=False)

    def report(self):
        """The last run's gonogo.json, or None when it wrote none."""
        report_file = self.artifacts / "gonogo.json"
        return json.loads(report_file.read_text()) if report_file.exists() else None

    def required_report(self, proc):
        """The last run's gonogo.json; a run that wrote none fails the test with the run's output."""
        report = self.report()
        assert report is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
        return report


def playbook_runner(stack, tmp_path):
    """A runner on ``stack`` with its faults cleared and an empty rate-limit window, as every playbook test starts."""
    stack.clear_faults()
    stack.fresh_rate_window()
    return PlaybookRunner(stack, tmp_path)
