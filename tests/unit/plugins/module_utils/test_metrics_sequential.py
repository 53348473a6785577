"""The sequential judge inside the metrics analysis: options refused naming the option, looks counted from the first
read (fail at once for a gross fault, pass only at the final look, undecided there inconclusive - or held when it is
not the final look), a boundary off the buckets an error naming metrics[N].boundary, ``since`` as the baseline, and
Prometheus reads that wait at most one scrape for fresh data. Fake clocks and scripted reads: no timing."""
from __future__ import annotations

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import metrics_analysis as ma
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.metrics_sources import SourceError
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline

from scripted_http import FakeClock

VARIANTS = {"canary": 'job="api-canary",route!="/metrics"', "stable": 'job="clean-api",route!="/metrics"'}
BOUNDS = ("0.05", "0.1", "0.25", "0.5", "1.0", "+Inf")
ERRORS = {"name": "error_rate", "kind": "error_rate", "variant": "canary", "judge": "sequential",
          "condition": {"op": "le", "value": 0.01}, "false_fail_rate": 0.001, "false_pass_rate": 0.1}


def params(metrics, source="prometheus", **extra):
    base = {"source": source, "deadline": 600.0, "metrics": metrics, "defaults": {},
            "prometheus": {"url": "http://127.0.0.1:9090", "variants": dict(VARIANTS)}, "scrape": None}
    if source == "scrape":
        base["scrape"] = {"targets": [{"variant": "canary", "url": "http://127.0.0.1:8001/metrics"},
                                      {"variant": "stable", "url": "http://127.0.0.1:8002/metrics"}]}
    base.update(extra)
    return base


def plan_error(metrics, **kwargs):
    with pytest.raises(ma.AnalysisInputError) as info:
        ma.plan_analysis(params(metrics, **kwargs))
    return str(info.value)


@pytest.mark.parametrize("change, message", [
    ({"kind": "latency_quantile", "condition": {"op": "lt", "value": 0.3}},
     "metrics[0].judge=sequential judges shares of requests: kind must be one of error_rate, availability, slow_share"),
    ({"kind": "slow_share"}, "metrics[0].boundary is required with kind=slow_share"),
    ({"kind": "slow_share", "boundary": -1}, "metrics[0].boundary is required with kind=slow_share"),
    ({"boundary": 0.25}, "metrics[0].boundary is for kind=slow_share only"),
    ({"traffic": {"min": 20}}, "metrics[0].traffic is for judge=threshold"),
    ({"failure_limit": 1, "count": 3}, "metrics[0].failure_limit is for judge=threshold (must be 0 with judge=sequential)"),
    ({"condition": {"op": "ge", "value": 0.01}}, "metrics[0].condition.op must be le or lt for a sequential error_rate"),
    ({"kind": "availability", "condition": {"op": "le", "value": 0.99}},
     "metrics[0].condition.op must be ge or gt for a sequential availability"),
    ({"condition": {"op": "le", "value": 1.5}}, "metrics[0].condition.value must be a share above 0 and below 1"),
    ({"false_fail_rate": 0.7}, "metrics[0].false_fail_rate must be above 0 and below 0.5, got 0.7"),
    ({"judge": "bayes"}, "metrics[0].judge must be one of threshold, sequential, got 'bayes'"),
    ({"variant": "canry"}, "metrics[0]: variant 'canry' is not a variant of prometheus.variants (canary, stable)"),
    ({"compare": {"baseline_query": "x", "max_increase": 0.01}, "condition": None},
     "metrics[0].compare.baseline_variant is required with a kind (a variant of prometheus.variants"),
])
def test_sequential_options_are_refused_naming_the_option(change, message):
    raw = dict(ERRORS, **change)
    raw = dict((k, v) for k, v in raw.items() if v is not None)
    assert message in plan_error([raw])


