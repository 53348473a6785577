#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: rls_policy_check
short_description: Prove PostgreSQL row-level security isolates tenants, as the application role
version_added: 0.1.0
description:
  - Checks the multi-tenant row-level security (RLS) of the required tables and returns check-result records
    for the criteria C(rls.enabled_forced), C(rls.policies), C(rls.isolation) and C(rls.coverage).
  - C(rls.enabled_forced) - every required table has C(relrowsecurity) AND C(relforcerowsecurity) (without FORCE
    the table owner bypasses RLS).
  - C(rls.policies) - the expected policy (O(policy_name_pattern), read from C(pg_policies.policyname)) is present,
    permissive, applies to the app role, and its C(USING)/C(WITH CHECK) expressions read O(setting) with
    C(current_setting) (and compare O(org_column)); any other permissive policy that does not read the setting
    (C(USING true), a policy on another setting) is a C(fail), because permissive policies are OR-ed and it leaks rows.
  - C(rls.isolation) - a behavioural proof run AS THE APPLICATION ROLE inside ONE transaction that is ALWAYS rolled
    back. Per table, under its own savepoint, rows of other orgs must be invisible under org A and under org B and
    nothing may be visible with no org set; then (O(write_probes)) a probe row is inserted for org A (foreign-key
    parents are inserted first, in org A; the other NOT NULL columns get values generated from the catalog types,
    enums and one-column CHECK lists, or taken from O(probe_values)); it must be visible to org A and invisible
    under org B and with no org set; an insert for org B while the setting is org A, an insert with no org set and
    moving the row to org B by UPDATE must be refused with C(new row violates row-level security policy); an UPDATE
    under org B must touch 0 rows.
  - If the role the proof runs as is a superuser or has BYPASSRLS (read from C(pg_roles) for the role actually
    used), C(rls.isolation) is C(fail) - RLS does not apply to it, so the proof is impossible.
  - Tables without O(org_column) (policies that join through another table, for example with C(EXISTS) through
    C(bookings)) get the policy check and the read-only part of the proof; the write probes run only when
    O(probe_values) has an entry for them (an empty dict is enough when a NOT NULL foreign key leads to an org table).
  - C(rls.coverage) (advisory unless O(coverage_blocking)) lists the tables of O(schema) that have O(org_column) but
    no RLS, and those with RLS enabled but not forced.
  - Failing checks are data (records), not a failed task; only bad input fails the task.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - cleanwithsnapshot.release.postgres
