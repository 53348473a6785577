# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a database holds, as comparable facts, for the backup restore drill.

``collect_facts`` reads one database (the source inside the dump's snapshot, or the restored
scratch database): the Alembic revision, the tables with their RLS flags, exact row counts and
optional content checksums (counted in parallel over a few connections), the RLS policies, what an
application role may do, and the sequences that feed table columns. Every session runs with
``row_security = off``, so a role that does not bypass RLS gets an error instead of a silently
filtered count, and with fixed output settings so content checksums of two databases compare.

``facts_from_schema_script`` reads the same facts (without counts) from a dump's schema script, for
a drill of a dump whose source is not available. The facts are plain JSON-able data: they are what
the drill's manifest file holds next to a kept dump.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import re
import threading

from ansible.module_utils.six.moves import queue as six_queue

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.postgres import pgsql, psycopg2

try:
    from concurrent.futures import ThreadPoolExecutor
except ImportError:  # pragma: no cover - Python 3 always has it
    ThreadPoolExecutor = None

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
DEFAULT_APP_PRIVILEGES = ["SELECT", "INSERT", "UPDATE", "DELETE"]
SYSTEM_SCHEMA_FILTER = ("n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' "
                        "AND n.nspname !~ '^pg_temp_'")
# Session settings that make row text (and so content checksums) identical on two servers.
SESSION_SETTINGS = (
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("row_security", "off"),
    ("client_encoding", "UTF8"),
)
INSUFFICIENT_PRIVILEGE = "42501"


class FactsError(Exception):
    """Facts could not be read (the message names the object; no SQL, no secret)."""


def table_key(schema, name):
    return "%s.%s" % (schema, name)


def prepare_session(conn, snapshot=None):
    """Fixed output settings and ``row_security = off``; with ``snapshot``, a REPEATABLE READ
    transaction that sees exactly what the exporting transaction (and so pg_dump) sees."""
    with conn.cursor() as cur:
        for name, value in SESSION_SETTINGS:
            cur.execute("SELECT set_config(%s, %s, false)", (name, value))
    conn.commit()
    if snapshot:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
    return conn


def _schema_clause(schemas, alias="n"):
    if schemas:
        return pgsql.SQL(" AND {0}.nspname = ANY(%(schemas)s)").format(pgsql.Identifier(alias))
    return pgsql.SQL("")


def _excluded(key, patterns):
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns or ())


def read_tables(cur, schemas=None):
    query = pgsql.SQL(
        "SELECT n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND " + SYSTEM_SCHEMA_FILTER + " "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "AND d.objid = c.oid AND d.deptype = 'e'){schemas} ORDER BY 1, 2").format(schemas=_schema_clause(schemas))
    cur.execute(query, {"schemas": list(schemas or [])})
    return [{"schema": row[0], "name": row[1], "kind": row[2], "rls_enabled": bool(row[3]), "rls_forced": bool(row[4]),
             "rows": None, "checksum": None} for row in cur.fetchall()]


def read_policies(cur, schemas=None):
    query = pgsql.SQL(
        "SELECT p.schemaname, p.tablename, p.policyname, p.permissive, p.roles::text[], p.cmd, p.qual, p.with_check "
        "FROM pg_policies p JOIN pg_namespace n ON n.nspname = p.schemaname WHERE true{schemas} "
        "ORDER BY 1, 2, 3").format(schemas=_schema_clause(schemas))
    cur.execute(query, {"schemas": list(schemas or [])})
    return [{"schema": row[0], "table": row[1], "name": row[2], "permissive": row[3], "roles": sorted(row[4] or []),
             "cmd": row[5], "qual": row[6], "with_check": row[7]} for row in cur.fetchall()]


def read_revision(cur, version_schema, version_table):
    cur.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s", (version_schema, version_table))
    found = cur.fetchone()
    result = {"table": table_key(version_schema, version_table), "present": bool(found), "versions": []}
    if found:
        cur.execute(pgsql.SQL("SELECT version_num::text FROM {0} ORDER BY 1").format(
            pgsql.Identifier(version_schema, version_table)))
        result["versions"] = [row[0] for row in cur.fetchall()]
    return result


def role_exists(cur, role):
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    return cur.fetchone() is not None


