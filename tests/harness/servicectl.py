"""Start, stop and restart reference service processes on fixed ports, from the command line: what the canary
role's start, promote and remove commands run in the tests (where a real install runs `docker compose`).

    python tests/harness/servicectl.py --state F start canary
    python tests/harness/servicectl.py --state F restart stable      # the promotion: stable runs the new release
    python tests/harness/servicectl.py --state F stop canary

The state file (mode 0600, it holds the service's settings) maps a name to {port, env, state_dir}; ServiceSet
writes it. Each process's pid is kept beside it. A start of a running process does nothing (like `up -d`),
a stop of a stopped one too.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVICE_ROOT = Path(__file__).resolve().parents[1] / "reference_service"


def _write_private(path, text):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


class ServiceSet:
    """Named reference service processes sharing one stack's database; fixed ports, own state dirs."""

    def __init__(self, state_path, python=None):
        self.state_path = Path(state_path)
        self.python = python or sys.executable
        self.services = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}

    def add(self, name, port, env, state_dir):
        os.makedirs(state_dir, exist_ok=True)
        self.services[name] = {"port": int(port), "env": {k: str(v) for k, v in env.items()}, "state_dir": str(state_dir)}
        _write_private(self.state_path, json.dumps(self.services, indent=1, sort_keys=True))

    def url(self, name):
        return "http://127.0.0.1:%d" % self.services[name]["port"]

    def _pid_file(self, name):
        return Path(self.services[name]["state_dir"]) / ("servicectl-%s.pid" % name)

    def pid(self, name):
        try:
            pid = int(self._pid_file(name).read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def start(self, name, timeout=20):
        if self.pid(name):
            return False
        spec = self.services[name]
        env = dict(os.environ)
        env.update(spec["env"])
        env["REFSERVICE_STATE_DIR"] = spec["state_dir"]
        log = open(os.path.join(spec["state_dir"], "servicectl-%s.log" % name), "ab")  # pylint: disable=consider-using-with
        proc = subprocess.Popen([self.python, "-m", "refservice", "--host", "127.0.0.1", "--port", str(spec["port"])],
                                env=env, cwd=str(SERVICE_ROOT), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._pid_file(name).write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("%s exited with %s; see %s" % (name, proc.returncode, log.name))
            try:
                with urllib.request.urlopen(self.url(name) + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("%s did not answer /healthz within %ss" % (name, timeout))

    def stop(self, name, timeout=10):
        pid = self.pid(name)
        if not pid:
            return False
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)  # a stopped (hung) process acts on SIGTERM only once it runs again
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                # Reap it when it is our child (the fixture's own calls); harmless otherwise.
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            except OSError:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        self._pid_file(name).unlink(missing_ok=True)
        return True

    def stop_all(self):
        for name in list(self.services):
            self.stop(name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True)
    parser.add_argument("action", choices=["start", "stop", "restart", "status"])
    parser.add_argument("name")
    args = parser.parse_args(argv)
    services = ServiceSet(args.state)
    if args.name not in services.services:
        raise SystemExit("servicectl: no service %r in %s" % (args.name, args.state))
    if args.action == "status":
        print(json.dumps({"name": args.name, "running": bool(services.pid(args.name)), "url": services.url(args.name)}))
        return 0
    if args.action in ("stop", "restart"):
        services.stop(args.name)
    if args.action in ("start", "restart"):
        services.start(args.name)
    print("servicectl: %s %s" % (args.name, args.action))
    return 0


if __name__ == "__main__":
    sys.exit(main())
