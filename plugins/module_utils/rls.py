# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Row-level security checks: the catalog facts, the structural checks (enabled and forced, the
expected policies and the setting they read) and the behavioural proof run as the application role
inside one transaction that is always rolled back.

Everything here works on a psycopg2 cursor handed in by the caller; identifiers are quoted with
psycopg2.sql and values are always query parameters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import random
import re
import string
import uuid

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.postgres import identifier, pgsql, psycopg2

IDENTIFIER_MAX_BYTES = 63
# A custom (placeholder) setting needs a dotted name: app.current_org_id
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)+$")
PATTERN_FIELDS = ("table", "schema")
MAX_PARENT_DEPTH = 4
RLS_SQLSTATE = "42501"
READ_ONLY_SQLSTATE = "25006"
SAVEPOINT_TABLE = "cws_rls_table"
SAVEPOINT_STEP = "cws_rls_step"


class ProbeBuildError(Exception):
    """A probe row cannot be built from the catalog alone (the message says what to give)."""


class ParentRowError(Exception):
    """A foreign-key parent row for a probe could not be inserted (its own table refused it)."""

    def __init__(self, table, error):
        Exception.__init__(self, "the probe's parent row in %s could not be inserted (%s)" % (table, error_text(error)))
        self.table = table
        self.error = error


# ----------------------------------------------------------------------------- input validation

def identifier_problem(name):
    """Why ``name`` is not an identifier this check accepts, or None."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if len(name.encode("utf-8")) > IDENTIFIER_MAX_BYTES:
        return "is longer than %d bytes" % IDENTIFIER_MAX_BYTES
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "contains a control character"
    if name != name.strip():
        return "has leading or trailing blanks"
    return None


def setting_problem(name):
    if not isinstance(name, str) or not SETTING_NAME.match(name):
        return "must be a dotted custom setting name such as app.current_org_id"
    return None


def pattern_problem(pattern):
    """A ``policy_name_pattern`` may use {table} and {schema} only."""
    try:
        fields = [field for _text, field, _spec, _conv in string.Formatter().parse(pattern) if field is not None]
    except ValueError as exc:
        return "is not a valid pattern (%s)" % exc
    for field in fields:
        if field not in PATTERN_FIELDS:
            return "uses {%s}; only {table} and {schema} are known" % field
    return None


def policy_name(pattern, schema, table):
    return pattern.format(table=table, schema=schema)


def uuid_problem(value):
    try:
        uuid.UUID(str(value))
    except (ValueError, AttributeError, TypeError):
        return "is not a UUID"
    return None


# ----------------------------------------------------------------------------- catalog

Q_ROLE = """
SELECT current_user::text, session_user::text, r.rolname::text, r.rolsuper, r.rolbypassrls,
       CASE WHEN r.oid IS NULL THEN false ELSE pg_has_role(session_user, r.oid, 'MEMBER') END,
       s.rolsuper
FROM (SELECT COALESCE(%(role)s, current_user::text) AS wanted) w
LEFT JOIN pg_roles r ON r.rolname = w.wanted
LEFT JOIN pg_roles s ON s.rolname = session_user
"""

Q_TABLES = """
SELECT c.oid, c.relname::text, c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
       pg_get_userbyid(c.relowner)::text,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = %(org_column)s
               AND a.attnum > 0 AND NOT a.attisdropped),
       pg_has_role(%(role)s, c.relowner, 'USAGE'),
       has_table_privilege(%(role)s, c.oid, 'SELECT'),
       has_table_privilege(%(role)s, c.oid, 'INSERT'),
       has_table_privilege(%(role)s, c.oid, 'UPDATE'),
       c.reltuples::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
ORDER BY c.relname
"""

Q_POLICIES = """
SELECT p.tablename::text, p.policyname::text, p.permissive, p.roles::text[], p.cmd, p.qual, p.with_check,
       EXISTS (SELECT 1 FROM unnest(p.roles) AS r(name)
               WHERE CASE WHEN r.name = 'public' THEN true ELSE pg_has_role(%(role)s, r.name, 'MEMBER') END)