def read_privileges(cur, role, privileges, schemas=None):
    """What ``role`` may do: per table the privileges it holds (directly, through a group or PUBLIC),
    USAGE on the schemas holding tables, USAGE on the sequences that feed table columns."""
    result = {"role": role, "role_exists": role_exists(cur, role), "tables": [], "schemas": [], "sequences": []}
    if not result["role_exists"]:
        return result
    query = pgsql.SQL(
        "SELECT n.nspname, c.relname, array_remove(array_agg(CASE WHEN has_table_privilege(%(role)s, c.oid, p.priv) "
        "THEN p.priv END ORDER BY p.priv), NULL) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN unnest(%(privs)s::text[]) AS p(priv) "
        "WHERE c.relkind IN ('r', 'p') AND " + SYSTEM_SCHEMA_FILTER + "{schemas} GROUP BY 1, 2 ORDER BY 1, 2").format(
            schemas=_schema_clause(schemas))
    cur.execute(query, {"role": role, "privs": list(privileges), "schemas": list(schemas or [])})
    result["tables"] = [{"schema": r[0], "name": r[1], "privileges": sorted(r[2] or [])} for r in cur.fetchall()]
    query = pgsql.SQL(
        "SELECT n.nspname, has_schema_privilege(%(role)s, n.oid, 'USAGE') FROM pg_namespace n "
        "WHERE EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p')) AND "
        + SYSTEM_SCHEMA_FILTER + "{schemas} ORDER BY 1").format(schemas=_schema_clause(schemas))
    cur.execute(query, {"role": role, "schemas": list(schemas or [])})
    result["schemas"] = [{"schema": r[0], "usage": bool(r[1])} for r in cur.fetchall()]
    query = pgsql.SQL(
        "SELECT DISTINCT n.nspname, s.relname, has_sequence_privilege(%(role)s, s.oid, 'USAGE') "
        "FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "JOIN pg_namespace n ON n.oid = s.relnamespace "
        "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
        "AND " + SYSTEM_SCHEMA_FILTER + "{schemas} ORDER BY 1, 2").format(schemas=_schema_clause(schemas))
    cur.execute(query, {"role": role, "schemas": list(schemas or [])})
    result["sequences"] = [{"schema": r[0], "name": r[1], "usage": bool(r[2])} for r in cur.fetchall()]
    return result


def read_sequences(cur, schemas=None):
    """Sequences owned by an integer column (serial or identity), with their state."""
    query = pgsql.SQL(
        "SELECT sn.nspname, s.relname, tn.nspname, t.relname, a.attname, ps.last_value, ps.start_value, ps.increment_by "
        "FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "JOIN pg_namespace sn ON sn.oid = s.relnamespace "
        "JOIN pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p') "
        "JOIN pg_namespace tn ON tn.oid = t.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid "
        "JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
        "AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype) "
        "AND " + SYSTEM_SCHEMA_FILTER + "{schemas} ORDER BY 1, 2").format(schemas=_schema_clause(schemas))
    cur.execute(query, {"schemas": list(schemas or [])})
    return [{"schema": r[0], "name": r[1], "table_schema": r[2], "table": r[3], "column": r[4],
             "last_value": _int_or_none(r[5]), "start_value": _int_or_none(r[6]), "increment": _int_or_none(r[7]),
             "max_in_table": None} for r in cur.fetchall()]


def _int_or_none(value):
    return None if value is None else int(value)


def read_update_columns(cur, schemas=None):
    """Per table one plain column an UPDATE may assign (for the privilege probe)."""
    query = pgsql.SQL(
        "SELECT DISTINCT ON (n.nspname, c.relname) n.nspname, c.relname, a.attname "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "AND a.attidentity = '' AND a.attgenerated = '' "
        "WHERE c.relkind IN ('r', 'p') AND " + SYSTEM_SCHEMA_FILTER + "{schemas} ORDER BY n.nspname, c.relname, a.attnum"
    ).format(schemas=_schema_clause(schemas))
    cur.execute(query, {"schemas": list(schemas or [])})
    return dict(((r[0], r[1]), r[2]) for r in cur.fetchall())


def count_rows(cur, schema, name):
    cur.execute(pgsql.SQL("SELECT count(*) FROM ONLY {0}").format(pgsql.Identifier(schema, name)))
    return int(cur.fetchone()[0])


def checksum_rows(cur, schema, name):
    """An order-independent digest of a table's content: md5 over the sorted md5 of every row's text."""
    cur.execute(pgsql.SQL(
        "SELECT md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM "
        "(SELECT md5(ROW(r.*)::text) AS h FROM ONLY {0} AS r) AS q").format(pgsql.Identifier(schema, name)))
    return cur.fetchone()[0]


def max_value(cur, schema, name, column):
    cur.execute(pgsql.SQL("SELECT max({0}) FROM {1}").format(pgsql.Identifier(column), pgsql.Identifier(schema, name)))
    value = cur.fetchone()[0]
    return None if value is None else int(value)


