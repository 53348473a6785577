#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_preflight
short_description: Check an application host's disk, memory, container engine and directories in one call
version_added: 0.1.0
description:
  - The host requirements of a release (the GO/NO-GO checklist's section 1) as check result records, for the
    release gate - C(host.disk) (free space where the application lives), C(host.memory) (total RAM, with an
    advisory record below the recommended size), C(host.docker) (Docker Engine and Compose versions) and
    C(host.dirs) (the application directory, the backup directory, writable C(logs/), C(var/), C(tmp/)).
  - Read-only - it never creates a directory or starts anything, so it runs the same way in check mode.
  - A requirement that cannot be measured (a missing C(docker) binary, an engine that does not answer) gives a
    C(fail) or C(error) record saying so, never a pass.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
attributes:
  check_mode:
    description: Can run in check_mode and return the same records as a normal run.
    support: full
    details: Only reads the host's state.
  diff_mode:
    description: Would show what changed.
    support: none
options:
  app_dir:
    description: The application directory (where the repository and C(.env) live).
    type: path
    default: /opt/cleaning
  backup_dir:
    description: The backup directory; it must exist and be writable. Not checked when empty.
    type: path
    default: /opt/backups/postgres
  min_free_disk_gb:
    description: The least free space, in GB (10^9 bytes), on the file system holding O(app_dir) (or its nearest existing parent).
    type: float
    default: 20
  min_memory_gb:
    description: The least total memory in GiB; less fails C(host.memory).
    type: float
    default: 2
  recommended_memory_gb:
    description: Less total memory than this (but at least O(min_memory_gb)) gives an advisory C(host.memory) record.
    type: float
    default: 4
  docker:
    description:
      - Check the container engine and Compose (C(host.docker)). Set false on hosts that run no containers;
        the record is then C(skipped) and says why.
    type: bool
    default: true
  docker_command:
    description: The Docker CLI.
    type: str
    default: docker
  compose_command:
    description:
      - The Compose command as a list, C([docker, compose]) (v2, the default) or C([docker-compose]) (v1).
    type: list
    elements: str
    default: [docker, compose]
  min_docker_version:
    description: The least Docker Engine (server) version.
    type: str
    default: '20.10'
  min_compose_version:
    description: The least Compose version.
    type: str
    default: '2.0'
  writable_dirs:
    description: Directories below O(app_dir) that must exist and be writable.
    type: list
    elements: str
    default: [logs]
  required_dirs:
    description: Directories below O(app_dir) that must exist.
    type: list
    elements: str
    default: [var, tmp]
  command_timeout:
    description: Seconds each version command may take.
    type: int
    default: 20
"""

EXAMPLES = r"""
- name: Host requirements of the release checklist
  cleanwithsnapshot.release.host_preflight:
    app_dir: /opt/cleaning
    backup_dir: /opt/backups/postgres
  register: host_checks

- name: A host that runs the service without containers (checks disk, memory and directories only)
  cleanwithsnapshot.release.host_preflight:
    app_dir: /srv/cws
    backup_dir: /srv/cws/backups
    docker: false
    min_free_disk_gb: 5
"""

RETURN = r"""
records:
  description: One check result record per criterion (C(host.disk), C(host.memory), C(host.docker), C(host.dirs)).
  returned: always
  type: list
  elements: dict
  sample:
    - criterion: host.disk
      name: host.disk
      status: pass
      blocking: true
      summary: 41.2 GB free on / (at least 20 GB required)
      evidence: {path: /opt/cleaning, measured_on: /, free_gb: 41.2, required_gb: 20}
      duration_ms: 0.1
status:
  description: The worst status among the blocking records.
  returned: always
  type: str
  sample: pass
counts:
  description: How many records have each status.
  returned: always
  type: dict
  sample: {pass: 4, fail: 0, error: 0, skipped: 0}
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    ERROR, FAIL, PASS, SKIPPED, Stopwatch, exit_with_records, make_record,
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
                           duration_ms=watch.elapsed_ms)
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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app_dir=dict(type="path", default="/opt/cleaning"),
            backup_dir=dict(type="path", default="/opt/backups/postgres"),
            min_free_disk_gb=dict(type="float", default=20),
            min_memory_gb=dict(type="float", default=2),
            recommended_memory_gb=dict(type="float", default=4),
            docker=dict(type="bool", default=True),
            docker_command=dict(type="str", default="docker"),
            compose_command=dict(type="list", elements="str", default=["docker", "compose"]),
            min_docker_version=dict(type="str", default="20.10"),
            min_compose_version=dict(type="str", default="2.0"),
            writable_dirs=dict(type="list", elements="str", default=["logs"]),
            required_dirs=dict(type="list", elements="str", default=["var", "tmp"]),
            command_timeout=dict(type="int", default=20),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for option in ("min_free_disk_gb", "min_memory_gb", "recommended_memory_gb"):
        if params[option] < 0:
            module.fail_json(msg="%s must not be negative, got %s" % (option, params[option]))
    for option in ("min_docker_version", "min_compose_version"):
        if parse_version(params[option]) is None:
            module.fail_json(msg="%s must be a dotted version such as 20.10, got %r" % (option, params[option]))
    if params["command_timeout"] < 1:
        module.fail_json(msg="command_timeout must be 1 second or more, got %s" % params["command_timeout"])
    if not params["compose_command"]:
        module.fail_json(msg="compose_command must name a command, for example [docker, compose]")
    for option in ("writable_dirs", "required_dirs"):
        for sub in params[option]:
            if os.path.isabs(sub) or ".." in sub.split("/"):
                module.fail_json(msg="%s entries are relative to app_dir and stay below it, got %r" % (option, sub))
    records = [check_disk(params)] + check_memory(params) + [check_docker(module, params), check_dirs(params)]
    exit_with_records(module, records)


if __name__ == "__main__":
    main()
