"""Benchmark (not a test): slo_analysis against a real Prometheus (2.42), a stable and a canary reference service and
Caddy splitting a steady load between them (tests/harness/monitoring_fixtures.MonitoringStack).

Two questions:

1. What does one analysis step with 10 metrics cost beyond Ansible's own task cost? One ansible-playbook run with
   ``ansible.builtin.ping`` tasks (Ansible's cost of a module task) and slo_analysis tasks of 10 metrics - one step
   (count 1) and three steps (count 3, 1 s apart) - timed per task by the task_timer callback, both sources
   (Prometheus, and the direct /metrics scrape). Overhead per step = (task - ping - scheduled waits) / steps.
   Target: under 0.5 s. The module run on its own (a process as Ansible starts it) gives the breakdown: the time
   inside the analysis (``elapsed_ms``) and the rest (interpreter, imports, arguments, JSON).
2. How soon after the canary starts to fail does the analysis decide Failed (the rollback decision)? The module runs
   with a long count; the canary's error_fraction fault is switched on at a varying point of a measurement interval,
   and the time from the switch to the module's answer is measured. Target: one analysis interval + one Prometheus
   scrape interval + 2 s. Two cases per source: a canary started afresh (as right after a deploy: its first 5xx makes
   a new series, which PromQL's rate() counts from its second scrape on) and a canary that has answered 5xx before
   (the series exists).

    .venv/bin/python bench/bench_slo_analysis.py [--rounds 5] [--decision-rounds 3] [--json out.json]

Uses the cluster named by PGHARNESS_STATE if set, else starts (and removes) one of its own.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_common import ANSIBLE_PLAYBOOK, finish, pg_cluster, summary, task_times  # noqa: E402  pylint: disable=wrong-import-position
from loadgen import LoadGenerator  # noqa: E402  pylint: disable=wrong-import-position
from modrun import run_module  # noqa: E402  pylint: disable=wrong-import-position
from monitoring import SERVICE_SCRAPE_INTERVAL  # noqa: E402  pylint: disable=wrong-import-position
from monitoring_fixtures import CANARY_JOB, STABLE_JOB, MonitoringStack  # noqa: E402  pylint: disable=wrong-import-position

WINDOW = "15s"
SCRAPE_S = float(SERVICE_SCRAPE_INTERVAL.rstrip("s"))
OVERHEAD_TARGET_S = 0.5
TIMER_ENV = {"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "bench" / "callback_plugins"), "ANSIBLE_CALLBACKS_ENABLED": "task_timer"}


def user(job, match=None):
    """The selector of a job's user requests (the scrapes of /metrics left out), narrowed by ``match`` labels."""
    selector = 'job="%s",route!="/metrics"' % job
    return selector + "".join(',%s="%s"' % item for item in sorted((match or {}).items()))


def error_rate(job, match=None):
    return ('(sum(rate(http_requests_total{%s,status_class="5xx"}[%s])) or vector(0)) / '
            'sum(rate(http_requests_total{%s}[%s]))' % (user(job, match), WINDOW, user(job, match), WINDOW))


def p95(job):
    return 'histogram_quantile(0.95, sum by (le) (rate(http_request_latency_seconds_bucket{%s}[%s])))' % (user(job), WINDOW)


def availability(job):
    return ('sum(rate(http_requests_total{%s,status_class=~"2xx|3xx"}[%s])) / sum(rate(http_requests_total{%s}[%s]))'
            % (user(job), WINDOW, user(job), WINDOW))


def traffic(job, match=None):
    return "sum(increase(http_requests_total{%s}[%s]))" % (user(job, match), WINDOW)


