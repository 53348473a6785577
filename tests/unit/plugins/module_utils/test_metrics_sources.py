"""The metrics sources over real HTTP on loopback (a scripted server standing in for odd answers; the real Prometheus
is in tests/integration/monitoring): answer shapes, every failure a SourceError with the server's own text, the
credentials sent and never shown, the /metrics exposition parsed with prometheus_client."""
from __future__ import annotations


import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import HttpClient
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import Secrets, basic_auth_header
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import metrics_sources as ms

from scripted_http import answer

TOKEN = "tok-Ms-4kq9Zp2x"
PASSWORD = "pw-Ms-77HbQe"


def secrets_with(*values):
    secrets = Secrets()
    for value in values:
        secrets.add(value)
    return secrets


def api_for(url, **options):
    return ms.PrometheusAPI(dict({"url": url}, **options), HttpClient(), secrets_with(TOKEN, PASSWORD))


def deadline():
    return Deadline(10)


def test_instant_range_scalar_and_matrix_answers(server):
    vector = {"resultType": "vector", "result": [{"metric": {"job": "api-canary"}, "value": [1764696000.5, "0.051"]}]}
    server.script("/api/v1/query", answer(200, {"status": "success", "data": vector}),
                  answer(200, {"status": "success", "data": {"resultType": "scalar", "result": [1764696001, "NaN"]}}),
                  answer(200, {"status": "success", "data": {"resultType": "string", "result": [1764696001, "x"]}}))
    server.script("/api/v1/query_range", answer(200, {"status": "success", "warnings": ["slow"], "data": {
        "resultType": "matrix", "result": [{"metric": {}, "values": [[1, "0.1"], [2, "+Inf"]]}]}}))
    api = api_for(server.base_url, bearer_token=TOKEN)
    vector = api.instant('sum(rate(http_requests_total{job="api-canary"}[1m]))', deadline())
    assert vector.result_type == "vector" and vector.series == [({"job": "api-canary"}, [(1764696000.5, 0.051)])]
    scalar = api.instant("0/0", deadline())
    assert scalar.result_type == "scalar" and str(scalar.series[0][1][0][1]) == "nan"
    with pytest.raises(ms.SourceError) as info:
        api.instant('"x"', deadline())
    assert info.value.kind == "protocol" and "returns a string" in info.value.message
    matrix = api.range("up", 1.0, 2.0, 1.0, deadline())
    assert matrix.series[0][1] == [(1.0, 0.1), (2.0, float("inf"))] and matrix.warnings == ["slow"]
    sent = server.hits("/api/v1/query")[0]
    assert sent["headers"]["Authorization"] == "Bearer %s" % TOKEN
    assert "query=sum%28rate%28http_requests_total%7Bjob%3D%22api-canary%22%7D%5B1m%5D%29%29" in sent["path"]
    assert "start=1.000&end=2.000&step=1" in server.hits("/api/v1/query_range")[0]["path"]


def test_prometheus_errors_carry_its_own_text_and_no_secret(server):
    server.script("/api/v1/query",
                  answer(400, {"status": "error", "errorType": "bad_data",
                               "error": "1:6: parse error: unexpected right parenthesis ')'"}),
                  answer(502, "<html>Bad Gateway %s</html>" % TOKEN, content_type="text/html"),
                  answer(200, "not json"))
    api = api_for(server.base_url, url_username="reader", url_password=PASSWORD)
    with pytest.raises(ms.SourceError) as info:
        api.instant("sum(x))", deadline())
    assert info.value.kind == "prometheus"
    assert info.value.message == ("Prometheus at %s answered 400 bad_data to the query `sum(x))`: 1:6: parse error: "
                                  "unexpected right parenthesis ')'" % server.base_url)
    with pytest.raises(ms.SourceError) as info:
        api.instant("up", deadline())
    assert info.value.kind == "http" and "answered HTTP 502" in info.value.message and TOKEN not in info.value.message
    with pytest.raises(ms.SourceError) as info:
        api.instant("up", deadline())
    assert info.value.kind == "protocol" and "not a Prometheus API answer" in info.value.message
    assert server.hits()[0]["headers"]["Authorization"] == basic_auth_header("reader", PASSWORD)


