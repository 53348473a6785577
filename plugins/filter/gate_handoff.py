# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gate_handoff: the one hand-off of a check role's registered results to the gate (preflight, verify,
backup_drill), so the three roles' rescue/always sections share it instead of repeating its Jinja."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: gate_handoff
author: Contributors to the cleanwithsnapshot.release collection
version_added: "0.1.0"
short_description: Hand a check role's registered results to the gate
description:
  - Takes the results a role's check tasks registered (a task that did not run leaves V(null), which is dropped),
    keeps only what the gate reads (C(records), C(failed), C(msg), C(skipped)) and tags each with the host it
    ran for.
  - Keeping only those keys matters, since a registered result echoes its module's arguments, which every later
    task and callback would otherwise copy, per host.
options:
  _input:
    description: The registered results, V(null) for a task that did not run.
    type: list
    elements: raw
    required: true
  host:
    description: The inventory host the results were made for.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Hand the results to the gate
  ansible.builtin.set_fact:
    verify_results: >-
      {{ [verify_http_result | default(none), verify_failed_result | default(none)]
         | cleanwithsnapshot.release.gate_handoff(inventory_hostname) }}
"""

RETURN = r"""
_value:
  description: One entry per result that ran, with its C(records), C(failed), C(msg) and C(skipped) and C(host).
  type: list
  elements: dict
  sample:
    - {records: [{criterion: health.liveness, status: pass, summary: "/healthz 200", blocking: true}], failed: false, host: app1}
"""

from ansible.errors import AnsibleFilterError

GATE_KEYS = ("records", "failed", "msg", "skipped")


def gate_handoff(results, host):
    """The results that ran, slimmed to what the gate reads, each tagged with ``host``."""
    if not isinstance(results, (list, tuple)):
        raise AnsibleFilterError("gate_handoff expects a list of registered results, got %s" % type(results).__name__)
    handed = []
    for result in results:
        if not result:
            continue
        if not isinstance(result, dict):
            raise AnsibleFilterError("gate_handoff expects registered results (dicts), got %s" % type(result).__name__)
        entry = dict((key, result[key]) for key in GATE_KEYS if key in result)
        entry["host"] = host
        handed.append(entry)
    return handed


class FilterModule(object):
    def filters(self):
        return {"gate_handoff": gate_handoff}