options:
  tables:
    description:
      - The tables that must be isolated (plain names in O(schema)). Which tables are required is policy, kept
        in role defaults, not in this module.
      - At least one of O(tables) and O(table_pattern) is required; the two are combined.
    type: list
    elements: str
  table_pattern:
    description:
      - A Python regular expression matched against the WHOLE table name; selects the tables of O(schema) that
        match and have O(org_column) or row level security enabled.
    type: str
  discover_tables:
    description:
      - Also check every table of O(schema) that has a policy whose C(USING) or C(WITH CHECK) expression reads
        O(setting), so a new tenant table is covered without changing O(tables), which stays the must-have floor
        (a table whose policy was dropped is no longer discovered, but a required one still fails).
      - The discovered tables are returned in RV(discovered_tables) and named in the records' evidence.
    type: bool
    default: false
  tables_variable:
    description:
      - The name under which the operator keeps the required tables, quoted in the message about a required table
        that does not exist (the expectation may be stale). The verify role passes C(verify_rls_tables).
    type: str
    default: tables
  schema:
    description: The schema of the tables.
    type: str
    default: public
  org_column:
    description: The tenant column the policies compare.
    type: str
    default: org_id
  setting:
    description: The setting the application sets with C(SET LOCAL) at the start of each transaction.
    type: str
    default: app.current_org_id
  policy_name_pattern:
    description: The expected policy name; C({table}) and C({schema}) are replaced.
    type: str
    default: "{table}_org_isolation"
  app_role:
    description:
      - The application role the proof runs as (NOSUPERUSER, NOBYPASSRLS, not the tables' owner).
      - Two ways to connect are supported. Connect AS the application role (O(login_user) or O(dsn) of the app) and
        leave O(app_role) unset or equal to it; or connect as a superuser, the owner or any role that is a member
        of the application role and set O(app_role); the proof then runs after C(SET LOCAL ROLE) to it, so RLS
        applies exactly as it does to the application.
      - Unset, the proof runs as the connecting role, which fails the isolation criterion if that role is a
        superuser or has BYPASSRLS.
    type: str
  org_a:
    description: The org id (UUID) the probe rows belong to. A random UUID when unset.
    type: str
  org_b:
    description: The other org id (UUID) that must see none of org A's rows. A random UUID when unset.
    type: str
  behavioural:
    description: Run the behavioural proof (C(rls.isolation)); when false that record is C(skipped).
    type: bool
    default: true
  write_probes:
    description:
      - Insert and update probe rows (always rolled back). When false the proof only reads (the transaction is
        then READ ONLY) and shows that existing rows of other orgs are invisible; a weaker proof.
    type: bool
    default: true
  probe_values:
    description:
      - Per table, column values for the probe row, for columns the generated values cannot satisfy (a CHECK
        constraint, a trigger's rule, an unusual type). Keys are table names, values dicts of column to value.
      - O(org_column) is always set by the check itself. An entry (even C({})) turns on the write probes of a
        table without O(org_column).
      - An entry for a table of O(schema) that is not checked is ignored (role defaults may hold values for every
        table); a name that is not a table of O(schema) fails the task.
    type: dict
    default: {}
  coverage:
    description: Report the coverage record C(rls.coverage).
    type: bool
    default: true
  coverage_blocking:
    description: Make C(rls.coverage) block the release (advisory by default).
    type: bool
    default: false
  blocking:
    description: Whether C(rls.enabled_forced), C(rls.policies) and C(rls.isolation) block the release.
    type: bool
    default: true
  statement_timeout:
    description: Seconds any one statement of the check may take (C(statement_timeout), local to its transaction); a probe
      that runs out of time makes its table C(error).
    type: int
    default: 30
  lock_timeout:
    description: Seconds a probe may wait for a lock before giving up (C(lock_timeout)).
    type: int
    default: 5
attributes:
  check_mode:
    support: full
    details: Runs for real in check mode; the behavioural proof's writes live in one transaction that is always rolled back.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Check mode runs everything, the write probes included - they are part of a proof that never commits. All probe
    rows, generated parent rows and updates live only inside one transaction that is always rolled back (each table
    also under a savepoint rolled back at its end). Effects outside the transaction are not undone by PostgreSQL -
    nextval() is not transactional, so an integer column filled by a sequence (C(serial), C(identity)) gets an explicit
    value near its type's maximum in every probe row and no sequence moves; a sequence used any other way (a
    non-integer default, a trigger) would still advance, and a trigger that reaches outside the database would
    act. Set O(write_probes=false) where that matters; that transaction is READ ONLY.
  - PostgreSQL checks a policy's WITH CHECK before NOT NULL, CHECK, unique and foreign-key constraints, so the
    cross-org insert probes are decisive even when a generated value would break a constraint.
  - The runbook's C(SELECT polname FROM pg_policies) is wrong (C(polname) is in C(pg_policy)); this module reads
    C(pg_policies.policyname).
  - A connection that cannot be made gives C(error) records (NO-GO), never a pass.
seealso:
  - module: cleanwithsnapshot.release.alembic_head
"""

EXAMPLES = r"""
- name: RLS of the tenant tables, proven as the app role (connected as the migration owner)
  cleanwithsnapshot.release.rls_policy_check:
    login_host: db.internal
    login_user: cws_owner
    login_password: "{{ vault_db_owner_password }}"
    login_db: cleanwithsnapshot
    app_role: cws_app
    tables: "{{ rls_required_tables }}"
    probe_values:
      invoices:
        status: draft
      booking_photos: {}
  register: rls

- name: Connected as the application itself, read-only proof, every org table matched by pattern
  cleanwithsnapshot.release.rls_policy_check:
    dsn: "{{ database_url }}"
    table_pattern: ".*"
    write_probes: false
    coverage_blocking: true
"""

RETURN = r"""
records:
  description: One check-result record per criterion (C(rls.enabled_forced), C(rls.policies), C(rls.isolation), C(rls.coverage)).
  returned: always
  type: list
  elements: dict
  contains:
    criterion:
      description: The criterion id.
      type: str
    name:
      description: The same as the criterion.
      type: str
    status:
      description: C(pass), C(fail), C(error) (could not decide) or C(skipped).
      type: str
    blocking:
      description: Whether the record can stop the release (C(rls.coverage) is advisory unless O(coverage_blocking)).
      type: bool
    summary:
      description: One line naming the failing tables and why.
      type: str
    evidence:
      description:
        - C(tables) maps each required table to what was found (flags, policies with their expressions, or the
          proof's observations such as C(probe_row_visible_as_org_b) and C(cross_org_insert)).
        - C(failed), C(errors) and C(skipped) list table names; C(rls.isolation) also has C(role), C(org_a),
          C(org_b), C(write_probes), C(statements) and C(rolled_back).
        - C(rls.coverage) has C(org_tables), C(without_rls) and C(not_forced).
      type: dict
    duration_ms:
      description: Time the check took.
      type: float
  sample:
    - criterion: rls.isolation
      name: rls.isolation
      status: fail
      blocking: true
      summary: "as role cws_app: isolation broken on leads: org_a's probe row is visible with app.current_org_id set to org_b"
      evidence: {role: cws_app, failed: [leads], rolled_back: true}
      duration_ms: 61.3
status:
  description: The aggregate of the blocking records.
  returned: always
  type: str
  sample: fail
counts:
  description: How many records have each status.
  returned: always
  type: dict
  sample: {pass: 3, fail: 1, error: 0, skipped: 0}
tables:
  description: The tables that were checked (the required ones, then the discovered ones).
  returned: always
  type: list
  elements: str
  sample: [bookings, leads]
discovered_tables:
  description: With O(discover_tables), the checked tables that were found by their policies, not named in O(tables) or O(table_pattern).
  returned: when the catalog could be read and O(discover_tables) is true
  type: list
  elements: str
  sample: [worker_notes]
role:
  description: The role the behavioural proof ran as (or would have).
  returned: when the database could be reached
  type: str
  sample: cws_app
"""

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import exit_with_records
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.postgres import (
    postgres_common_argument_spec, postgres_module, secrets_of)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import redact
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.rls_check import run, validate


def main():
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        tables=dict(type="list", elements="str"),
        table_pattern=dict(type="str"),
        discover_tables=dict(type="bool", default=False),
        tables_variable=dict(type="str", default="tables"),
        schema=dict(type="str", default="public"),
        org_column=dict(type="str", default="org_id"),
        setting=dict(type="str", default="app.current_org_id"),
        policy_name_pattern=dict(type="str", default="{table}_org_isolation"),
        app_role=dict(type="str"),
        org_a=dict(type="str"),
        org_b=dict(type="str"),
        behavioural=dict(type="bool", default=True),
        write_probes=dict(type="bool", default=True),
        probe_values=dict(type="dict", default={}),
        coverage=dict(type="bool", default=True),
        coverage_blocking=dict(type="bool", default=False),
        blocking=dict(type="bool", default=True),
        statement_timeout=dict(type="int", default=30),
        lock_timeout=dict(type="int", default=5),
    )
    module = postgres_module(argument_spec, required_one_of=[["tables", "table_pattern"]])
    validate(module)
    secrets = secrets_of(module.params)
    records, tables, role, discovered = run(module, secrets)
    extra = {"tables": tables}
    if discovered is not None and module.params["discover_tables"]:
        extra["discovered_tables"] = discovered
    if role is not None:
        extra["role"] = role["name"]
    exit_with_records(module, redact(records, secrets), **redact(extra, secrets))


if __name__ == "__main__":
    main()
