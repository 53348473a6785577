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
import re
import threading
import time

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import metrics_counts as mc
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import promql_math as pm
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import sequential as seq
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
    parse_rfc3339,
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
# A look of the sequential judge that is neither confidently within nor confidently worse: keep measuring.
M_CONTINUE = "continue"

OPS = {
    "lt": ("<", operator.lt),
    "le": ("<=", operator.le),
    "gt": (">", operator.gt),
    "ge": (">=", operator.ge),
    "eq": ("==", operator.eq),
    "ne": ("!=", operator.ne),
}
KINDS = ("error_rate", "availability", "slow_share", "latency_quantile", "request_rate", "requests")
UNITS = ("ratio", "seconds", "plain")
KIND_UNITS = {"error_rate": "ratio", "availability": "ratio", "slow_share": "ratio", "latency_quantile": "seconds",
              "request_rate": "plain", "requests": "plain"}
JUDGES = ("threshold", "sequential")
# What the sequential judge counts as a bad request, per kind (for summaries).
BAD_WORDS = {"error_rate": "5xx", "availability": "not 2xx/3xx", "slow_share": "slower than %s"}
MONITORING_CRITERION = "monitoring.configured"
DEFAULTS = {"interval": 30.0, "count": 3, "failure_limit": 0, "inconclusive_limit": 0, "consecutive_error_limit": 4,
            "blocking": True, "dry_run": False, "quantile": 0.95, "judge": "threshold", "false_fail_rate": 0.01,
            "false_pass_rate": 0.1}
SCRAPE_METRICS = {"requests_metric": "http_requests_total", "latency_metric": "http_request_latency_seconds",
                  "status_label": "status_class", "route_label": "route", "exclude_routes": ["/metrics"]}
MAX_THREADS = 16
# Waiting for Prometheus' next scrape: slack after the scrape's expected end, and the longest wait of one read.
FRESHNESS_SLACK = 0.5
FRESHNESS_MAX_WAIT = 120.0
EQUALITY_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


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
        self.judge = "threshold"
        self.false_fail_rate = DEFAULTS["false_fail_rate"]
        self.false_pass_rate = DEFAULTS["false_pass_rate"]
        self.boundary = None
        self.final_look = True

    @property
    def counted(self):
        """Whether the metric's numbers come from raw counter samples (a kind), not from a PromQL query."""
        return self.kind is not None

    @property
    def sequential(self):
        return self.judge == "sequential"

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
        for key in ("variant", "query", "range", "kind", "quantile", "boundary", "condition", "traffic", "compare"):
            value = getattr(self, key)
            if value not in (None, {}):
                item[key] = value
        if self.match:
            item["match"] = dict(self.match)
        if self.counted:
            item["judge"] = self.judge
        if self.sequential:
            item.update(false_fail_rate=self.false_fail_rate, false_pass_rate=self.false_pass_rate,
                        final_look=self.final_look)
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


def _plan_traffic(where, raw, source, counted):
    if raw is None:
        return None
    minimum = raw.get("min")
    minimum = 1.0 if minimum is None else float(minimum)
    if not minimum >= 0 or not pm.is_finite(minimum):
        raise AnalysisInputError("%s.traffic.min must be 0 or more, got %s" % (where, raw.get("min")))
    if source == "prometheus" and not counted:
        if not raw.get("query"):
            raise AnalysisInputError("%s.traffic.query is required with source=prometheus: a PromQL expression whose "
                                     "value is the number of requests in the window" % where)
        return {"query": raw["query"], "min": minimum}
    if raw.get("query"):
        raise AnalysisInputError("%s.traffic.query needs a PromQL metrics[].query; with a kind the traffic is the "
                                 "variant's request count between two reads (set only traffic.min)" % where)
    return {"min": minimum}


def _plan_compare(where, raw, source, kind):
    """``kind`` set: the metric counts requests (either source) and compares with a baseline variant."""
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
    if source == "prometheus" and kind is None:
        if raw.get("baseline_variant") or not raw.get("baseline_query"):
            raise AnalysisInputError("%s.compare.baseline_query is required with a PromQL metrics[].query (the stable "
                                     "variant's value; baseline_variant is for a metric with a kind)" % where)
        item["baseline_query"] = raw["baseline_query"]
    else:
        if raw.get("baseline_query") or not raw.get("baseline_variant"):
            raise AnalysisInputError("%s.compare.baseline_variant is required with a kind (a variant of %s; "
                                     "baseline_query is for a PromQL metrics[].query)"
                                     % (where, "scrape.targets" if source == "scrape" else "prometheus.variants"))
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


