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

import re
import uuid

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import rls
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    ERROR, FAIL, PASS, SKIPPED, Stopwatch, exit_with_records, join_limited, make_record)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.postgres import (
    HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR, PostgresConnectionError, connect, describe_target, identifier, pgsql,
    postgres_common_argument_spec, postgres_mutually_exclusive, psycopg2, secrets_of, validate_connection_params)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import redact

ENABLED_FORCED = "rls.enabled_forced"
POLICIES = "rls.policies"
ISOLATION = "rls.isolation"
COVERAGE = "rls.coverage"
LISTED = 20


def _short(items, limit=LISTED):
    return join_limited(items, limit)


class BadInput(Exception):
    """Input that can only be judged once connected (unknown role, unknown probe column)."""


def validate(module):
    params = module.params
    validate_connection_params(module)
    for option in ("schema", "org_column"):
        problem = rls.identifier_problem(params[option])
        if problem:
            module.fail_json(msg="%s %s" % (option, problem))
    for table in params["tables"] or []:
        problem = rls.identifier_problem(table)
        if problem:
            module.fail_json(msg="tables: %r %s" % (table, problem))
        if "." in table:
            module.fail_json(msg="tables: %r has a dot; give plain table names and set schema" % table)
    if params["tables"] is not None and not params["tables"] and not params["table_pattern"]:
        module.fail_json(msg="tables is empty and no table_pattern is given: nothing to check")
    if params["table_pattern"] is not None:
        try:
            re.compile(params["table_pattern"])
        except re.error as exc:
            module.fail_json(msg="table_pattern is not a valid regular expression: %s" % exc)
    problem = rls.setting_problem(params["setting"])
    if problem:
        module.fail_json(msg="setting %s" % problem)
    problem = rls.pattern_problem(params["policy_name_pattern"])
    if problem:
        module.fail_json(msg="policy_name_pattern %s" % problem)
    if params["app_role"] is not None:
        problem = rls.identifier_problem(params["app_role"])
        if problem:
            module.fail_json(msg="app_role %s" % problem)
    for option in ("org_a", "org_b"):
        if params[option] is not None and rls.uuid_problem(params[option]):
            module.fail_json(msg="%s is not a UUID" % option)
    for option in ("statement_timeout", "lock_timeout"):
        if params[option] < 1:
            module.fail_json(msg="%s must be 1 second or more, got %s" % (option, params[option]))
    for table, values in params["probe_values"].items():
        if rls.identifier_problem(table):
            module.fail_json(msg="probe_values: table %r %s" % (table, rls.identifier_problem(table)))
        if not isinstance(values, dict):
            module.fail_json(msg="probe_values: the entry of %s must be a dict of column to value" % table)
        for column in values:
            if rls.identifier_problem(column):
                module.fail_json(msg="probe_values: column %r of %s %s" % (column, table, rls.identifier_problem(column)))


def org_ids(params):
    org_a = str(uuid.UUID(params["org_a"])) if params["org_a"] else str(uuid.uuid4())
    org_b = str(uuid.UUID(params["org_b"])) if params["org_b"] else str(uuid.uuid4())
    while org_b == org_a and not params["org_b"]:
        org_b = str(uuid.uuid4())
    if org_a == org_b:
        raise BadInput("org_a and org_b are the same org: the proof needs two")
    return org_a, org_b


def required_tables(params, catalog):
    names = list(params["tables"] or [])
    if params["table_pattern"] is not None:
        pattern = re.compile(params["table_pattern"])
        for name, info in sorted(catalog.items()):
            if pattern.fullmatch(name) and (info["has_org_column"] or info["rls_enabled"]) and name not in names:
                names.append(name)
    unique = []
    for name in names:
        if name not in unique:
            unique.append(name)
    return unique


def discovered_tables(params, cursor, catalog, required, role):
    """The tables of the schema, beyond the required ones, that have a policy reading the setting."""
    if not params["discover_tables"]:
        return []
    others = sorted(name for name in catalog if name not in required)
    found = []
    for table, policies in sorted(rls.read_policies(cursor, params["schema"], others, role).items()):
        if any(rls.reads_setting(policy["qual"], params["setting"]) or rls.reads_setting(policy["with_check"], params["setting"])
               for policy in policies):
            found.append(table)
    return found


def error_records(params, summary, evidence):
    records = [make_record(criterion, ERROR, summary, evidence, params["blocking"])
               for criterion in (ENABLED_FORCED, POLICIES, ISOLATION)]
    if params["coverage"]:
        records.append(make_record(COVERAGE, ERROR, summary, evidence, params["coverage_blocking"]))
    return records


