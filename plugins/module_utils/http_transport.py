# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one HTTP transport of the collection.

Built on the standard library alone (urllib, http.client, ssl), so nothing has to be installed where a module
runs. Its TLS context, redirect policy and Basic-Auth header follow ``ansible.module_utils.urls`` (same
semantics), without importing it: that module pulls in optional crypto and e-mail packages and costs every check
module task a noticeable share of its run time on the controller (dependency scan) and on the node (import).
``fetch_url`` is never used: it calls ``fail_json`` on some errors, while a check must turn every failure into data.

What it gives the check modules:

* one request with separate connect and read timeouts, bounded by an overall deadline measured on a
  monotonic clock; HTTP errors (4xx/5xx) are responses to assert on, not exceptions;
* retries with exponential backoff and jitter (transport errors and 429), never past the deadline;
  clock, sleep and randomness are injectable so the logic is tested without waiting;
* bounded concurrency (a thread pool) so many probes run in ONE module call;
* a request budget for a rate-limited service (rate_budget.RequestBudget), spent by every request it counts.

Next to it: ``waiter`` (deadline, retry policy, the one waiter of every retry or poll loop), ``tls`` (the TLS context
and the certificate inspector), ``http_errors`` (error kinds), ``redaction`` (secrets, URL masking) and
``module_support`` (argument spec pieces and the module class that collects secrets).

