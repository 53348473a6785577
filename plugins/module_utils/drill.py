# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup restore drill: pg_dump of the source (or an existing dump), a restore into a scratch
database that is never the source, the verifications against the expected facts, the RTO, and the
cleanup that drops the scratch database on every path. ``validate`` checks the module's input and
returns the restore server's connection; ``Drill(module, target).run()`` exits the module with its
records."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import signal
import tempfile
import traceback


from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    ERROR, FAIL, PASS, SKIP_CHECK_MODE, SKIP_NOT_REQUESTED, SKIPPED, Stopwatch, exit_with_records, make_record,
    worst_status)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.postgres import (
    PostgresConnectionError, connect, connection_kwargs, describe_target, params_dsn_error, pgsql, psycopg2, secrets_of,
    validate_connection_params)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import redact, redact_text
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import pg_tools
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import drill_catalog as catalog
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import drill_checks as checks
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import drill_files as files

try:
    from concurrent.futures import ThreadPoolExecutor
except ImportError:  # pragma: no cover - Python 3 always has it
    ThreadPoolExecutor = None

CRITERION = "backup.drill"
STEPS = ("dump", "restore", "verify", "rto")
PROTECTED_DATABASES = ("postgres", "template0", "template1")
SCRATCH_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")
SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
RLS_DUMP_ERROR = "query would be affected by row-level security policy"
APP_NAME = "cleanwithsnapshot.release backup_restore_drill"


def _range(module, name, low, high=None):
    value = module.params.get(name)
    if value is None:
        return
    if value < low or (high is not None and value > high):
        bound = "between %s and %s" % (low, high) if high is not None else "at least %s" % low
        module.fail_json(msg="%s must be %s, got %s" % (name, bound, value))


def validate(module):
    """Input checks argument_spec cannot express; every message names its option."""
    p = module.params
    validate_connection_params(module)
    _range(module, "jobs", 1, 64)
    _range(module, "verify_connections", 1, 16)
    _range(module, "checksum_max_rows", 0)
    _range(module, "compress", 0, 9)
    _range(module, "max_evidence_items", 1)
    _range(module, "target_port", 1, 65535)
    if p["rto_seconds"] is not None and p["rto_seconds"] <= 0:
        module.fail_json(msg="rto_seconds must be greater than 0, got %s" % p["rto_seconds"])
    if p["scratch_db"] is not None and not files.SCRATCH_NAME.match(p["scratch_db"]):
        module.fail_json(msg="scratch_db must be a plain database name (a letter or underscore, then letters, digits or "
                             "underscores; at most 63 characters)")
    if not SCRATCH_PREFIX.match(p["scratch_prefix"] or ""):
        module.fail_json(msg="scratch_prefix must start with a letter or underscore and hold letters, digits or "
                             "underscores only (at most 41 characters)")
    if p["dump_name"] is not None and (not p["dump_name"].strip() or "/" in p["dump_name"] or p["dump_name"] in (".", "..")):
        module.fail_json(msg="dump_name must be a plain file name (no directory)")
    if p["dump_sha256"] is not None and not SHA256_HEX.match(p["dump_sha256"]):
        module.fail_json(msg="dump_sha256 must be 64 hexadecimal digits")
    if p["dump_sha256"] is not None and p["backup_source"] == "dump":
        module.fail_json(msg="dump_sha256 applies to an existing dump (backup_source file or latest), not to backup_source=dump")
    if p["backup_dir"] is not None and not os.path.isdir(p["backup_dir"]):
        module.fail_json(msg="backup_dir %s is not a directory" % p["backup_dir"])
    if p["marker_file"] is not None:
        parent = os.path.dirname(os.path.abspath(p["marker_file"]))
        if not os.path.isdir(parent):
            module.fail_json(msg="marker_file: directory %s does not exist" % parent)
        if os.path.isdir(p["marker_file"]):
            module.fail_json(msg="marker_file %s is a directory" % p["marker_file"])
    if p["bindir"] is not None and not os.path.isdir(p["bindir"]):
        module.fail_json(msg="bindir %s is not a directory" % p["bindir"])
    if p["backup_source"] == "dump" and p["expected_from"] in ("manifest", "dump"):
        module.fail_json(msg="expected_from=%s applies to an existing dump (backup_source file or latest); a fresh dump is "
                             "compared with its source" % p["expected_from"])
    if p["backup_source"] != "dump" and p["keep_dump"]:
        module.fail_json(msg="keep_dump applies to backup_source=dump (an existing dump is never removed)")
    if p["compress"] is not None and p["backup_source"] != "dump":
        module.fail_json(msg="compress applies to backup_source=dump")
    for pattern in p["ignore_restore_errors"] or []:
        try:
            re.compile(pattern)
        except re.error as exc:
            module.fail_json(msg="ignore_restore_errors: %r is not a valid regular expression (%s)" % (pattern, exc))
    for name in ("version_table", "version_table_schema", "target_maintenance_db", "dump_pattern"):
        if not (p[name] or "").strip():
            module.fail_json(msg="%s must not be empty" % name)
    if p["app_role"] is not None and not p["app_role"].strip():
        module.fail_json(msg="app_role must not be empty")
    if p["schemas"] is not None and not [s for s in p["schemas"] if s]:
        module.fail_json(msg="schemas must name at least one schema when given")
    try:
        source_kwargs = connection_kwargs(p)
    except ValueError as exc:
        module.fail_json(msg="dsn: %s" % redact_text(str(exc), secrets_of(p)))
    needs_source_db = p["backup_source"] == "dump" or p["expected_from"] == "source"
    if needs_source_db and not source_kwargs.get("dbname"):
        module.fail_json(msg="login_db (or the database of dsn) is required: it names the source database to %s"
                             % ("dump" if p["backup_source"] == "dump" else "compare with"))
    target = target_params(p)
    error = params_dsn_error(target)
    if error:
        module.fail_json(msg="target_dsn: %s" % error)
    return target


