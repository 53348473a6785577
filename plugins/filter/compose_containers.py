# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""compose_containers: the summary of a Compose stack's containers that the deploy and rollback roles
read, made from the Docker Engine's inspect data (community.docker.docker_container_info)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: compose_containers
author: Contributors to the cleanwithsnapshot.release collection
version_added: "0.1.0"
short_description: Summarize a Compose stack's containers from their inspect data
description:
  - Turns the C(container) results of M(community.docker.docker_container_info) (the Docker Engine's
    inspect data) into one short entry per container, sorted by Compose service.
  - Missing containers (a V(null) result) are left out; missing fields get neutral values, so a
    container of another engine or an older Engine never breaks the summary.
options:
  _input:
    description: The inspect data of the containers, as returned in RV(community.docker.docker_container_info#module:container).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Summarize the stack's containers
  ansible.builtin.set_fact:
    stack_containers: "{{ inspected.results | map(attribute='container') | cleanwithsnapshot.release.compose_containers }}"
"""

RETURN = r"""
_value:
  description:
    - One entry per container, sorted by service then name.
    - C(service) is the C(com.docker.compose.service) label, C(name) the container name without its
      leading slash, C(status) the Engine's state (running, exited, restarting, ...), C(exit_code) the
      last exit code and C(restarts) the Engine's restart count.
  type: list
  elements: dict
  sample:
    - {service: api, name: cws-api-1, id: 4f0c..., image: "sha256:...", status: running, running: true, exit_code: 0, restarts: 0}
"""

from ansible.errors import AnsibleFilterError

COMPOSE_SERVICE_LABEL = "com.docker.compose.service"


def _summary(container):
    config = container.get("Config") or {}
    state = container.get("State") or {}
    labels = config.get("Labels") or {}
    return {
        "service": labels.get(COMPOSE_SERVICE_LABEL, ""),
        "name": (container.get("Name") or "").lstrip("/"),
        "id": container.get("Id") or "",
        "image": container.get("Image") or "",
        "status": state.get("Status") or "unknown",
        "running": bool(state.get("Running", False)),
        "exit_code": state.get("ExitCode"),
        "restarts": int(container.get("RestartCount") or 0),
    }


def compose_containers(containers):
    """The summary of every container in ``containers`` (inspect data), sorted by service and name."""
    if not isinstance(containers, (list, tuple)):
        raise AnsibleFilterError("compose_containers expects a list of container inspect results, got %s"
                                 % type(containers).__name__)
    summaries = []
    for container in containers:
        if container is None:
            continue
        if not isinstance(container, dict):
            raise AnsibleFilterError("compose_containers expects inspect results (dicts), got %s" % type(container).__name__)
        summaries.append(_summary(container))
    return sorted(summaries, key=lambda item: (item["service"], item["name"]))


class FilterModule(object):
    def filters(self):
        return {"compose_containers": compose_containers}
