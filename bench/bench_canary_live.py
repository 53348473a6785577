"""Benchmark (not a test): the canary's judgement end to end, against real Prometheus (2.42) and Caddy (2.6) in front
of a stable and a canary reference service, with the canary role's defaults (sequential judge; 1 % 5xx, 1 % not
2xx/3xx, 5 % slower than 0.25 s, against stable +1 point of 5xx and +10 points slower than 0.1 s; alpha 0.01 split
over stages x metrics, beta 0.1).

1. Healthy canaries in a row (``--healthy``, default 10): playbooks/canary.yml run for real
   (tests/harness/canary_env.py), a steady load through Caddy and a few slow requests on both variants (every few
   seconds both get +300 ms for a tenth of a second: coarse buckets with a tail, as on the real service). Reports how
   many were rolled back (goal 0) and why. The stages are options (``--stages``, ``--observation``, ``--interval``)
   so that a run takes minutes; the load must bring the first stage the ~240 canary requests a pass at 1 % needs.
2. Decision time for a gross fault at the real service's traffic (``--rate`` 10 requests a second through Caddy,
   the canary at 10 %: about one canary request a second), for both sources (Prometheus, direct scrape) and both
   faults (20 % of the canary's requests 5xx; +400 ms on every canary request), with Prometheus scraping every 5 s
   and every 15 s (``--scrapes``). The analysis runs as the canary role runs it (slo_analysis with the role's
   metrics, counted from a baseline at the start); the fault is switched on after the baseline, and the time from
   the first failing canary request (seen by the load's client) to the module's answer is compared with the goal:
   one analysis interval + one scrape interval + 2 s. Also reported: the canary requests the decision took.

    .venv/bin/python bench/bench_canary_live.py [--healthy 10] [--stages 25,50,100] [--observation 30]
        [--interval 10] [--decision-rounds 1] [--scrapes 5,15] [--skip-healthy] [--skip-decision] [--json out.json]

Uses the cluster named by PGHARNESS_STATE if set, else starts (and removes) one of its own.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_common import ANSIBLE_PLAYBOOK, finish, pg_cluster, summary  # noqa: E402  pylint: disable=wrong-import-position
from canary_env import CanaryEnvironment  # noqa: E402  pylint: disable=wrong-import-position
from local_inventory import inventory_vars  # noqa: E402  pylint: disable=wrong-import-position
from modrun import run_module  # noqa: E402  pylint: disable=wrong-import-position
from monitoring_fixtures import CANARY_JOB, STABLE_JOB, MonitoringStack  # noqa: E402  pylint: disable=wrong-import-position

UPSTREAM_HEADER = "X-Canary-Upstream"
USER_REQUESTS = 'route!="/metrics"'
# The canary role's defaults (roles/canary/defaults/main.yml) for four stages and five metrics.
ROLE_ALPHA = 0.01 / (4 * 5)
ROLE_BETA = 0.1


def role_metrics():
    """The canary role's default metrics (canary_slo_metrics + canary_compare_metrics)."""
    return [
        {"name": "error_rate", "kind": "error_rate", "variant": "canary", "condition": {"op": "le", "value": 0.01}},
        {"name": "availability", "kind": "availability", "variant": "canary", "condition": {"op": "ge", "value": 0.99}},
        {"name": "slow_share", "criterion": "slo.latency_p95", "kind": "slow_share", "boundary": 0.25,
         "variant": "canary", "condition": {"op": "le", "value": 0.05}},
        {"name": "vs_stable_error_rate", "criterion": "slo.vs_stable", "kind": "error_rate", "variant": "canary",
         "compare": {"baseline_variant": "stable", "max_increase": 0.01}},
        {"name": "vs_stable_slow_share", "criterion": "slo.vs_stable", "kind": "slow_share", "boundary": 0.1,
         "variant": "canary", "compare": {"baseline_variant": "stable", "max_increase": 0.1}},
    ]


