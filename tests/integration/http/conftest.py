"""Fixtures of the HTTP check integration tests: certificates made with the openssl CLI, TLS servers
(ssl-wrapped http.server on loopback), and a second reference stack with the real service's rate
limit (30 requests per minute). ``ref_stack``/``healthy_stack`` come from tests/harness/refstack_fixtures.py."""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from refstack import started_stack


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def _leaf(cwd, name, ca, days, sans, usage="serverAuth", cn=None):
    """A key and a certificate for ``name`` signed by ``ca`` (a (cert, key) pair of file names)."""
    ext = os.path.join(cwd, name + ".ext")
    with open(ext, "w", encoding="utf-8") as handle:
        handle.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                     "extendedKeyUsage=%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n" % usage)
        if sans:
            handle.write("subjectAltName=%s\n" % sans)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
             "-subj", "/CN=%s" % (cn or name), cwd=cwd)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
             "-out", name + ".pem", "-days", str(days), "-sha256", "-extfile", ext, cwd=cwd)
    return os.path.join(cwd, name + ".pem"), os.path.join(cwd, name + ".key")


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory):
    """A CA; server certificates valid via the CA, for the wrong host, expiring in 3 days; a self-signed
    server certificate; a client certificate for mutual TLS."""
    if not shutil.which("openssl"):
        pytest.fail("the openssl CLI is required for the TLS probe tests")
    cwd = str(tmp_path_factory.mktemp("tls"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
             "-subj", "/CN=Release Gate Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)
    ca = ("ca.pem", "ca.key")
    material = {"ca": os.path.join(cwd, "ca.pem")}
    material["valid"] = _leaf(cwd, "valid", ca, 90, "DNS:localhost,IP:127.0.0.1", cn="localhost")
    material["wrong_host"] = _leaf(cwd, "wronghost", ca, 90, "DNS:other.example.test", cn="other.example.test")
    material["expiring"] = _leaf(cwd, "expiring", ca, 3, "DNS:localhost,IP:127.0.0.1", cn="localhost")
    material["client"] = _leaf(cwd, "client", ca, 30, None, usage="clientAuth", cn="release-gate")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "self.key", "-out", "self.pem", "-days", "90",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", cwd=cwd)
    material["self_signed"] = (os.path.join(cwd, "self.pem"), os.path.join(cwd, "self.key"))
    return material


class _QuietTLSServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    tls_context = None

    def get_request(self):
        sock, addr = self.socket.accept()
        # The handshake runs in the handler thread; a client that rejects the certificate only ends that thread.
        return self.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        pass


def _handler(status, headers, body):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            payload = body.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
    return Handler


class TLSServers:
    """Starts TLS servers on 127.0.0.1 and stops them all at the end of the test."""

    def __init__(self):
        self.servers = []

    def start(self, cert, status=200, headers=None, body='{"status": "ok"}', client_ca=None):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert[0], cert[1])
        if client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        server = _QuietTLSServer(("127.0.0.1", 0), _handler(status, headers or {}, body))
        server.tls_context = context
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self.servers.append(server)
        return "https://127.0.0.1:%d" % server.server_address[1]

    def stop(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture()
def tls_servers():
    servers = TLSServers()
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def throttled_stack(pg_server):
    """A second reference stack that answers 429 from the 31st request per minute and client, as the
    real service does. Tests pick a fresh client address with X-Forwarded-For (127.0.0.1 is a trusted
    proxy there), so they do not share one budget."""
    with started_stack(pg_server, "cwsrl_%d" % os.getpid(), rate_limit=30) as stack:
        yield stack
