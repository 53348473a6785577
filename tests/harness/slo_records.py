"""SLO records as slo_analysis makes them, for the report tests: the real planning and judging of metrics_analysis,
by the threshold judge on two scrapes of each variant (counters and latency buckets in the service's layout, one
look per metric) and by the sequential judge on cumulative counter reads at each look (a fake clock)."""
from __future__ import annotations

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import metrics_analysis as ma
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.metrics_sources import Snapshot
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline

from scripted_http import FakeClock

BOUNDS = ("0.05", "0.1", "0.25", "0.5", "1.0", "+Inf")
TARGETS = [{"variant": "canary", "url": "http://127.0.0.1:18101/metrics"},
           {"variant": "stable", "url": "http://127.0.0.1:18100/metrics"}]
METRICS = [
    {"name": "error_rate", "kind": "error_rate", "variant": "canary", "condition": {"op": "lt", "value": 0.01}},
    {"name": "latency_p95", "kind": "latency_quantile", "variant": "canary", "condition": {"op": "lt", "value": 0.3}},
    {"name": "vs_stable_error_rate", "criterion": "slo.vs_stable", "kind": "error_rate", "variant": "canary",
     "compare": {"baseline_variant": "stable", "max_increase": 0.005}},
]
# (ok, bad, slow) requests of canary and stable in one 30 s window. 10 %: 250 canary requests, 1 of them 5xx,
# 4 slow; 25 %: 600 canary requests, 30 of them 5xx (5 %).
HEALTHY_10 = ((249, 1, 4), (2248, 2, 30))
FAULTY_25 = ((570, 30, 6), (1791, 9, 20))


def snapshot(at, ok, bad, slow, service):
    """One scrape of a variant: ``ok`` 2xx and ``bad`` 5xx requests, ``slow`` of them between 0.25 and 0.5 s."""
    labels = (("method", "GET"), ("route", "/v1/estimate"), ("service", service))
    samples = {("http_requests_total", labels + (("status_class", "2xx"),)): float(ok)}
    if bad:
        samples[("http_requests_total", labels + (("status_class", "5xx"),))] = float(bad)
    total = ok + bad
    for le, count in zip(BOUNDS, (total - slow, total - slow, total - slow, total, total, total)):
        samples[("http_request_latency_seconds_bucket", (("le", le),) + labels)] = float(count)
    return Snapshot(samples, 1.7e9 + at, at, "http://127.0.0.1/metrics")


def stage_analysis(canary, stable):
    """slo_analysis's records of one stage: ``canary``/``stable`` are (ok, bad, slow) counted in a 30 s window."""
    plan = ma.plan_analysis({"source": "scrape", "deadline": 600.0, "metrics": METRICS,
                             "defaults": {"count": 1, "interval": 30.0}, "scrape": {"targets": TARGETS}})
    windows = {"canary": ma.Window([snapshot(0.0, 0, 0, 0, "api-canary")], [snapshot(30.0, *canary, "api-canary")],
                                   dict(ma.SCRAPE_METRICS)),
               "stable": ma.Window([snapshot(0.0, 0, 0, 0, "api")], [snapshot(30.0, *stable, "api")],
                                   dict(ma.SCRAPE_METRICS))}
    records = []
    for metric in plan["metrics"]:
        run = ma.MetricRun(metric)
        run.add(ma.measure_window(metric, windows))
        records.append(ma.metric_record(run, 30000.0))
    return records


# The sequential judge: cumulative counts read at each look (per variant a list of ({status_class: n}, {le: n})).
SEQUENTIAL_VARIANTS = {"canary": 'job="api-canary"', "stable": 'job="clean-api"'}
SEQUENTIAL_METRICS = [
    {"name": "error_rate", "kind": "error_rate", "variant": "canary", "judge": "sequential",
     "condition": {"op": "le", "value": 0.01}},
    {"name": "vs_stable_slow", "criterion": "slo.vs_stable", "kind": "slow_share", "boundary": 0.25,
     "variant": "canary", "judge": "sequential", "compare": {"baseline_variant": "stable", "max_increase": 0.05}},
]


class ScriptedReader:
    """The counters' reads of a sequential analysis, in order, on a fake clock."""

    def __init__(self, clock, script):
        self.clock = clock
        self.script = dict((variant, list(items)) for variant, items in script.items())

    def read(self, needed, at=None):
        readings = {}
        for variant in needed:
            requests, buckets = self.script[variant].pop(0)
            samples = dict((("", "http_requests_total", (("status_class", status),)), float(value))
                           for status, value in requests.items())
            samples.update((("", "http_request_latency_seconds_bucket", (("le", le),)), float(value))
                           for le, value in (buckets or {}).items())
            readings[variant] = ma.Reading(samples, 1.7e9 + self.clock())
        return readings


def sequential_stage(script, count, interval=10.0):
    """slo_analysis's records of one stage judged sequentially: ``count`` looks of the cumulative reads in ``script``
    (the first read is the baseline)."""
    plan = ma.plan_analysis({"source": "prometheus", "deadline": 600.0, "metrics": SEQUENTIAL_METRICS,
                             "defaults": {"count": count, "interval": interval},
                             "prometheus": {"url": "http://127.0.0.1:9090", "variants": dict(SEQUENTIAL_VARIANTS)},
                             "scrape": None})
    clock = FakeClock()
    rounds = ma.CountedRounds(ScriptedReader(clock, script), dict(ma.SCRAPE_METRICS, exclude_routes=[]),
                              since=plan["since"])
    analysis = ma.Analysis(plan["metrics"], rounds, Deadline(plan["deadline"], clock=clock), clock=clock,
                           sleep=clock.sleep)
    return [ma.metric_record(run, 1.0) for run in analysis.run()]


def cumulative(looks, per_look, bad_every=None, slow_every=None):
    """Reads of a variant serving ``per_look`` requests between looks: every ``bad_every``-th a 5xx, every
    ``slow_every``-th slower than 0.25 s (the rest under 50 ms)."""
    reads = []
    for look in range(looks + 1):
        total = per_look * look
        bad = total // bad_every if bad_every else 0
        slow = total // slow_every if slow_every else 0
        requests = {"2xx": total - bad, "5xx": bad} if bad else {"2xx": total}
        reads.append((requests, dict(zip(BOUNDS, (total - slow,) * 3 + (total,) * 3))))
    return reads
