# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's ledger of requests sent to rate-limited services, so consecutive runs share a budget.

One small JSON file per service (origin) and client (the machine the requests leave from): the epoch times of
the sends still inside the service's window. A module call's action plugin opens the entry (an exclusive lock
held until the call's sends are recorded, so two runs against one service take turns instead of overrunning
its limit together), hands the module the history, and records what the module reports it sent. The times
come from the machine that sent the requests, so one entry never mixes two clocks.

Before a call that will wait for the service's window, the action plugin says so at default verbosity: how long at
least, and why (the limit, the sends of earlier runs still inside the window, the counted requests the call plans).
A module cannot print while it runs, so the wait is foreseen here from the same budget the module will spend
(rate_budget.RequestBudget over the ledger's history) and a lower bound of the call's counted requests (one per
probe or admin endpoint the service counts; retries and repeated samples come on top).

Safe for concurrent runs (a lock file per entry, the entry replaced atomically) and for a missing, corrupt or
unwritable file: the run goes on without history and says so, and a 429 that this costs is waited out by the
module; the ledger never fails a check.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import hashlib
import json
import math
import os
import tempfile
import time
from collections import Counter

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import join_url
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.probes import KIND_DEFAULTS
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.rate_budget import RequestBudget, origin_of
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.request_plan import WRITE_METHODS

display = Display()

ENV_DIR = "CWS_RATE_LEDGER_DIR"
FORMAT = 1
# Sends older than this many windows are dropped when the entry is written.
KEEP_WINDOWS = 1


def default_dir():
    base = os.environ.get(ENV_DIR)
    if base:
        return os.path.expanduser(base)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "cleanwithsnapshot.release", "rate-ledger")


def entry_name(origin, client):
    digest = hashlib.sha256(("%s|%s" % (origin, client)).encode("utf-8")).hexdigest()[:24]
    return "%s.json" % digest


