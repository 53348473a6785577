#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: alembic_head
short_description: Check that the Alembic history has one head and that the database is at it
version_added: 0.1.0
description:
  - Reads the expected head revision(s) from the Alembic migration scripts WITHOUT importing them
    (C(revision), C(down_revision), C(branch_labels) and C(depends_on) are read from the source with
    Python's C(ast)), so the service's own dependencies are not needed where the check runs; or takes
    them from O(expected_heads); or both, cross-checked.
  - Reads the applied revision(s) from the database's version table in a READ ONLY transaction.
  - Returns check-result records for the criteria C(migrations.single_head) (the scripts have at most
    O(max_heads) heads), C(migrations.at_head) (the version table holds exactly those heads; a database
    behind says how many revisions are pending, a database ahead or on an unknown revision says so) and,
    when O(readyz_detail) is given, C(migrations.readyz) (what the running service reports matches the database).
  - A missing or empty version table is a C(fail), never a pass. A database that cannot be reached gives
    an C(error) record (the gate treats it as NO-GO). A failing check is data, the task itself does not fail.
  - Merges (tuple C(down_revision)), parallel branches, branch labels and C(depends_on) (a revision id or a
    branch label) follow Alembic's rules; a head is a revision that no other revision names as its
    C(down_revision).
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - cleanwithsnapshot.release.postgres
options:
  migrations_dir:
    description:
      - The Alembic script location (the folder holding C(versions/)) or the versions folder itself.
      - Every C(*.py) file in it is read as Alembic would load it (C(__init__.py) and editor lock files are
        skipped; a script without a C(revision) variable takes the id from a hexadecimal file name).
      - At least one of O(migrations_dir) and O(expected_heads) is required.
    type: path
  recursive_version_locations:
    description: Also read scripts in sub-folders of the versions folder (Alembic's option of that name).
    type: bool
    default: false
  expected_heads:
    description:
      - The head revision(s) the release expects, for example from the release manifest.
      - With O(migrations_dir) too, the scripts' heads must equal these (a mismatch fails C(migrations.single_head)),
        and the database is compared with these.
    type: list
    elements: str
  max_heads:
    description: How many heads the scripts may have (the runbook requires exactly one).
    type: int
    default: 1
  version_table:
    description: The Alembic version table.
    type: str
    default: alembic_version
  version_table_schema:
    description: The schema of the version table.
    type: str
    default: public
  readyz_detail:
    description:
      - The C(detail) object of the C(migrations) check of the service's C(/readyz) answer
        (C(migrations_current), C(current_version), C(expected_head), C(expected_heads)).
      - When given, a C(migrations.readyz) record says whether the running service agrees with the database
        and the scripts (a service connected to another database, or running other code, disagrees).
    type: dict
  blocking:
    description: Whether the records block the release (the gate decides on blocking records only).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: Read-only, the check runs for real in check mode (the transaction is READ ONLY).
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Runs in check mode exactly as in normal mode; it only reads (the transaction is READ ONLY).
  - Does not need Alembic or the service's code on the host, only the script files and C(psycopg2).
  - The connecting role needs C(SELECT) on the version table; the migration owner or the application role both do.
seealso:
  - module: cleanwithsnapshot.release.rls_policy_check
"""

EXAMPLES = r"""
- name: Scripts have one head and the database is at it
  cleanwithsnapshot.release.alembic_head:
    migrations_dir: /srv/cleanwithsnapshot/backend/alembic
    login_host: db.internal
    login_user: app
    login_password: "{{ vault_db_app_password }}"
    login_db: cleanwithsnapshot
  register: migrations

- name: Expected head from the release manifest, cross-checked with the scripts and /readyz
  cleanwithsnapshot.release.alembic_head:
    migrations_dir: "{{ release_checkout }}/backend/alembic"
    expected_heads: [merge_20260224_01]
    dsn: "{{ database_url }}"
    readyz_detail: "{{ (readyz.json.checks | selectattr('name', 'equalto', 'migrations') | first).detail }}"
  register: migrations

- name: Only the expected head (no scripts on this host), a custom version table
  cleanwithsnapshot.release.alembic_head:
    expected_heads: [merge_20260224_01]
    version_table: alembic_version_app
    version_table_schema: ops
    dsn: "{{ database_url }}"
"""

RETURN = r"""
records:
  description: One check-result record per criterion.
  returned: always
  type: list
  elements: dict
  contains:
    criterion:
      description: C(migrations.single_head), C(migrations.at_head) or C(migrations.readyz).
      type: str
    name:
      description: The same as the criterion, except C(migrations.readyz.matches_database) for the C(readyz_detail) cross-check.
      type: str
    status:
      description: C(pass), C(fail), C(error) (could not decide) or C(skipped).
      type: str
    blocking:
      description: Whether the record can stop the release.
      type: bool
    summary:
      description: One line naming the head(s), the revision(s) and what is wrong.
      type: str
    evidence:
      description:
        - For C(migrations.single_head) the source (C(scripts), C(expected_heads) or both), C(heads),
          C(head_details), C(revision_count), C(merge_count), C(problems).
        - For C(migrations.at_head) C(version_table), C(current) (the rows), C(expected_heads), C(behind)
          (pending revision count), C(pending), C(ahead), C(ahead_by), C(unknown), C(extra), C(target).
        - For C(migrations.readyz) each compared field with the service's and the database's value.
      type: dict
    duration_ms:
      description: Time the check took.
      type: float
  sample:
    - criterion: migrations.at_head
      name: migrations.at_head
      status: fail
      blocking: true
      summary: "database is 2 revision(s) behind head merge_20260224_01 (at 0042_invoices): pending 0043_x, merge_20260224_01"
      evidence: {current: [0042_invoices], behind: 2, pending: [0043_x, merge_20260224_01]}
      duration_ms: 4.2
status:
  description: The aggregate of the blocking records (C(error) beats C(fail) beats C(pass)).
  returned: always
  type: str
  sample: pass
counts:
  description: How many records have each status.
  returned: always
  type: dict
  sample: {pass: 2, fail: 0, error: 0, skipped: 0}
heads:
  description: The head revision(s) the database was compared with.
  returned: always
  type: list
  elements: str
  sample: [merge_20260224_01]
current:
  description: The revision(s) in the version table (empty when it is missing or empty or unreachable).
  returned: always
  type: list
  elements: str
  sample: [merge_20260224_01]
"""

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.alembic_check import run, validate
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import exit_with_records
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.postgres import (
    postgres_common_argument_spec, postgres_module)


def main():
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        migrations_dir=dict(type="path"),
        recursive_version_locations=dict(type="bool", default=False),
        expected_heads=dict(type="list", elements="str"),
        max_heads=dict(type="int", default=1),
        version_table=dict(type="str", default="alembic_version"),
        version_table_schema=dict(type="str", default="public"),
        readyz_detail=dict(type="dict"),
        blocking=dict(type="bool", default=True),
    )
    module = postgres_module(argument_spec, required_one_of=[["migrations_dir", "expected_heads"]])
    validate(module)
    records, heads, current = run(module.params)
    exit_with_records(module, records, heads=heads, current=current)


if __name__ == "__main__":
    main()
