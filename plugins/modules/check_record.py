#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents check_record; it is the action plugin of the same name
# (plugins/action/check_record.py), which runs on the controller.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: check_record
short_description: Check result records from a role's own steps (deploy, rollback), built and validated in one place
version_added: 0.1.0
description:
  - Turns a role's own findings (a migration's outcome, the state of a stack's containers, a rollback's steps) into
    check result records with the collection's one record builder - the same validation (criterion, status,
    C(skip_reason)) and the same redaction as every module's records - so no role assembles a record in a template.
  - Secrets are masked in every field - URL credentials, C(password=) keywords, values of sensitive keys and every
    value of O(redact_values).
  - This is an action plugin, it runs on the controller and never connects to a host.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Builds the same records in check mode; a role marks a planned step with O(records[].skip_reason=check_mode).
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  records:
    description: The records to build.
    type: list
    elements: dict
    required: true
    suboptions:
      criterion:
        description: The criterion, for example C(deploy.migrate).
        type: str
        required: true
      name:
        description: The record's name (defaults to O(records[].criterion)).
        type: str
      status:
        description: The outcome; C(error) means the check could not decide (never a pass).
        type: str
        required: true
        choices: [pass, fail, error, skipped]
      summary:
        description: One line a person reads.
        type: str
        required: true
      evidence:
        description: What was measured.
        type: dict
        default: {}
      blocking:
        description: Whether a non-pass stops the release.
        type: bool
        default: true
      duration_ms:
        description: How long the step took.
        type: float
        default: 0.0
      skip_reason:
        description: Why a C(skipped) record was not decided; only with O(records[].status=skipped).
        type: str
        choices: [check_mode, not_requested, not_applicable]
  host:
    description: When given, also return RV(results) in the shape the gate reads (C([{records, host}])).
    type: str
  redact_values:
    description: Values masked wherever they appear.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Build the migration record
  cleanwithsnapshot.release.check_record:
    host: "{{ inventory_hostname }}"
    records:
      - criterion: deploy.migrate
        status: "{{ 'pass' if migrate.rc == 0 else 'fail' }}"
        summary: "alembic upgrade head {{ 'succeeded' if migrate.rc == 0 else 'FAILED' }}"
        evidence: {rc: "{{ migrate.rc }}"}
  register: deploy_record
"""

RETURN = r"""
records:
  description: The records, validated and redacted.
  returned: success
  type: list
  elements: dict
results:
  description: C([{records, host}]), the shape of a check result the gate reads.
  returned: when O(host) is given
  type: list
  elements: dict
"""
