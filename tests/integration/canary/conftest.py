"""Fixtures for playbooks/canary.yml: the canary environment (tests/harness/canary_env.py), reset before and after
each test (canary stopped, no fault, Caddy on stable only, no canary state, a fresh rate-limit window)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from canary_env import CanaryEnvironment
from local_inventory import inventory_vars

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def canary_env(pg_server, tmp_path_factory):
    env = CanaryEnvironment(pg_server, tmp_path_factory.mktemp("canary"))
    try:
        env.start()
        yield env
    finally:
        env.stop()


@pytest.fixture()
def canary_playbook(canary_env, tmp_path):
    canary_env.reset()
    vars_file = tmp_path / "local-stack.json"
    vars_file.write_text(json.dumps(inventory_vars(canary_env.stack.facts())))
    artifacts = tmp_path / "artifacts"

    def run(*extra, load_seconds=0, check=False, playbook="canary.yml", **overrides):
        extra_vars = tmp_path / "extra-vars.json"
        values = canary_env.canary_vars(**overrides) if playbook == "canary.yml" else canary_env.soak_vars(**overrides)
        extra_vars.write_text(json.dumps(values))
        env = dict(os.environ, CWS_LOCAL_STACK=str(vars_file), CWS_ARTIFACTS_DIR=str(artifacts),
                   ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"), ANSIBLE_NOCOLOR="1",
                   HOME=str(tmp_path))
        command = [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", "local",
                   "-e", "@%s" % extra_vars] + (["--check"] if check else []) + list(extra)
        load = canary_env.load(load_seconds) if load_seconds else None
        if load:
            load.start()
            if playbook != "canary.yml":  # a soak measures at once: its first window must already hold traffic
                canary_env.prometheus.wait_for_samples(
                    'sum(increase(http_requests_total{job="clean-api",route!="/metrics"}[15s])) > 20', timeout=60)
        try:
            proc = subprocess.run(command, cwd=str(ROOT / "playbooks"), env=env, capture_output=True, text=True,
                                  timeout=600, check=False)
        finally:
            if load:
                load.stop(timeout=15)
        report_file = artifacts / "gonogo.json"
        report = json.loads(report_file.read_text()) if report_file.exists() else None
        if report_file.exists():
            report_file.unlink()
        return proc, report, load

    yield run
    canary_env.reset()
