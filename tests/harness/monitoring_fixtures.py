"""pytest fixtures for the monitoring tests (a plugin module: tests/conftest.py lists it in pytest_plugins).

- ``monitoring_stack`` (module): a MonitoringStack on the ``pg_server`` cluster: a reference stack of its own whose
  service is the stable one (APP_NAME=api, Prometheus job ``clean-api``), a canary process on the same database
  (APP_NAME=api-canary, job ``api-canary``, faults in its own file), Prometheus with the test rules
  (tests/harness/prometheus_rules: canary recording rules and alerts, windows shortened) scraping both every
  3 s through a ScrapeRelay, Alertmanager wired to Prometheus, and Caddy splitting 1:1 between the two. Starting it
  takes a few seconds; it is stopped at the end of the module.
- ``monitoring`` (function): ``monitoring_stack`` reset before and after the test (no fault on either service, Caddy
  back to 1:1), so a test may switch faults and weights freely.

The stack is not the session's ``ref_stack``: its Prometheus scrapes would take requests from the rate-limit budget
that the other suites' runs against that service count on. Alerts posted to Alertmanager cannot be deleted (they
expire): tests use alert names of their own.
"""
from __future__ import annotations

import itertools
import os

import pytest

from loadgen import LoadGenerator
from monitoring import (RULE_FILES, SERVICE_SCRAPE_INTERVAL, Alertmanager, Caddy, Prometheus, ScrapeRelay,
                        hostport)
from refstack import RefStack

STABLE_JOB, CANARY_JOB = "clean-api", "api-canary"
STABLE_APP_NAME, CANARY_APP_NAME = "api", "api-canary"
_NUMBERS = itertools.count(1)


class MonitoringStack:
    """A stable service, a canary, Prometheus, Alertmanager and Caddy on 127.0.0.1 (see the module docstring).

    Attributes once started: ``stack`` (RefStack; its service is the stable one), ``canary`` (ExtraService),
    ``prometheus``, ``alertmanager``, ``caddy``, ``relay`` (ScrapeRelay, or None with ``relay=False``),
    ``stable_url`` / ``canary_url``, ``stable_hostport`` / ``canary_hostport`` (the spelling of Caddy's upstreams
    file and of the X-Canary-Upstream header), ``token`` (the metrics token both services take),
    ``scrape_jobs`` (what Prometheus scrapes, the token included)."""

    def __init__(self, pg_facts, workdir, name=None, rule_files=RULE_FILES, scrape_interval=SERVICE_SCRAPE_INTERVAL,
                 evaluation_interval="1s", relay=True, alertmanager_config=None):
        self.pg_facts = dict(pg_facts)
        self.workdir = os.path.abspath(str(workdir))
        self.name = name or "cwsmon_%d_%d" % (os.getpid(), next(_NUMBERS))
        self.rule_files = tuple(rule_files)
        self.scrape_interval, self.evaluation_interval = scrape_interval, evaluation_interval
        self.use_relay = relay
        self.alertmanager_config = alertmanager_config
        self.stack = self.canary = self.prometheus = self.alertmanager = self.caddy = self.relay = None

    # ------------------------------------------------------------------ facts
    @property
    def stable_url(self):
        return self.stack.base_url

    @property
    def canary_url(self):
        return self.canary.base_url

    @property
    def stable_hostport(self):
        return hostport(self.stack.base_url)

    @property
    def canary_hostport(self):
        return hostport(self.canary.base_url)

    @property
    def token(self):
        return self.stack.metrics_token

    @property
    def scrape_jobs(self):
        proxy = {"proxy_url": self.relay.proxy_url} if self.relay else {}
        return [dict({"job": STABLE_JOB, "url": self.stable_url, "token": self.token}, **proxy),
                dict({"job": CANARY_JOB, "url": self.canary_url, "token": self.token}, **proxy)]

    # ------------------------------------------------------------------ life cycle
    def _dir(self, name):
        path = os.path.join(self.workdir, name)
        os.makedirs(path, exist_ok=True)
        return path

    def start(self):
        self.stack = RefStack(self.pg_facts, name=self.name, app_name=STABLE_APP_NAME, state_dir=self._dir("stable"))
        self.stack.start()
        self.canary = self.stack.extra_service(self._dir("canary"), APP_NAME=CANARY_APP_NAME)
        self.alertmanager = Alertmanager(self._dir("alertmanager"), config=self.alertmanager_config).start()
        if self.use_relay:
            self.relay = ScrapeRelay(self._dir("scrape-relay")).start()
        self.prometheus = Prometheus(self._dir("prometheus"), self.scrape_jobs, rule_files=self.rule_files,
                                     alertmanager_url=self.alertmanager.url, scrape_interval=self.scrape_interval,
                                     evaluation_interval=self.evaluation_interval).start()
        self.caddy = Caddy(self._dir("caddy"), upstreams=[self.stable_hostport, self.canary_hostport]).start()
        return self

    def stop(self):
        """Stop everything that was started (each part once; safe after a failed start)."""
        for part in (self.caddy, self.prometheus, self.relay, self.alertmanager, self.canary):
            if part is not None:
                part.stop()
        if self.stack is not None:
            self.stack.stop()

    def __enter__(self):
        try:
            return self.start()
        except Exception:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ helpers
    def reset(self):
        """No fault on the canary nor on the stable stack, and Caddy at 1:1."""
        self.canary.clear_faults()
        self.stack.clear_faults()
        self.set_weights(canary=1, stable=1)

    def set_weights(self, canary, stable):
        """Caddy's split as repeat counts (``canary=1, stable=9``: 1 request in 10 to the canary); reloads Caddy."""
        weights = {self.canary_hostport: canary, self.stable_hostport: stable}
        return self.caddy.set_weights({address: weight for address, weight in weights.items() if weight})

    def load(self, paths=("/healthz",), **kwargs):
        """A LoadGenerator through Caddy (not started); see loadgen.LoadGenerator for the arguments."""
        return LoadGenerator(self.caddy.url, paths=paths, **kwargs)

    def load_canary(self, paths=("/healthz",), **kwargs):
        """A LoadGenerator straight to the canary (not started)."""
        return LoadGenerator(self.canary_url, paths=paths, **kwargs)


@pytest.fixture(scope="module")
def monitoring_stack(pg_server, tmp_path_factory):
    stack = MonitoringStack(pg_server, tmp_path_factory.mktemp("monitoring"))
    with stack:
        yield stack


@pytest.fixture()
def monitoring(monitoring_stack):
    monitoring_stack.reset()
    yield monitoring_stack
    monitoring_stack.reset()