def enabled_forced_record(params, tables, catalog, role, watch):
    evidence = {"schema": params["schema"], "tables": {}, "failed": []}
    problems = []
    for table in tables:
        info = catalog.get(table)
        ok, reasons = rls.check_enabled_forced(info, params["tables_variable"])
        entry = {"ok": ok}
        if info:
            entry.update({"relrowsecurity": info["rls_enabled"], "relforcerowsecurity": info["rls_forced"], "owner": info["owner"],
                          "app_role_has_owner_privileges": info["role_is_owner"]})
        if not ok:
            entry["reasons"] = reasons
            evidence["failed"].append(table)
            problems.append("%s (%s)" % (table, "; ".join(reasons)))
        evidence["tables"][table] = entry
    if not tables:
        return make_record(ENABLED_FORCED, FAIL, "no required table: tables/table_pattern selected nothing in schema %s" % params["schema"],
                           evidence, params["blocking"], watch.elapsed_ms)
    if problems:
        summary = "RLS not enabled and forced on %d of %d tables: %s" % (len(problems), len(tables), _short(problems, 10))
        return make_record(ENABLED_FORCED, FAIL, summary, evidence, params["blocking"], watch.elapsed_ms)
    return make_record(ENABLED_FORCED, PASS, "RLS enabled and forced on all %d required tables" % len(tables), evidence,
                       params["blocking"], watch.elapsed_ms)


def policies_record(params, tables, catalog, policies, watch):
    evidence = {"schema": params["schema"], "setting": params["setting"], "tables": {}, "failed": [], "extra_policies": []}
    problems = []
    for table in tables:
        expected = rls.policy_name(params["policy_name_pattern"], params["schema"], table)
        ok, reasons, entry = rls.check_policies(table, catalog.get(table), policies.get(table, []), expected,
                                                params["setting"], params["org_column"], params["tables_variable"])
        entry["ok"] = ok
        if not ok:
            entry["reasons"] = reasons
            evidence["failed"].append(table)
            problems.append("%s: %s" % (table, "; ".join(reasons)))
        evidence["extra_policies"].extend(entry.get("extra_policies", []))
        evidence["tables"][table] = entry
    if not tables:
        return make_record(POLICIES, FAIL, "no required table to check", evidence, params["blocking"], watch.elapsed_ms)
    if problems:
        summary = "policy problems on %d of %d tables: %s" % (len(problems), len(tables), _short(problems, 10))
        return make_record(POLICIES, FAIL, summary, evidence, params["blocking"], watch.elapsed_ms)
    summary = "expected policies present and reading %s on all %d tables" % (params["setting"], len(tables))
    if evidence["extra_policies"]:
        summary += " (further policies, all reading it: %s)" % _short(evidence["extra_policies"], 5)
    return make_record(POLICIES, PASS, summary, evidence, params["blocking"], watch.elapsed_ms)


def coverage_record(params, catalog, watch):
    org_tables = sorted(name for name, info in catalog.items() if info["has_org_column"])
    without = sorted(name for name in org_tables if not catalog[name]["rls_enabled"])
    not_forced = sorted(name for name in org_tables if catalog[name]["rls_enabled"] and not catalog[name]["rls_forced"])
    evidence = {"schema": params["schema"], "org_column": params["org_column"], "org_tables": len(org_tables),
                "with_rls": len(org_tables) - len(without), "without_rls": without, "not_forced": not_forced}
    if without or not_forced:
        parts = []
        if without:
            parts.append("%d of %d tables with the %s column have no RLS: %s"
                         % (len(without), len(org_tables), params["org_column"], _short(without)))
        if not_forced:
            parts.append("%d have RLS enabled but not forced: %s" % (len(not_forced), _short(not_forced)))
        return make_record(COVERAGE, FAIL, "; ".join(parts), evidence, params["coverage_blocking"], watch.elapsed_ms)
    return make_record(COVERAGE, PASS, "all %d tables with the %s column have RLS enabled and forced" % (len(org_tables), params["org_column"]),
                       evidence, params["coverage_blocking"], watch.elapsed_ms)


def read_structures(cursor, catalog, tables, probe_values):
    """Columns and foreign keys of the tables to probe and of the parents their NOT NULL foreign keys need."""
    oids = [catalog[t]["oid"] for t in tables if t in catalog and (catalog[t]["has_org_column"] or t in probe_values)]
    structure = rls.read_structure(cursor, oids)
    for _depth in range(rls.MAX_PARENT_DEPTH):
        wanted = set()
        for entry in structure.values():
            for fk in entry["fks"]:
                if fk["ref_oid"] not in structure:
                    wanted.add(fk["ref_oid"])
        if not wanted:
            break
        structure.update(rls.read_structure(cursor, wanted))
    return structure


