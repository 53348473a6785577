# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The alerts.firing check: which Alertmanager alerts fire, which are silenced or inhibited.

Matchers are parsed with Alertmanager's own rules (``label=value``, ``label!=value``, ``label=~regex``,
``label!~regex``; a value may be double-quoted, with ``\\"``, ``\\\\`` and ``\\n`` escapes; a regex is anchored
at both ends) and sent as ``filter`` parameters of GET /api/v2/alerts, and the answer is filtered again here,
so the verdict never depends on the server's filtering. Several matcher sets are alternatives: an alert counts when
it satisfies every matcher of one set (only the matchers common to every set are sent as filters). No answer, an HTTP
error or a body that is not a list of alerts is an ``error`` record (the check could not decide), never a pass.

An alert that started firing before the run being judged started (``started_at``: the canary's or the soak's start)
is *left over*, for example from a canary rolled back an hour ago whose alert keeps firing for its ``for:`` and
window. It still blocks - Alertmanager cannot tell whether it is about this run too - and the summary says it is
left over; only the alerts the user names in ``accept_left_over`` are accepted, listed apart.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re
import urllib.parse

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    ERROR,
    FAIL,
    PASS,
    Stopwatch,
    join_limited,
    make_record,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import MONITORING_CONNECT_TIMEOUT, RequestSpec
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import (
    api_auth_headers,
    api_connection_argument_spec,
    collect_api_secrets,
    join_url,
    url_error,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import safe_url
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline, RetryPolicy

ALERTS_PATH = "/api/v2/alerts"
DEFAULT_CRITERION = "alerts.firing"
# Alerts listed per group in a record's evidence (the module's ``alerts`` return value holds them all).
EVIDENCE_LIMIT = 50
BODY_EXCERPT = 300

# Alertmanager's label-name rule and its four operators (the longer ones first where they share a prefix).
_MATCHER = re.compile(r"^\s*(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$", re.DOTALL)
_OPERATORS = ("=", "!=", "=~", "!~")
# An alert name as Prometheus writes one (a metric-name-like identifier): an accept_left_over item of this form.
_ALERT_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_TIMESTAMP = re.compile(r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d{2}:\d{2})$")


class InputError(Exception):
    """Bad module input; the message names the option."""


class AnswerError(Exception):
    """Alertmanager gave no usable answer; the message says why (the check cannot decide)."""


# --------------------------------------------------------------------------------------------------
# Matchers
# --------------------------------------------------------------------------------------------------

def unquote_value(raw):
    """A matcher value as Alertmanager reads it: optional surrounding double quotes; ``\\n``, ``\\"`` and ``\\\\``
    unescaped, any other backslash kept as it is. Raises ValueError on a double quote that is not escaped."""
    quoted = raw.startswith('"')
    text = raw[1:] if quoted else raw
    out = []
    index = 0
    closed = not quoted
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            follower = text[index + 1]
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(follower, "\\" + follower))
            index += 2
            continue
        if char == '"':
            if closed or index != len(text) - 1:
                raise ValueError("a double quote inside the value must be escaped as \\\"")
            closed = True
        else:
            out.append(char)
        index += 1
    if not closed:
        raise ValueError("the opening double quote is not closed")
    return "".join(out)


