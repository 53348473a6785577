"""Benchmark (not a test): how long from the moment a canary starts failing to slo_analysis's rollback decision.

A canary and a stable reference service behind Caddy at 1:1 take a steady load (40 requests/s); slo_analysis
measures the canary's error rate every ``--interval`` seconds; after two healthy measurements the canary starts
answering 5 % 5xx (the error_fraction fault). The time from switching the fault on to the module's answer (a
``fail`` record) is the decision time. Target: at most one analysis interval plus one scrape interval plus 2 s.

- prometheus: Prometheus scrapes every 3 s (the reference service's rate limit counts /metrics: 3 s is the fastest
  that stays under 30 a minute); the PromQL window is two scrapes and a second, so the first failing scrape moves it.
- scrape: the module scrapes the canary's /metrics itself, one delta per interval (no scrape interval of its own:
  the target is one interval plus 2 s).

    .venv/bin/python bench/bench_canary_decision.py [--rounds 3] [--interval 3] [--json FILE]

Uses the cluster named by PGHARNESS_STATE if set, else starts (and removes) one of its own.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time

from bench_common import ROOT, finish, pg_cluster

sys.path.insert(0, str(ROOT / "tests"))
from canary_env import CanaryEnvironment  # noqa: E402  pylint: disable=wrong-import-position
from harness.modrun import run_module  # noqa: E402  pylint: disable=wrong-import-position

SCRAPE_INTERVAL = 3.0
WINDOW = "7s"


def metric(source, env, interval):
    common = {"name": "error_rate", "condition": {"op": "le", "value": 0.01}, "interval": interval, "count": 40,
              "consecutive_error_limit": 4}
    if source == "prometheus":
        selector = 'job="api-canary",route!="/metrics"'
        common.update(query='sum(rate(http_requests_total{%s,status_class="5xx"}[%s]) or vector(0)) / '
                            'sum(rate(http_requests_total{%s}[%s]))' % (selector, WINDOW, selector, WINDOW),
                      traffic={"query": 'sum(increase(http_requests_total{%s}[%s]))' % (selector, WINDOW), "min": 1})
        return {"source": "prometheus", "prometheus": {"url": env.prometheus.url}, "metrics": [common]}
    common.update(kind="error_rate", variant="canary", traffic={"min_requests": 1})
    target = {"variant": "canary", "url": env.services.url("canary") + "/metrics", "bearer_token": env.stack.metrics_token}
    return {"source": "scrape", "scrape": {"targets": [target]}, "metrics": [common]}


def one_round(env, source, interval):
    env.canary_faults()
    args = metric(source, env, interval)
    outcome = {}

    def analyse():
        outcome["result"] = run_module("slo_analysis", args)
        outcome["done"] = time.monotonic()

    thread = threading.Thread(target=analyse)
    thread.start()
    time.sleep(2 * interval + 1)  # two healthy measurements first
    fault_at = time.monotonic()
    env.canary_faults(error_fraction={"fraction": 0.05})
    thread.join(timeout=300)
    record = outcome["result"]["records"][0]
    if record["status"] != "fail":
        raise SystemExit("%s: expected a fail record, got %s: %s" % (source, record["status"], record["summary"]))
    return outcome["done"] - fault_at, record["summary"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=3.0)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    out = {"interval": args.interval, "scrape_interval": SCRAPE_INTERVAL, "sources": {}, "met": {}}
    with pg_cluster() as pg_facts, tempfile.TemporaryDirectory(prefix="bench-canary-") as workdir:
        env = CanaryEnvironment(pg_facts, workdir)
        try:
            env.start()
            env.services.start("canary")
            env.caddy.write_upstreams([env.stable_hostport, env.canary_hostport])
            env.caddy.reload()
            env.prometheus.wait_for_target_up("api-canary")
            load = env.load(590, rate=40.0)
            load.start()
            env.prometheus.wait_for_samples('sum(increase(http_requests_total{job="api-canary",route!="/metrics"}[%s])) > 5'
                                            % WINDOW, timeout=60)
            for source, budget in (("prometheus", args.interval + SCRAPE_INTERVAL + 2), ("scrape", args.interval + 2)):
                times = []
                for number in range(args.rounds):
                    seconds, summary = one_round(env, source, args.interval)
                    times.append(seconds)
                    print("%-10s round %d: decided %.2f s after the fault (%s)" % (source, number + 1, seconds, summary[:90]))
                    env.canary_faults()
                    time.sleep(8)  # the window forgets the errors before the next round
                out["sources"][source] = {"seconds": times, "median": statistics.median(times), "max": max(times),
                                          "budget": budget}
                out["met"][source] = max(times) <= budget
                print("%-10s median %.2f s, max %.2f s, budget %.1f s: %s" % (
                    source, statistics.median(times), max(times), budget, "met" if out["met"][source] else "MISSED"))
            load.stop(timeout=15)
        finally:
            env.stop()
    return finish(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