# ----------------------------------------------------------------------------------------- 1. healthy canaries

class SlowSprinkler:
    """Every ``every`` seconds both variants answer +``ms`` for ``burst`` seconds: a few slow requests on both."""

    def __init__(self, env, every=5.0, burst=0.1, ms=300):
        self.env, self.every, self.burst, self.ms = env, every, burst, ms
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_event.wait(self.every):
            self.env.canary_faults(added_latency={"ms": self.ms})
            self.env.service_faults("stable", added_latency={"ms": self.ms})
            time.sleep(self.burst)
            self.env.canary_faults()
            self.env.service_faults("stable")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=30)
        self.env.canary_faults()
        self.env.service_faults("stable")


def run_canary(env, workdir, number, overrides, rate):
    """One canary.yml run with a steady load and the sprinkler: (verdict, not-pass criteria, load summary, seconds)."""
    env.reset()
    run_dir = Path(workdir) / ("canary-%d" % number)
    run_dir.mkdir()
    local = run_dir / "local-stack.json"
    local.write_text(json.dumps(inventory_vars(env.stack.facts())))
    extra = run_dir / "extra-vars.json"
    extra.write_text(json.dumps(env.canary_vars(**overrides)))
    artifacts = run_dir / "artifacts"
    run_env = dict(os.environ, CWS_LOCAL_STACK=str(local), CWS_ARTIFACTS_DIR=str(artifacts), HOME=str(run_dir),
                   ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"), ANSIBLE_NOCOLOR="1")
    seconds = len(overrides["canary_stages"]) * overrides["canary_observation_seconds"] + 120
    load = env.load(seconds, rate=rate)
    started = time.monotonic()
    with SlowSprinkler(env):
        load.start()
        try:
            proc = subprocess.run([ANSIBLE_PLAYBOOK, "canary.yml", "-i", "local", "-e", "@%s" % extra],
                                  cwd=str(ROOT / "playbooks"), env=run_env, capture_output=True, text=True, timeout=3600,
                                  check=False)
        finally:
            load.stop(timeout=15)
    elapsed = time.monotonic() - started
    report_file = artifacts / "gonogo.json"
    if not report_file.exists():
        return "no report", [proc.stdout[-1500:]], load.summary(), elapsed
    report = json.loads(report_file.read_text())
    problems = ["%s %s: %s" % (c["criterion"], c["outcome"], c["summary"][:240]) for c in report["criteria"]
                if c["outcome"] not in ("pass", "advisory")]
    return report["verdict"], problems, load.summary(), elapsed


def healthy_canaries(pg, workdir, opts):
    overrides = {"canary_stages": [int(s) for s in opts.stages.split(",")],
                 "canary_observation_seconds": opts.observation, "canary_analysis_interval": opts.interval}
    env = CanaryEnvironment(pg, Path(workdir) / "canary-env").start()
    runs = []
    try:
        for number in range(1, opts.healthy + 1):
            verdict, problems, load, elapsed = run_canary(env, workdir, number, overrides, opts.rate_healthy)
            runs.append({"verdict": verdict, "problems": problems, "seconds": round(elapsed, 1),
                         "requests": load["answered"], "by_status": load["by_status"], "p95_s": load["p95_s"]})
            print("  healthy canary %d: %s in %.0f s (%d requests, client p95 %s s)%s" % (
                number, verdict, elapsed, load["answered"], load["p95_s"],
                "".join("\n      " + p for p in problems)), flush=True)
    finally:
        env.stop()
    rolled_back = sum(1 for run in runs if run["verdict"] != "GO")
    return {"stages": overrides["canary_stages"], "observation_s": opts.observation, "interval_s": opts.interval,
            "load_rate": opts.rate_healthy, "canaries": len(runs), "rolled_back": rolled_back, "runs": runs}


# ----------------------------------------------------------------------------------------- 2. decision time

class PacedLoad:
    """GET /healthz through Caddy at ``rate`` a second (one request at a time, paced), recording when each canary
    request was sent and how it was answered (Caddy's X-Canary-Upstream header names the upstream)."""

    def __init__(self, url, canary_hostport, rate):
        self.url, self.canary, self.period = url + "/healthz", canary_hostport, 1.0 / rate
        self.canary_requests = []  # (sent wall time, status, seconds)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            sent = time.time()
            begun = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as resp:
                    status, upstream = resp.status, resp.headers.get(UPSTREAM_HEADER)
            except urllib.error.HTTPError as exc:
                status, upstream = exc.code, exc.headers.get(UPSTREAM_HEADER)
            except OSError:
                status, upstream = None, None
            if upstream == self.canary:
                self.canary_requests.append((sent, status, time.monotonic() - begun))
            next_at += self.period
            self.stop_event.wait(max(0.0, next_at - time.monotonic()))

    def first_failing(self, after, fault):
        """The wall time the first canary request that shows the fault (a 500; or slower than 0.25 s) was sent."""
        for sent, status, seconds in self.canary_requests:
            if sent >= after and ((fault == "errors" and status == 500) or (fault == "slow" and seconds > 0.25)):
                return sent
        return None

    def canary_count(self, after, until):
        return sum(1 for sent, _status, _seconds in self.canary_requests if after <= sent <= until)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=30)