Why not ``Request.open``/``open_url`` directly: they install a process-global opener
(``urllib.request.install_opener``) on every call, so two threads that use different TLS or redirect
settings can send a request through the other's opener. This layer keeps one private opener per setting
(TLS, redirects, proxy, connect timeout), shared by the threads that use that setting, which is safe under
concurrency.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.client
import json
import random
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_errors import (
    NOT_SENT_ERRORS,
    ConnectTimeout,
    TransportError,
    classify_error,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.rate_budget import BudgetAbandoned, BudgetExhausted, origin_of
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import basic_auth_header
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.tls import make_context
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import RetryPolicy, Waiter


USER_AGENT = "cleanwithsnapshot.release-http/1.0"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
FOLLOW_REDIRECTS = ["none", "safe", "all"]
IDEMPOTENT_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE")
# The connect timeout for the monitoring services a check reads (Prometheus, Alertmanager): they are nearby, so a
# connection not accepted within seconds will not be; their read timeout (``timeout``) stays for slow answers.
MONITORING_CONNECT_TIMEOUT = 3.0


class HTTPRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects per ``follow_redirects`` - ``none``, ``safe`` (GET and HEAD only) or ``all`` - with the
    rules of ``ansible.module_utils.urls``: 307/308 keep method, body and headers; 301/302/303 turn a POST into a
    GET without the body (303 any method but HEAD). A redirect not followed is returned as the 3xx answer."""

    def __init__(self, follow_redirects="safe"):
        super(HTTPRedirectHandler, self).__init__()
        self.follow_redirects = follow_redirects

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        follow = self.follow_redirects
        method = req.get_method()
        if follow in ("none", "no", False):
            raise urllib.error.HTTPError(newurl, code, msg, headers, fp)
        if not 300 <= code < 400 or (follow == "safe" and method not in ("GET", "HEAD")) or follow not in ("all", "safe"):
            raise urllib.error.HTTPError(req.get_full_url(), code, msg, headers, fp)
        data = req.data
        newurl = newurl.replace(" ", "%20")
        if code in (307, 308):
            req_headers = req.headers
        else:
            data = None
            req_headers = dict((k, v) for k, v in req.headers.items()
                               if k.lower() not in ("content-length", "content-type", "transfer-encoding"))
            if (code == 303 and method != "HEAD") or (code == 302 and method != "HEAD") or (code == 301 and method == "POST"):
                method = "GET"
        return urllib.request.Request(newurl, data=data, headers=req_headers, origin_req_host=req.origin_req_host,
                                      unverifiable=True, method=method)

    http_error_308 = urllib.request.HTTPRedirectHandler.http_error_302


class RequestSpec:
    """One HTTP request and how to send it."""

    def __init__(self, url, method="GET", headers=None, body=None, timeout=10.0, connect_timeout=None,
                 validate_certs=True, ca_path=None, client_cert=None, client_key=None, follow_redirects="safe",
                 use_proxy=True, max_body_bytes=DEFAULT_MAX_BODY_BYTES, idempotent=None):
        self.url = url
        self.method = (method or "GET").upper()
        # A request that may change data is not resent after an ambiguous failure (timeout, reset):
        # the first attempt may have been processed. Refused connections and 429 are always safe.
        self.idempotent = self.method in IDEMPOTENT_METHODS if idempotent is None else bool(idempotent)
        self.headers = dict(headers or {})
        self.body = body
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout) if connect_timeout else None
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.client_cert = client_cert
        self.client_key = client_key
        self.follow_redirects = follow_redirects
        self.use_proxy = use_proxy
        self.max_body_bytes = max_body_bytes


class Response:
    """An HTTP answer of any status. Header lookups are case-insensitive."""

    def __init__(self, status, reason, headers, body, url, elapsed_ms, truncated=False):
        self.status = int(status)
        self.reason = reason
        self.header_items = list(headers or [])
        self.body = body or b""
        self.url = url
        self.elapsed_ms = elapsed_ms
        self.truncated = truncated
        self._json = None
        self._json_done = False
        self.json_error = None

    def header(self, name):
        name = name.lower()
        values = [value for key, value in self.header_items if key.lower() == name]
        if not values:
            return None
        return ", ".join(values)

    @property
    def content_type(self):
        value = self.header("Content-Type") or ""
        return value.split(";", 1)[0].strip().lower()

    @property
    def text(self):
        return to_text(self.body, errors="surrogate_or_replace")

    @property
    def has_json(self):
        self.json()
        return self.json_error is None

    def json(self):
        """The parsed body, or None with ``json_error`` set when the body is not JSON."""
        if not self._json_done:
            self._json_done = True
            if not self.body.strip():
                self.json_error = "empty body"
            else:
                try:
                    self._json = json.loads(self.text)
                except ValueError as exc:
                    self.json_error = "body is not JSON (%s)" % to_native(exc)
        return self._json


class Attempt:
    def __init__(self, number, started, elapsed_ms, status=None, error=None, waited_s=0.0):
        self.number = number
        self.started = started
        self.elapsed_ms = elapsed_ms
        self.status = status
        self.error = error
        self.waited_s = waited_s
        # A deadline error (before sending, or while waiting for a rate-limit slot) means nothing went out.
        self.sent = not (error or "").startswith("deadline:")

    def as_dict(self):
        item = {"attempt": self.number, "ms": round(self.elapsed_ms, 1)}
        if self.status is not None:
            item["status_code"] = self.status
        if self.error is not None:
            item["error"] = self.error
        if self.waited_s:
            item["waited_s"] = round(self.waited_s, 3)
        if not self.sent:
            item["sent"] = False
        return item


class Outcome:
    """The result of a request with retries: the last response or the last transport error."""

    def __init__(self):
        self.response = None
        self.error = None
        self.attempts = []
        self.gave_up = None
        self.total_ms = 0.0

    @property
    def throttled(self):
        return self.response is not None and self.response.status == 429

    def attempt_log(self, limit=10):
        items = [attempt.as_dict() for attempt in self.attempts]
        if len(items) > limit:
            items = items[:2] + [{"omitted": len(items) - limit}] + items[-(limit - 2):]
        return items


def _timed_connection(base_class, connect_timeout):
    """An http.client connection class whose connect phase uses ``connect_timeout`` while reads use
    the request's timeout."""

    def factory(host, timeout=None, **kwargs):
        conn = base_class(host, timeout=timeout, **kwargs)
        read_timeout = timeout

        def create_connection(address, timeout=None, source_address=None, *args):
            limit = connect_timeout or read_timeout
            try:
                sock = socket.create_connection(address, limit, source_address)
            except socket.timeout:
                # Told apart from a read timeout: a service that accepted and never answered is hung; no connection
                # at all may as well be the network's doing.
                raise ConnectTimeout(limit)
            sock.settimeout(read_timeout)
            return sock
        conn._create_connection = create_connection
        return conn
    return factory


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, connect_timeout):
        super(_HTTPHandler, self).__init__()
        self._connect_timeout = connect_timeout

    def http_open(self, req):
        return self.do_open(_timed_connection(http.client.HTTPConnection, self._connect_timeout), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context, connect_timeout):
        super(_HTTPSHandler, self).__init__(context=context)
        self._connect_timeout = connect_timeout
        self._tls_context = context

    def https_open(self, req):
        return self.do_open(_timed_connection(http.client.HTTPSConnection, self._connect_timeout), req,
                            context=self._tls_context)


