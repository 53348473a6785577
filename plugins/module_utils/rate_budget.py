# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The request budget of a rate-limited service.

The service's limit is data (``rate_limit``: requests per window, the paths and methods it does not count),
with the real CleanWithSnapshot limiter as defaults: a sliding-window log per client, at most 30 requests in
any 60 s, every path counted but the health paths and the Stripe webhooks, OPTIONS never. One budget serves
every request of one module call to that service (probes and the admin matrix together): requests go at
full speed while the window has room (the limit less a safety margin), and past that wait only until the
oldest counted request leaves the window - never past the call's deadline.

Runs do not start from nothing: the modules' action plugins keep a ledger of send times per service and
client on the controller (plugin_utils/rate_ledger.py) and hand the module the sends still inside the
window (``rate_limit.history``); the module returns its own (``rate_limit.sent``). A 429 that arrives
anyway means the service counts requests this budget cannot see (another client behind the same key): the
budget then waits out a whole window, the only wait that is certain to be enough, and the request is
retried, neither a pass nor a fail.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import math
import threading
import time
import urllib.parse

DEFAULT_REQUESTS = 30
DEFAULT_WINDOW = 60.0
DEFAULT_MARGIN = 1
DEFAULT_EXEMPT_PATHS = ("/healthz", "/readyz", "/healthz/backup", "/v1/payments/stripe/webhook", "/stripe/webhook")
DEFAULT_EXEMPT_METHODS = ("OPTIONS",)
# A send is logged when its answer arrived (the service logged it earlier), and a slot is taken this much after
# the logged send leaves the window: the service drops an entry only once it is strictly older than the window.
SLOT_GUARD = 0.05


def rate_limit_argument_spec():
    """The sub-options of a module's ``rate_limit`` option (documented in the http_client doc fragment)."""
    return dict(
        requests=dict(type="int", default=DEFAULT_REQUESTS),
        window=dict(type="float", default=DEFAULT_WINDOW),
        margin=dict(type="int", default=DEFAULT_MARGIN),
        exempt_paths=dict(type="list", elements="str", default=list(DEFAULT_EXEMPT_PATHS)),
        exempt_methods=dict(type="list", elements="str", default=list(DEFAULT_EXEMPT_METHODS)),
        ledger=dict(type="bool", default=True),
        ledger_dir=dict(type="path"),
        client=dict(type="str"),
        history=dict(type="list", elements="float", default=[]),
    )


def rate_limit_problem(options):
    """A message naming the bad sub-option, or None."""
    if options["requests"] < 0:
        return "rate_limit.requests must be 0 (no limit) or more, got %d" % options["requests"]
    if not (options["window"] > 0 and math.isfinite(options["window"])):
        return "rate_limit.window must be a number of seconds greater than 0, got %s" % options["window"]
    if options["margin"] < 0:
        return "rate_limit.margin must be 0 or more, got %d" % options["margin"]
    if options["requests"] and options["margin"] >= options["requests"]:
        return ("rate_limit.margin (%d) must be smaller than rate_limit.requests (%d): the budget would never let a "
                "request go" % (options["margin"], options["requests"]))
    for path in options["exempt_paths"]:
        if not path.startswith("/"):
            return "rate_limit.exempt_paths: %r is not a path (it must start with /)" % path
    return None