def quote_value(value):
    """The value in double quotes with Alertmanager's escapes (the inverse of unquote_value)."""
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Matcher:
    """One label matcher. A missing label matches as the empty string, as in Alertmanager."""

    def __init__(self, name, op, value, text=None):
        if op not in _OPERATORS:
            raise ValueError("unknown operator %r" % (op,))
        self.name = name
        self.op = op
        self.value = value
        self.text = text if text is not None else self.canonical
        self.pattern = re.compile(value, re.DOTALL) if op in ("=~", "!~") else None

    @property
    def canonical(self):
        return "%s%s%s" % (self.name, self.op, quote_value(self.value))

    def matches(self, labels):
        actual = to_text((labels or {}).get(self.name, "") or "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found


def parse_matcher(text, option="matchers", index=0):
    """``text`` -> Matcher, or InputError naming ``option[index]`` and what is wrong."""
    where = "%s[%d]" % (option, index)
    if not isinstance(text, str) or not text.strip():
        raise InputError("%s: an empty matcher; write label=value, label!=value, label=~regex or label!~regex" % where)
    if text.strip().startswith("{"):
        raise InputError("%s: %r - give one matcher per list item, without braces" % (where, text))
    found = _MATCHER.match(text)
    if not found:
        raise InputError("%s: %r is not a matcher; write label=value, label!=value, label=~regex or label!~regex "
                         "(label names are letters, digits, _ and :, not starting with a digit)" % (where, text))
    try:
        value = unquote_value(found.group("value"))
    except ValueError as exc:
        raise InputError("%s: %r - %s" % (where, text, exc))
    try:
        return Matcher(found.group("name"), found.group("op"), value, text=text.strip())
    except re.error as exc:
        raise InputError("%s: %r - the regular expression does not compile: %s" % (where, text, exc))


def parse_matchers(texts, option="matchers"):
    return [parse_matcher(text, option, index) for index, text in enumerate(texts or [])]


def parse_matcher_sets(value, option="matchers"):
    """``matchers`` -> a list of matcher sets (lists of Matcher). A list of strings is one set (empty: one empty set,
    every alert counts); a list of lists is several sets, an alert counts when it satisfies one of them."""
    items = list(value or [])
    if all(isinstance(item, str) for item in items):
        return [parse_matchers(items, option)]
    if not all(isinstance(item, list) for item in items):
        raise InputError("%s: give either matchers (strings: one set an alert must all satisfy) or a list of matcher "
                         "sets (lists of strings), not a mixture" % option)
    sets = []
    for index, texts in enumerate(items):
        where = "%s[%d]" % (option, index)
        if not texts:
            raise InputError("%s: an empty matcher set would count every alert; remove it or give its matchers" % where)
        if not all(isinstance(text, str) for text in texts):
            raise InputError("%s: a matcher set is a list of matchers (strings)" % where)
        sets.append(parse_matchers(texts, where))
    return sets


class Accepted:
    """One accept_left_over item: an alert name, or matchers a left-over alert must all satisfy."""

    def __init__(self, matchers, text):
        self.matchers = matchers
        self.text = text

    def matches(self, labels):
        return all(matcher.matches(labels) for matcher in self.matchers)


def parse_accepted(value, option="accept_left_over"):
    """``accept_left_over`` -> [Accepted]. An item is an alert name (``CanaryLatencyHigherThanStable``), one matcher
    (``alertname=~"Canary.*"``) or a list of matchers; anything else is an InputError naming the item."""
    accepted = []
    for index, item in enumerate(value or []):
        where = "%s[%d]" % (option, index)
        if isinstance(item, str) and _ALERT_NAME.match(item.strip()):
            accepted.append(Accepted([Matcher("alertname", "=", item.strip())], item.strip()))
        elif isinstance(item, str):
            accepted.append(Accepted([parse_matcher(item, option, index)], item.strip()))
        elif isinstance(item, list) and item and all(isinstance(text, str) for text in item):
            matchers = parse_matchers(item, where)
            accepted.append(Accepted(matchers, "{%s}" % ", ".join(m.text for m in matchers)))
        else:
            raise InputError("%s: give an alert name, a matcher (label=value) or a list of matchers" % where)
    return accepted


def common_matchers(sets):
    """The matchers every set has (by their canonical text): the filters that are safe to send."""
    if not sets:
        return []
    rest = [set(m.canonical for m in matchers) for matchers in sets[1:]]
    return [m for m in sets[0] if all(m.canonical in names for names in rest)]


def describe_sets(sets):
    """``matching a=b, c=d`` for one set; ``matching {a=b} or {c=d}`` for several."""
    if len(sets) == 1:
        return "matching %s" % ", ".join(m.text for m in sets[0]) if sets[0] else "(no matchers: every alert)"
    return "matching %s" % " or ".join("{%s}" % ", ".join(m.text for m in matchers) for matchers in sets)


# --------------------------------------------------------------------------------------------------
# Alerts
# --------------------------------------------------------------------------------------------------

def parse_time(text):
    """An Alertmanager (Go RFC 3339) timestamp -> aware datetime, or None. Nanoseconds are cut to microseconds."""
    found = _TIMESTAMP.match(to_text(text or "").strip())
    if not found:
        return None
    fraction = (found.group("fraction") or "0")[:6].ljust(6, "0")
    zone = found.group("zone")
    offset = datetime.timedelta(0)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    stamp = datetime.datetime.strptime(found.group("base"), "%Y-%m-%dT%H:%M:%S")
    return stamp.replace(microsecond=int(fraction), tzinfo=datetime.timezone(offset))


def shown_label_names(matchers):
    """The labels named next to an alert: those the matchers use (but alertname), else severity. ``matchers`` is one
    list of Matcher or a list of matcher sets."""
    names = []
    flat = [m for item in matchers for m in (item if isinstance(item, list) else [item])]
    for matcher in flat:
        if matcher.name != "alertname" and matcher.name not in names:
            names.append(matcher.name)
    return names or ["severity"]


def alert_view(raw, shown):
    """The parts of one alert of the API's answer that a report shows. Raises AnswerError on a malformed entry."""
    if not isinstance(raw, dict) or not isinstance(raw.get("labels"), dict):
        raise AnswerError("an entry of the answer is not an alert object with labels")
    labels = dict((to_text(k), to_text(v)) for k, v in raw["labels"].items())
    status = raw.get("status") if isinstance(raw.get("status"), dict) else {}
    annotations = raw.get("annotations") if isinstance(raw.get("annotations"), dict) else {}
    receivers = [r.get("name") for r in raw.get("receivers") or [] if isinstance(r, dict)]
    return {
        "alertname": labels.get("alertname", ""),
        "labels": labels,
        "matched_labels": dict((name, labels[name]) for name in shown if name in labels),
        "annotations": dict((to_text(k), to_text(v)) for k, v in annotations.items()),
        "startsAt": raw.get("startsAt"),
        "endsAt": raw.get("endsAt"),
        "state": to_text(status.get("state") or "unknown"),
        "silenced_by": list(status.get("silencedBy") or []),
        "inhibited_by": list(status.get("inhibitedBy") or []),
        "fingerprint": raw.get("fingerprint"),
        "receivers": receivers,
        "generator_url": raw.get("generatorURL"),
    }


def describe(alert):
    """``CanaryHighErrorRate{severity="page"} since 2026-11-20T10:00:00Z`` (startsAt as Alertmanager gave it), with
    ``, left over`` when it started firing before the run being judged."""
    labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(alert["matched_labels"].items()))
    text = "%s{%s}" % (alert["alertname"] or "(no alertname)", labels)
    if alert.get("startsAt"):
        text += " since %s" % alert["startsAt"]
    if alert.get("left_over"):
        text += ", left over"
    return text