class SessionPool(object):
    """A fixed number of prepared connections shared by worker threads."""

    def __init__(self, open_connection, size):
        self._open = open_connection
        self.size = max(1, int(size))
        self._idle = six_queue.Queue()
        self._all = []
        self._lock = threading.Lock()
        self._stopped = False

    def _acquire(self):
        try:
            return self._idle.get_nowait()
        except six_queue.Empty:
            pass
        with self._lock:
            if len(self._all) < self.size:
                conn = self._open()
                self._all.append(conn)
                return conn
        return self._idle.get()

    def run(self, tasks):
        """Run ``task(cursor)`` callables over the pool; results in task order. The first failure
        is raised after all tasks have settled."""
        if not tasks:
            return []

        def call(task):
            if self._stopped:
                raise FactsError("stopped after an earlier failure or a cancel")
            conn = self._acquire()
            try:
                with conn.cursor() as cur:
                    return task(cur)
            except BaseException:
                self._stopped = True
                raise
            finally:
                self._idle.put(conn)

        with ThreadPoolExecutor(max_workers=min(self.size, len(tasks))) as executor:
            futures = [executor.submit(call, task) for task in tasks]
        results = []
        for future in futures:
            results.append(future.result())
        return results

    def cancel(self):
        """Stop: queued tasks are not started, running queries are cancelled (thread-safe)."""
        self._stopped = True
        for conn in list(self._all):
            try:
                conn.cancel()
            except Exception:  # pylint: disable=broad-except
                pass

    def close(self):
        for conn in self._all:
            try:
                conn.rollback()
                conn.close()
            except Exception:  # pylint: disable=broad-except
                pass
        self._all = []


def _describe_db_error(exc, what):
    if psycopg2 is not None and isinstance(exc, psycopg2.Error):
        detail = (exc.pgerror or str(exc) or exc.__class__.__name__).strip().splitlines()[0]
        return "%s: %s" % (what, detail)
    return "%s: %s" % (what, exc)


def collect_facts(open_connection, workers=3, schemas=None, version_schema="public", version_table="alembic_version",
                  app_role=None, app_privileges=None, count_rows_too=True, checksum_max_rows=0, checksum_tables=None,
                  exclude_tables=(), with_sequences=False, probe_privileges=None, pools=None):
    """Facts of one database. ``open_connection()`` returns a prepared connection (see prepare_session).

    Checksums: for the tables named in ``checksum_tables`` when given (the expected side decided),
    else for every table with at most ``checksum_max_rows`` rows (0 disables them).
    ``probe_privileges``: the expected privileges facts; when given, the application role's privileges
    are exercised for real (EXPLAIN as that role, in a transaction that is rolled back).
    ``pools``: a list the pool is appended to, so another thread can cancel the collection."""
    pool = SessionPool(open_connection, workers)
    if pools is not None:
        pools.append(pool)
    try:
        return _collect(pool, schemas, version_schema, version_table, app_role, app_privileges, count_rows_too,
                        checksum_max_rows, checksum_tables, exclude_tables, with_sequences, probe_privileges)
    finally:
        pool.close()


