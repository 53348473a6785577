"""The shared HTTP layer: retries, backoff, deadline (fake clock), concurrency, redaction, TLS
certificate parsing. Requests go to a real HTTP server on loopback whose answers the test scripts."""
from __future__ import annotations

import base64
import datetime
import subprocess
import threading
import time

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import http_client as hc
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import MASK

from scripted_http import FakeClock, answer

CANARY = "canary-Pw-9f3k2"


def fake_client(clock):
    return hc.HttpClient(clock=clock, sleep=clock.sleep, rand=lambda: 0.0)


# ------------------------------------------------------------------------------------------ policy

def test_backoff_is_exponential_and_capped():
    policy = hc.RetryPolicy(retries=6, backoff=0.5, backoff_max=3.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_shortens_by_at_most_the_fraction():
    policy = hc.RetryPolicy(backoff=2.0, backoff_max=100, jitter=0.5)
    assert policy.delay(1, rand=0.0) == 2.0
    assert policy.delay(1, rand=1.0) == 1.0
    assert 1.0 <= policy.delay(2, rand=0.3) * 0.5 <= 2.0


def test_retry_after_is_honoured_up_to_backoff_max():
    policy = hc.RetryPolicy(backoff=0.5, backoff_max=5.0, jitter=0.0)
    assert policy.delay(1, retry_after=3) == 3.0
    assert policy.delay(1, retry_after=60) == 5.0
    assert policy.delay(3, retry_after=0.1) == 2.0


# ------------------------------------------------------------------------------------------ retries

def test_429_is_retried_with_backoff_then_answer(server):
    server.script("/x", answer(429, {"title": "Too Many Requests"}), answer(429), answer(200, {"ok": True}))
    clock = FakeClock()
    outcome = fake_client(clock).request(hc.RequestSpec(server.base_url + "/x"),
                                         hc.RetryPolicy(retries=3, backoff=0.5, jitter=0.5),
                                         hc.Deadline(30, clock))
    assert outcome.response.status == 200
    assert outcome.response.json() == {"ok": True}
    assert [a.status for a in outcome.attempts] == [429, 429, 200]
    assert clock.sleeps == [0.5, 1.0]
    assert len(server.hits("/x")) == 3


def test_persistent_429_is_throttled_not_an_answer(server):
    server.script("/x", answer(429))
    clock = FakeClock()
    outcome = fake_client(clock).request(hc.RequestSpec(server.base_url + "/x"), hc.RetryPolicy(retries=2, backoff=1),
                                         hc.Deadline(60, clock))
    assert outcome.throttled
    assert len(outcome.attempts) == 3
    assert outcome.gave_up.startswith("retries exhausted")
    assert clock.sleeps == [1.0, 2.0]


def test_http_errors_are_answers_not_retried(server):
    server.script("/readyz", answer(503, {"ok": False, "checks": []}))
    server.script("/admin", answer(401, {"detail": "Admin access requires MFA"}, {"X-Admin-Auth-Fail-Reason": "mfa_required"}))
    client = hc.HttpClient()
    outcome = client.request(hc.RequestSpec(server.base_url + "/readyz"), hc.RetryPolicy(retries=3))
    assert outcome.response.status == 503 and len(outcome.attempts) == 1
    assert outcome.response.json() == {"ok": False, "checks": []}
    answer_401 = client.send(hc.RequestSpec(server.base_url + "/admin"))
    assert answer_401.status == 401
    assert answer_401.header("x-admin-auth-fail-reason") == "mfa_required"
    assert answer_401.content_type == "application/json"


def test_connection_refused_retries_until_retries_exhausted(closed_port):
    clock = FakeClock()
    url = "http://127.0.0.1:%d/healthz" % closed_port
    outcome = fake_client(clock).request(hc.RequestSpec(url), hc.RetryPolicy(retries=3, backoff=0.25), hc.Deadline(60, clock))
    assert outcome.response is None
    assert outcome.error.kind == "refused"
    assert len(outcome.attempts) == 4
    assert clock.sleeps == [0.25, 0.5, 1.0]


def test_a_write_is_not_resent_after_an_ambiguous_failure(server):
    server.script("/v1/leads", answer(201, {"lead_id": "x"}, delay=1.0))
    post = hc.RequestSpec(server.base_url + "/v1/leads", method="POST", body="{}", timeout=0.2)
    outcome = hc.HttpClient().request(post, hc.RetryPolicy(retries=3, backoff=0.05))
    assert outcome.error.kind == "timeout" and len(outcome.attempts) == 1
    assert outcome.gave_up.startswith("not retried: a write may have been processed")
    read = hc.RequestSpec(server.base_url + "/v1/leads", method="POST", body="{}", timeout=0.2, idempotent=True)
    assert len(hc.HttpClient().request(read, hc.RetryPolicy(retries=2, backoff=0.05)).attempts) == 3


def test_a_write_is_resent_when_it_certainly_was_not_sent(closed_port):
    clock = FakeClock()
    url = "http://127.0.0.1:%d/v1/leads" % closed_port
    outcome = fake_client(clock).request(hc.RequestSpec(url, method="POST", body="{}"), hc.RetryPolicy(retries=2))
    assert outcome.error.kind == "refused" and len(outcome.attempts) == 3


def test_deadline_stops_retries_before_it_passes(closed_port):
    clock = FakeClock()
    url = "http://127.0.0.1:%d/healthz" % closed_port
    outcome = fake_client(clock).request(hc.RequestSpec(url), hc.RetryPolicy(retries=10, backoff=1.0, backoff_max=100),
                                         hc.Deadline(5, clock))
    # waits 1 + 2 = 3 s; the next wait (4 s) would pass the 5 s deadline
    assert clock.sleeps == [1.0, 2.0]
    assert outcome.gave_up.startswith("deadline")
    assert clock() - 1000.0 <= 5.0


def test_expired_deadline_sends_nothing(server):
    server.script("/x", answer(200))
    clock = FakeClock()
    deadline = hc.Deadline(1, clock)
    clock.sleep(2)
    outcome = fake_client(clock).request(hc.RequestSpec(server.base_url + "/x"), hc.RetryPolicy(retries=2), deadline)
    assert outcome.error.kind == "deadline"
    assert server.hits("/x") == []


def test_read_timeout_is_a_timeout_error(server):
    server.script("/slow", answer(200, {"ok": True}, delay=1.5))
    started = time.monotonic()
    outcome = hc.HttpClient().request(hc.RequestSpec(server.base_url + "/slow", timeout=0.3), hc.RetryPolicy(retries=0))
    assert outcome.error.kind == "timeout"
    assert time.monotonic() - started < 1.4


def test_overall_deadline_bounds_a_slow_answer(server):
    server.script("/slow", answer(200, delay=2.0))
    started = time.monotonic()
    outcome = hc.HttpClient().request(hc.RequestSpec(server.base_url + "/slow", timeout=10), hc.RetryPolicy(retries=5),
                                      hc.Deadline(0.5))
    assert outcome.response is None
    assert time.monotonic() - started < 1.5


def test_redirects_follow_setting_is_per_request_under_concurrency(server):
    server.script("/old", answer(301, b"", {"Location": server.base_url + "/new"}))
    server.script("/new", answer(200, {"here": True}))
    client = hc.HttpClient()
    specs = [hc.RequestSpec(server.base_url + "/old", follow_redirects="none" if i % 2 else "all") for i in range(24)]
    results = hc.run_concurrently(lambda s: client.send(s).status, specs, 8, lambda s, e: repr(e))
    assert results == [200 if i % 2 == 0 else 301 for i in range(24)]


def test_unfollowed_redirect_reports_the_request_url_and_location(server):
    server.script("/", answer(308, b"", {"Location": "https://example.test/"}))
    response = hc.HttpClient().send(hc.RequestSpec(server.base_url + "/", follow_redirects="none"))
    assert response.status == 308
    assert response.url == server.base_url + "/"
    assert response.header("Location") == "https://example.test/"


def test_body_is_capped(server):
    server.script("/big", answer(200, b"x" * 5000, content_type="text/plain"))
    response = hc.HttpClient().send(hc.RequestSpec(server.base_url + "/big", max_body_bytes=1000))
    assert response.truncated and len(response.body) == 1000


def test_non_json_body_sets_json_error(server):
    server.script("/csv", answer(200, "range_start,2026-01-01\n", content_type="text/csv; charset=utf-8"))
    response = hc.HttpClient().send(hc.RequestSpec(server.base_url + "/csv"))
    assert response.json() is None
    assert "not JSON" in response.json_error
    assert response.content_type == "text/csv"


def test_request_body_and_headers_are_sent(server):
    server.script("/v1/estimate", answer(200, {"total_before_tax": 157.5}))
    hc.HttpClient().send(hc.RequestSpec(server.base_url + "/v1/estimate", method="POST", body='{"beds": 2}',
                                        headers={"Content-Type": "application/json", "X-Auth-MFA": "true"}))
    hit = server.hits("/v1/estimate")[0]
    headers = dict((key.lower(), value) for key, value in hit["headers"].items())
    assert hit["method"] == "POST" and hit["body"] == b'{"beds": 2}'
    assert headers["x-auth-mfa"] == "true"
    assert headers["user-agent"].startswith("cleanwithsnapshot.release")


# ------------------------------------------------------------------------------------------ concurrency

def test_run_concurrently_bounds_in_flight_requests_and_keeps_order(server):
    server.script("/slow", answer(200, {"ok": True}, delay=0.2))
    client = hc.HttpClient()
    specs = [hc.RequestSpec(server.base_url + "/slow") for _index in range(9)]
    started = time.monotonic()
    results = hc.run_concurrently(lambda s: client.send(s).status, specs, 3, lambda s, e: None)
    elapsed = time.monotonic() - started
    assert results == [200] * 9
    assert server.max_in_flight == 3
    assert 0.55 < elapsed < 3.0


def test_run_concurrently_turns_exceptions_into_results():
    def boom(item):
        if item == 2:
            raise RuntimeError("bug with %s" % CANARY)
        return item
    results = hc.run_concurrently(boom, [1, 2, 3], 2, lambda item, exc: ("error", item, type(exc).__name__))
    assert results == [1, ("error", 2, "RuntimeError"), 3]


# ------------------------------------------------------------------------------------------ redaction

def test_secrets_mask_basic_auth_in_every_form():
    secrets = hc.Secrets()
    secrets.add_basic("ops-admin", CANARY)
    header = "Basic " + base64.b64encode(("ops-admin:%s" % CANARY).encode()).decode()
    text = "sent %s with %s and %s" % (header, CANARY, header.split()[1])
    masked = secrets.text(text)
    assert CANARY not in masked and header.split()[1] not in masked
    assert masked.count(MASK) >= 2


def test_secrets_from_headers_urls_and_query():
    secrets = hc.Secrets()
    secrets.add_headers({"Authorization": "Bearer %s" % CANARY, "X-Auth-MFA": "true", "Cookie": "s=%s" % CANARY})
    secrets.add_url("https://user:%s@api.example.com/x?token=%s2&limit=1" % (CANARY, CANARY))
    assert "true" not in secrets.values
    record = {"evidence": {"url": "https://user:%s@api.example.com/x?token=%s2&limit=1" % (CANARY, CANARY),
                           "note": "got %s" % CANARY, "headers": {"Authorization": "Bearer x"}}}
    masked = secrets.value(record)
    assert CANARY not in repr(masked)
    assert masked["evidence"]["url"] == "https://user:%s@api.example.com/x?token=%s&limit=1" % (MASK, MASK)
    assert masked["evidence"]["headers"]["Authorization"] == MASK


def test_safe_url_and_safe_headers():
    assert hc.safe_url("http://u:p4ss@h:8000/a?api_key=zz&b=1") == "http://u:%s@h:8000/a?api_key=%s&b=1" % (MASK, MASK)
    assert hc.safe_url("http://h/a?limit=1") == "http://h/a?limit=1"
    assert hc.safe_headers({"Authorization": "Basic x", "X-Auth-MFA": "true"}) == {"Authorization": MASK, "X-Auth-MFA": "true"}


def test_transport_error_messages_carry_no_credentials(closed_port):
    url = "http://ops:%s@127.0.0.1:%d/x" % (CANARY, closed_port)
    secrets = hc.Secrets()
    secrets.add_url(url)
    outcome = hc.HttpClient().request(hc.RequestSpec(url), hc.RetryPolicy(retries=0))
    assert CANARY not in secrets.text("%s %s" % (outcome.error.message, url))


# ------------------------------------------------------------------------------------------ input checks

@pytest.mark.parametrize("params, needle", [
    ({"timeout": -1}, "timeout must be greater than 0"),
    ({"timeout": 0}, "timeout must be greater than 0"),
    ({"deadline": 0}, "deadline must be greater than 0"),
    ({"connect_timeout": -2}, "connect_timeout"),
    ({"retries": -1}, "retries must be 0 or more"),
    ({"concurrency": 0}, "concurrency must be 1 or more"),
    ({"client_key": "/k.pem"}, "client_key needs client_cert"),
    ({"base_url": "ftp://host/"}, "base_url: 'ftp://host/' is not an http:// or https:// URL"),
    ({"base_url": "http://"}, "base_url: 'http://' has no host"),
    ({"base_url": "http://h:99999/"}, "base_url"),
    ({"base_url": "http://u:%s@:80/" % CANARY}, "base_url"),
])
def test_http_params_errors_name_the_option(params, needle):
    base = {"timeout": 10, "deadline": 60, "retries": 3, "backoff": 0.5, "backoff_max": 10, "concurrency": 8}
    base.update(params)
    message = hc.http_params_error(base)
    assert message and needle in message
    assert CANARY not in message


def test_join_url():
    assert hc.join_url("http://h:1/", "/healthz") == "http://h:1/healthz"
    assert hc.join_url("http://h:1/api", "v1/x?a=1") == "http://h:1/api/v1/x?a=1"
    assert hc.join_url("http://h:1", "https://other/") == "https://other/"


# ------------------------------------------------------------------------------------------ TLS parsing

def _make_cert(tmp_path, cn, days, sans):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", str(days), "-subj", "/CN=%s" % cn, "-addext", "subjectAltName=%s" % sans],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(crt), "-outform", "DER"], check=True, capture_output=True).stdout
    return der


def test_parse_certificate_reads_validity_names_and_self_issued(tmp_path):
    der = _make_cert(tmp_path, "api.example.test", 30, "DNS:api.example.test,DNS:*.example.test,IP:127.0.0.1")
    cert = hc.parse_certificate(der)
    assert cert["subject_cn"] == "api.example.test"
    assert cert["issuer_cn"] == "api.example.test"
    assert cert["self_issued"] is True
    assert cert["subject_alt_names"] == ["api.example.test", "*.example.test", "127.0.0.1"]
    days = (cert["not_after"] - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400
    assert 29 < days <= 30


def test_hostname_matching():
    assert hc.hostname_matches("api.example.test", ["api.example.test"])
    assert hc.hostname_matches("a.example.test", ["*.example.test"])
    assert not hc.hostname_matches("a.b.example.test", ["*.example.test"])
    assert not hc.hostname_matches("other.test", ["api.example.test"])


def test_inspect_tls_on_a_plain_http_port_is_a_transport_error(server):
    with pytest.raises(hc.TransportError) as raised:
        hc.inspect_tls("127.0.0.1", server.port, timeout=2)
    assert raised.value.kind in ("tls", "reset", "protocol", "network")


def test_inspect_tls_refused(closed_port):
    with pytest.raises(hc.TransportError) as raised:
        hc.inspect_tls("127.0.0.1", closed_port, timeout=2)
    assert raised.value.kind == "refused"


def test_response_header_lookup_joins_repeated_headers():
    response = hc.Response(200, "OK", [("Vary", "Origin"), ("vary", "Accept")], b"{}", "http://h/", 1.0)
    assert response.header("VARY") == "Origin, Accept"
    assert response.header("missing") is None


def test_thread_safe_secrets():
    secrets = hc.Secrets()
    threads = [threading.Thread(target=secrets.add, args=("secret-%d" % i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(secrets.values) == 50