def prometheus_metrics():
    """Ten metrics: four SLOs of each variant, the two comparisons of the canary with stable."""
    metrics = []
    for variant, job in (("canary", CANARY_JOB), ("stable", STABLE_JOB)):
        tr = {"query": traffic(job), "min": 10}
        metrics += [
            {"name": "%s_error_rate" % variant, "criterion": "slo.error_rate", "variant": variant, "traffic": tr,
             "query": error_rate(job), "condition": {"op": "lt", "value": 0.01}},
            {"name": "%s_latency_p95" % variant, "criterion": "slo.latency_p95", "variant": variant, "traffic": tr,
             "query": p95(job), "condition": {"op": "lt", "value": 0.3}},
            {"name": "%s_availability" % variant, "criterion": "slo.availability", "variant": variant, "traffic": tr,
             "query": availability(job), "condition": {"op": "ge", "value": 0.99}},
            {"name": "%s_request_rate" % variant, "criterion": "slo.request_rate", "variant": variant,
             "query": "sum(rate(http_requests_total{%s}[%s]))" % (user(job), WINDOW), "condition": {"op": "gt", "value": 1}},
        ]
    metrics += [
        {"name": "vs_stable_p95", "criterion": "slo.vs_stable", "variant": "canary", "unit": "seconds", "query": p95(CANARY_JOB),
         "compare": {"baseline_query": p95(STABLE_JOB), "max_increase_ratio": 0.5}},
        {"name": "vs_stable_errors", "criterion": "slo.vs_stable", "variant": "canary", "unit": "ratio",
         "query": error_rate(CANARY_JOB), "compare": {"baseline_query": error_rate(STABLE_JOB), "max_increase": 0.005}},
    ]
    return metrics


def scrape_metrics():
    metrics = []
    for variant in ("canary", "stable"):
        metrics += [
            {"name": "%s_error_rate" % variant, "criterion": "slo.error_rate", "variant": variant, "kind": "error_rate",
             "condition": {"op": "lt", "value": 0.01}},
            {"name": "%s_latency_p95" % variant, "criterion": "slo.latency_p95", "variant": variant,
             "kind": "latency_quantile", "condition": {"op": "lt", "value": 0.3}},
            {"name": "%s_availability" % variant, "criterion": "slo.availability", "variant": variant,
             "kind": "availability", "condition": {"op": "ge", "value": 0.99}},
            {"name": "%s_request_rate" % variant, "criterion": "slo.request_rate", "variant": variant,
             "kind": "request_rate", "condition": {"op": "gt", "value": 1}},
        ]
    metrics += [
        {"name": "vs_stable_p95", "criterion": "slo.vs_stable", "variant": "canary", "kind": "latency_quantile",
         "compare": {"baseline_variant": "stable", "max_increase_ratio": 0.5}},
        {"name": "vs_stable_errors", "criterion": "slo.vs_stable", "variant": "canary", "kind": "error_rate",
         "compare": {"baseline_variant": "stable", "max_increase": 0.005}},
    ]
    return metrics


def module_args(mon, source, count, interval, metrics=None, client="198.18.253.1", canary_url=None):
    if source == "prometheus":
        return {"prometheus": {"url": mon.prometheus.url}, "metrics": metrics or prometheus_metrics(), "deadline": 300,
                "defaults": {"count": count, "interval": interval}}
    headers = {"X-Forwarded-For": client}  # the module's scrapes: a rate-limit client of their own
    return {"source": "scrape", "deadline": 300, "metrics": metrics or scrape_metrics(),
            "defaults": {"count": count, "interval": interval, "traffic": {"min": 5}},
            "scrape": {"targets": [
                {"variant": "canary", "url": (canary_url or mon.canary_url) + "/metrics", "bearer_token": mon.token,
                 "headers": headers},
                {"variant": "stable", "url": mon.stable_url + "/metrics", "bearer_token": mon.token, "headers": headers}]}}


# ----------------------------------------------------------------------------------------- 1. overhead per step

