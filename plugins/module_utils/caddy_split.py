# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The canary's share of traffic in Caddy: a ``to`` line of repeated upstreams, written, reloaded and verified.

Caddy (2.6 here, as on the real service) has no weighted policy; the real service's generator lists each upstream
as many times as its weight asks under ``lb_policy round_robin``, and Caddy keeps the repeats: one canary entry
among ten gets every tenth request. The weights are reduced by their greatest common divisor and capped at
``max_units`` entries (20 by default, as the generator does), rounded so that a weight above 0 keeps at least one
canary entry and a weight below 100 at least one stable entry.

Caddy's admin endpoint ``GET /reverse_proxy/upstreams`` lists each upstream address once, however often it is
repeated, and only the upstreams of the running configuration (a reload drops the others): it proves which
upstreams are in use, not their shares. The shares are checked in the running configuration (``GET /config/``):
a reverse_proxy handler must dial the upstreams as often as the file lists them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import os
import re
import tempfile
from collections import Counter

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    ERROR,
    PASS,
    SKIPPED,
    Stopwatch,
    join_limited,
    make_record,
    summarize,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import RequestSpec
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import url_error
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import safe_url
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline, RetryPolicy

CRITERION = "canary.step"
RECORD_NAME = "canary.step.split"
MANAGED_BY = "# Managed by cleanwithsnapshot.release.traffic_split - do not edit by hand"
RELOADS = ("admin_api", "command", "none")
ERROR_EXCERPT = 2000

_UPSTREAM = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?):(?P<port>[0-9]{1,5})$")


class SplitInputError(Exception):
    """Bad module input; the message names the option."""


# --------------------------------------------------------------------------------------------------
# Weights -> upstream entries (pure)
# --------------------------------------------------------------------------------------------------

def round_half_up(value):
    return int(math.floor(value + 0.5))


def check_upstreams(values, option):
    """Validated ``host:port`` strings (lower-cased host) or SplitInputError naming ``option[i]``."""
    if not values:
        raise SplitInputError("%s must list at least one upstream (host:port)" % option)
    seen = []
    for index, value in enumerate(values):
        text = to_text(value or "").strip()
        found = _UPSTREAM.match(text)
        if not found or not 0 < int(found.group("port")) < 65536:
            raise SplitInputError("%s[%d]: %r is not host:port (for example api-canary:8000 or 10.0.0.5:8000)"
                                  % (option, index, value))
        text = "%s:%d" % (found.group("host").lower(), int(found.group("port")))
        if text in seen:
            raise SplitInputError("%s[%d]: %s is listed twice; give each upstream once, the weight repeats it" % (option, index, text))
        seen.append(text)
    return seen


def split_units(weight, n_stable, n_canary, max_units):
    """-> (stable_repeats, canary_repeats): how often each stable and each canary upstream is listed.

    The shares per upstream (``weight / n_canary`` and ``(100 - weight) / n_stable``) are reduced by their GCD; more
    than ``max_units`` entries in all are scaled down to at most ``max_units``, the canary's repeats rounded half up,
    at least one of each side whose weight is above 0, and reduced by their GCD again."""
    if not 0 <= weight <= 100:
        raise SplitInputError("weight must be between 0 and 100 (the canary's percentage of requests), got %s" % weight)
    if max_units < 1:
        raise SplitInputError("max_units must be 1 or more, got %s" % max_units)
    if weight == 0:
        canary, stable = 0, 1
    elif weight == 100:
        canary, stable = 1, 0
    else:
        per_canary, per_stable = weight * n_stable, (100 - weight) * n_canary
        divisor = math.gcd(per_canary, per_stable)
        canary, stable = per_canary // divisor, per_stable // divisor
        if canary * n_canary + stable * n_stable > max_units:
            canary, stable = _capped(weight, n_stable, n_canary, max_units)
    needed = canary * n_canary + stable * n_stable
    if needed > max_units:
        raise SplitInputError("max_units: %d entries cannot list %d stable and %d canary upstreams at weight %d; "
                              "raise max_units to %d or more" % (max_units, n_stable, n_canary, weight, needed))
    return stable, canary


def _capped(weight, n_stable, n_canary, max_units):
    canary = max(1, round_half_up(weight * max_units / (100.0 * n_canary)))
    stable = (max_units - canary * n_canary) // n_stable
    if stable < 1:
        stable = 1
        canary = (max_units - n_stable) // n_canary
    if canary < 1:
        raise SplitInputError("max_units: %d entries cannot list %d stable and %d canary upstreams at weight %d; "
                              "raise max_units to %d or more" % (max_units, n_stable, n_canary, weight, n_stable + n_canary))
    divisor = math.gcd(canary, stable)
    return canary // divisor, stable // divisor