def decision_args(mon, source, interval):
    metrics = role_metrics()
    defaults = {"judge": "sequential", "false_fail_rate": ROLE_ALPHA, "false_pass_rate": ROLE_BETA,
                "interval": interval, "count": 30}
    if source == "prometheus":
        variants = {"canary": 'job="%s",%s' % (CANARY_JOB, USER_REQUESTS),
                    "stable": 'job="%s",%s' % (STABLE_JOB, USER_REQUESTS)}
        return {"prometheus": {"url": mon.prometheus.url, "variants": variants}, "metrics": metrics,
                "defaults": defaults, "deadline": 30 * interval + 120}
    client = {"X-Forwarded-For": "198.18.251.7"}
    return {"source": "scrape", "metrics": metrics, "defaults": defaults, "deadline": 30 * interval + 120,
            "scrape": {"targets": [
                {"variant": "canary", "url": mon.canary_url + "/metrics", "bearer_token": mon.token, "headers": client},
                {"variant": "stable", "url": mon.stable_url + "/metrics", "bearer_token": mon.token, "headers": client}]}}


def decision_round(mon, load, source, fault, interval, offset):
    """Start the analysis, switch the fault on ``offset`` s into the first interval after the baseline, and measure
    from the first failing canary request to the module's answer."""
    holder = {}

    def call():
        holder["result"] = run_module("slo_analysis", decision_args(mon, source, interval), timeout=30 * interval + 200)
        holder["ended"] = time.time()
    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(2.0 + offset)  # the process starts and takes its baseline (a bench: a sleep is fine here)
    switched = time.time()
    if fault == "errors":
        mon.canary.set_fault("error_fraction", fraction=0.2)
    else:
        mon.canary.set_fault("added_latency", ms=400)
    thread.join(timeout=30 * interval + 300)
    mon.canary.clear_faults()
    result = holder["result"]
    failed = [r for r in result["records"] if r["status"] == "fail"]
    first = load.first_failing(switched, fault)
    if not failed or first is None:
        return {"decided": False, "statuses": {r["name"]: r["status"] for r in result["records"]}}
    deciding = failed[0]["evidence"]["measurements"][-1]
    return {"decided": True, "metric": failed[0]["name"], "decision_s": round(holder["ended"] - first, 2),
            "canary_requests": load.canary_count(first, holder["ended"]), "judged_total": deciding.get("total"),
            "judged_bad": deciding.get("bad"), "looks": len(failed[0]["evidence"]["measurements"])}


