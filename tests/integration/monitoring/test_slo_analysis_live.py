"""slo_analysis against real daemons: Prometheus 2.42 scraping a stable and a canary reference service (the real
metric names and labels), Caddy splitting the load between them, and the canary faults (error_fraction,
added_latency, metrics_down). Both sources: the Prometheus HTTP API and a direct scrape of the services' /metrics.

Waits are polls for a condition (Prometheus has seen the traffic, the target is down), never timed assertions; the
speed of the rollback decision is measured in bench/bench_slo_analysis.py."""
from __future__ import annotations

import http.server
import itertools
import threading
import time

import pytest

from modrun import records_by_name
from monitoring import http_call
from monitoring_fixtures import CANARY_JOB, STABLE_JOB

pytestmark = pytest.mark.integration

WINDOW = "15s"  # five scrapes of the harness (every 3 s)
USER = 'job="%s",route!="/metrics"'  # the service counts the scrapes of /metrics too: leave them out


def error_rate_query(job, window=WINDOW):
    return ('(sum(rate(http_requests_total{%s,status_class="5xx"}[%s])) or vector(0)) / '
            'sum(rate(http_requests_total{%s}[%s]))' % (USER % job, window, USER % job, window))


def p95_query(job):
    return ('histogram_quantile(0.95, sum by (le) (rate(http_request_latency_seconds_bucket{%s}[%s])))'
            % (USER % job, WINDOW))


def availability_query(job):
    return ('sum(rate(http_requests_total{%s,status_class=~"2xx|3xx"}[%s])) / sum(rate(http_requests_total{%s}[%s]))'
            % (USER % job, WINDOW, USER % job, WINDOW))


def traffic_query(job):
    return "sum(increase(http_requests_total{%s}[%s]))" % (USER % job, WINDOW)


CANARY_METRICS = [
    {"name": "error_rate", "query": error_rate_query(CANARY_JOB), "condition": {"op": "lt", "value": 0.01}},
    {"name": "latency_p95", "query": p95_query(CANARY_JOB), "condition": {"op": "lt", "value": 0.3}},
    {"name": "availability", "query": availability_query(CANARY_JOB), "condition": {"op": "ge", "value": 0.99}},
    {"name": "vs_stable", "unit": "seconds", "query": p95_query(CANARY_JOB),
     "compare": {"baseline_query": p95_query(STABLE_JOB), "max_increase_ratio": 0.5}},
]
_CLIENTS = itertools.count(1)


def prometheus_args(monitoring, metrics, count=2, interval=3.0, **extra):
    args = {"prometheus": {"url": monitoring.prometheus.url}, "metrics": metrics, "deadline": 120,
            "defaults": {"variant": "canary", "interval": interval, "count": count,
                         "traffic": {"query": traffic_query(CANARY_JOB), "min": 10}}}
    args.update(extra)
    return args


def scrape_args(monitoring, metrics, count=2, interval=2.0, token=None):
    """The module scrapes from 127.0.0.1 as the tests do; X-Forwarded-For (trusted from loopback) gives its scrapes a
    rate-limit client of their own, as a monitoring host would be in production."""
    client = {"X-Forwarded-For": "198.18.254.%d" % next(_CLIENTS)}
    token = monitoring.token if token is None else token
    return {"source": "scrape", "deadline": 120, "metrics": metrics,
            "scrape": {"targets": [
                {"variant": "canary", "url": monitoring.canary_url + "/metrics", "bearer_token": token, "headers": client},
                {"variant": "stable", "url": monitoring.stable_url + "/metrics", "bearer_token": token, "headers": client}]},
            "defaults": {"variant": "canary", "interval": interval, "count": count, "traffic": {"min": 5}}}


def analyse(module_runner, monitoring, args, check_mode=False):
    result = module_runner("slo_analysis", args, check_mode=check_mode)
    assert "Traceback" not in result.raw and not result.get("failed"), result.raw[-3000:]
    assert monitoring.token not in result.raw
    return result


def wait_for_canary_traffic(monitoring, minimum=20):
    """Until Prometheus has seen the load on both services (a rate needs two scrapes of a series)."""
    for job in (CANARY_JOB, STABLE_JOB):
        monitoring.prometheus.wait_for_samples("%s > %d" % (traffic_query(job), minimum), timeout=45)