def _plan_prometheus_source(metric, raw, defaults, variants):
    where = metric.where
    if raw.get("kind") and raw.get("query"):
        raise AnalysisInputError("%s: give a kind (counted from prometheus.variants) or a query (a PromQL value), not "
                                 "both" % where)
    if raw.get("kind"):
        if raw.get("range"):
            raise AnalysisInputError("%s.range needs a PromQL metrics[].query; a kind counts from raw samples" % where)
        if not variants:
            raise AnalysisInputError("%s.kind with source=prometheus needs prometheus.variants (per variant the label "
                                     "selector of its counter series, e.g. canary: job=\"api-canary\")" % where)
        _plan_counted(metric, raw, defaults, variants, "prometheus.variants")
        return
    for key in ("match", "quantile", "boundary"):
        if raw.get(key) not in (None, {}):
            raise AnalysisInputError("%s.%s needs a kind; with a PromQL query the query says it all" % (where, key))
    if not raw.get("query"):
        raise AnalysisInputError("%s.query is required with source=prometheus (or a kind, counted from the series "
                                 "of prometheus.variants)" % where)
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
    _plan_counted(metric, raw, defaults, variants, "scrape.targets")


def _plan_counted(metric, raw, defaults, variants, variants_option):
    """A metric computed from raw counter samples of its variant(s): kind, variant, match, quantile, boundary."""
    where = metric.where
    metric.kind = raw["kind"]
    if not metric.variant:
        raise AnalysisInputError("%s.variant is required with a kind (one of %s: %s)"
                                 % (where, variants_option, join_limited(sorted(variants))))
    match = _setting(raw, defaults, "match") or {}
    metric.match = dict((str(k), str(v)) for k, v in match.items())
    if metric.kind == "latency_quantile":
        quantile = _setting(raw, defaults, "quantile")
        if not pm.is_finite(quantile) or not 0 <= quantile <= 1:
            raise AnalysisInputError("%s.quantile must be between 0 and 1, got %s" % (where, quantile))
        metric.quantile = float(quantile)
    elif raw.get("quantile") is not None:
        raise AnalysisInputError("%s.quantile is for kind=latency_quantile only" % where)
    if metric.kind == "slow_share":
        boundary = raw.get("boundary")
        if not pm.is_finite(boundary) or not boundary > 0:
            raise AnalysisInputError("%s.boundary is required with kind=slow_share: a latency in seconds that is an "
                                     "upper bound (le) of the service's histogram buckets, got %s" % (where, boundary))
        metric.boundary = float(boundary)
    elif raw.get("boundary") is not None:
        raise AnalysisInputError("%s.boundary is for kind=slow_share only" % where)


def _plan_judge(metric, raw, defaults):
    """judge, false_fail_rate, false_pass_rate; the sequential judge's inputs checked (a share kind, a limit)."""
    where = metric.where
    metric.judge = _setting(raw, defaults, "judge")
    if metric.judge not in JUDGES:
        raise AnalysisInputError("%s.judge must be one of %s, got %r" % (where, ", ".join(JUDGES), metric.judge))
    for key in ("false_fail_rate", "false_pass_rate"):
        value = _setting(raw, defaults, key)
        if not pm.is_finite(value) or not 0 < value < 0.5:
            raise AnalysisInputError("%s.%s must be above 0 and below 0.5, got %s" % (where, key, value))
        setattr(metric, key, float(value))
    if not metric.sequential:
        return
    if metric.kind not in mc.SHARE_KINDS:
        raise AnalysisInputError("%s.judge=sequential judges shares of requests: kind must be one of %s (got %s); a "
                                 "quantile or a PromQL value has no count behind it - use judge=threshold"
                                 % (where, ", ".join(mc.SHARE_KINDS), metric.kind or "a PromQL query"))
    if raw.get("traffic") is not None:
        raise AnalysisInputError("%s.traffic is for judge=threshold: the sequential judge needs as many requests as "
                                 "the counts demand and no fixed minimum lets a handful decide" % where)
    for key in ("failure_limit", "inconclusive_limit"):
        if _setting(raw, defaults, key):
            raise AnalysisInputError("%s.%s is for judge=threshold (must be 0 with judge=sequential): a sequential look "
                                     "fails only when confidently worse, and only the final look can be inconclusive"
                                     % (where, key))
    condition = raw.get("condition")
    if condition is not None:
        wanted = ("ge", "gt") if metric.kind == "availability" else ("le", "lt")
        if condition.get("op") not in wanted:
            raise AnalysisInputError("%s.condition.op must be %s for a sequential %s (an upper limit of the %s share)"
                                     % (where, " or ".join(wanted), metric.kind,
                                        "success" if metric.kind == "availability" else "bad"))
        value = condition.get("value")
        if not pm.is_finite(value) or not 0 < value < 1:
            raise AnalysisInputError("%s.condition.value must be a share above 0 and below 1 with judge=sequential, "
                                     "got %s" % (where, value))
    compare = raw.get("compare")
    if compare is not None and (compare.get("worse") or "higher") != "higher" and metric.kind != "availability":
        raise AnalysisInputError("%s.compare.worse: the sequential judge compares bad shares (higher is worse)" % where)


