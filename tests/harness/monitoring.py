"""Real monitoring daemons for the tests: Prometheus, Alertmanager and Caddy on 127.0.0.1, each with a workdir of
its own and free ports, started as child processes (no systemd), stopped by their own pid.

    with Alertmanager(tmp / "am") as am, \\
            Prometheus(tmp / "prom", [{"job": "api-canary", "url": canary_url, "token": token}],
                       rule_files=RULE_FILES, alertmanager_url=am.url, scrape_interval="3s") as prom, \\
            Caddy(tmp / "caddy", upstreams=[stable_hostport, canary_hostport]) as caddy:
        prom.wait_for_target_up("api-canary")
        ...

``start()`` waits until the readiness endpoint answers 200 (MonitoringError with the log's tail otherwise),
``stop()`` terminates the process (idempotent), and each class is a context manager. A missing binary raises
MonitoringError naming ``bash scripts/system_packages.sh ensure monitoring``. Versions this was written against:
the Debian packages prometheus 2.42, prometheus-alertmanager 0.25, caddy 2.6.2.

Caddy 2.6.2, as checked on this machine (caddy validate, then requests through a running instance):

- The Caddyfile below validates and runs; ``bind 127.0.0.1`` is added to the site, since a site address alone
  (``http://127.0.0.1:PORT``) makes Caddy listen on every interface (":PORT" plus a host matcher). The host matcher
  stays: send requests to ``Caddy.url`` (127.0.0.1), a ``localhost`` Host gets Caddy's empty 200.
- The same upstream listed several times in ``to`` is accepted (``caddy adapt`` keeps every entry) and counts once
  per listing: with ``lb_policy round_robin`` the answers split exactly by the listing (``to A A B``: 2 of 3 to A;
  ``to C S S S``: 1 in 4 to C), so a weight is a repeat count. Distinct spellings (127.0.0.1:P and localhost:P) are
  not needed. round_robin takes the next entry per request, so N requests over a listing of N entries hit each
  entry once, whatever the concurrency (no health checks are configured: every upstream stays selectable).
- ``{http.reverse_proxy.upstream.address}`` in 2.6.2 is the network address with its network, ``tcp/127.0.0.1:P``;
  ``{http.reverse_proxy.upstream.hostport}`` is ``127.0.0.1:P``, the spelling of the ``to`` line, and that is what
  the X-Canary-Upstream response header carries here. Answers Caddy makes itself (502 when the upstream refuses the
  connection, 503 with an empty upstreams file) have no such header.
- ``GET {admin}/reverse_proxy/upstreams`` lists each distinct upstream ONCE, whatever its repeat count, as
  ``[{"address": "127.0.0.1:P", "num_requests": 0, "fails": 0}]``: ``num_requests`` is the number of requests in
  flight to it right now (not a total), ``fails`` the passive health check's recent failures. It shows which
  upstreams are configured, not the weights nor the traffic each one got; the upstreams file (or the
  X-Canary-Upstream header of the answers) does.
- Reloading: ``POST {admin}/load`` with ``Content-Type: text/caddyfile`` and the Caddyfile as the body (what
  ``reload()`` does) and ``caddy reload --config F --adapter caddyfile --address 127.0.0.1:ADMINPORT`` both re-read
  the imported upstreams file; the listing of the upstreams endpoint follows at once.
- ``ServiceLayoutCaddy`` is the real service's canary layout instead: no snippet, the whole Caddyfile written from a
  template whose ``{{CANARY_UPSTREAM_CONFIG}}`` takes the upstreams inline after ``reverse_proxy`` (twice, as in
  the service's template). ``load_text()`` loads a Caddyfile's text without touching any file: Caddy's running
  configuration then differs from the files on disk, as after a change made by hand.

The service's rate limit (30 requests a minute per client) counts ``/metrics``: a scrape interval of 1 s makes the
scrapes fail with 429 after 30 s, and 2 s sits on the limit. Scrape the reference service every 3 s or slower
(SERVICE_SCRAPE_INTERVAL). ScrapeRelay gives Prometheus's scrapes a client address of their own (X-Forwarded-For
set by a trusted proxy, as Prometheus has its own address in a real deployment), so they do not take the budget
of the tests' and modules' requests from 127.0.0.1.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from math import gcd
from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES_DIR = HERE / "prometheus_rules"
RULE_FILES = (RULES_DIR / "canary_recording.yml", RULES_DIR / "canary_alerts.yml")
SERVICE_SCRAPE_INTERVAL = "3s"
ENSURE_HINT = "bash scripts/system_packages.sh ensure monitoring"
PROMETHEUS_CLIENT_ADDRESS = "198.18.255.9"  # outside the range refhelpers gives the tests' clients


class MonitoringError(RuntimeError):
    """A monitoring daemon is missing, did not start, or answered unexpectedly."""


def require_binary(name):
    path = shutil.which(name) or next((p for p in ("/usr/sbin/" + name, "/sbin/" + name) if os.access(p, os.X_OK)),
                                      None)
    if not path:
        raise MonitoringError("%s is not installed (Debian packages prometheus, prometheus-alertmanager, caddy): run %s"
                              % (name, ENSURE_HINT))
    return path


def free_port():
    """A TCP port free on 127.0.0.1 right now (a daemon that loses the race is started again on another one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_call(method, url, body=None, headers=None, timeout=10):
    """(status, body bytes) of one request; HTTP errors are answers too, a connection failure raises OSError."""
    data = body
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        headers = dict({"Content-Type": "application/json"}, **(headers or {}))
    elif isinstance(body, str):
        data = body.encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def hostport(url_or_hostport):
    """127.0.0.1:PORT of ``http://127.0.0.1:PORT[/...]`` (a host:port is returned as it is)."""
    text = str(url_or_hostport)
    if "://" in text:
        parts = urllib.parse.urlsplit(text)
        return "%s:%d" % (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    return text


def _write_private(path, text):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(str(path), 0o600)


def _utc(offset_minutes=0.0):
    stamp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=offset_minutes)
    return stamp.isoformat().replace("+00:00", "Z")


class _Daemon:
    """One child process with a workdir, a log file and a readiness check."""

    name = "daemon"
    binary = None
    start_attempts = 3

    def __init__(self, workdir):
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / (self.name + ".log")
        self.proc = None
        self.pid = None

    # subclasses: _prepare() (ports, files), _command(), _ready()
    def _prepare(self):
        raise NotImplementedError

    def _command(self):
        raise NotImplementedError

    def _ready(self):
        raise NotImplementedError

    def _env(self):
        return dict(os.environ)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars=3000):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()[-chars:]
        except OSError:
            return ""

    def start(self, timeout=30):
        """Start the process and wait until it is ready; a lost port race starts it again on other ports."""
        if self.running():
            return self
        require_binary(self.binary)
        for attempt in range(1, self.start_attempts + 1):
            self._prepare()
            with open(self.log_path, "ab") as log:
                log.write(("--- %s start %d: %s\n" % (self.name, attempt, " ".join(self._command()))).encode())
                log.flush()
                self.proc = subprocess.Popen(self._command(), cwd=str(self.workdir), env=self._env(),
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            self.pid = self.proc.pid
            deadline = time.monotonic() + timeout
            while True:
                if self.proc.poll() is not None:
                    tail = self.log_tail()
                    self.proc = None
                    if "address already in use" in tail.lower() and attempt < self.start_attempts:
                        break
                    raise MonitoringError("%s exited before it was ready (see %s):\n%s" % (self.name, self.log_path, tail))
                try:
                    if self._ready():
                        return self
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise MonitoringError("%s not ready within %ss (see %s):\n%s"
                                          % (self.name, timeout, self.log_path, self.log_tail()))
                time.sleep(0.1)
        raise MonitoringError("%s could not get free ports (see %s)" % (self.name, self.log_path))

    def stop(self, timeout=10):
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout``); nothing to do when it is not running."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _wait(self, what, probe, timeout, interval=0.25):
        """Poll ``probe()`` until it returns something truthy; MonitoringError naming ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                result = probe()
            except (OSError, MonitoringError) as exc:
                result, last = None, exc
            if result:
                return result
            if not self.running():
                raise MonitoringError("%s stopped while waiting for %s:\n%s" % (self.name, what, self.log_tail()))
            if time.monotonic() > deadline:
                detail = " (last error: %s)" % last if last else ""
                raise MonitoringError("%s: no %s within %ss%s" % (self.name, what, timeout, detail))
            time.sleep(interval)


# ---------------------------------------------------------------------- Prometheus
class Prometheus(_Daemon):
    """Prometheus scraping ``scrape_jobs`` with ``rule_files`` (copied into the workdir), alerts sent to
    ``alertmanager_url``.

    A scrape job is a dict: ``job`` (the job label), ``url`` (``http://127.0.0.1:PORT``; a path in it is ignored),
    and optionally ``token`` (sent as ``Authorization: Bearer``, from a credentials file of mode 0600),
    ``metrics_path`` (/metrics), ``proxy_url`` (ScrapeRelay.url), ``scrape_interval`` and ``labels`` (a dict of
    target labels). Started with --web.enable-lifecycle (``reload()``), the TSDB in the workdir, and
    --rules.alert.resend-delay ``resend_delay`` (1 s here, 1 m by default: an alert reaches Alertmanager when it
    fires either way; the resends keep it from expiring there)."""

    name = "prometheus"
    binary = "prometheus"

    def __init__(self, workdir, scrape_jobs, rule_files=(), alertmanager_url=None, scrape_interval="1s",
                 evaluation_interval="1s", resend_delay="1s", port=None):
        super().__init__(workdir)
        self.scrape_jobs = [dict(job) for job in scrape_jobs]
        self.rule_files = [Path(path) for path in rule_files]
        self.alertmanager_url = alertmanager_url
        self.scrape_interval, self.evaluation_interval = scrape_interval, evaluation_interval
        self.resend_delay = resend_delay
        self.config_path = self.workdir / "prometheus.yml"
        self.data_dir = self.workdir / "data"
        self.rules_dir = self.workdir / "rules"
        self.secrets_dir = self.workdir / "secrets"
        self._fixed_port = port
        self.port = port
        for job in self.scrape_jobs:
            if not job.get("job") or not job.get("url"):
                raise ValueError("a scrape job needs job and url: %r" % {k: v for k, v in job.items() if k != "token"})

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _prepare(self):
        self.port = self._fixed_port or free_port()
        self.write_config()

    def config(self):
        """The configuration as a dict (written as JSON, which is YAML)."""
        self.rules_dir.mkdir(exist_ok=True)
        self.secrets_dir.mkdir(exist_ok=True, mode=0o700)
        rule_paths = []
        for source in self.rule_files:
            target = self.rules_dir / source.name
            shutil.copyfile(str(source), str(target))
            rule_paths.append(str(target))
        jobs = []
        for job in self.scrape_jobs:
            parts = urllib.parse.urlsplit(job["url"])
            entry = {"job_name": job["job"], "metrics_path": job.get("metrics_path", "/metrics"),
                     "scheme": parts.scheme or "http",
                     "static_configs": [{"targets": [hostport(job["url"])], "labels": dict(job.get("labels") or {})}]}
            if job.get("token"):
                token_file = self.secrets_dir / ("%s.token" % job["job"])
                _write_private(token_file, job["token"])
                entry["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
            if job.get("proxy_url"):
                entry["proxy_url"] = job["proxy_url"]
            if job.get("scrape_interval"):
                entry["scrape_interval"] = job["scrape_interval"]
            jobs.append(entry)
        config = {"global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.evaluation_interval},
                  "rule_files": rule_paths, "scrape_configs": jobs}
        if self.alertmanager_url:
            config["alerting"] = {"alertmanagers": [{
                "api_version": "v2", "scheme": urllib.parse.urlsplit(self.alertmanager_url).scheme or "http",
                "static_configs": [{"targets": [hostport(self.alertmanager_url)]}]}]}
        return config

    def write_config(self):
        _write_private(self.config_path, json.dumps(self.config(), indent=1) + "\n")

    def _command(self):
        return [require_binary(self.binary), "--config.file=%s" % self.config_path,
                "--storage.tsdb.path=%s" % self.data_dir, "--web.listen-address=127.0.0.1:%d" % self.port,
                "--web.enable-lifecycle", "--rules.alert.resend-delay=%s" % self.resend_delay, "--log.level=info"]

    def _ready(self):
        return http_call("GET", self.url + "/-/ready", timeout=2)[0] == 200

    def reload(self, scrape_jobs=None, rule_files=None, alertmanager_url=None):
        """Write the configuration again (with new scrape jobs / rule files / Alertmanager when given) and POST
        /-/reload; MonitoringError when Prometheus refuses it (its reason in the message)."""
        if scrape_jobs is not None:
            self.scrape_jobs = [dict(job) for job in scrape_jobs]
        if rule_files is not None:
            self.rule_files = [Path(path) for path in rule_files]
        if alertmanager_url is not None:
            self.alertmanager_url = alertmanager_url or None
        self.write_config()
        status, body = http_call("POST", self.url + "/-/reload", timeout=15)
        if status != 200:
            raise MonitoringError("prometheus reload: %d %s" % (status, body.decode(errors="replace")[:2000]))

    def api(self, path, **params):
        """GET /api/v1/<path> -> its ``data`` (MonitoringError unless the status is success)."""
        url = "%s/api/v1/%s" % (self.url, path.lstrip("/"))
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_call("GET", url, timeout=15)
        try:
            answer = json.loads(body.decode() or "null")
        except ValueError as exc:
            raise MonitoringError("prometheus %s: %d, not JSON: %r" % (path, status, body[:300])) from exc
        if status != 200 or not isinstance(answer, dict) or answer.get("status") != "success":
            raise MonitoringError("prometheus %s: %d %s" % (path, status, answer))
        return answer["data"]

    def query(self, promql):
        """An instant query -> ``{"resultType": ..., "result": [...]}``."""
        return self.api("query", query=promql)

    def value(self, promql):
        """The value of an instant query as a float: a scalar, or the first sample of a vector; None when empty."""
        data = self.query(promql)
        result = data["result"]
        if data["resultType"] == "scalar":
            return float(result[1])
        if data["resultType"] == "vector" and result:
            return float(result[0]["value"][1])
        return None

    def targets(self):
        return self.api("targets", state="active")["activeTargets"]

    def wait_for_target_up(self, job, timeout=30):
        """The active target of ``job`` once a scrape of it succeeded (health "up")."""
        def probe():
            return next((t for t in self.targets() if t["labels"].get("job") == job and t["health"] == "up"), None)
        try:
            return self._wait("target %s up" % job, probe, timeout)
        except MonitoringError as exc:
            seen = [(t["labels"].get("job"), t["health"], t.get("lastError")) for t in self.targets()]
            raise MonitoringError("%s; targets: %s" % (exc, seen)) from exc

    def wait_for_samples(self, promql, timeout=30, predicate=None):
        """The vector result of ``promql`` once it is not empty (and ``predicate(result)`` holds, when given)."""
        def probe():
            data = self.query(promql)
            result = data["result"]
            if data["resultType"] == "scalar":
                result = [{"metric": {}, "value": result}]
            if result and (predicate is None or predicate(result)):
                return result
            return None
        return self._wait("samples for %s" % promql, probe, timeout)

    def alerts(self):
        """The alerts of the alerting rules (pending and firing): GET /api/v1/alerts."""
        return self.api("alerts")["alerts"]

    def wait_for_alert(self, alertname, state="firing", timeout=30):
        def probe():
            return next((a for a in self.alerts() if a["labels"].get("alertname") == alertname and a["state"] == state),
                        None)
        return self._wait("alert %s %s" % (alertname, state), probe, timeout)

    def rules(self):
        return self.api("rules")["groups"]


# ---------------------------------------------------------------------- Alertmanager
def default_alertmanager_config(inhibit_rules=None):
    """One route to a receiver that sends nowhere; short group timings."""
    config = {"route": {"receiver": "null", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1s",
                        "repeat_interval": "1h"},
              "receivers": [{"name": "null"}]}
    if inhibit_rules:
        config["inhibit_rules"] = list(inhibit_rules)
    return config


class Alertmanager(_Daemon):
    """Alertmanager without clustering (--cluster.listen-address= empty). ``config``: None for the default (a
    null receiver), a dict (written as JSON) or YAML text; ``inhibit_rules`` adds inhibition rules to the default.

    An alert's ``status.state`` in the API is "active", "suppressed" (silenced or inhibited: ``silencedBy`` /
    ``inhibitedBy`` say which) or "unprocessed"."""

    name = "alertmanager"
    binary = "prometheus-alertmanager"

    def __init__(self, workdir, config=None, inhibit_rules=None, port=None):
        super().__init__(workdir)
        if config is not None and inhibit_rules:
            raise ValueError("inhibit_rules goes with the default config; put them into config instead")
        self.config = config if config is not None else default_alertmanager_config(inhibit_rules)
        self.config_path = self.workdir / "alertmanager.yml"
        self.storage_dir = self.workdir / "data"
        self._fixed_port = port
        self.port = port

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _prepare(self):
        self.port = self._fixed_port or free_port()
        self.write_config()

    def write_config(self):
        text = self.config if isinstance(self.config, str) else json.dumps(self.config, indent=1) + "\n"
        _write_private(self.config_path, text)

    def _command(self):
        return [require_binary(self.binary), "--config.file=%s" % self.config_path,
                "--storage.path=%s" % self.storage_dir, "--web.listen-address=127.0.0.1:%d" % self.port,
                "--cluster.listen-address=", "--log.level=info"]

    def _ready(self):
        return http_call("GET", self.url + "/-/ready", timeout=2)[0] == 200

    def reload(self, config=None):
        if config is not None:
            self.config = config
        self.write_config()
        status, body = http_call("POST", self.url + "/-/reload", timeout=15)
        if status != 200:
            raise MonitoringError("alertmanager reload: %d %s" % (status, body.decode(errors="replace")[:2000]))

    def _api(self, method, path, body=None, expect=(200,)):
        status, raw = http_call(method, self.url + "/api/v2/" + path.lstrip("/"), body=body, timeout=15)
        if status not in expect:
            raise MonitoringError("alertmanager %s %s: %d %s" % (method, path, status, raw.decode(errors="replace")[:2000]))
        return json.loads(raw.decode() or "null")

    def post_alerts(self, alerts):
        """POST /api/v2/alerts: each alert a dict with ``labels`` (``alertname`` among them) and optionally
        ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``."""
        self._api("POST", "alerts", body=list(alerts))

    def alerts(self, active=True, silenced=True, inhibited=True, unprocessed=True, filters=None):
        """GET /api/v2/alerts (every state by default); ``filters``: matchers like ``['alertname="X"']``."""
        params = [("active", str(active).lower()), ("silenced", str(silenced).lower()),
                  ("inhibited", str(inhibited).lower()), ("unprocessed", str(unprocessed).lower())]
        params += [("filter", item) for item in filters or ()]
        return self._api("GET", "alerts?" + urllib.parse.urlencode(params))

    def wait_for_alert(self, alertname, state="active", timeout=30):
        """The alert named ``alertname`` once its ``status.state`` is ``state``."""
        def probe():
            return next((a for a in self.alerts(filters=['alertname="%s"' % alertname])
                         if a["labels"].get("alertname") == alertname and a["status"]["state"] == state), None)
        return self._wait("alert %s %s" % (alertname, state), probe, timeout)

    def silence(self, matchers, minutes=10, comment="test", created_by="cleanwithsnapshot-tests"):
        """A silence of equality matchers (``{"alertname": "X", "deployment": "canary"}``) from now for ``minutes``;
        returns its id."""
        body = {"matchers": [{"name": name, "value": str(value), "isRegex": False, "isEqual": True}
                             for name, value in matchers.items()],
                "startsAt": _utc(), "endsAt": _utc(minutes), "createdBy": created_by, "comment": comment}
        return self._api("POST", "silences", body=body)["silenceID"]

    def silences(self):
        return self._api("GET", "silences")

    def expire_silence(self, silence_id):
        self._api("DELETE", "silence/%s" % silence_id)


# ---------------------------------------------------------------------- Caddy
def expand_weights(weights):
    """{hostport: weight} -> the ``to`` listing for round_robin, weights divided by their greatest common divisor
    ({"a": 1, "b": 1} -> [a, b]; {"c": 10, "s": 90} -> [c, s x 9]); a weight of 0 leaves the upstream out."""
    items = [(hostport(addr), int(weight)) for addr, weight in weights.items()]
    if any(weight < 0 for dummy, weight in items) or not any(weight for dummy, weight in items):
        raise ValueError("weights must be >= 0 with at least one above 0: %r" % weights)
    divisor = 0
    for dummy, weight in items:
        divisor = gcd(divisor, weight)
    return [addr for addr, weight in items for dummy in range(weight // divisor)]


class Caddy(_Daemon):
    """Caddy as the traffic splitter in front of the stable and canary services.

    The Caddyfile (``caddyfile``) imports the upstreams file, one line ``to HOST:PORT HOST:PORT ...``, so a
    traffic-split step rewrites that file (``write_upstreams``) and reloads Caddy (``reload``); every answer
    Caddy proxies carries the upstream's HOST:PORT in ``X-Canary-Upstream``. See the module docstring for what
    Caddy 2.6.2 does with repeated upstreams and what its admin API reports."""

    name = "caddy"
    binary = "caddy"
    header = "X-Canary-Upstream"

    def __init__(self, workdir, upstreams_file=None, upstreams=None, port=None, admin_port=None):
        super().__init__(workdir)
        self.caddyfile = self.workdir / "Caddyfile"
        self.upstreams_file = Path(upstreams_file).resolve() if upstreams_file else self.workdir / "upstreams.caddy"
        self._initial_upstreams = list(upstreams) if upstreams is not None else None
        self._fixed = (port, admin_port)
        self.port, self.admin_port = port, admin_port

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def admin_url(self):
        return "http://127.0.0.1:%d" % self.admin_port

    @property
    def admin_address(self):
        """127.0.0.1:ADMINPORT, for ``caddy reload --address``."""
        return "127.0.0.1:%d" % self.admin_port

    def _env(self):
        env = dict(os.environ)
        # Caddy keeps its autosave.json and data under these: in the workdir, not in the user's home.
        env["XDG_CONFIG_HOME"] = str(self.workdir / "config")
        env["XDG_DATA_HOME"] = str(self.workdir / "data")
        return env

    def caddyfile_text(self):
        return ("{\n\tadmin 127.0.0.1:%d\n\tauto_https off\n}\n\n"
                "http://127.0.0.1:%d {\n"
                "\tbind 127.0.0.1\n"
                "\treverse_proxy {\n"
                "\t\timport %s\n"
                "\t\tlb_policy round_robin\n"
                "\t\theader_down %s {http.reverse_proxy.upstream.hostport}\n"
                "\t}\n}\n" % (self.admin_port, self.port, self.upstreams_file, self.header))

    def _prepare(self):
        self.port = self._fixed[0] or free_port()
        self.admin_port = self._fixed[1] or free_port()
        if self._initial_upstreams is not None:
            self.write_upstreams(self._initial_upstreams)
            self._initial_upstreams = None
        elif not self.upstreams_file.exists():
            self.write_upstreams([])
        with open(self.caddyfile, "w", encoding="utf-8") as handle:
            handle.write(self.caddyfile_text())

    def _command(self):
        return [require_binary(self.binary), "run", "--config", str(self.caddyfile), "--adapter", "caddyfile"]

    def _ready(self):
        if http_call("GET", self.admin_url + "/config/", timeout=2)[0] != 200:
            return False
        with socket.create_connection(("127.0.0.1", self.port), timeout=2):
            return True

    def write_upstreams(self, hostports):
        """Write the upstreams file: ``to`` and the upstreams in order, repeats kept (a weight is a repeat count;
        URLs are written as HOST:PORT). An empty list writes an empty file (Caddy then answers 503)."""
        addresses = [hostport(item) for item in hostports]
        for address in addresses:
            if not address or any(ch.isspace() for ch in address) or "{" in address or "}" in address:
                raise ValueError("not an upstream address: %r" % address)
        text = ("to %s\n" % " ".join(addresses)) if addresses else "\n"
        tmp = self.upstreams_file.with_name(self.upstreams_file.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(str(tmp), str(self.upstreams_file))

    def read_upstreams(self):
        """The upstreams listed in the upstreams file, in order, repeats kept (comment lines skipped)."""
        with open(self.upstreams_file, encoding="utf-8") as handle:
            lines = [line.split() for line in handle if line.strip() and not line.lstrip().startswith("#")]
        return [word for words in lines if words[:1] == ["to"] for word in words[1:]]

    def reload(self):
        """POST the Caddyfile to {admin}/load (Content-Type text/caddyfile): the upstreams file is read again."""
        with open(self.caddyfile, "rb") as handle:
            body = handle.read()
        status, answer = http_call("POST", self.admin_url + "/load", body=body,
                                   headers={"Content-Type": "text/caddyfile"}, timeout=15)
        if status != 200:
            raise MonitoringError("caddy reload: %d %s" % (status, answer.decode(errors="replace")[:2000]))

    def set_weights(self, weights):
        """Write the listing of ``expand_weights(weights)`` and reload; returns the listing."""
        listing = expand_weights(weights)
        self.write_upstreams(listing)
        self.reload()
        return listing

    def upstreams(self):
        """GET {admin}/reverse_proxy/upstreams: each distinct upstream once, with its in-flight request count."""
        status, body = http_call("GET", self.admin_url + "/reverse_proxy/upstreams", timeout=10)
        if status != 200:
            raise MonitoringError("caddy upstreams: %d %s" % (status, body[:500]))
        return json.loads(body.decode())

    def load_text(self, caddyfile_text):
        """POST a Caddyfile's text to {admin}/load, no file touched: a change made out of band (the running
        configuration differs from the files on disk)."""
        status, answer = http_call("POST", self.admin_url + "/load", body=caddyfile_text.encode(),
                                   headers={"Content-Type": "text/caddyfile"}, timeout=15)
        if status != 200:
            raise MonitoringError("caddy load: %d %s" % (status, answer.decode(errors="replace")[:2000]))

    def inline_text(self, hostports):
        """This Caddyfile with the upstreams inline (``to`` the given HOST:PORTs) instead of the import: a
        Caddyfile that does not use the upstreams file."""
        return self.caddyfile_text().replace("import %s" % self.upstreams_file,
                                             "to %s" % " ".join(hostport(item) for item in hostports))

    def running_dials(self):
        """The upstreams (``dial``) of each reverse_proxy handler of the running configuration, repeats kept."""
        status, body = http_call("GET", self.admin_url + "/config/", timeout=10)
        if status != 200:
            raise MonitoringError("caddy config: %d %s" % (status, body[:500]))
        found = []

        def walk(node):
            if isinstance(node, dict):
                if node.get("handler") == "reverse_proxy":
                    found.append([item.get("dial") for item in node.get("upstreams") or []])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)
        walk(json.loads(body.decode()))
        return found


TEMPLATE_PLACEHOLDER = "{{CANARY_UPSTREAM_CONFIG}}"


class ServiceLayoutCaddy(Caddy):
    """Caddy in the real service's canary layout (its config/canary/Caddyfile.template and Caddyfile.canary): no
    snippet; the whole Caddyfile is written from a template whose ``{{CANARY_UPSTREAM_CONFIG}}`` takes the upstream
    list inline after ``reverse_proxy``, twice (the admin routes' handle and the site's catch-all), under
    ``lb_policy``. ``template`` is the template's path, ``caddyfile`` the file written from it (at start: the
    ``upstreams`` given, as the service's generator writes weight 0 - the stable upstream alone)."""

    def __init__(self, workdir, upstreams, lb_policy="round_robin", port=None, admin_port=None):
        super().__init__(workdir, port=port, admin_port=admin_port)
        self.template = self.workdir / "Caddyfile.template"
        self.lb_policy = lb_policy
        self._start_upstreams = [hostport(item) for item in upstreams]

    def template_text(self):
        proxy = ("reverse_proxy %s {\n\t\tlb_policy %s\n\t\theader_down %s {http.reverse_proxy.upstream.hostport}\n\t}"
                 % (TEMPLATE_PLACEHOLDER, self.lb_policy, self.header))
        return ("{\n\tadmin 127.0.0.1:%d\n\tauto_https off\n}\n\n"
                "http://127.0.0.1:%d {\n"
                "\tbind 127.0.0.1\n"
                "\t@admin path /v1/admin /v1/admin/*\n"
                "\thandle @admin {\n\t\t%s\n\t}\n\n"
                "\t%s\n}\n" % (self.admin_port, self.port, proxy.replace("\n", "\n\t"), proxy))

    def caddyfile_text(self):
        return self.template_text().replace(TEMPLATE_PLACEHOLDER, " ".join(self._start_upstreams))

    def inline_text(self, hostports):
        return self.template_text().replace(TEMPLATE_PLACEHOLDER, " ".join(hostport(item) for item in hostports))

    def _prepare(self):
        self.port = self._fixed[0] or free_port()
        self.admin_port = self._fixed[1] or free_port()
        self.template.write_text(self.template_text(), encoding="utf-8")
        self.caddyfile.write_text(self.caddyfile_text(), encoding="utf-8")

    def write_upstreams(self, hostports):
        raise MonitoringError("the service's layout has no upstreams file: the Caddyfile is written from its template")

    def read_upstreams(self):
        """The upstreams of the Caddyfile's first reverse_proxy line, in order, repeats kept."""
        for line in self.caddyfile.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if words[:1] == ["reverse_proxy"] and words[-1:] == ["{"]:
                return words[1:-1]
        return []


