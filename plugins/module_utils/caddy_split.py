# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The canary's share of traffic in Caddy: repeated upstreams, written, reloaded and verified against the live Caddy.

Caddy (2.6 here, as on the real service) has no weighted policy; the real service's generator lists each upstream
as many times as its weight asks, and Caddy keeps the repeats: under ``lb_policy round_robin`` one canary entry
among ten gets every tenth request (the service's own template says ``random_choose 2``, which only approximates
the share: a warning says so). The weights are reduced by their greatest common divisor and capped at
``max_units`` entries (20 by default, as the generator does), rounded so that a weight above 0 keeps at least one
canary entry and a weight below 100 at least one stable entry.

Caddy's admin endpoint ``GET /reverse_proxy/upstreams`` lists each upstream address once, however often it is
repeated, and only the upstreams of the running configuration (a reload drops the others): it proves which
upstreams are in use, not their shares. The shares are checked in the running configuration (``GET /config/``):
a reverse_proxy handler must dial the upstreams as often as the file lists them.

Two layouts: a snippet (``upstreams_file``, one ``to`` line) that the Caddyfile imports inside its reverse_proxy,
or the whole Caddyfile written from a template (``caddyfile_template``) whose placeholder takes the upstream list
inline, as the real service's generator writes ``Caddyfile.canary`` from ``config/canary/Caddyfile.template``. The
template's output is written in place (same inode): the service's compose file bind-mounts that one file into the
Caddy container, and a file replaced by a rename would stay invisible there.

Every run compares Caddy's LIVE configuration (admin API) with the wanted split before it decides anything: an
up-to-date file does not prove that Caddy runs it (an out-of-band ``/load``, a container that kept an old file), so
a running configuration that differs is reloaded from the file even when the file needs no change. A rollback to
weight 0 therefore converges whatever happened to Caddy in between.

