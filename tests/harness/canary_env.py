"""A canary environment, all real and on 127.0.0.1: a reference stack's database, the stable service and the canary
as processes on fixed ports (servicectl.py is what the canary role's start, promote and remove commands run, where a
real install runs `docker compose`), Prometheus scraping both (jobs clean-api and api-canary, the test rules, through a
ScrapeRelay), Alertmanager wired to it, and Caddy splitting the traffic through the upstreams file the role writes.
The canary is not running after start: the role starts it. Used by tests/integration/canary and, through the command
line, by the Molecule scenario `canary`:

    python tests/harness/canary_env.py start --state S --local-out L --vars-out V   # own PostgreSQL cluster
    python tests/harness/canary_env.py fault --state S error_fraction fraction=0.05  # on the canary
    python tests/harness/canary_env.py run --state S --load-seconds 120 -- ansible-playbook canary.yml ...
    python tests/harness/canary_env.py stop --state S

The files written (state, inventory and canary variables) hold the throw-away stack's credentials: mode 0600.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# pylint: disable=wrong-import-position
from loadgen import LoadGenerator  # noqa: E402
from local_inventory import inventory_vars  # noqa: E402
from monitoring import (RULE_FILES, SERVICE_SCRAPE_INTERVAL, Alertmanager, Caddy, Prometheus, ScrapeRelay,  # noqa: E402
                        free_port, hostport)
from refstack import RefStack, _service_faults_module, file_fault_values, start_stack  # noqa: E402
from servicectl import ServiceSet, _write_private  # noqa: E402

SERVICECTL = HERE / "servicectl.py"


class CanaryEnvironment:
    def __init__(self, pg_facts, workdir):
        self.workdir = Path(workdir)
        self.app_dir = self.workdir / "app"
        self.app_dir.mkdir(parents=True, exist_ok=True)
        self.pg_facts = pg_facts
        self.stack = self.services = self.alertmanager = self.relay = self.prometheus = self.caddy = None

    def start(self):
        self.stack = start_stack(self.pg_facts, "cws_canary_%d" % os.getpid(), layout=True, app_name="api",
                                 state_dir=str(self.workdir / "stack"))
        self.services = ServiceSet(self.workdir / "services.json")
        env = self.stack.process_env()
        self.services.add("stable", free_port(), dict(env, APP_NAME="api"), self.workdir / "stable")
        self.services.add("canary", free_port(), dict(env, APP_NAME="api-canary"), self.workdir / "canary")
        self.services.start("stable")
        token = self.stack.metrics_token
        self.alertmanager = Alertmanager(self.workdir / "alertmanager").start()
        self.relay = ScrapeRelay(self.workdir / "relay").start()
        jobs = [{"job": "clean-api", "url": self.services.url("stable"), "token": token, "proxy_url": self.relay.proxy_url},
                {"job": "api-canary", "url": self.services.url("canary"), "token": token, "proxy_url": self.relay.proxy_url}]
        self.prometheus = Prometheus(self.workdir / "prometheus", jobs, rule_files=RULE_FILES,
                                     alertmanager_url=self.alertmanager.url, scrape_interval=SERVICE_SCRAPE_INTERVAL).start()
        self.caddy = Caddy(self.workdir / "caddy", upstreams_file=self.app_dir / "canary-upstreams.caddy",
                           upstreams=[self.stable_hostport]).start()
        self.prometheus.wait_for_target_up("clean-api")
        return self

    def daemon_pids(self):
        return {part.name: part.pid for part in (self.caddy, self.prometheus, self.relay, self.alertmanager)
                if part is not None and part.pid}

    def stop(self):
        for part in (self.caddy, self.prometheus, self.relay, self.alertmanager):
            if part is not None:
                part.stop()
        if self.services is not None:
            self.services.stop_all()
        if self.stack is not None:
            self.stack.stop()

    @property
    def stable_hostport(self):
        return hostport(self.services.url("stable"))

    @property
    def canary_hostport(self):
        return hostport(self.services.url("canary"))

    @property
    def state_file(self):
        return self.app_dir / ".canary-state.json"

    def canary_faults(self, **faults):
        self.service_faults("canary", **faults)

    def service_faults(self, name, **faults):
        """Replace the file faults of the ``stable`` or ``canary`` process."""
        stored = {fault: file_fault_values(fault, params)[1] for fault, params in faults.items()}
        _service_faults_module().save_faults(self.services.services[name]["state_dir"], stored)

    def reset(self):
        self.services.stop("canary")
        self.canary_faults()
        self.service_faults("stable")
        self.state_file.unlink(missing_ok=True)
        self.caddy.write_upstreams([self.stable_hostport])
        self.caddy.reload()
        self.stack.fresh_rate_window()
        # The stack runs no job loop: a fresh heartbeat, or /readyz (the canary's readiness) fails after 180 s.
        self.stack.run_jobs_once()

    def canary_vars(self, **overrides):
        ctl = [sys.executable, str(SERVICECTL), "--state", str(self.services.state_path)]
        values = {
            "canary_version": "v3",
            "canary_app_dir": str(self.app_dir),
            "canary_state_file": str(self.state_file),
            "canary_start_command": ctl + ["start", "canary"],
            "canary_promote_command": ctl + ["restart", "stable"],
            "canary_remove_command": ctl + ["stop", "canary"],
            "canary_compose_env": {},
            "canary_base_url": self.services.url("canary"),
            "canary_stable_base_url": self.services.url("stable"),
            "canary_stable_upstreams": [self.stable_hostport],
            "canary_canary_upstreams": [self.canary_hostport],
            "canary_caddy_upstreams_file": str(self.caddy.upstreams_file),
            "canary_caddy_reload": "admin_api",
            "canary_caddy_admin_url": self.caddy.admin_url,
            "canary_caddyfile": str(self.caddy.caddyfile),
            "canary_prometheus": {"url": self.prometheus.url},
            "canary_alertmanager_url": self.alertmanager.url,
            # Short stages for the tests (the real service: 10, 25, 50, 100 % and 300 s each), with the default
            # judge and limits: a pass at 1 % needs about 240 clean canary requests, and the load (40 a second, half
            # of it to the canary at 50 %) brings about 600 in 30 s; a look every 3 s (the scrape interval).
            "canary_stages": [50, 100],
            "canary_observation_seconds": 30,
            "canary_analysis_interval": 3,
            # The load goes to /healthz (the paths the rate limit does not count): here only Prometheus's scrapes are
            # not traffic. The real default also leaves out the health paths (Caddy's health checks).
            "canary_sli_selector": 'route!="/metrics"',
            "canary_readiness_deadline": 30,
        }
        values.update(overrides)
        return values

    def soak_vars(self, **overrides):
        values = {
            "soak_api_base_url": self.services.url("stable"),
            "soak_prometheus": {"url": self.prometheus.url},
            "soak_alertmanager_url": self.alertmanager.url,
            # Three rounds 3 s apart (prod: 30 rounds a minute apart), counted from the soak's start (3 s scrapes).
            "soak_duration_seconds": 9,
            "soak_interval_seconds": 3,
            "soak_sli_selector": 'route!="/metrics"',
            "soak_min_requests": 5,
        }
        values.update(overrides)
        return values

    def load(self, seconds, rate=40.0):
        return LoadGenerator(self.caddy.url, paths=("/healthz",), duration=seconds, rate=rate, concurrency=4)


def _stop_pid(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "fault", "clear", "run", "stop"])
    parser.add_argument("rest", nargs="*", help="fault: NAME k=v...")
    parser.add_argument("--state", required=True)
    parser.add_argument("--local-out")
    parser.add_argument("--vars-out")
    parser.add_argument("--load-seconds", type=float, default=0)
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[argv.index("--") + 1:] if "--" in argv else []  # run: the command after --
    args = parser.parse_intermixed_args(argv[:argv.index("--")] if "--" in argv else argv)
    state_path = Path(args.state)
    if args.action == "start":
        from pgcluster import PgCluster  # pylint: disable=import-outside-toplevel
        cluster = PgCluster()
        pg_facts = cluster.start()
        env = CanaryEnvironment(pg_facts, state_path.parent / "canary-env")
        try:
            env.start()
        except Exception:
            env.stop()
            cluster.stop()
            raise
        state = {"pg": pg_facts, "stack": env.stack.to_state(), "services": str(env.services.state_path),
                 "daemons": env.daemon_pids(), "caddy_url": env.caddy.url, "canary_dir": str(env.workdir / "canary")}
        _write_private(state_path, json.dumps(state, indent=1, sort_keys=True))
        if args.local_out:
            _write_private(args.local_out, json.dumps(inventory_vars(env.stack.facts()), indent=1, sort_keys=True))
        if args.vars_out:
            _write_private(args.vars_out, json.dumps(env.canary_vars(), indent=1, sort_keys=True))
        print("canary_env: up (stable %s, Caddy %s, Prometheus %s)" % (env.services.url("stable"), env.caddy.url,
                                                                       env.prometheus.url))
        return 0
    if not state_path.exists():
        if args.action == "stop":
            return 0
        raise SystemExit("canary_env: no state file %s" % state_path)
    state = json.loads(state_path.read_text())
    faults = _service_faults_module()
    if args.action == "fault":
        name, params = args.rest[0], dict(item.split("=", 1) for item in args.rest[1:])
        current = {}
        current[name] = file_fault_values(name, params)[1]
        faults.save_faults(state["canary_dir"], current)
    elif args.action == "clear":
        faults.save_faults(state["canary_dir"], {})
    elif args.action == "run":
        load = LoadGenerator(state["caddy_url"], paths=("/healthz",), duration=args.load_seconds, rate=40.0,
                             concurrency=4) if args.load_seconds else None
        if load:
            load.start()
        try:
            rc = subprocess.call(command)
        finally:
            if load:
                load.stop(timeout=15)
        if load:
            print("canary_env: load %s" % json.dumps(load.summary(), sort_keys=True, default=str))
        return rc
    elif args.action == "stop":
        for pid in state["daemons"].values():
            _stop_pid(pid)
        ServiceSet(state["services"]).stop_all()
        RefStack.from_state(state["stack"]).stop()
        from pgcluster import PgCluster  # pylint: disable=import-outside-toplevel
        PgCluster.from_facts(state["pg"]).stop()
        state_path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