def interleave(canary_entries, stable_entries):
    """Canary entries spread evenly among the stable ones, so any run of len(total) requests under round_robin
    gets the exact share."""
    total = len(canary_entries) + len(stable_entries)
    canary, stable = iter(canary_entries), iter(stable_entries)
    out = []
    for index in range(total):
        if (index + 1) * len(canary_entries) // total > index * len(canary_entries) // total:
            out.append(next(canary))
        else:
            out.append(next(stable))
    return out


class SplitPlan:
    """The upstream list for one weight: ``entries`` in order, ``units`` per side, the file's ``content``."""

    def __init__(self, weight, stable_upstreams, canary_upstreams, max_units=20):
        if not 0 <= weight <= 100:
            raise SplitInputError("weight must be between 0 and 100 (the canary's percentage of requests), got %s" % weight)
        self.stable = check_upstreams(stable_upstreams, "stable_upstreams")
        self.canary = check_upstreams(canary_upstreams, "canary_upstreams")
        both = sorted(set(self.stable) & set(self.canary))
        if both:
            raise SplitInputError("canary_upstreams: %s is also a stable upstream" % ", ".join(both))
        self.weight = weight
        stable_repeats, canary_repeats = split_units(weight, len(self.stable), len(self.canary), max_units)
        canary_entries = [self.canary[i % len(self.canary)] for i in range(canary_repeats * len(self.canary))]
        stable_entries = [self.stable[i % len(self.stable)] for i in range(stable_repeats * len(self.stable))]
        self.entries = interleave(canary_entries, stable_entries)
        self.units = {"stable": len(stable_entries), "canary": len(canary_entries)}
        self.share = round(100.0 * len(canary_entries) / len(self.entries), 2)

    @property
    def content(self):
        return "%s\n# canary weight %d %%: %d of %d entries on the canary (%s %% of requests)\nto %s\n" % (
            MANAGED_BY, self.weight, self.units["canary"], len(self.entries), _number(self.share), " ".join(self.entries))

    def describe(self):
        return "canary weight %d %% (%d canary, %d stable of %d entries)" % (
            self.weight, self.units["canary"], self.units["stable"], len(self.entries))


def _number(value):
    return ("%.2f" % value).rstrip("0").rstrip(".")


def listing_problems(listed, plan):
    """What Caddy's upstream listing contradicts: a side with weight above 0 must be listed, one at 0 must not."""
    listed = set(to_text(address).lower() for address in listed)
    problems = []
    for side, upstreams, wanted in (("canary", plan.canary, plan.weight > 0), ("stable", plan.stable, plan.weight < 100)):
        for upstream in upstreams:
            if wanted and upstream not in listed:
                problems.append("%s upstream %s is not in Caddy's upstreams" % (side, upstream))
            elif not wanted and upstream in listed:
                problems.append("%s upstream %s is still in Caddy's upstreams at weight %d" % (side, upstream, plan.weight))
    return problems


def reverse_proxies(config):
    """Every reverse_proxy handler object of a Caddy JSON configuration, wherever it is nested."""
    if isinstance(config, dict):
        if config.get("handler") == "reverse_proxy":
            yield config
        for value in config.values():
            yield from reverse_proxies(value)
    elif isinstance(config, list):
        for item in config:
            yield from reverse_proxies(item)


def config_problems(config, plan):
    """Whether a reverse_proxy of the running configuration lists the plan's upstreams as often as the file does
    (its other upstreams, if any, aside): the shares, which the upstream listing cannot show."""
    ours = set(plan.stable) | set(plan.canary)
    wanted = Counter(plan.entries)
    seen = []
    for handler in reverse_proxies(config):
        dials = [to_text(item.get("dial", "")).lower() for item in handler.get("upstreams") or [] if isinstance(item, dict)]
        counts = Counter(dial for dial in dials if dial in ours)
        if counts == wanted:
            return []
        if counts:
            seen.append(", ".join("%s x%d" % item for item in sorted(counts.items())))
    return ["no reverse_proxy of Caddy's running configuration lists %s (found: %s)" % (
        ", ".join("%s x%d" % item for item in sorted(wanted.items())), "; ".join(seen) or "none with these upstreams")]


# --------------------------------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------------------------------

