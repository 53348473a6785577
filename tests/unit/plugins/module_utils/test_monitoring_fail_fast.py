"""Prometheus and Alertmanager that cannot answer usefully, over real HTTP on loopback (a closed port for one that
refuses connections, the scripted server for a 400 bad_data): a metric ends at its first measurement instead of being
measured again at every interval, a 4xx is sent once and its error names the query, both connect within a short
deadline. Time is a fake clock: the tests count measurements and requests, never elapsed seconds."""
from __future__ import annotations

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import alertmanager as am
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import metrics_analysis as ma
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import metrics_sources as ms
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import MONITORING_CONNECT_TIMEOUT, HttpClient
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import Secrets
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline

from scripted_http import FakeClock, answer

QUERY = 'sum(rate(http_requests_total{job="api-canary",status_class="5xx"}[1m])))'
BAD_DATA = answer(400, {"status": "error", "errorType": "bad_data",
                        "error": "1:66: parse error: unexpected right parenthesis ')'"})


def plan_for(url, **metric):
    raw = dict({"name": "error_rate", "query": QUERY, "condition": {"op": "lt", "value": 0.01}, "variant": "canary",
                "count": 3, "interval": 30}, **metric)
    return ma.plan_analysis({"source": "prometheus", "deadline": 600.0, "metrics": [raw], "defaults": {},
                             "prometheus": {"url": url}, "scrape": None})


def analyse(plan):
    clock = FakeClock()
    started = clock.now
    result = ma.run_analysis(plan, Secrets(), client=HttpClient(clock=clock, sleep=clock.sleep), clock=clock,
                             sleep=clock.sleep)
    return result, clock.now - started


def test_a_prometheus_refusing_connections_ends_the_metric_at_its_first_measurement(closed_port):
    result, fake_seconds = analyse(plan_for("http://127.0.0.1:%d" % closed_port))
    metric = result["analysis"]["metrics"][0]
    assert metric["phase"] == "Error" and len(metric["measurements"]) == 1
    # One request and its one quick retry; no 30 s interval waited for a second look (fake clock: backoff only).
    assert result["requests"] == 2 and fake_seconds < 30
    record = result["records"][0]
    assert record["status"] == "error" and "connection refused" in record["summary"]
    assert "measuring again cannot help" in record["summary"]


def test_a_bad_query_is_sent_once_and_its_error_names_the_query(server):
    server.script("/api/v1/query", *([BAD_DATA] * 6))
    result, fake_seconds = analyse(plan_for(server.base_url))
    assert len(server.hits("/api/v1/query")) == 1 and result["requests"] == 1 and fake_seconds < 30
    metric = result["analysis"]["metrics"][0]
    assert metric["phase"] == "Error" and len(metric["measurements"]) == 1
    summary = result["records"][0]["summary"]
    assert "400 bad_data to the query `%s`" % QUERY in summary and "unexpected right parenthesis" in summary


def test_a_server_error_is_still_measured_again(server):
    # A 503 may pass: the metric is measured at its next intervals (consecutive_error_limit), as before.
    server.script("/api/v1/query", *([answer(503, "overloaded", content_type="text/plain")] * 12))
    result, _fake_seconds = analyse(plan_for(server.base_url, consecutive_error_limit=2))
    metric = result["analysis"]["metrics"][0]
    assert metric["phase"] == "Error" and len(metric["measurements"]) == 3


def test_which_answers_are_permanent(server, closed_port):
    server.script("/api/v1/query", answer(404, "no such path", content_type="text/plain"),
                  answer(422, {"status": "error", "errorType": "execution", "error": "many-to-many matching"}))
    api = ms.PrometheusAPI({"url": server.base_url}, HttpClient(), Secrets())
    for _expected in ("http", "prometheus"):
        try:
            api.instant("up", Deadline(10))
        except ms.SourceError as exc:
            assert exc.kind == _expected and exc.permanent and "to the query `up`" in exc.message
    assert len(server.hits("/api/v1/query")) == 2  # neither answer was asked again
    # A scraped service that refuses may be restarting: measured again, unlike Prometheus.
    scraper = ms.Scraper({"timeout": 5}, HttpClient(), Secrets())
    try:
        scraper.scrape({"variant": "canary", "url": "http://127.0.0.1:%d/metrics" % closed_port}, Deadline(10))
    except ms.SourceError as exc:
        assert exc.kind == "transport" and not exc.permanent
    else:
        raise AssertionError("a closed port answered")


def test_prometheus_connects_within_a_short_deadline_and_reads_within_its_timeout(server):
    server.script("/api/v1/query", answer(200, {"status": "success", "data": {"resultType": "scalar",
                                                                              "result": [1, "1"]}}))
    client = Recording()
    ms.PrometheusAPI({"url": server.base_url, "timeout": 30}, client, Secrets()).instant("1", Deadline(10))
    sent = [spec for spec, _outcome in client.sent]
    assert sent[0].connect_timeout == MONITORING_CONNECT_TIMEOUT and sent[0].timeout == 30.0


class Recording(HttpClient):
    """A real client that keeps what it sent and what came of it."""

    def __init__(self, **kwargs):
        super(Recording, self).__init__(**kwargs)
        self.sent = []

    def request(self, spec, policy=None, deadline=None, budget=None):
        outcome = super(Recording, self).request(spec, policy, deadline, budget)
        self.sent.append((spec, outcome))
        return outcome


def alert_params(url):
    return {"url": url, "bearer_token": None, "url_username": None, "url_password": None, "validate_certs": True,
            "ca_path": None, "timeout": 10.0, "matchers": ["severity=page"], "ignore_alertnames": ["Watchdog"],
            "criterion": "alerts.firing", "blocking": True}


def test_an_alertmanager_refusing_connections_is_an_error_after_a_few_quick_attempts(closed_port):
    clock = FakeClock()
    client = Recording(clock=clock, sleep=clock.sleep)
    record, _alerts = am.AlertCheck(alert_params("http://127.0.0.1:%d" % closed_port)).run(client)
    assert record["status"] == "error" and "refused" in record["summary"]
    spec, outcome = client.sent[0]
    assert spec.connect_timeout == MONITORING_CONNECT_TIMEOUT and spec.timeout == 10.0
    assert len(outcome.attempts) == 3 and clock.now - 1000.0 < 5  # two backoffs on the fake clock


def test_an_alertmanager_4xx_is_asked_once(server):
    server.script("/api/v2/alerts", *([answer(400, {"code": 400, "message": "bad matcher format: severity=~("})] * 3))
    record, _alerts = am.AlertCheck(alert_params(server.base_url)).run(HttpClient())
    assert record["status"] == "error" and "HTTP 400" in record["summary"] and "bad matcher format" in record["summary"]
    assert len(server.hits("/api/v2/alerts")) == 1
