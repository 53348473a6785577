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

import os
import re

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import alembic_scripts
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    ERROR, FAIL, PASS, Stopwatch, exit_with_records, join_limited, make_record)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.postgres import (
    HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR, PostgresConnectionError, connect, describe_target, identifier, pgsql,
    postgres_common_argument_spec, postgres_mutually_exclusive, psycopg2, secrets_of, validate_connection_params)
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
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=postgres_mutually_exclusive(),
        required_one_of=[["migrations_dir", "expected_heads"]],
        supports_check_mode=True,
    )
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=PSYCOPG2_IMPORT_ERROR)
    validate(module)
    secrets = secrets_of(module.params)
    records = []
    scripts_record, graph, target = check_scripts(module.params)
    records.append(scripts_record)
    db_record, current = check_database(module.params, graph, target, secrets)
    records.append(db_record)
    if module.params["readyz_detail"] is not None:
        records.append(check_readyz(module.params, target, current, db_record))
    records = redact(records, secrets)
    exit_with_records(module, records, heads=list(target), current=list(current))


if __name__ == "__main__":
    main()
