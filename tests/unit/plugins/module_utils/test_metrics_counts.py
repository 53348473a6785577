"""metrics_counts: one computation of request and latency counts for both sources - a series born after the first
read counted from 0, counter resets as PromQL sees them, the same counts whether the samples came from a scrape or
from a Prometheus instant vector, and slow shares exact at a bucket bound (another boundary refused)."""
from __future__ import annotations

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import metrics_counts as mc
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.metrics_analysis import SCRAPE_METRICS
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.metrics_sources import Snapshot

NAMES = dict(SCRAPE_METRICS, exclude_routes=[])
BOUNDS = ("0.05", "0.1", "0.25", "0.5", "1.0", "+Inf")


def labels(status="2xx", route="/v1/estimate", **extra):
    return dict({"method": "GET", "route": route, "status_class": status}, **extra)


def prometheus_vector(requests, buckets=None, job="api-canary"):
    """An instant vector as Prometheus answers it: ``[(labels with __name__, [(ts, value)])]``."""
    series = []
    for status, value in requests.items():
        series.append((dict(labels(status), __name__="http_requests_total", job=job, instance="c:1"),
                       [(1.7e9, float(value))]))
    for le, value in (buckets or {}).items():
        series.append((dict(labels("2xx"), __name__="http_request_latency_seconds_bucket", le=le, job=job,
                            instance="c:1"), [(1.7e9, float(value))]))
    return series


def scrape_snapshot(requests, buckets=None, at=0.0):
    samples = {}
    for status, value in requests.items():
        samples[("http_requests_total", tuple(sorted(labels(status).items())))] = float(value)
    for le, value in (buckets or {}).items():
        samples[("http_request_latency_seconds_bucket", tuple(sorted(dict(labels("2xx"), le=le).items())))] = float(value)
    samples[("jobs_run_total", ())] = 3.0  # not a count the judges read: left out
    return Snapshot(samples, 1.7e9 + at, at, "http://c/metrics")


def test_a_series_born_after_the_first_read_is_counted_from_zero_and_resets_follow_promql():
    totals = mc.CounterTotals()
    assert totals.read({("", "http_requests_total", (("status_class", "2xx"),)): 100.0}, 1.0) == {}
    window = totals.read({("", "http_requests_total", (("status_class", "2xx"),)): 130.0,
                          ("", "http_requests_total", (("status_class", "5xx"),)): 2.0}, 2.0)
    # the 5xx series appeared with the value 2: both errors count (rate()/increase() would see none yet)
    assert window == {("", "http_requests_total", (("status_class", "2xx"),)): 30.0,
                      ("", "http_requests_total", (("status_class", "5xx"),)): 2.0}
    # the process restarted: 130 -> 12 is a reset, 12 counted since; a series gone from a read keeps its last value
    totals.read({("", "http_requests_total", (("status_class", "2xx"),)): 12.0}, 3.0)
    totals.read({("", "http_requests_total", (("status_class", "2xx"),)): 15.0,
                 ("", "http_requests_total", (("status_class", "5xx"),)): 5.0}, 4.0)
    assert totals.totals == {("", "http_requests_total", (("status_class", "2xx"),)): 30.0 + 12.0 + 3.0,
                             ("", "http_requests_total", (("status_class", "5xx"),)): 5.0}
    assert totals.reads == 4 and totals.started_at == 1.0 and totals.at == 4.0


def test_prometheus_and_scrape_samples_give_the_same_counts():
    first = {"2xx": 50}
    second = {"2xx": 95, "5xx": 5, "4xx": 3}
    buckets_first = dict(zip(BOUNDS, (40, 45, 50, 50, 50, 50)))
    buckets_second = dict(zip(BOUNDS, (70, 80, 92, 98, 100, 103)))
    from_prometheus = mc.CounterTotals()
    from_prometheus.read(mc.prometheus_samples(prometheus_vector(first, buckets_first)), 0.0)
    from_prometheus.read(mc.prometheus_samples(prometheus_vector(second, buckets_second)), 10.0)
    from_scrape = mc.CounterTotals()
    from_scrape.read(mc.snapshot_samples(scrape_snapshot(first, buckets_first), 0, NAMES), 0.0)
    from_scrape.read(mc.snapshot_samples(scrape_snapshot(second, buckets_second, at=10.0), 0, NAMES), 10.0)
    answers = []
    for totals in (from_prometheus, from_scrape):
        counts = mc.Counts(totals.totals, NAMES, 10.0)
        answers.append((counts.bad_share("error_rate"), counts.bad_share("availability"),
                        counts.bad_share("slow_share", boundary=0.25), counts.value("request_rate"),
                        counts.p95()))
    assert answers[0] == answers[1]
    error, availability, slow, rate, p95 = answers[0]
    assert error == (5.0, 53.0) and availability == (8.0, 53.0)  # the 4xx are not available either
    assert slow == (53.0 - 42.0, 53.0) and rate == pytest.approx(5.3)
    assert 0.25 < p95 <= 1.0  # evidence only


def test_a_slow_share_needs_a_bucket_bound():
    counts = mc.Counts({("", "http_request_latency_seconds_bucket", (("le", le),)): float(n)
                        for le, n in zip(BOUNDS, (10, 20, 30, 40, 50, 60))}, NAMES)
    assert counts.slower_than(0.5) == (20.0, 60.0)
    assert counts.value("slow_share", boundary=0.1) == pytest.approx(40 / 60.0)
    with pytest.raises(mc.BoundaryError) as info:
        counts.slower_than(0.3)
    assert str(info.value).startswith("0.3 s is not a bucket bound of the latency histogram (its bounds: 0.05, 0.1, "
                                      "0.25, 0.5, 1); ")
    assert mc.Counts({}, NAMES).slower_than(0.3) == (0.0, 0.0)  # no histogram yet: nothing to check or count
    with pytest.raises(ValueError):
        counts.bad_share("latency_quantile")