def bad_share_limit(metric):
    """The largest acceptable bad share of a sequential metric's condition (availability >= 99 % -> 1 %)."""
    value = metric.condition["value"]
    return round(1.0 - value, 12) if metric.kind == "availability" else value


def margin_of(metric):
    compare = metric.compare
    return seq.Margin(points=compare.get("max_increase"), ratio=compare.get("max_increase_ratio"))


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
        _plan_prometheus_source(metric, raw, defaults, variants)
    else:
        _plan_scrape_source(metric, raw, defaults, variants)
    metric.condition = _plan_condition(where, raw.get("condition"))
    metric.compare = _plan_compare(where, raw.get("compare"), source, metric.kind)
    if metric.condition is None and metric.compare is None:
        raise AnalysisInputError("%s needs a condition, a compare or both" % where)
    _plan_judge(metric, raw, defaults)
    traffic = raw.get("traffic") if raw.get("traffic") is not None else (defaults or {}).get("traffic")
    if metric.counted and traffic is None:
        traffic = {"min": 1.0}  # a ratio of no requests is NaN: say "no traffic" instead
    metric.traffic = None if metric.sequential else _plan_traffic(where, traffic, source, metric.counted)
    for variant in metric.variants if metric.counted else ():
        if variant not in variants:
            raise AnalysisInputError("%s: variant %r is not a variant of %s (%s)"
                                     % (where, variant, "scrape.targets" if source == "scrape" else "prometheus.variants",
                                        join_limited(sorted(variants))))
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
    variant_selectors = _plan_variant_selectors(prometheus) if source == "prometheus" else {}
    variants = set(t["variant"] for t in targets) if source == "scrape" else set(variant_selectors)
    since = _plan_since(params, source)
    final_look = params.get("final_look") is not False
    metrics = []
    for index, raw in enumerate(params.get("metrics") or []):
        metric = plan_metric(index, raw, params.get("defaults") or {}, source, variants)
        if any(other.name == metric.name for other in metrics):
            raise AnalysisInputError("%s.name %r is used twice" % (metric.where, metric.name))
        metric.final_look = final_look
        baseline_read = metric.counted and since is None
        span = metric.interval * (metric.count if baseline_read else metric.count - 1)
        if span >= deadline:
            raise AnalysisInputError("%s: %d measurements %d s apart take %d s%s, not less than deadline (%s s)"
                                     % (metric.where, metric.count, metric.interval, span,
                                        " (the first read is the baseline)" if baseline_read else "", deadline))
        metrics.append(metric)
    monitoring = {"targets": list(params.get("require_targets") or []), "rules": list(params.get("require_rules") or [])}
    if (monitoring["targets"] or monitoring["rules"]) and not prometheus:
        raise AnalysisInputError("require_targets and require_rules ask Prometheus: set prometheus")
    if not metrics and not (monitoring["targets"] or monitoring["rules"]):
        raise AnalysisInputError("nothing to analyse: give metrics, require_targets or require_rules")
    return {"source": source, "metrics": metrics, "targets": targets, "deadline": deadline, "prometheus": prometheus,
            "scrape": params.get("scrape") or {}, "monitoring": monitoring, "variants": variant_selectors,
            "since": since, "final_look": final_look}


def _plan_variant_selectors(prometheus):
    """``prometheus.variants``: variant -> the PromQL label matchers of its counter series (no braces)."""
    selectors = {}
    for name, selector in ((prometheus or {}).get("variants") or {}).items():
        text = selector.strip() if isinstance(selector, str) else None
        if text is None or text.startswith("{") or not text:
            raise AnalysisInputError("prometheus.variants.%s must be PromQL label matchers without braces, for example "
                                     "job=\"api-canary\",route!=\"/metrics\"; got %r" % (name, selector))
        selectors[str(name)] = text
    return selectors