def test_plan_level_options_are_checked():
    assert plan_error([ERRORS], source="scrape", since="1764700000") == (
        "since needs source=prometheus: a direct scrape cannot read the counters of the past")
    assert "since must be epoch seconds or an RFC 3339 time" in plan_error([ERRORS], since="yesterday")
    assert "since (9999999999) is in the future" in plan_error([ERRORS], since="9999999999")
    bad = dict(VARIANTS, canary='{job="api-canary"}')
    assert "prometheus.variants.canary must be PromQL label matchers without braces" in plan_error(
        [ERRORS], prometheus={"url": "http://127.0.0.1:9090", "variants": bad})
    assert "metrics[0].kind with source=prometheus needs prometheus.variants" in plan_error(
        [ERRORS], prometheus={"url": "http://127.0.0.1:9090"})
    plan = ma.plan_analysis(params([ERRORS], since="2026-12-07T03:00:00Z", final_look=False))
    assert plan["since"] == 1796612400.0 and plan["metrics"][0].final_look is False
    assert plan["variants"] == VARIANTS


# ------------------------------------------------------------------------------------------ looks

class ScriptedReader:
    """Reads in order: per variant ``(requests {status: n}, buckets {le: n})`` cumulative values, or a SourceError."""

    def __init__(self, clock, script, past=None):
        self.clock = clock
        self.script = dict((variant, list(items)) for variant, items in script.items())
        self.past = past or {}
        self.reads = []

    @staticmethod
    def _reading(item, at):
        if isinstance(item, SourceError):
            return item
        requests, buckets = item
        samples = {}
        for status, value in requests.items():
            samples[("", "http_requests_total", (("status_class", status),))] = float(value)
        for le, value in (buckets or {}).items():
            samples[("", "http_request_latency_seconds_bucket", (("le", le),))] = float(value)
        return ma.Reading(samples, at)

    def read(self, needed, at=None):
        self.reads.append((sorted(needed), at))
        if at is not None:
            return dict((v, self._reading(self.past[v], at)) for v in needed)
        return dict((v, self._reading(self.script[v].pop(0), 1.7e9 + self.clock())) for v in needed)


def analyse(raws, script, source="prometheus", past=None, **extra):
    plan = ma.plan_analysis(params(raws, source=source, **extra))
    clock = FakeClock()
    reader = ScriptedReader(clock, script, past)
    rounds = ma.CountedRounds(reader, dict(ma.SCRAPE_METRICS, exclude_routes=[]), since=plan["since"])
    analysis = ma.Analysis(plan["metrics"], rounds, Deadline(plan["deadline"], clock=clock), clock=clock,
                           sleep=clock.sleep)
    runs = analysis.run()
    return runs, reader, clock


def growing(steps, bad_every=None, start=0):
    """Cumulative 2xx/5xx counts: ``steps`` reads of 100 requests each (every ``bad_every``-th a 5xx)."""
    items = []
    for step in range(steps):
        total = start + 100 * step
        bad = total // bad_every if bad_every else 0
        items.append(({"2xx": total - bad, "5xx": bad} if bad else {"2xx": total}, None))
    return items


def test_a_gross_fault_fails_at_the_first_look_that_counts_it_even_on_a_brand_new_series():
    # 20 % of the canary's requests are 5xx; the 5xx series is born after the baseline
    runs, _reader, clock = analyse([dict(ERRORS, count=10, interval=10)], {"canary": growing(11, bad_every=5)})
    run = runs[0]
    assert run.phase == "Failed" and run.taken == 1 and clock.now - 1000.0 == 10.0
    record = ma.metric_record(run, 1.0)
    look = record["evidence"]["measurements"][0]
    assert look["outcome"] == "failed" and look["bad"] == 20.0 and look["total"] == 100.0 and look["final"] is False
    assert record["summary"].startswith("slo.error_rate canary: 5xx: 20 % bad of 100; confidently above 1 % (lower "
                                        "bound ")
    assert record["summary"].endswith(" at look 1 of 10")


def test_a_healthy_variant_continues_until_the_final_look_passes_it():
    runs, reader, _clock = analyse([dict(ERRORS, count=4, interval=10)], {"canary": growing(5)})
    run = runs[0]
    assert [m.outcome for m in run.measurements] == ["continue", "continue", "continue", "successful"]
    assert run.phase == "Successful" and run.measurements[-1].detail["total"] == 400.0
    assert len(reader.reads) == 5  # the baseline and four looks
    record = ma.metric_record(run, 1.0)
    assert record["status"] == "pass" and "confidently within 1 %" in record["summary"]
    assert record["evidence"]["metric"]["judge"] == "sequential" and record["evidence"]["counts"]["continue"] == 3


