"""Run a collection module the way Ansible does on a node: a separate Python process reading its
arguments from a JSON file. Returns the parsed result plus the raw output (for leak checks)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".build" / "collections"


class ModuleRun(dict):
    """The module's JSON result; ``raw`` holds stdout + stderr exactly as printed."""

    raw = ""
    returncode = 0


# Modules whose action plugin keeps the controller's rate-limit ledger: run here with the same ledger logic, so
# consecutive module runs against one service share its budget as they do under ansible-playbook.
LEDGERED = ("readiness_probe", "basic_auth_endpoint")


def run_module(name, args, check_mode=False, timeout=300, env=None):
    if name not in LEDGERED:
        return _run_process(name, args, check_mode, timeout, env)
    if str(COLLECTIONS) not in sys.path:  # the benchmarks import this module without the tests' conftest
        sys.path.insert(0, str(COLLECTIONS))
    from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import rate_ledger  # pylint: disable=import-outside-toplevel
    rate = args.get("rate_limit") if isinstance(args.get("rate_limit"), dict) else {}
    try:
        deadline = float(args.get("deadline") or 60)
    except (TypeError, ValueError):
        deadline = 60.0
    runs = []

    def execute(module_args):
        runs.append(_run_process(name, module_args, check_mode, timeout, env))
        return runs[-1]

    rate_ledger.run_with_ledger(execute, args, rate, args.get("base_url"), rate.get("client") or "controller", deadline)
    return runs[-1]


def _run_process(name, args, check_mode, timeout, env):
    module_path = ROOT / "plugins" / "modules" / ("%s.py" % name)
    payload = dict(args)
    payload["_ansible_check_mode"] = check_mode
    payload.setdefault("_ansible_verbosity", 4)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
        args_file = handle.name
    run_env = dict(os.environ)
    run_env["PYTHONPATH"] = os.pathsep.join([str(COLLECTIONS)] + ([run_env["PYTHONPATH"]] if run_env.get("PYTHONPATH") else []))
    run_env.update(env or {})
    try:
        proc = subprocess.run([sys.executable, str(module_path), args_file], capture_output=True, text=True,
                              timeout=timeout, env=run_env, check=False)
    finally:
        os.unlink(args_file)
    result = None
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                continue
    if result is None:
        raise AssertionError("module %s printed no JSON result (rc=%s):\nstdout: %s\nstderr: %s"
                             % (name, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    run = ModuleRun(result)
    run.raw = proc.stdout + proc.stderr
    run.returncode = proc.returncode
    return run


def records_by_name(result):
    return {record["name"]: record for record in result.get("records", [])}
