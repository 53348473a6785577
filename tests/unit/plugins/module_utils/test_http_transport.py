"""The HTTP transport: retries, backoff, deadline (fake clock), redirects, bodies, concurrency. Requests go to a real
HTTP server on loopback whose answers the test scripts."""
from __future__ import annotations

import contextlib
import socket

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import HttpClient, RequestSpec, Response, run_concurrently
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import Secrets
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline, RetryPolicy

from scripted_http import FakeClock, answer

CANARY = "canary-Pw-9f3k2"


def fake_client(clock):
    return HttpClient(clock=clock, sleep=clock.sleep, rand=lambda: 0.0)


def test_429_is_retried_with_backoff_then_answer(server):
    server.script("/x", answer(429, {"title": "Too Many Requests"}), answer(429), answer(200, {"ok": True}))
    clock = FakeClock()
    outcome = fake_client(clock).request(RequestSpec(server.base_url + "/x"),
                                         RetryPolicy(retries=3, backoff=0.5, jitter=0.5),
                                         Deadline(30, clock))
    assert outcome.response.status == 200
    assert outcome.response.json() == {"ok": True}
    assert [a.status for a in outcome.attempts] == [429, 429, 200]
    assert clock.sleeps == [0.5, 1.0]
    assert len(server.hits("/x")) == 3


def test_persistent_429_is_throttled_not_an_answer(server):
    server.script("/x", answer(429))
    clock = FakeClock()
    outcome = fake_client(clock).request(RequestSpec(server.base_url + "/x"), RetryPolicy(retries=2, backoff=1),
                                         Deadline(60, clock))
    assert outcome.throttled
    assert len(outcome.attempts) == 3
    assert outcome.gave_up.startswith("retries exhausted")
    assert clock.sleeps == [1.0, 2.0]


def test_http_errors_are_answers_not_retried(server):
    server.script("/readyz", answer(503, {"ok": False, "checks": []}))
    server.script("/admin", answer(401, {"detail": "Admin access requires MFA"}, {"X-Admin-Auth-Fail-Reason": "mfa_required"}))
    client = HttpClient()
    outcome = client.request(RequestSpec(server.base_url + "/readyz"), RetryPolicy(retries=3))
    assert outcome.response.status == 503 and len(outcome.attempts) == 1
    assert outcome.response.json() == {"ok": False, "checks": []}
    answer_401 = client.send(RequestSpec(server.base_url + "/admin"))
    assert answer_401.status == 401
    assert answer_401.header("x-admin-auth-fail-reason") == "mfa_required"
    assert answer_401.content_type == "application/json"


def test_connection_refused_retries_until_retries_exhausted(closed_port):
    clock = FakeClock()
    url = "http://127.0.0.1:%d/healthz" % closed_port
    outcome = fake_client(clock).request(RequestSpec(url), RetryPolicy(retries=3, backoff=0.25), Deadline(60, clock))
    assert outcome.response is None
    assert outcome.error.kind == "refused"
    assert len(outcome.attempts) == 4
    assert clock.sleeps == [0.25, 0.5, 1.0]


def test_a_write_is_not_resent_after_an_ambiguous_failure(server):
    server.script("/v1/leads", answer(201, {"lead_id": "x"}, delay=1.0))
    post = RequestSpec(server.base_url + "/v1/leads", method="POST", body="{}", timeout=0.2)
    outcome = HttpClient().request(post, RetryPolicy(retries=3, backoff=0.05))
    assert outcome.error.kind == "timeout" and len(outcome.attempts) == 1
    assert outcome.gave_up.startswith("not retried: a write may have been processed")
    read = RequestSpec(server.base_url + "/v1/leads", method="POST", body="{}", timeout=0.2, idempotent=True)
    assert len(HttpClient().request(read, RetryPolicy(retries=2, backoff=0.05)).attempts) == 3


