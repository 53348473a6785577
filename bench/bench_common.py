"""Shared parts of the playbook benchmarks (not tests): a PostgreSQL cluster and reference stacks, the local
inventory's variables, timed ansible-playbook runs (optionally of an older revision of the collection, for
before/after comparisons in one run) and a few statistics."""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))

from local_inventory import inventory_vars  # noqa: E402  pylint: disable=wrong-import-position
from pgcluster import running_or_new  # noqa: E402  pylint: disable=wrong-import-position
import refstack  # noqa: E402  pylint: disable=wrong-import-position

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
COLLECTION = ("cleanwithsnapshot", "release")


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


# The cluster named by PGHARNESS_STATE, or one of our own for the duration.
pg_cluster = running_or_new


def start_stack(pg_facts, name, rate_limit=30):
    """A reference stack with the real service's rate limit unless ``rate_limit`` says otherwise."""
    return refstack.start_stack(pg_facts, name, layout=True, rate_limit=rate_limit)


def write_vars(path, data):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)


def stack_vars(stack):
    return inventory_vars(stack.facts())


class CollectionTree:
    """A checkout of the collection at a git revision (``ref``) or the working tree (``ref=None``), laid out as
    a collections path, so two revisions can be timed in one benchmark run."""

    def __init__(self, workdir, ref=None):
        self.ref = ref
        if ref is None:
            self.collections = ROOT / ".build" / "collections"
            self.root = ROOT
            return
        self.collections = Path(workdir) / ("collections-%s" % ref.replace("/", "_"))
        self.root = self.collections / "ansible_collections" / COLLECTION[0] / COLLECTION[1]
        self.root.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], check=True,
                                 capture_output=True).stdout
        with tempfile.TemporaryFile() as handle:
            handle.write(archive)
            handle.seek(0)
            with tarfile.open(fileobj=handle) as tar:
                tar.extractall(str(self.root))  # noqa: S202 (our own repository's archive)
        # The inventory's group_vars live in inventories/local; playbooks/local is a symlink to it.

    @property
    def playbooks(self):
        return self.root / "playbooks"

    @property
    def label(self):
        return "working tree" if self.ref is None else "at %s" % self.ref


def run_playbook(tree, playbook, vars_file, workdir, extra=(), env=None, inventory="local", timeout=1200):
    """One timed ``ansible-playbook <playbook> -i <inventory>`` from the tree's playbooks directory. Returns
    (seconds, returncode, gonogo report or None, stdout)."""
    artifacts = Path(tempfile.mkdtemp(prefix="artifacts-", dir=str(workdir)))
    run_env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    run_env.update({
        "CWS_LOCAL_STACK": str(vars_file), "CWS_ARTIFACTS_DIR": str(artifacts),
        "ANSIBLE_COLLECTIONS_PATH": str(tree.collections), "ANSIBLE_NOCOLOR": "1",
    })
    run_env.update(env or {})
    command = [ANSIBLE_PLAYBOOK, str(playbook), "-i", str(inventory)] + [str(item) for item in extra]
    started = time.monotonic()
    proc = subprocess.run(command, cwd=str(tree.playbooks), env=run_env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    seconds = time.monotonic() - started
    report_file = artifacts / "gonogo.json"
    report = json.loads(report_file.read_text(encoding="utf-8")) if report_file.exists() else None
    shutil.rmtree(str(artifacts), ignore_errors=True)
    return seconds, proc.returncode, report, proc.stdout + proc.stderr


def finish(out, json_path):
    """Write the figures to ``json_path`` (if given); the exit code: 0 when every target in ``out["met"]`` is met."""
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(out, handle, indent=1, sort_keys=True)
    return 0 if all(out["met"].values()) else 1


def summary(values):
    values = sorted(values)
    return {"median": round(statistics.median(values), 3), "min": round(values[0], 3), "max": round(values[-1], 3),
            "n": len(values)}


def task_times(output):
    """The task_timer callback's lines: [(seconds, task name)]."""
    rows = []
    started = False
    for line in output.splitlines():
        if line.startswith("TASK TIMES"):
            started = True
            continue
        if started:
            parts = line.strip().split(" s  ", 1)
            if len(parts) == 2:
                try:
                    rows.append((float(parts[0]), parts[1]))
                except ValueError:
                    break
    return rows
