# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host requirements host_preflight checks: free disk below the app directory, memory (required and
recommended), Docker Engine and Compose versions, and the directories the service needs. Each check
returns its record(s)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    ERROR, FAIL, PASS, SKIP_NOT_REQUESTED, SKIPPED, Stopwatch, make_record,
)

VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text):
    """The first dotted version in ``text`` as a tuple of ints, or None."""
    match = VERSION_RE.search(text or "")
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def existing_parent(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def mount_point(path):
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def check_disk(params):
    watch = Stopwatch()
    where = existing_parent(params["app_dir"])
    stat = os.statvfs(where)
    free_gb = round(stat.f_bavail * stat.f_frsize / 1e9, 1)
    required = params["min_free_disk_gb"]
    evidence = {"path": params["app_dir"], "measured_on": mount_point(where), "free_gb": free_gb, "required_gb": required}
    status = PASS if free_gb >= required else FAIL
    summary = "%s GB free on %s (at least %s GB required)" % (free_gb, evidence["measured_on"], required)
    return make_record("host.disk", status, summary, evidence, duration_ms=watch.elapsed_ms)


def read_meminfo(path="/proc/meminfo"):
    with open(path) as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise ValueError("MemTotal missing")


def check_memory(params):
    watch = Stopwatch()
    try:
        total = read_meminfo()
    except (IOError, OSError, ValueError) as exc:
        return [make_record("host.memory", ERROR, "cannot read total memory: %s" % exc, duration_ms=watch.elapsed_ms)]
    total_gib = round(total / float(1 << 30), 1)
    evidence = {"total_gib": total_gib, "required_gib": params["min_memory_gb"], "recommended_gib": params["recommended_memory_gb"]}
    records = []
    if total_gib < params["min_memory_gb"]:
        records.append(make_record("host.memory", FAIL, "%s GiB of memory, below the required %s GiB" % (total_gib, params["min_memory_gb"]),
                                   evidence, duration_ms=watch.elapsed_ms))
    else:
        records.append(make_record("host.memory", PASS, "%s GiB of memory (at least %s GiB required)" % (total_gib, params["min_memory_gb"]),
                                   evidence, duration_ms=watch.elapsed_ms))
        if total_gib < params["recommended_memory_gb"]:
            records.append(make_record("host.memory", FAIL, "%s GiB of memory, below the recommended %s GiB" % (total_gib, params["recommended_memory_gb"]),
                                       evidence, blocking=False, duration_ms=watch.elapsed_ms, name="host.memory:recommended"))
    return records


def run_version(module, argv, timeout):
    """(version tuple or None, text): the text names the command's failure when there is one."""
    executable = module.get_bin_path(argv[0])
    if not executable:
        return None, "%s not found on PATH" % argv[0]
    command = [executable] + argv[1:]
    limiter = module.get_bin_path("timeout")
    if limiter:  # a hung engine must not hang the release
        command = [limiter, str(timeout)] + command
    try:
        rc, out, err = module.run_command(command, environ_update={"LC_ALL": "C"}, check_rc=False, handle_exceptions=False)
    except Exception as exc:  # pylint: disable=broad-exception-caught  # a hung or failing engine is an outcome
        return None, "%s failed: %s" % (" ".join(argv), exc)
    if rc == 124 and limiter:
        return None, "%s did not answer within %s s" % (" ".join(argv), timeout)
    if rc != 0:
        reason = (err or out or "").strip().splitlines()
        return None, "%s exited %s%s" % (" ".join(argv), rc, (": " + reason[-1][:200]) if reason else "")
    version = parse_version(out)
    if version is None:
        return None, "%s printed no version" % " ".join(argv)
    return version, out.strip()


def check_docker(module, params):
    watch = Stopwatch()
    if not params["docker"]:
        return make_record("host.docker", SKIPPED, "container engine not checked: docker=false for this host",
                           duration_ms=watch.elapsed_ms, skip_reason=SKIP_NOT_REQUESTED)
    timeout = params["command_timeout"]
    engine, engine_text = run_version(module, [params["docker_command"], "version", "--format", "{{.Server.Version}}"], timeout)
    compose, compose_text = run_version(module, list(params["compose_command"]) + ["version", "--short"], timeout)
    want_engine, want_compose = parse_version(params["min_docker_version"]), parse_version(params["min_compose_version"])
    evidence = {
        "engine_version": ".".join(str(p) for p in engine) if engine else None,
        "compose_version": ".".join(str(p) for p in compose) if compose else None,
        "required_engine": params["min_docker_version"], "required_compose": params["min_compose_version"],
        "compose_command": " ".join(params["compose_command"]),
    }
    problems = []
    if engine is None:
        problems.append("Docker Engine: %s" % engine_text)
    elif engine < want_engine:
        problems.append("Docker Engine %s is older than %s" % (evidence["engine_version"], params["min_docker_version"]))
    if compose is None:
        problems.append("Compose: %s" % compose_text)
    elif compose < want_compose:
        problems.append("Compose %s is older than %s" % (evidence["compose_version"], params["min_compose_version"]))
    if problems:
        evidence["problems"] = problems
        return make_record("host.docker", FAIL, "; ".join(problems), evidence, duration_ms=watch.elapsed_ms)
    return make_record("host.docker", PASS, "Docker Engine %s, Compose %s" % (evidence["engine_version"], evidence["compose_version"]),
                       evidence, duration_ms=watch.elapsed_ms)


def check_dirs(params):
    watch = Stopwatch()
    app_dir = params["app_dir"]
    problems, checked = [], []

    def need(path, writable):
        checked.append(path)
        if not os.path.isdir(path):
            problems.append("%s is missing" % path)
        elif writable and not os.access(path, os.W_OK | os.X_OK):
            problems.append("%s is not writable" % path)

    need(app_dir, False)
    if params["backup_dir"]:
        need(params["backup_dir"], True)
    for sub in params["writable_dirs"]:
        need(os.path.join(app_dir, sub), True)
    for sub in params["required_dirs"]:
        need(os.path.join(app_dir, sub), False)
    evidence = {"checked": checked}
    if problems:
        evidence["problems"] = problems
        return make_record("host.dirs", FAIL, "; ".join(problems), evidence, duration_ms=watch.elapsed_ms)
    return make_record("host.dirs", PASS, "%d directories present and writable where required" % len(checked), evidence,
                       duration_ms=watch.elapsed_ms)


def check_options(params):
    """The options argument_spec cannot check; the message of the first bad one, or None."""
    for option in ("min_free_disk_gb", "min_memory_gb", "recommended_memory_gb"):
        if params[option] < 0:
            return "%s must not be negative, got %s" % (option, params[option])
    for option in ("min_docker_version", "min_compose_version"):
        if parse_version(params[option]) is None:
            return "%s must be a dotted version such as 20.10, got %r" % (option, params[option])
    if params["command_timeout"] < 1:
        return "command_timeout must be 1 second or more, got %s" % params["command_timeout"]
    if not params["compose_command"]:
        return "compose_command must name a command, for example [docker, compose]"
    for option in ("writable_dirs", "required_dirs"):
        for sub in params[option]:
            if os.path.isabs(sub) or ".." in sub.split("/"):
                return "%s entries are relative to app_dir and stay below it, got %r" % (option, sub)
    return None


def run(module):
    """Every record of one call, in the order disk, memory, docker, dirs."""
    params = module.params
    return [check_disk(params)] + check_memory(params) + [check_docker(module, params), check_dirs(params)]