class ScrapeRelay(Caddy):
    """A forward proxy (``proxy_url`` of a scrape job) that passes Prometheus's scrapes to loopback targets with
    ``X-Forwarded-For: client_address``: the reference service, which trusts X-Forwarded-For from 127.0.0.1, then
    counts the scrapes against a client of their own under its rate limit (30 a minute) instead of against the
    127.0.0.1 of the tests' and modules' own requests. Requests for other hosts get 403."""

    name = "scrape-relay"

    def __init__(self, workdir, client_address=PROMETHEUS_CLIENT_ADDRESS, port=None, admin_port=None):
        super().__init__(workdir, port=port, admin_port=admin_port)
        self.client_address = client_address

    def caddyfile_text(self):
        return ("{\n\tadmin 127.0.0.1:%d\n\tauto_https off\n}\n\n"
                "http://:%d {\n"
                "\tbind 127.0.0.1\n"
                "\t@elsewhere not host 127.0.0.1 localhost\n"
                "\trespond @elsewhere 403\n"
                "\treverse_proxy {http.request.hostport} {\n"
                "\t\theader_up X-Forwarded-For %s\n"
                "\t}\n"
                "}\n" % (self.admin_port, self.port, self.client_address))

    def _prepare(self):
        self.port = self._fixed[0] or free_port()
        self.admin_port = self._fixed[1] or free_port()
        with open(self.caddyfile, "w", encoding="utf-8") as handle:
            handle.write(self.caddyfile_text())

    def write_upstreams(self, hostports):
        raise MonitoringError("a scrape relay has no upstreams file")

    @property
    def proxy_url(self):
        return self.url
