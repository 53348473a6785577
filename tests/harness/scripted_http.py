"""A real HTTP server on loopback whose answers a test scripts: per path a list of answers consumed in
order (the last one repeats). Used by the HTTP layer's unit tests; the integration tests use the
reference service instead."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def answer(status=200, body=None, headers=None, delay=0.0, content_type="application/json"):
    """One scripted answer. ``body`` may be a dict/list (sent as JSON), str or bytes."""
    if isinstance(body, (dict, list)):
        payload = json.dumps(body).encode()
    elif isinstance(body, str):
        payload = body.encode()
    else:
        payload = body or b""
    return {"status": status, "body": payload, "headers": dict(headers or {}), "delay": delay,
            "content_type": content_type}


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many concurrent connects must not be dropped by a short listen backlog


class ScriptedServer:
    def __init__(self):
        self.routes = {}
        self.requests = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with owner._lock:
                    owner.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                           "body": body})
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                    script = owner.routes.get(self.path.split("?", 1)[0]) or [answer(404, {"detail": "Not Found"})]
                    item = script.pop(0) if len(script) > 1 else script[0]
                try:
                    if callable(item):
                        item = item(self)
                    if item["delay"]:
                        time.sleep(item["delay"])
                finally:
                    # Counted out before the answer is sent: once a client has its answer, its next
                    # request cannot overlap this one in the count.
                    with owner._lock:
                        owner.in_flight -= 1
                self.send_response(item["status"])
                for name, value in item["headers"].items():
                    self.send_header(name, value)
                self.send_header("Content-Type", item["content_type"])
                self.send_header("Content-Length", str(len(item["body"])))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(item["body"])

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = "http://127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def script(self, path, *answers):
        with self._lock:
            self.routes[path] = list(answers)
        return self

    def hits(self, path=None, method=None):
        return [r for r in self.requests if (path is None or r["path"].split("?", 1)[0] == path)
                and (method is None or r["method"] == method)]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class FakeClock:
    """A monotonic clock that only moves when sleep() is called (and optionally per reading)."""

    def __init__(self, start=1000.0):
        self.now = start
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 6))
        self.now += seconds
