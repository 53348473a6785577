# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of rls_policy_check: RLS enabled and forced on the required tables, the expected policies
reading the org setting, the behavioural proof as the application role in one transaction that is
always rolled back, and the coverage of the tables with an org column. ``run`` connects once and
returns the records; the catalog and proof queries are in module_utils/rls.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import uuid

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import rls
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    ERROR, FAIL, PASS, SKIP_NOT_APPLICABLE, SKIP_NOT_REQUESTED, SKIPPED, Stopwatch, join_limited, make_record)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.postgres import (
    PostgresConnectionError, connect, describe_target, identifier, pgsql, psycopg2, validate_connection_params)
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
        return make_record(ISOLATION, SKIPPED, "behavioural proof not requested (behavioural: false)", evidence, blocking, watch.elapsed_ms,
                           skip_reason=SKIP_NOT_REQUESTED)
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
        return make_record(ISOLATION, SKIPPED, summary, evidence, blocking, watch.elapsed_ms, skip_reason=SKIP_NOT_APPLICABLE)
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