def target_params(p):
    """Connection parameters of the restore server, in the shared layer's shape: the target_* options,
    falling back to the source's connection."""
    target = dict(dsn=None, login_host=None, login_port=5432, login_user=None, login_password=None,
                  login_db=p["target_maintenance_db"], login_unix_socket="", ssl_mode=p["target_ssl_mode"] or p["ssl_mode"],
                  ca_cert=p["target_ca_cert"] or p["ca_cert"], connect_timeout=p["connect_timeout"])
    if p["target_dsn"]:
        target["dsn"] = p["target_dsn"]
        return target
    try:
        source = connection_kwargs(p)
    except ValueError:
        source = {}
    target["login_host"] = p["target_host"] or (None if p["target_unix_socket"] else source.get("host"))
    target["login_unix_socket"] = p["target_unix_socket"] or ""
    target["login_port"] = p["target_port"] or int(source.get("port") or 5432)
    target["login_user"] = p["target_user"] or source.get("user") or "postgres"
    if p["target_password"] is not None:
        target["login_password"] = p["target_password"]
    elif not p["target_user"] or p["target_user"] == source.get("user"):
        target["login_password"] = source.get("password")
    if not p["target_ssl_mode"] and source.get("sslmode"):
        target["ssl_mode"] = source["sslmode"]
    return target


_LOOPBACK = ("localhost", "127.0.0.1", "::1", "")


def _server_address(params):
    """(host, port) of a connection, loopback names as one ("" also stands for the local socket of libpq)."""
    try:
        kwargs = connection_kwargs(params)
    except ValueError:
        return None
    host = str(kwargs.get("host") or "").strip().lower()
    return ("loopback" if host in _LOOPBACK else host, int(kwargs.get("port") or 5432))


def same_server_reason(source_params, target_params, source_identity=None, target_identity=None):
    """Why the restore server is the source's own server (``same DSN``, ``same host and port, h:p``, ``same
    PostgreSQL cluster, system identifier N``), or None. Names no credential."""
    source_dsn, target_dsn = (source_params.get("dsn") or "").strip(), (target_params.get("dsn") or "").strip()
    if source_dsn and source_dsn == target_dsn:
        return "same DSN"
    source_ids = (source_identity or {}).get("system_identifier")
    if source_ids and source_ids == (target_identity or {}).get("system_identifier"):
        return "same PostgreSQL cluster, system identifier %s" % source_ids
    source, target = _server_address(source_params), _server_address(target_params)
    if source and source == target:
        host = "localhost" if source[0] == "loopback" else source[0]
        return "same host and port, %s:%d" % (host, source[1])
    return None


class DrillStop(Exception):
    """Ends the drill at a step with a status (fail: a finding; error: could not decide)."""

    def __init__(self, step, status, summary, **evidence):
        Exception.__init__(self, summary)
        self.step = step
        self.status = status
        self.summary = summary
        self.evidence = evidence


class DrillInterrupted(BaseException):
    """SIGTERM/SIGINT: stop now, but still clean up."""


def _interrupt(signum, frame):
    raise DrillInterrupted("signal %d" % signum)


def _round(seconds):
    return None if seconds is None else round(seconds, 3)