def is_left_over(alert, started_at):
    """Whether the alert started firing before ``started_at`` (an aware datetime; None: nothing is left over). An
    alert without a readable startsAt is not called left over: nothing shows it is."""
    if started_at is None:
        return False
    starts = parse_time(alert.get("startsAt"))
    return starts is not None and starts < started_at


def group_of(alert):
    """firing, silenced or inhibited. An unprocessed alert (not yet checked against silences and inhibitions) or
    one in an unknown state counts as firing: nothing shows it is suppressed."""
    if alert["state"] == "suppressed":
        if alert["silenced_by"]:
            return "silenced"
        if alert["inhibited_by"]:
            return "inhibited"
    return "firing"


def classify(answer, matchers, ignore_alertnames=(), now=None, started_at=None, accepted=()):
    """The API's list of alerts -> {firing, silenced, inhibited, accepted_left_over} lists of alert views plus the
    counts of the alerts left out (not matching, ignored by name, already resolved). ``matchers`` is one list of
    Matcher or a list of matcher sets (an alert counts when it satisfies one set). An alert that started before
    ``started_at`` is marked ``left_over``; a left-over one that an ``accepted`` item matches goes to
    accepted_left_over instead of its group. Raises AnswerError when ``answer`` is no list."""
    if not isinstance(answer, list):
        raise AnswerError("the answer is not a list of alerts (got a JSON %s)" % type(answer).__name__)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    sets = matchers if matchers and isinstance(matchers[0], list) else [list(matchers or [])]
    shown = shown_label_names(sets)
    groups = {"firing": [], "silenced": [], "inhibited": [], "accepted_left_over": []}
    left_out = {"not_matching": 0, "ignored": [], "resolved": 0}
    for raw in answer:
        alert = alert_view(raw, shown)
        if not any(all(matcher.matches(alert["labels"]) for matcher in matcher_set) for matcher_set in sets):
            left_out["not_matching"] += 1
            continue
        ends = parse_time(alert["endsAt"])
        if ends is not None and ends <= now and ends.year > 1:
            left_out["resolved"] += 1
            continue
        if alert["alertname"] in ignore_alertnames:
            left_out["ignored"].append(alert["alertname"])
            continue
        alert["left_over"] = is_left_over(alert, started_at)
        acceptance = next((item for item in accepted if item.matches(alert["labels"])), None) if alert["left_over"] else None
        if acceptance is not None:
            alert["accepted_by"] = acceptance.text
            groups["accepted_left_over"].append(alert)
            continue
        groups[group_of(alert)].append(alert)
    for alerts in groups.values():
        alerts.sort(key=lambda a: (a["alertname"], a.get("startsAt") or "", a.get("fingerprint") or ""))
    return groups, left_out


