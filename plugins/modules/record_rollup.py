#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents record_rollup; it is the action plugin of the same name
# (plugins/action/record_rollup.py), which runs on the controller.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: record_rollup
short_description: One check result record standing for many (a soak window, a round of checks)
version_added: 0.1.0
description:
  - Combines check result records into one record of the given criterion, the way the gate combines a
    criterion's records - the worst status of the blocking records decides (C(error) beats C(fail) beats C(pass)
    beats C(skipped)); the summary names each part that did not pass, the evidence lists every part (criterion,
    name, status, summary).
  - No records at all is an C(error) - a rollup of nothing has decided nothing.
  - Roles use it instead of building records in templates, so every record goes through the collection's one
    record builder and its redaction.
  - This is an action plugin, it runs on the controller and never connects to a host.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: With O(skip_in_check_mode), the record is C(skipped) for check mode (C(skip_reason=check_mode)) and says the run
      was planned in check mode.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  criterion:
    description: The criterion of the record, for example C(soak.window).
    type: str
    required: true
  name:
    description: The record's name (defaults to O(criterion)); tells several records of one criterion apart.
    type: str
  label:
    description: How the summary names the whole, for example C(soak of 30 min).
    type: str
  records:
    description: The records to combine (lists of records are flattened; anything that is not a record is ignored).
    type: list
    elements: raw
    default: []
  results:
    description:
      - Registered results of check tasks; their C(records) are combined with O(records). A task that failed without
        records (bad input, a missing library) counts as an C(error) part with its message; a skipped task counts as
        nothing.
    type: list
    elements: raw
    default: []
  evidence:
    description: More evidence to keep beside the parts.
    type: dict
    default: {}
  blocking:
    description: Whether the combined record gates the release.
    type: bool
    default: true
  skip_in_check_mode:
    description: In check mode, return a C(skipped) record with C(skip_reason=check_mode) (the parts are still listed) instead of
      a decision.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: One verdict for the soak window
  cleanwithsnapshot.release.record_rollup:
    criterion: soak.window
    label: soak of 30 min (30 rounds)
    records: "{{ soak_round_records }}"
    skip_in_check_mode: true
  register: soak_window
"""

RETURN = r"""
records:
  description: The one combined record.
  returned: always
  type: list
  elements: dict
  sample:
    - criterion: soak.window
      name: soak.window
      status: fail
      blocking: true
      summary: "soak of 30 min: soak.window.round.3 fail: round 3: slo.error_rate fail: 5.2 % > 1 %"
      evidence: {parts: [{criterion: soak.window, name: soak.window.round.1, status: pass}], counts: {pass: 2, fail: 1}}
      duration_ms: 1200.4
status:
  description: The combined record's status.
  returned: always
  type: str
"""