class HttpClient:
    """Sends RequestSpecs. ``clock``, ``sleep`` and ``rand`` are injectable (tests use a fake clock).

    ``fail_fast``: once every attempt of a request to an origin (scheme, host, port) was refused (or its name did
    not resolve) until the retries or the deadline ran out, later requests to that origin are not sent: they get
    the same error at once, saying so, and so do the requests waiting for a slot of that origin's rate budget. A
    service that is down is then reported in one retry cycle, not one per request nor after a rate-limit window
    filled by an earlier run. Not for polling a service that is starting (readiness_probe's wait mode)."""

    def __init__(self, clock=time.monotonic, sleep=time.sleep, rand=random.random, user_agent=USER_AGENT, fail_fast=False,
                 max_in_flight=None):
        self.clock = clock
        self.sleep = sleep
        self.rand = rand
        self.user_agent = user_agent
        self.fail_fast = fail_fast
        # At most this many requests on the wire at once, whatever the thread pools using this client (the service's
        # own connection pools are finite: a check must not be the load that breaks it).
        self._in_flight = threading.BoundedSemaphore(max_in_flight) if max_in_flight else None
        self._unreachable = {}
        self._halted = None
        self._contexts = {}
        self._openers = {}
        self._lock = threading.Lock()

    def halt(self, reason):
        """Send nothing more: every later request() gets a ``not_run`` error carrying ``reason`` at once, before any
        wait for the rate budget (a liveness precondition found the service not answering)."""
        with self._lock:
            self._halted = TransportError("not_run", reason)

    @property
    def halted(self):
        """The ``not_run`` error of halt(), or None."""
        return self._halted

    def tls_context(self, spec):
        """One SSLContext per TLS setting (make_context), shared by threads (SSLContext is thread-safe)."""
        key = (bool(spec.validate_certs), spec.ca_path, spec.client_cert, spec.client_key)
        with self._lock:
            context = self._contexts.get(key)
            if context is None:
                context = make_context(cafile=spec.ca_path, validate_certs=spec.validate_certs,
                                       client_cert=spec.client_cert, client_key=spec.client_key)
                self._contexts[key] = context
        return context

    def _opener(self, spec):
        """One opener per setting, built once and shared by threads (its handlers keep no per-request state)."""
        https = spec.url.lower().startswith("https:")
        key = (bool(spec.use_proxy), spec.connect_timeout, spec.follow_redirects, https,
               (bool(spec.validate_certs), spec.ca_path, spec.client_cert, spec.client_key) if https else None)
        with self._lock:
            opener = self._openers.get(key)
        if opener is None:
            opener = self._build_opener(spec)
            with self._lock:
                opener = self._openers.setdefault(key, opener)
        return opener

    def _build_opener(self, spec):
        handlers = []
        if not spec.use_proxy:
            handlers.append(urllib.request.ProxyHandler({}))
        handlers.append(_HTTPHandler(spec.connect_timeout))
        if spec.url.lower().startswith("https:"):
            try:
                context = self.tls_context(spec)
            except (ssl.SSLError, OSError) as exc:
                raise TransportError("tls", "cannot set up TLS (ca_path/client_cert/client_key): %s" % classify_error(exc)[1])
            handlers.append(_HTTPSHandler(context, spec.connect_timeout))
        handlers.append(HTTPRedirectHandler(spec.follow_redirects))
        return urllib.request.build_opener(*handlers)

    def send(self, spec, deadline=None):
        """One attempt. Returns a Response (any status) or raises TransportError."""
        timeout = spec.timeout
        if deadline is not None:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise TransportError("deadline", "the deadline passed before the request was sent")
            timeout = min(timeout, remaining)
        headers = {"User-Agent": self.user_agent}
        headers.update(spec.headers)
        url = spec.url
        parts = urllib.parse.urlsplit(url)
        if "@" in parts.netloc:
            # Credentials in the URL become a Basic-Auth header (as ansible.module_utils.urls does); urllib
            # itself would take them for part of the host name.
            userinfo, hostport = parts.netloc.rsplit("@", 1)
            user, _sep, password = userinfo.partition(":")
            url = urllib.parse.urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
            if not any(name.lower() == "authorization" for name in headers):
                headers["Authorization"] = to_text(basic_auth_header(urllib.parse.unquote(user),
                                                                     urllib.parse.unquote(password)))
        data = to_bytes(spec.body) if spec.body is not None else None
        started = self.clock()
        try:
            request = urllib.request.Request(url, data=data, method=spec.method)
            for name, value in headers.items():
                request.add_header(name, to_native(value))
            opener = self._opener(spec)
            try:
                raw = opener.open(request, timeout=timeout)
                status, reason, final_url = raw.status, raw.reason, raw.geturl()
            except urllib.error.HTTPError as exc:
                raw = exc
                status, reason = exc.code, exc.reason
                # An unfollowed redirect carries its target as the error's URL: report the request's.
                final_url = url if 300 <= status < 400 else (getattr(exc, "url", None) or url)
            header_items = list(raw.headers.items()) if raw.headers is not None else []
            body, truncated = self._read_body(raw, spec.max_body_bytes, deadline)
        except TransportError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            kind, message = classify_error(exc)
            raise TransportError(kind, message)
        elapsed_ms = (self.clock() - started) * 1000.0
        return Response(status, to_text(reason or ""), header_items, body, final_url, elapsed_ms, truncated)

    def _read_body(self, raw, limit, deadline):
        chunks = []
        size = 0
        truncated = False
        try:
            if getattr(raw, "fp", None) is None:
                return b"", False
            while True:
                if deadline is not None and deadline.expired():
                    raise TransportError("timeout", "the deadline passed while reading the body")
                chunk = raw.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size >= limit:
                    truncated = True
                    break
        finally:
            try:
                raw.close()
            except Exception:  # pylint: disable=broad-except
                pass
        body = b"".join(chunks)
        return body[:limit], truncated

    def request(self, spec, policy=None, deadline=None, budget=None):
        """Send with retries. Transport errors of a retryable kind and the policy's retry statuses
        (429) are retried after backoff while attempts and the deadline allow. A request the service counts
        against its rate limit takes a slot of ``budget`` (a RequestBudget) first; a 429 to such a request is
        waited out for a whole window instead (see rate_budget), not counted as an attempt. Returns an Outcome."""
        policy = policy or RetryPolicy()
        if self._halted is not None:
            outcome = Outcome()
            outcome.error = self._halted
            outcome.gave_up = "not sent"
            return outcome
        started = self.clock()
        origin = _origin(spec.url) if self.fail_fast else None
        known = self._known_unreachable(origin)
        if known is not None:
            return known
        outcome = Outcome()
        counted = budget is not None and budget.counts(spec.method, spec.url)
        waiter = Waiter(deadline, self.sleep)
        retry_number = 0
        while True:
            try:
                retry, throttled = self._attempt(spec, policy, deadline, budget, counted, outcome)
            except BudgetAbandoned as exc:
                # Another request found the service refusing connections while this one waited for its slot.
                outcome = _not_sent(exc.args[0])
                outcome.total_ms = (self.clock() - started) * 1000.0
                return outcome
            if not retry:
                break
            if throttled:
                delay = budget.throttled_wait()
                if not waiter.pause(delay):
                    outcome.gave_up = ("rate limited (429) although the budget had room: another client shares the service's "
                                       "rate-limit key; waiting out its window (%.0f s) would pass the deadline" % delay)
                    break
                continue
            if retry_number >= policy.retries:
                outcome.gave_up = "retries exhausted (%d attempts)" % len(outcome.attempts)
                break
            retry_number += 1
            if not waiter.pause(policy.delay(retry_number, self.rand(), _retry_after(outcome.response))):
                outcome.gave_up = "deadline: no time left for another attempt after %d" % len(outcome.attempts)
                break
        outcome.total_ms = (self.clock() - started) * 1000.0
        if self._remember_unreachable(origin, outcome) and budget is not None and origin == budget.origin:
            budget.abandon(outcome.error)
        return outcome

    def _known_unreachable(self, origin):
        """An Outcome without sending when (fail_fast) an earlier request found ``origin`` not accepting connections."""
        if origin is None:
            return None
        with self._lock:
            known = self._unreachable.get(origin)
        return None if known is None else _not_sent(known)

    def _remember_unreachable(self, origin, outcome):
        """(fail_fast) Every attempt was refused (or the name did not resolve) until the client gave up -> remembered?"""
        if (origin is not None and outcome.response is None and outcome.error is not None and outcome.gave_up
                and outcome.error.kind in NOT_SENT_ERRORS
                and all((a.error or "").split(":", 1)[0] in NOT_SENT_ERRORS + ("deadline",) for a in outcome.attempts)):
            with self._lock:
                self._unreachable.setdefault(origin, outcome.error)
            return True
        return False

    def _attempt(self, spec, policy, deadline, budget, counted, outcome):
        """One attempt, added to ``outcome`` -> (retry?, throttled: a 429 to a request the budget counts)."""
        waited = 0.0
        slot = None
        attempt_start = self.clock()
        try:
            if counted:
                try:
                    slot, waited = budget.acquire(deadline)
                except BudgetExhausted as exc:
                    raise TransportError("deadline", str(exc))
                attempt_start = self.clock()
            elif budget is not None:
                budget.note_exempt()
            response = self._send_in_flight(spec, deadline)
        except TransportError as exc:
            if slot is not None:
                # Not sent, or refused before the service saw it: the service did not count it.
                (budget.release if exc.kind in NOT_SENT_ERRORS + ("deadline",) else budget.settle)(slot)
            outcome.error = exc
            outcome.response = None
            outcome.attempts.append(Attempt(len(outcome.attempts) + 1, attempt_start, (self.clock() - attempt_start) * 1000.0,
                                            error="%s: %s" % (exc.kind, exc.message), waited_s=waited))
            retry = exc.retryable and (spec.idempotent or exc.kind in NOT_SENT_ERRORS)
            if exc.retryable and not retry:
                outcome.gave_up = "not retried: a write may have been processed before the %s" % exc.kind
            return retry, False
        outcome.response = response
        outcome.error = None
        outcome.attempts.append(Attempt(len(outcome.attempts) + 1, attempt_start, response.elapsed_ms,
                                        status=response.status, waited_s=waited))
        throttled = slot is not None and response.status == 429
        if slot is not None:
            # The service does not log a request it refuses with 429.
            (budget.release if throttled else budget.settle)(slot)
        return throttled or policy.retryable_status(response.status), throttled

    def _send_in_flight(self, spec, deadline):
        """send(), holding one of the ``max_in_flight`` places when there is such a limit."""
        if self._in_flight is not None:
            with self._in_flight:
                return self.send(spec, deadline)
        return self.send(spec, deadline)


