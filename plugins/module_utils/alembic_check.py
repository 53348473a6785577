# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of alembic_head: the heads of the migration scripts (parsed, never imported) or the given
ones, the database's version table against them, and what the service's /readyz says against the
database. Each check returns one record; a missing or empty version table is a failure, never a pass."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import alembic_scripts
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    ERROR, FAIL, PASS, Stopwatch, join_limited, make_record)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.postgres import (
    PostgresConnectionError, connect, describe_target, identifier, pgsql, psycopg2, secrets_of, validate_connection_params)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import redact

SINGLE_HEAD = "migrations.single_head"
AT_HEAD = "migrations.at_head"
READYZ = "migrations.readyz"
# readiness_probe owns migrations.readyz; this record is the database-side cross-check of the same criterion.
READYZ_NAME = "migrations.readyz.matches_database"
MAX_LISTED = 25
IDENTIFIER_MAX = 63


def _short(items, limit=MAX_LISTED):
    return join_limited(items, limit)


def validate(module):
    params = module.params
    validate_connection_params(module)
    if params["max_heads"] < 1:
        module.fail_json(msg="max_heads must be 1 or more, got %s" % params["max_heads"])
    for option in ("version_table", "version_table_schema"):
        value = params[option]
        if not value or len(value.encode("utf-8")) > IDENTIFIER_MAX or "\x00" in value:
            module.fail_json(msg="%s must be a non-empty SQL identifier of at most %d bytes" % (option, IDENTIFIER_MAX))
    if params["expected_heads"] is not None:
        heads = params["expected_heads"]
        if not heads:
            module.fail_json(msg="expected_heads must name at least one revision")
        for head in heads:
            if not head or not head.strip() or re.search(r"\s", head):
                module.fail_json(msg="expected_heads holds an empty or blank revision id: %r" % head)
        if len(set(heads)) != len(heads):
            module.fail_json(msg="expected_heads lists a revision twice")
    if params["migrations_dir"] is not None and not os.path.isdir(params["migrations_dir"]):
        module.fail_json(msg="migrations_dir %s is not a directory" % params["migrations_dir"])


def check_scripts(params):
    """-> (record, graph or None, target heads)."""
    watch = Stopwatch()
    expected = params["expected_heads"]
    blocking = params["blocking"]
    graph = None
    evidence = {}
    if params["migrations_dir"] is not None:
        evidence["migrations_dir"] = params["migrations_dir"]
        try:
            scripts = alembic_scripts.load_scripts(params["migrations_dir"], recursive=params["recursive_version_locations"])
        except alembic_scripts.MigrationScriptError as exc:
            evidence["problem"] = str(exc)
            return (make_record(SINGLE_HEAD, ERROR, "cannot read the migration scripts: %s" % exc, evidence,
                                blocking, watch.elapsed_ms), None, list(expected or []))
        graph = alembic_scripts.RevisionGraph(scripts)
        heads = list(graph.heads)
        evidence.update({
            "source": "scripts+expected_heads" if expected else "scripts",
            "heads": heads,
            "head_details": [graph.describe(head) for head in heads],
            "revision_count": len(graph.revisions),
            "merge_count": sum(1 for script in graph.revisions.values() if len(script["down_revision"]) > 1),
            "branch_labels": sorted(graph.labels),
            "problems": list(graph.problems),
            "max_heads": params["max_heads"],
        })
        failures = []
        if not graph.revisions:
            failures.append("no migration script found in %s" % params["migrations_dir"])
        failures.extend(graph.problems)
        if len(heads) > params["max_heads"]:
            failures.append("%d heads (%s), at most %d allowed: merge them" % (len(heads), _short(heads), params["max_heads"]))
        if expected:
            evidence["expected_heads"] = list(expected)
            if set(heads) != set(expected):
                failures.append("the scripts' head(s) %s differ from expected_heads %s" % (_short(heads), _short(expected)))
        target = list(expected) if expected else heads
        if failures:
            status, summary = FAIL, "; ".join(failures)
        else:
            status = PASS
            summary = "%d head(s): %s (%d revisions, %d merges)" % (len(heads), _short(heads), len(graph.revisions),
                                                                    evidence["merge_count"])
        return make_record(SINGLE_HEAD, status, summary, evidence, blocking, watch.elapsed_ms), graph, target
    evidence.update({"source": "expected_heads", "heads": list(expected), "max_heads": params["max_heads"]})
    if len(expected) > params["max_heads"]:
        summary = "expected_heads names %d heads (%s), at most %d allowed" % (len(expected), _short(expected), params["max_heads"])
        return make_record(SINGLE_HEAD, FAIL, summary, evidence, blocking, watch.elapsed_ms), None, list(expected)
    summary = "%d head(s) given: %s (scripts not read)" % (len(expected), _short(expected))
    return make_record(SINGLE_HEAD, PASS, summary, evidence, blocking, watch.elapsed_ms), None, list(expected)