def decision_times(pg, workdir, opts):
    out = {}
    for scrape in [int(s) for s in opts.scrapes.split(",")]:
        goal = opts.interval + scrape + 2.0
        with MonitoringStack(pg, os.path.join(workdir, "mon-%ds" % scrape), scrape_interval="%ds" % scrape) as mon:
            mon.prometheus.wait_for_target_up(CANARY_JOB)
            mon.set_weights(canary=1, stable=9)
            with PacedLoad(mon.caddy.url, mon.canary_hostport, opts.rate) as load:
                mon.prometheus.wait_for_samples('sum(http_requests_total{job="%s",%s}) > 5' % (CANARY_JOB, USER_REQUESTS),
                                                timeout=120)
                for source in ("prometheus", "scrape"):
                    for fault in ("errors", "slow"):
                        rounds = []
                        for number in range(opts.decision_rounds):
                            offset = opts.interval * (number + 0.5) / opts.decision_rounds
                            rounds.append(decision_round(mon, load, source, fault, opts.interval, offset))
                        decided = [r["decision_s"] for r in rounds if r["decided"]]
                        key = "scrape_%ds_%s_%s" % (scrape, source, fault)
                        out[key] = {"goal_s": goal, "rounds": rounds,
                                    "decision_s": summary(decided) if decided else None,
                                    "within_goal": bool(decided) and len(decided) == len(rounds) and max(decided) <= goal}
                        print("  %-32s %s (goal %.0f s)" % (key, ", ".join(
                            "%.1f s after %s canary requests (%s)" % (r["decision_s"], r["canary_requests"], r["metric"])
                            if r["decided"] else "undecided %s" % r["statuses"] for r in rounds), goal), flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--healthy", type=int, default=10, help="healthy canaries in a row")
    parser.add_argument("--stages", default="25,50,100", help="the healthy runs' stages (the role: 10,25,50,100)")
    parser.add_argument("--observation", type=int, default=30, help="seconds per stage (the role: 300)")
    parser.add_argument("--interval", type=int, default=10, help="analysis interval (the role: 10)")
    parser.add_argument("--rate-healthy", type=float, default=40.0, help="requests a second through Caddy, healthy runs")
    parser.add_argument("--rate", type=float, default=10.0, help="requests a second through Caddy, decision runs")
    parser.add_argument("--scrapes", default="5,15", help="Prometheus scrape intervals of the decision runs (s)")
    parser.add_argument("--decision-rounds", type=int, default=1, help="rounds per source, fault and scrape interval")
    parser.add_argument("--skip-healthy", action="store_true")
    parser.add_argument("--skip-decision", action="store_true")
    parser.add_argument("--json", help="write the figures here")
    opts = parser.parse_args()
    out = {"machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()[0]}, "met": {}}
    with pg_cluster() as pg, tempfile.TemporaryDirectory(prefix="bench-canary-live-") as workdir:
        if not opts.skip_healthy:
            print("healthy canaries (stages %s, %d s each, a look every %d s, %g requests a second):"
                  % (opts.stages, opts.observation, opts.interval, opts.rate_healthy), flush=True)
            out["healthy"] = healthy_canaries(pg, workdir, opts)
            out["met"]["healthy_none_rolled_back"] = out["healthy"]["rolled_back"] == 0
            print("  rolled back: %d of %d (goal 0)" % (out["healthy"]["rolled_back"], out["healthy"]["canaries"]))
        if not opts.skip_decision:
            print("decision time, gross faults, %g requests a second (canary 10 %%), a look every %d s:"
                  % (opts.rate, opts.interval), flush=True)
            out["decision"] = decision_times(pg, workdir, opts)
            for key, item in out["decision"].items():
                out["met"]["decision_%s_within_goal" % key] = item["within_goal"]
    out["machine"]["loadavg_end"] = os.getloadavg()[0]
    print("targets: %s" % ", ".join("%s=%s" % (k, "met" if v else "MISSED") for k, v in out["met"].items()))
    return finish(out, opts.json)


if __name__ == "__main__":
    sys.exit(main())