def parse_time(text):
    """Epoch seconds of ``since``: a number of epoch seconds, or an ISO 8601 / RFC 3339 time with a zone."""
    try:
        return float(text)
    except (TypeError, ValueError):
        pass
    stamp = parse_rfc3339(str(text).strip().replace(" ", "T"))
    if stamp is None:
        raise AnalysisInputError("since must be epoch seconds or an RFC 3339 time with its zone "
                                 "(2026-12-07T04:00:00Z), got %r" % (text,))
    return stamp


def _plan_since(params, source):
    if params.get("since") in (None, ""):
        return None
    if source != "prometheus":
        raise AnalysisInputError("since needs source=prometheus: a direct scrape cannot read the counters of the past")
    since = parse_time(params["since"])
    if since > time.time() + 60:
        raise AnalysisInputError("since (%s) is in the future" % params["since"])
    return since


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
        self.fatal = False

    def error(self, message):
        self.outcome = M_ERROR
        self.reason = message
        return self

    def misconfigured(self, message):
        """An error that taking the measurement again cannot fix (the options are wrong): the metric ends at once."""
        self.fatal = True
        return self.error(message)

    def source_error(self, *errors):
        """The source could not give the numbers; one whose answer cannot change (a 4xx such as a malformed query, a
        Prometheus refusing connections) ends the metric at once instead of being asked again at every interval."""
        self.fatal = any(getattr(error, "permanent", False) for error in errors)
        return self.error("; ".join(error.message for error in errors))

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
        return measurement.source_error(exc)
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

class Window(mc.Counts):
    """What one variant's targets counted between two scrapes (``before``, ``after``: Snapshots per target)."""

    def __init__(self, before, after, names):
        increases = {}
        for position, (first, second) in enumerate(zip(before, after)):
            totals = mc.CounterTotals()
            totals.read(mc.snapshot_samples(first, position, names), first.at)
            increases.update(totals.read(mc.snapshot_samples(second, position, names), second.at))
        seconds = sum(a.mono - b.mono for b, a in zip(before, after)) / float(len(after))
        super(Window, self).__init__(increases, names, seconds, max(a.at for a in after))


def kind_value(metric, counts):
    """The value of a metric's kind over one window of counts."""
    return counts.value(metric.kind, metric.match, quantile=metric.quantile, boundary=metric.boundary)


class ConfigurationError(Exception):
    """A measurement that can never work with these options (the metric ends in Error at once, naming the option)."""


def _kind_value(metric, counts):
    try:
        return kind_value(metric, counts)
    except mc.BoundaryError as exc:
        raise ConfigurationError("%s.boundary: %s" % (metric.where, exc))


def measure_window(metric, windows):
    """One threshold measurement of a counted metric from its variants' windows (the counts since the last read)."""
    window = windows[metric.variant]
    measurement = Measurement(window.at)
    requests = window.requests(metric.match)
    if window.seconds is not None:
        measurement.detail["window_s"] = round(window.seconds, 3)
    try:
        _traffic_check(metric, measurement, requests, window.seconds)
        value = _kind_value(metric, window)
        baseline = None
        if metric.compare is not None:
            base_window = windows[metric.compare["baseline_variant"]]
            base_requests = base_window.requests(metric.match)
            measurement.detail["baseline_requests"] = base_requests
            if base_requests < metric.traffic["min"]:
                raise Inconclusive("no traffic on %s (%s requests in the window, min %s)" % (
                    metric.compare["baseline_variant"], fmt(base_requests, "plain"), _trim(metric.traffic["min"])))
            baseline = _kind_value(metric, base_window)
        return judge(metric, measurement, value, baseline)
    except Inconclusive as exc:
        return measurement.inconclusive(str(exc))
    except ConfigurationError as exc:
        return measurement.misconfigured(str(exc))


def _bad_words(metric):
    word = BAD_WORDS[metric.kind]
    return word % fmt(metric.boundary, "seconds") if "%s" in word else word


def _bad_share(metric, counts):
    try:
        return counts.bad_share(metric.kind, metric.match, metric.boundary)
    except mc.BoundaryError as exc:
        raise ConfigurationError("%s.boundary: %s" % (metric.where, exc))