FROM pg_policies p
WHERE p.schemaname = %(schema)s AND p.tablename = ANY(%(tables)s)
ORDER BY p.tablename, p.policyname
"""

Q_COLUMNS = """
SELECT a.attrelid, n.nspname::text, c.relname::text, a.attname::text, a.attnotnull OR t.typnotnull,
       a.atthasdef OR t.typdefault IS NOT NULL, a.attidentity <> '' OR a.attgenerated <> '',
       format_type(a.atttypid, a.atttypmod), bt.typname::text, bt.typcategory::text,
       CASE WHEN a.atttypmod <> -1 THEN a.atttypmod ELSE t.typtypmod END,
       (SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = bt.oid ORDER BY e.enumsortorder LIMIT 1),
       (SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
        WHERE k.conrelid = a.attrelid AND k.contype = 'c' AND k.conkey = ARRAY[a.attnum] LIMIT 1),
       a.attidentity::text,
       COALESCE((SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d
                 WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum) LIKE 'nextval(%%', false)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = ANY(%(oids)s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

Q_FOREIGN_KEYS = """
SELECT k.conrelid, k.conname::text,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u(num, pos)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num ORDER BY u.pos),
       k.confrelid,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS u(num, pos)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num ORDER BY u.pos)
FROM pg_constraint k
WHERE k.contype = 'f' AND k.conrelid = ANY(%(oids)s)
ORDER BY k.conrelid, k.conname
"""


def read_role(cursor, role):
    cursor.execute(Q_ROLE, {"role": role})
    row = cursor.fetchone()
    return {"current_user": row[0], "session_user": row[1], "name": row[2], "exists": row[2] is not None,
            "superuser": bool(row[3]), "bypassrls": bool(row[4]), "session_can_become": bool(row[5]),
            "session_superuser": bool(row[6])}


def read_tables(cursor, schema, org_column, role):
    cursor.execute(Q_TABLES, {"schema": schema, "org_column": org_column, "role": role})
    tables = {}
    for row in cursor.fetchall():
        tables[row[1]] = {
            "oid": row[0], "name": row[1], "kind": "partitioned" if row[2] == "p" else "table",
            "rls_enabled": bool(row[3]), "rls_forced": bool(row[4]), "owner": row[5], "has_org_column": bool(row[6]),
            "role_is_owner": bool(row[7]), "can_select": bool(row[8]), "can_insert": bool(row[9]),
            "can_update": bool(row[10]), "approx_rows": max(int(row[11] or 0), 0),
        }
    return tables


def read_policies(cursor, schema, tables, role):
    cursor.execute(Q_POLICIES, {"schema": schema, "tables": list(tables), "role": role})
    policies = {}
    for row in cursor.fetchall():
        policies.setdefault(row[0], []).append({
            "name": row[1], "permissive": row[2] == "PERMISSIVE", "roles": list(row[3] or []), "cmd": row[4],
            "qual": row[5], "with_check": row[6], "applies_to_role": bool(row[7]),
        })
    return policies


def read_structure(cursor, oids):
    """Columns and foreign keys of the tables ``oids`` -> {oid: {"schema", "name", "columns", "fks"}}."""
    oids = sorted(set(oids))
    structure = dict((oid, {"columns": [], "fks": [], "schema": None, "name": None}) for oid in oids)
    if not oids:
        return structure
    cursor.execute(Q_COLUMNS, {"oids": oids})
    for row in cursor.fetchall():
        entry = structure[row[0]]
        entry["schema"], entry["name"] = row[1], row[2]
        entry["columns"].append({
            "name": row[3], "not_null": bool(row[4]), "has_default": bool(row[5]), "generated": bool(row[6]),
            "type": row[7], "base_type": row[8], "category": row[9], "typmod": row[10], "first_enum": row[11],
            "check": row[12], "identity": row[13] or None, "sequence_default": bool(row[14]),
        })
    cursor.execute(Q_FOREIGN_KEYS, {"oids": oids})
    for row in cursor.fetchall():
        structure[row[0]]["fks"].append({"name": row[1], "columns": list(row[2]), "ref_oid": row[3], "ref_columns": list(row[4])})
    return structure


# ----------------------------------------------------------------------------- structural checks

def reads_setting(expression, setting):
    """Does a policy expression (as pg_policies renders it) read ``setting`` with current_setting()?"""
    if not expression:
        return False
    pattern = r"current_setting\(\s*'%s'(::text)?\s*[,)]" % re.escape(setting)
    return re.search(pattern, expression) is not None


def other_settings(expression):
    return sorted(set(re.findall(r"current_setting\(\s*'([^']*)'", expression or "")))


def references_column(expression, column):
    if not expression:
        return False
    return re.search(r'(^|[^A-Za-z0-9_$"])("%s"|%s)($|[^A-Za-z0-9_$"])' % (re.escape(column), re.escape(column)),
                     expression) is not None


def missing_table_reason(tables_variable):
    """Why a required table that is not in the catalog fails: most often the expectation is stale."""
    return ("table does not exist (the expectation may be stale: renamed or dropped by a migration? "
            "change %s)" % tables_variable)


def check_enabled_forced(table_info, tables_variable="tables"):
    """-> (ok, reasons)"""
    if table_info is None:
        return False, [missing_table_reason(tables_variable)]
    reasons = []
    if not table_info["rls_enabled"]:
        reasons.append("row level security is disabled (relrowsecurity false)")
    if not table_info["rls_forced"]:
        reasons.append("row level security is not forced (relforcerowsecurity false): the owner %s bypasses it"
                       % table_info["owner"])
    return not reasons, reasons


def check_policies(table, table_info, policies, expected_name, setting, org_column, tables_variable="tables"):
    """The expected policy is present and reads the setting; no permissive policy that applies to
    the app role lets rows through without reading it. -> (ok, reasons, evidence)."""
    evidence = {"expected_policy": expected_name, "policies": []}
    if table_info is None:
        return False, [missing_table_reason(tables_variable)], evidence
    reasons = []
    by_name = dict((policy["name"], policy) for policy in policies)
    for policy in policies:
        evidence["policies"].append({
            "name": policy["name"], "cmd": policy["cmd"], "permissive": policy["permissive"], "roles": policy["roles"],
            "qual": policy["qual"], "with_check": policy["with_check"], "applies_to_role": policy["applies_to_role"],
            "reads_setting": reads_setting(policy["qual"], setting) and (policy["with_check"] is None
                                                                         or reads_setting(policy["with_check"], setting)),
        })
    if not policies:
        reasons.append("no policy at all (with RLS on, the app role sees nothing: every query returns 0 rows)")
    expected = by_name.get(expected_name)
    if expected is None:
        if policies:
            reasons.append("expected policy %s is missing (present: %s)" % (expected_name, ", ".join(sorted(by_name))))
        else:
            reasons.append("expected policy %s is missing" % expected_name)
    else:
        if expected["cmd"] == "INSERT":
            expression_ok = reads_setting(expected["with_check"], setting)
        else:
            expression_ok = reads_setting(expected["qual"], setting)
            if expected["with_check"] is not None and not reads_setting(expected["with_check"], setting):
                expression_ok = False
        if not expression_ok:
            found = other_settings("%s %s" % (expected["qual"] or "", expected["with_check"] or ""))
            if found:
                reasons.append("policy %s reads %s, not %s" % (expected_name, ", ".join(found), setting))
            else:
                reasons.append("policy %s does not read %s (USING %s)" % (expected_name, setting, expected["qual"]))
        elif table_info["has_org_column"] and not references_column(expected["qual"] or expected["with_check"], org_column):
            reasons.append("policy %s reads %s but does not compare the %s column" % (expected_name, setting, org_column))
        if not expected["permissive"]:
            reasons.append("policy %s is RESTRICTIVE: without a permissive policy nothing is visible" % expected_name)
        if not expected["applies_to_role"]:
            reasons.append("policy %s applies to %s, not to the app role" % (expected_name, ", ".join(expected["roles"])))
    for policy in policies:
        if policy["name"] == expected_name or not policy["permissive"] or not policy["applies_to_role"]:
            continue
        leaks = []
        if policy["cmd"] != "INSERT" and not reads_setting(policy["qual"], setting):
            leaks.append("USING %s" % policy["qual"])
        if policy["cmd"] in ("ALL", "INSERT", "UPDATE") and policy["with_check"] is not None \
                and not reads_setting(policy["with_check"], setting):
            leaks.append("WITH CHECK %s" % policy["with_check"])
        if leaks:
            reasons.append("permissive policy %s (%s) does not read %s: rows leak across orgs (%s)"
                           % (policy["name"], policy["cmd"], setting, "; ".join(leaks)))
    extra = [p["name"] for p in policies if p["name"] != expected_name]
    if extra:
        evidence["extra_policies"] = extra
    return not reasons, reasons, evidence


# ----------------------------------------------------------------------------- probe values

_CHOICE_PATTERNS = (
    re.compile(r"ANY\s*\(\s*\(?\s*ARRAY\s*\[\s*'((?:[^']|'')*)'"),
    re.compile(r"\bIN\s*\(\s*'((?:[^']|'')*)'"),
    re.compile(r"=\s*'((?:[^']|'')*)'"),
)


def check_choice(check_definition):
    """The first allowed literal of a one-column CHECK such as ``status = ANY (ARRAY['a'::text, ...])``."""
    if not check_definition:
        return None
    for pattern in _CHOICE_PATTERNS:
        match = pattern.search(check_definition)
        if match:
            return match.group(1).replace("''", "'")
    return None


def _text_limit(column):
    if column["base_type"] in ("varchar", "bpchar") and column["typmod"] and column["typmod"] > 4:
        return column["typmod"] - 4
    if column["base_type"] == "char":
        return 1
    return None


def probe_literal(column, marker):
    """A text literal the column's type accepts (sent untyped, so the column's input function reads it),
    or ProbeBuildError."""
    if column["first_enum"] is not None:
        return column["first_enum"]
    choice = check_choice(column["check"])
    if choice is not None:
        return choice
    base, category = column["base_type"], column["category"]
    if category == "A":
        return "{}"
    if base == "uuid":
        return str(uuid.uuid4())
    if base in ("json", "jsonb"):
        return "{}"
    if base == "bytea":
        return "\\x00"
    if base == "xml":
        return "<probe/>"
    if base in ("tsvector", "tsquery"):
        return "probe"
    if base == "macaddr":
        return "08:00:2b:01:02:03"
    if base == "macaddr8":
        return "08:00:2b:01:02:03:04:05"
    if base == "money":
        return "1"
    if category == "B":
        return "false"
    if category == "N":
        if base == "numeric" and column["typmod"] and column["typmod"] > 4:
            precision = ((column["typmod"] - 4) >> 16) & 0xFFFF
            scale = (column["typmod"] - 4) & 0xFFFF
            return "1" if precision - scale >= 1 else "0"
        return "1"
    if category == "D":
        if base == "date":
            return "2000-01-01"
        if base in ("time", "timetz"):
            return "12:00:00"
        return "2000-01-01 00:00:00+00"
    if category == "T":
        return "1 hour"
    if category == "I":
        return "192.0.2.1"
    if category == "R":
        return "empty"
    if category == "V":
        length = column["typmod"] if column["typmod"] and column["typmod"] > 0 else 1
        return "0" * length
    if category == "S":
        limit = _text_limit(column)
        return marker[:limit] if limit else marker
    raise ProbeBuildError("column %s has type %s, for which no probe value is generated: give it in probe_values"
                          % (column["name"], column["type"]))


SEQUENCE_PROBE_MAX = {"int2": 32767, "int4": 2147483647, "int8": 9223372036854775807}


def sequence_probe_value(column):
    """An explicit value for an integer column filled by a sequence (serial or identity), so a probe row
    consumes no sequence value; None where the column keeps its default. The value sits near the
    type's maximum, far above what a sequence has handed out, and varies so that probes never collide."""
    top = SEQUENCE_PROBE_MAX.get(column.get("base_type"))
    if top is None or not (column.get("sequence_default") or column.get("identity")):
        return None
    return str(top - random.randint(0, min(top // 2, 1000000)))


def to_parameter(value):
    """A probe_values entry -> a query parameter (dicts and lists as JSON text)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


# ----------------------------------------------------------------------------- behavioural proof

def is_rls_refusal(exc, has_privilege=True):
    """A row-level security refusal (not a missing privilege)."""
    if getattr(exc, "pgcode", None) != RLS_SQLSTATE:
        return False
    message = (getattr(exc, "pgerror", None) or str(exc)).lower()
    if "row-level security" in message:
        return True
    return has_privilege and "permission denied" not in message


def error_text(exc):
    """The server's primary message (no ``ERROR:`` prefix, no SQL echoed), or the first line of the text."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        return primary.strip()
    message = (getattr(exc, "pgerror", None) or str(exc) or exc.__class__.__name__).strip()
    return message.splitlines()[0] if message else exc.__class__.__name__


class Outcome:
    """What one guarded statement gave: its first row and rowcount, or the error."""

    def __init__(self, row=None, rowcount=0, error=None):
        self.row = row
        self.rowcount = rowcount
        self.error = error


class Prober:
    """Runs the behavioural proof of one table after another inside the caller's transaction.

    The caller has already made the transaction's role the app role (``SET LOCAL ROLE``) and always
    rolls the whole transaction back. Each table runs under its own savepoint, rolled back at its end,
    and every statement that may fail under a savepoint of its own, so one table's failure never aborts
    the others. Savepoint bookkeeping (RELEASE after success, ROLLBACK TO after an error: PostgreSQL
    accepts it in an aborted transaction) is sent in front of the next statement, so each probe costs
    one round trip."""

    def __init__(self, cursor, org_column, setting, org_a, org_b, structure, tables, write_probes=True):
        self.cursor = cursor
        self.org_column = org_column
        self.setting = setting
        self.org_a = org_a
        self.org_b = org_b
        self.structure = structure
        self.tables = tables
        self.write_probes = write_probes
        self.statements = 0
        self._pending = []

    # -- plumbing
    def _queue(self, text, *names):
        self._pending.append(pgsql.SQL(text).format(*[pgsql.Identifier(name) for name in names]))

    def _run(self, query):
        """Send the queued bookkeeping and ``query`` in one round trip. Every value is a pgsql.Literal
        inside the composed query and no parameters are passed, so a ``%`` in a quoted identifier can
        never be taken for a placeholder."""
        composed = pgsql.Composed(self._pending + [query])
        self._pending = []
        self.statements += 1
        self.cursor.execute(composed)

    def _set_org(self, org):
        return pgsql.SQL("SELECT set_config({}, {}, true);").format(pgsql.Literal(self.setting), pgsql.Literal(org or ""))

    def _guarded(self, org, query):
        """Run ``query`` with the setting at ``org`` under a savepoint -> Outcome."""
        self._queue("SAVEPOINT {};", SAVEPOINT_STEP)
        try:
            self._run(pgsql.Composed([self._set_org(org), query]))
        except psycopg2.Error as exc:
            self._queue("ROLLBACK TO SAVEPOINT {}; RELEASE SAVEPOINT {};", SAVEPOINT_STEP, SAVEPOINT_STEP)
            return Outcome(error=exc)
        row = self.cursor.fetchone() if self.cursor.description else None
        outcome = Outcome(row, self.cursor.rowcount)
        self._queue("RELEASE SAVEPOINT {};", SAVEPOINT_STEP)
        return outcome

    @staticmethod
    def _where_row(locator):
        """The condition selecting the probe row: (tableoid, ctid) as RETURNING gave them, or nothing."""
        if locator is None:
            return pgsql.SQL("false")
        return pgsql.SQL("tableoid = {}::oid AND ctid = {}::tid").format(pgsql.Literal(locator[0]), pgsql.Literal(locator[1]))

    def _table_sql(self, oid):
        entry = self.structure[oid]
        return identifier(entry["schema"], entry["name"])

    # -- probe rows
    def _columns(self, oid):
        entry = self.structure.get(oid)
        if entry is None or entry["name"] is None:
            raise ProbeBuildError("a table referenced by a foreign key could not be read from the catalog")
        return entry, dict((column["name"], column) for column in entry["columns"])

    def _generated(self, entry, values):
        marker = "rlsprobe-%s" % uuid.uuid4().hex[:12]
        for column in entry["columns"]:
            if column["name"] in values:
                continue
            explicit = sequence_probe_value(column)
            if explicit is not None:
                # nextval() is not transactional: the rolled-back probe would still move the sequence.
                values[column["name"]] = explicit
                continue
            if not column["not_null"] or column["has_default"] or column["generated"]:
                continue
            values[column["name"]] = probe_literal(column, marker)
        return values

    def _row_values(self, oid, org, given, depth, trail, parents):
        """Column -> value for a probe row of ``oid`` whose foreign-key parents are inserted first
        (in the same org, under the current setting)."""
        entry, columns = self._columns(oid)
        if depth > MAX_PARENT_DEPTH or oid in trail:
            raise ProbeBuildError("the foreign keys of %s chain too deep or in a cycle: give probe_values" % entry["name"])
        values = dict((name, to_parameter(value)) for name, value in (given or {}).items())
        if self.org_column in columns:
            values[self.org_column] = org
        for fk in entry["fks"]:
            needed = [name for name in fk["columns"] if name not in values and columns[name]["not_null"]
                      and not columns[name]["has_default"] and not columns[name]["generated"]]
            known = dict((name, values[name]) for name in fk["columns"] if name in values)
            # The org column itself may reference the organizations table: that row must exist too.
            org_link = self.org_column in known and len(known) == len(fk["columns"])
            if not needed and not org_link:
                continue
            preset = dict((remote, known[local]) for local, remote in zip(fk["columns"], fk["ref_columns"]) if local in known)
            parent_row = self._insert_parent(fk["ref_oid"], org, fk["ref_columns"], depth + 1, trail | frozenset([oid]), parents,
                                             preset, existing_ok=not needed)
            for local, remote in zip(fk["columns"], fk["ref_columns"]):
                if local not in values:
                    values[local] = parent_row[remote]
        return self._generated(entry, values)

    def _insert_sql(self, oid, values, returning, existing_ok=False):
        conflict = pgsql.SQL(" ON CONFLICT DO NOTHING" if existing_ok else "")
        names = sorted(values)
        if names:
            always = [column for column in self.structure.get(oid, {}).get("columns", [])
                      if column.get("identity") == "a" and column["name"] in values]
            return pgsql.SQL("INSERT INTO {} ({}){} VALUES ({}){} RETURNING {}").format(
                self._table_sql(oid), pgsql.SQL(", ").join(pgsql.Identifier(name) for name in names),
                pgsql.SQL(" OVERRIDING SYSTEM VALUE" if always else ""),
                pgsql.SQL(", ").join(pgsql.Literal(values[name]) for name in names), conflict, pgsql.SQL(", ").join(returning))
        return pgsql.SQL("INSERT INTO {} DEFAULT VALUES{} RETURNING {}").format(self._table_sql(oid), conflict,
                                                                                pgsql.SQL(", ").join(returning))

    def _insert_parent(self, oid, org, ref_columns, depth, trail, parents, preset, existing_ok):
        """Insert a foreign-key parent row (``preset`` fixes some of its columns); with ``existing_ok``
        an existing row with those keys is used as it is."""
        values = self._row_values(oid, org, preset, depth, trail, parents)
        try:
            self._run(self._insert_sql(oid, values, [pgsql.Identifier(name) for name in ref_columns], existing_ok))
        except psycopg2.Error as exc:
            raise ParentRowError(self.structure[oid]["name"], exc)
        row = self.cursor.fetchone()
        if row is None:
            parents.append("%s (existing row)" % self.structure[oid]["name"])
            return dict((name, preset[name]) for name in ref_columns)
        parents.append(self.structure[oid]["name"])
        return dict(zip(ref_columns, row))

    def _refusal_values(self, oid, org, given, own_values):
        """Values for a row that row-level security must refuse. PostgreSQL checks the policy's WITH
        CHECK before NOT NULL, CHECK, unique and foreign-key constraints, so the row only needs values
        its column types accept: the own-org row's values (org changed) or generated ones."""
        if own_values is not None:
            values = dict(own_values)
            if self.org_column in values:
                values[self.org_column] = org
            return values
        entry, columns = self._columns(oid)
        values = dict((name, to_parameter(value)) for name, value in (given or {}).items())
        if self.org_column in columns:
            values[self.org_column] = org
        return self._generated(entry, values)

    # -- one table
    def prove(self, table, given):
        """The behavioural proof of one table -> a dict with status, reasons, errors and observations."""
        info = self.tables[table]
        result = {"status": "pass", "reasons": [], "errors": [], "observations": {},
                  "kind": "org_column" if info["has_org_column"] else "join", "approx_rows": info["approx_rows"]}
        if not info["can_select"]:
            result["status"] = "error"
            result["errors"].append("the app role has no SELECT privilege on the table: nothing can be proven")
            return result
        self._queue("SAVEPOINT {};", SAVEPOINT_TABLE)
        try:
            self._prove(info, given, result)
        except psycopg2.Error as exc:
            # A statement outside the guarded steps failed (a timeout, a lock): this table is undecided;
            # rolling back to its savepoint (queued below) restores the transaction for the next one.
            result["errors"].append("the proof stopped: %s" % error_text(exc))
        finally:
            # Sent in front of the next table's first statement; the caller rolls back the whole
            # transaction after the last table anyway.
            self._queue("ROLLBACK TO SAVEPOINT {}; RELEASE SAVEPOINT {};", SAVEPOINT_TABLE, SAVEPOINT_TABLE)
        if result["reasons"]:
            result["status"] = "fail"
        elif result["errors"]:
            result["status"] = "error"
        elif result.get("skip_reason"):
            result["status"] = "skipped"
        return result

    def _prove(self, info, given, result):
        obs = result["observations"]
        oid = info["oid"]
        org_table = info["has_org_column"]
        writes = self.write_probes and info["can_insert"] and (org_table or given is not None)
        ctid = own_values = None
        if self.write_probes and not org_table and given is None:
            result["skip_reason"] = ("no %s column (the policy joins through another table): the write probes need "
                                     "probe_values for this table ({} lets foreign-key parents be generated)" % self.org_column)
        elif self.write_probes and not info["can_insert"]:
            obs["write_probes"] = "not run: the app role has no INSERT privilege, so it cannot insert into another org"
        elif not self.write_probes:
            obs["write_probes"] = "disabled"
        if writes:
            ctid, own_values = self._own_row(oid, given, result, obs)
        self._reads(info, ctid, result, obs)
        if not writes:
            return
        if org_table:
            self._expect_refusal("cross_org_insert", self.org_a, oid, self._safe_values(oid, self.org_b, given, own_values, result),
                                 result, obs, "a row for org_b inserted while %s is org_a" % self.setting)
            self._expect_refusal("no_org_insert", "", oid, self._safe_values(oid, self.org_a, given, own_values, result),
                                 result, obs, "a row for org_a inserted with no org set")
            if ctid is not None and info["can_update"]:
                self._move(oid, ctid, result, obs)
        elif own_values is not None:
            self._expect_refusal("cross_org_insert", self.org_b, oid, dict(own_values), result, obs,
                                 "a row joined to org_a's data inserted while %s is org_b" % self.setting)

    def _safe_values(self, oid, org, given, own_values, result):
        try:
            return self._refusal_values(oid, org, given, own_values)
        except ProbeBuildError as exc:
            result["errors"].append(str(exc))
            return None

    def _own_row(self, oid, given, result, obs):
        """Insert org_a's probe row (foreign-key parents first) -> (ctid, values) or (None, None)."""
        parents = []
        self._queue("SAVEPOINT {};", SAVEPOINT_STEP)
        self._pending.append(self._set_org(self.org_a))
        try:
            values = self._row_values(oid, self.org_a, given, 0, frozenset(), parents)
            # tableoid with ctid: a partitioned (or inherited) table's partitions repeat ctids
            self._run(self._insert_sql(oid, values, [pgsql.SQL("tableoid::oid::bigint"), pgsql.SQL("ctid::text")]))
            ctid = tuple(self.cursor.fetchone())
        except (ProbeBuildError, ParentRowError) as exc:
            self._queue("ROLLBACK TO SAVEPOINT {}; RELEASE SAVEPOINT {};", SAVEPOINT_STEP, SAVEPOINT_STEP)
            obs["own_org_insert"] = "not run: %s" % exc
            result["errors"].append(str(exc))
            return None, None
        except psycopg2.Error as exc:
            self._queue("ROLLBACK TO SAVEPOINT {}; RELEASE SAVEPOINT {};", SAVEPOINT_STEP, SAVEPOINT_STEP)
            if is_rls_refusal(exc):
                obs["own_org_insert"] = "refused by row-level security"
                result["reasons"].append("org_a cannot insert its own row (%s): the policies do not accept %s"
                                         % (error_text(exc), self.setting))
            elif getattr(exc, "pgcode", None) == READ_ONLY_SQLSTATE:
                obs["own_org_insert"] = "error: %s" % error_text(exc)
                result["errors"].append("the database refuses writes (%s: a standby, or default_transaction_read_only): "
                                        "run with write_probes false" % error_text(exc))
            else:
                obs["own_org_insert"] = "error: %s" % error_text(exc)
                result["errors"].append("the probe row could not be inserted (%s): give probe_values for this table"
                                        % error_text(exc))
            return None, None
        self._queue("RELEASE SAVEPOINT {};", SAVEPOINT_STEP)
        obs["own_org_insert"] = "ok"
        if parents:
            obs["generated_parent_rows"] = parents
        return ctid, values

    def _reads(self, info, ctid, result, obs):
        """One statement per org context: rows of other orgs visible? the probe row visible? Under
        org_b the cross-org UPDATE of the probe row rides along (it must touch nothing)."""
        table_sql = self._table_sql(info["oid"])
        org_sql = pgsql.Identifier(self.org_column)
        org_table = info["has_org_column"]
        probe = pgsql.SQL("(SELECT count(*) FROM {} WHERE {})").format(table_sql, self._where_row(ctid))
        update = ctid is not None and org_table and info["can_update"]
        for label, org in (("org_a", self.org_a), ("org_b", self.org_b), ("no_org", "")):
            if org and not org_table and ctid is None:
                continue
            if not org:
                others = pgsql.SQL("EXISTS (SELECT 1 FROM {})").format(table_sql)
            elif org_table:
                others = pgsql.SQL("EXISTS (SELECT 1 FROM {} WHERE {} IS DISTINCT FROM {}::uuid)").format(
                    table_sql, org_sql, pgsql.Literal(org))
            else:
                others = pgsql.SQL("false")
            if label == "org_b" and update:
                query = pgsql.SQL("WITH moved AS (UPDATE {} SET {} = {} WHERE {} RETURNING 1) "
                                  "SELECT {}, {}, (SELECT count(*) FROM moved)").format(
                    table_sql, org_sql, org_sql, self._where_row(ctid), others, probe)
            else:
                query = pgsql.SQL("SELECT {}, {}, 0").format(others, probe)
            outcome = self._guarded(org, query)
            if outcome.error is not None:
                text = error_text(outcome.error)
                if label == "no_org":
                    # A policy that raises with no org set (a cast of '' to uuid) shows nothing: not a leak.
                    obs["rows_visible_without_org"] = "error: %s" % text
                else:
                    result["errors"].append("reading as %s failed: %s" % (label, text))
                continue
            seen_others, seen_probe, updated = outcome.row
            if label == "no_org":
                obs["rows_visible_without_org"] = bool(seen_others)
                if seen_others:
                    result["reasons"].append("rows are visible with no org set")
            elif org_table:
                obs["other_org_rows_visible_as_%s" % label] = bool(seen_others)
                if seen_others:
                    result["reasons"].append("rows of other orgs are visible with %s set to %s" % (self.setting, label))
            if ctid is None:
                continue
            obs["probe_row_visible_as_%s" % label] = bool(seen_probe)
            if label == "org_a" and not seen_probe:
                result["reasons"].append("org_a's own probe row is not visible to org_a")
            elif label == "org_b" and seen_probe:
                result["reasons"].append("org_a's probe row is visible with %s set to org_b" % self.setting)
            elif label == "no_org" and seen_probe:
                result["reasons"].append("org_a's probe row is visible with no org set")
            if label == "org_b" and update:
                obs["cross_org_update_rows"] = updated
                if updated:
                    result["reasons"].append("an UPDATE with org_b set changed org_a's probe row")

    def _expect_refusal(self, key, context_org, oid, values, result, obs, what):
        if values is None:
            obs[key] = "not run: no probe values"
            return
        outcome = self._guarded(context_org, self._insert_sql(oid, values, [pgsql.SQL("ctid::text")]))
        exc = outcome.error
        if exc is None:
            obs[key] = "ALLOWED"
            result["reasons"].append("%s was accepted: row-level security did not refuse it" % what)
        elif is_rls_refusal(exc):
            obs[key] = "refused by row-level security"
        elif (getattr(exc, "pgcode", None) or "").startswith("23"):
            # PostgreSQL checks row-level security before constraints: reaching one means RLS let it in.
            obs[key] = "passed row-level security, then: %s" % error_text(exc)
            result["reasons"].append("%s passed row-level security (then failed a constraint: %s)" % (what, error_text(exc)))
        else:
            obs[key] = "error: %s" % error_text(exc)
            result["errors"].append("%s could not be decided: %s" % (what, error_text(exc)))

    def _move(self, oid, ctid, result, obs):
        table_sql = self._table_sql(oid)
        org_sql = pgsql.Identifier(self.org_column)
        outcome = self._guarded(self.org_a, pgsql.SQL("UPDATE {} SET {} = {}::uuid WHERE {}").format(
            table_sql, org_sql, pgsql.Literal(self.org_b), self._where_row(ctid)))
        if outcome.error is None:
            obs["move_to_other_org"] = "ALLOWED" if outcome.rowcount else "no row updated"
            if outcome.rowcount:
                result["reasons"].append("org_a's row could be moved to org_b by an UPDATE")
        elif is_rls_refusal(outcome.error):
            obs["move_to_other_org"] = "refused by row-level security"
        else:
            obs["move_to_other_org"] = "error: %s" % error_text(outcome.error)
