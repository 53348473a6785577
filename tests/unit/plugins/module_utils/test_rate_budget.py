"""The request budget of a rate-limited service (module_utils/rate_budget.py): a fake clock for the window
arithmetic, and a real HTTP server on loopback that limits like the real service (a sliding-window log of 30
requests a minute per client, 429s not logged) for the HTTP layer's use of it."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import HttpClient, RequestSpec
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline, RetryPolicy
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import rate_budget as rb

from scripted_http import FakeClock, ScriptedServer, answer

ORIGIN = "http://127.0.0.1:8000"


def budget(clock, **kwargs):
    kwargs.setdefault("requests", 5)
    kwargs.setdefault("margin", 0)
    return rb.RequestBudget(ORIGIN, clock=clock, sleep=clock.sleep, **kwargs)


def take(b, count, deadline=None):
    waits = []
    for _index in range(count):
        slot, wait = b.acquire(deadline)
        b.settle(slot)
        waits.append(round(wait, 3))
    return waits


def test_full_speed_up_to_the_budget_then_only_until_the_oldest_leaves():
    clock = FakeClock()
    b = budget(clock, requests=5, margin=1)
    assert b.capacity == 4
    assert take(b, 4) == [0, 0, 0, 0]
    clock.sleep(10)
    # The fifth waits for the first send to leave the window (60 s after it, plus the guard), no longer.
    assert take(b, 1) == [pytest.approx(50.0 + rb.SLOT_GUARD)]
    assert take(b, 3) == [0, 0, 0]  # sent together with the first: their slots are free now too
    assert b.counted == 8 and b.waited == pytest.approx(50.0 + rb.SLOT_GUARD) and b.waited_requests == 1


def test_history_from_earlier_runs_counts_against_the_budget():
    clock = FakeClock(start=10000.0)
    history = [clock() - 50.0, clock() - 20.0, clock() - 5.0, clock() - 61.0]  # the last is outside the window
    b = budget(clock, requests=4, history=history)
    assert b.history_in_window == 3
    assert take(b, 1) == [0]
    # Full: the next waits until the send of 50 s ago leaves, 10 s from now.
    assert take(b, 1) == [pytest.approx(10.0 + rb.SLOT_GUARD)]
    assert b.report()["history_in_window"] == 3 and len(b.report()["sent"]) == 2


def test_a_slot_after_the_deadline_is_refused_and_nothing_is_taken():
    clock = FakeClock()
    b = budget(clock, requests=2)
    take(b, 2)
    with pytest.raises(rb.BudgetExhausted) as raised:
        b.acquire(Deadline(30, clock))
    assert "next request could go in 60.0 s" in str(raised.value)
    assert b.counted == 2 and clock.sleeps == []


def test_exempt_paths_methods_and_other_origins_are_not_counted():
    clock = FakeClock()
    b = budget(clock)
    assert b.counts("GET", ORIGIN + "/v1/admin/profile")
    assert b.counts("POST", ORIGIN + "/v1/estimate")
    assert b.counts("GET", ORIGIN + "/metrics") and b.counts("GET", ORIGIN + "/openapi.json")
    for path in ("/healthz", "/readyz", "/healthz/backup", "/healthz/", "/stripe/webhook", "/v1/payments/stripe/webhook"):
        assert not b.counts("GET", ORIGIN + path), path
    assert not b.counts("OPTIONS", ORIGIN + "/v1/estimate")
    assert not b.counts("GET", "http://127.0.0.1:8001/v1/estimate")
    assert not rb.RequestBudget(ORIGIN, requests=0).counts("GET", ORIGIN + "/v1/estimate")


def test_a_429_blocks_the_budget_for_a_whole_window():
    clock = FakeClock()
    b = budget(clock)
    take(b, 1)
    assert b.throttled_wait() == pytest.approx(60.0 + rb.SLOT_GUARD)
    # Every other request waits too: the service counts requests the budget cannot see.
    assert take(b, 1) == [pytest.approx(60.0 + rb.SLOT_GUARD)]
    assert b.throttled == 1


def test_released_slots_are_given_back():
    clock = FakeClock()
    b = budget(clock, requests=2)
    slot, _wait = b.acquire()
    b.release(slot)
    assert take(b, 2) == [0, 0] and b.counted == 2


@pytest.mark.parametrize("options, words", [
    ({"requests": -1}, "rate_limit.requests"),
    ({"window": 0}, "rate_limit.window"),
    ({"margin": -1}, "rate_limit.margin"),
    ({"requests": 3, "margin": 3}, "must be smaller than rate_limit.requests"),
    ({"exempt_paths": ["healthz"]}, "rate_limit.exempt_paths"),
])
def test_bad_options_are_named(options, words):
    spec = rb.rate_limit_argument_spec()
    merged = dict((key, value["default"]) for key, value in spec.items() if "default" in value)
    merged.update(options)
    assert words in rb.rate_limit_problem(merged)


# ------------------------------------------------------------------------------------------ over HTTP

class SlidingWindow:
    """The real service's limiter: at most ``limit`` logged requests in any ``window`` seconds of ``clock``, a
    refused request not logged, the health paths exempt."""

    def __init__(self, clock, limit=30, window=60.0):
        self.clock, self.limit, self.window = clock, limit, window
        self.logged = []
        self.refused = 0
        self._lock = threading.Lock()

    def decide(self, path):
        if path.split("?", 1)[0] in ("/healthz", "/readyz", "/healthz/backup"):
            return True
        with self._lock:
            now = self.clock()
            self.logged = [t for t in self.logged if t > now - self.window]
            if len(self.logged) >= self.limit:
                self.refused += 1
                return False
            self.logged.append(now)
            return True

    def answer(self, inner):
        def respond(handler):
            if self.decide(handler.path):
                return inner
            return answer(429, {"title": "Too Many Requests", "status": 429}, content_type="application/problem+json")
        return respond


def test_the_http_layer_spends_the_budget_and_never_draws_a_429():
    clock = FakeClock()
    limiter = SlidingWindow(clock)
    with ScriptedServer() as server:
        server.script("/v1/admin/profile", limiter.answer(answer(200, {"role": "viewer"})))
        server.script("/healthz", limiter.answer(answer(200, {"status": "ok"})))
        b = rb.RequestBudget(rb.origin_of(server.base_url), requests=30, margin=1, clock=clock, sleep=clock.sleep)
        client = HttpClient(clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
        statuses = [client.request(RequestSpec(server.base_url + "/v1/admin/profile"), RetryPolicy(retries=0),
                                   budget=b).response.status for _index in range(60)]
        client.request(RequestSpec(server.base_url + "/healthz"), budget=b)
    assert statuses == [200] * 60 and limiter.refused == 0
    assert b.counted == 60 and b.exempt == 1
    # Past the first 29 the 30th waits a window, and so does the 59th: the longest wait is one window.
    assert b.waited == pytest.approx(60.0 + rb.SLOT_GUARD) and b.waited_requests == 2
    assert len(b.report()["sent"]) == 60


def test_a_429_from_a_foreign_client_is_waited_out_not_counted_as_an_attempt():
    clock = FakeClock()
    limiter = SlidingWindow(clock, limit=3)
    with ScriptedServer() as server:
        server.script("/v1/estimate", limiter.answer(answer(200, {"total_before_tax": 157.5})))
        for _index in range(3):  # another client behind the same key fills the window
            limiter.decide("/v1/estimate")
        b = rb.RequestBudget(rb.origin_of(server.base_url), requests=3, margin=0, clock=clock, sleep=clock.sleep)
        client = HttpClient(clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
        outcome = client.request(RequestSpec(server.base_url + "/v1/estimate"), RetryPolicy(retries=0),
                                 Deadline(200, clock), budget=b)
    assert outcome.response.status == 200
    assert [a.status for a in outcome.attempts] == [429, 200]
    assert clock.sleeps == [pytest.approx(60.0 + rb.SLOT_GUARD)]
    assert b.throttled == 1 and b.counted == 1 and len(b.report()["sent"]) == 1


def test_a_429_that_cannot_be_waited_out_before_the_deadline_gives_up_saying_why():
    clock = FakeClock()
    limiter = SlidingWindow(clock, limit=1)
    with ScriptedServer() as server:
        server.script("/v1/estimate", limiter.answer(answer(200, {})))
        limiter.decide("/v1/estimate")
        b = rb.RequestBudget(rb.origin_of(server.base_url), requests=1, margin=0, clock=clock, sleep=clock.sleep)
        outcome = HttpClient(clock=clock, sleep=clock.sleep).request(
            RequestSpec(server.base_url + "/v1/estimate"), RetryPolicy(retries=3), Deadline(30, clock), budget=b)
    assert outcome.response.status == 429
    assert "another client shares the service's rate-limit key" in outcome.gave_up


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_requests_waiting_for_a_slot_stop_waiting_once_the_service_refuses_connections():
    # An earlier run filled the window (the ledger's history), then the service went down: the exempt liveness
    # request is refused at once, and the counted requests waiting a window for their slots must not wait it out.
    base_url = "http://127.0.0.1:%d" % _closed_port()
    b = rb.RequestBudget(rb.origin_of(base_url), requests=2, margin=0, history=[time.time(), time.time()])
    client = HttpClient(fail_fast=True, rand=lambda: 0.0)
    waiting = {}

    def counted_request():
        waiting["outcome"] = client.request(RequestSpec(base_url + "/v1/admin/profile"), RetryPolicy(retries=0),
                                            Deadline(120), budget=b)

    thread = threading.Thread(target=counted_request)
    thread.start()
    time.sleep(0.2)  # the counted request is now waiting in acquire()
    liveness = client.request(RequestSpec(base_url + "/healthz"), RetryPolicy(retries=1), Deadline(120), budget=b)
    thread.join(10)
    assert not thread.is_alive()  # the refused liveness probe ended the counted request's wait (Deadline 120)
    assert liveness.error.kind == "refused" and b.abandoned
    outcome = waiting["outcome"]
    assert outcome.response is None and outcome.error.kind == "refused"
    assert "not sent" in outcome.gave_up and outcome.attempts == []
    # The slot went back; a later request to the same origin is not sent and does not wait either.
    assert b.counted == 0
    later = client.request(RequestSpec(base_url + "/v1/estimate", method="POST"), budget=b, deadline=Deadline(120))
    assert later.response is None and "not sent" in later.gave_up


def test_without_fail_fast_a_refused_request_does_not_abandon_the_budget():
    base_url = "http://127.0.0.1:%d" % _closed_port()
    b = rb.RequestBudget(rb.origin_of(base_url), requests=2, margin=0)
    outcome = HttpClient(rand=lambda: 0.0).request(RequestSpec(base_url + "/healthz"), RetryPolicy(retries=0), budget=b)
    assert outcome.error.kind == "refused" and b.abandoned is None
