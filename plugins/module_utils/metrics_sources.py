# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the metrics analysis reads its numbers, over the collection's one HTTP layer (http_transport).

* ``PrometheusAPI`` - the Prometheus HTTP API: instant queries (``/api/v1/query``), range queries
  (``/api/v1/query_range``), the scrape targets (``/api/v1/targets``) and the loaded rules (``/api/v1/rules``).
  Transport failures, HTTP errors and Prometheus's own errors (``{"status": "error", "errorType": "bad_data",
  "error": "..."}``, for example a malformed PromQL) become a ``SourceError`` that carries Prometheus's text (and,
  for a query, the query: it names the metric). An answer that asking again cannot change - a 4xx (a 400 bad_data is a
  malformed query), or a Prometheus that refuses connections within its short connect deadline - is ``permanent``:
  the analysis ends the metric at once instead of measuring it again at every interval.
* ``Scraper`` - a service's own ``/metrics`` exposition (``Authorization: Bearer <METRICS_TOKEN>`` on the real
  service), parsed with ``prometheus_client``'s parser into a ``Snapshot`` of every sample. The parser is imported
  here guarded; the module reports a missing library (``missing_required_lib``) only when the scrape source is used.

Nothing here decides anything: the measurements are metrics_analysis's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import re
import time
import traceback
import urllib.parse

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_errors import NOT_SENT_ERRORS
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import MONITORING_CONNECT_TIMEOUT, RequestSpec
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import api_auth_headers
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import safe_url
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import RetryPolicy
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.promql_math import parse_float

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    HAS_PROMETHEUS_CLIENT = False
    PROMETHEUS_CLIENT_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PROMETHEUS_CLIENT = True
    PROMETHEUS_CLIENT_IMPORT_ERROR = None

# A measurement is retried at its next interval (consecutive_error_limit), so one quick retry is enough here.
DEFAULT_POLICY = RetryPolicy(retries=1, backoff=0.2, backoff_max=1.0)
# A real service with many routes exports tens of thousands of bucket lines.
SCRAPE_MAX_BYTES = 32 * 1024 * 1024
EXCERPT = 300


class SourceError(Exception):
    """A measurement that could not be taken: ``kind`` is transport, http, prometheus, protocol or parse."""

    def __init__(self, kind, message, permanent=False):
        super(SourceError, self).__init__(message)
        self.kind = kind
        self.message = message
        # Asking again cannot change the answer (a 4xx, a refused connection): the metric ends at once.
        self.permanent = permanent


def permanent_status(status):
    """A 4xx answer but 429 (the transport waits that out) says the request itself is wrong: never asked again."""
    return 400 <= status < 500 and status != 429


def _excerpt(response, secrets):
    text = " ".join(response.text.split())
    if len(text) > EXCERPT:
        text = text[:EXCERPT] + "..."
    return secrets.text(text)


def _no_answer(what, outcome, secrets, refused_is_permanent=False):
    message = outcome.error.message if outcome.error is not None else "no answer"
    if outcome.gave_up:
        message = "%s (%s)" % (message, outcome.gave_up)
    # Prometheus refused (or its name is unknown) on every attempt: nothing listens there, and the next interval will
    # not differ. A scraped service may be restarting, so its refusals are measured again.
    refused = outcome.error is not None and outcome.error.kind in NOT_SENT_ERRORS and outcome.error.kind != "connect_timeout"
    return SourceError("transport", secrets.text("%s did not answer: %s" % (what, message)),
                       permanent=refused and refused_is_permanent)


def _quoted_query(query):
    text = " ".join(query.split())
    return "`%s`" % (text if len(text) <= EXCERPT else text[:EXCERPT] + "...")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_duration(text):
    """Seconds of a Prometheus duration (``15s``, ``1m30s``, ``500ms``); None when it is not one."""
    if not isinstance(text, str) or not text:
        return None
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _DURATION_SECONDS[unit] for number, unit in parts)


def parse_rfc3339(text):
    """Epoch seconds of an RFC 3339 time as Prometheus writes it (nanoseconds, Z or an offset); None for Go's zero
    time (a target never scraped) or anything else."""
    match = _RFC3339.match(text or "")
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if year <= 1:
        return None
    stamp = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    stamp += float("0" + match.group(7)) if match.group(7) else 0.0
    zone = match.group(8)
    if zone != "Z":
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        stamp -= offset if zone[0] == "+" else -offset
    return stamp


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class QueryResult:
    """A query's answer: ``result_type`` (vector, matrix, scalar) and ``series`` ``[(labels, [(ts, value)])]``."""

    def __init__(self, result_type, series, warnings=None):
        self.result_type = result_type
        self.series = series
        self.warnings = list(warnings or [])


def _points(raw, where):
    try:
        return [(float(ts), parse_float(value)) for ts, value in raw]
    except (TypeError, ValueError):
        raise SourceError("protocol", "%s: the answer's samples are not [timestamp, value] pairs" % where)


