#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_restore_drill
short_description: Prove a PostgreSQL backup by restoring it into a scratch database and verifying it
version_added: 0.1.0
description:
  - Takes a C(pg_dump -Fc) of the source database (or picks an existing dump), restores it with
    C(pg_restore) into a freshly created scratch database, verifies the restored database against
    what the backup must contain, and drops the scratch database again, on success and on every
    failure path.
  - "Verifications: the Alembic revision, the set of tables, exact row counts per table, content
    checksums of tables up to O(checksum_max_rows) rows, RLS flags (C(relrowsecurity),
    C(relforcerowsecurity)), the RLS policies (names, tables and definitions), the privileges of the
    application role O(app_role) (catalog grants and, as that role, C(EXPLAIN) of each statement it could
    run in the source), and sequences not behind their tables (the last value at or above the maximum of the column they feed)."
  - When the module dumps the source itself, the dump runs in a snapshot exported by the module and
    the expected facts are read from the source in that same snapshot, so the comparison is exact even
    while the service keeps writing.
  - "The source is never written: every connection to it is read-only. The source role must be a
    superuser or have BYPASSRLS: under forced RLS any other role makes C(pg_dump) fail with
    C(query would be affected by row-level security policy), so the module refuses before dumping."
  - "Returns the result records of criterion C(backup.drill): one overall record (blocking, per
    O(blocking)) with every verification's expected and actual values in its evidence, and one
    advisory record per step (names C(dump), C(restore), C(verify), C(rto)). A failing drill is
    data (C(status=fail)), not a failed task; a step that could not run is C(error). Only bad input
    (and a scratch database that would be the source or already exists) fails the task."
  - In check mode the connections, the role checks and the client programs are checked for real and a
    plan is returned; nothing is dumped, created or written.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - cleanwithsnapshot.release.postgres
