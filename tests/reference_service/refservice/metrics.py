"""The service's Prometheus metrics, named and labelled like the real service's (backend/app/infra/metrics.py,
which uses prometheus_client), rendered in the text exposition format 0.0.4 without prometheus_client, so the
reference service keeps running from Debian's python3 with psycopg2 only.

Exported (label names sorted, as prometheus_client writes them):

- ``http_requests_total{method,route,service,status_class}`` counter (``status_class`` "2xx", "5xx", ...);
- ``http_request_latency_seconds{method,route,service,status_class}`` histogram, buckets
  0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10 and +Inf (``_bucket{le}``, ``_count``, ``_sum``);
- ``http_5xx_total{method,route,service}`` counter;
- ``http_429_total{bucket}`` and ``org_rate_limit_blocks_total{bucket}`` counters (the rate limiter's refusals;
  ``bucket`` from the path like the real ``_bucket_for_path``: admin, iam, payments, ..., other);
- ``job_heartbeat_age_seconds{job}`` and ``job_runner_up{job}`` gauges, set by the readiness check's jobs check;
- ``process_start_time_seconds`` gauge.

Every counter and histogram child also has its ``<name>_created`` gauge, as prometheus_client writes by default.
``route`` is the route's path for a known route, else ``unmatched``; ``service`` is the APP_NAME setting.
"""
from __future__ import annotations

import math
import threading
import time

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
HTTP_LABELS = ("method", "route", "status_class", "service")
RATE_LIMIT_BUCKETS = (("/v1/admin", "admin"), ("/v1/auth", "auth"), ("/v1/iam", "iam"), ("/v1/worker", "worker"),
                      ("/v1/client", "client"), ("/v1/bookings", "bookings"), ("/v1/orders", "orders"),
                      ("/v1/payments", "payments"), ("/v1/public", "public"))
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def bucket_for_path(path):
    """The rate-limit bucket of a request path, as the real service names it."""
    for prefix, bucket in RATE_LIMIT_BUCKETS:
        if (path or "").startswith(prefix):
            return bucket
    return "other"