def origin_of(url):
    parts = urllib.parse.urlsplit(url or "")
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return "%s://%s:%s" % (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def _normal_path(path):
    return path.rstrip("/") or "/"


class BudgetExhausted(Exception):
    """The next slot of the budget comes after the deadline."""


class BudgetAbandoned(Exception):
    """The service stopped accepting connections while a request waited for its slot (see RequestBudget.abandon)."""


class RequestBudget:
    """The requests one module call may send to one service (``origin``) within its limit.

    ``history``: epoch times of sends still inside the window (from the ledger). ``clock`` is wall-clock time,
    because the ledger compares times of different processes; ``sleep`` and ``clock`` are injectable for tests.
    """

    def __init__(self, origin, requests=DEFAULT_REQUESTS, window=DEFAULT_WINDOW, margin=DEFAULT_MARGIN,
                 exempt_paths=DEFAULT_EXEMPT_PATHS, exempt_methods=DEFAULT_EXEMPT_METHODS, history=(),
                 clock=time.time, sleep=None):
        self.origin = origin
        self.requests = int(requests)
        self.window = float(window)
        self.margin = int(margin)
        self.capacity = max(1, self.requests - self.margin) if self.requests > 0 else 0
        self.exempt_paths = frozenset(_normal_path(path) for path in exempt_paths)
        self.exempt_methods = frozenset(method.upper() for method in exempt_methods)
        self._clock = clock
        # None: waits end early on abandon(); a given sleep (a test's fake clock) is used as it is.
        self._sleep = sleep
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.abandoned = None
        now = clock()
        self._log = sorted(float(t) for t in history if math.isfinite(float(t)) and t > now - self.window)
        self.history_in_window = len(self._log)
        self.sent = []
        self.counted = 0
        self.exempt = 0
        self.waited = 0.0        # the longest wait of one request (they wait side by side)
        self.waited_requests = 0
        self.throttled = 0
        self._blocked_until = 0.0

    @classmethod
    def from_options(cls, options, base_url, **kwargs):
        """From a module's ``rate_limit`` option (None: the defaults)."""
        options = options or {}
        return cls(origin_of(base_url),
                   requests=options.get("requests", DEFAULT_REQUESTS), window=options.get("window", DEFAULT_WINDOW),
                   margin=options.get("margin", DEFAULT_MARGIN),
                   exempt_paths=options.get("exempt_paths", DEFAULT_EXEMPT_PATHS),
                   exempt_methods=options.get("exempt_methods", DEFAULT_EXEMPT_METHODS),
                   history=options.get("history") or (), **kwargs)

    def counts(self, method, url):
        """Does the service count this request against the limit?"""
        if not self.capacity:
            return False
        if (method or "GET").upper() in self.exempt_methods:
            return False
        if origin_of(url) != self.origin:
            return False
        return _normal_path(urllib.parse.urlsplit(url).path) not in self.exempt_paths

    def _prune(self, now):
        cut = bisect.bisect_right(self._log, now - self.window)
        if cut:
            del self._log[:cut]

    def acquire(self, deadline=None):
        """Take a slot for one counted request; sleeps until it is free. -> (slot time, seconds waited).
        Raises BudgetExhausted when the slot comes after the deadline, BudgetAbandoned when the service stopped
        accepting connections (nothing is taken then)."""
        with self._lock:
            if self.abandoned is not None:
                raise BudgetAbandoned(self.abandoned)
            now = self._clock()
            self._prune(now)
            slot = max(now, self._blocked_until)
            if len(self._log) >= self.capacity:
                slot = max(slot, self._log[-self.capacity] + self.window + SLOT_GUARD)
            wait = slot - now
            if deadline is not None and wait > deadline.remaining():
                raise BudgetExhausted(
                    "the service's rate limit (%d requests in %g s, %d kept in reserve) has no room before the deadline: "
                    "the next request could go in %.1f s" % (self.requests, self.window, self.margin, wait))
            bisect.insort(self._log, slot)
            self.counted += 1
            if wait > 0:
                self.waited = max(self.waited, wait)
                self.waited_requests += 1
        if wait > 0:
            if self._sleep is None:
                self._wake.wait(wait)
            else:
                self._sleep(wait)
        if self.abandoned is not None:
            self.release(slot)
            raise BudgetAbandoned(self.abandoned)
        return slot, wait

    def abandon(self, reason):
        """The service refused every attempt of a request: waiting for a slot can only end the same way, so every
        request waiting in acquire() (and every later one) gives its slot back and raises BudgetAbandoned(reason)."""
        with self._lock:
            if self.abandoned is None:
                self.abandoned = reason
        self._wake.set()

    def settle(self, slot):
        """The request of ``slot`` was answered: log it at the answer's time (the service logged it by then)."""
        with self._lock:
            done = max(slot, self._clock())
            index = bisect.bisect_left(self._log, slot)
            if index < len(self._log) and self._log[index] == slot:
                del self._log[index]
            bisect.insort(self._log, done)
            self.sent.append(done)

    def release(self, slot):
        """The request of ``slot`` was never sent (a deadline before sending): give the slot back."""
        with self._lock:
            index = bisect.bisect_left(self._log, slot)
            if index < len(self._log) and self._log[index] == slot:
                del self._log[index]
            self.counted -= 1

    def note_exempt(self):
        with self._lock:
            self.exempt += 1

    def throttled_wait(self):
        """A 429 arrived anyway: the service counts requests this budget cannot see. Everything it counted before
        now has left its window one window from now, so no slot is given before then. -> seconds to wait."""
        with self._lock:
            now = self._clock()
            self._blocked_until = max(self._blocked_until, now + self.window + SLOT_GUARD)
            self.throttled += 1
            return self._blocked_until - now

    def report(self):
        """What the module returns as ``rate_limit`` (``sent`` is for the ledger)."""
        with self._lock:
            return {
                "origin": self.origin, "requests": self.requests, "window": self.window, "margin": self.margin,
                "budget": self.capacity, "history_in_window": self.history_in_window, "counted": self.counted,
                "exempt": self.exempt, "waited_s": round(self.waited, 3), "waited_requests": self.waited_requests,
                "throttled": self.throttled,
                "sent": sorted(round(t, 3) for t in self.sent),
            }