def test_healthy_canary_passes_every_slo_and_monitoring_is_configured(module_runner, monitoring):
    with monitoring.load(duration=60, requests=5000, concurrency=4, rate=40):
        wait_for_canary_traffic(monitoring)
        result = analyse(module_runner, monitoring, prometheus_args(
            monitoring, CANARY_METRICS, require_targets=[STABLE_JOB, CANARY_JOB],
            require_rules=["sli:canary_error_rate5m", "sli:canary_latency_p95_5m", "CanaryHighErrorRate",
                           "CanaryHighLatency"]), check_mode=True)
    records = records_by_name(result)
    assert {name: r["status"] for name, r in records.items()} == {
        "monitoring.configured": "pass", "error_rate": "pass", "latency_p95": "pass", "availability": "pass",
        "vs_stable": "pass"}, [r["summary"] for r in result["records"]]
    assert records["monitoring.configured"]["summary"].startswith(
        "monitoring.configured: Prometheus scrapes clean-api (1 up), api-canary (1 up); rules loaded:")
    assert records["error_rate"]["summary"] == "slo.error_rate canary: 2 of 2 measurements successful, < 1 % (worst 0 %)"
    assert result["analysis"]["phase"] == "Successful" and result["analysis"]["ticks"] == 2
    measurements = records["latency_p95"]["evidence"]["measurements"]
    assert [m["outcome"] for m in measurements] == ["successful", "successful"]
    assert all(0 < m["value"] <= 0.05 and m["traffic"] >= 10 for m in measurements)  # /healthz: the first bucket


def test_canary_errors_fail_fast_and_stop_the_other_metrics(module_runner, monitoring):
    with monitoring.load(duration=60, requests=5000, concurrency=4, rate=40):
        wait_for_canary_traffic(monitoring)
        monitoring.canary.set_fault("error_fraction", fraction=0.1)
        result = analyse(module_runner, monitoring, prometheus_args(monitoring, CANARY_METRICS, count=6))
    records = records_by_name(result)
    failed = records["error_rate"]
    assert failed["status"] == "fail", failed["summary"]
    last = failed["evidence"]["measurements"][-1]
    assert last["outcome"] == "failed" and 0.01 < last["value"] <= 0.1
    assert failed["summary"].startswith("slo.error_rate canary: ") and "(needs < 1 %) at measurement" in failed["summary"]
    assert len(failed["evidence"]["measurements"]) < 6  # decided before the last measurement
    assert result["analysis"]["phase"] == "Failed" and result["analysis"]["stopped_by"] == "error_rate"
    # measured at the same ticks: availability fails with it, the latency metrics are stopped (skipped)
    assert records["availability"]["status"] in ("fail", "skipped")  # "fail" when its queries saw the same scrapes
    for name in ("latency_p95", "vs_stable"):
        assert records[name]["status"] == "skipped"
        assert records[name]["evidence"]["skip_reason"].endswith("error_rate failed")
    assert result["status"] == "fail"


def test_slow_canary_fails_its_p95_and_the_comparison_with_stable(module_runner, monitoring):
    monitoring.canary.set_fault("added_latency", ms=600)
    with monitoring.load(duration=60, requests=5000, concurrency=8, rate=40):
        monitoring.prometheus.wait_for_samples("%s > 0.5" % p95_query(CANARY_JOB), timeout=45)
        monitoring.prometheus.wait_for_samples("%s < 0.1" % p95_query(STABLE_JOB), timeout=45)
        result = analyse(module_runner, monitoring, prometheus_args(monitoring, CANARY_METRICS[1:2] + CANARY_METRICS[3:],
                                                                    count=3))
    records = records_by_name(result)
    assert records["latency_p95"]["status"] == "fail" and records["vs_stable"]["status"] == "fail"
    assert "ms > 300 ms (needs < 300 ms) at measurement 1 of 3" in records["latency_p95"]["summary"]
    summary = records["vs_stable"]["summary"]
    assert summary.startswith("slo.vs_stable canary: ") and " vs stable " in summary and "more than 50 % allowed" in summary
    evidence = records["vs_stable"]["evidence"]["measurements"][0]
    assert evidence["baseline"] < 0.1 < evidence["value"] and evidence["degradation_ratio"] > 0.5