def check_probe_columns(catalog, structure, probe_values):
    for table, values in probe_values.items():
        entry = structure.get(catalog[table]["oid"]) if table in catalog else None
        if entry is None:
            continue
        known = set(column["name"] for column in entry["columns"])
        unknown = sorted(set(values) - known)
        if unknown:
            raise BadInput("probe_values: table %s has no column %s" % (table, ", ".join(unknown)))


def isolation_record(params, tables, catalog, role, cursor, org_a, org_b, watch):
    evidence = {"role": role["name"], "connected_as": role["session_user"], "org_a": org_a, "org_b": org_b,
                "setting": params["setting"], "write_probes": params["write_probes"], "tables": {},
                "failed": [], "errors": [], "skipped": []}
    blocking = params["blocking"]
    if not params["behavioural"]:
        return make_record(ISOLATION, SKIPPED, "behavioural proof not requested (behavioural: false)", evidence, blocking, watch.elapsed_ms)
    why = []
    if role["superuser"]:
        why.append("is a superuser")
    if role["bypassrls"]:
        why.append("has BYPASSRLS")
    if why:
        evidence["role_attributes"] = {"rolsuper": role["superuser"], "rolbypassrls": role["bypassrls"]}
        summary = ("role %s %s: row-level security does not apply to it, so isolation cannot be proven (run the proof as the "
                   "NOSUPERUSER NOBYPASSRLS application role: set app_role or connect as it)" % (role["name"], " and ".join(why)))
        return make_record(ISOLATION, FAIL, summary, evidence, blocking, watch.elapsed_ms)
    existing = [t for t in tables if t in catalog]
    for table in tables:
        if table not in catalog:
            evidence["tables"][table] = {"status": FAIL, "reasons": [rls.missing_table_reason(params["tables_variable"])]}
            evidence["failed"].append(table)
    probe_values = dict((t, v) for t, v in params["probe_values"].items() if t in existing)
    structure = read_structures(cursor, catalog, existing, probe_values)
    check_probe_columns(catalog, structure, probe_values)
    if role["name"] != role["current_user"]:
        cursor.execute(pgsql.SQL("SET LOCAL ROLE {}").format(identifier(role["name"])))
    cursor.execute("SELECT current_user::text, current_setting('transaction_read_only') = 'on', pg_is_in_recovery()")
    evidence["proof_ran_as"], read_only, standby = cursor.fetchone()
    if params["write_probes"] and read_only:
        evidence["standby"] = standby
        summary = ("the transaction is read-only (%s): the write probes cannot run; run with write_probes false"
                   % ("the server is a standby" if standby else "default_transaction_read_only is on"))
        return make_record(ISOLATION, ERROR, summary, evidence, blocking, watch.elapsed_ms)
    structure_tables = dict((t, catalog[t]) for t in existing)
    for name, info in structure_tables.items():
        if info["oid"] not in structure or structure[info["oid"]]["name"] is None:
            structure[info["oid"]] = {"schema": params["schema"], "name": name, "columns": [], "fks": []}
    prober = rls.Prober(cursor, params["org_column"], params["setting"], org_a, org_b, structure, structure_tables,
                        write_probes=params["write_probes"])
    for table in existing:
        given = probe_values.get(table)
        result = prober.prove(table, given)
        evidence["tables"][table] = result
        if result["status"] == FAIL:
            evidence["failed"].append(table)
        elif result["status"] == ERROR:
            evidence["errors"].append(table)
        elif result["status"] == SKIPPED:
            evidence["skipped"].append(table)
    evidence["statements"] = prober.statements
    return finish_isolation(params, tables, evidence, watch)