options:
  backup_source:
    description:
      - V(dump) takes a fresh C(pg_dump -Fc) of the source (the database of O(login_db) or O(dsn)).
      - V(file) restores O(dump_file).
      - V(latest) restores the newest file in O(backup_dir) whose name matches O(dump_pattern), as the
        service's runbook drill does.
    type: str
    choices: [dump, file, latest]
    default: dump
  dump_file:
    description: The custom-format dump to restore when O(backup_source=file).
    type: path
  backup_dir:
    description:
      - Where backups live. With O(backup_source=latest) the newest matching dump is taken from here.
      - With O(backup_source=dump) and O(keep_dump=true) the new dump is kept here, with a C(.sha256)
        sidecar and a C(.manifest.json) that records what the dump must contain (used by later drills of
        that file). Without O(keep_dump) a temporary dump is written to a hidden directory here (or to
        the system temporary directory when O(backup_dir) is not set) and removed.
    type: path
  dump_pattern:
    description: Shell-style pattern of dump file names for O(backup_source=latest).
    type: str
    default: '*.dump'
  dump_name:
    description: File name of a kept dump; default C(<database>_<UTC timestamp>.dump).
    type: str
  keep_dump:
    description: Keep the dump taken by O(backup_source=dump) in O(backup_dir) (also when the drill fails, as evidence).
    type: bool
    default: false
  verify_dump_sha256:
    description:
      - Before restoring an existing dump, compare its sha256 with the C(<dump>.sha256) sidecar the backup
        wrote (or with O(dump_sha256)); a difference (a truncated or altered dump) fails the drill before
        anything is created.
    type: bool
    default: true
  dump_sha256:
    description: The expected sha256 of O(dump_file) (64 hex digits); overrides the sidecar.
    type: str
  compress:
    description: C(pg_dump --compress) level (0-9); the client's default when not set.
    type: int
  schemas:
    description: Only these schemas are dumped and compared; all non-system schemas when not set.
    type: list
    elements: str
  expected_from:
    description:
      - Where the expected facts come from.
      - V(source) reads the source database (with O(backup_source=dump), in the dump's own snapshot; with an
        existing dump, the live source, which only matches a dump of a quiescent database).
      - V(manifest) reads the C(.manifest.json) next to the dump (written by an earlier drill with O(keep_dump)).
      - V(dump) reads the dump itself (tables, RLS flags, policy names, grants, the revision); row counts and
        checksums are then not compared.
      - V(auto) is V(source) for O(backup_source=dump), else V(manifest) when the manifest exists, else V(dump).
    type: str
    choices: [auto, source, manifest, dump]
    default: auto
  expected_revision:
    description:
      - The Alembic revision(s) the restored database must hold, for example the migration scripts' head
        (the runbook's "alembic current matches alembic heads"). Compared in addition to the source's revision.
    type: list
    elements: str
  version_table:
    description: Alembic's version table.
    type: str
    default: alembic_version
  version_table_schema:
    description: Schema of O(version_table).
    type: str
    default: public
  target_dsn:
    description:
      - Connection URL (or libpq C(key=value) pairs) of the server to restore on; its database name is ignored
        (see O(target_maintenance_db)). Never printed.
      - Mutually exclusive with O(target_host), O(target_unix_socket) and O(target_password).
    type: str
  target_host:
    description: Host of the restore server; the source's when no C(target_*) option is set.
    type: str
  target_port:
    description: Port of the restore server; the source's by default.
    type: int
  target_user:
    description: Role that creates, restores, verifies and drops the scratch database (needs CREATEDB and must bypass RLS).
    type: str
  target_password:
    description: Password of O(target_user); the source's password when O(target_user) is not set. Never printed.
    type: str
  target_unix_socket:
    description: Socket directory of the restore server.
    type: str
  target_ssl_mode:
    description: libpq C(sslmode) for the restore server; the source's by default.
    type: str
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  target_ca_cert:
    description: CA certificate for the restore server; the source's by default.
    type: path
  target_maintenance_db:
    description: Database on the restore server used to create and drop the scratch database.
    type: str
    default: postgres
  scratch_db:
    description:
      - Name of the scratch database; default C(<scratch_prefix>_<UTC YYYYmmddHHMMSS>_<6 hex>).
      - Refused when it would be the source database on the same server, a template or the maintenance
        database, and when it already exists (unless O(replace=true)).
    type: str
  scratch_prefix:
    description: Prefix of generated scratch database names (letters, digits, underscores; at most 41 characters).
    type: str
    default: cws_drill
  allow_source_server:
    description:
      - Allow the restore server to be the source's own server - the same DSN, the same host and port, or the same
        PostgreSQL cluster (system identifier). V(false) refuses such a target before anything is restored, with a
        message naming this option; the scratch database is then never created next to production.
      - The default V(true) keeps a drill with no C(target_*) option on the source's server; the backup_drill role
        sets V(false) unless C(backup_drill_allow_source_server) is true.
    type: bool
    default: true
  replace:
    description: Drop an existing O(scratch_db) before restoring (never the source, a template or the maintenance database).
    type: bool
    default: false
  jobs:
    description: Parallel jobs of C(pg_restore) (1-64).
    type: int
    default: 2
  restore_privileges:
    description:
      - Restore GRANTs. V(false) runs C(pg_restore --no-privileges) as the service's restore script does;
        the drill then reports the grants the application role lost.
    type: bool
    default: true
  restore_owner:
    description: Restore object ownership (V(false) adds C(--no-owner), for a target without the source's roles).
    type: bool
    default: true
  ignore_restore_errors:
    description:
      - Regular expressions of C(pg_restore) error lines that do not fail the drill (for example a known extension
        comment). Ignored errors are still listed in the evidence.
    type: list
    elements: str
    default: []
  app_role:
    description:
      - The application's (non-superuser, NOBYPASSRLS) role. Its privileges on the restored tables must match the
        ones it had in the source; lost grants are reported by table.
    type: str
  app_privileges:
    description: Table privileges of O(app_role) that are compared.
    type: list
    elements: str
    choices: [SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER]
    default: [SELECT, INSERT, UPDATE, DELETE]
  checksum_max_rows:
    description:
      - Tables with at most this many rows get a content checksum compared (order-independent md5 of every row's
        text). V(0) disables checksums.
    type: int
    default: 10000
  exclude_tables:
    description: Shell-style patterns of C(schema.table) names whose row counts and checksums are not compared.
    type: list
    elements: str
    default: []
  verify_connections:
    description: Connections per database used to count rows and compute checksums in parallel (1-16).
    type: int
    default: 3
  rto_seconds:
    description: Recovery time objective; the drill fails when the measured time (see O(rto_scope)) exceeds it.
    type: float
  rto_scope:
    description: V(total) measures dump, restore and verification together; V(restore) only the restore.
    type: str
    choices: [total, restore]
    default: total
  keep_on_failure:
    description: Keep the scratch database when the drill fails (for inspection); it is always dropped on success.
    type: bool
    default: false
  marker_file:
    description:
      - On success, write this backup marker (an ISO-8601 UTC timestamp, atomically through a temporary file and a
        rename), for example C(/opt/backups/postgres/LAST_SUCCESS.txt) that the service's C(/healthz/backup) reads.
        Its directory must exist.
    type: path
  bindir:
    description:
      - Directory holding C(pg_dump) and C(pg_restore). By default PATH and the usual versioned install directories
        are searched for a client not older than the server.
    type: path
  pg_dump_path:
    description: Explicit path of C(pg_dump).
    type: path
  pg_restore_path:
    description: Explicit path of C(pg_restore).
    type: path
  blocking:
    description: Whether the overall record blocks a release (the step records are always advisory).
    type: bool
    default: true
  max_evidence_items:
    description: Longest list (tables, mismatches) kept in the evidence; the rest is counted.
    type: int
    default: 200
attributes:
  check_mode:
    support: full
    details: The connections, the role checks and the client programs are checked for real and a plan is returned; nothing
      is dumped, created or written, and the drill's record is skipped (C(skip_reason=check_mode)).
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The scratch database is created from C(template0) with the source's encoding and locale when known.
  - Restoring on the production server loads it; point the C(target_*) options at another server when possible.
  - The scratch database is dropped with C(DROP DATABASE ... WITH (FORCE)) on PostgreSQL 13 and newer. A run killed
    with SIGKILL cannot clean up; leftovers are listed in the evidence (C(stale_scratch_databases)) of the next run.
  - Connection options of a O(dsn) beyond those libpq reads from environment variables are refused for the client programs.
requirements:
  - psycopg2 (psycopg2-binary) on the host that runs the module
  - the PostgreSQL client programs C(pg_dump) and C(pg_restore), of a major version not older than the servers
seealso:
  - name: PostgreSQL pg_dump
    description: The dump program and its custom format.
    link: https://www.postgresql.org/docs/current/app-pgdump.html
  - name: PostgreSQL pg_restore
    description: Restoring custom-format archives, also in parallel.
    link: https://www.postgresql.org/docs/current/app-pgrestore.html
"""

EXAMPLES = r"""
- name: Backup drill of the production database, restored on the drill server, marker updated
  cleanwithsnapshot.release.backup_restore_drill:
    login_host: db.internal
    login_user: postgres
    login_password: "{{ vault_pg_superuser_password }}"
    login_db: cleaning
    target_host: drill-db.internal
    target_password: "{{ vault_drill_password }}"
    app_role: cleaning_app
    backup_dir: /opt/backups/postgres
    keep_dump: true
    rto_seconds: 900
    marker_file: /opt/backups/postgres/LAST_SUCCESS.txt
  register: drill

- name: The runbook's drill - restore the newest dump, expect the migration head
  cleanwithsnapshot.release.backup_restore_drill:
    backup_source: latest
    backup_dir: /opt/backups/postgres
    dsn: "{{ drill_server_dsn }}"
    expected_revision: [merge_20260224_01]
    app_role: cleaning_app

- name: Show that the project's restore script (--no-privileges) loses the app role's grants
  cleanwithsnapshot.release.backup_restore_drill:
    dsn: "{{ database_admin_url }}"
    app_role: cleaning_app
    restore_privileges: false
"""

RETURN = r"""
records:
  description:
    - Result records of criterion C(backup.drill). The first (name C(backup.drill)) decides; the others (names
      C(dump), C(restore), C(verify), C(rto)) detail each step and are advisory.
  returned: always
  type: list
  elements: dict
  contains:
    criterion:
      description: Always C(backup.drill).
      type: str
    name:
      description: C(backup.drill), C(dump), C(restore), C(verify) or C(rto).
      type: str
    status:
      description: pass, fail, error or skipped (check mode, or a step not reached).
      type: str
    blocking:
      description: Whether the record gates a release.
      type: bool
    summary:
      description: One line saying what happened.
      type: str
    evidence:
      description:
        - The overall record holds everything below (under RV(drill)); a step record holds its part.
      type: dict
    duration_ms:
      description: Milliseconds the step (or the whole drill) took.
      type: float
  sample:
    - criterion: backup.drill
      name: backup.drill
      status: pass
      blocking: true
      summary: "backup drill passed: 146 tables, 8 verifications, restored in 4.1 s (total 7.9 s, RTO 900 s)"
      evidence: {}
      duration_ms: 7912.4
status:
  description: The worst status of the blocking records.
  returned: always
  type: str
  sample: pass
counts:
  description: Number of records per status.
  returned: always
  type: dict
  sample: {"pass": 5, "fail": 0, "error": 0, "skipped": 0}
drill:
  description: The evidence of the overall record.
  returned: always
  type: dict
  contains:
    backup_source:
      description: dump, file or latest.
      type: str
    expected_from:
      description: Where the expected facts came from (source, manifest or dump).
      type: str
    source:
      description: C(user@host:port/db) of the source (no password).
      type: str
    target:
      description: C(user@host:port) of the restore server (no password).
      type: str
    scratch_db:
      description: The scratch database's name.
      type: str
    dump:
      description: The dump (file, kept, size_bytes, sha256, pg_dump path and version, snapshot_consistent, age_seconds).
      type: dict
    restore:
      description: The restore (pg_restore path and version, jobs, restore_privileges, rc, redacted and truncated stderr, error lines).
      type: dict
    checks:
      description:
        - One entry per verification (revision, tables, row_counts, checksums, rls_flags, policies, app_privileges,
          sequences) with name, status, summary, expected, actual and the detail of every mismatch.
      type: list
      elements: dict
    timings:
      description: Seconds of dump, restore, verify and total, and the RTO budget.
      type: dict
    cleanup:
      description: Whether the scratch database was dropped (or kept on failure) and the temporary dump removed.
      type: dict
    marker:
      description: The backup marker (file, written, timestamp).
      type: dict
    stale_scratch_databases:
      description: Databases named like this drill's scratch databases, left behind by an earlier, killed run (or belonging to a drill
        running at the same time).
      type: list
      elements: str
plan:
  description: In check mode, what would be dumped, where it would be restored, what would be verified and written.
  returned: check mode
  type: dict
"""

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.postgres import (
    SSL_MODES, postgres_common_argument_spec, postgres_module)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import drill_catalog as catalog
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.drill import Drill, ThreadPoolExecutor, validate


def argument_spec():
    spec = postgres_common_argument_spec()
    spec.update(
        backup_source=dict(type="str", default="dump", choices=["dump", "file", "latest"]),
        dump_file=dict(type="path"),
        backup_dir=dict(type="path"),
        dump_pattern=dict(type="str", default="*.dump"),
        dump_name=dict(type="str"),
        keep_dump=dict(type="bool", default=False),
        verify_dump_sha256=dict(type="bool", default=True),
        dump_sha256=dict(type="str"),
        compress=dict(type="int"),
        schemas=dict(type="list", elements="str"),
        expected_from=dict(type="str", default="auto", choices=["auto", "source", "manifest", "dump"]),
        expected_revision=dict(type="list", elements="str"),
        version_table=dict(type="str", default="alembic_version"),
        version_table_schema=dict(type="str", default="public"),
        target_dsn=dict(type="str", no_log=True),
        target_host=dict(type="str"),
        target_port=dict(type="int"),
        target_user=dict(type="str"),
        target_password=dict(type="str", no_log=True),
        target_unix_socket=dict(type="str"),
        target_ssl_mode=dict(type="str", choices=SSL_MODES),
        target_ca_cert=dict(type="path"),
        target_maintenance_db=dict(type="str", default="postgres"),
        scratch_db=dict(type="str"),
        scratch_prefix=dict(type="str", default="cws_drill"),
        replace=dict(type="bool", default=False),
        allow_source_server=dict(type="bool", default=True),
        jobs=dict(type="int", default=2),
        restore_privileges=dict(type="bool", default=True),
        restore_owner=dict(type="bool", default=True),
        ignore_restore_errors=dict(type="list", elements="str", default=[]),
        app_role=dict(type="str"),
        app_privileges=dict(type="list", elements="str", choices=list(catalog.TABLE_PRIVILEGES),
                            default=list(catalog.DEFAULT_APP_PRIVILEGES)),
        checksum_max_rows=dict(type="int", default=10000),
        exclude_tables=dict(type="list", elements="str", default=[]),
        verify_connections=dict(type="int", default=3),
        rto_seconds=dict(type="float"),
        rto_scope=dict(type="str", default="total", choices=["total", "restore"]),
        keep_on_failure=dict(type="bool", default=False),
        marker_file=dict(type="path"),
        bindir=dict(type="path"),
        pg_dump_path=dict(type="path"),
        pg_restore_path=dict(type="path"),
        blocking=dict(type="bool", default=True),
        max_evidence_items=dict(type="int", default=200),
    )
    return spec


# On top of the source connection's exclusions (postgres_module adds those).
MUTUALLY_EXCLUSIVE = [["target_dsn", "target_host"], ["target_dsn", "target_unix_socket"], ["target_dsn", "target_password"]]


REQUIRED_IF = [
    ("backup_source", "file", ["dump_file"]),
    ("backup_source", "latest", ["backup_dir"]),
    ("keep_dump", True, ["backup_dir"]),
]


def main():
    module = postgres_module(argument_spec(), mutually_exclusive=MUTUALLY_EXCLUSIVE, required_if=REQUIRED_IF)
    if ThreadPoolExecutor is None:
        module.fail_json(msg="concurrent.futures is required (Python 3)")
    target = validate(module)
    Drill(module, target).run()


if __name__ == "__main__":
    main()