def test_a_write_is_resent_when_it_certainly_was_not_sent(closed_port):
    clock = FakeClock()
    url = "http://127.0.0.1:%d/v1/leads" % closed_port
    outcome = fake_client(clock).request(RequestSpec(url, method="POST", body="{}"), RetryPolicy(retries=2))
    assert outcome.error.kind == "refused" and len(outcome.attempts) == 3


def test_deadline_stops_retries_before_it_passes(closed_port):
    clock = FakeClock()
    url = "http://127.0.0.1:%d/healthz" % closed_port
    outcome = fake_client(clock).request(RequestSpec(url), RetryPolicy(retries=10, backoff=1.0, backoff_max=100),
                                         Deadline(5, clock))
    # waits 1 + 2 = 3 s; the next wait (4 s) would pass the 5 s deadline
    assert clock.sleeps == [1.0, 2.0]
    assert outcome.gave_up.startswith("deadline")
    assert clock() - 1000.0 <= 5.0


def test_expired_deadline_sends_nothing(server):
    server.script("/x", answer(200))
    clock = FakeClock()
    deadline = Deadline(1, clock)
    clock.sleep(2)
    outcome = fake_client(clock).request(RequestSpec(server.base_url + "/x"), RetryPolicy(retries=2), deadline)
    assert outcome.error.kind == "deadline"
    assert server.hits("/x") == []


def test_read_timeout_is_a_timeout_error(server):
    server.script("/slow", answer(200, {"ok": True}, delay=1.5))
    outcome = HttpClient().request(RequestSpec(server.base_url + "/slow", timeout=0.3), RetryPolicy(retries=0))
    # Given up before the answer came: no response, a timeout, one request sent.
    assert outcome.response is None and outcome.error.kind == "timeout"
    assert len(server.hits("/slow")) == 1


def test_overall_deadline_bounds_a_slow_answer(server):
    server.script("/slow", answer(200, delay=2.0))
    outcome = HttpClient().request(RequestSpec(server.base_url + "/slow", timeout=10), RetryPolicy(retries=5),
                                   Deadline(0.5))
    # The answer comes after 2 s, well within the 10 s read timeout: a timeout means the deadline cut the read
    # short, and none of the 5 retries was sent after it.
    assert outcome.response is None and outcome.error.kind == "timeout"
    assert len(server.hits("/slow")) == 1


def test_redirects_follow_setting_is_per_request_under_concurrency(server):
    server.script("/old", answer(301, b"", {"Location": server.base_url + "/new"}))
    server.script("/new", answer(200, {"here": True}))
    client = HttpClient()
    specs = [RequestSpec(server.base_url + "/old", follow_redirects="none" if i % 2 else "all") for i in range(24)]
    results = run_concurrently(lambda s: client.send(s).status, specs, 8, lambda s, e: repr(e))
    assert results == [200 if i % 2 == 0 else 301 for i in range(24)]


def test_unfollowed_redirect_reports_the_request_url_and_location(server):
    server.script("/", answer(308, b"", {"Location": "https://example.test/"}))
    response = HttpClient().send(RequestSpec(server.base_url + "/", follow_redirects="none"))
    assert response.status == 308
    assert response.url == server.base_url + "/"
    assert response.header("Location") == "https://example.test/"


def test_body_is_capped(server):
    server.script("/big", answer(200, b"x" * 5000, content_type="text/plain"))
    response = HttpClient().send(RequestSpec(server.base_url + "/big", max_body_bytes=1000))
    assert response.truncated and len(response.body) == 1000


def test_non_json_body_sets_json_error(server):
    server.script("/csv", answer(200, "range_start,2026-01-01\n", content_type="text/csv; charset=utf-8"))
    response = HttpClient().send(RequestSpec(server.base_url + "/csv"))
    assert response.json() is None
    assert "not JSON" in response.json_error
    assert response.content_type == "text/csv"