def measure_sequential(metric, totals, look, at):
    """One look of the sequential judge at the counts since the start (``totals``: Counts per variant): fail
    (confidently worse than allowed), pass (confidently within), continue; the final look of a stage answers pass,
    fail or inconclusive - undecided at the end is never a pass."""
    measurement = Measurement(at)
    final = look >= metric.count and metric.final_look
    counts = totals[metric.variant]
    try:
        bad, total = _bad_share(metric, counts)
        measurement.detail.update({"look": look, "final": final})
        if metric.kind == "slow_share":
            measurement.detail["p95"] = json_number(counts.p95(metric.match))
        if metric.compare is not None:
            base_counts = totals[metric.compare["baseline_variant"]]
            base_bad, base_total = _bad_share(metric, base_counts)
            verdict = seq.judge_vs_baseline(bad, total, base_bad, base_total, margin_of(metric), metric.false_fail_rate,
                                            metric.false_pass_rate, final)
            measurement.detail.update({"baseline_bad": base_bad, "baseline_total": base_total,
                                       "baseline_share": json_number(pm.divide(base_bad, base_total))})
            if metric.kind == "slow_share":
                measurement.detail["baseline_p95"] = json_number(base_counts.p95(metric.match))
        else:
            verdict = seq.judge_share(bad, total, bad_share_limit(metric), metric.false_fail_rate,
                                      metric.false_pass_rate, final)
    except ConfigurationError as exc:
        return measurement.misconfigured(str(exc))
    except ValueError as exc:
        return measurement.error("the sequential judge refused the counts: %s" % exc)
    for key, value in verdict.items():
        if key not in measurement.detail and key != "reason":
            measurement.detail[key] = json_number(value) if isinstance(value, float) else value
    measurement.value = pm.divide(bad, total)
    measurement.detail.update({"bad": bad, "total": total, "traffic": total})
    decision = verdict.get("decision")
    text = _look_text(metric, bad, total, verdict)
    outcomes = {"fail": M_FAILED, "pass": M_SUCCESSFUL, "inconclusive": M_INCONCLUSIVE}
    measurement.outcome = outcomes.get(decision, M_CONTINUE)
    measurement.reason = "inconclusive: %s" % text if decision == "inconclusive" else text
    return measurement


def _look_text(metric, bad, total, verdict):
    """The judge's own sentence, saying what was counted as bad: ``5xx: 6.25 % bad of 64; confidently above ...``."""
    if not total:
        return "no traffic: no request counted since the first read (%s)" % verdict.get("reason", "no requests")
    return "%s: %s" % (_bad_words(metric), verdict.get("reason") or "%s of %s" % (_trim(bad), _trim(total)))


class CountedRounds:
    """The ticks of counted metrics (a kind), for both sources: each tick reads the raw counter samples of every
    variant a due metric needs once, adds them to each metric's totals (metrics_counts.CounterTotals, one per
    variant, from the metric's first read: the baseline, or the read at ``since``) and judges the window (threshold)
    or the totals (sequential)."""

    def __init__(self, reader, names, since=None):
        self.reader = reader
        self.names = names
        self.since = since

    def measure(self, runs):
        needed = {}
        baseline = set()
        for run in runs:
            for variant in run.metric.variants:
                needed[variant] = needed.get(variant, False) or run.metric.kind in ("slow_share", "latency_quantile")
                if run.state is None and self.since is not None:
                    baseline.add(variant)
        past = self.reader.read(dict((v, needed[v]) for v in baseline), at=self.since) if baseline else {}
        current = self.reader.read(needed)
        return [self._measure_one(run, past, current) for run in runs]

    def _measure_one(self, run, past, current):
        metric = run.metric
        failures = [current[v] for v in metric.variants if isinstance(current[v], SourceError)]
        if run.state is None and self.since is not None:
            failures += [past[v] for v in metric.variants if isinstance(past[v], SourceError)]
        if failures:
            return Measurement(time.time()).source_error(*failures)
        if run.state is None:
            run.state = dict((v, mc.CounterTotals()) for v in metric.variants)
            if self.since is not None:
                for variant in metric.variants:
                    run.state[variant].read(past[variant].samples, past[variant].at)
        windows = {}
        first = not run.state[metric.variant].started
        for variant in metric.variants:
            totals = run.state[variant]
            previous_at = totals.at
            increases = totals.read(current[variant].samples, current[variant].at)
            seconds = None if previous_at is None else current[variant].at - previous_at
            windows[variant] = mc.Counts(increases, self.names, seconds, current[variant].at)
        detail = dict((key, value) for key, value in current[metric.variant].detail.items())
        if first:
            return None  # the baseline: counting starts here
        if metric.sequential:
            totals = dict((v, mc.Counts(run.state[v].totals, self.names, None, run.state[v].at)) for v in metric.variants)
            measurement = measure_sequential(metric, totals, run.taken + 1, current[metric.variant].at)
        else:
            measurement = measure_window(metric, windows)
        for key, value in detail.items():
            measurement.detail.setdefault(key, value)
        return measurement


