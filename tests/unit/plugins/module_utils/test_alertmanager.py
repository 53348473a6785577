"""The alerts.firing engine's pure parts: Alertmanager matcher syntax, matching, timestamps, grouping, records."""
from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import alertmanager as am
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_errors import TransportError
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import Outcome, Response

NOW = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("text, name, op, value", [
    ("severity=page", "severity", "=", "page"),
    ("severity = page", "severity", "=", "page"),
    ('severity="page"', "severity", "=", "page"),
    ("severity!=info", "severity", "!=", "info"),
    ('alertname=~"Canary.*"', "alertname", "=~", "Canary.*"),
    ("alertname!~Watch.*", "alertname", "!~", "Watch.*"),
    ('team="ops \\"blue\\""', "team", "=", 'ops "blue"'),
    ('path="a\\\\b"', "path", "=", "a\\b"),
    ('code=~"5\\d\\d"', "code", "=~", "5\\d\\d"),
    ('note="line\\nnext"', "note", "=", "line\nnext"),
    ("job=", "job", "=", ""),
    ('job=""', "job", "=", ""),
    ("__name__=up", "__name__", "=", "up"),
    ("a:b=c=d", "a:b", "=", "c=d"),
])
def test_matchers_are_parsed_as_alertmanager_reads_them(text, name, op, value):
    matcher = am.parse_matcher(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)


@pytest.mark.parametrize("text, words", [
    ("severity", "is not a matcher"),
    ("", "empty matcher"),
    ("   ", "empty matcher"),
    ("1abc=x", "is not a matcher"),
    ("sev erity=x", "is not a matcher"),
    ("=page", "is not a matcher"),
    ("severity==~x", None),  # '=' then the value '=~x': valid, as in Alertmanager
    ('severity="page', "not closed"),
    ('severity=pa"ge', "must be escaped"),
    ('severity="pa"ge"', "must be escaped"),
    ("alertname=~(", "does not compile"),
    ('{severity="page"}', "one matcher per list item"),
])
def test_malformed_matchers_name_the_option_item(text, words):
    if words is None:
        assert am.parse_matcher(text).value == "=~x"
        return
    with pytest.raises(am.InputError) as caught:
        am.parse_matchers(["severity=page", text])
    assert str(caught.value).startswith("matchers[1]: ")
    assert words in str(caught.value)


def test_a_non_string_matcher_is_an_input_error():
    with pytest.raises(am.InputError, match=r"^matchers\[0\]"):
        am.parse_matchers([None])


@pytest.mark.parametrize("value", ["page", 'ops "blue"', "a\\b", "line\nnext", "5\\d\\d", ""])
def test_quote_value_is_the_inverse_of_unquote(value):
    assert am.unquote_value(am.quote_value(value)) == value
    matcher = am.parse_matcher("x=" + am.quote_value(value))
    assert matcher.value == value and am.parse_matcher(matcher.canonical).value == value


@pytest.mark.parametrize("text, labels, expected", [
    ("severity=page", {"severity": "page"}, True),
    ("severity=page", {"severity": "pager"}, False),
    ("severity=page", {}, False),
    ("severity=", {}, True),
    ("severity!=", {}, False),
    ("severity!=info", {"severity": "page"}, True),
    ("severity!=info", {}, True),
    ("severity!=info", {"severity": "info"}, False),
    ('alertname=~"Canary.*"', {"alertname": "CanaryHighErrorRate"}, True),
    ('alertname=~"Canary"', {"alertname": "CanaryHighErrorRate"}, False),  # anchored at both ends
    ('alertname=~"High"', {"alertname": "CanaryHighErrorRate"}, False),
    ('alertname!~"Canary.*"', {"alertname": "CanaryHighErrorRate"}, False),
    ('alertname!~"Canary.*"', {"alertname": "Other"}, True),
    ('severity=~"page|critical"', {"severity": "critical"}, True),
    ('severity=~"page|critical"', {"severity": "critical2"}, False),
    ('code=~"5\\d\\d"', {"code": "503"}, True),
    ("severity=~.*", {}, True),
    ("severity=~.+", {}, False),
])
def test_matching(text, labels, expected):
    assert am.parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize("text, expected", [
    ("2026-11-20T10:00:00Z", datetime.datetime(2026, 11, 20, 10, 0, tzinfo=datetime.timezone.utc)),
    ("2026-11-20T10:00:00.594Z", datetime.datetime(2026, 11, 20, 10, 0, 0, 594000, tzinfo=datetime.timezone.utc)),
    ("2026-11-20T10:00:00.123456789Z", datetime.datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=datetime.timezone.utc)),
    ("2026-11-20T12:00:00+02:00", datetime.datetime(2026, 11, 20, 10, 0, tzinfo=datetime.timezone.utc)),
    ("yesterday", None),
    (None, None),
])
def test_parse_time(text, expected):
    assert am.parse_time(text) == expected