def parse_query_data(data, warnings=None):
    """The ``data`` of a query answer -> QueryResult; a string result or an unknown shape is a SourceError."""
    if not isinstance(data, dict) or "resultType" not in data:
        raise SourceError("protocol", "the answer has no data.resultType: not a Prometheus query answer")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return QueryResult(kind, [({}, _points([result], "scalar"))], warnings)
    if kind == "vector" and isinstance(result, list):
        return QueryResult(kind, [(dict(item.get("metric") or {}), _points([item.get("value")], "vector"))
                                  for item in result if isinstance(item, dict)], warnings)
    if kind == "matrix" and isinstance(result, list):
        return QueryResult(kind, [(dict(item.get("metric") or {}), _points(item.get("values") or [], "matrix"))
                                  for item in result if isinstance(item, dict)], warnings)
    raise SourceError("protocol", "the query returns a %s, not a number or a vector" % kind)


class PrometheusAPI:
    """The Prometheus HTTP API at ``options["url"]`` (``url``, ``bearer_token``, ``url_username``, ``url_password``,
    ``validate_certs``, ``ca_path``, ``timeout``, ``headers``)."""

    def __init__(self, options, client, secrets, policy=DEFAULT_POLICY):
        self.base_url = options["url"].rstrip("/")
        self.client = client
        self.secrets = secrets
        self.policy = policy
        self.headers = {"Accept": "application/json"}
        self.headers.update(api_auth_headers(options))
        self.headers.update(options.get("headers") or {})
        self.timeout = float(options.get("timeout") or 10.0)
        self.validate_certs = options.get("validate_certs", True) is not False
        self.ca_path = options.get("ca_path")
        self.requests_sent = 0

    @property
    def where(self):
        return "Prometheus at %s" % safe_url(self.base_url)

    def get(self, path, params, deadline):
        """GET an API path; ``(data, warnings)`` of a ``status: success`` answer, else a SourceError."""
        url = "%s%s?%s" % (self.base_url, path, urllib.parse.urlencode(params or {}))
        spec = RequestSpec(url, headers=self.headers, timeout=self.timeout, validate_certs=self.validate_certs,
                           ca_path=self.ca_path, connect_timeout=min(self.timeout, MONITORING_CONNECT_TIMEOUT))
        outcome = self.client.request(spec, self.policy, deadline)
        self.requests_sent += len(outcome.attempts)
        response = outcome.response
        if response is None:
            raise _no_answer(self.where, outcome, self.secrets, refused_is_permanent=True)
        permanent = permanent_status(response.status)
        # A query's error names the query (and so its metric): which of a call's queries is wrong is otherwise a guess.
        about = " to the query %s" % _quoted_query(params["query"]) if (params or {}).get("query") else ""
        document = response.json()
        if isinstance(document, dict) and document.get("status") == "error":
            raise SourceError("prometheus", self.secrets.text("%s answered %d %s%s: %s" % (
                self.where, response.status, document.get("errorType") or "error", about, document.get("error") or "")),
                permanent=permanent)
        if response.status != 200:
            raise SourceError("http", "%s answered HTTP %d %s%s: %s" % (
                self.where, response.status, response.reason, self.secrets.text(about), _excerpt(response, self.secrets)),
                permanent=permanent)
        if not isinstance(document, dict) or document.get("status") != "success":
            raise SourceError("protocol", "%s: not a Prometheus API answer (%s): %s" % (
                self.where, response.json_error or "no status: success", _excerpt(response, self.secrets)))
        return document.get("data"), document.get("warnings")

    def instant(self, query, deadline, at=None):
        """An instant query, at ``at`` (epoch seconds) when given, else at the server's now."""
        params = {"query": query}
        if at is not None:
            params["time"] = "%.3f" % at
        data, warnings = self.get("/api/v1/query", params, deadline)
        return parse_query_data(data, warnings)

    def counter_samples(self, name, selector, deadline, at=None):
        """The raw samples of every series of the counter ``name`` matching ``selector`` (PromQL label matchers, for
        example ``job="api-canary",route!="/metrics"``): ``[(labels, [(ts, value)])]`` with ``__name__`` in the labels.
        No aggregation: increases are taken per series (metrics_counts), where a reset or a new series is seen."""
        result = self.instant("%s{%s}" % (name, selector or ""), deadline, at=at)
        if result.result_type != "vector":
            raise SourceError("protocol", "%s: %s{...} returned a %s, not a vector" % (self.where, name, result.result_type))
        for labels, _points in result.series:
            labels.setdefault("__name__", name)
        return result.series

    def range(self, query, start, end, step, deadline):
        data, warnings = self.get("/api/v1/query_range", {"query": query, "start": "%.3f" % start,
                                                          "end": "%.3f" % end, "step": "%g" % step}, deadline)
        return parse_query_data(data, warnings)

    def targets(self, deadline):
        """The active scrape targets ``[{job, instance, health, last_error, scrape_url, labels, last_scrape,
        last_scrape_duration, scrape_interval}]`` (``last_scrape`` epoch seconds or None when never scraped, the
        durations in seconds or None)."""
        data, _warnings = self.get("/api/v1/targets", {"state": "active"}, deadline)
        if not isinstance(data, dict) or not isinstance(data.get("activeTargets"), list):
            raise SourceError("protocol", "%s: /api/v1/targets has no data.activeTargets" % self.where)
        targets = []
        for item in data["activeTargets"]:
            labels = item.get("labels") or {}
            targets.append({"job": labels.get("job") or item.get("scrapePool"), "instance": labels.get("instance"),
                            "health": item.get("health") or "unknown", "last_error": item.get("lastError") or "",
                            "scrape_url": safe_url(item.get("scrapeUrl") or ""), "labels": dict(labels),
                            "last_scrape": parse_rfc3339(item.get("lastScrape")),
                            "last_scrape_duration": _number(item.get("lastScrapeDuration")),
                            "scrape_interval": parse_duration(item.get("scrapeInterval"))})
        return targets

    def rules(self, deadline):
        """The loaded rules ``[{name, type, health, group, last_error}]``."""
        data, _warnings = self.get("/api/v1/rules", {}, deadline)
        if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
            raise SourceError("protocol", "%s: /api/v1/rules has no data.groups" % self.where)
        rules = []
        for group in data["groups"]:
            for rule in group.get("rules") or []:
                rules.append({"name": rule.get("name"), "type": rule.get("type"), "health": rule.get("health"),
                              "group": group.get("name"), "last_error": rule.get("lastError") or ""})
        return rules


