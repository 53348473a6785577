"""The deploy lock with real, concurrent ansible-playbook runs (the lock role as deploy.yml, release.yml and
rollback.yml use it, around a part that holds the lock until the test says go): exactly one of two runs acts,
the other ends at once, NO-GO, naming who holds the lock; the lock is released after success and after
failure; an expired lock is broken only with release_lock_break=true, and the report says whose it was."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Window:
    """Runs of lock_window.yml against localhost, the app dir (where the lock lives) under tmp_path."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.app_dir = tmp_path / "app"
        self.app_dir.mkdir()
        self.lock = self.app_dir / ".release-lock"
        self.inventory = tmp_path / "hosts.yml"
        self.inventory.write_text(json.dumps({"all": {"children": {"app": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}))

    def start(self, name, *extra):
        run_dir = self.tmp / ("run-" + name)
        run_dir.mkdir()
        env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
        env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_HOME=str(run_dir / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(run_dir / "tmp"),
                   USER="user-" + name, HOME=str(run_dir))
        command = [str(ANSIBLE_PLAYBOOK), str(HERE / "lock_window.yml"), "-i", str(self.inventory),
                   "-e", "release_app_dir=%s" % self.app_dir, "-e", "window_dir=%s" % self.tmp,
                   "-e", "window_name=%s" % name, "-e", "release_artifacts_dir=%s" % (run_dir / "artifacts"),
                   "-e", "deploy_version=v-%s" % name] + list(extra)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return Run(name, proc, run_dir / "artifacts")

    def go(self):
        (self.tmp / "go").touch()

    def acting(self):
        return sorted(p.name[len("acting-"):] for p in self.tmp.glob("acting-*"))

    def holder(self):
        return json.loads(self.lock.read_text()) if self.lock.exists() else None


class Run:
    def __init__(self, name, proc, artifacts):
        self.name = name
        self.proc = proc
        self.artifacts = artifacts
        self.started = time.monotonic()
        self.output = None
        self.elapsed = None

    def wait(self, timeout=240):
        self.output = self.proc.communicate(timeout=timeout)[0]
        self.elapsed = time.monotonic() - self.started
        return self.proc.returncode

    def report(self):
        path = self.artifacts / "gonogo.json"
        return json.loads(path.read_text()) if path.exists() else None

    def lock_summary(self):
        return [c for c in self.report()["criteria"] if c["criterion"] == "deploy.lock"][0]["summary"]


@pytest.fixture()
def window(tmp_path):
    return Window(tmp_path)


def wait_until(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_two_concurrent_runs_exactly_one_acts_the_other_is_refused_naming_the_holder(window):
    first, second = window.start("a"), window.start("b")
    try:
        # Both race for the lock; the loser ends by itself while the winner waits for the go.
        assert wait_until(lambda: first.proc.poll() is not None or second.proc.poll() is not None), \
            "one of the two runs must be refused and end at once"
        loser = first if first.proc.poll() is not None else second
        winner = second if loser is first else first
        assert loser.wait() != 0, loser.output
        assert wait_until(lambda: window.acting() == [winner.name], timeout=60), (window.acting(), loser.output)
        assert window.acting() == [winner.name], "the refused run must not act"
        holder = window.holder()
        assert holder["user"] == "user-" + winner.name and holder["version"] == "v-" + winner.name
        assert holder["play"] == "lock_window.yml" and holder["controller"]
        # The refusal names the holder (user@controller, play, version, start) in the failure and in the report.
        for part in ("user-%s@%s" % (winner.name, holder["controller"]), "lock_window.yml",
                     "version v-" + winner.name, holder["started"], "deploy.lock"):
            assert part in loser.output, (part, loser.output[-3000:])
        report = loser.report()
        assert report["verdict"] == "NO-GO" and "deploy.lock" in report["failing"]
        assert "user-" + winner.name in loser.lock_summary()
        assert winner.proc.poll() is None, "the refused run must not release the winner's lock"
        assert window.holder()["run_id"] == holder["run_id"]
        window.go()
        assert winner.wait() == 0, winner.output[-3000:]
        assert winner.report()["verdict"] == "GO"
        assert not window.lock.exists(), "released after success"
    finally:
        window.go()
        for run in (first, second):
            if run.proc.poll() is None:
                run.proc.kill()
            run.proc.communicate()


def test_the_lock_is_released_after_a_failure(window):
    window.go()
    run = window.start("f", "-e", "window_fail=true")
    assert run.wait() != 0, run.output
    assert "the acting part failed on request" in run.output
    assert window.acting() == ["f"] and not window.lock.exists(), "released after the failure"
    again = window.start("g")
    assert again.wait() == 0, again.output[-3000:]
    assert not window.lock.exists()


def test_an_expired_lock_is_broken_only_with_the_variable_and_the_report_says_so(window):
    window.go()
    stale = {"run_id": "gone-run", "controller": "old-controller", "user": "olduser", "play": "deploy.yml",
             "version": "v-old", "started_epoch": int(time.time()) - 7200, "started": "2026-01-01T00:00:00+00:00",
             "pid": 1}
    window.lock.write_text(json.dumps(stale))
    kept = window.start("k", "-e", "release_lock_expiry=60")
    assert kept.wait() != 0, kept.output
    assert "olduser@old-controller" in kept.output and "release_lock_break=true" in kept.output
    assert window.acting() == [] and window.holder()["run_id"] == "gone-run", "not broken without the variable"
    fresh = window.start("n", "-e", "release_lock_expiry=100000", "-e", "release_lock_break=true")
    assert fresh.wait() != 0, "a lock younger than its expiry is not broken, even with the variable"
    assert window.holder()["run_id"] == "gone-run"
    broke = window.start("x", "-e", "release_lock_expiry=60", "-e", "release_lock_break=true")
    assert broke.wait() == 0, broke.output[-3000:]
    summary = broke.lock_summary()
    assert "BROKE the expired lock of olduser@old-controller" in summary and "since 2026-01-01T00:00:00+00:00" in summary
    assert "BROKE the expired lock" in (broke.artifacts / "gonogo.md").read_text()
    assert window.acting() == ["x"] and not window.lock.exists()


@pytest.mark.parametrize("extra", [[], ["--check"]], ids=["run", "check-mode"])
def test_the_lock_role_prints_no_deprecation_warning(window, extra):
    """The lock role runs in every release, deploy and rollback: a deprecation it prints reaches every user (the bool
    filter given the module's null 'broken' did, on every run)."""
    window.go()
    run = window.start("w", *extra)
    rc = run.wait()
    assert "[DEPRECATION WARNING]" not in run.output, run.output[-3000:]
    # A lock only planned in check mode is not verified: never GO there.
    assert (rc == 0) == (not extra), run.output[-3000:]
    assert "Release the deploy lock this run holds" in run.output