def alert(name, state="active", silenced=(), inhibited=(), ends="2026-11-20T12:05:00.000Z", **labels):
    labels = dict(labels, alertname=name)
    return {"labels": labels, "annotations": {"summary": "%s summary" % name}, "startsAt": "2026-11-20T11:00:00.000Z",
            "endsAt": ends, "fingerprint": "fp-%s" % name, "receivers": [{"name": "null"}],
            "status": {"state": state, "silencedBy": list(silenced), "inhibitedBy": list(inhibited)}}


ANSWER = [
    alert("CanaryHighErrorRate", severity="page", service="api"),
    alert("SloBurn", state="suppressed", silenced=["s-1"], severity="page"),
    alert("DiskFull", state="suppressed", inhibited=["fp-x"], severity="page"),
    alert("Both", state="suppressed", silenced=["s-2"], inhibited=["fp-y"], severity="page"),
    alert("Fresh", state="unprocessed", severity="page"),
    alert("Watchdog", severity="page"),
    alert("Old", severity="page", ends="2026-11-20T11:59:59Z"),
    alert("Info", severity="info"),
]


def test_classify_groups_firing_silenced_inhibited_and_counts_the_rest():
    groups, left_out = am.classify(ANSWER, am.parse_matchers(["severity=page"]), ["Watchdog"], now=NOW)
    assert [a["alertname"] for a in groups["firing"]] == ["CanaryHighErrorRate", "Fresh"]
    assert [a["alertname"] for a in groups["silenced"]] == ["Both", "SloBurn"]
    assert [a["alertname"] for a in groups["inhibited"]] == ["DiskFull"]
    assert left_out == {"not_matching": 1, "ignored": ["Watchdog"], "resolved": 1}
    first = groups["firing"][0]
    assert first["matched_labels"] == {"severity": "page"}
    assert first["silenced_by"] == [] and first["receivers"] == ["null"]
    assert groups["silenced"][1]["silenced_by"] == ["s-1"]


def test_classify_filters_itself_whatever_the_server_returned():
    groups, left_out = am.classify(ANSWER, am.parse_matchers(['alertname=~"Canary.*"', "service=api"]), [], now=NOW)
    assert [a["alertname"] for a in groups["firing"]] == ["CanaryHighErrorRate"]
    assert groups["firing"][0]["matched_labels"] == {"service": "api"}
    assert left_out["not_matching"] == len(ANSWER) - 1


def test_a_zero_end_time_is_not_resolved():
    groups = am.classify([alert("A", ends="0001-01-01T00:00:00Z")], [], [], now=NOW)[0]
    assert [a["alertname"] for a in groups["firing"]] == ["A"]


@pytest.mark.parametrize("answer", [{"alerts": []}, "[]", None, [1], [{"labels": "x"}]])
def test_an_answer_that_is_not_a_list_of_alerts_cannot_be_decided(answer):
    with pytest.raises(am.AnswerError):
        am.classify(answer, [], [], now=NOW)


def params(**overrides):
    base = {"url": "http://am.example:9093", "bearer_token": None, "url_username": None, "url_password": None,
            "validate_certs": True, "ca_path": None, "timeout": 10.0, "matchers": ["severity=page"],
            "ignore_alertnames": ["Watchdog"], "criterion": "alerts.firing", "blocking": True}
    base.update(overrides)
    return base


def test_the_record_names_each_firing_alert_and_counts_the_suppressed_ones():
    check = am.AlertCheck(params())
    groups, left_out = am.classify(ANSWER, check.matcher_sets, check.ignore, now=NOW)
    record = check.record(groups, left_out, 1.0)
    assert record["status"] == "fail" and record["criterion"] == "alerts.firing"
    assert record["summary"].startswith("2 firing alerts matching severity=page: "
                                        'CanaryHighErrorRate{severity="page"} since 2026-11-20T11:00:00.000Z, Fresh{')
    assert "2 silenced, 1 inhibited, 1 ignored by name (Watchdog)" in record["summary"]
    assert record["evidence"]["counts"] == {"firing": 2, "silenced": 2, "inhibited": 1, "ignored": 1, "not_matching": 1,
                                            "resolved": 1, "left_over": 0, "accepted_left_over": 0}
    assert record["evidence"]["matchers"] == ['severity="page"']


