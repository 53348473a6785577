# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one HTTP layer of the collection.

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
* a request budget for a rate-limited service (rate_budget.RequestBudget), spent by every request it counts;
* a TLS inspector (validity, hostname, days to expiry, self-signed) that needs no third-party library;
* redaction: every secret a module is given (passwords, tokens, Authorization values, URL credentials)
  is collected once and masked in everything that leaves the module.

Why not ``Request.open``/``open_url`` directly: they install a process-global opener
(``urllib.request.install_opener``) on every call, so two threads that use different TLS or redirect
settings can send a request through the other's opener. This layer keeps one private opener per setting
(TLS, redirects, proxy, connect timeout), shared by the threads that use that setting, which is safe under
concurrency.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import http.client
import json
import random
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.rate_budget import (
    BudgetExhausted,
    rate_limit_argument_spec,
    rate_limit_problem,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import (
    MASK,
    SENSITIVE_KEY,
    redact,
    redact_text,
)

USER_AGENT = "cleanwithsnapshot.release-http/1.0"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
FOLLOW_REDIRECTS = ["none", "safe", "all"]
# A 429 is the one HTTP answer retried by default: it says "not now", not "unhealthy".
DEFAULT_RETRY_STATUSES = (429,)
RETRYABLE_ERRORS = ("timeout", "refused", "reset", "dns", "network", "protocol")
# Errors after which a request certainly did not reach the application: safe to resend even a write.
NOT_SENT_ERRORS = ("refused", "dns")
IDEMPOTENT_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE")

# Header names whose values are credentials, on top of redaction.SENSITIVE_KEY.
_SENSITIVE_HEADER = re.compile(r"^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|x-auth-token|"
                               r"x-proxy-auth.*|x-.*-(secret|signature|token))$", re.IGNORECASE)
_BEARER = re.compile(r"^\s*(bearer|basic|token|digest)\s+(?P<value>\S+)\s*$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------------
# Standard-library equivalents of the ansible.module_utils.urls helpers this layer needs
# --------------------------------------------------------------------------------------------------

def basic_auth_header(username, password):
    """The value of a Basic-Auth ``Authorization`` header, ``Basic base64(user:password)`` (text)."""
    if password is None:
        password = ""
    raw = to_bytes("%s:%s" % (username, password), errors="surrogate_or_strict")
    return "Basic %s" % to_text(base64.b64encode(raw))


def make_context(cafile=None, validate_certs=True, client_cert=None, client_key=None):
    """An SSLContext as ``ansible.module_utils.urls.make_context`` makes it: verification against ``cafile``
    only when given (else the system's trust store), none at all when ``validate_certs`` is false, and a client
    certificate for mutual TLS."""
    context = ssl.create_default_context(cafile=cafile)
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        if hasattr(context, "post_handshake_auth"):
            context.post_handshake_auth = True  # TLS 1.3 client authentication after the handshake
        context.load_cert_chain(client_cert, keyfile=client_key)
    return context


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


# --------------------------------------------------------------------------------------------------
# Secrets and redaction
# --------------------------------------------------------------------------------------------------

def is_sensitive_header(name):
    name = to_text(name or "")
    return bool(_SENSITIVE_HEADER.match(name) or SENSITIVE_KEY.search(name))


class Secrets:
    """Every secret value a module was given, collected once, masked everywhere.

    ``register(module)`` adds them to the module's no-log values, so Ansible also masks them in
    ``invocation`` and in every message; ``text()``/``value()`` mask them in records and messages the
    module builds itself (plus URL credentials and sensitive query parameters)."""

    def __init__(self):
        self.values = set()
        self._lock = threading.Lock()

    def add(self, value):
        if value is None or isinstance(value, bool):
            return
        value = to_text(value)
        if not value:
            return
        with self._lock:
            self.values.add(value)
            quoted = urllib.parse.quote(value, safe="")
            if quoted != value:
                self.values.add(quoted)

    def add_basic(self, username, password):
        """A Basic-Auth pair: the password, and the header value that encodes it."""
        if not password:
            return
        self.add(password)
        header = to_text(basic_auth_header(username or "", password))
        self.add(header)
        self.add(header.split(" ", 1)[1])

    def add_header_value(self, name, value):
        if value is None or not is_sensitive_header(name):
            return
        value = to_text(value)
        self.add(value)
        match = _BEARER.match(value)
        if match:
            self.add(match.group("value"))
            if match.group(1).lower() == "basic":
                try:
                    decoded = to_text(base64.b64decode(match.group("value")))
                except (ValueError, TypeError):
                    decoded = ""
                if ":" in decoded:
                    self.add(decoded)
                    self.add(decoded.split(":", 1)[1])

    def add_headers(self, headers):
        for name, value in (headers or {}).items():
            self.add_header_value(name, value)

    def add_url(self, url):
        """Credentials in ``scheme://user:pass@host`` and values of sensitive query parameters."""
        if not url:
            return
        try:
            parts = urllib.parse.urlsplit(to_text(url))
        except ValueError:
            return
        if parts.password:
            self.add(parts.password)
            self.add_basic(urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password))
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=False):
            if SENSITIVE_KEY.search(key):
                self.add(value)

    def register(self, module):
        """Hand the secrets to Ansible's own output masking (invocation, warnings, messages)."""
        with self._lock:
            module.no_log_values.update(self.values)

    def text(self, text):
        if text is None:
            return None
        return mask_url_secrets(redact_text(text, sorted(self.values, key=len, reverse=True)))

    def value(self, value):
        masked = redact(value, sorted(self.values, key=len, reverse=True))
        return _mask_urls_deep(masked)


