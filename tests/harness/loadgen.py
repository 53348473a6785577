"""A bounded HTTP load generator for the monitoring tests (standard library only).

    load = LoadGenerator("http://127.0.0.1:8080", paths=("/healthz",), requests=400, duration=20, concurrency=4)
    load.start()
    ...                                   # Prometheus sees the traffic meanwhile
    load.join(timeout=30)                 # or load.stop()
    load.by_status      # Counter({200: 398, 500: 2})
    load.by_upstream    # Counter({"127.0.0.1:41001": 200, "127.0.0.1:41002": 200}) (X-Canary-Upstream, Caddy)

It always ends: after ``requests`` requests or ``duration`` seconds, whichever comes first (at least one of them
is set; both have hard upper bounds), or at ``stop()``. ``rate`` (requests per second, all workers together) paces
it; without it the workers send as fast as the answers come.

The default paths are the service's rate-limit exempt ones (/healthz, /readyz): every other path counts against
the real limit of 30 requests a minute per client, which the load must not be a reason to raise. Behind Caddy every
request is the same client for the service (Caddy sets X-Forwarded-For to the load generator's 127.0.0.1 address,
whatever ``headers`` says).
"""
from __future__ import annotations

import collections
import http.client
import itertools
import threading
import time
from urllib.parse import urlsplit

UPSTREAM_HEADER = "X-Canary-Upstream"
MAX_REQUESTS = 100000
MAX_DURATION = 600.0
DEFAULT_PATHS = ("/healthz",)
EXEMPT_PATHS = ("/healthz", "/readyz", "/healthz/backup")


class LoadGenerator:
    """GET requests over ``paths`` in turn from ``concurrency`` threads, each on a keep-alive connection."""

    def __init__(self, base_url, paths=DEFAULT_PATHS, requests=None, duration=None, concurrency=4, headers=None,
                 rate=None, timeout=10.0, method="GET", upstream_header=UPSTREAM_HEADER):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http(s) URL, got %r" % base_url)
        if requests is None and duration is None:
            raise ValueError("a load needs a bound: requests, duration or both")
        if requests is not None and not 0 < int(requests) <= MAX_REQUESTS:
            raise ValueError("requests must be in 1..%d" % MAX_REQUESTS)
        if duration is not None and not 0 < float(duration) <= MAX_DURATION:
            raise ValueError("duration must be in (0, %d] seconds" % MAX_DURATION)
        if not 1 <= int(concurrency) <= 64:
            raise ValueError("concurrency must be in 1..64")
        if rate is not None and float(rate) <= 0:
            raise ValueError("rate must be positive")
        if not paths:
            raise ValueError("paths must not be empty")
        self.base_url = base_url.rstrip("/")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self.paths = tuple(paths)
        self.requests = int(requests) if requests is not None else MAX_REQUESTS
        self.duration = float(duration) if duration is not None else MAX_DURATION
        self.concurrency = int(concurrency)
        self.headers = dict(headers or {})
        self.rate = float(rate) if rate is not None else None
        self.timeout = float(timeout)
        self.method = method
        self.upstream_header = upstream_header
        self.by_status = collections.Counter()       # HTTP status -> answers
        self.by_upstream = collections.Counter()     # X-Canary-Upstream value (None: header absent) -> answers
        self.by_path_status = collections.Counter()  # (path, status) -> answers
        self.errors = collections.Counter()          # exception class name -> requests without an answer
        self.latencies = []                          # seconds per answered request, in completion order
        self.started_at = None
        self.finished_at = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tickets = itertools.count()
        self._threads = []

    # ------------------------------------------------------------------ control
    def start(self):
        if self._threads:
            raise RuntimeError("a LoadGenerator runs once; make a new one")
        self.started_at = time.monotonic()
        self._threads = [threading.Thread(target=self._worker, name="loadgen-%d" % i, daemon=True)
                         for i in range(self.concurrency)]
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout=None):
        """Wait for the end (``timeout`` seconds at most); True when every worker has finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        done = not self.running()
        if done and self.finished_at is None and self.started_at is not None:
            self.finished_at = time.monotonic()
        return done

    def stop(self, timeout=None):
        """End now (the requests in flight finish, up to ``timeout``, by default the request timeout)."""
        self._stop.set()
        return self.join(self.timeout + 1 if timeout is None else timeout)

    def run(self, timeout=None):
        """start() and join(); returns summary()."""
        self.start()
        if not self.join(timeout if timeout is not None else self.duration + self.timeout + 5):
            self.stop()
        return self.summary()

    def running(self):
        return any(thread.is_alive() for thread in self._threads)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ results
    @property
    def sent(self):
        with self._lock:
            return sum(self.by_status.values()) + sum(self.errors.values())

    def summary(self):
        with self._lock:
            latencies = sorted(self.latencies)
            answered = sum(self.by_status.values())
            end = self.finished_at or time.monotonic()
            return {
                "sent": answered + sum(self.errors.values()), "answered": answered,
                "by_status": dict(self.by_status), "by_upstream": dict(self.by_upstream),
                "errors": dict(self.errors),
                "elapsed_s": round(end - self.started_at, 3) if self.started_at is not None else 0.0,
                "p50_s": _quantile(latencies, 0.5), "p95_s": _quantile(latencies, 0.95),
            }

    # ------------------------------------------------------------------ workers
    def _take_ticket(self):
        """The next request's number, or None once the load is over."""
        if self._stop.is_set() or time.monotonic() - self.started_at >= self.duration:
            return None
        ticket = next(self._tickets)  # itertools.count is atomic under the GIL
        return ticket if ticket < self.requests else None

    def _connection(self):
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout)

    def _worker(self):
        conn = None
        try:
            while True:
                ticket = self._take_ticket()
                if ticket is None:
                    return
                if self.rate is not None:
                    wait = self.started_at + ticket / self.rate - time.monotonic()
                    if wait > 0 and self._stop.wait(min(wait, max(0.0, self.started_at + self.duration - time.monotonic()))):
                        return
                    if time.monotonic() - self.started_at >= self.duration:
                        return
                path = self.paths[ticket % len(self.paths)]
                if conn is None:
                    conn = self._connection()
                began = time.monotonic()
                try:
                    conn.request(self.method, self._prefix + path, headers=self.headers)
                    resp = conn.getresponse()
                    resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    with self._lock:
                        self.errors[type(exc).__name__] += 1
                    conn.close()
                    conn = None
                    continue
                seconds = time.monotonic() - began
                with self._lock:
                    self.by_status[resp.status] += 1
                    self.by_path_status[(path, resp.status)] += 1
                    self.by_upstream[resp.getheader(self.upstream_header)] += 1
                    self.latencies.append(seconds)
                if resp.will_close:
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()
            with self._lock:
                if not any(t.is_alive() for t in self._threads if t is not threading.current_thread()):
                    self.finished_at = time.monotonic()


def _quantile(sorted_values, q):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return round(sorted_values[index], 4)
