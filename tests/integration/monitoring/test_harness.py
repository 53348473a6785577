"""The monitoring harness with real daemons: Prometheus scraping the stable and canary reference services (test
rules: canary SLIs and alerts), Alertmanager receiving Prometheus's alerts, Caddy splitting traffic by repeated
upstreams, the bounded load generator, and the canary faults (error_fraction, added_latency, metrics_down) as
Prometheus and Alertmanager see them."""
from __future__ import annotations

import subprocess
import uuid

import pytest

from loadgen import LoadGenerator
from monitoring import MonitoringError, http_call, require_binary
from monitoring_fixtures import CANARY_JOB, STABLE_JOB

pytestmark = pytest.mark.integration


def test_prometheus_scrapes_both_services_and_records_the_canary_sli(monitoring):
    prom = monitoring.prometheus
    for job in (STABLE_JOB, CANARY_JOB):
        target = prom.wait_for_target_up(job)
        assert target["scrapeUrl"].endswith("/metrics") and target["lastError"] == ""
    with monitoring.load(duration=25, requests=2000, concurrency=4, rate=60) as load:
        canary_rate = prom.wait_for_samples('sum(rate(http_requests_total{job="api-canary"}[15s])) > 0')
        stable_rate = prom.wait_for_samples('sum(rate(http_requests_total{job="clean-api"}[15s])) > 0')
        assert float(canary_rate[0]["value"][1]) > 0 and float(stable_rate[0]["value"][1]) > 0
        # The service label is each process's APP_NAME; the job label is Prometheus's.
        services = prom.query("count by (job, service) (http_requests_total)")["result"]
        assert {(s["metric"]["job"], s["metric"]["service"]) for s in services} == \
            {(STABLE_JOB, "api"), (CANARY_JOB, "api-canary")}
        # Only 2xx answers on the canary (the load and the scrapes): the success rate is 1.
        success = prom.wait_for_samples("sli:canary_success_rate5m", predicate=lambda r: float(r[0]["value"][1]) > 0.99)
        assert float(success[0]["value"][1]) <= 1.0
        # No 5xx series on the canary yet: the error-rate rule has no sample at all (an empty vector, not 0), as
        # the real rule has none either.
        assert prom.value("sli:canary_error_rate5m") is None
        assert prom.value('sum(http_requests_total{job="api-canary",status_class="5xx"})') is None
        ratio = float(prom.wait_for_samples("canary:traffic_ratio:5m > 0")[0]["value"][1])
        assert 0 < ratio < 1
    assert load.join(timeout=15)
    assert set(load.by_status) == {200} and not load.errors
    names = {rule["name"] for group in prom.rules() for rule in group["rules"]}
    assert {"sli:canary_success_rate5m", "sli:canary_error_rate5m", "sli:canary_latency_p95_5m",
            "CanaryHighErrorRate", "CanaryHighLatency", "CanaryServiceUnhealthy"} <= names
    prom.reload()
    assert prom.wait_for_target_up(CANARY_JOB)["health"] == "up"
    # The scrape relay passes loopback targets only.
    assert http_call("GET", monitoring.relay.url + "/", headers={"Host": "example.com"})[0] == 403


def test_caddy_splits_by_repeated_upstreams(monitoring):
    caddy, stable, canary = monitoring.caddy, monitoring.stable_hostport, monitoring.canary_hostport
    assert sorted(caddy.read_upstreams()) == sorted([stable, canary])
    even = monitoring.load(requests=40, concurrency=4).run()
    assert even["by_status"] == {200: 40}
    assert even["by_upstream"] == {stable: 20, canary: 20}

    assert monitoring.set_weights(canary=1, stable=3) == [canary, stable, stable, stable]
    assert caddy.read_upstreams() == [canary, stable, stable, stable]
    # The admin API lists each upstream once, whatever its repeat count.
    assert sorted(entry["address"] for entry in caddy.upstreams()) == sorted([stable, canary])
    weighted = monitoring.load(requests=40, concurrency=4).run()
    assert weighted["by_upstream"] == {stable: 30, canary: 10}

    # What a traffic-split step does from outside: rewrite the upstreams file, then `caddy reload`.
    caddy.write_upstreams([canary])
    subprocess.run([require_binary("caddy"), "reload", "--config", str(caddy.caddyfile), "--adapter", "caddyfile",
                    "--address", caddy.admin_address], check=True, capture_output=True, timeout=30)
    assert [entry["address"] for entry in caddy.upstreams()] == [canary]
    assert monitoring.load(requests=8, concurrency=2).run()["by_upstream"] == {canary: 8}