def _collect(pool, schemas, version_schema, version_table, app_role, app_privileges, count_rows_too,
             checksum_max_rows, checksum_tables, exclude_tables, with_sequences, probe_privileges):
    facts = {"revision": None, "tables": [], "policies": [], "privileges": None, "sequences": None, "probe": None}

    def metadata(cur):
        step = "reading the catalog"
        try:
            facts["tables"] = read_tables(cur, schemas)
            step = "reading the RLS policies"
            facts["policies"] = read_policies(cur, schemas)
            step = "reading the version table %s" % table_key(version_schema, version_table)
            facts["revision"] = read_revision(cur, version_schema, version_table)
            if app_role:
                step = "reading the privileges of role %s" % app_role
                facts["privileges"] = read_privileges(cur, app_role, app_privileges or DEFAULT_APP_PRIVILEGES, schemas)
            if with_sequences:
                step = "reading the sequences"
                facts["sequences"] = read_sequences(cur, schemas)
        except Exception as exc:  # pylint: disable=broad-except
            raise FactsError(_describe_db_error(exc, step))

    pool.run([metadata])
    wanted_checksums = set(checksum_tables) if checksum_tables is not None else None

    def table_task(table):
        key = table_key(table["schema"], table["name"])

        def task(cur):
            try:
                rows = count_rows(cur, table["schema"], table["name"]) if count_rows_too else None
                digest = None
                if wanted_checksums is not None:
                    if key in wanted_checksums:
                        digest = checksum_rows(cur, table["schema"], table["name"])
                elif checksum_max_rows and rows is not None and rows <= checksum_max_rows:
                    digest = checksum_rows(cur, table["schema"], table["name"])
                return rows, digest
            except Exception as exc:  # pylint: disable=broad-except
                raise FactsError(_describe_db_error(exc, "counting rows of %s" % key))
        return task

    countable = [t for t in facts["tables"] if t["kind"] == "r" and not _excluded(table_key(t["schema"], t["name"]), exclude_tables)]
    tasks = [table_task(t) for t in countable]
    sequences = facts["sequences"] or []

    def sequence_task(seq):
        def task(cur):
            try:
                return max_value(cur, seq["table_schema"], seq["table"], seq["column"])
            except Exception as exc:  # pylint: disable=broad-except
                raise FactsError(_describe_db_error(exc, "reading max(%s) of %s" % (seq["column"], table_key(seq["table_schema"], seq["table"]))))
        return task

    tasks.extend(sequence_task(s) for s in sequences)
    if probe_privileges is not None and app_role:
        tasks.append(lambda cur: probe_role(cur, app_role, probe_privileges, schemas))
    results = pool.run(tasks)
    for table, (rows, digest) in zip(countable, results[:len(countable)]):
        table["rows"] = rows
        table["checksum"] = digest
    for seq, value in zip(sequences, results[len(countable):len(countable) + len(sequences)]):
        seq["max_in_table"] = value
    if probe_privileges is not None and app_role:
        facts["probe"] = results[-1]
    return facts


def probe_role(cur, role, expected_privileges, schemas=None):
    """Exercise the privileges ``role`` held in the source, as that role, without writing: EXPLAIN
    checks permissions (and never executes), inside one transaction that is rolled back.
    Returns {"ran": bool, "reason": str|None, "denied": [{table, privilege, error}], "errors": [...], "probed": n}."""
    result = {"ran": False, "reason": None, "denied": [], "errors": [], "probed": 0}
    if not expected_privileges or not expected_privileges.get("tables"):
        result["reason"] = "no expected privileges to probe"
        return result
    conn = cur.connection
    if not role_exists(cur, role):
        result["reason"] = "role %s does not exist on the target server" % role
        return result
    update_columns = read_update_columns(cur, schemas)
    conn.rollback()
    try:
        cur.execute(pgsql.SQL("SET LOCAL ROLE {0}").format(pgsql.Identifier(role)))
        cur.execute("SET LOCAL row_security = on")
    except Exception as exc:  # pylint: disable=broad-except
        conn.rollback()
        result["reason"] = _describe_db_error(exc, "cannot act as role %s" % role)
        return result
    result["ran"] = True
    statements = {
        "SELECT": "EXPLAIN SELECT 1 FROM ONLY {table}",
        "INSERT": "EXPLAIN INSERT INTO {table} DEFAULT VALUES",
        "UPDATE": "EXPLAIN UPDATE ONLY {table} SET {column} = DEFAULT WHERE false",
        "DELETE": "EXPLAIN DELETE FROM ONLY {table} WHERE false",
    }
    try:
        for entry in expected_privileges["tables"]:
            for privilege in entry.get("privileges") or []:
                template = statements.get(privilege)
                if template is None:
                    continue
                column = update_columns.get((entry["schema"], entry["name"]))
                if privilege == "UPDATE" and column is None:
                    continue
                query = pgsql.SQL(template).format(table=pgsql.Identifier(entry["schema"], entry["name"]),
                                                   column=pgsql.Identifier(column or "x"))
                cur.execute("SAVEPOINT drill_probe")
                try:
                    cur.execute(query)
                    cur.fetchall()
                    cur.execute("RELEASE SAVEPOINT drill_probe")
                except psycopg2.Error as exc:
                    cur.execute("ROLLBACK TO SAVEPOINT drill_probe")
                    item = {"table": table_key(entry["schema"], entry["name"]), "privilege": privilege,
                            "error": (exc.pgerror or str(exc)).strip().splitlines()[0][:300]}
                    if exc.pgcode == INSUFFICIENT_PRIVILEGE:
                        result["denied"].append(item)
                    else:
                        result["errors"].append(item)
                result["probed"] += 1
    finally:
        conn.rollback()
    return result


# ---------------------------------------------------------------------------------------------
# Facts from a dump's schema script (``pg_restore --schema-only --file=-``)