def server_message(exc):
    """The server's primary message: no ``ERROR:`` prefix and no echoed statement."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        return primary.strip()
    text = (str(exc) or exc.__class__.__name__).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def read_version_table(params):
    """-> (rows or None when the table is missing, table name shown). Raises psycopg2.Error."""
    schema, table = params["version_table_schema"], params["version_table"]
    conn = connect(params, read_only=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL", (schema, table))
            if not cursor.fetchone()[0]:
                return None
            cursor.execute(pgsql.SQL("SELECT version_num FROM {} ORDER BY version_num").format(identifier(schema, table)))
            return [row[0] for row in cursor.fetchall()]
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()


def check_database(params, graph, target, secrets):
    """-> (record, current rows)."""
    watch = Stopwatch()
    blocking = params["blocking"]
    shown = "%s.%s" % (params["version_table_schema"], params["version_table"])
    evidence = {"version_table": shown, "database": describe_target(params), "expected_heads": list(target)}
    try:
        rows = read_version_table(params)
    except PostgresConnectionError as exc:
        evidence["reason"] = str(exc)
        return make_record(AT_HEAD, ERROR, "cannot read the version table: %s" % exc, evidence, blocking, watch.elapsed_ms), []
    except psycopg2.Error as exc:
        reason = redact(server_message(exc), secrets)
        evidence["reason"] = reason
        evidence["sqlstate"] = getattr(exc, "pgcode", None)
        return make_record(AT_HEAD, ERROR, "cannot read the version table %s: %s" % (shown, reason), evidence, blocking,
                           watch.elapsed_ms), []
    if rows is None:
        evidence["current"] = []
        summary = "version table %s does not exist: the database was never migrated (or the wrong database/schema)" % shown
        return make_record(AT_HEAD, FAIL, summary, evidence, blocking, watch.elapsed_ms), []
    evidence["current"] = rows
    if not rows:
        summary = "version table %s is empty: no revision is recorded as applied" % shown
        return make_record(AT_HEAD, FAIL, summary, evidence, blocking, watch.elapsed_ms), []
    if not target:
        summary = "no expected head to compare the database (%s) with" % _short(rows)
        return make_record(AT_HEAD, ERROR, summary, evidence, blocking, watch.elapsed_ms), rows
    if graph is None or not graph.revisions:
        evidence["compared_by"] = "revision ids (no scripts read)"
        if set(rows) == set(target):
            return make_record(AT_HEAD, PASS, "database at head %s" % _short(rows), evidence, blocking, watch.elapsed_ms), rows
        summary = "database holds %s, expected head %s (behind or ahead cannot be told without migrations_dir)" % (
            _short(rows), _short(target))
        return make_record(AT_HEAD, FAIL, summary, evidence, blocking, watch.elapsed_ms), rows
    unresolved = [head for head in target if head not in graph.revisions]
    if unresolved:
        evidence["unresolved_expected_heads"] = unresolved
    outcome = alembic_scripts.compare(graph, rows, [head for head in target if head in graph.revisions])
    evidence["compared_by"] = "revision graph"
    evidence.update({
        "behind": outcome["behind"], "pending": outcome["pending"][:200], "ahead": outcome["ahead"],
        "ahead_by": outcome["ahead_by"], "unknown": outcome["unknown"], "extra": outcome["extra"][:200],
    })
    if outcome["at_head"] and not unresolved:
        return make_record(AT_HEAD, PASS, "database at head %s" % _short(rows), evidence, blocking, watch.elapsed_ms), rows
    problems = []
    if unresolved:
        problems.append("expected head(s) %s are not in the scripts" % _short(unresolved))
    if outcome["unknown"]:
        problems.append("database revision %s is not in the migration scripts (unknown revision: a newer release's "
                        "database, or another service's)" % _short(outcome["unknown"]))
    if outcome["ahead"]:
        problems.append("database revision %s is %d revision(s) ahead of head %s" % (
            _short(outcome["ahead"]), outcome["ahead_by"], _short(target)))
    if outcome["extra"]:
        problems.append("database has revision(s) %s applied that are not in the history of head %s" % (
            _short(outcome["extra"]), _short(target)))
    if outcome["pending"]:
        problems.append("database is %d revision(s) behind head %s (at %s): pending %s" % (
            outcome["behind"], _short(target), _short(rows), _short(outcome["pending"], 10)))
    return make_record(AT_HEAD, FAIL, "; ".join(problems), evidence, blocking, watch.elapsed_ms), rows


def _as_list(value):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(value)]


def check_readyz(params, target, current, at_head_record):
    watch = Stopwatch()
    detail = params["readyz_detail"]
    blocking = params["blocking"]
    evidence = {"service": {}, "database": {"current": list(current), "expected_heads": list(target)}}
    compared = []
    problems = []
    undecided = []
    service_current = _as_list(detail.get("current_version"))
    if service_current is not None:
        evidence["service"]["current_version"] = service_current
        compared.append("current_version")
        if at_head_record["status"] == ERROR:
            undecided.append("current_version")
        elif sorted(service_current) != sorted(current):
            problems.append("the service reports current_version %s but the database holds %s (another database?)"
                            % (_short(service_current), _short(current)))
    service_heads = _as_list(detail.get("expected_heads"))
    if not service_heads and detail.get("expected_head"):
        service_heads = _as_list(detail.get("expected_head"))
    if service_heads is not None:
        evidence["service"]["expected_heads"] = service_heads
        compared.append("expected_heads")
        if sorted(service_heads) != sorted(target):
            problems.append("the service expects head(s) %s but the release's head is %s (other code running?)"
                            % (_short(service_heads), _short(target)))
    if "migrations_current" in detail:
        flag = detail.get("migrations_current")
        evidence["service"]["migrations_current"] = flag
        compared.append("migrations_current")
        if not isinstance(flag, bool):
            problems.append("migrations_current is %r, not a boolean" % (flag,))
        elif at_head_record["status"] == ERROR:
            undecided.append("migrations_current")
        elif flag != (at_head_record["status"] == PASS):
            problems.append("the service says migrations_current=%s but the database check says %s"
                            % (flag, "at head" if at_head_record["status"] == PASS else "not at head"))
    evidence["compared"] = compared
    if not compared:
        summary = "readyz_detail has none of current_version, expected_head(s), migrations_current"
        return make_record(READYZ, ERROR, summary, evidence, blocking, watch.elapsed_ms, name=READYZ_NAME)
    if undecided:
        evidence["undecided"] = undecided
    if problems:
        return make_record(READYZ, FAIL, "; ".join(problems), evidence, blocking, watch.elapsed_ms, name=READYZ_NAME)
    if undecided:
        summary = "the database could not be read to compare with the service's %s" % ", ".join(undecided)
        return make_record(READYZ, ERROR, summary, evidence, blocking, watch.elapsed_ms, name=READYZ_NAME)
    return make_record(READYZ, PASS, "the service agrees with the database (%s)" % ", ".join(compared), evidence, blocking,
                       watch.elapsed_ms, name=READYZ_NAME)


def run(params):
    """The records of one call (redacted), the target heads and the database's current revisions."""
    secrets = secrets_of(params)
    scripts_record, graph, target = check_scripts(params)
    db_record, current = check_database(params, graph, target, secrets)
    records = [scripts_record, db_record]
    if params["readyz_detail"] is not None:
        records.append(check_readyz(params, target, current, db_record))
    return redact(records, secrets), list(target), list(current)