def test_only_suppressed_alerts_pass_and_say_so():
    check = am.AlertCheck(params())
    groups, left_out = am.classify([ANSWER[1]], check.matcher_sets, check.ignore, now=NOW)
    record = check.record(groups, left_out, 1.0)
    assert record["status"] == "pass"
    assert record["summary"] == "no firing alert matching severity=page; 1 silenced, 0 inhibited"


def test_the_request_asks_for_every_state_and_sends_the_filters():
    check = am.AlertCheck(params(url="https://ops.example/alertmanager/", matchers=['team="a b"', "x=~y.*"]))
    assert check.request_url() == ("https://ops.example/alertmanager/api/v2/alerts?active=true&silenced=true"
                                   "&inhibited=true&unprocessed=true&filter=team%3D%22a+b%22&filter=x%3D~%22y.%2A%22")


@pytest.mark.parametrize("overrides, words", [
    ({"url": "alertmanager:9093"}, "url: "),
    ({"url": ""}, "url: "),
    ({"timeout": 0}, "timeout must be greater than 0"),
    ({"criterion": "Alerts"}, "criterion must be"),
    ({"matchers": ["ok=1", "bad"]}, "matchers[1]: "),
])
def test_bad_input_names_the_option(overrides, words):
    with pytest.raises(am.InputError) as caught:
        am.AlertCheck(params(**overrides))
    assert words in str(caught.value)


class FakeClient:
    """Answers every request with one prepared Outcome, and keeps the specs it was given."""

    def __init__(self, status=200, body=b"[]", error=None):
        self.outcome = Outcome()
        if error is not None:
            self.outcome.error = error
        else:
            self.outcome.response = Response(status, "OK" if status == 200 else "Error", [], body, "http://x", 1.0)
        self.specs = []

    def request(self, spec, policy=None, deadline=None, budget=None):  # pylint: disable=unused-argument
        self.specs.append(spec)
        return self.outcome


@pytest.mark.parametrize("client, words", [
    (FakeClient(body=b"<html>not json</html>"), "the answer is not JSON"),
    (FakeClient(body=b""), "the answer is not JSON: empty body"),
    (FakeClient(body=b'{"status": "success"}'), "the answer is not a list of alerts (got a JSON dict)"),
    (FakeClient(status=503, body=b"starting up"), "HTTP 503 Error: starting up"),
    (FakeClient(error=TransportError("timeout", "timed out")), "no answer (timeout: timed out)"),
])
def test_no_usable_answer_is_an_error_record(client, words):
    record, alerts = am.AlertCheck(params()).run(client, now=NOW)
    assert record["status"] == "error"
    assert record["summary"].startswith("could not decide: Alertmanager at http://am.example:9093 gave no usable answer: ")
    assert words in record["summary"]
    assert alerts == {"firing": [], "silenced": [], "inhibited": [], "accepted_left_over": []}


def test_credentials_become_the_authorization_header():
    client = FakeClient(body=json_bytes([ANSWER[0]]))
    record, _alerts = am.AlertCheck(params(bearer_token="tok")).run(client, now=NOW)
    assert record["status"] == "fail"
    assert client.specs[0].headers["Authorization"] == "Bearer tok"
    client = FakeClient()
    am.AlertCheck(params(url_username="ops", url_password="pw")).run(client, now=NOW)
    assert client.specs[0].headers["Authorization"] == "Basic b3BzOnB3"


def json_bytes(value):
    return json.dumps(value).encode()


# --------------------------------------------------------------------------------------------------
# Matcher sets and left-over alerts
# --------------------------------------------------------------------------------------------------

def started(alert_view, starts):
    return dict(alert_view, startsAt=starts)


# The service's own alerts, as its rule files label them: canary alerts carry deployment=canary, the SLO burn alerts
# carry slo and the service label of the variant (sum ... by (service)) and no deployment label.
SERVICE_ALERTS = [
    alert("CanaryHighErrorRate", severity="page", deployment="canary"),
    alert("CanaryLatencyHigherThanStable", severity="warning", deployment="canary"),
    alert("SLOAvailabilityBurnRateFast", severity="page", slo="availability", service="api-canary"),
    alert("SLOLatencyBurnRateSlow", severity="ticket", slo="latency", service="api-canary"),
    alert("SLOAvailabilityBurnRateFast", severity="page", slo="availability", service="api"),
    alert("SLOLatencyBurnRateSlow", severity="ticket", slo="latency", service="api"),
    alert("JobsHeartbeatMissing", severity="warning"),
]