def _not_sent(error):
    """The Outcome of a request not sent because an earlier one to its service failed with ``error`` every time."""
    outcome = Outcome()
    outcome.error = TransportError(error.kind, "%s (not sent: every attempt of an earlier request to this"
                                               " service failed the same way)" % error.message)
    outcome.gave_up = "not sent: the service did not accept connections for an earlier request"
    outcome.total_ms = 0.0
    return outcome


def _origin(url):
    """The rate budget's spelling of the origin, so the fail-fast memory and the budget name one service alike;
    None for a URL that does not parse (its request fails on its own)."""
    try:
        return origin_of(url)
    except ValueError:
        return None


def _retry_after(response):
    if response is None:
        return None
    value = response.header("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


def run_concurrently(func, items, concurrency, on_error):
    """``func(item)`` for every item on at most ``concurrency`` threads; results in input order.
    An exception escaping ``func`` becomes ``on_error(item, exc)`` (never a traceback)."""
    items = list(items)
    if not items:
        return []
    workers = max(1, min(int(concurrency), len(items)))
    if workers == 1:
        results = []
        for item in items:
            try:
                results.append(func(item))
            except Exception as exc:  # pylint: disable=broad-except
                results.append(on_error(item, exc))
        return results
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(func, item) for item in items]
        results = []
        for item, future in zip(items, futures):
            try:
                results.append(future.result())
            except Exception as exc:  # pylint: disable=broad-except
                results.append(on_error(item, exc))
    return results