Where this host cannot reach the admin API (the service's compose file keeps port 2019 inside the Caddy container),
``config_command`` reads the running configuration instead: a command that prints what ``GET /config/`` answers
(``docker compose exec -T caddy wget -qO- http://127.0.0.1:2019/config/``). Caddy's upstream listing is then taken
from that configuration (every ``dial`` of its reverse_proxy handlers), which is what the listing is built from.
Its output is never shown: a running configuration can hold credentials.
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
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import mask_url_secrets, safe_url
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline, RetryPolicy

CRITERION = "canary.step"
RECORD_NAME = "canary.step.split"
MANAGED_BY = "# Managed by cleanwithsnapshot.release.traffic_split - do not edit by hand"
RELOADS = ("admin_api", "command", "none")
ERROR_EXCERPT = 2000
# The real service's generator (ops/generate_canary_caddyfile.sh) replaces this in config/canary/Caddyfile.template.
DEFAULT_PLACEHOLDER = "{{CANARY_UPSTREAM_CONFIG}}"

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

    def rendered(self, template, placeholder, source):
        """The whole Caddyfile: ``template`` with every ``placeholder`` replaced by the upstream list (inline, as the
        service's generator writes it), under a comment saying where it came from."""
        return "# Written by cleanwithsnapshot.release.traffic_split from %s: canary weight %d %% (%s %% of requests)\n%s" % (
            source, self.weight, _number(self.share), template.replace(placeholder, " ".join(self.entries)))

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


def _our_counts(handler, plan):
    ours = set(plan.stable) | set(plan.canary)
    dials = [to_text(item.get("dial", "")).lower() for item in handler.get("upstreams") or [] if isinstance(item, dict)]
    return Counter(dial for dial in dials if dial in ours)


def matching_handlers(config, plan):
    """The reverse_proxy handlers that list the plan's upstreams exactly as often as the plan does."""
    wanted = Counter(plan.entries)
    return [handler for handler in reverse_proxies(config) if _our_counts(handler, plan) == wanted]


def config_problems(config, plan):
    """Whether a reverse_proxy of the running configuration lists the plan's upstreams as often as the file does
    (its other upstreams, if any, aside): the shares, which the upstream listing cannot show."""
    if matching_handlers(config, plan):
        return []
    seen = [", ".join("%s x%d" % item for item in sorted(counts.items()))
            for counts in (_our_counts(handler, plan) for handler in reverse_proxies(config)) if counts]
    return ["no reverse_proxy of Caddy's running configuration lists %s (found: %s)" % (
        ", ".join("%s x%d" % item for item in sorted(Counter(plan.entries).items())),
        "; ".join(seen) or "none with these upstreams")]


def selection_policies(handlers):
    """The load balancing policies of ``handlers`` (Caddy's default, random, when none is set)."""
    policies = set()
    for handler in handlers:
        policy = ((handler.get("load_balancing") or {}).get("selection_policy") or {}).get("policy")
        policies.add(to_text(policy or "random"))
    return sorted(policies)


def live_problems(listed, config, plan):
    """Everything that says Caddy does not run the plan's split: its upstream listing, then its configuration."""
    problems = listing_problems(listed, plan)
    if problems:
        return "Caddy's upstreams do not show the split: %s (listed: %s)" % (
            "; ".join(problems), join_limited(sorted(set(listed))))
    problems = config_problems(config, plan)
    if problems:
        return "Caddy's running configuration does not hold the split: %s" % "; ".join(problems)
    return None


def caddyfile_imports(caddyfile, snippet):
    """True when ``caddyfile`` has an ``import`` line naming the snippet's file name, False when it has none, None
    when it cannot be read here (a Caddyfile known only inside a container)."""
    try:
        with open(caddyfile, "rb") as handle:
            text = to_text(handle.read(), errors="surrogate_or_replace")
    except (OSError, TypeError):
        return None
    name = re.escape(os.path.basename(snippet))
    return re.search(r"^\s*import\s+(\S*/)?%s\s*$" % name, text, re.MULTILINE) is not None


# --------------------------------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------------------------------

def read_current(path, option="upstreams_file"):
    """The file's text, or None when it does not exist. Raises SplitInputError naming ``option`` when it cannot be
    read."""
    try:
        with open(path, "rb") as handle:
            return to_text(handle.read(), errors="surrogate_or_strict")
    except FileNotFoundError:
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            raise SplitInputError("%s: the directory %s does not exist" % (option, directory))
        return None
    except (OSError, UnicodeError) as exc:
        raise SplitInputError("%s: cannot read %s: %s" % (option, path, to_native(exc)))


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


def write_in_place(module, path, content):
    """Truncate and write the same file (same inode), as the service's generator does (``sed ... > file``): a
    container that bind-mounts this one file sees the new content, which a rename would hide from it. Caddy reads
    the file only when it is reloaded, after the write."""
    existed = os.path.exists(path)
    with open(path, "wb") as stream:
        stream.write(to_bytes(content))
        stream.flush()
        os.fsync(stream.fileno())
    if not existed:
        os.chmod(path, 0o644)


def write_file(module, path, content, in_place):
    (write_in_place if in_place else write_atomic)(module, path, content)


def restore(module, path, previous, in_place=False):
    """Put the previous content back (remove the file when there was none). -> None, or why it failed."""
    try:
        if previous is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            write_file(module, path, previous, in_place)
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


def config_dials(config):
    """Every upstream address (``dial``) of the reverse_proxy handlers of a parsed configuration, each once: what
    ``GET /reverse_proxy/upstreams`` lists, read from the configuration itself."""
    dials = set()
    for handler in reverse_proxies(config):
        for item in handler.get("upstreams") or []:
            if isinstance(item, dict) and item.get("dial"):
                dials.add(to_text(item["dial"]).lower())
    return sorted(dials)


def parse_config_output(out):
    """The standard output of ``config_command`` -> (JSON bytes, None) or (None, why it is not a configuration).
    The output itself is never quoted: a running configuration can hold credentials."""
    text = to_text(out, errors="surrogate_or_replace").strip()
    if not text:
        return None, "config_command printed nothing; it must print Caddy's running configuration as GET /config/ answers it"
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        return None, ("config_command printed %d bytes that are not JSON (%s); it must print Caddy's running "
                      "configuration as GET /config/ answers it" % (len(to_bytes(text)), _json_error(exc)))
    if parsed is not None and not isinstance(parsed, dict):
        return None, ("config_command printed JSON %s, not a configuration object; it must print Caddy's running "
                      "configuration as GET /config/ answers it" % type(parsed).__name__)
    return to_bytes(text), None


def _json_error(exc):
    """Where the JSON broke, without the text around it."""
    found = re.match(r"^(.*?: line \d+ column \d+ \(char \d+\))", to_native(exc))
    return found.group(1) if found else "invalid JSON"


# Exit codes of coreutils' timeout: the limit passed (the command got TERM), or it was KILLed after the grace
# period; the command could not be run (126) or was not found (127).
_TIMED_OUT = (124, 137)
_NOT_RUN = (126, 127)


def run_config_command(run_command, argv, timeout, timeout_bin):
    """Run ``config_command`` (an argument list, no shell) through ``run_command`` (AnsibleModule.run_command), at
    most ``timeout`` seconds -> (JSON bytes, None) or (None, why not, naming config_command). run_command has no time
    limit of its own, so the command runs under ``timeout_bin`` (coreutils' timeout), which stops the whole process
    group at the limit: ``docker compose exec`` and what it started."""
    if not timeout_bin:
        return None, ("config_command cannot be bounded in time: the timeout program (coreutils) is not on this "
                      "host's PATH; Caddy's running configuration was not read")
    bounded = [timeout_bin, "--kill-after=5", "%ss" % _number(timeout)] + list(argv)
    try:
        rc, out, err = run_command(bounded, check_rc=False, handle_exceptions=False, expand_user_and_vars=False)
    except (OSError, ValueError) as exc:
        return None, "config_command: %s cannot be run: %s" % (timeout_bin, to_native(getattr(exc, "strerror", None) or exc))
    lines = [line for line in to_text(err, errors="surrogate_or_replace").splitlines() if line.strip()]
    text = mask_url_secrets("\n".join(lines[-10:]))[-ERROR_EXCERPT:]
    if rc in _TIMED_OUT:
        return None, ("config_command did not finish within %s s (timeout) and was stopped; Caddy's running "
                      "configuration could not be read" % _number(timeout))
    if rc in _NOT_RUN:
        return None, "config_command: %s cannot be run: %s" % (argv[0], text or "exit code %s" % rc)
    if rc != 0:
        return None, "config_command exited with %s: %s" % (rc, text or "(nothing on standard error)")
    return parse_config_output(out)


# --------------------------------------------------------------------------------------------------
# The module's run
# --------------------------------------------------------------------------------------------------

class SplitOptions:
    """The module's options about where the file goes and how Caddy learns of it, validated."""

    def __init__(self, params, bin_path, check_mode=False):
        self.reload = params["reload"]
        self.admin_url = params["admin_url"]
        self.caddyfile = params.get("caddyfile")
        self.template = params.get("caddyfile_template")
        self.placeholder = params.get("template_placeholder") or DEFAULT_PLACEHOLDER
        # The template layout writes the whole Caddyfile; the snippet layout writes the file the Caddyfile imports.
        self.path = self.caddyfile if self.template else params["upstreams_file"]
        self.in_place = bool(self.template)
        self.template_text = self._template_text() if self.template else None
        self.timeout = params["timeout"]
        if not self.timeout > 0:
            raise SplitInputError("timeout must be greater than 0, got %s" % self.timeout)
        self.verify = params["verify_upstreams"]
        if self.verify is None:
            # Read back whatever reloads Caddy: a command's exit status does not say which configuration runs.
            self.verify = self.reload != "none"
        # Where the running configuration is read: config_command when given (an admin API this host cannot reach),
        # else admin_url.
        self.config_command = list(params.get("config_command") or [])
        if self.reload == "admin_api" or (self.verify and not self.config_command):
            problem = url_error(self.admin_url or "")
            if problem:
                raise SplitInputError("admin_url: %s" % problem)
        if self.reload == "admin_api" and not self.template and not os.path.isfile(self.caddyfile):
            raise SplitInputError("caddyfile: %s is not a file (reload=admin_api posts it to Caddy's /load)" % self.caddyfile)
        self.command = list(params.get("reload_command") or [])
        self.default_command = self.reload == "command" and not self.command
        if self.default_command:
            self.command = ["caddy", "reload", "--config", self.caddyfile, "--adapter", "caddyfile",
                            "--address", admin_address(self.admin_url)]
        self.missing_command = None
        if self.reload == "command" and not (os.path.isabs(self.command[0]) or bin_path(self.command[0])):
            self.missing_command = "reload_command[0]: %r is not found on this host's PATH" % self.command[0]
            if not check_mode:
                raise SplitInputError(self.missing_command)
        if self.config_command and not (os.path.isabs(self.config_command[0]) or bin_path(self.config_command[0])):
            problem = "config_command[0]: %r is not found on this host's PATH" % self.config_command[0]
            if not check_mode:
                raise SplitInputError(problem)
            self.missing_command = "; ".join(filter(None, [self.missing_command, problem]))

    @property
    def uses_admin_url(self):
        """Whether anything goes to admin_url: its reload, its read-back, or the default reload command's address."""
        return self.reload == "admin_api" or (self.verify and not self.config_command) or self.default_command

    @property
    def can_load_saved(self):
        """Whether a saved configuration can be posted back to admin_url (not when only a command reaches Caddy)."""
        return not self.config_command or self.reload == "admin_api"

    def _template_text(self):
        if os.path.realpath(self.template) == os.path.realpath(self.caddyfile):
            raise SplitInputError("caddyfile_template: %s is also the caddyfile written from it; keep the template apart "
                                  "(the service keeps config/canary/Caddyfile.template and writes Caddyfile.canary)"
                                  % self.template)
        try:
            with open(self.template, "rb") as handle:
                text = to_text(handle.read(), errors="surrogate_or_strict")
        except (OSError, UnicodeError) as exc:
            raise SplitInputError("caddyfile_template: cannot read %s: %s" % (self.template, to_native(exc)))
        if self.placeholder not in text:
            raise SplitInputError("caddyfile_template: %s does not contain %s (template_placeholder), where the "
                                  "upstream list goes" % (self.template, self.placeholder))
        directory = os.path.dirname(self.caddyfile) or "."
        if not os.path.isdir(directory):
            raise SplitInputError("caddyfile: the directory %s does not exist" % directory)
        return text

    def how(self):
        return {"admin_api": "Caddy's admin API (POST /load)", "command": "%s" % " ".join(self.command),
                "none": "no reload"}[self.reload]


def admin_address(admin_url):
    problem = url_error(admin_url or "")
    if problem:
        raise SplitInputError("admin_url: %s" % problem)
    return admin_url.split("://", 1)[1].split("/", 1)[0]


class SplitRun:
    """Compare Caddy's running configuration with the plan, write the file (when it differs), reload (when the file
    or the running configuration differs), verify, and undo a step that failed."""

    def __init__(self, module, plan, options, client):
        self.module = module
        self.plan = plan
        self.options = options
        self.client = client
        self.watch = Stopwatch()
        self.previous = read_current(options.path, "caddyfile" if options.template else "upstreams_file")
        self.content = plan.rendered(options.template_text, options.placeholder, options.template) \
            if options.template else plan.content
        self.saved_config = None
        self.drift = None
        self.changed = self.previous != self.content
        self.result = {"weight": plan.weight, "units": plan.units, "upstreams": plan.entries, "canary_share": plan.share,
                       "upstreams_file": options.path, "reload": options.reload, "reloaded": False, "verified": None,
                       "restored": False}
        if module._diff:
            self.result["diff"] = {"before": self.previous or "", "after": self.content,
                                   "before_header": options.path, "after_header": options.path}

    def reload(self):
        if self.options.reload == "admin_api":
            return reload_admin(self.client, self.options.admin_url, self.options.caddyfile, self.options.timeout)
        if self.options.reload == "command":
            return reload_command(self.module, self.options.command)
        return None

    def read_live(self):
        """-> (listed, config, None) or (None, None, why Caddy's running configuration could not be read)."""
        if self.options.config_command:
            config, problem = run_config_command(self.module.run_command, self.options.config_command,
                                                 self.options.timeout, self.module.get_bin_path("timeout"))
            if problem:
                return None, None, problem
            listed = config_dials(json.loads(to_text(config)))
            self.result["upstreams_listed"] = listed
            return listed, config, None
        config, problem = running_config(self.client, self.options.admin_url, self.options.timeout)
        if problem:
            return None, None, problem
        listed, problem = fetch_listing(self.client, self.options.admin_url, self.options.timeout)
        if problem:
            return None, None, problem
        self.result["upstreams_listed"] = sorted(set(listed))
        return listed, config, None

    def compare(self, listed, config, after_reload=False):
        """-> None when Caddy runs the plan's split, else what differs (after a reload of the file, with how to fix
        the layout when it is the snippet that Caddy does not use). Notes the policy that picks among the upstreams."""
        parsed = json.loads(to_text(config))
        problem = live_problems(listed, parsed, self.plan)
        if problem:
            return problem + (self.layout_hint(parsed) if after_reload else "")
        policies = selection_policies(matching_handlers(parsed, self.plan))
        self.result["lb_policy"] = ", ".join(policies)
        if 0 < self.plan.weight < 100 and policies != ["round_robin"]:
            self.module.warn("Caddy picks among the upstreams with %s: the canary's share is only approximately %s %% "
                             "(random_choose 2 sends fewer requests to a slower canary); lb_policy round_robin gives "
                             "the exact share" % (self.result["lb_policy"], _number(self.plan.share)))
        return None

    def layout_hint(self, config):
        """Why a snippet the running configuration does not use is no split at all, and what to add."""
        if self.options.template or matching_handlers(config, self.plan):
            return ""
        imports = caddyfile_imports(self.options.caddyfile, self.options.path) if self.options.caddyfile else None
        why = ("%s imports no file named %s" % (self.options.caddyfile, os.path.basename(self.options.path))
               if imports is False else "no reverse_proxy of the running configuration lists its upstreams")
        return ("; Caddy does not use %s (%s): add `import %s` (the path as Caddy sees it) inside the reverse_proxy "
                "block that serves the API, in place of its upstream addresses, with `lb_policy round_robin` - "
                "or write the whole Caddyfile from a template (caddyfile_template)" % (
                    self.options.path, why, self.options.path))

    def verify(self):
        """-> None, or what is wrong with Caddy's live upstreams (recorded in the result either way)."""
        listed, config, problem = self.read_live()
        if problem:
            return problem
        problem = self.compare(listed, config, after_reload=self.result["reloaded"])
        if problem:
            return problem
        self.result["verified"] = True
        return None

    def undo(self, step, problem):
        """A failed step: the previous file back; when the new one had been loaded, Caddy's previous configuration
        loaded again (the configuration saved before the change; without one, the reload command once more)."""
        if self.changed:
            failure = restore(self.module, self.options.path, self.previous, self.options.in_place)
            self.result["restored"] = failure is None
            notes = [failure or "the previous content of %s was restored" % self.options.path]
        else:
            notes = ["%s was not changed" % self.options.path]
        if step == "verify" and self.result["reloaded"]:
            if self.saved_config is not None and self.options.can_load_saved:
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
        if self.options.verify:
            listed, self.saved_config, problem = self.read_live()
            if problem:
                return self.finish(ERROR, "reading Caddy's running configuration failed: %s; nothing was changed (%s, "
                                   "since every split is read back)" % (problem, self.read_hint()), changed=False)
            self.drift = self.compare(listed, self.saved_config)
        elif self.options.reload == "admin_api":
            self.saved_config, problem = running_config(self.client, self.options.admin_url, self.options.timeout)
            if problem:
                return self.finish(ERROR, "reload failed: %s; nothing was changed" % problem, changed=False)
        repair = bool(self.drift) and self.options.reload != "none"
        if self.changed or repair:
            if self.changed:
                write_file(self.module, self.options.path, self.content, self.options.in_place)
            problem = self.reload()
            if problem:
                return self.undo("reload", problem)
            self.result["reloaded"] = self.options.reload != "none"
            if self.options.verify:
                problem = self.verify()
                if problem:
                    return self.undo("verify", problem)
        elif self.drift:
            self.result["verified"] = False
            return self.finish(ERROR, "verify failed: %s (%s is up to date; reload=none leaves the reload to you)"
                               % (self.drift, self.options.path), changed=False)
        elif self.options.verify:
            self.result["verified"] = True
        return self.finish(PASS, "%s; %s" % (self.done_text(), self.verified_text()), changed=self.changed or repair)

    def read_hint(self):
        if self.options.config_command:
            return ("config_command must print Caddy's running configuration, as GET /config/ answers it, within "
                    "timeout (%s s)" % _number(self.options.timeout))
        return ("admin_url must reach Caddy's admin API from this host - a Caddy in a container must publish it, or "
                "set config_command to read it inside the container")

    def done_text(self):
        how = self.options.how()
        if self.changed and self.options.reload == "none":
            return "wrote %s (reload=none: Caddy reads it at its next reload)" % self.options.path
        if self.changed:
            return "wrote %s and reloaded through %s" % (self.options.path, how)
        if self.drift:
            return "%s already up to date but Caddy did not run it (%s): reloaded through %s" % (
                self.options.path, self.drift, how)
        return "%s already up to date, no reload" % self.options.path

    def plan_only(self):
        """Check mode: nothing written, nothing reloaded; Caddy's live configuration is compared (a read)."""
        note = " (but %s)" % self.options.missing_command if self.options.missing_command else ""
        if self.changed:
            return self.finish(SKIPPED, "check mode: would write %d entries to %s and reload through %s%s" % (
                len(self.plan.entries), self.options.path, self.options.how(), note), changed=True)
        if self.options.verify:
            problem = self.verify()
            if problem and self.options.reload != "none":
                return self.finish(SKIPPED, "check mode: %s is up to date but %s: would reload through %s%s" % (
                    self.options.path, problem, self.options.how(), note), changed=True)
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
                    "restored": self.result["restored"], "drift_repaired": bool(self.drift) and status == PASS
                    and self.result["reloaded"]}
        for key in ("upstreams_listed", "lb_policy"):
            if key in self.result:
                evidence[key] = self.result[key]
        if self.options.template:
            evidence["caddyfile_template"] = self.options.template
        if self.options.verify and self.options.config_command:
            evidence["config_command"] = [mask_url_secrets(to_text(arg)) for arg in self.options.config_command]
        if self.options.uses_admin_url:
            evidence["admin_url"] = safe_url(self.options.admin_url)
        self.result["drift_repaired"] = evidence["drift_repaired"]
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
        upstreams_file=dict(type="path"),
        caddyfile_template=dict(type="path"),
        template_placeholder=dict(type="str", default=DEFAULT_PLACEHOLDER),
        reload=dict(type="str", default="admin_api", choices=list(RELOADS)),
        admin_url=dict(type="str", default="http://127.0.0.1:2019"),
        caddyfile=dict(type="path"),
        reload_command=dict(type="list", elements="str"),
        config_command=dict(type="list", elements="str"),
        verify_upstreams=dict(type="bool"),
        timeout=dict(type="float", default=10.0),
    )


REQUIRED_IF = [("reload", "admin_api", ("caddyfile",)), ("reload", "command", ("reload_command", "caddyfile"), True)]
REQUIRED_ONE_OF = [("upstreams_file", "caddyfile_template")]
MUTUALLY_EXCLUSIVE = [("upstreams_file", "caddyfile_template")]
REQUIRED_BY = {"caddyfile_template": ("caddyfile",)}