class Snapshot:
    """One scrape of one target: ``samples`` ``{(sample_name, ((label, value), ...)): value}`` (labels sorted),
    ``at`` (epoch seconds) and ``mono`` (monotonic seconds) when the answer arrived."""

    def __init__(self, samples, at, mono, url):
        self.samples = samples
        self.at = at
        self.mono = mono
        self.url = url

    def select(self, name, match=None):
        """``{key: value}`` of the samples called ``name`` whose labels hold every ``match`` pair."""
        match = match or {}
        selected = {}
        for key, value in self.samples.items():
            if key[0] != name:
                continue
            if match:
                labels = dict(key[1])
                if any(labels.get(label) != wanted for label, wanted in match.items()):
                    continue
            selected[key] = value
        return selected


def parse_exposition(text):
    """The samples of a Prometheus text exposition -> ``{(name, sorted label pairs): value}`` (SourceError when
    the text is not an exposition)."""
    samples = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = float(sample.value)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise SourceError("parse", "not a Prometheus text exposition: %s" % exc)
    return samples


class Scraper:
    """Scrapes a target ``{variant, url, bearer_token, headers}`` with the scrape options (``timeout``,
    ``validate_certs``, ``ca_path``)."""

    def __init__(self, options, client, secrets, policy=DEFAULT_POLICY, wall=time.time, clock=time.monotonic):
        self.client = client
        self.secrets = secrets
        self.policy = policy
        self.timeout = float(options.get("timeout") or 10.0)
        self.validate_certs = options.get("validate_certs", True) is not False
        self.ca_path = options.get("ca_path")
        self.wall = wall
        self.clock = clock
        self.requests_sent = 0

    def scrape(self, target, deadline):
        headers = {"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"}
        headers.update(api_auth_headers(target))
        headers.update(target.get("headers") or {})
        where = "the %s target %s" % (target["variant"], safe_url(target["url"]))
        spec = RequestSpec(target["url"], headers=headers, timeout=self.timeout, validate_certs=self.validate_certs,
                           ca_path=self.ca_path, max_body_bytes=SCRAPE_MAX_BYTES)
        outcome = self.client.request(spec, self.policy, deadline)
        self.requests_sent += len(outcome.attempts)
        response = outcome.response
        if response is None:
            raise _no_answer(where, outcome, self.secrets)
        if response.status == 401:
            raise SourceError("http", "%s answered 401: the bearer token is missing or wrong (the real service wants "
                                      "Authorization: Bearer <METRICS_TOKEN>): %s" % (where, _excerpt(response, self.secrets)))
        if response.status != 200:
            raise SourceError("http", "%s answered HTTP %d %s: %s" % (
                where, response.status, response.reason, _excerpt(response, self.secrets)))
        if response.truncated:
            raise SourceError("parse", "%s: the exposition is larger than %d bytes" % (where, SCRAPE_MAX_BYTES))
        try:
            samples = parse_exposition(response.text)
        except SourceError as exc:
            raise SourceError("parse", "%s: %s" % (where, self.secrets.text(exc.message)))
        return Snapshot(samples, self.wall(), self.clock(), target["url"])
