"""`make demo` (scripts/demo.sh) leaves nothing running: the reference service and its PostgreSQL are stopped on
every way out. The demo used to stop its stack through a relative path after `cd playbooks`, errors thrown away,
so both kept running. Here the demo runs for real up to its second step, which fails at once on a fault name the
harness does not know (a failed step, after the playbooks ran from playbooks/), and every process of its stack must
be gone when the script has ended."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _alive(pid):
    """A live, not zombie, process."""
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def _processes_mentioning(*paths):
    """Pids of live processes whose command line names one of the paths (the stack's data and state folders)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if any(path in cmdline for path in paths) and _alive(int(entry)):
            found.append((int(entry), cmdline))
    return found


@pytest.fixture()
def demo_dir(tmp_path):
    path = tmp_path / "demo"
    yield path
    # Should the demo leave its stack behind (the failure this test finds), stop it: others share this machine.
    if (path / "refstack.json").exists():
        subprocess.run([sys.executable, str(ROOT / "tests" / "harness" / "refstack.py"), "stop", "--state",
                        str(path / "refstack.json")], check=False, timeout=120)


def test_the_demo_stops_its_stack_when_a_step_fails_after_the_playbooks_ran(tmp_path, demo_dir):
    env = dict(os.environ, DEMO_DIR=str(demo_dir), DEMO_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
               DEMO_FAULT="no_such_fault_for_the_test")
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "demo.sh")], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state_file = demo_dir / "refstack.json"
    state = None
    try:
        # The state file appears once the stack is up; read it before the demo's stop removes it. The deadline
        # bounds a hung start on a loaded machine; it is not what the test asserts.
        deadline = time.monotonic() + 300
        while state is None and proc.poll() is None and time.monotonic() < deadline:
            try:
                state = json.loads(state_file.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.2)
        postmaster_pid = None
        if state is not None:
            # The PostgreSQL server's own pid, while it runs (its data folder goes with the stop).
            postmaster_pid = int((Path(state["pg"]["base_dir"]) / "data" / "postmaster.pid").read_text().split()[0])
        output = proc.communicate(timeout=900)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert state is not None, "the demo never started its stack:\n" + output[-3000:]
    assert proc.returncode != 0, output[-3000:]
    assert "1. Healthy stack" in output and "2. Fault switched on" in output, output[-3000:]

    service_pid = state["facts"]["service_pid"]
    pg_base_dir = state["pg"]["base_dir"]
    stack_dir = state["facts"]["state_dir"]
    assert service_pid and pg_base_dir and stack_dir
    assert not _alive(service_pid), "the reference service survived the demo:\n" + output[-3000:]
    assert not _alive(postmaster_pid), "the demo's PostgreSQL survived the demo:\n" + output[-3000:]
    assert not _processes_mentioning(pg_base_dir, stack_dir), "a process of the demo's stack survived"
    assert not os.path.exists(pg_base_dir) and not state_file.exists()
    assert "could not stop" not in output, output[-3000:]