class Reading:
    """The raw counter samples of one variant at one read: ``samples`` keyed as metrics_counts reads them, ``at``
    (epoch seconds of the data), ``detail`` (evidence: the freshness wait)."""

    def __init__(self, samples, at, detail=None):
        self.samples = samples
        self.at = at
        self.detail = detail or {}


class ScrapeReader:
    """Counter samples of the direct scrape: every target of a needed variant scraped once, concurrently."""

    def __init__(self, scraper, targets, deadline, names):
        self.scraper = scraper
        self.targets = targets
        self.deadline = deadline
        self.names = names
        self.scrapes = 0

    def read(self, needed, at=None):
        indexes = sorted(t["index"] for t in self.targets if t["variant"] in needed)
        by_index = dict((t["index"], t) for t in self.targets)

        def scrape(index):
            try:
                return self.scraper.scrape(by_index[index], self.deadline)
            except SourceError as exc:
                return exc
        snapshots = dict(zip(indexes, run_concurrently(scrape, indexes, MAX_THREADS, lambda i, exc: SourceError(
            "internal", "%s: %s" % (exc.__class__.__name__, exc)))))
        self.scrapes += len(indexes)
        readings = {}
        for variant in needed:
            mine = [snapshots[t["index"]] for t in self.targets if t["variant"] == variant]
            failures = [item for item in mine if isinstance(item, SourceError)]
            if failures:
                readings[variant] = SourceError(failures[0].kind, "; ".join(f.message for f in failures),
                                                permanent=all(f.permanent for f in failures))
                continue
            samples = {}
            for position, snapshot in zip([t["index"] for t in self.targets if t["variant"] == variant], mine):
                samples.update(mc.snapshot_samples(snapshot, position, self.names))
            readings[variant] = Reading(samples, max(s.at for s in mine))
        return readings


def selector_matchers(selector):
    """The ``label="value"`` equality matchers of a PromQL selector (the ones a scrape target's labels can hold)."""
    return dict((name, value.replace('\\"', '"')) for name, value in EQUALITY_MATCHER.findall(selector or ""))


class PrometheusReader:
    """Counter samples from Prometheus: per variant an instant query of the raw series of the request counter (and
    of the latency buckets when a metric needs them), selected by ``prometheus.variants``.

    Fresh data: a look at time T must count what the service counted up to T, so it waits until every target of the
    variant (its scrape targets whose labels hold the selector's ``label="value"`` matchers) was scraped after T -
    ``lastScrape`` and ``scrapeInterval`` of Prometheus' targets API say when that will be, so the wait is at most
    one scrape interval (and never past the deadline). Without a matching target the read does not wait, and says so
    in the evidence."""

    def __init__(self, api, selectors, names, deadline, wall=time.time, sleep=time.sleep):
        self.api = api
        self.selectors = selectors
        self.names = names
        self.deadline = deadline
        self.wall = wall
        self.sleep = sleep

    def _targets_of(self, targets, variant):
        matchers = selector_matchers(self.selectors[variant])
        found = []
        for target in targets:
            labels = target.get("labels") or {}
            shared = [name for name in matchers if name in labels]
            if shared and all(labels[name] == matchers[name] for name in shared):
                found.append(target)
        return found

    def _wait_fresh(self, variants, wanted):
        """Wait until every target of ``variants`` was scraped at ``wanted`` or later: ``{variant: detail}``."""
        details = dict((v, {}) for v in variants)
        waited = 0.0
        for _attempt in range(3):
            try:
                targets = self.api.targets(self.deadline)
            except SourceError as exc:
                for variant in variants:
                    details[variant]["freshness"] = "unknown: %s" % exc.message
                return details
            wake = None
            for variant in variants:
                mine = self._targets_of(targets, variant)
                if not mine:
                    details[variant]["freshness"] = "unknown: no scrape target matches the selector's labels"
                    continue
                stale = [t for t in mine if t.get("health") == "up" and (t.get("last_scrape") or 0) < wanted]
                details[variant]["freshness"] = "stale" if stale else "fresh"
                details[variant]["last_scrape"] = json_number(min((t.get("last_scrape") or 0) for t in mine))
                for target in stale:
                    interval = target.get("scrape_interval") or 15.0
                    due = (target.get("last_scrape") or wanted) + interval + (target.get("last_scrape_duration") or 0.0)
                    wake = due if wake is None else max(wake, due)
            if wake is None:
                break
            now = self.wall()
            # The next scrape's samples are stored once it ends: a little slack, bounded by one more scrape interval.
            pause = max(0.05, wake - now + FRESHNESS_SLACK)
            if pause > min(self.deadline.remaining(), FRESHNESS_MAX_WAIT):
                break
            self.sleep(pause)
            waited += pause
        for variant in variants:
            details[variant]["fresh_wait_s"] = round(waited, 3)
        return details

    def read(self, needed, at=None):
        details = self._wait_fresh(sorted(needed), self.wall()) if at is None else dict((v, {}) for v in needed)
        readings = {}
        for variant, with_buckets in needed.items():
            names = [self.names["requests_metric"]] + ([self.names["latency_metric"] + "_bucket"] if with_buckets else [])
            try:
                stamp = self.wall() if at is None else at
                samples = {}
                for name in names:
                    samples.update(mc.prometheus_samples(
                        self.api.counter_samples(name, self.selectors[variant], self.deadline, at=at)))
                readings[variant] = Reading(samples, stamp, details.get(variant))
            except SourceError as exc:
                readings[variant] = exc
        return readings


