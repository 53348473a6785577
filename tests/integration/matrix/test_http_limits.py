"""Two behaviours of the HTTP checks that the matrix and the benchmarks made necessary, against real HTTP servers
on loopback (readiness_probe run as Ansible runs it):

- one readiness_probe call runs its probes and the admin matrix together, yet never has more than ``concurrency``
  requests in flight (a fleet run exhausted the service's database pool when both thread pools sent at once);
- a service that refuses connections is reported after one retry cycle, not one per request (fail fast)."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.integration


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self):
        super().__init__(("127.0.0.1", 0), CountingHandler)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0


class CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self):
        server = self.server
        with server.lock:
            server.in_flight += 1
            server.requests += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            time.sleep(0.15)
        finally:
            # Counted out before the answer is sent, so a client's next request never overlaps it.
            with server.lock:
                server.in_flight -= 1
        status = 200 if self.headers.get("Authorization") else 401
        body = json.dumps({"status": "ok"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815


@pytest.fixture()
def counting_server():
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_probes_and_admin_matrix_share_the_concurrency_limit(module_runner, counting_server):
    base = "http://127.0.0.1:%d" % counting_server.server_address[1]
    probes = [{"name": "p%d" % i, "criterion": "smoke.docs", "path": "/p%d" % i, "status_code": [200, 401]} for i in range(8)]
    admin = {"roles": {"admin": {"username": "ops-admin", "password": "pw-%s" % ("x" * 12)}},
             "concurrency": 4,
             "endpoints": [{"name": "e%d" % i, "path": "/admin/e%d" % i, "expect": {"admin": 200}} for i in range(4)]}
    result = module_runner("readiness_probe", {"base_url": base, "probes": probes, "admin": admin, "concurrency": 3,
                                               "retries": 0})
    assert not result.get("failed"), result.get("msg")
    assert counting_server.requests == 8 + 4 * 3  # the probes, and anonymous + wrong password + admin per endpoint
    assert counting_server.max_in_flight <= 3, counting_server.max_in_flight
    assert counting_server.max_in_flight >= 2  # and they do run concurrently


def test_a_service_refusing_connections_is_reported_after_one_retry_cycle(module_runner, closed_port):
    port = closed_port  # a port with nothing listening
    probes = [{"name": "p%d" % i, "criterion": "health.liveness", "path": "/p%d" % i} for i in range(12)]
    result = module_runner("readiness_probe", {"base_url": "http://127.0.0.1:%d" % port, "probes": probes,
                                               "concurrency": 2, "retries": 3, "backoff": 0.3, "deadline": 60})
    statuses = {record["status"] for record in result["records"]}
    assert statuses == {"error"}
    not_sent = [r for r in result["records"] if "not sent" in r["summary"]]
    # One retry cycle per concurrent slot, not one per probe: only the probes in flight when the first one had
    # been refused on every attempt were tried; every later one is not sent.
    assert len(not_sent) >= len(probes) - 2 * 2, [r["summary"] for r in result["records"]]