class LedgerEntry:
    """The sends to one service from one client. Use as a context manager: the lock is held inside."""

    def __init__(self, directory, origin, client, window, lock_timeout=60.0, clock=time.time, sleep=time.sleep):
        self.directory = directory
        self.origin = origin
        self.client = client
        self.window = float(window)
        self.lock_timeout = float(lock_timeout)
        self.path = os.path.join(directory, entry_name(origin, client))
        self.warnings = []
        self.history = []
        self.waited_for_lock = 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock_fd = None

    # -- the lock
    def __enter__(self):
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            self.warnings.append("rate-limit ledger %s cannot be used (%s): this run starts without history"
                                 % (self.directory, exc.strerror or exc))
            self._lock_fd = None
            return self
        started = self._clock()
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    self.warnings.append("the rate-limit ledger of %s cannot be locked (%s): this run goes on with the "
                                         "history as it stands" % (self.origin, exc.strerror or exc))
                    os.close(self._lock_fd)
                    self._lock_fd = None
                    break
                if self._clock() - started >= self.lock_timeout:
                    self.warnings.append("another run held the rate-limit ledger of %s for %.0f s: this run goes on "
                                         "with the history as it stands" % (self.origin, self.lock_timeout))
                    os.close(self._lock_fd)
                    self._lock_fd = None
                    break
                self._sleep(0.05)
        self.waited_for_lock = round(self._clock() - started, 3)
        self.history = self._read()
        return self

    def __exit__(self, *exc_info):
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None
        return False

    # -- the file
    def _read(self):
        now = self._clock()
        try:
            with open(self.path, encoding="utf-8") as handle:
                document = json.load(handle)
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            self.warnings.append("rate-limit ledger entry %s was unreadable (%s): starting it afresh" % (self.path, exc))
            return []
        sends = document.get("sends") if isinstance(document, dict) else None
        if not isinstance(sends, list) or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in sends):
            self.warnings.append("rate-limit ledger entry %s was not a ledger (no list of send times): starting it afresh"
                                 % self.path)
            return []
        return sorted(float(t) for t in sends if math.isfinite(t) and now - self.window < t <= now + self.window)

    def record(self, sent):
        """Add this run's sends (epoch seconds) and write the entry atomically. Returns False when it could not."""
        now = self._clock()
        # Read again: without the lock (a timeout) another run may have written meanwhile. Counted, not deduplicated:
        # concurrent requests often finish within the same millisecond.
        known = Counter(round(t, 3) for t in self._read()) | Counter(round(t, 3) for t in self.history)
        merged = known + Counter(round(float(t), 3) for t in sent or [])
        keep = [t for t in sorted(merged.elements()) if math.isfinite(t) and t > now - KEEP_WINDOWS * self.window]
        document = {"format": FORMAT, "origin": self.origin, "client": self.client, "window": self.window,
                    "sends": sorted(round(t, 3) for t in keep)}
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".entry-", dir=self.directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(document, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            self.warnings.append("rate-limit ledger entry %s could not be written (%s): the next run will not know "
                                 "this run's requests" % (self.path, exc.strerror or exc))
            return False
        return True


LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def client_of(delegate_to, task_vars, connection):
    """The machine a module's requests leave from, as the service's limiter sees it: the controller for a local
    connection, else the (delegated) host."""
    if delegate_to:
        return "controller" if delegate_to in LOCAL_NAMES else delegate_to
    if connection == "local":
        return "controller"
    return str(task_vars.get("ansible_host") or task_vars.get("inventory_hostname") or "controller")


def planned_requests(args):
    """A lower bound of the requests a readiness_probe or basic_auth_endpoint call sends: ``[(method, url)]``, one per
    probe and per admin endpoint that reads (a write may be planned only). Input the module will refuse is skipped."""
    base_url = args.get("base_url")
    planned = []
    for probe in args.get("probes") or []:
        if not isinstance(probe, dict):
            continue
        kind = probe.get("kind") or "custom"
        path = probe.get("path") or (KIND_DEFAULTS.get(kind) or {}).get("path")
        url = probe.get("url") or (join_url(base_url, path) if base_url and path else None)
        if isinstance(url, str) and kind != "https_redirect":
            planned.append((str(probe.get("method") or "GET").upper(), url))
    admin = args.get("admin") if isinstance(args.get("admin"), dict) else args
    for endpoint in admin.get("endpoints") or []:
        if isinstance(endpoint, dict) and isinstance(endpoint.get("path"), str) and base_url:
            method = str(endpoint.get("method") or "GET").upper()
            if method not in WRITE_METHODS:
                planned.append((method, join_url(base_url, endpoint["path"])))
    return planned


def window_notice(options, base_url, planned, client="controller", deadline=None, clock=time.time):
    """What to print before a call whose planned requests must wait for the service's window, or None. ``options``:
    the call's rate_limit with ``history`` (epoch seconds) from the ledger; unset sub-options take the module's
    defaults."""
    given = dict((key, value) for key, value in options.items() if value is not None)
    try:
        budget = RequestBudget.from_options(given, base_url, clock=clock, sleep=lambda seconds: None)
    except (TypeError, ValueError):
        return None  # the module names the bad sub-option itself
    counted = [url for method, url in planned if budget.counts(method, url)]
    if not counted or not budget.history_in_window:
        return None
    wait = 0.0
    for _url in counted:
        wait = budget.acquire()[1]
    if wait < 1.0:
        return None
    why = ("%d requests per %g s, %d kept in reserve; %d sent within the window by earlier runs from %s; %d counted "
           "requests planned, retries on top" % (budget.requests, budget.window, budget.margin, budget.history_in_window,
                                                 "this controller" if client == "controller" else client, len(counted)))
    if deadline is not None and wait > deadline:
        return ("the rate-limit window of %s has no room for this call's requests for about %.0f s, after its deadline "
                "(%g s): the requests that do not fit are not sent (%s)" % (budget.origin, wait, deadline, why))
    return "waiting about %.0f s for the rate-limit window of %s before this call's requests can go (%s)" % (
        wait, budget.origin, why)


def _given_deadline(args):
    """The call's deadline option when the task sets one (the modules' defaults differ), else None."""
    try:
        return float(args["deadline"]) if args.get("deadline") is not None else None
    except (TypeError, ValueError):
        return None


def run_with_ledger(execute, args, rate_options, base_url, client, deadline, announce=None):
    """``execute(args)`` -> the module's result, with ``rate_limit.history`` from the ledger entry of (origin of
    ``base_url``, ``client``) and the module's ``rate_limit.sent`` recorded in it, under the entry's lock.
    ``announce(text)`` is told beforehand when the call's planned requests must wait for the service's window."""
    options = dict(rate_options or {})
    if not base_url or options.get("ledger") is False or options.get("requests", 1) == 0:
        return execute(args)
    directory = options.get("ledger_dir") or default_dir()
    entry = LedgerEntry(os.path.expanduser(directory), origin_of(base_url), client, options.get("window") or 60.0,
                        lock_timeout=deadline)
    with entry:
        # Sends the caller knows of (rate_limit.history) count as well as the ledger's.
        options["history"] = sorted(entry.history + [float(t) for t in options.get("history") or []])
        notice = None
        if announce is not None:
            notice = window_notice(options, base_url, planned_requests(args), client, _given_deadline(args))
        if notice:
            announce(notice)
        result = execute(dict(args, rate_limit=options))
        report = result.get("rate_limit") if isinstance(result.get("rate_limit"), dict) else None
        if report is not None:
            entry.record(report.pop("sent", []))
            report["ledger"] = {"entry": entry.path, "history_in_window": len(entry.history),
                                "waited_for_lock_s": entry.waited_for_lock}
    if entry.warnings:
        result.setdefault("warnings", []).extend(entry.warnings)
    return result


class LedgeredModuleAction(ActionBase):
    """The action plugin of a module that sends requests to a rate-limited service (``MODULE``): runs it with
    its ledger entry (history in, sends recorded)."""

    MODULE = None

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(LedgeredModuleAction, self).run(tmp, task_vars)
        del tmp  # the module's own temporary directory is managed by _execute_module
        args = dict(self._task.args)
        rate = args.get("rate_limit") if isinstance(args.get("rate_limit"), dict) else {}
        client = rate.get("client") or client_of(self._task.delegate_to, task_vars, self._play_context.connection)
        try:
            deadline = float(args.get("deadline") or 60)
        except (TypeError, ValueError):
            deadline = 60.0  # the module names the bad option itself

        def execute(module_args):
            return self._execute_module(module_name=self.MODULE, module_args=module_args, task_vars=task_vars)

        def announce(text):
            display.display("%s: %s" % (self._task.get_name() or self.MODULE, text))

        result.update(run_with_ledger(execute, args, rate, args.get("base_url"), client, deadline, announce=announce))
        return result