def firing_names(matchers):
    groups = am.classify(SERVICE_ALERTS, am.parse_matcher_sets(matchers), ["Watchdog"], now=NOW)[0]
    return sorted("%s/%s" % (a["alertname"], a["labels"].get("service", "-")) for a in groups["firing"])


def test_matcher_sets_are_alternatives_and_a_plain_list_is_one_set():
    assert firing_names([["deployment=canary"], ['slo=~".+"', "service=api-canary"]]) == [
        "CanaryHighErrorRate/-", "CanaryLatencyHigherThanStable/-",
        "SLOAvailabilityBurnRateFast/api-canary", "SLOLatencyBurnRateSlow/api-canary"]
    assert firing_names(["severity=page"]) == ["CanaryHighErrorRate/-", "SLOAvailabilityBurnRateFast/api",
                                               "SLOAvailabilityBurnRateFast/api-canary"]
    assert len(firing_names([])) == len(SERVICE_ALERTS)


def role_default(role, name):
    import pathlib
    import yaml
    root = pathlib.Path(__file__).resolve().parents[4]
    return yaml.safe_load((root / "roles" / role / "defaults" / "main.yml").read_text())[name]


def test_the_roles_default_matchers_cover_the_slo_burn_alerts():
    # The canary role: its own alerts and the SLO burn alerts of the canary's service label, nothing of stable.
    canary = [[text.replace("{{ canary_service_label }}", "api-canary") for text in group]
              for group in role_default("canary", "canary_alert_matchers")]
    assert firing_names(canary) == ["CanaryHighErrorRate/-", "CanaryLatencyHigherThanStable/-",
                                    "SLOAvailabilityBurnRateFast/api-canary", "SLOLatencyBurnRateSlow/api-canary"]
    # The soak: paging alerts and every SLO burn alert (ticket ones too), none of the canary's.
    soak = [[text.replace("{{ soak_canary_service_label }}", "api-canary") for text in group]
            for group in role_default("soak", "soak_alert_matchers")]
    assert firing_names(soak) == ["SLOAvailabilityBurnRateFast/api", "SLOLatencyBurnRateSlow/api"]


@pytest.mark.parametrize("matchers, words", [
    ([["a=b"], "c=d"], "matchers: give either matchers"),
    ([["a=b"], []], "matchers[1]: an empty matcher set"),
    ([["a=b"], ["c=d", "bad"]], "matchers[1][1]: 'bad' is not a matcher"),
    ([["a=b"], [1]], "matchers[1]: a matcher set is a list of matchers"),
])
def test_malformed_matcher_sets_name_the_item(matchers, words):
    with pytest.raises(am.InputError) as caught:
        am.AlertCheck(params(matchers=matchers))
    assert words in str(caught.value)


def test_only_matchers_common_to_every_set_are_sent_as_filters():
    check = am.AlertCheck(params(matchers=[["severity=page", "team=a"], ["team=a", "slo=x"]]))
    assert check.request_url().endswith("&unprocessed=true&filter=team%3D%22a%22")
    check = am.AlertCheck(params(matchers=[["severity=page"], ["slo=x"]]))
    assert check.request_url().endswith("&unprocessed=true")


def test_accept_left_over_items_are_names_matchers_or_matcher_lists():
    items = am.parse_accepted(["CanaryLatencyHigherThanStable", 'alertname=~"Canary.*"', ["slo=latency", "service=api"]])
    assert [item.text for item in items] == ["CanaryLatencyHigherThanStable", 'alertname=~"Canary.*"',
                                             "{slo=latency, service=api}"]
    assert items[0].matches({"alertname": "CanaryLatencyHigherThanStable"})
    assert not items[0].matches({"alertname": "CanaryHighErrorRate"})
    assert items[2].matches({"slo": "latency", "service": "api"}) and not items[2].matches({"slo": "latency"})


@pytest.mark.parametrize("overrides, words", [
    ({"started_at": "yesterday"}, "started_at: 'yesterday' is not an RFC 3339 time"),
    ({"started_at": "2026-11-20T10:00:00"}, "started_at: "),
    ({"accept_left_over": ["X"]}, "accept_left_over needs started_at"),
    ({"started_at": "2026-11-20T10:00:00Z", "accept_left_over": ["bad matcher"]}, "accept_left_over[0]: "),
    ({"started_at": "2026-11-20T10:00:00Z", "accept_left_over": [{"a": 1}]}, "accept_left_over[0]: give an alert name"),
    ({"started_at": "2026-11-20T10:00:00Z", "accept_left_over": [[]]}, "accept_left_over[0]: give an alert name"),
])
def test_bad_left_over_options_name_the_option(overrides, words):
    with pytest.raises(am.InputError) as caught:
        am.AlertCheck(params(**overrides))
    assert words in str(caught.value)


