"""The service's /metrics: the real service's names and labels, a text prometheus_client parses (and writes the
same way), what is counted, APP_NAME as the ``service`` label and the canary faults on a process of its own."""
from __future__ import annotations

import pytest
import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from refhelpers import assert_problem, get, post
from refservice.metrics import LATENCY_BUCKETS, Metrics, bucket_for_path, format_value

SERVICE = "cleaning-economy-bot"


def parse(text):
    """{(sample name, sorted label pairs): value} and {family name: type} of an exposition text."""
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types


def key(name, **labels):
    return (name, tuple(sorted(labels.items())))


def http(route, status_class="2xx", method="GET", service=SERVICE):
    return {"method": method, "route": route, "status_class": status_class, "service": service}


def scrape(base_url, token, client="198.51.100.77"):
    resp = requests.get(base_url + "/metrics", headers={"Authorization": "Bearer " + token, "X-Forwarded-For": client},
                        timeout=15)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(resp.text)


def test_rendering_matches_prometheus_client():
    """The same observations through prometheus_client (the real service's library) and through the reference
    service's own renderer give the same families, types, samples and values (the _created stamps aside)."""
    ours = Metrics("api-canary")
    registry = CollectorRegistry(auto_describe=True)
    labels = ("method", "route", "status_class", "service")
    requests_total = Counter("http_requests_total", "HTTP requests by method, route, and status class.", labels,
                             registry=registry)
    latency = Histogram("http_request_latency_seconds", "HTTP request latency in seconds.", labels,
                        buckets=LATENCY_BUCKETS, registry=registry)
    http_5xx = Counter("http_5xx_total", "HTTP responses with status >= 500.", ("method", "route", "service"),
                       registry=registry)
    http_429 = Counter("http_429_total", "HTTP 429 responses by bucket.", ("bucket",), registry=registry)
    blocks = Counter("org_rate_limit_blocks_total", "Rate limit blocks by request bucket.", ("bucket",),
                     registry=registry)
    age = Gauge("job_heartbeat_age_seconds", "Age of the latest job heartbeat in seconds.", ("job",), registry=registry)
    runner_up = Gauge("job_runner_up", "Job runner liveness indicator (1=recent heartbeat).", ("job",),
                      registry=registry)
    start = Gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                  registry=registry)
    start.set(ours.started)
    for method, route, status, seconds in (("GET", "/healthz", 200, 0.003), ("GET", "/healthz", 200, 0.7),
                                           ("POST", "/v1/estimate", 500, 12.5), ("GET", "unmatched", 404, 0.05),
                                           ("GET", 'odd"\\route\n', 200, 0.25)):
        ours.observe(method, route, status, seconds)
        child = dict(method=method, route=route, status_class="%dxx" % (status // 100), service="api-canary")
        requests_total.labels(**child).inc()
        latency.labels(**child).observe(seconds)
        if status >= 500:
            http_5xx.labels(method=method, route=route, service="api-canary").inc()
    for path in ("/v1/admin/profile", "/openapi.json", "/openapi.json"):
        ours.rate_limited(path)
        http_429.labels(bucket=bucket_for_path(path)).inc()
        blocks.labels(bucket=bucket_for_path(path)).inc()
    ours.job_heartbeat_age("jobs-runner", 12.25, threshold_seconds=180)
    age.labels(job="jobs-runner").set(12.25)
    runner_up.labels(job="jobs-runner").set(1)

    mine, my_types = parse(ours.render())
    theirs, their_types = parse(generate_latest(registry).decode())
    assert my_types == their_types
    assert set(mine) == set(theirs)
    assert {k: v for k, v in mine.items() if not k[0].endswith("_created")} == \
        {k: v for k, v in theirs.items() if not k[0].endswith("_created")}
    assert mine[key("http_request_latency_seconds_bucket", le="0.5", **http("/healthz", service="api-canary"))] == 1
    assert mine[key("http_429_total", bucket="other")] == 2 and mine[key("http_429_total", bucket="admin")] == 1


def test_value_format():
    assert [format_value(v) for v in (1, 0.05, 10, float("inf"), 1796233861.6791654, 1e7, 12345678.5)] == \
        ["1.0", "0.05", "10.0", "+Inf", "1.7962338616791654e+09", "1e+07", "1.23456785e+07"]


def test_every_request_is_counted(healthy_stack):
    stack = healthy_stack
    before, types = scrape(stack.base_url, stack.metrics_token)
    assert types["http_requests"] == "counter" and types["http_request_latency_seconds"] == "histogram"
    assert types["http_5xx"] == "counter" and types["process_start_time_seconds"] == "gauge"
    assert get(stack, "/healthz").status_code == 200
    assert get(stack, "/readyz").status_code == 200
    assert_problem(get(stack, "/no/such/path"), 404)
    assert post(stack, "/v1/estimate", json={"beds": 2, "baths": 1.5, "cleaning_type": "deep"}).status_code == 200
    assert_problem(post(stack, "/v1/estimate", json={"beds": "many"}), 422)
    after, dummy = scrape(stack.base_url, stack.metrics_token)

    def grew(name, labels):
        return after.get(key(name, **labels), 0) - before.get(key(name, **labels), 0)

    for labels in (http("/healthz"), http("/readyz"), http("unmatched", "4xx"), http("/v1/estimate", method="POST"),
                   http("/v1/estimate", "4xx", method="POST"), http("/metrics")):  # the first scrape itself
        assert grew("http_requests_total", labels) == 1, labels
        assert grew("http_request_latency_seconds_count", labels) == 1, labels
        assert grew("http_request_latency_seconds_bucket", dict(labels, le="+Inf")) == 1, labels
    labels = http("/healthz")
    counts = [after[key("http_request_latency_seconds_bucket", le=format_value(b), **labels)] for b in LATENCY_BUCKETS]
    assert counts == sorted(counts) and counts[-1] <= after[key("http_request_latency_seconds_count", **labels)]
    assert after[key("http_request_latency_seconds_sum", **labels)] > 0
    # Set by the readiness probe's jobs check, as in the real service.
    assert 0 <= after[key("job_heartbeat_age_seconds", job="jobs-runner")] < 180
    assert after[key("job_runner_up", job="jobs-runner")] == 1
    assert after[key("process_start_time_seconds")] > 1.6e9
    # The healthy answers above added no 5xx (the session's stack may count a 503 of an earlier test's fault).
    grown_5xx = [k for k in after if k[0] == "http_5xx_total" and dict(k[1])["route"] in ("/healthz", "/readyz")
                 and after[k] != before.get(k, 0)]
    assert not grown_5xx


def test_app_name_rate_limit_and_canary_faults(ref_stack, tmp_path):
    """A process of its own (APP_NAME=api-canary, a limit of 2 a minute so a refusal is cheap to provoke): the
    limiter's 429s are only in http_429_total (the real RateLimitMiddleware sits outside MetricsMiddleware), and the
    canary faults are switched on its own faults file."""
    with ref_stack.extra_service(tmp_path, APP_NAME="api-canary", RATE_LIMIT_PER_MINUTE="2") as canary:
        client = {"X-Forwarded-For": "198.51.100.78"}
        statuses = [requests.get(canary.base_url + "/openapi.json", headers=client, timeout=15).status_code
                    for dummy in range(3)]
        assert statuses == [200, 200, 429]
        samples, dummy = scrape(canary.base_url, ref_stack.metrics_token)
        assert samples[key("http_requests_total", **http("/openapi.json", service="api-canary"))] == 2
        assert key("http_requests_total", **http("/openapi.json", "4xx", service="api-canary")) not in samples
        assert samples[key("http_429_total", bucket="other")] == 1
        assert samples[key("org_rate_limit_blocks_total", bucket="other")] == 1
        assert not [k for k in samples if dict(k[1]).get("service") not in (None, "api-canary")]

        canary.set_fault("error_fraction", fraction=0.25)
        assert canary.faults() == {"error_fraction": {"fraction": 0.25}}
        statuses = [requests.get(canary.base_url + "/healthz", timeout=15).status_code for dummy in range(8)]
        assert statuses == [200, 200, 200, 500] * 2
        samples, dummy = scrape(canary.base_url, ref_stack.metrics_token, client="198.51.100.79")
        assert samples[key("http_5xx_total", method="GET", route="/healthz", service="api-canary")] == 2
        assert samples[key("http_requests_total", **http("/healthz", "5xx", service="api-canary"))] == 2

        canary.set_fault("metrics_down")
        assert set(canary.faults()) == {"error_fraction", "metrics_down"}
        down = requests.get(canary.base_url + "/metrics", timeout=15,
                            headers={"Authorization": "Bearer " + ref_stack.metrics_token, "X-Forwarded-For": "198.51.100.80"})
        assert_problem(down, 503)
        canary.clear_faults()
        assert canary.faults() == {}
        assert [requests.get(canary.base_url + "/healthz", timeout=15).status_code for dummy in range(4)] == [200] * 4
        with pytest.raises(ValueError, match="not 'service_down'"):
            canary.set_fault("service_down")
        with pytest.raises(ValueError, match="fraction must be in"):
            canary.set_fault("error_fraction", fraction=2)
    assert not canary.alive()