class Drill(object):

    def __init__(self, module, target):
        self.module = module
        self.p = module.params
        self.target = target
        self.secrets = secrets_of(self.p) + secrets_of(target)
        self.max_items = self.p["max_evidence_items"]
        self.steps = dict((name, None) for name in STEPS)
        self.current = "dump"
        self.expected_from = self.p["expected_from"]
        # What the cleanup closes, stops or waits for.
        self.source_conn = self.target_conn = self.holder = self.executor = None
        self.children, self.pools = [], []
        # The source and what is expected of the restore.
        self.source_db = self.snapshot = None
        self.expected_future = self.expected = self.expected_origin = None
        # The scratch database, the dump and the client programs.
        self.scratch_db = None
        self.scratch_exists = self.scratch_created = False
        self.dump_path = self.temp_dir = self.partial_path = None
        self.tool_dump = self.tool_restore = None
        self.source_info, self.target_info = {}, {}
        self.changed = False
        self.written = []
        self.notes = []
        self.timings = {"dump_s": None, "restore_s": None, "verify_s": None, "total_s": None, "rto_seconds": self.p["rto_seconds"],
                        "rto_scope": self.p["rto_scope"]}
        self.evidence = {
            "backup_source": self.p["backup_source"],
            "expected_from": None,
            "source": describe_target(self.p),
            "target": describe_target(target).rsplit("/", 1)[0],
            "scratch_db": None,
            "dump": {},
            "restore": {},
            "checks": [],
            "timings": self.timings,
            "cleanup": {},
            "marker": {"file": self.p["marker_file"], "written": False},
            "stale_scratch_databases": [],
            "notes": self.notes,
        }
        self.checks = []
        self.plan = None

    # -- helpers -------------------------------------------------------------------------
    def redact(self, value):
        return redact(value, self.secrets)

    def set_step(self, name, status, summary, evidence=None, duration_ms=0.0, skip_reason=None):
        self.steps[name] = {"status": status, "summary": self.redact(summary), "evidence": evidence or {},
                            "duration_ms": duration_ms, "skip_reason": skip_reason}

    def _track_child(self, process):
        self.children.append(process)

    def run_tool(self, args, env):
        """Run a client program (argument list, libpq environment merged); files it creates are private (umask 077)."""
        env = dict(env)
        env.setdefault("PGAPPNAME", APP_NAME)
        try:
            rc, out, err = self.module.run_command(args, environ_update=env, expand_user_and_vars=False, umask=0o077,
                                                   handle_exceptions=False, before_communicate_callback=self._track_child)
        except (OSError, IOError) as exc:
            return 127, "", "%s cannot be run: %s" % (args[0], exc.strerror or exc)
        return rc, out, err

    def source_env(self, database=None):
        return pg_tools.libpq_environment(connection_kwargs(self.p, database))

    def target_env(self):
        kwargs = connection_kwargs(self.target)
        kwargs.pop("dbname", None)
        return pg_tools.libpq_environment(kwargs)

    def open_source(self, snapshot=None):
        return catalog.prepare_session(connect(self.p, read_only=True), snapshot)

    def open_scratch(self):
        return catalog.prepare_session(connect(self.target, database=self.scratch_db, read_only=True))

    # -- preflight -----------------------------------------------------------------------
    def _role_flags(self, conn):
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, rolsuper, rolbypassrls, rolcreatedb FROM pg_roles WHERE rolname = current_user")
            row = cur.fetchone()
        conn.rollback()
        return {"role": row[0], "superuser": bool(row[1]), "bypassrls": bool(row[2]), "createdb": bool(row[3])}

    def _server_identity(self, conn):
        info = {"server_version_num": conn.server_version, "system_identifier": None}
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT system_identifier::text FROM pg_control_system()")
                info["system_identifier"] = cur.fetchone()[0]
            except psycopg2.Error:
                conn.rollback()
            cur.execute("SELECT host(inet_server_addr()), inet_server_port(), current_database()")
            row = cur.fetchone()
            info["address"], info["port"], info["database"] = row[0], row[1], row[2]
        conn.rollback()
        return info

    def preflight(self):
        p = self.p
        source_kwargs = connection_kwargs(p)
        self.source_db = source_kwargs.get("dbname") or source_kwargs.get("user")
        needs_source = p["backup_source"] == "dump" or p["expected_from"] == "source"
        source_step = "dump" if p["backup_source"] == "dump" else "verify"
        if needs_source:
            self.current = source_step
            try:
                self.source_conn = connect(p, read_only=True)
            except PostgresConnectionError as exc:
                raise DrillStop(source_step, ERROR, "source: %s" % exc)
            flags = self._role_flags(self.source_conn)
            self.source_info = self._server_identity(self.source_conn)
            self.source_info.update(flags)
            with self.source_conn.cursor() as cur:
                cur.execute("SELECT pg_database_size(current_database()), pg_encoding_to_char(d.encoding), d.datcollate, "
                            "d.datctype FROM pg_database d WHERE d.datname = current_database()")
                size, encoding, collate, ctype = cur.fetchone()
                provider = "c"
                if self.source_conn.server_version >= 150000:
                    cur.execute("SELECT datlocprovider::text FROM pg_database WHERE datname = current_database()")
                    provider = cur.fetchone()[0]
            self.source_conn.rollback()
            self.source_info.update({"size_bytes": int(size), "encoding": encoding, "collate": collate, "ctype": ctype,
                                     "locale_provider": provider})
            if not (flags["superuser"] or flags["bypassrls"]):
                raise DrillStop(source_step, FAIL,
                                "source role %s is neither superuser nor BYPASSRLS: under forced row-level security pg_dump "
                                "fails ('%s') and row counts would be filtered; run the drill as the owner/superuser or a "
                                "BYPASSRLS role" % (flags["role"], RLS_DUMP_ERROR),
                                role=flags)
        # The restore server.
        self.current = "restore"
        try:
            self.target_conn = connect(self.target, autocommit=True)
        except PostgresConnectionError as exc:
            raise DrillStop("restore", ERROR, "restore target: %s" % exc)
        tflags = self._role_flags(self.target_conn)
        self.target_info = self._server_identity(self.target_conn)
        self.target_info.update(tflags)
        self.scratch_db = p["scratch_db"] or files.scratch_name(p["scratch_prefix"])
        self.evidence["scratch_db"] = self.scratch_db
        self.check_refusals()
        with self.target_conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.scratch_db,))
            self.scratch_exists = cur.fetchone() is not None
            cur.execute("SELECT datname FROM pg_database WHERE datname ~ %s AND datname <> %s ORDER BY 1",
                        (files.scratch_pattern(p["scratch_prefix"]), self.scratch_db))
            self.evidence["stale_scratch_databases"] = [row[0] for row in cur.fetchall()][:self.max_items]
        if self.scratch_exists and not p["replace"]:
            self.fail_input("scratch_db: database %s already exists on the restore server; choose another name or set "
                            "replace=true to drop and recreate it" % self.scratch_db)
        if not (tflags["superuser"] or tflags["createdb"]):
            raise DrillStop("restore", ERROR, "restore role %s can neither create databases (CREATEDB) nor is it a superuser"
                            % tflags["role"], role=tflags)
        if not (tflags["superuser"] or tflags["bypassrls"]):
            raise DrillStop("restore", ERROR, "restore role %s does not bypass row-level security: the restored row counts "
                            "could not be verified; use a superuser or a BYPASSRLS role" % tflags["role"], role=tflags)
        # Client programs.
        self.find_tools()
        # An existing dump: present, intact, readable.
        if p["backup_source"] != "dump":
            self.current = "dump"
            self.locate_dump()

    def check_refusals(self):
        p = self.p
        name = self.scratch_db
        if not p["allow_source_server"]:
            reason = same_server_reason(p, self.target, self.source_info, self.target_info)
            if reason:
                # The role's option first: the gate shows the first 200 characters of a failed task's message.
                self.fail_input(
                    "target: refusing to restore on the source's server (%s) unless backup_drill_allow_source_server: "
                    "true (module option allow_source_server); give a separate restore server instead "
                    "(backup_drill_target_dsn; the module's target_dsn or target_host): a drill there competes with "
                    "the source for disk, memory and I/O and proves nothing about a restore elsewhere" % reason)
        if name in PROTECTED_DATABASES or name == p["target_maintenance_db"]:
            self.fail_input("scratch_db: refusing to restore into %s (a template or the maintenance database)" % name)
        if name == self.source_db:
            same = True
            src = self.source_info.get("system_identifier")
            tgt = self.target_info.get("system_identifier")
            if not src and self.source_conn is None:
                try:
                    conn = connect(self.p, read_only=True)
                    try:
                        src = self._server_identity(conn).get("system_identifier")
                    finally:
                        conn.close()
                except PostgresConnectionError:
                    src = None
            if src and tgt and src != tgt:
                same = False
            if same:
                self.fail_input("scratch_db: refusing to restore into %s: it is the source database on the same server "
                                "(or the servers cannot be told apart)" % name)

    def fail_input(self, msg):
        self.close_connections()
        self.module.fail_json(msg=self.redact(msg))

    def find_tools(self):
        p = self.p
        run = self.module.run_command
        dump_min = None
        if p["backup_source"] == "dump":
            self.current = "dump"
            dump_min = pg_tools.version_num_major(self.source_info["server_version_num"])
            try:
                self.tool_dump = pg_tools.find_tool(run, "pg_dump", dump_min, bindir=p["bindir"], explicit=p["pg_dump_path"],
                                                    minimum_reason="the source server")
            except pg_tools.ToolError as exc:
                raise DrillStop("dump", ERROR, str(exc))
            self.evidence["dump"]["pg_dump"] = self.tool_dump.as_evidence()
        self.current = "restore"
        target_min = pg_tools.version_num_major(self.target_info["server_version_num"])
        minimum = max(target_min, self.tool_dump.major if self.tool_dump else 0)
        reason = "the restore server" if minimum == target_min else "the pg_dump that writes the dump"
        prefer = [os.path.dirname(self.tool_dump.path)] if self.tool_dump else []
        bindir = p["bindir"] if not p["pg_restore_path"] else None
        try:
            self.tool_restore = pg_tools.find_tool(run, "pg_restore", minimum, bindir=bindir, explicit=p["pg_restore_path"],
                                                   prefer_dirs=prefer, minimum_reason=reason)
        except pg_tools.ToolError as exc:
            raise DrillStop("restore", ERROR, str(exc))
        self.evidence["restore"]["pg_restore"] = self.tool_restore.as_evidence()

    def locate_dump(self):
        p = self.p
        if p["backup_source"] == "latest":
            path = files.newest_dump(p["backup_dir"], p["dump_pattern"])
            if path is None:
                raise DrillStop("dump", FAIL, "no dump matching %s in %s: there is no backup to restore"
                                % (p["dump_pattern"], p["backup_dir"]))
        else:
            path = p["dump_file"]
            if not os.path.isfile(path):
                raise DrillStop("dump", FAIL, "dump_file %s does not exist (or is not a file): there is no backup to restore" % path)
        self.dump_path = path
        self.evidence["dump"].update({"file": path, "kept": True, "size_bytes": os.path.getsize(path),
                                      "age_seconds": int(files.file_age_seconds(path))})

    # -- check mode ----------------------------------------------------------------------
    def build_plan(self):
        p = self.p
        plan = {"expected_from": self.resolve_expected_from(planning=True)}
        if p["backup_source"] == "dump":
            with self.source_conn.cursor() as cur:
                catalog_tables = catalog.read_tables(cur, p["schemas"])
            self.source_conn.rollback()
            plan["dump"] = {"program": self.tool_dump.as_evidence(), "format": "custom", "source": describe_target(self.p),
                            "database_size_bytes": self.source_info.get("size_bytes"), "tables": len(catalog_tables),
                            "snapshot": "exported by the drill, shared with the verification",
                            "kept_in": p["backup_dir"] if p["keep_dump"] else None}
        else:
            plan["dump"] = dict(self.evidence["dump"])
            plan["dump"]["sha256_sidecar"] = os.path.exists(self.dump_path + files.SHA256_SUFFIX)
            plan["dump"]["manifest"] = os.path.exists(self.dump_path + files.MANIFEST_SUFFIX)
        plan["restore"] = {"program": self.tool_restore.as_evidence(), "target": self.evidence["target"],
                           "scratch_db": self.scratch_db, "generated_name": not p["scratch_db"],
                           "exists": self.scratch_exists, "replace": p["replace"], "jobs": p["jobs"],
                           "restore_privileges": p["restore_privileges"], "restore_owner": p["restore_owner"],
                           "dropped_afterwards": "always" if not p["keep_on_failure"] else "on success"}
        plan["verify"] = ["revision", "tables", "row_counts", "checksums", "rls_flags", "policies", "app_privileges", "sequences"]
        plan["writes"] = {"dump": p["backup_dir"] if p["keep_dump"] else None, "marker_file": p["marker_file"]}
        plan["rto_seconds"] = p["rto_seconds"]
        return plan

    # -- the dump ------------------------------------------------------------------------
    def resolve_expected_from(self, planning=False):
        p = self.p
        if p["expected_from"] != "auto":
            return p["expected_from"]
        if p["backup_source"] == "dump":
            return "source"
        if self.dump_path and os.path.exists(self.dump_path + files.MANIFEST_SUFFIX):
            return "manifest"
        return "dump"

    def collect_source(self, snapshot):
        p = self.p
        return catalog.collect_facts(
            lambda: self.open_source(snapshot), workers=p["verify_connections"], schemas=p["schemas"],
            version_schema=p["version_table_schema"], version_table=p["version_table"], app_role=p["app_role"],
            app_privileges=p["app_privileges"], checksum_max_rows=p["checksum_max_rows"], exclude_tables=p["exclude_tables"],
            pools=self.pools)

    def take_dump(self):
        p = self.p
        watch = Stopwatch()
        stamp = files.utc_now().strftime("%Y%m%dT%H%M%SZ")
        name = p["dump_name"] or "%s_%s.dump" % (re.sub(r"[^A-Za-z0-9_.-]", "_", self.source_db), stamp)
        if p["keep_dump"]:
            directory = p["backup_dir"]
        else:
            self.temp_dir = tempfile.mkdtemp(prefix=".cws-drill-", dir=p["backup_dir"] or None)
            directory = self.temp_dir
        final = os.path.join(directory, name)
        if p["keep_dump"] and os.path.exists(final):
            raise DrillStop("dump", ERROR, "dump_name: %s already exists in backup_dir; an existing backup is never overwritten" % name)
        self.partial_path = final + ".partial"
        # The snapshot: pg_dump and the expected facts see the same data.
        self.holder = connect(self.p, read_only=True)
        self.holder.set_session(isolation_level="REPEATABLE READ", readonly=True)
        try:
            with self.holder.cursor() as cur:
                cur.execute("SELECT pg_export_snapshot()")
                self.snapshot = cur.fetchone()[0]
        except psycopg2.Error as exc:
            self.holder.rollback()
            self.snapshot = None
            self.notes.append("no exported snapshot (%s): expected facts read right after the dump, exact only on a quiescent "
                              "source" % (exc.pgerror or str(exc)).strip().splitlines()[0])
        self.evidence["dump"]["snapshot_consistent"] = bool(self.snapshot)
        self.executor = ThreadPoolExecutor(max_workers=1)
        if self.snapshot:
            self.expected_future = self.executor.submit(self.collect_source, self.snapshot)
        args = pg_tools.pg_dump_args(self.tool_dump, self.partial_path, snapshot=self.snapshot, compress=p["compress"],
                                     schemas=p["schemas"])
        try:
            env = self.source_env()
        except ValueError as exc:
            raise DrillStop("dump", ERROR, "dsn: %s" % exc)
        program = Stopwatch()
        rc, out, err = self.run_tool(args, env)
        stderr = pg_tools.summarize_stderr(err, self.secrets)
        self.evidence["dump"].update({"rc": rc, "stderr": stderr["stderr"] if rc != 0 else None,
                                      "pg_dump_s": _round(program.elapsed_ms / 1000.0)})
        if rc != 0:
            for pool in self.pools:
                pool.cancel()
            self.wait_expected(quiet=True)
            if RLS_DUMP_ERROR in (err or ""):
                raise DrillStop("dump", FAIL, "pg_dump refused by row-level security ('%s'): dump as a superuser or a "
                                "BYPASSRLS role" % RLS_DUMP_ERROR, **stderr)
            first = stderr["error_lines"][0] if stderr["error_lines"] else (stderr["stderr"].strip().splitlines() or [""])[0]
            raise DrillStop("dump", ERROR, "pg_dump exited %s: %s" % (rc, first), **stderr)
        os.replace(self.partial_path, final)
        self.partial_path = None
        self.dump_path = final
        if p["keep_dump"]:
            self.written.append(final)
            self.changed = True
        if not self.snapshot:
            self.expected_future = self.executor.submit(self.collect_source, None)
        hashing = Stopwatch()
        digest = files.sha256_file(final)
        self.evidence["dump"].update({"file": final, "kept": bool(p["keep_dump"]), "size_bytes": os.path.getsize(final),
                                      "sha256": digest, "sha256_s": _round(hashing.elapsed_ms / 1000.0)})
        waiting = Stopwatch()
        self.expected = self.wait_expected()
        self.evidence["dump"]["expected_facts_wait_s"] = _round(waiting.elapsed_ms / 1000.0)
        self.expected_origin = "source"
        self.close_holder()
        if p["keep_dump"]:
            files.write_sidecar(final, digest)
            self.written.append(final + files.SHA256_SUFFIX)
            files.write_manifest(final, self.manifest(digest, os.path.getsize(final)))
            self.written.append(final + files.MANIFEST_SUFFIX)
        self.timings["dump_s"] = _round(watch.elapsed_ms / 1000.0)
        self.set_step("dump", PASS, "pg_dump -Fc of %s: %d bytes, sha256 %s%s" % (
            self.source_db, self.evidence["dump"]["size_bytes"], digest[:16],
            "" if self.snapshot else " (no shared snapshot)"), dict(self.evidence["dump"]), watch.elapsed_ms)

    def manifest(self, digest, size):
        p = self.p
        return {
            "format": files.MANIFEST_FORMAT,
            "created_utc": files.iso_utc(),
            "dump_file": os.path.basename(self.dump_path),
            "sha256": digest,
            "size_bytes": size,
            "source": describe_target(self.p),
            "server_version_num": self.source_info.get("server_version_num"),
            "pg_dump": self.tool_dump.as_evidence(),
            "snapshot_consistent": bool(self.snapshot),
            "options": {"schemas": p["schemas"], "version_table": p["version_table"],
                        "version_table_schema": p["version_table_schema"], "app_role": p["app_role"],
                        "app_privileges": p["app_privileges"], "checksum_max_rows": p["checksum_max_rows"],
                        "exclude_tables": p["exclude_tables"]},
            "facts": self.expected,
        }

    def wait_expected(self, quiet=False):
        future, self.expected_future = self.expected_future, None
        if future is None:
            return self.expected
        try:
            return future.result()
        except catalog.FactsError as exc:
            if quiet:
                return None
            raise DrillStop("verify", ERROR, "reading the expected facts from the source failed: %s" % exc)
        except Exception as exc:  # pylint: disable=broad-except
            if quiet:
                return None
            raise DrillStop("verify", ERROR, "reading the expected facts from the source failed: %s" % exc)

    def close_holder(self):
        if self.holder is not None:
            try:
                self.holder.rollback()
                self.holder.close()
            except Exception:  # pylint: disable=broad-except
                pass
            self.holder = None

    def check_existing_dump(self):
        """An existing dump: checksum (against the backup's sidecar), archive readable, expectations loaded."""
        p = self.p
        watch = Stopwatch()
        path = self.dump_path
        digest = files.sha256_file(path)
        self.evidence["dump"]["sha256"] = digest
        wanted = p["dump_sha256"].lower() if p["dump_sha256"] else None
        origin = "dump_sha256"
        if wanted is None and p["verify_dump_sha256"]:
            origin = "sidecar %s" % os.path.basename(path + files.SHA256_SUFFIX)
            try:
                wanted = files.read_sidecar_sha256(path)
            except ValueError as exc:
                raise DrillStop("dump", FAIL, str(exc))
        self.evidence["dump"]["sha256_expected"] = wanted
        self.evidence["dump"]["sha256_checked_against"] = origin if wanted else None
        if wanted and wanted != digest:
            raise DrillStop("dump", FAIL, "sha256 of %s is %s but the %s says %s: the dump is truncated or altered"
                            % (os.path.basename(path), digest[:16], origin, wanted[:16]))
        rc, out, err = self.run_tool(pg_tools.pg_restore_list_args(self.tool_restore, path), {})
        if rc != 0:
            stderr = pg_tools.summarize_stderr(err, self.secrets)
            raise DrillStop("dump", FAIL, "%s is not a readable custom-format archive: %s" % (
                os.path.basename(path), (stderr["error_lines"] or [stderr["stderr"].strip()])[0]), **stderr)
        toc = [line for line in out.splitlines() if line and not line.startswith(";")]
        self.evidence["dump"]["toc_entries"] = len(toc)
        self.evidence["dump"]["toc_table_data"] = len([line for line in toc if " TABLE DATA " in line])
        self.load_expectations_for_file(digest)
        self.timings["dump_s"] = _round(watch.elapsed_ms / 1000.0)
        summary = "%s: %d bytes, %s, %d archive entries" % (
            os.path.basename(path), self.evidence["dump"]["size_bytes"],
            ("sha256 matches the %s" % origin) if wanted else "no sha256 to check against", len(toc))
        self.set_step("dump", PASS, summary, dict(self.evidence["dump"]), watch.elapsed_ms)

    def load_expectations_for_file(self, digest):
        p = self.p
        mode = self.resolve_expected_from()
        self.expected_from = mode
        if mode == "manifest":
            try:
                manifest = files.read_manifest(self.dump_path)
            except ValueError as exc:
                raise DrillStop("verify", ERROR, str(exc))
            if manifest is None:
                raise DrillStop("verify", ERROR, "expected_from=manifest but there is no %s next to the dump"
                                % os.path.basename(self.dump_path + files.MANIFEST_SUFFIX))
            if manifest.get("sha256") != digest:
                raise DrillStop("dump", FAIL, "the manifest describes a dump with sha256 %s, this dump has %s: the dump was "
                                "altered after the drill that wrote the manifest" % (str(manifest.get("sha256"))[:16], digest[:16]))
            self.expected = manifest["facts"]
            self.expected_origin = "manifest"
            recorded = manifest.get("options") or {}
            if recorded.get("app_role") != p["app_role"] or sorted(recorded.get("app_privileges") or []) != sorted(p["app_privileges"]):
                self.expected = dict(self.expected, privileges=None)
                self.notes.append("the manifest recorded the privileges of %s (%s), not of app_role %s: privileges are not compared"
                                  % (recorded.get("app_role"), ",".join(recorded.get("app_privileges") or []), p["app_role"]))
            for option in ("schemas", "version_table", "version_table_schema", "exclude_tables"):
                if recorded.get(option) != p[option]:
                    self.notes.append("the manifest was written with %s=%s, this drill uses %s" % (option, recorded.get(option), p[option]))
            self.evidence["dump"]["manifest"] = {"created_utc": manifest.get("created_utc"), "source": manifest.get("source"),
                                                 "snapshot_consistent": manifest.get("snapshot_consistent")}
        elif mode == "dump":
            rc, out, err = self.run_tool(pg_tools.pg_restore_script_args(self.tool_restore, self.dump_path, schema_only=True), {})
            if rc != 0:
                stderr = pg_tools.summarize_stderr(err, self.secrets)
                raise DrillStop("dump", FAIL, "the dump's schema cannot be read: %s" % (stderr["error_lines"] or [""])[0], **stderr)
            facts = catalog.facts_from_schema_script(out, p["schemas"], p["app_role"], p["app_privileges"])
            keys = set((t["schema"], t["name"]) for t in facts["tables"])
            version_key = (p["version_table_schema"], p["version_table"])
            revision = {"table": catalog.table_key(*version_key), "present": version_key in keys, "versions": []}
            if revision["present"]:
                rc, out, err = self.run_tool(pg_tools.pg_restore_script_args(self.tool_restore, self.dump_path,
                                                                             data_table=version_key), {})
                if rc != 0:
                    stderr = pg_tools.summarize_stderr(err, self.secrets)
                    raise DrillStop("dump", FAIL, "the dump's version table cannot be read: %s" % (stderr["error_lines"] or [""])[0],
                                    **stderr)
                revision["versions"] = catalog.revision_from_data_script(out, *version_key)["versions"]
            facts["revision"] = revision
            self.expected = facts
            self.expected_origin = "dump"
            self.notes.append("expectations read from the dump itself: row counts and checksums are not compared")
        else:
            self.executor = ThreadPoolExecutor(max_workers=1)
            self.expected_future = self.executor.submit(self.collect_source, None)
            self.expected_origin = "source"
            self.notes.append("expectations read from the live source: exact only when the source did not change since the dump")

    # -- the restore ---------------------------------------------------------------------
    def create_scratch(self):
        p = self.p
        cur = self.target_conn.cursor()
        try:
            if self.scratch_exists and p["replace"]:
                cur.execute(pgsql.SQL("DROP DATABASE {0}").format(pgsql.Identifier(self.scratch_db)))
                self.notes.append("existing database %s dropped (replace=true)" % self.scratch_db)
            create = pgsql.SQL("CREATE DATABASE {0} TEMPLATE template0").format(pgsql.Identifier(self.scratch_db))
            locale = None
            if self.source_info.get("encoding") and self.source_info.get("locale_provider") == "c":
                locale = pgsql.SQL(" ENCODING {0} LC_COLLATE {1} LC_CTYPE {2}").format(
                    pgsql.Literal(self.source_info["encoding"]), pgsql.Literal(self.source_info["collate"]),
                    pgsql.Literal(self.source_info["ctype"]))
            try:
                cur.execute(create + locale if locale is not None else create)
            except psycopg2.Error as exc:
                if locale is None or exc.pgcode in ("42P04", "42501"):
                    raise
                self.notes.append("the source's encoding/locale is not available on the restore server (%s); created "
                                  "with the server's defaults" % (exc.pgerror or str(exc)).strip().splitlines()[0])
                cur.execute(create)
            self.scratch_created = True
        except psycopg2.Error as exc:
            raise DrillStop("restore", ERROR, "cannot create scratch database %s: %s" % (
                self.scratch_db, (exc.pgerror or str(exc)).strip().splitlines()[0]))
        finally:
            cur.close()

    def restore(self):
        p = self.p
        self.current = "restore"
        watch = Stopwatch()
        self.create_scratch()
        args = pg_tools.pg_restore_args(self.tool_restore, self.dump_path, self.scratch_db, jobs=p["jobs"],
                                        privileges=p["restore_privileges"], owner=p["restore_owner"])
        try:
            env = self.target_env()
        except ValueError as exc:
            raise DrillStop("restore", ERROR, "target_dsn: %s" % exc)
        rc, out, err = self.run_tool(args, env)
        elapsed = watch.elapsed_ms
        self.timings["restore_s"] = _round(elapsed / 1000.0)
        stderr = pg_tools.summarize_stderr(err, self.secrets, max_errors=self.max_items)
        info = self.evidence["restore"]
        info.update({"jobs": p["jobs"], "restore_privileges": p["restore_privileges"], "restore_owner": p["restore_owner"],
                     "rc": rc, "stderr": stderr["stderr"], "stderr_truncated": stderr["stderr_truncated"],
                     "error_lines": stderr["error_lines"], "error_count": stderr["error_count"]})
        if rc != 0:
            real_errors = [line for line in stderr["error_lines"] if "errors ignored on restore" not in line]
            ignored = [line for line in real_errors if any(re.search(pat, line) for pat in p["ignore_restore_errors"])]
            remaining = [line for line in real_errors if line not in ignored]
            info["ignored_errors"] = ignored
            if pg_tools.is_connection_failure(err):
                raise DrillStop("restore", ERROR, "pg_restore could not connect to the restore server: %s"
                                % (remaining or real_errors or [stderr["stderr"].strip()])[0], **info)
            if remaining or not ignored:
                raise DrillStop("restore", FAIL, "pg_restore exited %s with %d error(s); first: %s" % (
                    rc, len(remaining), (remaining or [stderr["stderr"].strip()])[0]), **dict(info))
            self.notes.append("pg_restore reported %d error(s), all matching ignore_restore_errors" % len(ignored))
        self.set_step("restore", PASS, "restored into %s with %d job(s) in %.1f s%s" % (
            self.scratch_db, p["jobs"], elapsed / 1000.0, "" if p["restore_privileges"] else " (without privileges)"),
            dict(info), elapsed)

    # -- verification --------------------------------------------------------------------
    def verify(self):
        p = self.p
        self.current = "verify"
        watch = Stopwatch()
        expected = self.wait_expected()
        if expected is None:
            raise DrillStop("verify", ERROR, "no expected facts to verify against")
        self.expected = expected
        self.evidence["expected_from"] = self.expected_origin
        wanted = [catalog.table_key(t["schema"], t["name"]) for t in expected.get("tables") or [] if t.get("checksum")]
        try:
            actual = catalog.collect_facts(
                self.open_scratch, workers=p["verify_connections"], schemas=p["schemas"],
                version_schema=p["version_table_schema"], version_table=p["version_table"], app_role=p["app_role"],
                app_privileges=p["app_privileges"], count_rows_too=True, checksum_tables=wanted,
                exclude_tables=p["exclude_tables"], with_sequences=True,
                probe_privileges=expected.get("privileges") if p["app_role"] else None, pools=self.pools)
        except catalog.FactsError as exc:
            raise DrillStop("verify", ERROR, "reading the restored database failed: %s" % exc)
        except PostgresConnectionError as exc:
            raise DrillStop("verify", ERROR, "restored database: %s" % exc)
        items = self.max_items
        self.checks = [
            checks.check_revision(expected.get("revision"), actual.get("revision"), p["expected_revision"], self.expected_origin),
            checks.check_tables(expected, actual, items),
            checks.check_row_counts(expected, actual, p["exclude_tables"], items),
            checks.check_checksums(expected, actual, p["checksum_max_rows"], items),
            checks.check_rls_flags(expected, actual, items),
            checks.check_policies(expected, actual, items),
            checks.check_privileges(expected.get("privileges"), actual.get("privileges"), actual.get("probe"), p["app_role"],
                                    p["restore_privileges"], items),
            checks.check_sequences(actual.get("sequences"), items),
        ]
        self.evidence["checks"] = self.checks
        elapsed = watch.elapsed_ms
        self.timings["verify_s"] = _round(elapsed / 1000.0)
        status = checks.overall(self.checks)
        bad = [c for c in self.checks if c["status"] in (FAIL, ERROR)]
        if bad:
            summary = "; ".join("%s: %s" % (c["name"], c["summary"]) for c in bad)
        else:
            done = [c["name"] for c in self.checks if c["status"] == PASS]
            summary = "%d verification(s) passed (%s)" % (len(done), ", ".join(done))
        self.set_step("verify", status if status != SKIPPED else ERROR, summary,
                      {"checks": [dict((k, c[k]) for k in ("name", "status", "summary")) for c in self.checks],
                       "expected_from": self.expected_origin}, elapsed)

    def check_rto(self, total_watch):
        p = self.p
        total = total_watch.elapsed_ms / 1000.0
        self.timings["total_s"] = _round(total)
        measured = total if p["rto_scope"] == "total" else (self.timings["restore_s"] or 0.0)
        evidence = {"measured_s": _round(measured), "scope": p["rto_scope"], "rto_seconds": p["rto_seconds"],
                    "dump_s": self.timings["dump_s"], "restore_s": self.timings["restore_s"], "verify_s": self.timings["verify_s"]}
        if p["rto_seconds"] is None:
            self.set_step("rto", SKIPPED, "no rto_seconds given; measured %.1f s (%s)" % (measured, p["rto_scope"]), evidence,
                          skip_reason=SKIP_NOT_REQUESTED)
        elif measured <= p["rto_seconds"]:
            self.set_step("rto", PASS, "%.1f s (%s) within the RTO of %s s" % (measured, p["rto_scope"], p["rto_seconds"]), evidence)
        else:
            self.set_step("rto", FAIL, "%.1f s (%s) exceeds the RTO of %s s" % (measured, p["rto_scope"], p["rto_seconds"]), evidence)

    # -- cleanup -------------------------------------------------------------------------
    def close_connections(self):
        for pool in self.pools:
            pool.cancel()
        self.close_holder()
        for attr in ("source_conn",):
            conn = getattr(self, attr)
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # pylint: disable=broad-except
                    pass
                setattr(self, attr, None)

    def stop_children(self):
        for process in self.children:
            try:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=10)
                    except Exception:  # pylint: disable=broad-except
                        process.kill()
            except Exception:  # pylint: disable=broad-except
                pass

    def drop_scratch(self, failed):
        info = self.evidence["cleanup"]
        info["scratch_db"] = self.scratch_db
        if not self.scratch_created:
            info["scratch_dropped"] = None
            info["scratch_created"] = False
            return True
        info["scratch_created"] = True
        if failed and self.p["keep_on_failure"]:
            info["scratch_dropped"] = False
            info["kept_on_failure"] = True
            self.notes.append("scratch database %s kept for inspection (keep_on_failure); drop it when done" % self.scratch_db)
            return True
        try:
            if self.target_conn is None or self.target_conn.closed:
                self.target_conn = connect(self.target, autocommit=True)
            with self.target_conn.cursor() as cur:
                force = pgsql.SQL(" WITH (FORCE)") if self.target_conn.server_version >= 130000 else pgsql.SQL("")
                cur.execute(pgsql.SQL("DROP DATABASE IF EXISTS {0}").format(pgsql.Identifier(self.scratch_db)) + force)
            info["scratch_dropped"] = True
            return True
        except (psycopg2.Error, PostgresConnectionError) as exc:
            info["scratch_dropped"] = False
            info["drop_error"] = self.redact((getattr(exc, "pgerror", None) or str(exc)).strip().splitlines()[0])
            return False

    def cleanup(self, failed):
        self.stop_children()
        self.close_connections()
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        dropped = self.drop_scratch(failed)
        removed = files.remove_quietly(self.partial_path)
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.evidence["cleanup"]["temporary_dump_removed"] = not os.path.exists(self.temp_dir)
            if self.p["backup_source"] == "dump":
                self.evidence["dump"]["kept"] = False
        if removed:
            self.evidence["cleanup"]["partial_dump_removed"] = True
        if self.target_conn is not None:
            try:
                self.target_conn.close()
            except Exception:  # pylint: disable=broad-except
                pass
            self.target_conn = None
        return dropped

    # -- the whole drill -----------------------------------------------------------------
    def run(self):
        total = Stopwatch()
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, _interrupt)
        cleanup_ok = True
        try:
            try:
                self.preflight()
                if self.module.check_mode:
                    self.plan = self.redact(self.build_plan())
                else:
                    if self.p["backup_source"] == "dump":
                        self.current = "dump"
                        self.take_dump()
                    else:
                        self.current = "dump"
                        self.check_existing_dump()
                    self.restore()
                    self.verify()
                    self.check_rto(total)
            except DrillStop as stop:
                self.set_step(stop.step, stop.status, stop.summary, self.redact(stop.evidence))
            except DrillInterrupted as exc:
                self.set_step(self.current, ERROR, "interrupted (%s) during %s; cleaned up" % (exc, self.current))
            except Exception as exc:  # pylint: disable=broad-except
                detail = self.redact("%s: %s" % (exc.__class__.__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else ""))
                self.set_step(self.current, ERROR, "unexpected failure during %s: %s" % (self.current, detail),
                              {"traceback_tail": self.redact(traceback.format_exc().strip().splitlines()[-3:])})
            failed = self.module.check_mode or any(s and s["status"] in (FAIL, ERROR) for s in self.steps.values())
            try:
                cleanup_ok = self.cleanup(failed and not self.module.check_mode)
            except DrillInterrupted:
                cleanup_ok = self.cleanup(True)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self.timings["total_s"] is None and not self.module.check_mode:
            self.timings["total_s"] = _round(total.elapsed_ms / 1000.0)
        return self.finish(total, cleanup_ok)

    def finish(self, total, cleanup_ok):
        p = self.p
        statuses = [s["status"] for s in self.steps.values() if s]
        if self.module.check_mode:
            status = worst_status([s for s in statuses if s in (FAIL, ERROR)]) if any(s in (FAIL, ERROR) for s in statuses) else SKIPPED
        else:
            decided = [s for s in statuses if s != SKIPPED]
            status = worst_status(decided) if decided else ERROR
            if not all(self.steps[name] for name in ("dump", "restore", "verify")) and status == PASS:
                status = ERROR
        if not cleanup_ok:
            status = ERROR
            self.notes.append("the scratch database %s could not be dropped: %s" % (
                self.scratch_db, self.evidence["cleanup"].get("drop_error")))
        if status == PASS and p["marker_file"]:
            try:
                stamp = files.write_marker(p["marker_file"])
                self.evidence["marker"].update({"written": True, "timestamp": stamp})
                self.written.append(p["marker_file"])
                self.changed = True
            except (OSError, IOError) as exc:
                status = ERROR
                self.evidence["marker"]["error"] = "cannot write %s: %s" % (p["marker_file"], exc.strerror or exc)
        if self.written:
            self.changed = True
        self.evidence["expected_from"] = self.expected_origin or self.evidence["expected_from"]
        self.evidence["files_written"] = self.written
        summary = self.summary(status, cleanup_ok)
        evidence = self.redact(self.evidence)
        skip_reason = SKIP_CHECK_MODE if self.module.check_mode and status == SKIPPED else None
        records = [make_record(CRITERION, status, summary, evidence, blocking=p["blocking"], duration_ms=total.elapsed_ms,
                               name=CRITERION, skip_reason=skip_reason)]
        for name in STEPS:
            step = self.steps[name]
            if step is None:
                if self.module.check_mode:
                    step = {"status": SKIPPED, "summary": "check mode: planned, not run", "skip_reason": SKIP_CHECK_MODE}
                else:
                    step = {"status": SKIPPED, "summary": "not reached", "skip_reason": None}
                step.update(evidence={}, duration_ms=0.0)
            records.append(make_record(CRITERION, step["status"], step["summary"], self.redact(step["evidence"]),
                                       blocking=False, duration_ms=step["duration_ms"], name=name,
                                       skip_reason=step["skip_reason"]))
        extra = {"drill": evidence}
        if self.module.check_mode:
            extra["plan"] = self.plan
        exit_with_records(self.module, records, changed=self.changed, **extra)

    def summary(self, status, cleanup_ok):
        if self.module.check_mode and status == SKIPPED:
            return "check mode: would %s and restore into %s on %s; nothing created" % (
                "dump %s" % self.source_db if self.p["backup_source"] == "dump" else "take %s" % self.dump_path,
                self.scratch_db, self.evidence["target"])
        cleanup = self.evidence["cleanup"]
        tail = ""
        if cleanup.get("scratch_dropped"):
            tail = "; scratch database dropped"
        elif cleanup.get("kept_on_failure"):
            tail = "; scratch database %s kept (keep_on_failure)" % self.scratch_db
        elif not cleanup_ok:
            tail = "; scratch database %s could NOT be dropped" % self.scratch_db
        if status == PASS:
            tables = len((self.expected or {}).get("tables") or [])
            passed = len([c for c in self.checks if c["status"] == PASS])
            return "backup drill passed: %d tables, %d verification(s), restored in %.1f s (total %.1f s%s)%s" % (
                tables, passed, self.timings["restore_s"] or 0.0, self.timings["total_s"] or 0.0,
                ", RTO %s s" % self.p["rto_seconds"] if self.p["rto_seconds"] else "", tail)
        bad = ["%s: %s" % (name, self.steps[name]["summary"]) for name in STEPS
               if self.steps[name] and self.steps[name]["status"] in (FAIL, ERROR)]
        if not bad and self.evidence["marker"].get("error"):
            bad = ["marker: %s" % self.evidence["marker"]["error"]]
        word = "failed" if status == FAIL else "could not complete"
        return "backup drill %s: %s%s" % (word, " | ".join(bad) or "cleanup failed", tail)