def read_current(path):
    """The file's text, or None when it does not exist. Raises SplitInputError when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return to_text(handle.read(), errors="surrogate_or_strict")
    except FileNotFoundError:
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            raise SplitInputError("upstreams_file: the directory %s does not exist" % directory)
        return None
    except (OSError, UnicodeError) as exc:
        raise SplitInputError("upstreams_file: cannot read %s: %s" % (path, to_native(exc)))


def write_atomic(module, path, content):
    """A temporary file in the same directory, renamed over ``path`` (module.atomic_move keeps the old file's mode,
    owner and SELinux context). Readers see the old or the new file, never a part."""
    directory = os.path.dirname(path) or "."
    handle, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(to_bytes(content))
            stream.flush()
            os.fsync(stream.fileno())
        if not os.path.exists(path):
            os.chmod(temp, 0o644)
    except BaseException:
        os.unlink(temp)
        raise
    module.atomic_move(temp, path)


def restore(module, path, previous):
    """Put the previous content back (remove the file when there was none). -> None, or why it failed."""
    try:
        if previous is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            write_atomic(module, path, previous)
    except OSError as exc:
        return "could not restore %s: %s" % (path, to_native(exc))
    return None


# --------------------------------------------------------------------------------------------------
# Caddy: reload and the admin API
# --------------------------------------------------------------------------------------------------

def admin_request(client, admin_url, path, timeout, method="GET", body=None, headers=None):
    """One request to Caddy's admin API -> (response, None) or (None, why there was no answer)."""
    spec = RequestSpec(admin_url.rstrip("/") + path, method=method, body=body, headers=headers, timeout=timeout,
                       use_proxy=False)
    outcome = client.request(spec, policy=RetryPolicy(retries=2, backoff=0.5, backoff_max=2.0),
                             deadline=Deadline(timeout * 3 + 2.0))
    if outcome.response is None:
        error = outcome.error
        reason = "%s: %s" % (error.kind, error.message) if error else "no answer"
        return None, "Caddy's admin API at %s did not answer (%s)" % (safe_url(admin_url), reason)
    return outcome.response, None


def running_config(client, admin_url, timeout):
    """GET /config/ -> (the running configuration as JSON bytes, None) or (None, why not): what undo loads back."""
    response, problem = admin_request(client, admin_url, "/config/", timeout)
    if problem:
        return None, problem
    if response.status != 200 or not response.has_json:
        return None, "GET /config/ answered %s" % caddy_error_text(response)
    return response.body, None


def load_config(client, admin_url, config, timeout):
    """POST a saved JSON configuration to /load. -> None or the error."""
    return post_load(client, admin_url, config, "application/json", "its previous configuration", timeout)


def post_load(client, admin_url, body, content_type, what, timeout):
    """POST ``body`` to the admin API's /load. -> None or the error, naming ``what`` Caddy refused."""
    response, problem = admin_request(client, admin_url, "/load", timeout, method="POST", body=body,
                                      headers={"Content-Type": content_type})
    if problem:
        return problem
    if response.status != 200:
        return "Caddy refused %s: %s" % (what, caddy_error_text(response))
    return None


def caddy_error_text(response):
    """The error of a non-200 admin answer: its JSON ``error``, else the body."""
    body = response.json()
    if isinstance(body, dict) and body.get("error"):
        text = to_text(body["error"])
    else:
        text = response.text.strip()
    return "HTTP %d: %s" % (response.status, text[:ERROR_EXCERPT] or response.reason)


