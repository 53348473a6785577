"""Run playbooks with the gate through a real ``ansible-playbook`` (connection local, inventory
``localhost,``), the collection taken from .build/collections."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
STATS_CALLBACK_DIR = ROOT / "tests" / "harness" / "callback_plugins"  # the one stats callback (stats_dump)
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


class PlaybookRun:
    def __init__(self, proc, stats, artifacts):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.output = proc.stdout + proc.stderr
        self.stats = stats
        self.artifacts = artifacts

    @property
    def custom_stats(self):
        """What AWX would store as the job's artifacts (set_stats data with per_host false)."""
        return (self.stats or {}).get("custom", {}).get("_run", {})

    def report(self):
        return json.loads((self.artifacts / "gonogo.json").read_text(encoding="utf-8"))


@pytest.fixture()
def run_playbook(tmp_path):
    """run_playbook(tasks, extra_vars=None, check=False, verbosity=0, inventory="localhost,", env=None)"""

    def run(tasks, extra_vars=None, check=False, verbosity=0, inventory="localhost,", hosts="all", env=None,
            gather_facts=False):
        play = [{"name": "gate", "hosts": hosts, "gather_facts": gather_facts, "tasks": tasks}]
        playbook = tmp_path / "playbook.yml"
        playbook.write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
        variables = {"artifacts": str(tmp_path / "artifacts"), "ansible_python_interpreter": sys.executable}
        variables.update(extra_vars or {})
        vars_file = tmp_path / "vars.json"
        vars_file.write_text(json.dumps(variables), encoding="utf-8")
        stats_file = tmp_path / "stats.json"
        if stats_file.exists():
            stats_file.unlink()
        run_env = dict(os.environ)
        for key in [k for k in run_env if k.startswith("ANSIBLE_")]:
            del run_env[key]
        run_env.update({
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
            "ANSIBLE_CALLBACK_PLUGINS": str(STATS_CALLBACK_DIR),
            "ANSIBLE_CALLBACKS_ENABLED": "stats_dump",
            "ANSIBLE_SHOW_CUSTOM_STATS": "true",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "STATS_DUMP_FILE": str(stats_file),
        })
        run_env.update(env or {})
        command = [str(ANSIBLE_PLAYBOOK), "-i", inventory, "-c", "local", str(playbook), "-e", "@%s" % vars_file]
        if check:
            command.append("--check")
        if verbosity:
            command.append("-" + "v" * verbosity)
        proc = subprocess.run(command, cwd=str(tmp_path), env=run_env, capture_output=True, text=True, timeout=180,
                              check=False)
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else None
        return PlaybookRun(proc, stats, tmp_path / "artifacts")

    return run
