# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The metrics analysis of a release: SLO measurements taken repeatedly, judged, and turned into records.

The shape is Argo Rollouts' AnalysisRun: every metric is measured ``count`` times, ``interval`` seconds apart; each
measurement is ``successful``, ``failed``, ``inconclusive`` (no data, no traffic, NaN or Inf, several series where
one is expected) or ``error`` (no answer, an HTTP error, Prometheus's own error). A metric's phase is

* ``Failed`` once more measurements failed than ``failure_limit``,
* ``Inconclusive`` once more were inconclusive than ``inconclusive_limit``,
* ``Error`` once more errors came in a row than ``consecutive_error_limit``,
* ``Successful`` once ``count`` measurements were taken (errors do not count: the measurement is taken again at the
  next interval) with at least one successful among them.

No data is never a pass (Kayenta's ``mustHaveData: false`` is the counter-example). A metric stops once its phase is
decided; the whole analysis stops as soon as a blocking metric fails (a canary's rollback must not wait for the other
metrics' last measurement). A deadline bounds the call: a metric still undecided then is ``Inconclusive`` (or
``Error`` when its last measurement was an error).

All metrics of a call are measured at the same ticks, concurrently: with Prometheus, one thread per due metric; with
the direct scrape, every target is scraped once per tick and every metric computed from the same two scrapes.

Records: Successful -> pass, Failed -> fail, Inconclusive -> error (``evidence.outcome: inconclusive``), Error ->
error, a metric stopped early by another's failure -> skipped (``evidence.skip_reason``); a dry-run metric is reported
with ``blocking: false`` and never stops the analysis.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import operator
import threading
import time

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import promql_math as pm
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    CRITERION_PATTERN,
    ERROR as STATUS_ERROR,
    FAIL,
    PASS,
    SKIPPED,
    Stopwatch,
    join_limited,
    make_record,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import (
    HttpClient,
    run_concurrently,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import collect_api_secrets, url_error
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.metrics_sources import (
    PrometheusAPI,
    Scraper,
    SourceError,
)

SUCCESSFUL = "Successful"
FAILED = "Failed"
INCONCLUSIVE = "Inconclusive"
ERROR = "Error"
STOPPED = "Stopped"
# Worst first (Argo's order): the analysis takes the worst phase of its blocking metrics.
PHASE_ORDER = (FAILED, ERROR, INCONCLUSIVE, SUCCESSFUL)
PHASE_STATUS = {SUCCESSFUL: PASS, FAILED: FAIL, INCONCLUSIVE: STATUS_ERROR, ERROR: STATUS_ERROR, STOPPED: SKIPPED}

M_SUCCESSFUL = "successful"
M_FAILED = "failed"
M_INCONCLUSIVE = "inconclusive"
M_ERROR = "error"

OPS = {
    "lt": ("<", operator.lt),
    "le": ("<=", operator.le),
    "gt": (">", operator.gt),
    "ge": (">=", operator.ge),
    "eq": ("==", operator.eq),
    "ne": ("!=", operator.ne),
}
KINDS = ("error_rate", "availability", "latency_quantile", "request_rate", "requests")
UNITS = ("ratio", "seconds", "plain")
KIND_UNITS = {"error_rate": "ratio", "availability": "ratio", "latency_quantile": "seconds", "request_rate": "plain",
              "requests": "plain"}
MONITORING_CRITERION = "monitoring.configured"
DEFAULTS = {"interval": 30.0, "count": 3, "failure_limit": 0, "inconclusive_limit": 0, "consecutive_error_limit": 4,
            "blocking": True, "dry_run": False, "quantile": 0.95}
SCRAPE_METRICS = {"requests_metric": "http_requests_total", "latency_metric": "http_request_latency_seconds",
                  "status_label": "status_class", "route_label": "route", "exclude_routes": ["/metrics"]}
MAX_THREADS = 16


class AnalysisInputError(ValueError):
    """Input that can never be measured; the message names the option (the module fails with it)."""


class Inconclusive(Exception):
    """A measurement that has no usable number (no data, no traffic, NaN, several series)."""


# --------------------------------------------------------------------------------------------------
# Numbers for people
# --------------------------------------------------------------------------------------------------

def _trim(number):
    if number == 0:
        return "0"
    text = ("%.2f" % number) if abs(number) >= 0.01 else ("%.2g" % number)
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt(value, unit):
    """``5.1 %`` (ratio), ``312 ms`` (seconds), ``1234`` (plain); NaN and Inf as such."""
    if value is None:
        return "no value"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if unit == "ratio":
        return "%s %%" % _trim(value * 100.0)
    if unit == "seconds":
        return "%s ms" % _trim(value * 1000.0)
    return _trim(value)


def json_number(value):
    """A value for evidence: JSON has no NaN or Inf, so they are the strings ``NaN``, ``+Inf``, ``-Inf``."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return round(float(value), 9)


def _nonfinite(value, what):
    return "%s is %s" % (what, fmt(value, "plain"))


# --------------------------------------------------------------------------------------------------
# Planning: the options read into metrics, every impossible combination refused naming the option
# --------------------------------------------------------------------------------------------------

class Metric:
    """One metric to measure, with its per-metric settings resolved (defaults applied)."""

    def __init__(self, index, name):
        self.index = index
        self.name = name
        self.where = "metrics[%d]" % index
        self.criterion = None
        self.blocking = True
        self.dry_run = False
        self.source = None
        self.variant = None
        self.query = None
        self.range = None
        self.kind = None
        self.match = {}
        self.quantile = None
        self.condition = None
        self.traffic = None
        self.compare = None
        self.unit = "plain"
        self.interval = DEFAULTS["interval"]
        self.count = DEFAULTS["count"]
        self.failure_limit = 0
        self.inconclusive_limit = 0
        self.consecutive_error_limit = 4

    @property
    def gating(self):
        """Whether a failure of this metric decides the analysis (and stops it)."""
        return self.blocking and not self.dry_run

    @property
    def variants(self):
        found = [self.variant]
        if self.compare and self.compare.get("baseline_variant"):
            found.append(self.compare["baseline_variant"])
        return [v for v in found if v]

    def describe(self):
        """The metric's definition as evidence."""
        item = {"source": self.source, "unit": self.unit, "interval": self.interval}
        for key in ("variant", "query", "range", "kind", "quantile", "condition", "traffic", "compare"):
            value = getattr(self, key)
            if value not in (None, {}):
                item[key] = value
        if self.match:
            item["match"] = dict(self.match)
        return item


def _setting(raw, defaults, key):
    value = raw.get(key)
    if value is None:
        value = (defaults or {}).get(key)
    if value is None:
        value = DEFAULTS.get(key)
    return value


def _plan_condition(where, raw):
    if raw is None:
        return None
    op = raw.get("op")
    if op not in OPS:
        raise AnalysisInputError("%s.condition.op: unknown operator %r; use one of %s"
                                 % (where, op, ", ".join(OPS)))
    value = raw.get("value")
    if not pm.is_finite(value):
        raise AnalysisInputError("%s.condition.value must be a finite number, got %r" % (where, value))
    return {"op": op, "value": float(value)}


def _plan_traffic(where, raw, source):
    if raw is None:
        return None
    minimum = raw.get("min")
    minimum = 1.0 if minimum is None else float(minimum)
    if not minimum >= 0 or not pm.is_finite(minimum):
        raise AnalysisInputError("%s.traffic.min must be 0 or more, got %s" % (where, raw.get("min")))
    if source == "prometheus":
        if not raw.get("query"):
            raise AnalysisInputError("%s.traffic.query is required with source=prometheus: a PromQL expression whose "
                                     "value is the number of requests in the window" % where)
        return {"query": raw["query"], "min": minimum}
    if raw.get("query"):
        raise AnalysisInputError("%s.traffic.query needs source=prometheus; with source=scrape the traffic is the "
                                 "variant's request count between two scrapes (set only traffic.min)" % where)
    return {"min": minimum}


def _plan_compare(where, raw, source, kind):
    if raw is None:
        return None
    item = {}
    for key in ("max_increase", "max_increase_ratio"):
        if raw.get(key) is not None:
            if not pm.is_finite(raw[key]) or raw[key] < 0:
                raise AnalysisInputError("%s.compare.%s must be 0 or more, got %s" % (where, key, raw[key]))
            item[key] = float(raw[key])
    if not item:
        raise AnalysisInputError("%s.compare needs max_increase, max_increase_ratio or both" % where)
    if source == "prometheus":
        if raw.get("baseline_variant") or not raw.get("baseline_query"):
            raise AnalysisInputError("%s.compare.baseline_query is required with source=prometheus (the stable "
                                     "variant's value; baseline_variant is for source=scrape)" % where)
        item["baseline_query"] = raw["baseline_query"]
    else:
        if raw.get("baseline_query") or not raw.get("baseline_variant"):
            raise AnalysisInputError("%s.compare.baseline_variant is required with source=scrape (a variant of "
                                     "scrape.targets; baseline_query is for source=prometheus)" % where)
        item["baseline_variant"] = raw["baseline_variant"]
    item["baseline_label"] = raw.get("baseline_label") or raw.get("baseline_variant") or "stable"
    worse = raw.get("worse") or ("lower" if kind == "availability" else "higher")
    if worse not in ("higher", "lower"):
        raise AnalysisInputError("%s.compare.worse must be higher or lower, got %r" % (where, worse))
    item["worse"] = worse
    return item


def _default_unit(metric):
    if metric.kind:
        return KIND_UNITS[metric.kind]
    criterion = metric.criterion or ""
    if criterion in ("slo.error_rate", "slo.availability"):
        return "ratio"
    if criterion.startswith("slo.latency"):
        return "seconds"
    return "plain"


def _plan_prometheus_source(metric, raw):
    where = metric.where
    for key in ("kind", "match", "quantile"):
        if raw.get(key) not in (None, {}):
            raise AnalysisInputError("%s.%s needs source=scrape; with source=prometheus the query says it all"
                                     % (where, key))
    if not raw.get("query"):
        raise AnalysisInputError("%s.query is required with source=prometheus" % where)
    metric.query = raw["query"]
    window = raw.get("range")
    if window is not None:
        for key in ("seconds", "step"):
            if not pm.is_finite(window.get(key)) or not window[key] > 0:
                raise AnalysisInputError("%s.range.%s must be greater than 0, got %s" % (where, key, window.get(key)))
        if window["step"] > window["seconds"]:
            raise AnalysisInputError("%s.range.step (%s) is longer than range.seconds (%s)"
                                     % (where, window["step"], window["seconds"]))
        if raw.get("compare"):
            raise AnalysisInputError("%s.compare cannot be used with range: compare two instant queries" % where)
        metric.range = {"seconds": float(window["seconds"]), "step": float(window["step"])}


def _plan_scrape_source(metric, raw, defaults, variants):
    where = metric.where
    if raw.get("query") or raw.get("range"):
        raise AnalysisInputError("%s.%s needs source=prometheus; with source=scrape set %s.kind"
                                 % (where, "query" if raw.get("query") else "range", where))
    if not raw.get("kind"):
        raise AnalysisInputError("%s.kind is required with source=scrape (one of %s)" % (where, ", ".join(KINDS)))
    metric.kind = raw["kind"]
    if not metric.variant:
        raise AnalysisInputError("%s.variant is required with source=scrape (one of %s)"
                                 % (where, join_limited(sorted(variants))))
    match = _setting(raw, defaults, "match") or {}
    metric.match = dict((str(k), str(v)) for k, v in match.items())
    if metric.kind == "latency_quantile":
        quantile = _setting(raw, defaults, "quantile")
        if not pm.is_finite(quantile) or not 0 <= quantile <= 1:
            raise AnalysisInputError("%s.quantile must be between 0 and 1, got %s" % (where, quantile))
        metric.quantile = float(quantile)
    elif raw.get("quantile") is not None:
        raise AnalysisInputError("%s.quantile is for kind=latency_quantile only" % where)


def _plan_limits(metric, raw, defaults):
    where = metric.where
    metric.interval = float(_setting(raw, defaults, "interval"))
    metric.count = int(_setting(raw, defaults, "count"))
    metric.failure_limit = int(_setting(raw, defaults, "failure_limit"))
    metric.inconclusive_limit = int(_setting(raw, defaults, "inconclusive_limit"))
    metric.consecutive_error_limit = int(_setting(raw, defaults, "consecutive_error_limit"))
    if not metric.interval > 0:
        raise AnalysisInputError("%s.interval must be greater than 0, got %s" % (where, metric.interval))
    if metric.count < 1:
        raise AnalysisInputError("%s.count must be 1 or more, got %s" % (where, metric.count))
    for key in ("failure_limit", "inconclusive_limit", "consecutive_error_limit"):
        if getattr(metric, key) < 0:
            raise AnalysisInputError("%s.%s must be 0 or more, got %s" % (where, key, getattr(metric, key)))
    for key in ("failure_limit", "inconclusive_limit"):
        if getattr(metric, key) >= metric.count:
            raise AnalysisInputError("%s.%s (%d) must be less than count (%d): with it the metric could never be %s"
                                     % (where, key, getattr(metric, key), metric.count,
                                        "failed" if key == "failure_limit" else "inconclusive"))


def plan_metric(index, raw, defaults, source, variants):
    """One ``metrics[index]`` entry -> Metric (AnalysisInputError naming the option when it can never work)."""
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AnalysisInputError("metrics[%d].name is required" % index)
    metric = Metric(index, name.strip())
    where = metric.where
    metric.source = source
    metric.criterion = raw.get("criterion") or "slo.%s" % metric.name
    if not CRITERION_PATTERN.match(metric.criterion):
        raise AnalysisInputError("%s.criterion: %r is not a criterion id (lower case, dotted, e.g. slo.error_rate)%s"
                                 % (where, metric.criterion, "" if raw.get("criterion") else "; set it"))
    metric.dry_run = bool(_setting(raw, defaults, "dry_run"))
    metric.blocking = bool(_setting(raw, defaults, "blocking")) and not metric.dry_run
    metric.variant = _setting(raw, defaults, "variant")
    if source == "prometheus":
        _plan_prometheus_source(metric, raw)
    else:
        _plan_scrape_source(metric, raw, defaults, variants)
    metric.condition = _plan_condition(where, raw.get("condition"))
    metric.compare = _plan_compare(where, raw.get("compare"), source, metric.kind)
    if metric.condition is None and metric.compare is None:
        raise AnalysisInputError("%s needs a condition, a compare or both" % where)
    traffic = raw.get("traffic") if raw.get("traffic") is not None else (defaults or {}).get("traffic")
    if source == "scrape" and traffic is None:
        traffic = {"min": 1.0}  # a ratio of no requests is NaN: say "no traffic" instead
    metric.traffic = _plan_traffic(where, traffic, source)
    for variant in metric.variants if source == "scrape" else ():
        if variant not in variants:
            raise AnalysisInputError("%s: variant %r is not a variant of scrape.targets (%s)"
                                     % (where, variant, join_limited(sorted(variants))))
    unit = raw.get("unit") or _default_unit(metric)
    if unit not in UNITS:
        raise AnalysisInputError("%s.unit must be one of %s, got %r" % (where, ", ".join(UNITS), unit))
    metric.unit = unit
    _plan_limits(metric, raw, defaults)
    return metric


def _plan_targets(params):
    targets = []
    for index, raw in enumerate(((params.get("scrape") or {}).get("targets")) or []):
        where = "scrape.targets[%d]" % index
        if not raw.get("variant") or not raw.get("url"):
            raise AnalysisInputError("%s needs variant and url" % where)
        problem = url_error(raw["url"])
        if problem:
            raise AnalysisInputError("%s.url: %s" % (where, problem))
        targets.append(dict(raw, index=index))
    return targets


def collect_secrets(params, secrets):
    """Every secret of the options: tokens, the Basic-Auth password, credential headers, URL credentials."""
    prometheus = params.get("prometheus")
    if isinstance(prometheus, dict):
        collect_api_secrets(prometheus, secrets)
        secrets.add_headers(prometheus.get("headers"))
    scrape = params.get("scrape")
    if isinstance(scrape, dict):
        for target in scrape.get("targets") or []:
            if isinstance(target, dict):
                secrets.add(target.get("bearer_token"))
                secrets.add_headers(target.get("headers"))
                secrets.add_url(target.get("url"))


def plan_analysis(params):
    """The module's validated parameters -> a plan ``{metrics, targets, deadline, ...}``."""
    source = params.get("source") or "prometheus"
    deadline = float(params.get("deadline") or 0)
    if deadline <= 0:
        raise AnalysisInputError("deadline must be greater than 0, got %s" % params.get("deadline"))
    prometheus = params.get("prometheus")
    if prometheus:
        problem = url_error(prometheus.get("url") or "")
        if problem:
            raise AnalysisInputError("prometheus.url: %s" % problem)
        if prometheus.get("timeout") is not None and not prometheus["timeout"] > 0:
            raise AnalysisInputError("prometheus.timeout must be greater than 0, got %s" % prometheus["timeout"])
    if source == "prometheus" and not prometheus:
        raise AnalysisInputError("prometheus is required with source=prometheus")
    targets = _plan_targets(params) if source == "scrape" else []
    if source == "scrape" and not targets:
        raise AnalysisInputError("scrape.targets is required with source=scrape")
    variants = set(t["variant"] for t in targets)
    metrics = []
    for index, raw in enumerate(params.get("metrics") or []):
        metric = plan_metric(index, raw, params.get("defaults") or {}, source, variants)
        if any(other.name == metric.name for other in metrics):
            raise AnalysisInputError("%s.name %r is used twice" % (metric.where, metric.name))
        span = metric.interval * (metric.count if source == "scrape" else metric.count - 1)
        if span >= deadline:
            raise AnalysisInputError("%s: %d measurements %d s apart take %d s%s, not less than deadline (%s s)"
                                     % (metric.where, metric.count, metric.interval, span,
                                        " (the first scrape is the baseline)" if source == "scrape" else "", deadline))
        metrics.append(metric)
    monitoring = {"targets": list(params.get("require_targets") or []), "rules": list(params.get("require_rules") or [])}
    if (monitoring["targets"] or monitoring["rules"]) and not prometheus:
        raise AnalysisInputError("require_targets and require_rules ask Prometheus: set prometheus")
    if not metrics and not (monitoring["targets"] or monitoring["rules"]):
        raise AnalysisInputError("nothing to analyse: give metrics, require_targets or require_rules")
    return {"source": source, "metrics": metrics, "targets": targets, "deadline": deadline, "prometheus": prometheus,
            "scrape": params.get("scrape") or {}, "monitoring": monitoring}


# --------------------------------------------------------------------------------------------------
# One measurement
# --------------------------------------------------------------------------------------------------

class Measurement:
    """One measurement of a metric: ``outcome``, ``value``, ``reason`` and what it was computed from."""

    def __init__(self, at):
        self.index = None
        self.at = at
        self.outcome = None
        self.value = None
        self.reason = None
        self.detail = {}

    def error(self, message):
        self.outcome = M_ERROR
        self.reason = message
        return self

    def inconclusive(self, reason):
        self.outcome = M_INCONCLUSIVE
        self.reason = "inconclusive: %s" % reason
        return self

    def as_dict(self):
        item = {"index": self.index, "at": round(self.at, 3), "outcome": self.outcome,
                "value": json_number(self.value)}
        if self.reason:
            item["reason"] = self.reason
        for key, value in self.detail.items():
            item[key] = json_number(value) if isinstance(value, float) else value
        return item


def _relation(value, threshold):
    if value > threshold:
        return ">"
    if value < threshold:
        return "<"
    return "="


def _judge_condition(metric, measurement, value, label="", at=None):
    """None when the condition holds (or there is none), else the failure's text."""
    condition = metric.condition
    if condition is None:
        return None
    symbol, func = OPS[condition["op"]]
    if func(value, condition["value"]):
        return None
    threshold = fmt(condition["value"], metric.unit)
    relation = _relation(value, condition["value"])
    text = "%s%s %s %s (needs %s %s)" % (label, fmt(value, metric.unit), relation, threshold, symbol, threshold)
    if at is not None:
        text += " at %s" % time.strftime("%H:%M:%S", time.gmtime(at))
    return text


def _judge_compare(metric, measurement, value, baseline):
    """None when the comparison with the baseline holds, else the failure's text; evidence in ``detail``."""
    compare = metric.compare
    name = compare["baseline_label"]
    degradation = (value - baseline) if compare["worse"] == "higher" else (baseline - value)
    ratio = pm.divide(degradation, abs(baseline))
    measurement.detail.update({"baseline": baseline, "degradation": degradation,
                               "degradation_ratio": json_number(ratio)})
    word = "above" if compare["worse"] == "higher" else "below"
    head = "%s vs %s %s: %s %s" % (fmt(value, metric.unit), name, fmt(baseline, metric.unit),
                                   fmt(abs(degradation), metric.unit), word if degradation > 0 else "within")
    if degradation <= 0:
        return None
    problems = []
    if "max_increase" in compare and degradation > compare["max_increase"]:
        problems.append("more than %s allowed" % fmt(compare["max_increase"], metric.unit))
    if "max_increase_ratio" in compare and degradation > abs(baseline) * compare["max_increase_ratio"]:
        problems.append("%s more than %s allowed" % (
            "%s %%" % _trim(ratio * 100.0) if pm.is_finite(ratio) else "infinitely (the baseline is 0)",
            "%s %%" % _trim(compare["max_increase_ratio"] * 100.0)))
    if not problems:
        return None
    return "%s, %s" % (head, " and ".join(problems))


def judge(metric, measurement, value, baseline=None):
    """Set the measurement's outcome from its value (and the baseline's, when comparing)."""
    measurement.value = value
    if not pm.is_finite(value):
        return measurement.inconclusive(_nonfinite(value, "the value"))
    failure = _judge_condition(metric, measurement, value)
    if failure is None and metric.compare is not None:
        if not pm.is_finite(baseline):
            return measurement.inconclusive(_nonfinite(baseline, "the %s baseline" % metric.compare["baseline_label"]))
        failure = _judge_compare(metric, measurement, value, baseline)
    if failure is not None:
        measurement.outcome = M_FAILED
        measurement.reason = failure
        return measurement
    measurement.outcome = M_SUCCESSFUL
    return measurement


def _differing_labels(series):
    names = set()
    for labels, _points in series:
        names.update(labels)
    differing = [name for name in sorted(names) if len(set(labels.get(name) for labels, _p in series)) > 1]
    return differing


def single_series(result, what):
    """The one series of a query answer; Inconclusive when there is none or more than one."""
    if not result.series:
        raise Inconclusive("no data: the %s returned an empty %s" % (what, result.result_type))
    if len(result.series) > 1:
        labels = _differing_labels(result.series)
        differ = join_limited(labels) if labels else "nothing"
        raise Inconclusive("the %s returned %d series where one is expected (they differ in %s); aggregate them "
                           "(sum, max) or narrow the selector" % (what, len(result.series), differ))
    return result.series[0]


def _single_value(result, what):
    labels, points = single_series(result, what)
    if not points:
        raise Inconclusive("no data: the %s returned a series without samples" % what)
    return points[-1][1], points[-1][0], labels


def _traffic_check(metric, measurement, requests, window_s=None):
    measurement.detail["traffic"] = requests
    if not pm.is_finite(requests) or requests < metric.traffic["min"]:
        raise Inconclusive("no traffic (%s requests in the %swindow, min %s)" % (
            fmt(requests, "plain"), "%s s " % _trim(window_s) if window_s is not None else "", _trim(metric.traffic["min"])))


def _measure_range(metric, api, deadline, measurement, now):
    result = api.range(metric.query, now - metric.range["seconds"], now, metric.range["step"], deadline)
    labels, points = single_series(result, "query")
    measurement.detail["labels"] = labels
    measurement.detail["points"] = [[round(ts, 3), json_number(v)] for ts, v in points]
    if not points:
        raise Inconclusive("no data: the range query returned no points")
    failing = [(ts, v) for ts, v in points if pm.is_finite(v) and _judge_condition(metric, measurement, v)]
    finite = [v for _ts, v in points if pm.is_finite(v)]
    worst = None
    if finite:
        worst = min(finite) if metric.condition["op"] in ("gt", "ge") else max(finite)
    measurement.value = worst if finite else points[-1][1]
    if failing:
        measurement.outcome = M_FAILED
        measurement.reason = "%d of %d points: %s" % (len(failing), len(points), _judge_condition(
            metric, measurement, failing[0][1], at=failing[0][0]))
        return measurement
    if len(finite) < len(points):
        raise Inconclusive("%d of %d points are NaN or Inf" % (len(points) - len(finite), len(points)))
    measurement.value = worst
    measurement.outcome = M_SUCCESSFUL
    return measurement


def measure_prometheus(metric, api, deadline, wall=time.time):
    """One measurement of a Prometheus metric: its query (instant, or range where every point must hold), its
    traffic query and its baseline query."""
    now = wall()
    measurement = Measurement(now)
    try:
        if metric.range is not None:
            traffic = api.instant(metric.traffic["query"], deadline) if metric.traffic else None
            if traffic is not None:
                _traffic_check(metric, measurement, _single_value(traffic, "traffic query")[0])
            return _measure_range(metric, api, deadline, measurement, now)
        result = api.instant(metric.query, deadline)
        traffic = api.instant(metric.traffic["query"], deadline) if metric.traffic else None
        baseline = api.instant(metric.compare["baseline_query"], deadline) if metric.compare else None
    except SourceError as exc:
        return measurement.error(exc.message)
    except Inconclusive as exc:
        return measurement.inconclusive(str(exc))
    try:
        try:
            value, stamp, labels = _single_value(result, "query")
            measurement.value = value
            measurement.detail.update({"sample_time": round(stamp, 3), "labels": labels})
        except Inconclusive:
            if traffic is None:
                raise
            value = None
        if traffic is not None:
            try:
                requests = _single_value(traffic, "traffic query")[0]
            except Inconclusive as exc:
                raise Inconclusive("no traffic (%s)" % str(exc).replace("no data: ", ""))
            _traffic_check(metric, measurement, requests)
            if value is None:
                _single_value(result, "query")  # raises the query's own reason
        base_value = _single_value(baseline, "baseline query")[0] if baseline is not None else None
        return judge(metric, measurement, value, base_value)
    except Inconclusive as exc:
        return measurement.inconclusive(str(exc))


# ------------------------------------------------------------------------ the direct scrape's numbers

class Window:
    """What one variant's targets counted between two scrapes (``before``, ``after``: Snapshots per target)."""

    def __init__(self, before, after, names):
        self.before = before
        self.after = after
        self.names = names
        self.seconds = sum(a.mono - b.mono for b, a in zip(before, after)) / float(len(after))
        self.at = max(a.at for a in after)

    def _kept(self, key):
        """Not a request to an excluded route (the scrapes of /metrics themselves are counted by the service)."""
        excluded = self.names.get("exclude_routes") or ()
        return not excluded or dict(key[1]).get(self.names["route_label"]) not in excluded

    def _select(self, snapshot, name, match):
        return dict((key, value) for key, value in snapshot.select(name, match).items() if self._kept(key))

    def increases(self, name, match):
        """``{(target, key): increase}`` of the series called ``name`` holding ``match``."""
        found = {}
        for position, (before, after) in enumerate(zip(self.before, self.after)):
            increases = pm.series_increase(self._select(before, name, match), self._select(after, name, match))
            for key, value in increases.items():
                found[(position, key)] = value
        return found

    def requests(self, match, status_prefixes=None):
        total = 0.0
        label = self.names["status_label"]
        for (_position, key), value in self.increases(self.names["requests_metric"], match).items():
            if status_prefixes is not None and not str(dict(key[1]).get(label, "")).startswith(status_prefixes):
                continue
            total += value
        return total

    def buckets(self, match):
        totals = {}
        name = self.names["latency_metric"] + "_bucket"
        for before, after in zip(self.before, self.after):
            for bound, count in pm.bucket_increase(self._select(before, name, match), self._select(after, name, match)):
                totals[bound] = totals.get(bound, 0.0) + count
        return sorted(totals.items())


def kind_value(metric, window):
    """The value of a scrape metric's kind over one window."""
    total = window.requests(metric.match)
    if metric.kind == "error_rate":
        return pm.divide(window.requests(metric.match, ("5",)), total)
    if metric.kind == "availability":
        return pm.divide(window.requests(metric.match, ("2", "3")), total)
    if metric.kind == "latency_quantile":
        return pm.histogram_quantile(metric.quantile, window.buckets(metric.match))
    if metric.kind == "request_rate":
        return pm.divide(total, window.seconds)
    return total


def measure_window(metric, windows):
    """One measurement of a scrape metric from its variants' windows."""
    window = windows[metric.variant]
    measurement = Measurement(window.at)
    requests = window.requests(metric.match)
    measurement.detail["window_s"] = round(window.seconds, 3)
    try:
        _traffic_check(metric, measurement, requests, window.seconds)
        value = kind_value(metric, window)
        baseline = None
        if metric.compare is not None:
            base_window = windows[metric.compare["baseline_variant"]]
            base_requests = base_window.requests(metric.match)
            measurement.detail["baseline_requests"] = base_requests
            if base_requests < metric.traffic["min"]:
                raise Inconclusive("no traffic on %s (%s requests in the window, min %s)" % (
                    metric.compare["baseline_variant"], fmt(base_requests, "plain"), _trim(metric.traffic["min"])))
            baseline = kind_value(metric, base_window)
        return judge(metric, measurement, value, baseline)
    except Inconclusive as exc:
        return measurement.inconclusive(str(exc))


class ScrapeRounds:
    """The scrape source's ticks: every target a due metric needs is scraped once, concurrently; each metric's
    measurement is the window from its previous scrapes to these (its first tick only takes the baseline)."""

    def __init__(self, scraper, targets, deadline, names=None):
        self.scraper = scraper
        self.targets = targets
        self.deadline = deadline
        self.names = dict(SCRAPE_METRICS, **(names or {}))
        self.scrapes = 0

    def _indexes(self, metric):
        return [t["index"] for t in self.targets if t["variant"] in metric.variants]

    def measure(self, runs):
        needed = sorted(set(index for run in runs for index in self._indexes(run.metric)))
        by_index = dict((t["index"], t) for t in self.targets)

        def scrape(index):
            try:
                return self.scraper.scrape(by_index[index], self.deadline)
            except SourceError as exc:
                return exc
        snapshots = dict(zip(needed, run_concurrently(scrape, needed, MAX_THREADS, lambda i, exc: SourceError(
            "internal", "%s: %s" % (exc.__class__.__name__, exc)))))
        self.scrapes += len(needed)
        return [self._measure_one(run, snapshots) for run in runs]

    def _measure_one(self, run, snapshots):
        indexes = self._indexes(run.metric)
        failures = [snapshots[i] for i in indexes if isinstance(snapshots[i], SourceError)]
        if failures:
            return Measurement(time.time()).error("; ".join(f.message for f in failures))
        current = dict((i, snapshots[i]) for i in indexes)
        previous = run.state
        run.state = current
        if previous is None:
            return None  # the baseline scrape: the first window ends at the next tick
        windows = {}
        for variant in run.metric.variants:
            picked = [t["index"] for t in self.targets if t["variant"] == variant]
            windows[variant] = Window([previous[i] for i in picked], [current[i] for i in picked], self.names)
        return measure_window(run.metric, windows)


class PrometheusRounds:
    """The Prometheus source's ticks: the due metrics' queries, one thread per metric."""

    def __init__(self, api, deadline, wall=time.time):
        self.api = api
        self.deadline = deadline
        self.wall = wall

    def measure(self, runs):
        return run_concurrently(lambda run: measure_prometheus(run.metric, self.api, self.deadline, self.wall), runs,
                                MAX_THREADS, lambda run, exc: Measurement(self.wall()).error(
                                    "internal error: %s: %s" % (exc.__class__.__name__, exc)))


# --------------------------------------------------------------------------------------------------
# The phase of a metric, and the analysis loop
# --------------------------------------------------------------------------------------------------

class MetricRun:
    """A metric's measurements so far and its phase (None while it runs)."""

    def __init__(self, metric):
        self.metric = metric
        self.measurements = []
        self.counts = {M_SUCCESSFUL: 0, M_FAILED: 0, M_INCONCLUSIVE: 0, M_ERROR: 0}
        self.consecutive_errors = 0
        self.phase = None
        self.decided_by = None
        self.note = None
        self.due = 0.0
        self.state = None

    @property
    def taken(self):
        return self.counts[M_SUCCESSFUL] + self.counts[M_FAILED] + self.counts[M_INCONCLUSIVE]

    def add(self, measurement):
        measurement.index = len(self.measurements) + 1
        self.measurements.append(measurement)
        self.counts[measurement.outcome] += 1
        self.consecutive_errors = self.consecutive_errors + 1 if measurement.outcome == M_ERROR else 0
        self.phase = self.assess()
        if self.phase is not None:
            self.decided_by = measurement

    def assess(self):
        metric = self.metric
        if self.counts[M_FAILED] > metric.failure_limit:
            return FAILED
        if self.counts[M_INCONCLUSIVE] > metric.inconclusive_limit:
            return INCONCLUSIVE
        if self.consecutive_errors > metric.consecutive_error_limit:
            return ERROR
        if self.taken >= metric.count:
            return SUCCESSFUL if self.counts[M_SUCCESSFUL] else INCONCLUSIVE
        return None

    def out_of_time(self, deadline_seconds):
        last = self.measurements[-1] if self.measurements else None
        self.phase = ERROR if last is not None and last.outcome == M_ERROR else INCONCLUSIVE
        self.note = "the deadline (%s s) passed after %d of %d measurements" % (
            _trim(deadline_seconds), self.taken, self.metric.count)

    def stop(self, by):
        self.phase = STOPPED
        self.note = "stopped after %d of %d measurements: %s failed" % (self.taken, self.metric.count, by.metric.name)


class Analysis:
    """Measures every metric at its ticks until each has a phase, a gating metric fails, or the deadline passes.
    ``rounds.measure(due_runs)`` returns one Measurement (or None: nothing to judge yet) per run."""

    def __init__(self, metrics, rounds, deadline, clock=time.monotonic, sleep=time.sleep):
        self.runs = [MetricRun(metric) for metric in metrics]
        self.rounds = rounds
        self.deadline = deadline
        self.clock = clock
        self.sleep = sleep
        self.failed_by = None
        self.ticks = 0

    def run(self):
        start = self.clock()
        for run in self.runs:
            run.due = start
        while True:
            active = [run for run in self.runs if run.phase is None]
            if not active:
                break
            now = self.clock()
            wake = min(run.due for run in active)
            if wake > now:
                if wake >= self.deadline.end:
                    self._out_of_time(active)
                    break
                self.sleep(wake - now)
                continue
            if self.deadline.expired():
                self._out_of_time(active)
                break
            self._tick([run for run in active if run.due <= now])
            if self.failed_by is not None:
                for run in self.runs:
                    if run.phase is None:
                        run.stop(self.failed_by)
                break
        return self.runs

    def _tick(self, due):
        self.ticks += 1
        try:
            results = self.rounds.measure(due)
        except Exception as exc:  # pylint: disable=broad-except
            # A bug must not become a traceback or a pass: an error measurement of every due metric.
            message = "internal error: %s: %s" % (exc.__class__.__name__, exc)
            results = [Measurement(time.time()).error(message) for _run in due]
        for run, measurement in zip(due, results):
            run.due += run.metric.interval
            if measurement is not None:
                run.add(measurement)
            if run.phase == FAILED and run.metric.gating and self.failed_by is None:
                self.failed_by = run

    def _out_of_time(self, active):
        for run in active:
            run.out_of_time(self.deadline.seconds)

    def phase(self):
        """The analysis phase: the worst of the gating metrics (all metrics when none gates)."""
        phases = [run.phase for run in self.runs if run.metric.gating and run.phase != STOPPED]
        if not phases:
            phases = [run.phase for run in self.runs if run.phase != STOPPED]
        for phase in PHASE_ORDER:
            if phase in phases:
                return phase
        return SUCCESSFUL if phases else None


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------

def _label(metric):
    label = metric.criterion
    if metric.name != metric.criterion.split(".", 1)[-1]:
        label += " %s" % metric.name
    if metric.variant:
        label += " %s" % metric.variant
    return label


def _worst(run):
    """The worst successful value as text: the value nearest the condition's threshold, or for a comparison alone
    the largest degradation against the baseline."""
    metric = run.metric
    good = [m for m in run.measurements if m.outcome == M_SUCCESSFUL and pm.is_finite(m.value)]
    if not good:
        return "none"
    if metric.condition is None:
        compare = metric.compare
        word = "above" if compare["worse"] == "higher" else "below"
        worst = max(good, key=lambda m: m.detail.get("degradation", 0.0))
        if worst.detail.get("degradation", 0.0) <= 0:
            return "never %s %s" % (word, compare["baseline_label"])
        ratio = worst.detail.get("degradation_ratio")
        return "%s%s %s %s" % (fmt(worst.detail["degradation"], metric.unit),
                               " (%s %%)" % _trim(ratio * 100.0) if pm.is_finite(ratio) else "", word,
                               compare["baseline_label"])
    values = [m.value for m in good]
    return fmt(min(values) if metric.condition["op"] in ("gt", "ge") else max(values), metric.unit)


def _what(metric):
    parts = []
    if metric.condition is not None:
        parts.append("%s %s" % (OPS[metric.condition["op"]][0], fmt(metric.condition["value"], metric.unit)))
    if metric.compare is not None:
        limits = []
        if "max_increase" in metric.compare:
            limits.append(fmt(metric.compare["max_increase"], metric.unit))
        if "max_increase_ratio" in metric.compare:
            limits.append("%s %%" % _trim(metric.compare["max_increase_ratio"] * 100.0))
        parts.append("at most %s %s %s" % (" and ".join(limits), "above" if metric.compare["worse"] == "higher"
                                           else "below", metric.compare["baseline_label"]))
    return ", ".join(parts)


def _tolerated(run):
    metric = run.metric
    notes = []
    for outcome, limit in ((M_FAILED, metric.failure_limit), (M_INCONCLUSIVE, metric.inconclusive_limit)):
        if run.counts[outcome]:
            notes.append("%d %s, limit %d" % (run.counts[outcome], outcome, limit))
    if run.counts[M_ERROR]:
        notes.append("%d error%s retried" % (run.counts[M_ERROR], "" if run.counts[M_ERROR] == 1 else "s"))
    return " (%s)" % "; ".join(notes) if notes else ""


def metric_summary(run):
    metric = run.metric
    label = _label(metric)
    at = "at measurement %d of %d" % (run.taken, metric.count)
    last = run.decided_by or (run.measurements[-1] if run.measurements else None)
    if run.phase == SUCCESSFUL:
        worst = _worst(run)
        text = "%s: %d of %d measurements successful, %s (%s)%s" % (
            label, run.counts[M_SUCCESSFUL], metric.count, _what(metric),
            worst if worst.startswith("never") else "worst %s" % worst, _tolerated(run))
    elif run.phase == FAILED:
        text = "%s: %s %s%s" % (label, last.reason, at, _tolerated(run) if metric.failure_limit else "")
    elif run.phase == STOPPED:
        text = "%s: %s (fail fast)" % (label, run.note)
    elif run.note:
        text = "%s: %s: %s%s" % (label, "error" if run.phase == ERROR else "inconclusive", run.note,
                                 "; last: %s" % last.reason if last is not None and last.reason else "")
    elif run.phase == ERROR:
        text = "%s: error: %s; %d error%s in a row (limit %d)" % (
            label, last.reason, run.consecutive_errors, "" if run.consecutive_errors == 1 else "s",
            metric.consecutive_error_limit)
    elif last is not None and last.outcome == M_INCONCLUSIVE:
        text = "%s: %s %s" % (label, last.reason, at)
    else:
        text = "%s: inconclusive: no successful measurement in %d (%s)" % (
            label, run.taken, ", ".join("%d %s" % (n, k) for k, n in sorted(run.counts.items()) if n))
    if metric.dry_run:
        text += " [dry run: reported, never blocks]"
    return text


def metric_evidence(run):
    metric = run.metric
    outcome = "stopped" if run.phase == STOPPED else run.phase.lower()
    evidence = {"outcome": outcome, "phase": run.phase, "metric": metric.describe(),
                "counts": dict(run.counts, measurements=run.taken, consecutive_errors=run.consecutive_errors),
                "limits": {"count": metric.count, "failure_limit": metric.failure_limit,
                           "inconclusive_limit": metric.inconclusive_limit,
                           "consecutive_error_limit": metric.consecutive_error_limit},
                "measurements": [m.as_dict() for m in run.measurements], "dry_run": metric.dry_run}
    if run.phase == STOPPED:
        evidence["skip_reason"] = run.note
    elif run.note:
        evidence["note"] = run.note
    return evidence


def metric_record(run, duration_ms):
    metric = run.metric
    return make_record(metric.criterion, PHASE_STATUS[run.phase], metric_summary(run), evidence=metric_evidence(run),
                       blocking=metric.blocking, duration_ms=duration_ms, name=metric.name)


# ------------------------------------------------------------------------ monitoring.configured

def _target_problems(required, targets):
    problems = []
    jobs = {}
    for job in required:
        mine = [t for t in targets if t["job"] == job]
        up = [t for t in mine if t["health"] == "up"]
        jobs[job] = {"up": len(up), "targets": mine}
        if not mine:
            problems.append("job %s has no active target (Prometheus does not scrape it)" % job)
        elif len(up) < len(mine):
            down = [t for t in mine if t["health"] != "up"]
            problems.append("job %s: %d of %d targets not up (%s)" % (job, len(down), len(mine), "; ".join(
                "%s %s%s" % (t["instance"], "not scraped yet" if t["health"] == "unknown" else t["health"],
                             ": %s" % t["last_error"] if t["last_error"] else "") for t in down[:5])))
    return problems, jobs


def _rule_problems(required, rules):
    problems = []
    found = {}
    for name in required:
        mine = [r for r in rules if r["name"] == name]
        found[name] = mine
        if not mine:
            problems.append("rule %s is not loaded" % name)
        elif any(r["health"] == "err" for r in mine):
            bad = [r for r in mine if r["health"] == "err"][0]
            problems.append("rule %s (group %s) is loaded but fails: %s" % (name, bad["group"], bad["last_error"]))
    return problems, found


def monitoring_record(api, required, deadline):
    """``monitoring.configured``: every required job scraped with all its targets up, every required rule loaded."""
    watch = Stopwatch()
    evidence = {"prometheus": api.base_url, "require_targets": required["targets"], "require_rules": required["rules"]}
    try:
        targets = api.targets(deadline) if required["targets"] else []
        rules = api.rules(deadline) if required["rules"] else []
    except SourceError as exc:
        return make_record(MONITORING_CRITERION, STATUS_ERROR, "%s: error: %s" % (MONITORING_CRITERION, exc.message),
                           evidence=dict(evidence, error=exc.message), duration_ms=watch.elapsed_ms)
    target_problems, jobs = _target_problems(required["targets"], targets)
    rule_problems, found = _rule_problems(required["rules"], rules)
    evidence.update({"jobs": jobs, "rules": found})
    problems = target_problems + rule_problems
    if problems:
        summary = "%s: %s" % (MONITORING_CRITERION, "; ".join(problems))
        return make_record(MONITORING_CRITERION, FAIL, summary, evidence=dict(evidence, problems=problems),
                           duration_ms=watch.elapsed_ms)
    parts = []
    if required["targets"]:
        parts.append("Prometheus scrapes %s" % ", ".join("%s (%d up)" % (job, jobs[job]["up"]) for job in required["targets"]))
    if required["rules"]:
        parts.append("rules loaded: %s" % join_limited(required["rules"]))
    return make_record(MONITORING_CRITERION, PASS, "%s: %s" % (MONITORING_CRITERION, "; ".join(parts)),
                       evidence=evidence, duration_ms=watch.elapsed_ms)


def safe_monitoring_record(api, required, deadline):
    """monitoring_record, with anything unexpected an error record (never a lost record or a traceback)."""
    try:
        return monitoring_record(api, required, deadline)
    except Exception as exc:  # pylint: disable=broad-except
        message = "internal error: %s: %s" % (exc.__class__.__name__, exc)
        return make_record(MONITORING_CRITERION, STATUS_ERROR, "%s: error: %s" % (MONITORING_CRITERION, message),
                           evidence={"error": message})


# --------------------------------------------------------------------------------------------------
# The whole call
# --------------------------------------------------------------------------------------------------

def analysis_result(analysis):
    phase = analysis.phase()
    return {"phase": phase, "stopped_by": analysis.failed_by.metric.name if analysis.failed_by else None,
            "ticks": analysis.ticks,
            "metrics": [{"name": run.metric.name, "criterion": run.metric.criterion, "phase": run.phase,
                         "blocking": run.metric.blocking, "dry_run": run.metric.dry_run,
                         "measurements": [m.as_dict() for m in run.measurements]} for run in analysis.runs]}


def run_analysis(plan, secrets, client=None, clock=time.monotonic, sleep=time.sleep):
    """Measure ``plan`` (plan_analysis) for real -> ``{records, analysis, requests}``."""
    watch = Stopwatch()
    deadline = Deadline(plan["deadline"], clock=clock)
    client = client or HttpClient(clock=clock, sleep=sleep)
    api = PrometheusAPI(plan["prometheus"], client, secrets) if plan["prometheus"] else None
    monitoring = []
    thread = None
    if plan["monitoring"]["targets"] or plan["monitoring"]["rules"]:
        thread = threading.Thread(target=lambda: monitoring.append(safe_monitoring_record(api, plan["monitoring"], deadline)),
                                  name="monitoring-configured")
        thread.daemon = True
        thread.start()
    scraper = None
    if plan["source"] == "scrape":
        scraper = Scraper(plan["scrape"], client, secrets)
        names = dict((key, plan["scrape"][key]) for key in SCRAPE_METRICS if plan["scrape"].get(key) is not None)
        rounds = ScrapeRounds(scraper, plan["targets"], deadline, names)
    else:
        rounds = PrometheusRounds(api, deadline)
    analysis = Analysis(plan["metrics"], rounds, deadline, clock=clock, sleep=sleep)
    analysis.run()
    elapsed = watch.elapsed_ms
    records = [metric_record(run, elapsed) for run in analysis.runs]
    if thread is not None:
        thread.join()
        records = monitoring + records
    requests = (api.requests_sent if api else 0) + (scraper.requests_sent if scraper else 0)
    return {"records": records, "analysis": analysis_result(analysis) if plan["metrics"] else None,
            "requests": requests}
