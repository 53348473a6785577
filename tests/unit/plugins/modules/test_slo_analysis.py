"""slo_analysis run as Ansible runs it (a separate process) against a scripted Prometheus API on loopback: input
errors name the option and never show a traceback, secrets never appear in the output, check mode measures for real,
a missing prometheus_client is reported only for the scrape source. The real Prometheus and the reference services
are in tests/integration/monitoring/."""
from __future__ import annotations

import json

import pytest

from scripted_http import answer
from modrun import COLLECTIONS, records_by_name

TOKEN = "tok-Slo-9Xv2Lq7w"
PASSWORD = "pw-Slo-3Kd8Rr"
HEADER_SECRET = "hdr-Slo-55aQ"
SCRAPE_TOKEN = "scr-Slo-81mPz0"
SECRETS = (TOKEN, PASSWORD, HEADER_SECRET, SCRAPE_TOKEN)


def vector(value, labels=None):
    return answer(200, {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels or {}, "value": [1764696000.0, str(value)]}]}})


def run(module_runner, args, check_mode=False, env=None):
    result = module_runner("slo_analysis", args, check_mode=check_mode, env=env)
    assert "Traceback" not in result.raw, result.raw
    for secret in SECRETS:
        assert secret not in result.raw, "secret %s leaked:\n%s" % (secret, result.raw)
    return result


def base(server, metrics, **extra):
    args = {"prometheus": {"url": server.base_url, "bearer_token": TOKEN}, "metrics": metrics,
            "defaults": {"interval": 0.2, "count": 1, "variant": "canary"}, "deadline": 20}
    args.update(extra)
    return args


ERROR_RATE = {"name": "error_rate", "query": "sum(rate(http_requests_total{job=\"api-canary\",status_class=\"5xx\"}[1m]))"
                                             " / sum(rate(http_requests_total{job=\"api-canary\"}[1m]))",
              "condition": {"op": "lt", "value": 0.01}}


def without(item, key):
    return dict((k, v) for k, v in item.items() if k != key)


@pytest.mark.parametrize("change, needle", [
    ({"metrics": [dict(ERROR_RATE, condition={"op": "below", "value": 0.01})]},
     "metrics[0].condition.op: unknown operator 'below'; use one of lt, le, gt, ge, eq, ne"),
    ({"metrics": [dict(without(ERROR_RATE, "query"), kind="bogus")]}, "value of kind must be one of"),
    ({"metrics": [dict(ERROR_RATE, count="three")]}, "count"),
    ({"metrics": [dict(ERROR_RATE, kind="error_rate")]}, "parameters are mutually exclusive: query|kind"),
    ({"metrics": [without(ERROR_RATE, "condition")]}, "one of the following is required: condition, compare"),
    ({"metrics": [dict(ERROR_RATE, condition=None)]}, "metrics[0] needs a condition, a compare or both"),
    ({"source": "scrape"}, "source is scrape but all of the following are missing: scrape"),
    ({"prometheus": None, "source": "scrape", "scrape": {"targets": [{"variant": "canary", "url": "http://x/metrics"}]},
      "require_targets": ["clean-api"]}, "missing parameter(s) required by 'require_targets': prometheus"),
    ({"metrics": [dict(ERROR_RATE, count=10, interval=5)], "deadline": 30},
     "metrics[0]: 10 measurements 5 s apart take 45 s, not less than deadline (30.0 s)"),
    ({"prometheus": {"url": "http://u:%s@127.0.0.1:9/" % PASSWORD, "url_username": "u", "bearer_token": TOKEN}},
     "parameters are mutually exclusive: bearer_token|url_username"),
    ({"metrics": [{"name": "p95", "kind": "latency_quantile", "judge": "sequential", "variant": "canary",
                   "condition": {"op": "lt", "value": 0.3}}], "prometheus": {"variants": {"canary": 'job="c"'}}},
     "metrics[0].judge=sequential judges shares of requests: kind must be one of error_rate, availability, slow_share"),
    ({"metrics": [{"name": "slow", "kind": "slow_share", "variant": "canary", "condition": {"op": "le", "value": 0.05}}],
      "prometheus": {"variants": {"canary": 'job="c"'}}}, "metrics[0].boundary is required with kind=slow_share"),
    ({"metrics": [dict(ERROR_RATE, judge="bayesian")]}, "value of judge must be one of: threshold, sequential"),
    ({"since": "yesterday"}, "since must be epoch seconds or an RFC 3339 time"),
])
def test_bad_input_fails_naming_the_option(module_runner, server, change, needle):
    args = base(server, [ERROR_RATE])
    change = dict(change)  # a prometheus without url adds to the base's connection
    prometheus = change.pop("prometheus", None) if isinstance(change.get("prometheus"), dict) and \
        "url" not in change["prometheus"] else None
    args.update(change)
    if prometheus:
        args["prometheus"] = dict(args["prometheus"], **prometheus)
    result = run(module_runner, args)
    assert result.get("failed") and needle in result["msg"], result["msg"]


