#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents check_inputs; it is the action plugin of the same name
# (plugins/action/check_inputs.py), which runs on the controller.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: check_inputs
short_description: Check a role's inputs before any check runs, naming the variables the user set
version_added: 0.1.0
description:
  - Reads the named variables and checks them before a role sends anything - waivers, lists of criterion ids
    (advisory, required), URLs, settings of which one must be given - and fails with every problem at once.
  - Each problem names the variable the user sets. A role variable whose default only hands over another variable
    - C(gate_waivers) defaults to C(release_waivers), passed on unchanged - is reported under that other one, so the
    message names C(release_waivers) when the inventory set it, and C(gate_waivers) when that was set instead.
  - A criterion id must be a known one - listed in the collection's C(docs/criteria.md) or in O(known_criteria) - and
    an unknown one is refused with the known ones that are close (C(backup.freshnes) - did you mean
    C(backup.freshness)?). A waiver that has expired is no error; it is returned in RV(expired_waivers) and shown
    as a warning, since the gate ignores it.
  - Values are never shown where they may be secrets; a URL's credentials are masked.
  - This is an action plugin, it runs on the controller and never connects to a host.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads and checks only; the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  waivers:
    description: Names of variables holding waivers, C([{criterion, reason, expires, host}]) as the gate reads them.
    type: list
    elements: str
    default: []
  criteria:
    description: Names of variables holding lists of criterion ids (advisory or required criteria).
    type: list
    elements: str
    default: []
  urls:
    description: Names of variables that must hold an C(http://) or C(https://) URL with a host.
    type: list
    elements: str
    default: []
  one_of:
    description: Groups of variable names of which at least one must be set (not empty).
    type: list
    elements: list
    default: []
  known_criteria:
    description:
      - Criteria known beyond the catalog, for example those the role's own probes name (C(verify_extra_probes)).
    type: list
    elements: str
    default: []
notes:
  - A variable that is not defined at all counts as not set.
"""

EXAMPLES = r"""
- name: Check the inputs before any check runs
  cleanwithsnapshot.release.check_inputs:
    waivers: [release_waivers]
    criteria: [release_advisory_criteria, verify_required_criteria]
    urls: [verify_api_base_url]
    one_of:
      - [verify_rls_tables, verify_rls_table_pattern]
"""

RETURN = r"""
errors:
  description: Every problem found, each naming the variable the user sets.
  returned: always
  type: list
  elements: str
  sample: ["release_waivers[0].criterion: backup.freshnes is not a known criterion (did you mean backup.freshness?)"]
expired_waivers:
  description: The waivers that have expired (the gate ignores them).
  returned: always
  type: list
  elements: str
  sample: ["release_waivers[1] (smoke.docs) expired on 2026-01-31: it waives nothing"]
"""