# --------------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------------

class AlertCheck:
    """One alerts.firing check from validated module parameters."""

    def __init__(self, params):
        problem = url_error(params["url"] or "")
        if problem:
            raise InputError("url: %s" % problem)
        if not params["timeout"] > 0:
            raise InputError("timeout must be greater than 0, got %s" % params["timeout"])
        if not params["criterion"] or not re.match(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$", params["criterion"]):
            raise InputError("criterion must be a dotted criterion id such as alerts.firing, got %r" % params["criterion"])
        self.params = params
        self.matcher_sets = parse_matcher_sets(params["matchers"])
        self.ignore = [to_text(name) for name in params["ignore_alertnames"] or []]
        self.started_at = None
        if params.get("started_at"):
            self.started_at = parse_time(params["started_at"])
            if self.started_at is None:
                raise InputError("started_at: %r is not an RFC 3339 time with a zone, such as 2026-11-20T10:00:00Z or "
                                 "2026-11-20T10:00:00+00:00" % (params["started_at"],))
        self.accepted = parse_accepted(params.get("accept_left_over"))
        if self.accepted and self.started_at is None:
            raise InputError("accept_left_over needs started_at: an alert is left over when it started firing before "
                             "the run being judged started")

    def request_url(self):
        query = [("active", "true"), ("silenced", "true"), ("inhibited", "true"), ("unprocessed", "true")]
        query += [("filter", matcher.canonical) for matcher in common_matchers(self.matcher_sets)]
        return join_url(self.params["url"], ALERTS_PATH) + "?" + urllib.parse.urlencode(query)

    def request_spec(self):
        headers = {"Accept": "application/json"}
        headers.update(api_auth_headers(self.params))
        return RequestSpec(self.request_url(), headers=headers, timeout=self.params["timeout"],
                           connect_timeout=min(self.params["timeout"], MONITORING_CONNECT_TIMEOUT),
                           validate_certs=self.params["validate_certs"], ca_path=self.params.get("ca_path"))

    def fetch(self, client):
        """GET the alerts -> the parsed JSON body, or AnswerError."""
        timeout = self.params["timeout"]
        deadline = Deadline(timeout * 3 + 2.0)
        # Refusals and timeouts are retried (a restart takes a moment); a 4xx never is (RetryPolicy: 429 only).
        outcome = client.request(self.request_spec(), policy=RetryPolicy(retries=2, backoff=0.5, backoff_max=2.0),
                                 deadline=deadline)
        response = outcome.response
        if response is None:
            error = outcome.error
            raise AnswerError("no answer (%s: %s)" % (error.kind, error.message) if error else "no answer")
        if response.status != 200:
            excerpt = response.text.strip()[:BODY_EXCERPT]
            raise AnswerError("HTTP %d %s%s" % (response.status, response.reason, (": %s" % excerpt) if excerpt else ""))
        body = response.json()
        if response.json_error:
            raise AnswerError("the answer is not JSON: %s" % response.json_error)
        return body

    def record(self, groups, left_out, duration_ms):
        firing, silenced, inhibited = groups["firing"], groups["silenced"], groups["inhibited"]
        accepted = groups["accepted_left_over"]
        scope = describe_sets(self.matcher_sets)
        apart = ["%d silenced" % len(silenced), "%d inhibited" % len(inhibited)]
        if left_out["ignored"]:
            apart.append("%d ignored by name (%s)" % (len(left_out["ignored"]), join_limited(sorted(set(left_out["ignored"])))))
        if accepted:
            apart.append("%d accepted as left over (%s)" % (len(accepted), join_limited([describe(a) for a in accepted], limit=10)))
        left_over = [alert for alert in firing if alert.get("left_over")]
        if firing:
            status = FAIL
            summary = "%d firing alert%s %s: %s; %s" % (len(firing), "" if len(firing) == 1 else "s", scope,
                                                        join_limited([describe(a) for a in firing], limit=10), ", ".join(apart))
            if left_over:
                summary += ("; %d of them left over: firing since before this run started at %s (a previous run's alert "
                            "still within its window and for:), still blocking - wait until %s resolve%s, or accept "
                            "them by name in accept_left_over (canary_alert_accept_left_over, soak_alert_accept_left_over)"
                            % (len(left_over), self.params["started_at"], "it" if len(left_over) == 1 else "they",
                               "s" if len(left_over) == 1 else ""))
        else:
            status = PASS
            summary = "no firing alert %s; %s" % (scope, ", ".join(apart))
        flat = [[m.canonical for m in matchers] for matchers in self.matcher_sets]
        evidence = {"url": safe_url(self.params["url"]), "matchers": flat[0] if len(flat) == 1 else flat,
                    "matcher_sets": flat, "ignore_alertnames": self.ignore,
                    "started_at": self.params.get("started_at") or None,
                    "accept_left_over": [item.text for item in self.accepted],
                    "counts": {"firing": len(firing), "silenced": len(silenced), "inhibited": len(inhibited),
                               "ignored": len(left_out["ignored"]), "not_matching": left_out["not_matching"],
                               "resolved": left_out["resolved"], "left_over": len(left_over),
                               "accepted_left_over": len(accepted)}}
        for name, alerts in groups.items():
            evidence[name] = [dict(alert, summary=describe(alert)) for alert in alerts[:EVIDENCE_LIMIT]]
            if len(alerts) > EVIDENCE_LIMIT:
                evidence["%s_omitted" % name] = len(alerts) - EVIDENCE_LIMIT
        return make_record(self.params["criterion"], status, summary, evidence=evidence,
                           blocking=self.params["blocking"], duration_ms=duration_ms)

    def error_record(self, reason, duration_ms):
        summary = "could not decide: Alertmanager at %s gave no usable answer: %s" % (safe_url(self.params["url"]), reason)
        return make_record(self.params["criterion"], ERROR, summary,
                           evidence={"url": safe_url(self.params["url"]), "reason": reason,
                                     "matcher_sets": [[m.canonical for m in matchers] for matchers in self.matcher_sets]},
                           blocking=self.params["blocking"], duration_ms=duration_ms)

    def run(self, client, now=None):
        """-> (record, alerts) where alerts is {firing, silenced, inhibited, accepted_left_over} (empty lists on an
        error)."""
        watch = Stopwatch()
        try:
            groups, left_out = classify(self.fetch(client), self.matcher_sets, self.ignore, now=now,
                                        started_at=self.started_at, accepted=self.accepted)
        except AnswerError as exc:
            empty = {"firing": [], "silenced": [], "inhibited": [], "accepted_left_over": []}
            return self.error_record(str(exc), watch.elapsed_ms), empty
        return self.record(groups, left_out, watch.elapsed_ms), groups


def argument_spec():
    return dict(
        api_connection_argument_spec(),
        matchers=dict(type="list", elements="raw", default=[]),
        ignore_alertnames=dict(type="list", elements="str", default=["Watchdog"]),
        started_at=dict(type="str"),
        accept_left_over=dict(type="list", elements="raw", default=[]),
        criterion=dict(type="str", default=DEFAULT_CRITERION),
        blocking=dict(type="bool", default=True),
    )


def collect_secrets(params, secrets):
    """Secrets of the options: URL credentials, the token, the password (and the headers made of them)."""
    collect_api_secrets(params, secrets)