def test_a_failing_metric_stops_the_call_and_check_mode_measures_for_real(module_runner, server):
    server.script("/api/v1/query", lambda handler: vector(
        0.051 if "5xx" in handler.path else 0.12))
    metrics = [ERROR_RATE, {"name": "latency_p95", "query": "histogram_quantile(0.95, x)", "count": 3,
                            "condition": {"op": "lt", "value": 0.3}}]
    result = run(module_runner, base(server, metrics), check_mode=True)
    records = records_by_name(result)
    assert records["error_rate"]["status"] == "fail"
    assert records["error_rate"]["summary"] == "slo.error_rate canary: 5.1 % > 1 % (needs < 1 %) at measurement 1 of 1"
    assert records["latency_p95"]["status"] == "skipped"
    assert records["latency_p95"]["evidence"]["skip_reason"] == "stopped after 1 of 3 measurements: error_rate failed"
    assert result["analysis"]["phase"] == "Failed" and result["analysis"]["stopped_by"] == "error_rate"
    assert result["analysis"]["ticks"] == 1 and result["changed"] is False and result["status"] == "fail"
    sent = server.hits("/api/v1/query")[0]["headers"]
    assert sent["Authorization"] == "Bearer %s" % TOKEN


def test_secrets_are_masked_in_prometheus_errors_and_the_invocation(module_runner, server):
    server.script("/api/v1/query", answer(400, {"status": "error", "errorType": "bad_data",
                                                "error": "1:9: parse error near %s and %s" % (HEADER_SECRET, PASSWORD)}))
    args = base(server, [ERROR_RATE])
    args["prometheus"] = {"url": server.base_url, "url_username": "reader", "url_password": PASSWORD,
                          "headers": {"X-Api-Key": HEADER_SECRET}}
    args["defaults"]["consecutive_error_limit"] = 0
    result = run(module_runner, args)
    record = records_by_name(result)["error_rate"]
    assert record["status"] == "error" and record["evidence"]["outcome"] == "error"
    assert "answered 400 bad_data to the query `%s`: 1:9: parse error near ******** and ********" % (
        " ".join(ERROR_RATE["query"].split())) in record["summary"]
    assert result["invocation"]["module_args"]["prometheus"]["url_password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_no_data_is_never_a_pass(module_runner, server):
    server.script("/api/v1/query", answer(200, {"status": "success", "data": {"resultType": "vector", "result": []}}))
    result = run(module_runner, base(server, [ERROR_RATE]))
    record = records_by_name(result)["error_rate"]
    assert record["status"] == "error" and record["evidence"]["outcome"] == "inconclusive"
    assert record["summary"] == ("slo.error_rate canary: inconclusive: no data: the query returned an empty vector at "
                                 "measurement 1 of 1")
    assert result["analysis"]["phase"] == "Inconclusive"


def test_monitoring_configured_alone(module_runner, server):
    server.script("/api/v1/targets", answer(200, {"status": "success", "data": {"activeTargets": [
        {"labels": {"job": "clean-api", "instance": "a:1"}, "health": "up", "lastError": "", "scrapeUrl": "http://a:1"}],
        "droppedTargets": []}}))
    result = run(module_runner, {"prometheus": {"url": server.base_url}, "require_targets": ["clean-api", "api-canary"]})
    assert [r["criterion"] for r in result["records"]] == ["monitoring.configured"]
    assert result["records"][0]["status"] == "fail" and "job api-canary has no active target" in result["records"][0]["summary"]
    assert result["analysis"] is None


def test_missing_prometheus_client_is_reported_only_for_the_scrape_source(module_runner, server, tmp_path):
    shim = tmp_path / "prometheus_client"
    shim.mkdir()
    (shim / "__init__.py").write_text("raise ImportError('No module named prometheus_client (test shim)')\n")
    env = {"PYTHONPATH": "%s:%s" % (tmp_path, COLLECTIONS)}
    args = {"source": "scrape", "scrape": {"targets": [{"variant": "canary", "url": server.base_url + "/metrics",
                                                        "bearer_token": SCRAPE_TOKEN}]},
            "metrics": [{"name": "error_rate", "kind": "error_rate", "variant": "canary", "count": 1, "interval": 1,
                         "condition": {"op": "lt", "value": 0.01}}]}
    result = run(module_runner, args, env=env)
    assert result.get("failed") and "prometheus_client" in result["msg"] and "Failed to import" in result["msg"]
    server.script("/api/v1/query", vector(0.0))
    result = run(module_runner, base(server, [ERROR_RATE]), env=env)
    assert records_by_name(result)["error_rate"]["status"] == "pass", json.dumps(result)[:2000]
