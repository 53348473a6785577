"""Helpers of the fault matrix, the flake detector and the secret canaries: run a playbook of the collection
for real (``ansible-playbook <name> -i local`` from playbooks/, the local inventory reading a stack's variables
from CWS_LOCAL_STACK), edit a stack's env file, and a TLS front end that behaves like the reverse proxy of a
production deployment (TLS, HSTS, http:// redirected to https:// on the same port)."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from local_inventory import inventory_vars
from refstack import app_layout

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOKS = ROOT / "playbooks"
STATS_CALLBACK_DIR = ROOT / "tests" / "harness" / "callback_plugins"  # the one stats callback (stats_dump)
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
NOT_PASSING = ("fail", "inconclusive")
NO_GO = ("NO-GO", "NO-GO-INCONCLUSIVE")


class PlaybookRun:
    """One ansible-playbook run: exit code, output, the gate's report and the published custom stats."""

    def __init__(self, command, proc, artifacts, stats_file, elapsed, log_file=None, run_dir=None):
        self.command = command
        self.run_dir = Path(run_dir) if run_dir else None
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.elapsed = elapsed
        self.artifacts = Path(artifacts)
        report_file = self.artifacts / "gonogo.json"
        self.report = json.loads(report_file.read_text(encoding="utf-8")) if report_file.exists() else None
        self.stats = json.loads(Path(stats_file).read_text(encoding="utf-8")) if Path(stats_file).exists() else None
        self.log = Path(log_file).read_text(encoding="utf-8", errors="replace") if log_file and Path(log_file).exists() else ""

    @property
    def verdict(self):
        return (self.report or {}).get("verdict")

    @property
    def custom_stats(self):
        """What set_stats published (AWX stores ``stats.custom['_run']`` as the job's artifacts)."""
        return ((self.stats or {}).get("custom") or {}).get("_run", {})

    def not_passing(self):
        return {c["criterion"] for c in (self.report or {}).get("criteria", []) if c["outcome"] in NOT_PASSING}

    def outcomes(self):
        return {c["criterion"]: c["outcome"] for c in (self.report or {}).get("criteria", [])}

    def tail(self, size=4000):
        head = "rc=%s verdict=%s not passing=%s" % (self.rc, self.verdict, sorted(self.not_passing()))
        return "%s\n%s\n%s" % (head, self.stdout[-size:], self.stderr[-size // 2:])

    def artifact_texts(self):
        """Every file the run left in its artifacts directory, as text."""
        texts = {}
        if self.artifacts.is_dir():
            for path in sorted(self.artifacts.rglob("*")):
                if path.is_file():
                    texts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
        return texts


class PlaybookRunner:
    """Runs playbooks/<name> against a stack's inventory variables (a JSON file), each run with fresh
    artifacts and its own ANSIBLE_HOME / local temp, so runs never share state."""

    def __init__(self, workdir, vars_file):
        self.workdir = Path(workdir)
        self.vars_file = Path(vars_file)
        self.count = 0

    def run(self, playbook, *extra_args, env=None, timeout=900, verbosity=0, log=False):
        self.count += 1
        run_dir = self.workdir / ("run-%03d" % self.count)
        run_dir.mkdir(parents=True, exist_ok=True)
        artifacts = run_dir / "artifacts"
        stats_file = run_dir / "stats.json"
        log_file = run_dir / "ansible.log" if log else None
        run_env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
        run_env.update({
            "CWS_LOCAL_STACK": str(self.vars_file),
            "CWS_ARTIFACTS_DIR": str(artifacts),
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
            "ANSIBLE_CALLBACK_PLUGINS": str(STATS_CALLBACK_DIR),
            "ANSIBLE_CALLBACKS_ENABLED": "stats_dump",
            "STATS_DUMP_FILE": str(stats_file),
            "ANSIBLE_HOME": str(run_dir / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(run_dir / "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "HOME": str(run_dir),
        })
        if log_file:
            run_env["ANSIBLE_LOG_PATH"] = str(log_file)
        run_env.update(env or {})
        command = [str(ANSIBLE_PLAYBOOK), playbook, "-i", "local"] + [str(arg) for arg in extra_args]
        if verbosity:
            command.append("-" + "v" * verbosity)
        started = time.monotonic()
        proc = subprocess.run(command, cwd=str(PLAYBOOKS), env=run_env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        return PlaybookRun(command, proc, artifacts, stats_file, time.monotonic() - started, log_file, run_dir)


def write_private_json(path, data):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)


class MatrixContext:
    """One test's view of the matrix stack: run playbooks against it, inject faults, and undo them all."""

    def __init__(self, stack, workdir, tls_factory):
        self.stack = stack
        self.workdir = workdir
        self._tls_factory = tls_factory
        self._tls = None
        self.undo = []
        self.extra_vars = []
        self.env_guard = EnvFileGuard(stack.env_file)
        self.vars_file = os.path.join(str(workdir), "local-stack.json")
        write_private_json(self.vars_file, inventory_vars(stack.facts()))
        self.runner = PlaybookRunner(workdir, self.vars_file)

    @property
    def tls(self):
        if self._tls is None:
            self._tls = self._tls_factory()
        return self._tls

    def run(self, playbook, *extra_args, **kwargs):
        return self.runner.run(playbook, *(list(self.extra_vars) + list(extra_args)), **kwargs)

    def reset(self):
        """Undo what this test changed (its own changes first), then the stack's clear_faults(): no fault, fresh
        heartbeats and backup marker, the service up."""
        errors = []
        while self.undo:
            try:
                self.undo.pop()()
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(exc)
        self.extra_vars = []
        self.env_guard.restore()
        app_layout(self.stack)
        self.stack.clear_faults()
        # Each case is a new operator session on a freshly started service (the runs inside a case share the window).
        # Requests through a TLS front end reach the same service but are in the ledger under the front's origin,
        # which fresh_rate_window cannot see: after such a case the service is restarted in any case.
        self.stack.fresh_rate_window(force=self._tls is not None)
        if errors:
            raise errors[0]


# ---------------------------------------------------------------------------------------------- env file
def read_env_lines(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read().splitlines()


def edit_env_file(path, set_values=None, remove=()):
    """Set (or add) KEY=value lines and drop keys in the stack's env file, keeping every other line."""
    set_values = dict(set_values or {})
    lines, seen = [], set()
    for line in read_env_lines(path):
        key = line.partition("=")[0].strip()
        if line.strip().startswith("#") or "=" not in line:
            lines.append(line)
        elif key in remove:
            continue
        elif key in set_values:
            lines.append("%s=%s" % (key, set_values[key]))
            seen.add(key)
        else:
            lines.append(line)
    lines += ["%s=%s" % (key, value) for key, value in set_values.items() if key not in seen]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


class EnvFileGuard:
    """Keeps the original env file and puts it back (content and mode), whatever a case did to it."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as handle:
            self.original = handle.read()
        self.mode = os.stat(path).st_mode & 0o777

    def restore(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.original)
        os.chmod(self.path, self.mode)


# ---------------------------------------------------------------------------------------------- TLS
def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def _leaf(cwd, name, days):
    ext = os.path.join(cwd, name + ".ext")
    with open(ext, "w", encoding="utf-8") as handle:
        handle.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                     "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
                     "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
             "-subj", "/CN=localhost", cwd=cwd)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", name + ".pem", "-days", str(days), "-sha256", "-extfile", ext, cwd=cwd)
    return os.path.join(cwd, name + ".pem"), os.path.join(cwd, name + ".key")


def make_tls_material(cwd):
    """A private CA; a server certificate for localhost/127.0.0.1 valid 90 days and one expiring in 3 days,
    both signed by it; a self-signed server certificate."""
    if not shutil.which("openssl"):
        raise RuntimeError("the openssl CLI is required for the TLS cases")
    cwd = str(cwd)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
             "-subj", "/CN=Fault Matrix Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)
    material = {"ca": os.path.join(cwd, "ca.pem"), "valid": _leaf(cwd, "valid", 90), "expiring": _leaf(cwd, "expiring", 3)}
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "self.key", "-out", "self.pem", "-days", "90",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", cwd=cwd)
    material["self_signed"] = (os.path.join(cwd, "self.pem"), os.path.join(cwd, "self.key"))
    return material


HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _redirect(self):
        host = self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_address[1]
        body = b""
        self.send_response(308 if self.command not in ("GET", "HEAD") else 301)
        self.send_header("Location", "https://%s%s" % (host, self.path))
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.wfile.write(body)

    def _proxy(self):
        front = self.server.front
        if not isinstance(self.connection, ssl.SSLSocket):
            if front.redirect:
                self._redirect()
                return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS and k.lower() != "host"}
        headers["X-Forwarded-Proto"] = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        conn = http.client.HTTPConnection("127.0.0.1", front.backend_port, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            self.send_response(resp.status, resp.reason)
            for name, value in resp.getheaders():
                if name.lower() not in HOP_HEADERS and name.lower() != "content-length":
                    self.send_header(name, value)
            if front.hsts:
                self.send_header("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
        finally:
            conn.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _proxy  # noqa: N815


class _SniffingServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    front = None

    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            first = request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first == b"\x16":  # a TLS handshake
            try:
                request = self.front.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client rejected the certificate: that is the client's verdict to give
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        pass


class TLSFront:
    """A TLS front end on 127.0.0.1 for a reference service, like the production reverse proxy (Caddy):
    TLS with the given certificate, HSTS added, plain http:// on the same port redirected to https://.
    ``hsts``/``redirect`` off and other certificates are the TLS faults."""

    def __init__(self, backend_port, cert, hsts=True, redirect=True):
        self.backend_port = int(backend_port)
        self.hsts = hsts
        self.redirect = redirect
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert[0], cert[1])
        self.server = _SniffingServer(("127.0.0.1", 0), _FrontHandler)
        self.server.front = self
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