def playbook_overhead(mon, workdir, rounds):
    """ping and slo_analysis tasks in one play, timed per task; the figures per task kind."""
    tasks = []
    for number in range(1, rounds + 1):
        tasks.append({"name": "ping %d" % number, "ansible.builtin.ping": {}})
        for source in ("prometheus", "scrape"):
            for steps in (1, 3):
                args = module_args(mon, source, steps, 1.0, client="198.18.253.%d" % (10 + number))
                tasks.append({"name": "%s %d steps %d" % (source, steps, number),
                              "cleanwithsnapshot.release.slo_analysis": args, "register": "out",
                              "failed_when": "out.status != 'pass'"})
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"ansible_python_interpreter": sys.executable}, "tasks": tasks}]
    path = Path(workdir) / "overhead.yml"
    path.write_text(json.dumps(play, indent=1), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(TIMER_ENV, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([ANSIBLE_PLAYBOOK, str(path), "-i", "localhost,"], env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    if proc.returncode != 0:
        raise SystemExit("the overhead playbook failed:\n%s" % (proc.stdout + proc.stderr)[-4000:])
    kinds = {}
    for seconds, name in task_times(proc.stdout):
        kinds.setdefault(name.rsplit(" ", 1)[0], []).append(seconds)
    ping = statistics.median(kinds["ping"])
    out = {"ping_task_s": summary(kinds["ping"])}
    for source in ("prometheus", "scrape"):
        for steps in (1, 3):
            times = kinds["%s %d steps" % (source, steps)]
            waits = (steps - 1) * 1.0 + (1.0 if source == "scrape" else 0.0)  # the scrape source's first tick is a baseline
            out["%s_%d_steps_task_s" % (source, steps)] = summary(times)
            out["%s_%d_steps_overhead_per_step_s" % (source, steps)] = round(
                (statistics.median(times) - ping - waits) / steps, 3)
    return out


def process_breakdown(mon, rounds):
    """The module as a process (no Ansible): its wall time and the time inside the analysis, one step."""
    out = {}
    for source in ("prometheus", "scrape"):
        walls, inside, requests = [], [], []
        for number in range(rounds):
            args = module_args(mon, source, 1, 1.0, client="198.18.253.%d" % (100 + number))
            started = time.monotonic()
            result = run_module("slo_analysis", args)
            walls.append(time.monotonic() - started)
            if result.get("status") != "pass":
                failing = [r["summary"] for r in result.get("records", []) if r["status"] != "pass"]
                raise SystemExit("%s: not GO on the healthy stack: %s" % (source, failing))
            # the scrape source waits one interval for its baseline: that is not work
            inside.append(result["elapsed_ms"] / 1000.0 - (1.0 if source == "scrape" else 0.0))
            requests.append(result["requests_sent"])
        out[source] = {"process_wall_s": summary(walls), "analysis_work_s": summary(inside),
                       "requests_per_step": requests[0],
                       "startup_and_exit_s": round(statistics.median(walls) - statistics.median(inside)
                                                   - (1.0 if source == "scrape" else 0.0), 3)}
    return out


# ----------------------------------------------------------------------------------------- 2. time to decide

class SteadyLoad:
    """GET /healthz through Caddy (split between stable and canary), a rate-limit exempt path (the service's real
    limit stays on), started again whenever it has ended (a LoadGenerator runs 600 s at most)."""

    def __init__(self, mon):
        self.mon = mon
        self.load = None

    def ensure(self):
        if self.load is None or not self.load.running():
            self.load = self.mon.load(paths=("/healthz",), duration=600, requests=100000, concurrency=4, rate=60).start()

    def stop(self):
        if self.load is not None:
            self.load.stop()


STEADY = []


def wait_until_clean(mon, match):
    """No 5xx of the canary's ``match`` requests in the window, and traffic there (before a round starts)."""
    for load in STEADY:
        load.ensure()
    mon.prometheus.wait_for_samples("%s == 0" % error_rate(CANARY_JOB, match), timeout=60)
    mon.prometheus.wait_for_samples("%s > 10" % traffic(CANARY_JOB, match), timeout=60)


def decision_round(mon, source, match, interval, offset, canary, job=CANARY_JOB):
    """Start a long analysis of the error rate of ``canary``'s ``match`` requests (Prometheus job ``job``); switch its
    fault on ``offset`` seconds into a measurement interval (after the first tick); the seconds from the switch to
    the module's answer."""
    if source == "prometheus":
        metric = {"name": "error_rate", "variant": "canary", "query": error_rate(job, match),
                  "traffic": {"query": traffic(job, match), "min": 5}, "condition": {"op": "lt", "value": 0.01}}
    else:
        metric = {"name": "error_rate", "variant": "canary", "kind": "error_rate", "match": dict(match),
                  "condition": {"op": "lt", "value": 0.01}}
    args = module_args(mon, source, 60, interval, metrics=[metric], client="198.18.252.%d" % (int(offset * 10) % 250 + 1),
                       canary_url=canary.base_url)
    holder = {}

    def call():
        holder["result"] = run_module("slo_analysis", args)
        holder["ended"] = time.monotonic()
    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(1.0 + interval + offset)  # process start and the first tick (the baseline for the scrape source)
    switched_wall, switched = time.time(), time.monotonic()
    canary.set_fault("error_fraction", fraction=0.1)
    thread.join(timeout=300)
    canary.clear_faults()
    record = holder["result"]["records"][0]
    if record["status"] != "fail":
        raise SystemExit("%s on %s: expected a failure, got %s" % (source, match, record["summary"]))
    failing = record["evidence"]["measurements"][-1]
    return {"decision_s": round(holder["ended"] - switched, 3),
            "deciding_measurement_s": round(failing["at"] - switched_wall, 3),
            "measurements": len(record["evidence"]["measurements"]), "summary": record["summary"]}


class FreshCanary:
    """A canary process started afresh (no series yet, as right after a deploy), scraped by Prometheus as a job of
    its own (``job``) beside the stack's, with a load of its own; ``close()`` stops it and drops its job."""

    def __init__(self, mon, workdir, number):
        self.mon = mon
        self.job = "%s-fresh-%d" % (CANARY_JOB, number)
        state_dir = os.path.join(workdir, "fresh-canary-%d" % number)
        os.makedirs(state_dir)
        self.service = mon.stack.extra_service(state_dir, APP_NAME="api-canary")
        try:
            canary_job = next(job for job in mon.scrape_jobs if job["job"] == CANARY_JOB)
            mon.prometheus.reload(scrape_jobs=mon.scrape_jobs + [dict(canary_job, job=self.job, url=self.service.base_url)])
            self.load = LoadGenerator(self.service.base_url, paths=("/healthz",), duration=120, requests=20000,
                                      concurrency=2, rate=30).start()
            mon.prometheus.wait_for_samples("%s > 10" % traffic(self.job, GET), timeout=60)
        except Exception:
            self.service.stop()
            raise

    def close(self):
        self.load.stop()
        self.mon.prometheus.reload(scrape_jobs=self.mon.scrape_jobs)
        self.service.stop()


GET = {"route": "/healthz", "method": "GET"}


def seed_5xx(mon):
    """A few 5xx of GET /healthz on the stack's canary, so that its 5xx series exists."""
    mon.canary.set_fault("error_fraction", fraction=1.0)
    try:
        mon.load_canary(paths=("/healthz",), requests=3, concurrency=1).run()
    finally:
        mon.canary.clear_faults()
    mon.prometheus.wait_for_samples('sum(http_requests_total{%s,status_class="5xx"}) > 0' % user(CANARY_JOB, GET),
                                    timeout=30)


def time_to_decide(mon, workdir, rounds, interval):
    """Per source: ``rounds`` on a freshly started canary (its 5xx series does not exist yet: PromQL's rate() counts
    a series from its second scrape on; the scrape source counts a series absent from the first scrape from 0), then
    ``rounds`` on the stack's canary once its 5xx series exists. The fault is switched at ``rounds`` points spread
    over a measurement interval."""
    out = {}
    target = interval + SCRAPE_S + 2.0
    numbers = itertools.count(1)
    for source in ("prometheus", "scrape"):
        for case in ("new_series", "series_seen"):
            figures = []
            for number in range(rounds):
                offset = interval * (number + 0.5) / rounds
                if case == "new_series":
                    fresh = FreshCanary(mon, workdir, next(numbers))
                    try:
                        figure = decision_round(mon, source, GET, interval, offset, fresh.service, job=fresh.job)
                    finally:
                        fresh.close()
                else:
                    if number == 0:
                        seed_5xx(mon)
                    wait_until_clean(mon, GET)
                    figure = decision_round(mon, source, GET, interval, offset, mon.canary)
                figures.append(dict(figure, offset_s=round(offset, 2)))
            decisions = [item["decision_s"] for item in figures]
            out["%s_%s" % (source, case)] = {"decision_s": summary(decisions), "worst_s": max(decisions),
                                             "target_s": target, "rounds": figures}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=5, help="task repetitions for the overhead figures")
    parser.add_argument("--decision-rounds", type=int, default=3, help="fault switches per source and case")
    parser.add_argument("--interval", type=float, default=SCRAPE_S, help="analysis interval of the decision runs (s)")
    parser.add_argument("--json", help="write the figures here")
    opts = parser.parse_args()
    out = {"machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()[0]}, "scrape_interval_s": SCRAPE_S}
    with pg_cluster() as pg, tempfile.TemporaryDirectory(prefix="bench-slo-") as workdir:
        with MonitoringStack(pg, os.path.join(workdir, "monitoring")) as mon:
            mon.prometheus.wait_for_target_up(CANARY_JOB)
            mon.prometheus.wait_for_target_up(STABLE_JOB)
            load = SteadyLoad(mon)
            STEADY.append(load)
            load.ensure()
            try:
                for job in (CANARY_JOB, STABLE_JOB):
                    mon.prometheus.wait_for_samples("%s > 20" % traffic(job), timeout=60)
                out["process"] = process_breakdown(mon, opts.rounds)
                out["playbook"] = playbook_overhead(mon, workdir, opts.rounds)
                out["decision"] = time_to_decide(mon, workdir, opts.decision_rounds, opts.interval)
            finally:
                load.stop()
    out["machine"]["loadavg_end"] = os.getloadavg()[0]
    play = out["playbook"]
    out["met"] = {"overhead_per_step_under_%ss" % OVERHEAD_TARGET_S: all(
        value < OVERHEAD_TARGET_S for key, value in play.items() if key.endswith("overhead_per_step_s"))}
    for key, item in out["decision"].items():
        out["met"]["decision_%s_within_%ss" % (key, item["target_s"])] = item["worst_s"] <= item["target_s"]
    report(out)
    return finish(out, opts.json)


def report(out):
    print("slo_analysis, 10 metrics, Prometheus scraping every %ss" % out["scrape_interval_s"])
    play = out["playbook"]
    print("  Ansible's task cost (ping): median %.3f s" % play["ping_task_s"]["median"])
    for source in ("prometheus", "scrape"):
        proc = out["process"][source]
        print("  %-10s process %.3f s (analysis work %.3f s, %d requests a step; start and exit %.3f s)"
              % (source, proc["process_wall_s"]["median"], proc["analysis_work_s"]["median"], proc["requests_per_step"],
                 proc["startup_and_exit_s"]))
        for steps in (1, 3):
            print("  %-10s %d step%s: task %.3f s, overhead per step beyond the ping task %.3f s (target < %.1f s)"
                  % (source, steps, "" if steps == 1 else "s", play["%s_%d_steps_task_s" % (source, steps)]["median"],
                     play["%s_%d_steps_overhead_per_step_s" % (source, steps)], OVERHEAD_TARGET_S))
    for key, item in out["decision"].items():
        print("  decision %-28s median %.2f s, worst %.2f s (target %.1f s: interval + scrape interval + 2 s)"
              % (key, item["decision_s"]["median"], item["worst_s"], item["target_s"]))
    print("  targets: %s" % ", ".join("%s=%s" % (k, "met" if v else "MISSED") for k, v in out["met"].items()))


if __name__ == "__main__":
    sys.exit(main())