def finish_isolation(params, tables, evidence, watch):
    blocking = params["blocking"]
    who = "as role %s" % evidence["role"]
    proof = "write and read probes, rolled back" if params["write_probes"] else "read-only probes"
    if not tables:
        return make_record(ISOLATION, FAIL, "no required table to prove", evidence, blocking, watch.elapsed_ms)
    if evidence["failed"]:
        details = ["%s: %s" % (t, "; ".join(evidence["tables"][t]["reasons"])) for t in evidence["failed"]]
        summary = "%s: isolation broken on %d of %d tables: %s" % (who, len(details), len(tables), _short(details, 5))
        return make_record(ISOLATION, FAIL, summary, evidence, blocking, watch.elapsed_ms)
    if evidence["errors"]:
        details = ["%s: %s" % (t, "; ".join(evidence["tables"][t]["errors"])) for t in evidence["errors"]]
        summary = "%s: isolation could not be decided on %d of %d tables: %s" % (who, len(details), len(tables), _short(details, 5))
        return make_record(ISOLATION, ERROR, summary, evidence, blocking, watch.elapsed_ms)
    proven = len(tables) - len(evidence["skipped"])
    if not proven:
        summary = "%s: no table could be probed: %s" % (who, evidence["tables"][evidence["skipped"][0]].get("skip_reason"))
        return make_record(ISOLATION, SKIPPED, summary, evidence, blocking, watch.elapsed_ms)
    summary = "%s: org isolation proven on %d tables (%s)" % (who, proven, proof)
    if evidence["skipped"]:
        summary += "; write probes not run on %s (no %s column and no probe_values: read-only part passed)" % (
            _short(evidence["skipped"]), params["org_column"])
    return make_record(ISOLATION, PASS, summary, evidence, blocking, watch.elapsed_ms)


def run(module, secrets):
    params = module.params
    writes = params["behavioural"] and params["write_probes"]
    watch = Stopwatch()
    try:
        org_a, org_b = org_ids(params)
    except BadInput as exc:
        module.fail_json(msg=str(exc))
    try:
        conn = connect(params, read_only=not writes)
    except PostgresConnectionError as exc:
        return error_records(params, "cannot connect: %s" % exc, {"database": describe_target(params)}), [], None, None
    tables = []
    role = None
    discovered = None
    try:
        try:
            with conn.cursor() as cursor:
                # Bounded statements and lock waits, and RLS on whatever the role's defaults say.
                cursor.execute("SELECT set_config('row_security', 'on', true), set_config('statement_timeout', %s, true), "
                               "set_config('lock_timeout', %s, true)", ("%ds" % params["statement_timeout"], "%ds" % params["lock_timeout"]))
                role = rls.read_role(cursor, params["app_role"])
                if not role["exists"]:
                    raise BadInput("app_role: role %s does not exist" % params["app_role"])
                if role["name"] != role["current_user"] and not (role["session_can_become"] or role["session_superuser"]):
                    raise BadInput("app_role: the connecting role %s cannot SET ROLE to %s (grant it membership, or connect as %s)"
                                   % (role["session_user"], role["name"], role["name"]))
                catalog = rls.read_tables(cursor, params["schema"], params["org_column"], role["name"])
                tables = required_tables(params, catalog)
                discovered = discovered_tables(params, cursor, catalog, tables, role["name"])
                tables += discovered
                unknown = sorted(set(params["probe_values"]) - set(catalog))
                if unknown:
                    raise BadInput("probe_values names %s, not a table of schema %s" % (", ".join(unknown), params["schema"]))
                policies = rls.read_policies(cursor, params["schema"], [t for t in tables if t in catalog], role["name"])
                records = [enabled_forced_record(params, tables, catalog, role, watch),
                           policies_record(params, tables, catalog, policies, Stopwatch())]
                iso_watch = Stopwatch()
                try:
                    record = isolation_record(params, tables, catalog, role, cursor, org_a, org_b, iso_watch)
                    record["evidence"]["rolled_back"] = True
                except psycopg2.Error as exc:
                    reason = redact(rls.error_text(exc), secrets)
                    record = make_record(ISOLATION, ERROR, "the behavioural proof stopped: %s" % reason,
                                         {"role": role["name"], "sqlstate": getattr(exc, "pgcode", None), "rolled_back": True},
                                         params["blocking"], iso_watch.elapsed_ms)
                records.append(record)
                if params["coverage"]:
                    records.append(coverage_record(params, catalog, Stopwatch()))
        finally:
            conn.rollback()
    except BadInput as exc:
        conn.close()
        module.fail_json(msg=redact(str(exc), secrets))
    except psycopg2.Error as exc:
        conn.close()
        reason = redact(rls.error_text(exc), secrets)
        return (error_records(params, "the catalog could not be read: %s" % reason, {"sqlstate": getattr(exc, "pgcode", None)}),
                tables, role, discovered)
    conn.close()
    if params["discover_tables"]:
        for record in records[:3]:
            record["evidence"]["discovered_tables"] = discovered
    return records, tables, role, discovered


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
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=postgres_mutually_exclusive(),
        required_one_of=[["tables", "table_pattern"]],
        supports_check_mode=True,
    )
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=PSYCOPG2_IMPORT_ERROR)
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
