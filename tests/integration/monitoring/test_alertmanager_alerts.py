"""alertmanager_alerts against a real Alertmanager 0.25 (the harness's Alertmanager): firing alerts fail the
criterion naming them, silenced and inhibited ones are reported apart, no usable answer is an error, bad input a
clear task failure. Alerts cannot be deleted from Alertmanager, so every test labels its own with a run id and
matches on it."""
from __future__ import annotations

import uuid

import pytest

from modrun import run_module
from monitoring import Alertmanager

pytestmark = pytest.mark.integration

SECRET = "canary-Am7-secret-value"


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    # A critical alert inhibits the warnings of the same run (the real service's inhibition shape).
    rules = [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'], "equal": ["run"]}]
    with Alertmanager(tmp_path_factory.mktemp("alertmanager"), inhibit_rules=rules) as daemon:
        yield daemon


@pytest.fixture()
def run_id():
    return uuid.uuid4().hex[:10]


def post(am, run, name, state="active", **labels):
    """Post one alert of this run and wait until Alertmanager shows it in ``state``."""
    labels = dict(labels, alertname=name, run=run)
    annotations = labels.pop("annotations", {"summary": "%s of run %s" % (name, run)})
    am.post_alerts([{"labels": labels, "annotations": annotations}])
    return am.wait_for_alert(name, state=state, timeout=20)


def check(am, run, *matchers, **args):
    params = dict({"url": am.url, "matchers": ["run=%s" % run] + list(matchers)}, **args)
    check_mode = params.pop("check_mode", False)
    result = run_module("alertmanager_alerts", params, check_mode=check_mode)
    assert "Traceback" not in result.raw
    return result


def test_a_firing_page_alert_fails_naming_it(alertmanager, run_id):
    name = "CanaryHighErrorRate%s" % run_id
    alert = post(alertmanager, run_id, name, severity="page", deployment="canary")
    post(alertmanager, run_id, "Other%s" % run_id, severity="info")
    result = check(alertmanager, run_id, "severity=page")
    assert result["changed"] is False and result["status"] == "fail"
    (record,) = result["records"]
    assert record["criterion"] == "alerts.firing" and record["status"] == "fail" and record["blocking"] is True
    assert record["summary"].startswith('1 firing alert matching run=%s, severity=page: %s{run="%s",severity="page"} since %s'
                                        % (run_id, name, run_id, alert["startsAt"]))
    assert record["summary"].endswith("; 0 silenced, 0 inhibited")
    (firing,) = result["alerts"]["firing"]
    assert firing["alertname"] == name and firing["state"] == "active"
    assert firing["labels"]["deployment"] == "canary" and firing["startsAt"] == alert["startsAt"]
    assert record["evidence"]["firing"][0]["fingerprint"] == alert["fingerprint"]
    assert record["evidence"]["counts"]["firing"] == 1
    assert result["alerts"]["silenced"] == [] and result["alerts"]["inhibited"] == []


def test_a_silenced_alert_passes_and_is_reported_apart(alertmanager, run_id):
    name = "SloBurnRate%s" % run_id
    post(alertmanager, run_id, name, severity="page")
    silence_id = alertmanager.silence({"alertname": name}, minutes=10, comment="maintenance")
    alertmanager.wait_for_alert(name, state="suppressed", timeout=20)
    result = check(alertmanager, run_id, "severity=page")
    (record,) = result["records"]
    assert record["status"] == "pass"
    assert record["summary"] == "no firing alert matching run=%s, severity=page; 1 silenced, 0 inhibited" % run_id
    (silenced,) = result["alerts"]["silenced"]
    assert silenced["alertname"] == name and silenced["silenced_by"] == [silence_id]
    assert record["evidence"]["silenced"][0]["silenced_by"] == [silence_id]
    assert result["alerts"]["firing"] == []


def test_an_inhibited_alert_passes_and_the_inhibiting_one_fails(alertmanager, run_id):
    post(alertmanager, run_id, "DatabaseDown%s" % run_id, severity="critical")
    post(alertmanager, run_id, "SlowQueries%s" % run_id, state="suppressed", severity="warning")
    warnings = check(alertmanager, run_id, "severity=warning")
    assert warnings["records"][0]["status"] == "pass"
    assert warnings["records"][0]["summary"].endswith("; 0 silenced, 1 inhibited")
    assert warnings["alerts"]["inhibited"][0]["inhibited_by"]
    both = check(alertmanager, run_id, 'severity=~"critical|warning"')
    assert both["records"][0]["status"] == "fail"
    assert [a["alertname"] for a in both["alerts"]["firing"]] == ["DatabaseDown%s" % run_id]
    assert both["records"][0]["summary"].endswith("; 0 silenced, 1 inhibited")


def test_regex_and_negative_matchers_and_ignored_names(alertmanager, run_id):
    post(alertmanager, run_id, "CanaryHighLatency%s" % run_id, severity="warning")
    post(alertmanager, run_id, "CanaryInfo%s" % run_id, severity="info")
    post(alertmanager, run_id, "Watchdog", severity="none")
    result = check(alertmanager, run_id, 'alertname=~"Canary.*"', "severity!=info")
    assert [a["alertname"] for a in result["alerts"]["firing"]] == ["CanaryHighLatency%s" % run_id]
    assert result["alerts"]["firing"][0]["matched_labels"] == {"run": run_id, "severity": "warning"}
    everything = check(alertmanager, run_id)
    assert sorted(a["alertname"] for a in everything["alerts"]["firing"]) == sorted(
        ["CanaryHighLatency%s" % run_id, "CanaryInfo%s" % run_id])
    assert "1 ignored by name (Watchdog)" in everything["records"][0]["summary"]
    assert everything["records"][0]["evidence"]["counts"]["ignored"] == 1
    nothing_ignored = check(alertmanager, run_id, ignore_alertnames=[])
    assert "Watchdog" in [a["alertname"] for a in nothing_ignored["alerts"]["firing"]]


def post_started(am, run, name, starts_at, **labels):
    """Post one alert of this run that started firing at ``starts_at`` (as Prometheus sends an alert that has been
    firing for a while) and wait until Alertmanager shows it."""
    am.post_alerts([{"labels": dict(labels, alertname=name, run=run), "startsAt": starts_at}])
    return am.wait_for_alert(name, state="active", timeout=20)


def test_an_alert_of_an_earlier_run_is_named_left_over_and_blocks_until_accepted(alertmanager, run_id):
    # A rolled-back canary's alert keeps firing (for: 3m over 5m); this canary started between the two alerts.
    old = post_started(alertmanager, run_id, "CanaryLatencyHigherThanStable%s" % run_id, "2026-01-01T10:00:00Z",
                       severity="warning", deployment="canary")
    new = post_started(alertmanager, run_id, "CanaryHighErrorRate%s" % run_id, "2026-01-01T10:20:00Z",
                       severity="page", deployment="canary")
    started = "2026-01-01T10:10:00+00:00"
    result = check(alertmanager, run_id, "deployment=canary", started_at=started)
    (record,) = result["records"]
    assert record["status"] == "fail"
    left_over = {a["alertname"]: a["left_over"] for a in result["alerts"]["firing"]}
    assert left_over == {old["labels"]["alertname"]: True, new["labels"]["alertname"]: False}
    assert "%s{" % old["labels"]["alertname"] in record["summary"]
    assert "since %s, left over" % old["startsAt"] in record["summary"]
    assert "since %s, left over" % new["startsAt"] not in record["summary"]
    assert "1 of them left over: firing since before this run started at %s" % started in record["summary"]
    assert "accept_left_over" in record["summary"]

    accepted = check(alertmanager, run_id, "deployment=canary", started_at=started,
                     accept_left_over=[old["labels"]["alertname"], new["labels"]["alertname"]])
    (record,) = accepted["records"]
    assert record["status"] == "fail"  # the new alert is this run's own: accepting its name does not hide it
    assert [a["alertname"] for a in accepted["alerts"]["firing"]] == [new["labels"]["alertname"]]
    assert [a["alertname"] for a in accepted["alerts"]["accepted_left_over"]] == [old["labels"]["alertname"]]
    assert "1 accepted as left over (%s{" % old["labels"]["alertname"] in record["summary"]

    only_old = check(alertmanager, run_id, "severity=warning", started_at=started,
                     accept_left_over=[["deployment=canary", 'alertname=~"CanaryLatency.*"']])
    assert only_old["records"][0]["status"] == "pass"
    assert only_old["records"][0]["evidence"]["counts"]["accepted_left_over"] == 1


def test_matcher_sets_cover_the_slo_burn_alerts_without_a_deployment_label(alertmanager, run_id):
    # The service's slo_alerts.yml: by (service), labelled slo and severity, no deployment label.
    post(alertmanager, run_id, "SLOAvailabilityBurnRateFast", severity="page", slo="availability", service="api-canary")
    post(alertmanager, run_id, "SLOLatencyBurnRateSlow", severity="ticket", slo="latency", service="api")
    post(alertmanager, run_id, "CanaryHighLatency", severity="warning", deployment="canary")
    run = "run=%s" % run_id
    canary = run_module("alertmanager_alerts", {"url": alertmanager.url, "matchers": [
        [run, "deployment=canary"], [run, 'slo=~".+"', "service=api-canary"]]})
    assert sorted(a["alertname"] for a in canary["alerts"]["firing"]) == ["CanaryHighLatency", "SLOAvailabilityBurnRateFast"]
    assert canary["records"][0]["summary"].startswith("2 firing alerts matching {%s, deployment=canary} or {" % run)
    soak = run_module("alertmanager_alerts", {"url": alertmanager.url, "matchers": [
        [run, "severity=page", "deployment!=canary", "service!=api-canary"], [run, 'slo=~".+"', "service!=api-canary"]]})
    assert [a["alertname"] for a in soak["alerts"]["firing"]] == ["SLOLatencyBurnRateSlow"]
    assert "Traceback" not in canary.raw + soak.raw


def test_check_mode_runs_for_real(alertmanager, run_id):
    post(alertmanager, run_id, "CheckMode%s" % run_id, severity="page")
    result = check(alertmanager, run_id, check_mode=True)
    assert result["changed"] is False and result["records"][0]["status"] == "fail"
    assert result["alerts"]["firing"][0]["alertname"] == "CheckMode%s" % run_id


def test_secrets_in_alerts_and_in_the_options_are_masked(alertmanager, run_id):
    post(alertmanager, run_id, "Leaky%s" % run_id, severity="page", token=SECRET + "-label",
         annotations={"runbook": "https://ops:%s-url@wiki.example/runbook" % SECRET,
                      "detail": "connect with password=%s-kw now" % SECRET, "summary": "plain text stays"})
    result = check(alertmanager, run_id, bearer_token=SECRET)
    assert result["records"][0]["status"] == "fail"
    assert SECRET not in result.raw
    firing = result["alerts"]["firing"][0]
    assert firing["annotations"]["summary"] == "plain text stays"
    assert firing["annotations"]["runbook"] == "https://ops:********@wiki.example/runbook"
    assert firing["labels"]["token"] == "********"


def test_a_stopped_alertmanager_is_an_error_never_a_pass(tmp_path):
    daemon = Alertmanager(tmp_path / "stopped").start()
    url = daemon.url
    daemon.stop()
    result = run_module("alertmanager_alerts", {"url": url, "matchers": ["severity=page"], "timeout": 2})
    (record,) = result["records"]
    assert result["status"] == "error" and record["status"] == "error"
    assert record["summary"].startswith("could not decide: Alertmanager at %s gave no usable answer: " % url)
    assert "refused" in record["summary"]
    assert result["alerts"] == {"firing": [], "silenced": [], "inhibited": [], "accepted_left_over": []}
    assert not result.get("failed")


def test_an_http_error_is_an_error(alertmanager):
    # Python compiles a lookahead, Go's RE2 does not: Alertmanager answers 400, and the check cannot decide.
    result = run_module("alertmanager_alerts", {"url": alertmanager.url, "matchers": ['alertname=~"(?=x).*"']})
    (record,) = result["records"]
    assert record["status"] == "error" and "HTTP 400" in record["summary"]
    wrong_path = run_module("alertmanager_alerts", {"url": alertmanager.url + "/not-alertmanager"})
    assert wrong_path["records"][0]["status"] == "error" and "HTTP 404" in wrong_path["records"][0]["summary"]


@pytest.mark.parametrize("args, words", [
    ({"matchers": ["severity=page", "severity page"]}, "matchers[1]: 'severity page' is not a matcher"),
    ({"matchers": ['alertname=~"("']}, "matchers[0]: "),
    ({"matchers": ['{severity="page"}']}, "matchers[0]: "),
    ({"url": "alertmanager:9093"}, "url: "),
    ({"timeout": 0}, "timeout must be greater than 0"),
    ({"bearer_token": SECRET, "url_username": "ops"}, "mutually exclusive"),
    ({"matchers": [["severity=page"], "deployment=canary"]}, "matchers: give either matchers"),
    ({"matchers": [["severity=page"], []]}, "matchers[1]: an empty matcher set"),
    ({"started_at": "10:00"}, "started_at: '10:00' is not an RFC 3339 time"),
    ({"accept_left_over": ["CanaryHighLatency"]}, "accept_left_over needs started_at"),
])
def test_bad_input_fails_naming_the_option(alertmanager, args, words):
    params = dict({"url": alertmanager.url}, **args)
    result = run_module("alertmanager_alerts", params)
    assert result.get("failed") is True and words in result["msg"]
    assert "Traceback" not in result.raw and SECRET not in result.raw