_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+")


def mask_url_secrets(text):
    """Mask ``user:pass@`` and sensitive query values of every http(s) URL in ``text``."""
    if not text:
        return text

    def _one(match):
        url = match.group(0)
        stripped = url.rstrip(".,;:)]}")
        return safe_url(stripped) + url[len(stripped):]
    return _URL_IN_TEXT.sub(_one, text)


def _mask_urls_deep(value):
    if isinstance(value, dict):
        return dict((key, _mask_urls_deep(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_mask_urls_deep(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return mask_url_secrets(value)
    return value


def safe_url(url):
    """``url`` without its password and with sensitive query values masked."""
    if not url:
        return url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = "%s:%s@%s" % (user, MASK, hostport) if ":" in userinfo else "%s@%s" % (user, hostport)
    query = parts.query
    if query:
        pairs = []
        for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            pairs.append((key, MASK if SENSITIVE_KEY.search(key) and value else value))
        query = urllib.parse.urlencode(pairs, safe="*")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def safe_headers(headers):
    return dict((name, MASK if is_sensitive_header(name) and value else value) for name, value in (headers or {}).items())


# --------------------------------------------------------------------------------------------------
# Time: deadline, retry policy
# --------------------------------------------------------------------------------------------------

class Deadline:
    """An overall time budget on a monotonic clock (wall-clock jumps never shorten or extend it)."""

    def __init__(self, seconds, clock=time.monotonic):
        self.seconds = float(seconds)
        self._clock = clock
        self.start = clock()
        self.end = self.start + self.seconds

    def remaining(self):
        return max(0.0, self.end - self._clock())

    def expired(self):
        return self._clock() >= self.end

    def elapsed(self):
        return self._clock() - self.start


class RetryPolicy:
    """``retries`` more attempts after the first, waiting ``backoff * 2**(n-1)`` seconds (capped at
    ``backoff_max``) before attempt n+1, shortened by up to ``jitter`` (a fraction) at random so many
    clients do not retry in step. A server's ``Retry-After`` is honoured when it asks for longer."""

    def __init__(self, retries=3, backoff=0.5, backoff_max=10.0, jitter=0.5, retry_statuses=DEFAULT_RETRY_STATUSES):
        self.retries = max(0, int(retries))
        self.backoff = max(0.0, float(backoff))
        self.backoff_max = max(0.0, float(backoff_max))
        self.jitter = min(1.0, max(0.0, float(jitter)))
        self.retry_statuses = frozenset(int(code) for code in retry_statuses)

    def delay(self, retry_number, rand=0.0, retry_after=None):
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        base = min(self.backoff_max, self.backoff * (2 ** (retry_number - 1)))
        wait = base * (1.0 - self.jitter * rand)
        if retry_after is not None and retry_after > wait:
            wait = min(float(retry_after), max(self.backoff_max, wait))
        return wait

    def retryable_status(self, status):
        return status in self.retry_statuses


# --------------------------------------------------------------------------------------------------
# Requests and responses
# --------------------------------------------------------------------------------------------------

class TransportError(Exception):
    """No HTTP answer: ``kind`` is timeout, refused, reset, dns, tls, network, protocol, deadline or
    invalid; the message never holds a secret once passed through Secrets.text()."""

    def __init__(self, kind, message):
        super(TransportError, self).__init__(message)
        self.kind = kind
        self.message = message

    @property
    def retryable(self):
        return self.kind in RETRYABLE_ERRORS


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


def _classify(exc):
    """Exception -> (kind, message) without tracebacks."""
    if isinstance(exc, TransportError):
        return exc.kind, exc.message
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return _classify(reason)
        return "network", to_native(reason)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls", "certificate verify failed: %s" % (exc.verify_message or to_native(exc))
    if isinstance(exc, ssl.SSLError):
        return "tls", "TLS error: %s" % (exc.reason or to_native(exc))
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout", "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused"
    if isinstance(exc, socket.gaierror):
        return "dns", "name resolution failed: %s" % to_native(exc.strerror or exc)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.RemoteDisconnected)):
        return "reset", "connection closed by the server: %s" % exc.__class__.__name__
    if isinstance(exc, http.client.HTTPException):
        return "protocol", "invalid HTTP answer: %s" % exc.__class__.__name__
    if isinstance(exc, OSError):
        return "network", to_native(exc.strerror or exc)
    if isinstance(exc, ValueError):
        return "invalid", to_native(exc)
    return "network", "%s: %s" % (exc.__class__.__name__, to_native(exc))


def _timed_connection(base_class, connect_timeout):
    """An http.client connection class whose connect phase uses ``connect_timeout`` while reads use
    the request's timeout."""

    def factory(host, timeout=None, **kwargs):
        conn = base_class(host, timeout=timeout, **kwargs)
        read_timeout = timeout

        def create_connection(address, timeout=None, source_address=None, *args):
            sock = socket.create_connection(address, connect_timeout or read_timeout, source_address)
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
    the same error at once, saying so. A service that is down is then reported in one retry cycle, not one per
    request. Not for polling a service that is starting (readiness_probe's wait mode)."""

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
        self._contexts = {}
        self._openers = {}
        self._lock = threading.Lock()

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
                raise TransportError("tls", "cannot set up TLS (ca_path/client_cert/client_key): %s" % _classify(exc)[1])
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
            kind, message = _classify(exc)
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
        outcome = Outcome()
        started = self.clock()
        origin = _origin(spec.url) if self.fail_fast else None
        if origin is not None:
            with self._lock:
                known = self._unreachable.get(origin)
            if known is not None:
                outcome.error = TransportError(known.kind, "%s (not sent: every attempt of an earlier request to this"
                                                           " service failed the same way)" % known.message)
                outcome.gave_up = "not sent: the service did not accept connections for an earlier request"
                outcome.total_ms = 0.0
                return outcome
        counted = budget is not None and budget.counts(spec.method, spec.url)
        retry_number = 0
        while True:
            waited = 0.0
            slot = None
            throttled = False
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
                if self._in_flight is not None:
                    with self._in_flight:
                        response = self.send(spec, deadline)
                else:
                    response = self.send(spec, deadline)
            except TransportError as exc:
                if slot is not None:
                    # Not sent, or refused before the service saw it: the service did not count it.
                    if exc.kind in NOT_SENT_ERRORS + ("deadline",):
                        budget.release(slot)
                    else:
                        budget.settle(slot)
                outcome.error = exc
                outcome.response = None
                outcome.attempts.append(Attempt(len(outcome.attempts) + 1, attempt_start,
                                                (self.clock() - attempt_start) * 1000.0, error="%s: %s" % (exc.kind, exc.message),
                                                waited_s=waited))
                retry = exc.retryable and (spec.idempotent or exc.kind in NOT_SENT_ERRORS)
                if exc.retryable and not retry:
                    outcome.gave_up = "not retried: a write may have been processed before the %s" % exc.kind
            else:
                outcome.response = response
                outcome.error = None
                outcome.attempts.append(Attempt(len(outcome.attempts) + 1, attempt_start, response.elapsed_ms,
                                                status=response.status, waited_s=waited))
                throttled = slot is not None and response.status == 429
                if slot is not None:
                    # The service does not log a request it refuses with 429.
                    (budget.release if throttled else budget.settle)(slot)
                retry = throttled or policy.retryable_status(response.status)
            if not retry:
                break
            if throttled:
                delay = budget.throttled_wait()
                if deadline is not None and delay >= deadline.remaining():
                    outcome.gave_up = ("rate limited (429) although the budget had room: another client shares the service's "
                                       "rate-limit key; waiting out its window (%.0f s) would pass the deadline" % delay)
                    break
                self.sleep(delay)
                continue
            if retry_number >= policy.retries:
                outcome.gave_up = "retries exhausted (%d attempts)" % len(outcome.attempts)
                break
            retry_number += 1
            retry_after = _retry_after(outcome.response)
            delay = policy.delay(retry_number, self.rand(), retry_after)
            if deadline is not None and delay >= deadline.remaining():
                outcome.gave_up = "deadline: no time left for another attempt after %d" % len(outcome.attempts)
                break
            if delay > 0:
                self.sleep(delay)
        outcome.total_ms = (self.clock() - started) * 1000.0
        if (origin is not None and outcome.response is None and outcome.error is not None and outcome.gave_up
                and outcome.error.kind in NOT_SENT_ERRORS
                and all((a.error or "").split(":", 1)[0] in NOT_SENT_ERRORS + ("deadline",) for a in outcome.attempts)):
            with self._lock:
                self._unreachable.setdefault(origin, outcome.error)
        return outcome


def _origin(url):
    try:
        parts = urllib.parse.urlsplit(url)
        return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port)
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


# --------------------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# TLS inspection (no third-party library: a small DER reader for the fields a gate needs)
# --------------------------------------------------------------------------------------------------

_OID_CN = b"\x55\x04\x03"
_OID_SAN = b"\x55\x1d\x11"


def _der_read(data, offset):
    """One DER element at ``offset`` -> (tag, content_start, content_end)."""
    tag = data[offset]
    length = data[offset + 1]
    pos = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end


def _der_children(data, start, end):
    children = []
    pos = start
    while pos < end:
        tag, cstart, cend = _der_read(data, pos)
        children.append((tag, cstart, cend, pos))
        pos = cend
    return children


def _der_time(tag, raw):
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        year = int(text[0:2])
        year += 2000 if year < 50 else 1900
        text = "%04d%s" % (year, text[2:])
    stamp = datetime.datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    return stamp.replace(tzinfo=datetime.timezone.utc)


def _der_common_name(data, start, end):
    for _tag, rs, re_, _pos in _der_children(data, start, end):          # RDN sets
        for _t, as_, ae, _p in _der_children(data, rs, re_):             # AttributeTypeAndValue
            parts = _der_children(data, as_, ae)
            if len(parts) == 2 and data[parts[0][1]:parts[0][2]] == _OID_CN:
                return to_text(data[parts[1][1]:parts[1][2]], errors="surrogate_or_replace")
    return None


def parse_certificate(der):
    """The fields of an X.509 certificate a gate reports: subject/issuer CN, validity, SANs and
    whether it is self-issued (issuer == subject)."""
    _tag, cstart, cend = _der_read(der, 0)
    tbs_tag, tstart, tend = _der_read(der, cstart)
    fields = _der_children(der, tstart, tend)
    index = 0
    if fields and fields[0][0] == 0xA0:  # [0] version
        index = 1
    # serialNumber, signature algorithm, issuer, validity, subject
    issuer = fields[index + 2]
    validity = fields[index + 3]
    subject = fields[index + 4]
    times = _der_children(der, validity[1], validity[2])
    not_before = _der_time(times[0][0], der[times[0][1]:times[0][2]])
    not_after = _der_time(times[1][0], der[times[1][1]:times[1][2]])
    sans = []
    for tag, fstart, fend, _pos in fields[index + 5:]:
        if tag != 0xA3:  # [3] extensions
            continue
        seq = _der_children(der, fstart, fend)
        for ext_tag, estart, eend, _p in (_der_children(der, seq[0][1], seq[0][2]) if seq else []):
            parts = _der_children(der, estart, eend)
            if not parts or der[parts[0][1]:parts[0][2]] != _OID_SAN:
                continue
            octets = parts[-1]
            _t, gstart, gend = _der_read(der, octets[1])
            for name_tag, nstart, nend, _q in _der_children(der, gstart, gend):
                raw = der[nstart:nend]
                if name_tag == 0x82:
                    sans.append(to_text(raw))
                elif name_tag == 0x87 and len(raw) in (4, 16):
                    sans.append(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw))
    return {
        "subject_cn": _der_common_name(der, subject[1], subject[2]),
        "issuer_cn": _der_common_name(der, issuer[1], issuer[2]),
        "self_issued": der[issuer[3]:issuer[2]] == der[subject[3]:subject[2]],
        "not_before": not_before,
        "not_after": not_after,
        "subject_alt_names": sans,
    }


def hostname_matches(hostname, names):
    hostname = (hostname or "").lower().rstrip(".")
    for name in names or []:
        name = name.lower().rstrip(".")
        if name == hostname:
            return True
        if name.startswith("*.") and "." in hostname:
            if hostname.split(".", 1)[1] == name[2:] and hostname.split(".", 1)[0]:
                return True
    return False


def inspect_tls(host, port, server_hostname=None, ca_path=None, client_cert=None, client_key=None, timeout=10.0,
                deadline=None, now=None):
    """Handshake with ``host:port`` and report the certificate. Raises TransportError when no TLS
    handshake is possible at all (refused, timeout, not TLS)."""
    server_hostname = server_hostname or host
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if deadline is not None:
        if deadline.remaining() <= 0:
            raise TransportError("deadline", "the deadline passed before the TLS handshake")
        timeout = min(timeout, deadline.remaining())
    report = {"host": server_hostname, "port": port, "verified": False, "verify_error": None}
    der = None
    try:
        context = make_context(cafile=ca_path, validate_certs=True, client_cert=client_cert, client_key=client_key)
    except (ssl.SSLError, OSError) as exc:
        raise TransportError("tls", "cannot set up TLS (ca_path/client_cert/client_key): %s" % _classify(exc)[1])
    try:
        with socket.create_connection((host, port), timeout) as sock:
            with context.wrap_socket(sock, server_hostname=server_hostname) as tls:
                der = tls.getpeercert(True)
                report["verified"] = True
                report["protocol"] = tls.version()
    except ssl.SSLCertVerificationError as exc:
        report["verify_error"] = exc.verify_message or to_native(exc)
        report["verify_code"] = exc.verify_code
    except Exception as exc:  # pylint: disable=broad-except
        kind, message = _classify(exc)
        if kind != "tls":
            raise TransportError(kind, message)
        report["verify_error"] = message
    if der is None:
        loose = ssl.create_default_context()
        loose.check_hostname = False
        loose.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection((host, port), timeout) as sock:
                with loose.wrap_socket(sock, server_hostname=server_hostname) as tls:
                    der = tls.getpeercert(True)
                    report["protocol"] = tls.version()
        except Exception as exc:  # pylint: disable=broad-except
            kind, message = _classify(exc)
            raise TransportError(kind, message)
    if der:
        try:
            cert = parse_certificate(der)
        except (ValueError, IndexError) as exc:
            report["parse_error"] = to_native(exc)
        else:
            report["subject_cn"] = cert["subject_cn"]
            report["issuer_cn"] = cert["issuer_cn"]
            report["self_signed"] = cert["self_issued"]
            report["not_before"] = cert["not_before"].isoformat()
            report["not_after"] = cert["not_after"].isoformat()
            report["days_to_expiry"] = round((cert["not_after"] - now).total_seconds() / 86400.0, 1)
            report["subject_alt_names"] = cert["subject_alt_names"]
            names = cert["subject_alt_names"] or ([cert["subject_cn"]] if cert["subject_cn"] else [])
            report["hostname_match"] = hostname_matches(server_hostname, names)
    return report


# --------------------------------------------------------------------------------------------------
# Module plumbing shared by the HTTP check modules
# --------------------------------------------------------------------------------------------------

def api_connection_argument_spec():
    """The options of a connection to a monitoring API (Prometheus, Alertmanager): its URL, a bearer token or Basic
    Auth, TLS and a timeout. Use with API_CONNECTION_CONSTRAINTS."""
    return dict(
        url=dict(type="str", required=True),
        bearer_token=dict(type="str", no_log=True),
        url_username=dict(type="str"),
        url_password=dict(type="str", no_log=True),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        timeout=dict(type="float", default=10.0),
    )


API_CONNECTION_CONSTRAINTS = dict(mutually_exclusive=[["bearer_token", "url_username"]],
                                  required_by={"url_password": "url_username"})


def api_auth_headers(options):
    """The Authorization header of api_connection_argument_spec's options (a bearer token, else Basic Auth)."""
    if options.get("bearer_token"):
        return {"Authorization": "Bearer %s" % options["bearer_token"]}
    if options.get("url_username"):
        return {"Authorization": basic_auth_header(options["url_username"], options.get("url_password"))}
    return {}


def collect_api_secrets(options, secrets):
    """The secrets of api_connection_argument_spec's options: URL credentials, the token, the password, and the
    Authorization values made of them."""
    secrets.add_url(options.get("url"))
    if options.get("bearer_token"):
        secrets.add(options["bearer_token"])
        secrets.add("Bearer %s" % options["bearer_token"])
    if options.get("url_password"):
        secrets.add_basic(options.get("url_username") or "", options["url_password"])


def http_common_argument_spec():
    """The connection options documented once in the cleanwithsnapshot.release.http doc fragment."""
    return dict(
        base_url=dict(type="str"),
        timeout=dict(type="float", default=10.0),
        connect_timeout=dict(type="float"),
        deadline=dict(type="float", default=60.0),
        retries=dict(type="int", default=3),
        backoff=dict(type="float", default=0.5),
        backoff_max=dict(type="float", default=10.0),
        concurrency=dict(type="int", default=8),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        client_cert=dict(type="path"),
        client_key=dict(type="path"),
        use_proxy=dict(type="bool", default=True),
        rate_limit=dict(type="dict", options=rate_limit_argument_spec(), default={}),
    )


def http_params_error(params):
    """The first problem with the common HTTP options, as a message naming the option, or None."""
    for name in ("timeout", "deadline"):
        if params.get(name) is not None and not params[name] > 0:
            return "%s must be greater than 0, got %s" % (name, params[name])
    if params.get("connect_timeout") is not None and not params["connect_timeout"] > 0:
        return "connect_timeout must be greater than 0, got %s" % params["connect_timeout"]
    for name in ("retries", "backoff", "backoff_max"):
        if params.get(name) is not None and params[name] < 0:
            return "%s must be 0 or more, got %s" % (name, params[name])
    if params.get("concurrency") is not None and params["concurrency"] < 1:
        return "concurrency must be 1 or more, got %s" % params["concurrency"]
    if params.get("client_key") and not params.get("client_cert"):
        return "client_key needs client_cert"
    if params.get("base_url"):
        problem = url_error(params["base_url"])
        if problem:
            return "base_url: %s" % problem
    if params.get("rate_limit"):
        return rate_limit_problem(params["rate_limit"])
    return None


def url_error(url):
    """Why ``url`` is not a usable absolute http(s) URL, or None."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return "%s is not a valid URL (%s)" % (safe_url_or_mask(url), to_native(exc))
    if parts.scheme.lower() not in ("http", "https"):
        return "%s is not an http:// or https:// URL" % safe_url_or_mask(url)
    if not parts.hostname:
        return "%s has no host" % safe_url_or_mask(url)
    if port is not None and not 0 < port < 65536:
        return "%s has an invalid port" % safe_url_or_mask(url)
    if re.search(r"\s", url):
        return "%s contains white space" % safe_url_or_mask(url)
    return None


def safe_url_or_mask(url):
    try:
        return "'%s'" % safe_url(url)
    except Exception:  # pylint: disable=broad-except
        return "(unparseable URL)"


def join_url(base_url, path_or_url):
    """An absolute URL from a base and a path (a full http(s) URL is taken as it is)."""
    if not path_or_url:
        return base_url
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path_or_url):
        return path_or_url
    if not base_url:
        return path_or_url
    return base_url.rstrip("/") + "/" + path_or_url.lstrip("/")


def retry_policy_from(params):
    return RetryPolicy(retries=params.get("retries", 3), backoff=params.get("backoff", 0.5),
                       backoff_max=params.get("backoff_max", 10.0))


class SecretAwareModule(AnsibleModule):
    """An AnsibleModule that learns the secrets hidden inside free-form options (header values,
    passwords in dicts of roles, URL credentials) BEFORE Ansible validates the arguments, so even a
    validation error's ``invocation`` and the module's syslog line carry no secret.

    ``secret_collector(params, secrets)`` fills a Secrets object from the raw parameters."""

    def __init__(self, *args, **kwargs):
        self._secret_collector = kwargs.pop("secret_collector")
        self.secrets = Secrets()
        super(SecretAwareModule, self).__init__(*args, **kwargs)
        # Once more on the validated parameters (aliases and defaults applied).
        self._collect_secrets()

    def _load_params(self):
        super(SecretAwareModule, self)._load_params()
        self._collect_secrets()

    def _collect_secrets(self):
        try:
            self._secret_collector(self.params or {}, self.secrets)
        except Exception:  # pylint: disable=broad-except
            # Malformed input is reported by validation; collecting stays best effort here.
            pass
        self.secrets.register(self)

    def fail_redacted(self, msg, **kwargs):
        self._collect_secrets()
        self.fail_json(msg=self.secrets.text(msg), **self.secrets.value(kwargs))


def collect_common_secrets(params, secrets):
    """Secrets in the options every HTTP check module shares."""
    secrets.add_url(params.get("base_url"))