def reload_admin(client, admin_url, caddyfile, timeout):
    """POST the main Caddyfile to /load (Caddy adapts it and resolves its imports itself). -> None or the error."""
    try:
        with open(caddyfile, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        return "caddyfile: cannot read %s: %s" % (caddyfile, to_native(exc))
    return post_load(client, admin_url, text, "text/caddyfile", "the configuration", timeout)


def command_error_text(rc, out, err):
    """Caddy's own ``Error:`` lines when it printed some, else the end of its output."""
    lines = [line for line in (to_text(err) + "\n" + to_text(out)).splitlines() if line.strip()]
    errors = [line for line in lines if line.lstrip().startswith("Error:")]
    text = "\n".join(errors or lines[-20:])
    return "the reload command exited with %s: %s" % (rc, text[-ERROR_EXCERPT:] or "(no output)")


def reload_command(module, argv):
    rc, out, err = module.run_command(list(argv), check_rc=False)
    if rc != 0:
        return command_error_text(rc, out, err)
    return None


def fetch_listing(client, admin_url, timeout):
    """GET /reverse_proxy/upstreams -> (addresses, None) or (None, why not)."""
    response, problem = admin_request(client, admin_url, "/reverse_proxy/upstreams", timeout)
    if problem:
        return None, problem
    if response.status != 200:
        return None, "GET /reverse_proxy/upstreams answered %s" % caddy_error_text(response)
    body = response.json()
    if not isinstance(body, list) or not all(isinstance(item, dict) and "address" in item for item in body):
        return None, "GET /reverse_proxy/upstreams did not answer a list of upstreams with addresses"
    return [to_text(item["address"]) for item in body], None


# --------------------------------------------------------------------------------------------------
# The module's run
# --------------------------------------------------------------------------------------------------

class SplitOptions:
    """The module's options about where the file goes and how Caddy learns of it, validated."""

    def __init__(self, params, bin_path, check_mode=False):
        self.path = params["upstreams_file"]
        self.reload = params["reload"]
        self.admin_url = params["admin_url"]
        self.caddyfile = params.get("caddyfile")
        self.timeout = params["timeout"]
        if not self.timeout > 0:
            raise SplitInputError("timeout must be greater than 0, got %s" % self.timeout)
        self.verify = params["verify_upstreams"]
        if self.verify is None:
            self.verify = self.reload == "admin_api"
        if self.reload == "admin_api" or self.verify:
            problem = url_error(self.admin_url or "")
            if problem:
                raise SplitInputError("admin_url: %s" % problem)
        if self.reload == "admin_api" and not os.path.isfile(self.caddyfile):
            raise SplitInputError("caddyfile: %s is not a file (reload=admin_api posts it to Caddy's /load)" % self.caddyfile)
        self.command = list(params.get("reload_command") or [])
        if self.reload == "command" and not self.command:
            self.command = ["caddy", "reload", "--config", self.caddyfile, "--adapter", "caddyfile",
                            "--address", admin_address(self.admin_url)]
        self.missing_command = None
        if self.reload == "command" and not (os.path.isabs(self.command[0]) or bin_path(self.command[0])):
            self.missing_command = "reload_command[0]: %r is not found on this host's PATH" % self.command[0]
            if not check_mode:
                raise SplitInputError(self.missing_command)

    def how(self):
        return {"admin_api": "Caddy's admin API (POST /load)", "command": "%s" % " ".join(self.command),
                "none": "no reload"}[self.reload]


def admin_address(admin_url):
    problem = url_error(admin_url or "")
    if problem:
        raise SplitInputError("admin_url: %s" % problem)
    return admin_url.split("://", 1)[1].split("/", 1)[0]


class SplitRun:
    """Write the plan's file (when it differs), reload Caddy, verify, and undo a step that failed."""

    def __init__(self, module, plan, options, client):
        self.module = module
        self.plan = plan
        self.options = options
        self.client = client
        self.watch = Stopwatch()
        self.previous = read_current(options.path)
        self.saved_config = None
        self.changed = self.previous != plan.content
        self.result = {"weight": plan.weight, "units": plan.units, "upstreams": plan.entries, "canary_share": plan.share,
                       "upstreams_file": options.path, "reload": options.reload, "reloaded": False, "verified": None,
                       "restored": False}
        if module._diff:
            self.result["diff"] = {"before": self.previous or "", "after": plan.content,
                                   "before_header": options.path, "after_header": options.path}

    def reload(self):
        if self.options.reload == "admin_api":
            return reload_admin(self.client, self.options.admin_url, self.options.caddyfile, self.options.timeout)
        if self.options.reload == "command":
            return reload_command(self.module, self.options.command)
        return None

    def verify(self):
        """-> None, or what is wrong with Caddy's upstream listing (recorded in the result either way)."""
        listed, problem = fetch_listing(self.client, self.options.admin_url, self.options.timeout)
        if problem:
            return problem
        self.result["upstreams_listed"] = sorted(set(listed))
        problems = listing_problems(listed, self.plan)
        if problems:
            return "Caddy's upstreams do not show the split: %s (listed: %s)" % (
                "; ".join(problems), join_limited(sorted(set(listed))))
        config, problem = running_config(self.client, self.options.admin_url, self.options.timeout)
        if problem:
            return problem
        problems = config_problems(json.loads(to_text(config)), self.plan)
        if problems:
            return "Caddy's running configuration does not hold the split: %s" % "; ".join(problems)
        self.result["verified"] = True
        return None

    def undo(self, step, problem):
        """A failed step: the previous file back; when the new one had been loaded, Caddy's previous configuration
        loaded again (admin_api: the configuration saved before the change; command: the command once more)."""
        failure = restore(self.module, self.options.path, self.previous)
        self.result["restored"] = failure is None
        notes = [failure or "the previous content of %s was restored" % self.options.path]
        if step == "verify" and self.result["reloaded"]:
            if self.saved_config is not None:
                again = load_config(self.client, self.options.admin_url, self.saved_config, self.options.timeout)
            else:
                again = self.reload()
            notes.append("Caddy's previous configuration was loaded again" if again is None
                         else "loading Caddy's previous configuration failed: %s" % again)
            self.result["reloaded"] = again is not None
        self.result["verified"] = False if step == "verify" else self.result["verified"]
        return self.finish(ERROR, "%s failed: %s; %s" % (step, problem, "; ".join(notes)), changed=False)

    def run(self):
        """-> (ok, result). ``result`` holds the record; ``msg`` when not ok."""
        if self.module.check_mode:
            return self.plan_only()
        if self.changed:
            if self.options.reload == "admin_api":
                self.saved_config, problem = running_config(self.client, self.options.admin_url, self.options.timeout)
                if problem:
                    return self.finish(ERROR, "reload failed: %s; nothing was changed" % problem, changed=False)
            write_atomic(self.module, self.options.path, self.plan.content)
            problem = self.reload()
            if problem:
                return self.undo("reload", problem)
            self.result["reloaded"] = self.options.reload != "none"
        if self.options.verify:
            problem = self.verify()
            if problem:
                if self.changed:
                    return self.undo("verify", problem)
                return self.finish(ERROR, "verify failed: %s (%s was already up to date, nothing was changed)"
                                   % (problem, self.options.path), changed=False)
        done = "wrote %s and reloaded through %s" % (self.options.path, self.options.how()) if self.changed else \
            "%s already up to date, no reload" % self.options.path
        if self.changed and self.options.reload == "none":
            done = "wrote %s (reload=none: Caddy reads it at its next reload)" % self.options.path
        return self.finish(PASS, "%s; %s" % (done, self.verified_text()), changed=self.changed)

    def plan_only(self):
        """Check mode: nothing written, nothing reloaded; an unchanged file is verified (a read)."""
        if self.changed:
            note = " (but %s)" % self.options.missing_command if self.options.missing_command else ""
            return self.finish(SKIPPED, "check mode: would write %d entries to %s and reload through %s%s" % (
                len(self.plan.entries), self.options.path, self.options.how(), note), changed=True)
        if self.options.verify:
            problem = self.verify()
            if problem:
                return self.finish(ERROR, "verify failed: %s (%s is up to date)" % (problem, self.options.path), changed=False)
        return self.finish(PASS, "%s already up to date; %s" % (self.options.path, self.verified_text()), changed=False)

    def verified_text(self):
        if self.result["verified"]:
            return "Caddy's upstreams show it"
        return "not verified (verify_upstreams is false)"

    def finish(self, status, text, changed):
        summary = "%s: %s" % (self.plan.describe(), text)
        evidence = {"weight": self.plan.weight, "units": self.plan.units, "canary_share": self.plan.share,
                    "upstreams": self.plan.entries, "upstreams_file": self.options.path, "reload": self.options.reload,
                    "reloaded": self.result["reloaded"], "verified": self.result["verified"],
                    "restored": self.result["restored"]}
        if "upstreams_listed" in self.result:
            evidence["upstreams_listed"] = self.result["upstreams_listed"]
        if self.options.reload != "none" or self.options.verify:
            evidence["admin_url"] = safe_url(self.options.admin_url)
        record = make_record(CRITERION, status, summary, evidence=evidence, name=RECORD_NAME,
                             duration_ms=self.watch.elapsed_ms)
        overview = summarize([record])
        self.result.update(changed=changed, records=[record], status=overview["status"], counts=overview["counts"])
        if status == ERROR:
            self.result["msg"] = summary
        return status != ERROR, self.result


def argument_spec():
    return dict(
        weight=dict(type="int", required=True),
        stable_upstreams=dict(type="list", elements="str", required=True),
        canary_upstreams=dict(type="list", elements="str", required=True),
        max_units=dict(type="int", default=20),
        upstreams_file=dict(type="path", required=True),
        reload=dict(type="str", default="admin_api", choices=list(RELOADS)),
        admin_url=dict(type="str", default="http://127.0.0.1:2019"),
        caddyfile=dict(type="path"),
        reload_command=dict(type="list", elements="str"),
        verify_upstreams=dict(type="bool"),
        timeout=dict(type="float", default=10.0),
    )


REQUIRED_IF = [("reload", "admin_api", ("caddyfile",)), ("reload", "command", ("reload_command", "caddyfile"), True)]