def test_no_traffic_is_inconclusive_while_clamp_min_reads_zero(module_runner, monitoring):
    """The real recording rules divide by clamp_min(total, 1): once the canary has answered a 5xx (its 5xx series
    exists), a window without any request reads 0 % errors. The traffic requirement makes that inconclusive."""
    monitoring.canary.set_fault("error_fraction", fraction=1.0)
    assert 500 in monitoring.load_canary(requests=3, concurrency=1).run()["by_status"]
    monitoring.canary.clear_faults()
    prom = monitoring.prometheus
    prom.wait_for_samples('sum(http_requests_total{%s,status_class="5xx"}) > 0' % (USER % CANARY_JOB), timeout=30)
    prom.wait_for_samples("%s == 0" % traffic_query(CANARY_JOB), timeout=45)
    clamped = ('sum(rate(http_requests_total{%s,status_class="5xx"}[%s])) / clamp_min(sum(rate(http_requests_total{%s}'
               '[%s])), 1)' % (USER % CANARY_JOB, WINDOW, USER % CANARY_JOB, WINDOW))
    args = prometheus_args(monitoring, [
        {"name": "clamped_without_traffic", "criterion": "slo.error_rate", "query": clamped, "traffic": None,
         "condition": {"op": "lt", "value": 0.01}, "dry_run": True},
        {"name": "clamped", "criterion": "slo.error_rate", "query": clamped, "condition": {"op": "lt", "value": 0.01}},
        {"name": "plain", "criterion": "slo.error_rate", "query": error_rate_query(CANARY_JOB), "traffic": None,
         "condition": {"op": "lt", "value": 0.01}},
    ], count=1)
    args["defaults"]["traffic"] = None
    args["metrics"][1]["traffic"] = {"query": traffic_query(CANARY_JOB), "min": 1}
    records = records_by_name(analyse(module_runner, monitoring, args))
    assert records["clamped_without_traffic"]["status"] == "pass"  # the pitfall: 0 % of nothing
    assert records["clamped"]["status"] == "error" and records["clamped"]["evidence"]["outcome"] == "inconclusive"
    assert records["clamped"]["summary"] == ("slo.error_rate clamped canary: inconclusive: no traffic (0 requests in "
                                             "the window, min 1) at measurement 1 of 1")
    assert records["plain"]["status"] == "error"
    assert records["plain"]["summary"].endswith("inconclusive: the value is NaN at measurement 1 of 1")  # 0 / 0


def test_prometheus_errors_several_series_and_an_unreachable_server(module_runner, monitoring):
    # both jobs have two scrapes (their own /metrics requests count): the by-job query has two series
    monitoring.prometheus.wait_for_samples("count(sum by (job) (rate(http_requests_total[1m]))) == 2", timeout=30)
    args = prometheus_args(monitoring, [
        {"name": "typo", "criterion": "slo.error_rate", "query": "sum(rate(http_requests_total[1m])))",
         "condition": {"op": "lt", "value": 1}, "consecutive_error_limit": 0},
        {"name": "by_job", "criterion": "slo.error_rate", "query": "sum by (job) (rate(http_requests_total[1m]))",
         "condition": {"op": "lt", "value": 1}},
    ], count=1)
    args["defaults"]["traffic"] = None
    records = records_by_name(analyse(module_runner, monitoring, args))
    assert records["typo"]["status"] == "error" and records["typo"]["evidence"]["outcome"] == "error"
    assert ("answered 400 bad_data to the query `sum(rate(http_requests_total[1m])))`: invalid parameter \"query\": "
            "1:36: parse error: unexpected right parenthesis ')'") in records["typo"]["summary"]
    assert records["by_job"]["evidence"]["outcome"] == "inconclusive"
    assert "returned 2 series where one is expected (they differ in job)" in records["by_job"]["summary"]
    unreachable = dict(args["metrics"][1], name="down", consecutive_error_limit=1)
    down = dict(args, prometheus={"url": "http://127.0.0.1:9"}, metrics=[unreachable], deadline=10)
    down["defaults"] = dict(args["defaults"], interval=0.5, count=2)
    record = analyse(module_runner, monitoring, down)["records"][0]
    # Refused: an error at the first measurement, not measured again at the next interval.
    assert record["status"] == "error" and record["evidence"]["counts"]["error"] == 1
    assert "measuring again cannot help: Prometheus at http://127.0.0.1:9 did not answer: connection refused" \
        in record["summary"]


