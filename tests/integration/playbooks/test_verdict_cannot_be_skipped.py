"""No way around the verdict: verify.yml with its gate skipped by tags, run for real against a reference stack with a
fault on, ends NO-GO (non-zero) saying that no verdict was made in this run - it used to end rc 0 with no report."""
from __future__ import annotations

import os

import pytest

from playbook_run import playbook_runner
from refstack import started_stack

NO_VERDICT = "no verdict was made in this run"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(pg_server):
    with started_stack(pg_server, "cws_noverdict_%d" % os.getpid(), layout=True) as ref:
        yield ref


@pytest.fixture()
def playbook(stack, tmp_path):
    runner = playbook_runner(stack, tmp_path)

    def run(name, *extra):
        return runner.run(name, *extra)

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