def test_request_body_and_headers_are_sent(server):
    server.script("/v1/estimate", answer(200, {"total_before_tax": 157.5}))
    HttpClient().send(RequestSpec(server.base_url + "/v1/estimate", method="POST", body='{"beds": 2}',
                                  headers={"Content-Type": "application/json", "X-Auth-MFA": "true"}))
    hit = server.hits("/v1/estimate")[0]
    headers = dict((key.lower(), value) for key, value in hit["headers"].items())
    assert hit["method"] == "POST" and hit["body"] == b'{"beds": 2}'
    assert headers["x-auth-mfa"] == "true"
    assert headers["user-agent"].startswith("cleanwithsnapshot.release")


def test_run_concurrently_bounds_in_flight_requests_and_keeps_order(server):
    server.script("/slow", answer(200, {"ok": True}, delay=0.2))
    client = HttpClient()
    specs = [RequestSpec(server.base_url + "/slow") for _index in range(9)]
    results = run_concurrently(lambda s: client.send(s).status, specs, 3, lambda s, e: None)
    assert results == [200] * 9
    # Concurrent (3 at once, each answer 0.2 s long) and never more than the bound.
    assert server.max_in_flight == 3


def test_run_concurrently_turns_exceptions_into_results():
    def boom(item):
        if item == 2:
            raise RuntimeError("bug with %s" % CANARY)
        return item
    results = run_concurrently(boom, [1, 2, 3], 2, lambda item, exc: ("error", item, type(exc).__name__))
    assert results == [1, ("error", 2, "RuntimeError"), 3]


def test_transport_error_messages_carry_no_credentials(closed_port):
    url = "http://ops:%s@127.0.0.1:%d/x" % (CANARY, closed_port)
    secrets = Secrets()
    secrets.add_url(url)
    outcome = HttpClient().request(RequestSpec(url), RetryPolicy(retries=0))
    assert CANARY not in secrets.text("%s %s" % (outcome.error.message, url))


def test_response_header_lookup_joins_repeated_headers():
    response = Response(200, "OK", [("Vary", "Origin"), ("vary", "Accept")], b"{}", "http://h/", 1.0)
    assert response.header("VARY") == "Origin, Accept"
    assert response.header("missing") is None


def test_no_connection_is_a_connect_timeout_and_an_accepted_silent_one_a_timeout():
    # A listener that never accepts: with its backlog full, further connections get no answer at all (the kernel drops
    # their SYN): connect_timeout, safe to resend even a write. With room in the backlog, the kernel completes the
    # connection and nothing answers: timeout, the service's silence.
    full, silent = socket.socket(), socket.socket()
    fillers = []
    try:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        for dummy in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(full.getsockname())
            fillers.append(filler)
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        client = HttpClient()
        no_connection = client.request(RequestSpec("http://127.0.0.1:%d/" % full.getsockname()[1], method="POST",
                                                   timeout=0.5), RetryPolicy(retries=1, backoff=0), Deadline(30))
        assert no_connection.error.kind == "connect_timeout" and "timed out connecting" in no_connection.error.message
        assert len(no_connection.attempts) == 2  # a write that certainly did not arrive is resent
        no_answer = client.request(RequestSpec("http://127.0.0.1:%d/" % silent.getsockname()[1], method="POST",
                                               timeout=0.5), RetryPolicy(retries=1, backoff=0), Deadline(30))
        assert no_answer.error.kind == "timeout" and "the connection was accepted" in no_answer.error.message
        assert len(no_answer.attempts) == 1  # a write that may have arrived is not
    finally:
        for sock in fillers + [full, silent]:
            sock.close()


def test_a_halted_client_sends_nothing_more(server):
    server.script("/x", answer(200, {"ok": True}))
    client = HttpClient()
    client.halt("the precondition probe 'healthz' got no answer")
    outcome = client.request(RequestSpec(server.base_url + "/x"), RetryPolicy(), Deadline(30))
    assert outcome.response is None and outcome.attempts == []
    assert (outcome.error.kind, outcome.error.message) == ("not_run", "the precondition probe 'healthz' got no answer")
    assert server.hits("/x") == []
