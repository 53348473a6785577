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
    groups, left_out = am.classify(ANSWER, check.matchers, check.ignore, now=NOW)
    record = check.record(groups, left_out, 1.0)
    assert record["status"] == "fail" and record["criterion"] == "alerts.firing"
    assert record["summary"].startswith("2 firing alerts matching severity=page: "
                                        'CanaryHighErrorRate{severity="page"} since 2026-11-20T11:00:00.000Z, Fresh{')
    assert "2 silenced, 1 inhibited, 1 ignored by name (Watchdog)" in record["summary"]
    assert record["evidence"]["counts"] == {"firing": 2, "silenced": 2, "inhibited": 1, "ignored": 1, "not_matching": 1,
                                            "resolved": 1}
    assert record["evidence"]["matchers"] == ['severity="page"']


def test_only_suppressed_alerts_pass_and_say_so():
    check = am.AlertCheck(params())
    groups, left_out = am.classify([ANSWER[1]], check.matchers, check.ignore, now=NOW)
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
    assert alerts == {"firing": [], "silenced": [], "inhibited": []}


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