class ScrapeRounds(CountedRounds):
    """The scrape source's ticks (CountedRounds over a ScrapeReader)."""

    def __init__(self, scraper, targets, deadline, names=None):
        names = dict(SCRAPE_METRICS, **(names or {}))
        super(ScrapeRounds, self).__init__(ScrapeReader(scraper, targets, deadline, names), names)

    @property
    def scrapes(self):
        return self.reader.scrapes


class PrometheusRounds:
    """The Prometheus source's ticks: PromQL metrics one thread per metric; counted metrics (a kind) read the raw
    counter series of their variants once per tick (CountedRounds over a PrometheusReader)."""

    def __init__(self, api, deadline, wall=time.time, counted=None):
        self.api = api
        self.deadline = deadline
        self.wall = wall
        self.counted = counted

    def measure(self, runs):
        queried = [run for run in runs if not run.metric.counted]
        counted = [run for run in runs if run.metric.counted]
        results = {}
        if counted:
            for run, measurement in zip(counted, self.counted.measure(counted)):
                results[id(run)] = measurement
        if queried:
            measured = run_concurrently(
                lambda run: measure_prometheus(run.metric, self.api, self.deadline, self.wall), queried, MAX_THREADS,
                lambda run, exc: Measurement(self.wall()).error("internal error: %s: %s" % (exc.__class__.__name__, exc)))
            for run, measurement in zip(queried, measured):
                results[id(run)] = measurement
        return [results[id(run)] for run in runs]


# --------------------------------------------------------------------------------------------------
# The phase of a metric, and the analysis loop
# --------------------------------------------------------------------------------------------------

class MetricRun:
    """A metric's measurements so far and its phase (None while it runs)."""

    def __init__(self, metric):
        self.metric = metric
        self.measurements = []
        self.counts = {M_SUCCESSFUL: 0, M_FAILED: 0, M_INCONCLUSIVE: 0, M_ERROR: 0}
        if metric.sequential:
            self.counts[M_CONTINUE] = 0
        self.consecutive_errors = 0
        self.phase = None
        self.decided_by = None
        self.note = None
        self.due = 0.0
        self.state = None

    @property
    def taken(self):
        return self.counts[M_SUCCESSFUL] + self.counts[M_FAILED] + self.counts[M_INCONCLUSIVE] + \
            self.counts.get(M_CONTINUE, 0)

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
        last = self.measurements[-1] if self.measurements else None
        if last is not None and last.fatal:
            self.note = "measuring again cannot help: %s" % last.reason
            return ERROR
        if metric.sequential:
            return self._assess_sequential(last)
        if self.counts[M_FAILED] > metric.failure_limit:
            return FAILED
        if self.counts[M_INCONCLUSIVE] > metric.inconclusive_limit:
            return INCONCLUSIVE
        if self.consecutive_errors > metric.consecutive_error_limit:
            return ERROR
        if self.taken >= metric.count:
            return SUCCESSFUL if self.counts[M_SUCCESSFUL] else INCONCLUSIVE
        return None

    def _assess_sequential(self, last):
        """Fail at the first confidently worse look; the last look (count) decides: pass, inconclusive, or - when it is
        not the final look of the judgement (final_look false, a soak's interim round) - an undecided hold."""
        metric = self.metric
        if self.counts[M_FAILED]:
            return FAILED
        if self.consecutive_errors > metric.consecutive_error_limit:
            return ERROR
        if self.taken < metric.count or last is None or last.outcome == M_ERROR:
            return None
        if last.outcome == M_SUCCESSFUL:
            return SUCCESSFUL
        if last.outcome == M_CONTINUE and not metric.final_look:
            self.note = "undecided, holds: not the final look (final_look false)"
            return SUCCESSFUL
        return INCONCLUSIVE

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