def test_monitoring_configured_fails_when_the_canary_target_is_down(module_runner, monitoring):
    prom = monitoring.prometheus
    prom.wait_for_target_up(CANARY_JOB)
    monitoring.canary.set_fault("metrics_down")
    prom.wait_for_samples('up{job="%s"} == 0' % CANARY_JOB, timeout=30)
    result = analyse(module_runner, monitoring, {"prometheus": {"url": prom.url},
                                                 "require_targets": [STABLE_JOB, CANARY_JOB, "api-typo"],
                                                 "require_rules": ["CanaryHighErrorRate", "NoSuchRule"]})
    record = result["records"][0]
    assert record["criterion"] == "monitoring.configured" and record["status"] == "fail"
    assert record["evidence"]["problems"][0].startswith("job api-canary: 1 of 1 targets not up (127.0.0.1:")
    assert "503" in record["evidence"]["problems"][0]
    assert record["evidence"]["problems"][1:] == ["job api-typo has no active target (Prometheus does not scrape it)",
                                                  "rule NoSuchRule is not loaded"]
    assert record["evidence"]["jobs"][STABLE_JOB]["up"] == 1


def test_range_query_needs_every_point_to_hold(module_runner, monitoring):
    with monitoring.load(duration=60, requests=5000, concurrency=4, rate=40):
        wait_for_canary_traffic(monitoring)
        monitoring.canary.set_fault("error_fraction", fraction=0.5)
        monitoring.prometheus.wait_for_samples("%s > 0.1" % error_rate_query(CANARY_JOB, "6s"), timeout=30)
        monitoring.canary.clear_faults()
        monitoring.prometheus.wait_for_samples("%s == 0" % error_rate_query(CANARY_JOB, "6s"), timeout=30)
        args = prometheus_args(monitoring, [{"name": "error_rate", "query": error_rate_query(CANARY_JOB, "6s"),
                                             "range": {"seconds": 60, "step": 3},
                                             "condition": {"op": "lt", "value": 0.01}}], count=1)
        record = analyse(module_runner, monitoring, args)["records"][0]
    assert record["status"] == "fail", record["summary"]
    measurement = record["evidence"]["measurements"][0]
    points = measurement["points"]
    # The worst point fails the metric although the latest one holds. How many points there are depends on
    # how long this Prometheus has been scraping (the test's own phases give about eight).
    assert measurement["value"] > 0.1 and float(points[-1][1]) < 0.01 and len(points) >= 5, points
    assert " of %d points: " % len(measurement["points"]) in record["summary"]
    assert "(needs < 1 %) at " in record["summary"]


def test_direct_scrape_measures_the_same_slos_without_prometheus(module_runner, monitoring):
    metrics = [
        {"name": "error_rate", "kind": "error_rate", "condition": {"op": "lt", "value": 0.01}},
        {"name": "latency_p95", "kind": "latency_quantile", "condition": {"op": "lt", "value": 0.3}},
        {"name": "availability", "kind": "availability", "condition": {"op": "ge", "value": 0.99}},
        {"name": "vs_stable", "kind": "error_rate", "compare": {"baseline_variant": "stable", "max_increase": 0.005}},
    ]
    with monitoring.load(duration=60, requests=5000, concurrency=4, rate=40):
        healthy = analyse(module_runner, monitoring, scrape_args(monitoring, metrics))
        monitoring.canary.set_fault("error_fraction", fraction=0.1)
        faulty = analyse(module_runner, monitoring, scrape_args(monitoring, metrics, count=5))
    assert [r["status"] for r in healthy["records"]] == ["pass"] * 4, [r["summary"] for r in healthy["records"]]
    first = healthy["records"][0]["evidence"]["measurements"][0]
    assert first["traffic"] >= 5 and first["window_s"] > 0 and first["value"] == 0.0
    records = records_by_name(faulty)
    # every 10th request of the canary answers 500, counted exactly from the bucket of two scrapes
    value = records["error_rate"]["evidence"]["measurements"][0]["value"]
    assert records["error_rate"]["status"] == "fail" and 0.07 <= value <= 0.13
    assert records["error_rate"]["summary"].endswith("(needs < 1 %) at measurement 1 of 5")
    assert records["vs_stable"]["status"] == "fail" and "vs stable 0 %" in records["vs_stable"]["summary"]
    assert records["latency_p95"]["status"] == "skipped" and faulty["analysis"]["ticks"] == 2  # baseline + one


def test_direct_scrape_with_a_wrong_token_is_an_error_never_a_pass(module_runner, monitoring):
    args = scrape_args(monitoring, [{"name": "error_rate", "kind": "error_rate", "consecutive_error_limit": 0,
                                     "condition": {"op": "lt", "value": 0.01}}], count=1, token="wrong-token-%d" % 7)
    record = analyse(module_runner, monitoring, args)["records"][0]
    assert record["status"] == "error" and record["evidence"]["outcome"] == "error"
    assert "answered 401: the bearer token is missing or wrong" in record["summary"]
    assert "wrong-token-7" not in str(record)