def test_alertmanager_lists_posted_alerts_and_silences_them(monitoring):
    am = monitoring.alertmanager
    name = "HarnessCheck%s" % uuid.uuid4().hex[:8]
    am.post_alerts([{"labels": {"alertname": name, "deployment": "canary", "severity": "warning"},
                     "annotations": {"summary": "posted by the harness test"}}])
    alert = am.wait_for_alert(name, state="active", timeout=15)
    assert alert["labels"]["deployment"] == "canary" and alert["status"]["silencedBy"] == []
    silence_id = am.silence({"alertname": name}, minutes=5, comment="harness test")
    suppressed = am.wait_for_alert(name, state="suppressed", timeout=15)
    assert suppressed["status"]["silencedBy"] == [silence_id]
    assert any(s["id"] == silence_id and s["status"]["state"] == "active" for s in am.silences())
    am.expire_silence(silence_id)
    assert am.wait_for_alert(name, state="active", timeout=15)["status"]["silencedBy"] == []


def test_error_fraction_fires_the_canary_error_alert(monitoring):
    prom, am = monitoring.prometheus, monitoring.alertmanager
    prom.wait_for_target_up(CANARY_JOB)
    monitoring.canary.set_fault("error_fraction", fraction=0.1)
    with monitoring.load_canary(duration=25, requests=1000, concurrency=4, rate=40) as load:
        error_rate = prom.wait_for_samples("sli:canary_error_rate5m > 0.02")
        assert float(error_rate[0]["value"][1]) <= 0.1
        firing = prom.wait_for_alert("CanaryHighErrorRate", state="firing")
        assert firing["labels"]["severity"] == "page" and firing["labels"]["deployment"] == "canary"
        received = am.wait_for_alert("CanaryHighErrorRate", state="active", timeout=15)
        assert received["labels"]["severity"] == "page" and received["labels"]["deployment"] == "canary"
        # The stable service answered no 5xx: no series, so stable:error_rate:5m has no sample either.
        assert prom.value('http_5xx_total{job="clean-api"}') is None
        assert prom.value("stable:error_rate:5m") is None
    assert load.join(timeout=15) and not load.errors
    answered = sum(load.by_status.values())
    # Every 10th request of the load is a 500 (the scrapes are neither failed nor counted by the fault).
    assert load.by_status[500] == answered // 10 and load.by_status[200] == answered - answered // 10


def test_added_latency_fires_the_canary_latency_alert(monitoring):
    prom = monitoring.prometheus
    prom.wait_for_target_up(CANARY_JOB)
    monitoring.canary.set_fault("added_latency", ms=600)
    with monitoring.load_canary(duration=25, requests=1000, concurrency=8) as load:
        firing = prom.wait_for_alert("CanaryHighLatency", state="firing")
        assert firing["labels"]["severity"] == "warning" and firing["labels"]["deployment"] == "canary"
        p95 = prom.wait_for_samples("sli:canary_latency_p95_5m > 0.5")
        assert float(p95[0]["value"][1]) <= 1.0  # the 600 ms answers fall into the (0.5, 1] bucket
    assert load.join(timeout=15) and set(load.by_status) == {200}


def test_metrics_down_takes_the_canary_target_down(monitoring):
    prom = monitoring.prometheus
    prom.wait_for_target_up(CANARY_JOB)
    monitoring.canary.set_fault("metrics_down")
    prom.wait_for_samples('up{job="api-canary"} == 0', timeout=20)
    target = next(t for t in prom.targets() if t["labels"]["job"] == CANARY_JOB)
    assert target["health"] == "down" and "503" in target["lastError"]
    assert prom.value('up{job="clean-api"}') == 1.0
    assert prom.wait_for_alert("CanaryServiceUnhealthy", state="firing")["labels"]["severity"] == "page"
    # The service itself still answers.
    assert LoadGenerator(monitoring.canary_url, requests=3, concurrency=1).run()["by_status"] == {200: 3}
    monitoring.canary.clear_faults()
    assert prom.wait_for_target_up(CANARY_JOB)["health"] == "up"


def test_load_generator_is_bounded(monitoring):
    with pytest.raises(ValueError, match="needs a bound"):
        LoadGenerator(monitoring.stable_url)
    counted = LoadGenerator(monitoring.stable_url, paths=("/healthz", "/readyz"), requests=7, concurrency=3).run()
    assert counted["sent"] == 7 and counted["by_status"] == {200: 7}
    assert counted["by_upstream"] == {None: 7}  # no Caddy in between: no X-Canary-Upstream header
    paced = LoadGenerator(monitoring.stable_url, duration=1, rate=5, concurrency=2)
    paced.start()
    assert paced.join(timeout=15)
    assert 1 <= paced.sent <= 6  # at most rate x duration (+1 for the request at t=0)
    stopped = LoadGenerator(monitoring.stable_url, duration=60, rate=2, concurrency=1).start()
    assert stopped.stop() and not stopped.running()


def test_missing_binary_names_the_ensure_command():
    with pytest.raises(MonitoringError, match="system_packages.sh ensure monitoring"):
        require_binary("prometheus-alertmanager-not-installed")