def test_no_answer_is_a_transport_error_with_credentials_masked(closed_port):
    port = closed_port
    api = api_for("http://reader:%s@127.0.0.1:%d" % (PASSWORD, port))
    with pytest.raises(ms.SourceError) as info:
        api.instant("up", deadline())
    assert info.value.kind == "transport" and "connection refused" in info.value.message
    assert PASSWORD not in info.value.message and "reader:********@" in info.value.message


def test_targets_and_rules(server):
    server.script("/api/v1/targets", answer(200, {"status": "success", "data": {"activeTargets": [
        {"labels": {"job": "clean-api", "instance": "127.0.0.1:8001"}, "scrapePool": "clean-api", "health": "up",
         "lastError": "", "scrapeUrl": "http://127.0.0.1:8001/metrics"},
        {"labels": {"instance": "127.0.0.1:8002"}, "scrapePool": "api-canary", "health": "down",
         "lastError": "connection refused", "scrapeUrl": "http://u:%s@127.0.0.1:8002/metrics" % PASSWORD}],
        "droppedTargets": []}}))
    server.script("/api/v1/rules", answer(200, {"status": "success", "data": {"groups": [
        {"name": "canary.sli.recording.rules", "file": "r.yml", "rules": [
            {"name": "sli:canary_error_rate5m", "type": "recording", "health": "ok", "query": "x"}]}]}}))
    api = api_for(server.base_url)
    targets = api.targets(deadline())
    assert [(t["job"], t["health"]) for t in targets] == [("clean-api", "up"), ("api-canary", "down")]
    assert PASSWORD not in targets[1]["scrape_url"]
    assert "state=active" in server.hits("/api/v1/targets")[0]["path"]
    assert api.rules(deadline()) == [{"name": "sli:canary_error_rate5m", "type": "recording", "health": "ok",
                                      "group": "canary.sli.recording.rules", "last_error": ""}]


EXPOSITION = """# HELP http_requests_total HTTP requests by method, route, and status class.
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/healthz",service="api-canary",status_class="2xx"} 42.0
http_requests_total{method="GET",route="/healthz",service="api-canary",status_class="5xx"} 3.0
# HELP http_requests_created HTTP requests by method, route, and status class.
# TYPE http_requests_created gauge
http_requests_created{method="GET",route="/healthz",service="api-canary",status_class="2xx"} 1.7e+09
# HELP http_request_latency_seconds Request latency.
# TYPE http_request_latency_seconds histogram
http_request_latency_seconds_bucket{le="0.05",method="GET",route="/healthz",service="api-canary",status_class="2xx"} 40.0
http_request_latency_seconds_bucket{le="+Inf",method="GET",route="/healthz",service="api-canary",status_class="2xx"} 42.0
http_request_latency_seconds_count{method="GET",route="/healthz",service="api-canary",status_class="2xx"} 42.0
http_request_latency_seconds_sum{method="GET",route="/healthz",service="api-canary",status_class="2xx"} 0.9
"""


def test_scrape_parses_the_exposition_and_explains_a_401(server):
    server.script("/metrics", answer(200, EXPOSITION, content_type="text/plain; version=0.0.4"),
                  answer(401, {"detail": "Unauthorized"}), answer(200, "this is { not an exposition"))
    scraper = ms.Scraper({"timeout": 5}, HttpClient(), secrets_with(TOKEN))
    target = {"variant": "canary", "url": server.base_url + "/metrics", "bearer_token": TOKEN,
              "headers": {"X-Forwarded-For": "198.18.0.7"}}
    snap = scraper.scrape(target, deadline())
    ok = snap.select("http_requests_total", {"status_class": "2xx"})
    assert list(ok.values()) == [42.0] and len(snap.select("http_requests_total")) == 2
    assert len(snap.select("http_request_latency_seconds_bucket", {"route": "/healthz"})) == 2
    sent = server.hits("/metrics")[0]["headers"]
    assert sent["Authorization"] == "Bearer %s" % TOKEN and sent["X-Forwarded-For"] == "198.18.0.7"
    with pytest.raises(ms.SourceError) as info:
        scraper.scrape(target, deadline())
    assert "answered 401: the bearer token is missing or wrong" in info.value.message
    with pytest.raises(ms.SourceError) as info:
        scraper.scrape(target, deadline())
    assert info.value.kind == "parse" and "not a Prometheus text exposition" in info.value.message
    assert scraper.requests_sent == 3