def test_undecided_at_the_final_look_is_inconclusive_unless_the_look_is_not_final():
    few = [({"2xx": n}, None) for n in (0, 10, 20)]  # 20 clean requests cannot show a share within 1 %
    runs, _reader, _clock = analyse([dict(ERRORS, count=2, interval=10)], {"canary": list(few)})
    record = ma.metric_record(runs[0], 1.0)
    assert runs[0].phase == "Inconclusive" and record["status"] == "error"
    assert record["evidence"]["outcome"] == "inconclusive" and "undecided at the stage's last look" in record["summary"]
    held, _reader, _clock = analyse([dict(ERRORS, count=2, interval=10)], {"canary": list(few)}, final_look=False)
    record = ma.metric_record(held[0], 1.0)
    assert held[0].phase == "Successful" and record["status"] == "pass"
    assert record["evidence"]["note"] == "undecided, holds: not the final look (final_look false)"
    assert record["summary"].endswith("at look 2 of 2 (undecided, holds: not the final look)")


def test_since_is_the_baseline_and_the_first_tick_already_looks():
    past = {"canary": ({"2xx": 1000}, None)}
    runs, reader, _clock = analyse([dict(ERRORS, count=1, interval=10)],
                                   {"canary": [({"2xx": 1300, "5xx": 60}, None)]}, past=past, since="1764700000")
    assert reader.reads == [(["canary"], 1764700000.0), (["canary"], None)]
    look = runs[0].measurements[0]
    assert look.detail["bad"] == 60.0 and look.detail["total"] == 360.0 and runs[0].phase == "Failed"


def test_a_boundary_off_the_buckets_ends_the_metric_naming_the_option():
    slow = dict(ERRORS, name="slow_share", kind="slow_share", boundary=0.3, condition={"op": "le", "value": 0.05},
                count=3, interval=10)
    script = [({"2xx": 0}, dict(zip(BOUNDS, (0,) * 6))), ({"2xx": 50}, dict(zip(BOUNDS, (40, 45, 48, 50, 50, 50))))]
    runs, _reader, _clock = analyse([slow], {"canary": script})
    record = ma.metric_record(runs[0], 1.0)
    assert runs[0].phase == "Error" and record["status"] == "error"
    assert "metrics[0].boundary: 0.3 s is not a bucket bound of the latency histogram" in record["summary"]


def test_compare_with_the_baseline_variant_by_points_of_slow_share_keeps_the_p95_as_evidence():
    slow = {"name": "vs_stable_slow", "criterion": "slo.vs_stable", "kind": "slow_share", "boundary": 0.1,
            "variant": "canary", "judge": "sequential", "false_fail_rate": 0.001,
            "compare": {"baseline_variant": "stable", "max_increase": 0.10}, "count": 5, "interval": 10}
    zero = ({"2xx": 0}, dict(zip(BOUNDS, (0,) * 6)))
    canary = [zero] + [({"2xx": 100 * n}, dict(zip(BOUNDS, (0, 0, 100 * n, 100 * n, 100 * n, 100 * n))))
                       for n in (1, 2)]  # +400 ms: every request above 0.1 s
    stable = [zero] + [({"2xx": 300 * n}, dict(zip(BOUNDS, (290 * n, 297 * n, 300 * n, 300 * n, 300 * n, 300 * n))))
                       for n in (1, 2)]
    runs, _reader, _clock = analyse([slow], {"canary": canary, "stable": stable})
    run = runs[0]
    assert run.phase == "Failed" and run.taken == 1
    look = ma.metric_record(run, 1.0)["evidence"]["measurements"][0]
    assert look["baseline_bad"] == 3.0 and look["baseline_total"] == 300.0
    assert look["p95"] > 0.1 and look["baseline_p95"] <= 0.1
    assert "slower than 100 ms: 100 % bad of 100; confidently above" in run.measurements[0].reason


def test_read_errors_are_measured_again_at_the_next_look():
    script = growing(2) + [SourceError("transport", "Prometheus at http://127.0.0.1:9090 did not answer")] + \
        [({"2xx": 400}, None)]
    runs, _reader, _clock = analyse([dict(ERRORS, count=2, interval=10)], {"canary": script})
    assert [m.outcome for m in runs[0].measurements] == ["continue", "error", "successful"]


# ------------------------------------------------------------------------------------------ fresh data

