"""A real ``ansible-playbook`` run (connection local) of readiness_probe against the scripted server, with a ledger
entry that leaves the service's window full: the action plugin prints, at default verbosity and before the module
runs, how long the call waits and why - or that its deadline comes first and nothing is sent. Asserted on the printed
line and on the requests the server received, never on elapsed time."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.rate_budget import origin_of
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import rate_ledger as rl

from scripted_http import answer

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# 2 requests per 20 s, 1 kept in reserve: one send of an earlier run fills the window for 20 s.
RATE = {"requests": 2, "window": 20.0, "margin": 1}


def probe_task(name, base_url, deadline):
    return {"name": name, "cleanwithsnapshot.release.readiness_probe": {
        "base_url": base_url, "deadline": deadline, "rate_limit": RATE,
        "probes": [{"name": "me", "path": "/v1/me", "criterion": "smoke.me"}]}, "ignore_errors": True}


def test_a_call_that_must_wait_for_the_window_says_how_long_and_why(server, tmp_path):
    server.script("/v1/me", *([answer(200, {"id": 1})] * 3))
    ledger = tmp_path / "ledger"
    ledger.mkdir(mode=0o700)
    origin = origin_of(server.base_url)
    (ledger / rl.entry_name(origin, "controller")).write_text(json.dumps(
        {"format": 1, "origin": origin, "client": "controller", "window": RATE["window"], "sends": [time.time()]}),
        encoding="utf-8")
    play = [{"name": "window", "hosts": "all", "gather_facts": False, "tasks": [
        probe_task("deadline first", server.base_url, 3), probe_task("waits", server.base_url, 60)]}]
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
    env = dict((key, value) for key, value in os.environ.items() if not key.startswith("ANSIBLE_"))
    env.update({"ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"), "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"), "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
                "ANSIBLE_RETRY_FILES_ENABLED": "false", rl.ENV_DIR: str(ledger)})
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(playbook),
                           "-e", "ansible_python_interpreter=%s" % sys.executable],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    why = (r"\(2 requests per 20 s, 1 kept in reserve; 1 sent within the window by earlier runs from this controller; "
           r"1 counted requests planned, retries on top\)")
    first = re.search(r"deadline first: the rate-limit window of %s has no room for this call's requests for about "
                      r"\d+ s, after its deadline \(3 s\): the requests that do not fit are not sent %s"
                      % (re.escape(origin), why), output)
    assert first, output
    second = re.search(r"waits: waiting about \d+ s for the rate-limit window of %s before this call's requests can go "
                       r"%s" % (re.escape(origin), why), output)
    assert second, output
    # Printed before the module ran: the line comes before the task's result.
    assert first.start() < output.index("TASK [waits]") < second.start() < output.index("PLAY RECAP")
    # The first call sent nothing; the second waited for the window and sent its one request.
    assert len(server.hits("/v1/me")) == 1
