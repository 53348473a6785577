"""The reference stack: database + Alembic migrations + job runner + the reference HTTP service.

A stand-in for a CleanWithSnapshot deployment that behaves like the real service as observed, with
fault switches that break one criterion each (tests/reference_service/README.md has the table).

Library:
    with started_stack(pg_facts, "cws", layout=True) as stack:   # the one way tests and benchmarks start one
        ...
    stack = start_stack(pg_facts, "cws")   # the same, stopped by the caller (stack.stop())
    stack = RefStack(pg_facts, name="cws")
    stack.start()            # roles + database, alembic upgrade head, backup marker, jobs once, service
    stack.set_fault("rls_disabled", table="leads")
    stack.clear_faults()     # back to the healthy (GO) state, database included
    canary = stack.extra_service(canary_dir, APP_NAME="api-canary")   # a second process, faults of its own
    canary.set_fault("error_fraction", fraction=0.05)                  # in canary_dir/faults.json
    canary.clear_faults(); canary.stop()
    stack.stop()             # service stopped, database and roles dropped

CLI:
    python tests/harness/refstack.py start --state FILE [--pg-state FILE] [--rate-limit N] [--name NAME]
    python tests/harness/refstack.py fault NAME [--param k=v ...] --state FILE
    python tests/harness/refstack.py clear --state FILE
    python tests/harness/refstack.py jobs --state FILE
    python tests/harness/refstack.py restart --state FILE
    python tests/harness/refstack.py stop --state FILE
Without --pg-state, ``start`` starts a PostgreSQL cluster of its own (pgcluster) and ``stop`` removes it.
The state file (mode 0600) holds facts() plus what stop needs.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
from psycopg2 import sql

HERE = Path(__file__).resolve().parent
SERVICE_ROOT = HERE.parent / "reference_service"
DEFAULT_ORG_ID = "00000000-0000-0000-0000-000000000001"
OTHER_ORG_ID = "00000000-0000-0000-0000-000000000002"
ROLES = ("owner", "admin", "dispatcher", "accountant", "viewer")
MARKER = "LAST_SUCCESS.txt"
EXTRA_REVISION = "0046_second_head_fault"

# Fault id -> parameters with their defaults. "file" faults are read by the service (or job runner)
# from faults.json on every request; the others change the database, the files or the process.
FILE_FAULTS = {
    "readyz_db_down": {}, "slow": {"delay": 3}, "admin_open": {"path": None}, "weak_role_allowed": {},
    "read_only": {}, "mfa_required": {}, "wrong_shape": {}, "security_headers_missing": {},
    "metrics_open": {}, "estimate_broken": {}, "job_failing": {"job": "email-dlq", "cycles": 2},
    # Canary faults: a share of 500s, added latency, an exporter that is down.
    "error_fraction": {"fraction": 0.05}, "added_latency": {"ms": 600}, "metrics_down": {},
    # The real API's cold start: its first /openapi.json after a (re)start blocks every request for a while.
    "cold_start": {"seconds": 4},
}
# File faults whose parameters are numbers (stored as floats).
NUMERIC_PARAMS = {"slow": ("delay",), "error_fraction": ("fraction",), "added_latency": ("ms",), "cold_start": ("seconds",)}
OTHER_FAULTS = {
    "heartbeat_stale": {"age_seconds": 3600}, "heartbeat_missing": {}, "service_down": {}, "service_hung": {},
    "second_head": {"down_revision": "0045_export_dead_letter"}, "db_behind": {},
    "db_unknown_revision": {"revision": "ffffdeadbeef"}, "version_table_missing": {}, "version_table_empty": {},
    "rls_disabled": {"table": "leads"}, "rls_not_forced": {"table": "leads"}, "policy_dropped": {"table": "leads"},
    "policy_other_setting": {"table": "leads", "setting": "app.org_id"}, "policy_leaking": {"table": "leads"},
    "app_role_bypassrls": {}, "backup_marker_stale": {"age_hours": 30}, "backup_marker_missing": {},
}
FAULTS = dict(FILE_FAULTS, **OTHER_FAULTS)
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _write_private(path, text):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _is_our_service(pid):
    """True while ``pid`` is a live (not zombie) ``refservice`` process. A service started by an earlier CLI
    call is no child of this process, so its exit is seen in /proc, and a recycled pid is never signalled."""
    if not os.path.isdir("/proc"):
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            cmdline = handle.read().split(b"\0")
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and b"refservice" in cmdline


def _process_state(pid):
    """The state letter of /proc/<pid>/stat (R running, S sleeping, T stopped, Z zombie), None when gone."""
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


class RefStackError(RuntimeError):
    """The stack could not be started or changed."""


def file_fault_values(name, params):
    """The stored form of file fault ``name`` with ``params`` over its defaults (FILE_FAULTS); ValueError for an
    unknown id or parameter or a number that is none."""
    if name not in FILE_FAULTS:
        raise ValueError("unknown file fault %r (known: %s)" % (name, ", ".join(sorted(FILE_FAULTS))))
    unknown = set(params) - set(FILE_FAULTS[name])
    if unknown:
        raise ValueError("fault %s takes no parameter %s" % (name, ", ".join(sorted(unknown))))
    values = dict(FILE_FAULTS[name], **params)
    stored = {key: value for key, value in values.items() if value is not None and key != "cycles"}
    for key in NUMERIC_PARAMS.get(name, ()):
        try:
            stored[key] = float(stored[key])
        except (TypeError, ValueError) as exc:
            raise ValueError("fault %s: %s must be a number, got %r" % (name, key, stored[key])) from exc
    if name == "error_fraction" and not 0 < stored["fraction"] <= 1:
        raise ValueError("fault error_fraction: fraction must be in (0, 1], got %r" % stored["fraction"])
    if name == "added_latency" and stored["ms"] < 0:
        raise ValueError("fault added_latency: ms must not be negative")
    return values, stored


def _service_faults_module():
    if str(SERVICE_ROOT) not in sys.path:
        sys.path.insert(0, str(SERVICE_ROOT))
    from refservice import faults  # pylint: disable=import-outside-toplevel
    return faults


class ExtraService:
    """Another service process on a stack's database, with settings of its own (RefStack.extra_service).

    Its fault switches live in its own ``state_dir`` (faults.json, read on every request like the stack's):
    ``set_fault(name, **params)`` takes the file faults the service reads (README.md; not ``job_failing``, which
    the job runner reads), ``clear_faults()`` removes them all. Usable as a context manager (stops on exit)."""

    # The stack's file faults the service process itself reads per request.
    FAULTS = tuple(sorted(set(FILE_FAULTS) - {"job_failing"}))

    def __init__(self, proc, base_url, log_path, state_dir=None):
        self.proc, self.base_url, self.log_path = proc, base_url, log_path
        self.state_dir = str(state_dir) if state_dir is not None else os.path.dirname(log_path)

    @property
    def port(self):
        return int(self.base_url.rsplit(":", 1)[1]) if self.base_url else None

    def faults(self):
        """The fault switches on now (the contents of its faults.json)."""
        return _service_faults_module().load_faults(self.state_dir)

    def set_fault(self, name, **params):
        """Switch one file fault on for this process (the others stay as they are)."""
        if name not in self.FAULTS:
            raise ValueError("an extra service takes the faults %s, not %r" % (", ".join(self.FAULTS), name))
        dummy, stored = file_fault_values(name, params)
        faults = self.faults()
        faults[name] = stored
        _service_faults_module().save_faults(self.state_dir, faults)

    def clear_faults(self):
        _service_faults_module().save_faults(self.state_dir, {})

    def log_tail(self, chars=2000):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()[-chars:]
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class RefStack:
    """One reference deployment on a PostgreSQL cluster (superuser connection facts in ``pg_facts``)."""

    def __init__(self, pg_facts, name="cws", rate_limit=30, state_dir=None, python=None, app_name=None):
        if not NAME_RE.match(name):
            raise ValueError("name must match %s" % NAME_RE.pattern)
        self.pg = dict(pg_facts)
        self.name = name
        # APP_NAME in the .env (the `service` label of the metrics; unset: the real default cleaning-economy-bot).
        self.app_name = app_name
        self.rate_limit = int(rate_limit)
        self.python = python or sys.executable
        self._own_state_dir = state_dir is None
        self.state_dir = str(state_dir or tempfile.mkdtemp(prefix="refstack-%s-" % name))
        self.backup_dir = os.path.join(self.state_dir, "backups")
        self.backup_marker = os.path.join(self.backup_dir, MARKER)
        self.alembic_ini = os.path.join(self.state_dir, "alembic.ini")
        self.migrations_dir = os.path.join(self.state_dir, "migrations")
        self.env_file = os.path.join(self.state_dir, ".env")
        self.default_org_id = DEFAULT_ORG_ID
        self.other_org_id = OTHER_ORG_ID
        self.metrics_token = "mt-" + secrets.token_hex(16)
        self.credentials = {role: ("ops-%s" % role, "%s-%s" % (role, secrets.token_hex(10))) for role in ROLES}
        self.secrets = {key: secrets.token_hex(24) for key in ("AUTH_SECRET_KEY", "CLIENT_PORTAL_SECRET",
                                                               "WORKER_PORTAL_SECRET", "ADMIN_PROXY_AUTH_SECRET")}
        host, port = self.pg.get("host", "127.0.0.1"), int(self.pg["port"])
        owner_pw, app_pw = "own-" + secrets.token_hex(12), "app-" + secrets.token_hex(12)
        owner, app, dbname = name + "_owner", name + "_app", name
        self.db = {
            "host": host, "port": port, "dbname": dbname,
            "owner_user": owner, "owner_password": owner_pw, "app_user": app, "app_password": app_pw,
            "superuser": self.pg["user"], "superuser_password": self.pg["password"],
            "owner_dsn": "postgresql+psycopg2://%s:%s@%s:%d/%s" % (owner, owner_pw, host, port, dbname),
            "app_dsn": "postgresql+psycopg2://%s:%s@%s:%d/%s" % (app, app_pw, host, port, dbname),
            "app_database_url": "postgresql+psycopg://%s:%s@%s:%d/%s" % (app, app_pw, host, port, dbname),
        }
        self.port = None
        self.base_url = None
        self.service_pid = None
        self.expected_head = None
        self.startup_seconds = None
        self.timings = {}
        self._proc = None

    # ------------------------------------------------------------------ facts and state
    def facts(self):
        return {
            "name": self.name, "base_url": self.base_url, "port": self.port, "state_dir": self.state_dir,
            "backup_dir": self.backup_dir, "backup_marker": self.backup_marker, "migrations_dir": self.migrations_dir,
            "alembic_ini": self.alembic_ini, "env_file": self.env_file, "default_org_id": self.default_org_id,
            "other_org_id": self.other_org_id, "metrics_token": self.metrics_token,
            "credentials": {role: list(pair) for role, pair in self.credentials.items()}, "db": dict(self.db),
            "rate_limit": self.rate_limit, "expected_head": self.expected_head, "service_pid": self.service_pid,
            "python": self.python, "service_root": str(SERVICE_ROOT),
            "jobs_command": [self.python, "-m", "refservice.jobs", "--once"],
            "startup_seconds": self.startup_seconds, "faults": sorted(FAULTS), "app_name": self.app_name,
        }

    def to_state(self):
        return {"facts": self.facts(), "pg": self.pg, "secrets": self.secrets, "own_state_dir": self._own_state_dir}

    @classmethod
    def from_state(cls, state):
        facts = state["facts"]
        stack = cls(state["pg"], name=facts["name"], rate_limit=facts["rate_limit"], state_dir=facts["state_dir"],
                    python=facts.get("python"), app_name=facts.get("app_name"))
        stack._own_state_dir = state.get("own_state_dir", False)
        stack.db = dict(facts["db"])
        stack.metrics_token = facts["metrics_token"]
        stack.credentials = {role: tuple(pair) for role, pair in facts["credentials"].items()}
        stack.secrets = dict(state["secrets"])
        stack.port, stack.base_url = facts["port"], facts["base_url"]
        stack.service_pid, stack.expected_head = facts["service_pid"], facts["expected_head"]
        stack.startup_seconds = facts.get("startup_seconds")
        return stack

    # ------------------------------------------------------------------ environment
    def env_values(self, read_only=False, mfa_required=False):
        values = {
            "APP_ENV": "prod",
            "DATABASE_URL": self.db["app_database_url"],
            "POSTGRES_DB": self.db["dbname"], "POSTGRES_USER": self.db["owner_user"],
            "POSTGRES_PASSWORD": self.db["owner_password"],
            "LEGACY_BASIC_AUTH_ENABLED": "true",
            "ADMIN_READ_ONLY": "true" if read_only else "false",
            "ADMIN_MFA_REQUIRED": "true" if mfa_required else "false",
            "STRICT_CORS": "true", "CORS_ORIGINS": "https://app.example.com,https://admin.example.com",
            "TRUST_PROXY_HEADERS": "true", "TRUSTED_PROXY_IPS": "127.0.0.1",
            "METRICS_ENABLED": "true", "METRICS_TOKEN": self.metrics_token,
            "RATE_LIMIT_PER_MINUTE": str(self.rate_limit),
            # As the production examples have it; unset, the real service reports jobs_enabled false while the
            # heartbeat check (JOB_HEARTBEAT_REQUIRED) still runs: RefStack.extra_service(drop=["JOBS_ENABLED"]).
            "JOBS_ENABLED": "true", "JOB_HEARTBEAT_REQUIRED": "true", "JOB_HEARTBEAT_TTL_SECONDS": "180",
            "BACKUP_DIR": self.backup_dir,
            "EMAIL_MODE": "off", "EMAIL_FROM": "noreply@example.com", "EMAIL_FROM_NAME": "CleanWithSnapshot",
            "ORDER_STORAGE_BACKEND": "local", "ORDER_UPLOAD_ROOT": os.path.join(self.state_dir, "uploads"),
            "CAPTCHA_MODE": "off",
        }
        if self.app_name:
            values["APP_NAME"] = self.app_name
        values.update(self.secrets)
        for role, (user, password) in self.credentials.items():
            values["%s_BASIC_USERNAME" % role.upper()] = user
            values["%s_BASIC_PASSWORD" % role.upper()] = password
        return values

    def _write_env_file(self, **flags):
        lines = ["# CleanWithSnapshot production settings (reference stack %s)" % self.name]
        lines += ["%s=%s" % item for item in self.env_values(**flags).items()]
        _write_private(self.env_file, "\n".join(lines) + "\n")

    def _read_env_file(self):
        values = {}
        with open(self.env_file, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, dummy, value = line.partition("=")
                    values[key.strip()] = value.strip()
        return values

    def process_env(self):
        """The environment the service and the job runner get: this process's, minus PG*/REFSERVICE_*/
        DATABASE_URL, plus the stack's .env file, the state and migrations dirs and PYTHONPATH."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PG", "REFSERVICE_")) and key != "DATABASE_URL"}
        env.update(self._read_env_file())
        env["REFSERVICE_STATE_DIR"] = self.state_dir
        env["REFSERVICE_MIGRATIONS_DIR"] = self.migrations_dir
        env["PYTHONPATH"] = str(SERVICE_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    # ------------------------------------------------------------------ database helpers
    def _connect(self, as_owner_role=False, dbname=None):
        conn = psycopg2.connect(host=self.db["host"], port=self.db["port"], user=self.db["superuser"],
                                password=self.db["superuser_password"], dbname=dbname or self.db["dbname"],
                                connect_timeout=5, application_name="refstack")
        conn.autocommit = True
        if as_owner_role:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.db["owner_user"])))
        return conn

    def _drop_database_and_roles(self):
        conn = self._connect(dbname=self.pg.get("dbname", "postgres"))
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.db["dbname"])))
                for role in (self.db["app_user"], self.db["owner_user"]):
                    cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        finally:
            conn.close()

    def _create_database_and_roles(self):
        self._drop_database_and_roles()
        conn = self._connect(dbname=self.pg.get("dbname", "postgres"))
        owner, app, dbname = (sql.Identifier(self.db[k]) for k in ("owner_user", "app_user", "dbname"))
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s NOSUPERUSER NOCREATEDB NOCREATEROLE").format(owner),
                            (self.db["owner_password"],))
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")
                            .format(app), (self.db["app_password"],))
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(dbname, owner))
                cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(dbname))
                cur.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(dbname, app))
        finally:
            conn.close()
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(app))
                cur.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, "
                                    "DELETE ON TABLES TO {}").format(owner, app))
                cur.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT USAGE, SELECT "
                                    "ON SEQUENCES TO {}").format(owner, app))
        finally:
            conn.close()

    def _grant_app(self, cur):
        app = sql.Identifier(self.db["app_user"])
        cur.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(app))
        cur.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(app))

    def _rls_state(self, cur):
        cur.execute("SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND c.relkind = 'r' AND (c.relrowsecurity OR c.relforcerowsecurity"
                    " OR EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)) ORDER BY 1")
        tables = {name: {"enabled": enabled, "forced": forced, "policies": []} for name, enabled, forced in cur.fetchall()}
        cur.execute("SELECT tablename, policyname, permissive, roles::text[], cmd, qual, with_check FROM pg_policies"
                    " WHERE schemaname = 'public' ORDER BY tablename, policyname")
        for table, name, permissive, roles, cmd, qual, check in cur.fetchall():
            tables.setdefault(table, {"enabled": False, "forced": False, "policies": []})["policies"].append(
                {"name": name, "permissive": permissive, "roles": list(roles), "cmd": cmd, "qual": qual, "with_check": check})
        return tables

    def _snapshot_path(self):
        return os.path.join(self.state_dir, "rls_snapshot.json")

    def _restore_rls(self, cur):
        with open(self._snapshot_path(), encoding="utf-8") as handle:
            wanted = json.load(handle)
        current = self._rls_state(cur)
        for table in sorted(set(wanted) | set(current)):
            want = wanted.get(table, {"enabled": False, "forced": False, "policies": []})
            have = current.get(table, {"enabled": False, "forced": False, "policies": []})
            ident = sql.Identifier(table)
            if want["enabled"] != have["enabled"]:
                cur.execute(sql.SQL("ALTER TABLE {} %s ROW LEVEL SECURITY" % ("ENABLE" if want["enabled"] else "DISABLE"))
                            .format(ident))
            if want["forced"] != have["forced"]:
                cur.execute(sql.SQL("ALTER TABLE {} %s ROW LEVEL SECURITY" % ("FORCE" if want["forced"] else "NO FORCE"))
                            .format(ident))
            if want["policies"] != have["policies"]:
                for pol in have["policies"]:
                    cur.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(pol["name"]), ident))
                for pol in want["policies"]:
                    roles = sql.SQL(", ").join(sql.SQL("PUBLIC") if r == "public" else sql.Identifier(r) for r in pol["roles"])
                    stmt = sql.SQL("CREATE POLICY {} ON {} AS %s FOR %s TO {}" % (pol["permissive"], pol["cmd"])).format(
                        sql.Identifier(pol["name"]), ident, roles)
                    # The expressions come from this stack's own catalog snapshot (pg_policies), not from input.
                    if pol["qual"] is not None:
                        stmt += sql.SQL(" USING (%s)" % pol["qual"])
                    if pol["with_check"] is not None:
                        stmt += sql.SQL(" WITH CHECK (%s)" % pol["with_check"])
                    cur.execute(stmt)

    def _rls_tables(self):
        with open(self._snapshot_path(), encoding="utf-8") as handle:
            return sorted(table for table, info in json.load(handle).items() if info["policies"])

    # ------------------------------------------------------------------ files
    def _copy_migrations(self):
        shutil.copy2(SERVICE_ROOT / "alembic.ini", self.alembic_ini)
        if os.path.isdir(self.migrations_dir):
            shutil.rmtree(self.migrations_dir)
        shutil.copytree(SERVICE_ROOT / "migrations", self.migrations_dir,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    def write_backup_marker(self, when=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        stamp = (when or _utcnow()).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        with open(self.backup_marker, "w", encoding="utf-8") as handle:
            handle.write(stamp + "\n")

    def _faults_file(self):
        return os.path.join(self.state_dir, "faults.json")

    def _file_faults(self):
        try:
            with open(self._faults_file(), encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def _save_file_faults(self, faults):
        tmp = self._faults_file() + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(faults, handle, sort_keys=True)
        os.replace(tmp, self._faults_file())

    # ------------------------------------------------------------------ processes
    def run_jobs_once(self, timeout=60):
        """Run the job runner once (``python -m refservice.jobs --once``); returns its JSON summary."""
        proc = subprocess.run([self.python, "-m", "refservice.jobs", "--once"], env=self.process_env(),
                              cwd=str(SERVICE_ROOT), capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RefStackError("job runner exited %d: %s" % (proc.returncode, proc.stderr.strip()[-2000:]))
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}

    def _start_service(self, timeout=15):
        port_file = os.path.join(self.state_dir, "service.json")
        if os.path.exists(port_file):
            os.unlink(port_file)
        cmd = [self.python, "-m", "refservice", "--host", "127.0.0.1", "--port", str(self.port or 0),
               "--port-file", port_file]
        log = open(os.path.join(self.state_dir, "service.log"), "ab")  # pylint: disable=consider-using-with
        try:
            self._proc = subprocess.Popen(cmd, env=self.process_env(), cwd=str(SERVICE_ROOT), stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.service_pid = self._proc.pid
        deadline = time.monotonic() + timeout
        while not os.path.exists(port_file):
            if self._proc.poll() is not None:
                raise RefStackError("service exited %s: %s" % (self._proc.returncode, self._log_tail()))
            if time.monotonic() > deadline:
                self._stop_service()
                raise RefStackError("service did not listen within %ss: %s" % (timeout, self._log_tail()))
            time.sleep(0.05)
        with open(port_file, encoding="utf-8") as handle:
            self.port = json.load(handle)["port"]
        self.base_url = "http://127.0.0.1:%d" % self.port
        while True:
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RefStackError("service /healthz not 200 within %ss: %s" % (timeout, self._log_tail()))
            time.sleep(0.05)

    def extra_service(self, state_dir, drop=(), timeout=15, **changes):
        """Start another service process on this stack's database with changed settings: ``drop`` removes
        settings of the .env (the service's default applies), ``changes`` sets them. Its faults file is in
        ``state_dir`` (the stack's fault switches do not reach it). Returns an ExtraService; stop() it."""
        env = self.process_env()
        for key in drop:
            env.pop(key, None)
        env.update({key: str(value) for key, value in changes.items()})
        env["REFSERVICE_STATE_DIR"] = str(state_dir)
        port_file = os.path.join(str(state_dir), "extra-service-%s.json" % secrets.token_hex(4))
        log_path = port_file[:-len(".json")] + ".log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([self.python, "-m", "refservice", "--host", "127.0.0.1", "--port", "0",
                                     "--port-file", port_file], env=env, cwd=str(SERVICE_ROOT),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        service = ExtraService(proc, None, log_path, state_dir)
        deadline = time.monotonic() + timeout
        while not os.path.exists(port_file):
            if proc.poll() is not None or time.monotonic() > deadline:
                service.stop()
                with open(log_path, encoding="utf-8", errors="replace") as handle:
                    raise RefStackError("extra service did not start: %s" % handle.read()[-2000:])
            time.sleep(0.05)
        with open(port_file, encoding="utf-8") as handle:
            service.base_url = "http://127.0.0.1:%d" % json.load(handle)["port"]
        return service

    def _log_tail(self):
        try:
            with open(os.path.join(self.state_dir, "service.log"), encoding="utf-8", errors="replace") as handle:
                return handle.read()[-2000:]
        except OSError:
            return ""

    def service_alive(self):
        if not self.service_pid:
            return False
        if self._proc is not None:
            return self._proc.poll() is None
        return _is_our_service(self.service_pid)

    def _stop_service(self, timeout=10):
        pid = self.service_pid
        if not pid or not self.service_alive():
            self._proc, self.service_pid = None, None
            return
        try:
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)  # a hung (stopped) service acts on SIGTERM only once it runs again
        except ProcessLookupError:
            pid = None
        deadline = time.monotonic() + timeout
        while pid and self.service_alive():
            if time.monotonic() > deadline:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if self._proc is not None:
                    self._proc.wait(timeout=5)
                break
            time.sleep(0.05)
        self._proc = None
        self.service_pid = None

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        """Create roles and database, migrate as the owner role, write the backup marker, run the jobs
        once (so /readyz is 200), start the service and wait for /healthz. Returns facts()."""
        started = time.monotonic()
        os.makedirs(self.state_dir, exist_ok=True)
        os.makedirs(os.path.join(self.state_dir, "uploads"), exist_ok=True)
        self._copy_migrations()
        self._save_file_faults({})
        self._write_env_file()
        self.write_backup_marker()
        mark = time.monotonic()
        self._create_database_and_roles()
        self.timings["database"] = time.monotonic() - mark
        mark = time.monotonic()
        self.migrate()
        self.timings["migrations"] = time.monotonic() - mark
        conn = self._connect(as_owner_role=True)
        try:
            with conn.cursor() as cur:
                self._grant_app(cur)
                with open(self._snapshot_path(), "w", encoding="utf-8") as handle:
                    json.dump(self._rls_state(cur), handle, indent=1, sort_keys=True)
                cur.execute("SELECT version_num FROM alembic_version")
                self.expected_head = cur.fetchone()[0]
        finally:
            conn.close()
        with open(os.path.join(self.state_dir, "versions.json"), "w", encoding="utf-8") as handle:
            json.dump(sorted(os.listdir(os.path.join(self.migrations_dir, "versions"))), handle)
        mark = time.monotonic()
        self.run_jobs_once()
        self.timings["jobs"] = time.monotonic() - mark
        mark = time.monotonic()
        self._start_service()
        self.timings["service"] = time.monotonic() - mark
        self.startup_seconds = round(time.monotonic() - started, 3)
        return self.facts()

    def migrate(self, target="head"):
        """``alembic upgrade <target>`` as the owner role with this stack's migrations copy."""
        env = self.process_env()
        env["REFSERVICE_MIGRATION_URL"] = self.db["owner_dsn"]
        proc = subprocess.run([self.python, "-m", "alembic", "-c", self.alembic_ini, "upgrade", target], env=env,
                              cwd=self.state_dir, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RefStackError("alembic upgrade %s failed: %s" % (target, proc.stderr.strip()[-3000:]))
        return proc.stderr

    def restart(self):
        self._stop_service()
        self._start_service()

    def fresh_rate_window(self, ledger_dir=None, force=False):
        """Nothing in the rate limit's window any more, on both sides: when the controller's ledger (``ledger_dir``,
        else CWS_RATE_LEDGER_DIR) holds sends to this stack inside the window, the service is restarted (its in-memory
        limiter starts empty, as the real one's does on a restart) and those ledger entries are dropped. For a test
        that stands for a new operator session on a fresh service; the limit itself stays as it is. ``force``
        restarts in any case (requests the ledger does not know of, a curl's, filled the window). -> restarted?"""
        directory = ledger_dir or os.environ.get("CWS_RATE_LEDGER_DIR")
        if not directory or not os.path.isdir(directory):
            if force:
                self.restart()
            return force
        origin = "http://127.0.0.1:%s" % self.port
        now = time.time()
        stale = []
        for name in os.listdir(directory):
            if not name.endswith(".json"):
                continue
            path = os.path.join(directory, name)
            try:
                with open(path, encoding="utf-8") as handle:
                    entry = json.load(handle)
            except (OSError, ValueError):
                continue
            if isinstance(entry, dict) and entry.get("origin") == origin:
                stale.append((path, any(now - float(t) < 61.0 for t in entry.get("sends") or [])))
        if not force and not any(recent for _path, recent in stale):
            return False
        self.restart()
        for path, _recent in stale:
            os.unlink(path)
        return True

    def stop(self):
        """Stop the service, drop the database and both roles; remove the state dir if it made it."""
        try:
            self._stop_service()
        finally:
            self._drop_database_and_roles()
            if self._own_state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)

    # ------------------------------------------------------------------ faults
    def set_fault(self, name, **params):
        """Switch one fault on (README.md lists them). Unknown ids or parameters raise ValueError."""
        if name not in FAULTS:
            raise ValueError("unknown fault %r (known: %s)" % (name, ", ".join(sorted(FAULTS))))
        unknown = set(params) - set(FAULTS[name])
        if unknown:
            raise ValueError("fault %s takes no parameter %s" % (name, ", ".join(sorted(unknown))))
        values = dict(FAULTS[name], **params)
        if name in FILE_FAULTS:
            self._set_file_fault(name, values)
            return
        getattr(self, "_fault_" + name)(**values)

    def _set_file_fault(self, name, values):
        if name == "cold_start" and os.path.exists(os.path.join(self.state_dir, "cold_start.json")):
            os.unlink(os.path.join(self.state_dir, "cold_start.json"))
        faults = self._file_faults()
        values, stored = file_fault_values(name, values)
        faults[name] = stored
        self._save_file_faults(faults)
        if name in ("read_only", "mfa_required"):
            self._write_env_file(read_only="read_only" in faults, mfa_required="mfa_required" in faults)
        if name == "job_failing":
            for dummy in range(int(values.get("cycles") or 0)):
                self.run_jobs_once()

    def _sql(self, statement, params=None, superuser=False):
        conn = self._connect(as_owner_role=not superuser)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
        finally:
            conn.close()

    def _fault_heartbeat_stale(self, age_seconds):
        self._sql("UPDATE job_heartbeats SET last_heartbeat = now() - make_interval(secs => %s)", (float(age_seconds),))

    def _fault_heartbeat_missing(self):
        self._sql("DELETE FROM job_heartbeats")

    def _fault_service_down(self):
        self._stop_service()

    def _fault_service_hung(self):
        """SIGSTOP, as a hung process is seen from outside: its listening socket still accepts connections (the
        kernel completes them) and nothing answers. clear_faults(), restart() and stop() continue it first."""
        if not self.service_alive():
            raise RefStackError("service_hung needs the service running")
        os.kill(self.service_pid, signal.SIGSTOP)
        # The signal is delivered asynchronously: the fault is on once the process is seen stopped.
        deadline = time.monotonic() + 30
        while _process_state(self.service_pid) != "T":
            if time.monotonic() > deadline:
                raise RefStackError("the service (pid %s) did not stop within 30 s" % self.service_pid)
            time.sleep(0.01)

    def _continue_service(self):
        if self.service_pid and self.service_alive():
            try:
                os.kill(self.service_pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def cold_start_report(self):
        """What the ``cold_start`` fault recorded once the schema was built: {seconds, stalled: ["GET /readyz", ...]}
        (the requests that waited for it), or None when no /openapi.json built it since the fault was set."""
        try:
            with open(os.path.join(self.state_dir, "cold_start.json"), encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def _fault_second_head(self, down_revision):
        path = os.path.join(self.migrations_dir, "versions", EXTRA_REVISION + ".py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write('"""A revision branched off an old parent: a second head.\n\nRevision ID: %s\nRevises: %s\n"""\n'
                         "revision = %r\ndown_revision = %r\nbranch_labels = None\ndepends_on = None\n\n\n"
                         "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
                         % (EXTRA_REVISION, down_revision, EXTRA_REVISION, down_revision))

    def _head_parent(self):
        path = os.path.join(self.migrations_dir, "versions", self.expected_head + ".py")
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        match = re.search(r"^down_revision\s*=\s*\(?\s*['\"]([^'\"]+)['\"]", text, re.M)
        return match.group(1)

    def _fault_db_behind(self):
        self._sql("UPDATE alembic_version SET version_num = %s", (self._head_parent(),))

    def _fault_db_unknown_revision(self, revision):
        self._sql("UPDATE alembic_version SET version_num = %s", (revision,))

    def _fault_version_table_missing(self):
        self._sql("DROP TABLE IF EXISTS alembic_version")

    def _fault_version_table_empty(self):
        self._sql("DELETE FROM alembic_version")

    def _table(self, table):
        if table not in self._rls_tables():
            raise ValueError("table must be one of the RLS tables: %s" % ", ".join(self._rls_tables()))
        return sql.Identifier(table)

    def _fault_rls_disabled(self, table):
        self._sql(sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(self._table(table)))

    def _fault_rls_not_forced(self, table):
        self._sql(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(self._table(table)))

    def _fault_policy_dropped(self, table):
        self._sql(sql.SQL("DROP POLICY {} ON {}").format(sql.Identifier(table + "_org_isolation"), self._table(table)))

    def _fault_policy_other_setting(self, table, setting):
        if not re.match(r"^[a-z_]+\.[a-z_]+$", setting):
            raise ValueError("setting must look like app.name")
        ident, pol = self._table(table), sql.Identifier(table + "_org_isolation")
        expr = sql.SQL("org_id = NULLIF(current_setting({}, true), '')::uuid").format(sql.Literal(setting))
        self._sql(sql.SQL("DROP POLICY {} ON {}; CREATE POLICY {} ON {} USING ({}) WITH CHECK ({})").format(
            pol, ident, pol, ident, expr, expr))

    def _fault_policy_leaking(self, table):
        ident, pol = self._table(table), sql.Identifier(table + "_org_isolation")
        self._sql(sql.SQL("DROP POLICY {} ON {}; CREATE POLICY {} ON {} USING (true) WITH CHECK (true)").format(
            pol, ident, pol, ident))

    def _fault_app_role_bypassrls(self):
        self._sql(sql.SQL("ALTER ROLE {} BYPASSRLS").format(sql.Identifier(self.db["app_user"])), superuser=True)

    def _fault_backup_marker_stale(self, age_hours):
        self.write_backup_marker(_utcnow() - datetime.timedelta(hours=float(age_hours)))

    def _fault_backup_marker_missing(self):
        if os.path.exists(self.backup_marker):
            os.unlink(self.backup_marker)

    def clear_faults(self):
        """Back to the healthy state: no file fault, original migration files, version table at head,
        RLS and policies as migrated, app role NOBYPASSRLS, fresh backup marker and heartbeats, service up."""
        self._continue_service()
        file_faults = self._file_faults()
        self._save_file_faults({})
        if os.path.exists(os.path.join(self.state_dir, "cold_start.json")):
            os.unlink(os.path.join(self.state_dir, "cold_start.json"))
        if "read_only" in file_faults or "mfa_required" in file_faults:
            self._write_env_file()
        versions = os.path.join(self.migrations_dir, "versions")
        with open(os.path.join(self.state_dir, "versions.json"), encoding="utf-8") as handle:
            original = set(json.load(handle))
        for name in os.listdir(versions):
            if name not in original and name.endswith(".py"):
                os.unlink(os.path.join(versions, name))
        run_jobs = "job_failing" in file_faults
        conn = self._connect(as_owner_role=True)
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS alembic_version (version_num varchar(32) NOT NULL,"
                            " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")
                cur.execute("SELECT array_agg(version_num) FROM alembic_version")
                if cur.fetchone()[0] != [self.expected_head]:
                    cur.execute("DELETE FROM alembic_version")
                    cur.execute("INSERT INTO alembic_version (version_num) VALUES (%s)", (self.expected_head,))
                    self._grant_app(cur)
                self._restore_rls(cur)
                cur.execute("SELECT count(*) FILTER (WHERE name = 'jobs-runner' AND last_heartbeat > now() - interval '60s'),"
                            " count(*) FILTER (WHERE consecutive_failures > 0 OR last_error IS NOT NULL) FROM job_heartbeats")
                fresh, failed = cur.fetchone()
                if failed:
                    cur.execute("UPDATE job_heartbeats SET last_error = NULL, last_error_at = NULL, consecutive_failures = 0")
                run_jobs = run_jobs or not fresh or bool(failed)
                cur.execute("RESET ROLE")
                cur.execute("SELECT rolbypassrls FROM pg_roles WHERE rolname = %s", (self.db["app_user"],))
                if cur.fetchone()[0]:
                    cur.execute(sql.SQL("ALTER ROLE {} NOBYPASSRLS").format(sql.Identifier(self.db["app_user"])))
        finally:
            conn.close()
        self.write_backup_marker()
        if run_jobs:
            self.run_jobs_once()
        if not self.service_alive():
            self._start_service()


# ---------------------------------------------------------------------- CLI
def app_layout(stack):
    """The application directory layout preflight expects (logs/ writable, var/ and tmp/ present)."""
    for sub in ("logs", "var", "tmp"):
        os.makedirs(os.path.join(stack.state_dir, sub), exist_ok=True)


def start_stack(pg_facts, name, layout=False, **options):
    """A started reference stack: ``RefStack(pg_facts, name=name, **options)`` (rate_limit, app_name, state_dir,
    ...), stopped again (database and roles dropped) when the start fails; with ``layout``, the application
    directory layout preflight expects. The caller stops it."""
    stack = RefStack(pg_facts, name=name, **options)
    try:
        stack.start()
    except Exception:
        stack.stop()
        raise
    if layout:
        app_layout(stack)
    return stack


@contextlib.contextmanager
def started_stack(pg_facts, name, layout=False, **options):
    """``start_stack`` for a with block (a fixture's body): the stack is stopped when the block ends."""
    stack = start_stack(pg_facts, name, layout=layout, **options)
    try:
        yield stack
    finally:
        stack.stop()


def _load_state(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _save_state(path, stack, extra):
    state = stack.to_state()
    state.update(extra)
    _write_private(path, json.dumps(state, indent=1, sort_keys=True))


def _parse_params(items):
    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit("--param expects k=v, got %r" % item)
        params[key] = value
    return params


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "fault", "clear", "jobs", "restart", "facts"])
    parser.add_argument("fault", nargs="?", help="fault id (with the fault action)")
    parser.add_argument("--state", required=True, help="JSON state file (written by start, mode 0600)")
    parser.add_argument("--pg-state", help="pgcluster state file of a running cluster (default: start one)")
    parser.add_argument("--rate-limit", type=int, default=30, help="requests per minute per client (the real service: 30)")
    parser.add_argument("--name", default="cws")
    parser.add_argument("--param", action="append", help="fault parameter k=v (repeatable)")
    args = parser.parse_args(argv)

    if args.action == "start":
        own_pg = None
        if args.pg_state:
            pg_facts = _load_state(args.pg_state)
        else:
            sys.path.insert(0, str(HERE))
            from pgcluster import PgCluster  # pylint: disable=import-outside-toplevel
            own_pg = PgCluster()
            pg_facts = own_pg.start()
        try:
            stack = start_stack(pg_facts, args.name, rate_limit=args.rate_limit)
        except Exception:
            if own_pg:
                own_pg.stop()
            raise
        _save_state(args.state, stack, {"own_pg": bool(own_pg)})
        print("refstack: %s up at %s in %.2fs (state %s)" % (stack.name, stack.base_url, stack.startup_seconds, args.state))
        return 0

    if not os.path.exists(args.state):
        if args.action == "stop":
            return 0
        raise SystemExit("refstack: no state file %s" % args.state)
    state = _load_state(args.state)
    stack = RefStack.from_state(state)
    extra = {"own_pg": state.get("own_pg", False)}
    if args.action == "stop":
        stack.stop()
        if state.get("own_pg"):
            sys.path.insert(0, str(HERE))
            from pgcluster import PgCluster  # pylint: disable=import-outside-toplevel
            PgCluster.from_facts(state["pg"]).stop()
        os.unlink(args.state)
        print("refstack: %s stopped" % stack.name)
        return 0
    if args.action == "fault":
        if not args.fault:
            raise SystemExit("refstack: fault needs a fault id: %s" % ", ".join(sorted(FAULTS)))
        stack.set_fault(args.fault, **_parse_params(args.param))
        print("refstack: fault %s on" % args.fault)
    elif args.action == "clear":
        stack.clear_faults()
        print("refstack: faults cleared")
    elif args.action == "jobs":
        print(json.dumps(stack.run_jobs_once()))
    elif args.action == "restart":
        stack.restart()
        print("refstack: restarted at %s" % stack.base_url)
    elif args.action == "facts":
        print(json.dumps(stack.facts(), indent=1, sort_keys=True))
    _save_state(args.state, stack, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