class TargetsAPI:
    """Prometheus' targets API on a fake wall clock: a scrape every ``interval`` seconds from ``first``."""

    def __init__(self, wall, first, interval, job="api-canary"):
        self.wall = wall
        self.first = first
        self.interval = interval
        self.job = job
        self.calls = []

    def targets(self, deadline):
        now = self.wall()
        self.calls.append(now)
        last = self.first + self.interval * int((now - self.first) // self.interval)
        return [{"job": self.job, "health": "up", "labels": {"job": self.job, "instance": "c:1"}, "last_scrape": last,
                 "last_scrape_duration": 0.01, "scrape_interval": self.interval},
                {"job": "other", "health": "up", "labels": {"job": "other"}, "last_scrape": 0.0,
                 "last_scrape_duration": 0.01, "scrape_interval": self.interval}]

    def counter_samples(self, name, selector, deadline, at=None):
        return [({"__name__": name, "job": self.job, "status_class": "2xx"}, [(self.wall(), 7.0)])]


def test_a_prometheus_read_waits_at_most_one_scrape_for_data_newer_than_the_look():
    clock = FakeClock(start=1000.0)
    api = TargetsAPI(clock, first=990.0, interval=15.0)  # scraped at 990, next at 1005
    reader = ma.PrometheusReader(api, VARIANTS, dict(ma.SCRAPE_METRICS), Deadline(100, clock=clock), wall=clock,
                                 sleep=clock.sleep)
    reading = reader.read({"canary": False})["canary"]
    assert clock.sleeps == [pytest.approx(5.51)] and reading.detail["freshness"] == "fresh"
    assert reading.detail["fresh_wait_s"] == pytest.approx(5.51)
    assert reading.samples == {("", "http_requests_total", (("job", "api-canary"), ("status_class", "2xx"))): 7.0}
    assert len(api.calls) == 2  # before and after the wait
    # a look right after a scrape does not wait; a selector matching no target reads at once and says so
    clock.now = 1005.0
    assert reader.read({"canary": False})["canary"].detail["fresh_wait_s"] == 0.0
    lost = ma.PrometheusReader(api, {"canary": 'job="nowhere"'}, dict(ma.SCRAPE_METRICS), Deadline(100, clock=clock),
                               wall=clock, sleep=clock.sleep)
    assert lost.read({"canary": False})["canary"].detail["freshness"].startswith("unknown: no scrape target matches")
    assert ma.selector_matchers('job="api-canary",route!="/metrics",le=~"0.1",x="a\\"b"') == {
        "job": "api-canary", "x": 'a"b'}


def test_monitoring_reads_a_target_down_before_the_call_again_after_its_next_scrape():
    """A canary started a moment ago: Prometheus' last scrape of it failed before the call began. The record waits for
    the next scrape (at most one interval) instead of failing monitoring.configured."""
    clock = FakeClock(start=1000.0)

    class API:
        base_url = "http://127.0.0.1:9090"
        reads = []

        def targets(self, deadline):
            now = clock()
            self.reads.append(now)
            up = now >= 1004.0  # the scrape at 1004 finds the canary up
            return [{"job": "api-canary", "instance": "c:1", "health": "up" if up else "down",
                     "last_error": "" if up else "502 Bad Gateway", "scrape_url": "",
                     "last_scrape": 1004.0 if up else 999.0, "last_scrape_duration": 0.01, "scrape_interval": 5.0}]

        def rules(self, deadline):
            return []

    api = API()
    record = ma.monitoring_record(api, {"targets": ["api-canary"], "rules": []}, Deadline(60, clock=clock), wall=clock,
                                  sleep=clock.sleep)
    assert record["status"] == "pass" and len(api.reads) == 2
    assert record["evidence"]["waited_for_scrape_s"] == pytest.approx(4.51)  # 999 + 5 + 0.01 + slack - 1000
    # down at a scrape made during the call: failed at once, no wait
    clock.now = 2000.0
    api.reads.clear()
    late = [{"job": "api-canary", "instance": "c:1", "health": "down", "last_error": "refused", "scrape_url": "",
             "last_scrape": 2000.0, "last_scrape_duration": 0.01, "scrape_interval": 5.0}]
    api.targets = lambda deadline: late
    record = ma.monitoring_record(api, {"targets": ["api-canary"], "rules": []}, Deadline(60, clock=clock), wall=clock,
                                  sleep=clock.sleep)
    assert record["status"] == "fail" and "waited_for_scrape_s" not in record["evidence"]