def status_class(status):
    return "%dxx" % (int(status) // 100) if status else "unknown"


def format_value(value):
    """A sample value as prometheus_client (and Go) writes it: 1.0, 0.003, 1.7e+09, +Inf, NaN."""
    value = float(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    if value > 0 and "e" not in text:
        dot = text.find(".")
        if dot > 6:  # Go switches to an exponent from 1e+07 on
            digits = (text[:dot] + text[dot + 1:]).rstrip("0")
            mantissa = (digits[0] + "." + digits[1:]) if len(digits) > 1 else digits[0]
            return "%se+%02d" % (mantissa, dot - 1)
    return text


def _escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(pairs):
    if not pairs:
        return ""
    return "{" + ",".join('%s="%s"' % (name, _escape_label(value)) for name, value in sorted(pairs)) + "}"


class _Family:
    def __init__(self, name, kind, help_text, labelnames):
        self.name, self.kind, self.help, self.labelnames = name, kind, help_text, tuple(labelnames)
        self.children = {}  # label values tuple -> value (counter, gauge) or [bucket counts, sum, count] (histogram)
        self.created = {}

    def key(self, labels):
        if set(labels) != set(self.labelnames):
            raise ValueError("%s takes the labels %s" % (self.name, ", ".join(self.labelnames)))
        return tuple(str(labels[name]) for name in self.labelnames)


class Metrics:
    """The service's metrics registry: thread-safe updates, ``render()`` -> exposition text."""

    def __init__(self, service_name="cleaning-economy-bot", buckets=LATENCY_BUCKETS):
        self.service_name = service_name or "unknown"
        self.buckets = tuple(float(b) for b in buckets)
        self.started = time.time()
        self._lock = threading.Lock()
        self._families = {}
        for name, kind, help_text, labelnames in (
                ("http_5xx_total", "counter", "HTTP responses with status >= 500.", ("method", "route", "service")),
                ("http_requests_total", "counter", "HTTP requests by method, route, and status class.", HTTP_LABELS),
                ("http_request_latency_seconds", "histogram", "HTTP request latency in seconds.", HTTP_LABELS),
                ("job_heartbeat_age_seconds", "gauge", "Age of the latest job heartbeat in seconds.", ("job",)),
                ("job_runner_up", "gauge", "Job runner liveness indicator (1=recent heartbeat).", ("job",)),
                ("org_rate_limit_blocks_total", "counter", "Rate limit blocks by request bucket.", ("bucket",)),
                ("http_429_total", "counter", "HTTP 429 responses by bucket.", ("bucket",)),
                ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", ())):
            self._families[name] = _Family(name, kind, help_text, labelnames)

    # ------------------------------------------------------------------ updates
    def _inc(self, name, labels, amount=1.0):
        family = self._families[name]
        key = family.key(labels)
        with self._lock:
            if key not in family.children:
                family.children[key], family.created[key] = 0.0, time.time()
            family.children[key] += amount

    def set_gauge(self, name, labels, value):
        family = self._families[name]
        key = family.key(labels)
        with self._lock:
            family.children[key] = float(value)

    def observe(self, method, route, status, seconds):
        """One answered request, as the real MetricsMiddleware records it: the request counter, the latency
        histogram and, for a status of 500 or more, ``http_5xx_total``."""
        labels = {"method": method, "route": route, "status_class": status_class(status), "service": self.service_name}
        seconds = max(0.0, float(seconds))
        self._inc("http_requests_total", labels)
        family = self._families["http_request_latency_seconds"]
        key = family.key(labels)
        with self._lock:
            child = family.children.get(key)
            if child is None:
                child = family.children[key] = [[0] * len(self.buckets), 0.0, 0]
                family.created[key] = time.time()
            for index, bound in enumerate(self.buckets):
                if seconds <= bound:
                    child[0][index] += 1
            child[1] += seconds
            child[2] += 1
        if int(status) >= 500:
            self._inc("http_5xx_total", {"method": method, "route": route, "service": self.service_name})

    def rate_limited(self, path):
        """A request the rate limiter refused (the real RateLimitMiddleware sits outside MetricsMiddleware: the
        refusal is counted here only, not in ``http_requests_total``)."""
        bucket = bucket_for_path(path)
        self._inc("org_rate_limit_blocks_total", {"bucket": bucket})
        self._inc("http_429_total", {"bucket": bucket})

    def job_heartbeat_age(self, job, age_seconds, threshold_seconds=None):
        age = max(0.0, float(age_seconds))
        self.set_gauge("job_heartbeat_age_seconds", {"job": job}, age)
        if threshold_seconds is not None:
            self.set_gauge("job_runner_up", {"job": job}, 1 if age <= threshold_seconds else 0)

    # ------------------------------------------------------------------ exposition
    def render(self):
        out = []
        with self._lock:
            for family in self._families.values():
                if family.name == "process_start_time_seconds":
                    family.children = {(): self.started}
                self._render_family(out, family)
        return "".join(out)

    def _render_family(self, out, family):
        base = family.name[:-len("_total")] if family.kind == "counter" and family.name.endswith("_total") else family.name
        out.append("# HELP %s %s\n# TYPE %s %s\n" % (family.name, _escape_help(family.help), family.name, family.kind))
        for key, value in sorted(family.children.items()):
            pairs = list(zip(family.labelnames, key))
            if family.kind == "histogram":
                counts, total, count = value
                for bound, hits in zip(self.buckets, counts):
                    out.append("%s_bucket%s %s\n" % (family.name, _labels(pairs + [("le", format_value(bound))]),
                                                     format_value(hits)))
                out.append("%s_bucket%s %s\n" % (family.name, _labels(pairs + [("le", "+Inf")]), format_value(count)))
                out.append("%s_count%s %s\n" % (family.name, _labels(pairs), format_value(count)))
                out.append("%s_sum%s %s\n" % (family.name, _labels(pairs), format_value(total)))
            else:
                out.append("%s%s %s\n" % (family.name, _labels(pairs), format_value(value)))
        if family.kind in ("counter", "histogram") and family.created:
            created = base + "_created"
            out.append("# HELP %s %s\n# TYPE %s gauge\n" % (created, _escape_help(family.help), created))
            for key, stamp in sorted(family.created.items()):
                out.append("%s%s %s\n" % (created, _labels(list(zip(family.labelnames, key))), format_value(stamp)))
