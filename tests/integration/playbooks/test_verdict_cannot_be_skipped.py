"""No way around the verdict: verify.yml with its gate skipped by tags, run for real against a reference stack with a
fault on, ends NO-GO (non-zero) saying that no verdict was made in this run - it used to end rc 0 with no report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_inventory import inventory_vars
from refstack import started_stack

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOKS = ROOT / "playbooks"
NO_VERDICT = "no verdict was made in this run"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(pg_server):
    with started_stack(pg_server, "cws_noverdict_%d" % os.getpid(), layout=True) as ref:
        yield ref


@pytest.fixture()
def playbook(stack, tmp_path):
    stack.clear_faults()
    stack.fresh_rate_window()
    vars_file = tmp_path / "local-stack.json"
    vars_file.write_text(json.dumps(inventory_vars(stack.facts())))

    def run(name, *extra):
        env = dict(os.environ, CWS_LOCAL_STACK=str(vars_file), CWS_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
                   ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"), ANSIBLE_NOCOLOR="1",
                   HOME=str(tmp_path))
        return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), name, "-i", "local"] + list(extra),
                              cwd=str(PLAYBOOKS), env=env, capture_output=True, text=True, timeout=600, check=False)

    yield run
    stack.clear_faults()


def test_verify_with_the_gate_skipped_is_not_a_pass(playbook, stack):
    stack.set_fault("rls_not_forced")
    proc = playbook("verify.yml", "--skip-tags", "gate")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "NO-GO: " + NO_VERDICT in output, output[-3000:]
    assert "skipped: gate" in output
    assert "cleanwithsnapshot.release.verify :" in output, "the checks ran; only the gate was skipped"
    assert "[DEPRECATION WARNING]" not in output, output[-3000:]


@pytest.mark.parametrize("selection", [
    ["--tags", "preflight"],                      # a part verify.yml does not have: nothing else runs
    ["--skip-tags", "always,gate,verify"],        # Ansible's documented way to skip `always` tasks
], ids=["tags-other-part", "skip-always"])
def test_verify_with_nothing_decided_is_not_a_pass(playbook, selection):
    proc = playbook("verify.yml", *selection)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert NO_VERDICT in output, output[-3000:]