LEFT_OVER_ANSWER = [
    started(alert("CanaryHighErrorRate", severity="page", deployment="canary"), "2026-11-20T11:40:00.000Z"),
    started(alert("CanaryLatencyHigherThanStable", severity="page", deployment="canary"), "2026-11-20T11:42:10.5Z"),
    started(alert("CanaryHighLatency", severity="page", deployment="canary"), "2026-11-20T11:50:00.000Z"),
]


def left_over_record(**overrides):
    check = am.AlertCheck(params(matchers=["deployment=canary"], started_at="2026-11-20T11:45:00+00:00", **overrides))
    groups, left_out = am.classify(LEFT_OVER_ANSWER, check.matcher_sets, check.ignore, now=NOW,
                                   started_at=check.started_at, accepted=check.accepted)
    return check.record(groups, left_out, 1.0), groups


def test_alerts_firing_since_before_the_run_are_named_left_over_and_still_block():
    record, groups = left_over_record()
    assert record["status"] == "fail"
    assert [(a["alertname"], a["left_over"]) for a in groups["firing"]] == [
        ("CanaryHighErrorRate", True), ("CanaryHighLatency", False), ("CanaryLatencyHigherThanStable", True)]
    summary = record["summary"]
    assert 'CanaryHighErrorRate{deployment="canary"} since 2026-11-20T11:40:00.000Z, left over' in summary
    assert 'CanaryHighLatency{deployment="canary"} since 2026-11-20T11:50:00.000Z,' in summary
    assert "CanaryHighLatency{deployment=\"canary\"} since 2026-11-20T11:50:00.000Z, left over" not in summary
    assert ("2 of them left over: firing since before this run started at 2026-11-20T11:45:00+00:00" in summary
            and "accept_left_over" in summary and "canary_alert_accept_left_over" in summary)
    assert record["evidence"]["counts"]["left_over"] == 2 and record["evidence"]["counts"]["accepted_left_over"] == 0


def test_accepted_left_over_alerts_are_listed_apart_but_a_new_alert_still_fails():
    record, groups = left_over_record(accept_left_over=["CanaryLatencyHigherThanStable", "CanaryHighErrorRate",
                                                        "CanaryHighLatency"])
    assert [a["alertname"] for a in groups["firing"]] == ["CanaryHighLatency"]  # it started after the run: not left over
    assert [a["alertname"] for a in groups["accepted_left_over"]] == ["CanaryHighErrorRate", "CanaryLatencyHigherThanStable"]
    assert groups["accepted_left_over"][0]["accepted_by"] == "CanaryHighErrorRate"
    assert record["status"] == "fail" and "left over" not in record["summary"].split(";")[0]
    assert "2 accepted as left over (CanaryHighErrorRate{" in record["summary"]


def test_only_accepted_left_over_alerts_pass_and_say_so():
    record, _groups = left_over_record(accept_left_over=['alertname=~"Canary.*"'])
    assert record["status"] == "fail"  # CanaryHighLatency is this run's own
    check = am.AlertCheck(params(matchers=["deployment=canary"], started_at="2026-11-20T11:45:00Z",
                                 accept_left_over=[['alertname=~"Canary.*"', "deployment=canary"]]))
    groups, left_out = am.classify(LEFT_OVER_ANSWER[:2], check.matcher_sets, check.ignore, now=NOW,
                                   started_at=check.started_at, accepted=check.accepted)
    record = check.record(groups, left_out, 1.0)
    assert record["status"] == "pass"
    assert record["summary"].startswith("no firing alert matching deployment=canary; 0 silenced, 0 inhibited, "
                                        "2 accepted as left over (")
    assert record["evidence"]["started_at"] == "2026-11-20T11:45:00Z"
    assert record["evidence"]["accept_left_over"] == ['{alertname=~"Canary.*", deployment=canary}']


def test_without_started_at_nothing_is_left_over():
    check = am.AlertCheck(params(matchers=["deployment=canary"]))
    groups = am.classify(LEFT_OVER_ANSWER, check.matcher_sets, [], now=NOW)[0]
    assert [a["left_over"] for a in groups["firing"]] == [False, False, False]