# ------------------------------------------------------------------------------------------ counted from the first sample

class HeldScrapes:
    """A relay in front of the canary's /metrics that lets the module's first scrape (its baseline) through at once
    and holds every later one until the test has sent its requests: the order baseline -> requests -> look is
    guaranteed without any sleep."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.baseline_taken = threading.Event()
        self.requests_sent = threading.Event()
        self.scrapes = 0
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the stdlib's name)
                relay.scrapes += 1
                if relay.scrapes > 1:
                    relay.requests_sent.wait(timeout=120)
                headers = dict((k, v) for k, v in self.headers.items() if k.lower() in ("authorization", "x-forwarded-for"))
                status, body = http_call("GET", relay.upstream + self.path, headers=headers, timeout=30)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if relay.scrapes == 1:
                    relay.baseline_taken.set()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.requests_sent.set()
        self.server.shutdown()
        self.server.server_close()


def send_requests(base_url, method, count):
    """``count`` requests of a method /healthz has no route for (405) - a series no other test makes - one at a time;
    the canary's error_fraction fault answers every 4th with a 500 first."""
    return [http_call(method, base_url + "/healthz", timeout=30)[0] for dummy in range(count)]


def counted_metric(method):
    return [{"name": "error_rate", "kind": "error_rate", "variant": "canary", "judge": "sequential",
             "match": {"method": method}, "condition": {"op": "le", "value": 0.01}}]


def new_5xx_increase(monitoring, method):
    """What PromQL's increase() makes of the new 5xx series (no answer: nothing)."""
    return monitoring.prometheus.value('sum(increase(http_requests_total{job="%s",method="%s",status_class="5xx"}[1m]))'
                                       % (CANARY_JOB, method)) or 0.0


def test_the_first_5xx_of_a_new_series_is_counted_by_both_sources(module_runner, monitoring):
    """A canary answers its first 5xx ever: the series is born with its value, which increase()/rate() ignore (they
    need two samples of a series). Both sources read the raw samples and count it from 0."""
    monitoring.canary.set_fault("error_fraction", fraction=0.25)
    prom = monitoring.prometheus

    # Prometheus: counted from `since`, a time before the series existed
    since = time.time()
    assert sorted(send_requests(monitoring.canary_url, "PATCH", 8)) == [405] * 6 + [500] * 2
    series = 'http_requests_total{job="%s",method="PATCH",status_class="5xx"}' % CANARY_JOB
    prom.wait_for_samples("%s == 2" % series, timeout=60)
    assert new_5xx_increase(monitoring, "PATCH") < 2  # what the old queries saw: fewer than the two 5xx
    args = {"prometheus": {"url": prom.url, "variants": {"canary": 'job="%s"' % CANARY_JOB}}, "since": "%.3f" % since,
            "metrics": counted_metric("PATCH"), "defaults": {"interval": 3, "count": 1}, "deadline": 60}
    look = analyse(module_runner, monitoring, args)["records"][0]["evidence"]["measurements"][0]
    assert (look["bad"], look["total"]) == (2.0, 8.0), look

    # the direct scrape: the baseline scrape first, then the requests, then the look
    with HeldScrapes(monitoring.canary_url) as relay:
        args = scrape_args(monitoring, counted_metric("PUT"), count=1, interval=2.0)
        args["scrape"]["targets"] = [dict(args["scrape"]["targets"][0], url=relay.url + "/metrics")]
        args["scrape"]["timeout"] = 60
        results = []
        worker = threading.Thread(target=lambda: results.append(analyse(module_runner, monitoring, args)))
        worker.start()
        assert relay.baseline_taken.wait(timeout=120), "the module never took its baseline scrape"
        assert sorted(send_requests(monitoring.canary_url, "PUT", 8)) == [405] * 6 + [500] * 2
        relay.requests_sent.set()
        worker.join(timeout=180)
    look = results[0]["records"][0]["evidence"]["measurements"][0]
    assert (look["bad"], look["total"]) == (2.0, 8.0), look
    prom.wait_for_samples('http_requests_total{job="%s",method="PUT",status_class="5xx"} == 2' % CANARY_JOB,
                          timeout=60)
    assert new_5xx_increase(monitoring, "PUT") < 2