_IDENT = r'(?:"(?:[^"]|"")+"|[^\s".(),;]+)'
_QNAME = r"(%s)\.(%s)" % (_IDENT, _IDENT)
_END = r"(?=[\s(;]|$)"
_CREATE_TABLE = re.compile(r"^CREATE (?:UNLOGGED )?TABLE %s%s" % (_QNAME, _END))
_RLS = re.compile(r"^ALTER TABLE (?:ONLY )?%s (ENABLE|FORCE) ROW LEVEL SECURITY;" % _QNAME)
_POLICY = re.compile(r"^CREATE POLICY (%s) ON %s%s" % (_IDENT, _QNAME, _END))
_GRANT = re.compile(r"^GRANT (.+?) ON (TABLE|SEQUENCE|SCHEMA) (%s(?:\.%s)?) TO (%s);" % (_IDENT, _IDENT, _IDENT))


def unquote_ident(text):
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    return text


def _split_qualified(text):
    parts = re.findall(_IDENT, text)
    return [unquote_ident(part) for part in parts]


def facts_from_schema_script(script, schemas=None, app_role=None, app_privileges=None):
    """Tables, RLS flags, policy names and the application role's grants, as written in the dump."""
    tables = {}
    policies = []
    grants = {}
    schema_usage = {}
    sequence_usage = {}
    wanted = set(app_privileges or DEFAULT_APP_PRIVILEGES)

    def in_scope(schema):
        return not schemas or schema in schemas

    for line in script.splitlines():
        match = _CREATE_TABLE.match(line)
        if match:
            schema, name = unquote_ident(match.group(1)), unquote_ident(match.group(2))
            if in_scope(schema):
                tables[(schema, name)] = {"schema": schema, "name": name, "kind": "r", "rls_enabled": False,
                                          "rls_forced": False, "rows": None, "checksum": None}
            continue
        match = _RLS.match(line)
        if match:
            key = (unquote_ident(match.group(1)), unquote_ident(match.group(2)))
            if key in tables:
                tables[key]["rls_enabled" if match.group(3) == "ENABLE" else "rls_forced"] = True
            continue
        match = _POLICY.match(line)
        if match:
            schema = unquote_ident(match.group(2))
            if in_scope(schema):
                policies.append({"schema": schema, "table": unquote_ident(match.group(3)), "name": unquote_ident(match.group(1)),
                                 "permissive": None, "roles": None, "cmd": None, "qual": None, "with_check": None})
            continue
        match = _GRANT.match(line)
        if match and app_role:
            grantee = unquote_ident(match.group(4))
            if grantee != app_role and grantee != "PUBLIC":
                continue
            privileges = set(p.strip().split("(")[0].strip() for p in match.group(1).split(","))
            names = _split_qualified(match.group(3))
            if match.group(2) == "SCHEMA":
                if "USAGE" in privileges or "ALL" in privileges:
                    schema_usage[names[0]] = True
            elif match.group(2) == "SEQUENCE" and len(names) == 2:
                if "USAGE" in privileges or "ALL" in privileges:
                    sequence_usage[(names[0], names[1])] = True
            elif len(names) == 2:
                if "ALL" in privileges:
                    privileges = set(TABLE_PRIVILEGES)
                grants.setdefault((names[0], names[1]), set()).update(privileges & wanted)
    facts = {"revision": None, "tables": [tables[k] for k in sorted(tables)], "policies": policies,
             "privileges": None, "sequences": None, "probe": None}
    if app_role:
        facts["privileges"] = {
            "role": app_role, "role_exists": True,
            "tables": [{"schema": k[0], "name": k[1], "privileges": sorted(grants.get(k, set()))}
                       for k in sorted(tables) if grants.get(k)],
            "schemas": [{"schema": k, "usage": True} for k in sorted(schema_usage) if in_scope(k)],
            "sequences": [{"schema": k[0], "name": k[1], "usage": True} for k in sorted(sequence_usage) if in_scope(k[0])],
            "partial": True,
        }
    return facts


def revision_from_data_script(script, version_schema, version_table):
    """The version rows of the version table's COPY block in a data script."""
    result = {"table": table_key(version_schema, version_table), "present": False, "versions": []}
    lines = script.splitlines()
    inside = False
    for line in lines:
        if not inside:
            if line.startswith("COPY ") and line.rstrip().endswith("FROM stdin;"):
                match = re.match(r"^COPY %s%s" % (_QNAME, _END), line)
                if match and (unquote_ident(match.group(1)), unquote_ident(match.group(2))) == (version_schema, version_table):
                    inside = True
                    result["present"] = True
            continue
        if line == "\\.":
            break
        result["versions"].append(line.split("\t")[0].replace("\\\\", "\\"))
    result["versions"].sort()
    return result