def _sequential_summary(run, label):
    metric = run.metric
    last = run.decided_by or (run.measurements[-1] if run.measurements else None)
    looks = "look %d of %d" % (run.taken, metric.count)
    reason = last.reason if last is not None and last.reason else "no look"
    if run.phase == SUCCESSFUL:
        held = " (undecided, holds: not the final look)" if run.note else ""
        return "%s: %s at %s%s" % (label, reason, looks, held)
    if run.phase == FAILED:
        return "%s: %s at %s" % (label, reason, looks)
    if run.phase == STOPPED:
        return "%s: %s (fail fast)" % (label, run.note)
    if run.phase == ERROR:
        return "%s: error: %s%s" % (label, run.note or reason, "" if run.note else "; %d error%s in a row (limit %d)" % (
            run.consecutive_errors, "" if run.consecutive_errors == 1 else "s", metric.consecutive_error_limit))
    if run.note:
        return "%s: inconclusive: %s; last: %s" % (label, run.note, reason)
    return "%s: %s at %s" % (label, reason, looks)


def metric_summary(run):
    metric = run.metric
    label = _label(metric)
    if metric.sequential:
        text = _sequential_summary(run, label)
        return text + (" [dry run: reported, never blocks]" if metric.dry_run else "")
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
                                 "; last: %s" % last.reason if last is not None and last.reason
                                 and last.reason not in run.note else "")
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
    if metric.sequential:
        evidence["limits"] = {"count": metric.count, "consecutive_error_limit": metric.consecutive_error_limit,
                              "final_look": metric.final_look}
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


def _stale_wait(targets, required, since, now):
    """Seconds until every required target that is not up was scraped again after ``since`` (its health older than
    the call: a canary started a moment ago is down until Prometheus' next scrape); None when none is stale."""
    wake = None
    for target in targets:
        if target["job"] not in required or target["health"] == "up":
            continue
        last = target.get("last_scrape")
        if (last is None and target["health"] != "unknown") or (last is not None and last >= since):
            continue  # scraped since the call began (or no time to tell): its health is current
        interval = target.get("scrape_interval") or 15.0
        due = (last if last is not None else now) + interval + (target.get("last_scrape_duration") or 0.0)
        wake = due if wake is None else max(wake, due)
    if wake is None:
        return None
    return max(0.05, wake - now + FRESHNESS_SLACK)


def monitoring_record(api, required, deadline, wall=time.time, sleep=time.sleep):
    """``monitoring.configured``: every required job scraped with all its targets up, every required rule loaded. A
    target whose last scrape came before the call and failed is read again after its next scrape (at most one scrape
    interval): a canary started just before the call is not "down"."""
    watch = Stopwatch()
    started = wall()
    evidence = {"prometheus": api.base_url, "require_targets": required["targets"], "require_rules": required["rules"]}
    try:
        targets = api.targets(deadline) if required["targets"] else []
        pause = _stale_wait(targets, required["targets"], started, wall())
        if pause is not None and deadline is not None and pause <= min(deadline.remaining(), FRESHNESS_MAX_WAIT):
            sleep(pause)
            evidence["waited_for_scrape_s"] = round(pause, 3)
            targets = api.targets(deadline)
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


def safe_monitoring_record(api, required, deadline, sleep=time.sleep):
    """monitoring_record, with anything unexpected an error record (never a lost record or a traceback)."""
    try:
        return monitoring_record(api, required, deadline, sleep=sleep)
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
        thread = threading.Thread(target=lambda: monitoring.append(safe_monitoring_record(api, plan["monitoring"], deadline,
                                                                                          sleep=sleep)),
                                  name="monitoring-configured")
        thread.daemon = True
        thread.start()
    scraper = None
    if plan["source"] == "scrape":
        scraper = Scraper(plan["scrape"], client, secrets)
        names = dict((key, plan["scrape"][key]) for key in SCRAPE_METRICS if plan["scrape"].get(key) is not None)
        rounds = ScrapeRounds(scraper, plan["targets"], deadline, names)
    else:
        names = dict(SCRAPE_METRICS, exclude_routes=[])  # the variants' selectors choose the series
        names.update((key, plan["prometheus"][key]) for key in ("requests_metric", "latency_metric", "status_label")
                     if plan["prometheus"].get(key))
        reader = PrometheusReader(api, plan["variants"], names, deadline, sleep=sleep)
        rounds = PrometheusRounds(api, deadline, counted=CountedRounds(reader, names, since=plan.get("since")))
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
