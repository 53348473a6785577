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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import exit_with_records
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.host_checks import check_options, run


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
    problem = check_options(module.params)
    if problem:
        module.fail_json(msg=problem)
    exit_with_records(module, run(module))


if __name__ == "__main__":
    main()
