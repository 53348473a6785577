"""The fault matrix as data: each case injects ONE fault into a healthy reference stack, runs a playbook, and
names the criteria the gate must report as not passing (fail or inconclusive).

    Case(id, category, playbook, criteria, inject, extra_vars, also, verdict, ci)

- ``criteria``: every one of them must be named (failing or inconclusive) in gonogo.json and in the play's
  failure message;
- ``also``: criteria the fault may legitimately break as well (a dead database also fails the readiness probe);
  anything outside ``criteria | also`` is a false alarm and fails the case;
- ``verdict``: NO-GO (a check decided) or NO-GO-INCONCLUSIVE (a check could not decide), when it is certain;
- ``ci``: the case is in the representative subset CI runs (the rest are marked ``matrix_full``).

Injections are small functions of a MatrixContext (the stack, its env file, a TLS front end); every change they
make is undone by ``MatrixContext.reset()`` (the stack's clear_faults() plus what the matrix itself changed).
"""
from __future__ import annotations

import collections
import json
import os
import shutil
import time

import psycopg2
from psycopg2 import sql

from matrix_harness import TLSFront, edit_env_file

Case = collections.namedtuple("Case", "id category playbook criteria inject extra_vars also verdict ci")


def case(case_id, category, playbook, criteria, inject, extra_vars=(), also=(), verdict=None, ci=False):
    return Case(case_id, category, playbook, tuple(criteria), inject, tuple(extra_vars), tuple(also), verdict, ci)


# ------------------------------------------------------------------------------------------ injections
def switch(fault, **params):
    """A fault switch of the reference stack (tests/reference_service/README.md)."""
    def inject(ctx):
        ctx.stack.set_fault(fault, **params)
    inject.description = "refstack fault %s %s" % (fault, params or "")
    return inject


def env(set_values=None, remove=()):
    """An edit of the stack's env file (what the preflight's config_audit reads)."""
    def inject(ctx):
        edit_env_file(ctx.stack.env_file, set_values, remove)
    inject.description = "env file: set %s, remove %s" % (sorted(set_values or {}), sorted(remove))
    return inject


def env_file_missing(ctx):
    os.unlink(ctx.stack.env_file)


def env_file_empty(ctx):
    with open(ctx.stack.env_file, "w", encoding="utf-8"):
        pass


def remove_app_dir(sub):
    def inject(ctx):
        shutil.rmtree(os.path.join(ctx.stack.state_dir, sub))
    inject.description = "app dir %s/ removed" % sub
    return inject


def nothing(ctx):  # the fault is in the extra vars (a threshold the host cannot meet)
    del ctx


def db_refuses_connections(ctx):
    """The application database stops accepting connections (ALLOW_CONNECTIONS false, sessions ended): what
    the service, the job runner and the gate see when the database is unavailable."""
    dbname = ctx.stack.db["dbname"]

    def run(statement):
        conn = psycopg2.connect(host=ctx.stack.db["host"], port=ctx.stack.db["port"], user=ctx.stack.db["superuser"],
                                password=ctx.stack.db["superuser_password"], dbname=ctx.stack.pg.get("dbname", "postgres"),
                                connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    run(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(dbname)))
    run(sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()")
        .format(sql.Literal(dbname)))
    ctx.undo.append(lambda: run(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(dbname))))


def lock_held_by_another_run(ctx):
    """Another run holds the deploy lock of the app host (its lock file, as deploy_lock writes it): the release
    must refuse at once, NO-GO, naming that run's user, controller, play, version and start."""
    path = os.path.join(ctx.stack.state_dir, ".release-lock")
    holder = {"run_id": "matrix-other-run", "controller": "other-controller", "user": "other-operator",
              "play": "deploy.yml", "version": "v-other", "started": "2026-12-02T20:00:00+00:00",
              "started_epoch": int(time.time()), "pid": 1}
    with open(path, "x", encoding="utf-8") as handle:
        json.dump(holder, handle)
    ctx.undo.append(lambda: os.path.exists(path) and os.unlink(path))


def tls_front(cert="valid", hsts=True, redirect=True, trust_ca=True):
    """Put a TLS front end (like the production reverse proxy) before the service and verify through it."""
    def inject(ctx):
        front = TLSFront(ctx.stack.port, ctx.tls[cert], hsts=hsts, redirect=redirect)
        ctx.undo.append(front.stop)
        ctx.extra_vars += ["-e", "release_api_base_url=%s" % front.url]
        if trust_ca:
            ctx.extra_vars += ["-e", "verify_ca_path=%s" % ctx.tls["ca"]]
    inject.description = "TLS front end: certificate %s, hsts %s, redirect %s" % (cert, hsts, redirect)
    return inject


# ------------------------------------------------------------------------------------------ the cases
READINESS = ("health.readiness",)
MIGRATIONS_READYZ = ("migrations.readyz", "health.readiness")
# Everything an unreachable API leaves undecided (the HTTP criteria of verify.yml).
HTTP_CRITERIA = ("health.liveness", "health.readiness", "migrations.readyz", "jobs.heartbeat", "jobs.status",
                 "backup.freshness", "headers.security", "smoke.estimate", "smoke.validation", "smoke.lead",
                 "smoke.metrics_csv", "smoke.queue", "admin.export_dlq", "admin.outbox_dlq", "admin.cleanup",
                 "admin.email_scan", "admin.retention", "auth.anonymous", "auth.wrong_password", "auth.roles", "web.root")
DB_CRITERIA = ("migrations.at_head", "migrations.single_head", "rls.enabled_forced", "rls.policies", "rls.isolation")

CASES = [
    # --- HTTP: health, readiness, smoke calls, response shapes, latency
    case("readyz_db_down", "http", "verify.yml", ("health.readiness", "migrations.readyz", "jobs.heartbeat"),
         switch("readyz_db_down"), verdict="NO-GO", ci=True),
    # The validation probe posts an invalid body to the same endpoint: a 500 there is not the 422 it needs. The smoke
    # lead takes its estimate_snapshot from the estimate's answer: without one it is not sent (inconclusive).
    case("estimate_broken", "http", "verify.yml", ("smoke.estimate",), switch("estimate_broken"),
         also=("smoke.validation", "smoke.lead"), verdict="NO-GO"),
    case("wrong_shape", "http", "verify.yml", ("admin.export_dlq", "health.readiness"), switch("wrong_shape"),
         also=("jobs.heartbeat",), verdict="NO-GO"),
    case("slow", "http", "verify.yml", ("health.liveness", "health.readiness"), switch("slow", delay=1.6),
         extra_vars=("-e", "verify_max_latency_ms=1000"),
         also=("backup.freshness", "headers.security", "smoke.estimate", "smoke.validation", "smoke.lead", "web.root",
               "migrations.readyz", "jobs.heartbeat"), verdict="NO-GO"),
    case("metrics_open", "http", "verify.yml", ("metrics.endpoint",), switch("metrics_open"),
         extra_vars=("-e", "verify_metrics_blocking=true"), verdict="NO-GO"),
    # --- admin authentication and authorization
    case("admin_open", "auth", "verify.yml", ("auth.anonymous",), switch("admin_open"), verdict="NO-GO", ci=True),
    case("admin_open_one_path", "auth", "verify.yml", ("auth.anonymous",),
         switch("admin_open", path="/v1/admin/export-dead-letter"), verdict="NO-GO"),
    case("weak_role_allowed", "auth", "verify.yml", ("auth.roles",), switch("weak_role_allowed"), verdict="NO-GO"),
    # Read-only mode on but not declared: the 409 comes before authentication, so it is the read-only criterion's
    # failure (never auth.*); the admin writes it refuses cannot be verified (inconclusive: required with writes).
    case("read_only", "auth", "verify.yml", ("switches.read_only",), switch("read_only"),
         also=("admin.cleanup", "admin.email_scan", "admin.retention"), verdict="NO-GO"),
    # --- migrations
    # With two heads the database cannot be at "the" head: at_head fails with single_head.
    case("second_head", "migrations", "verify.yml", ("migrations.single_head",), switch("second_head"),
         also=("migrations.at_head",), verdict="NO-GO"),
    case("db_behind", "migrations", "verify.yml", ("migrations.at_head",) + MIGRATIONS_READYZ, switch("db_behind"),
         verdict="NO-GO", ci=True),
    case("db_unknown_revision", "migrations", "verify.yml", ("migrations.at_head",) + MIGRATIONS_READYZ,
         switch("db_unknown_revision"), verdict="NO-GO"),
    case("version_table_missing", "migrations", "verify.yml", ("migrations.at_head",) + MIGRATIONS_READYZ,
         switch("version_table_missing")),
    case("version_table_empty", "migrations", "verify.yml", ("migrations.at_head",) + MIGRATIONS_READYZ,
         switch("version_table_empty")),
    # --- row-level security
    case("rls_disabled", "rls", "verify.yml", ("rls.enabled_forced", "rls.isolation"), switch("rls_disabled"),
         verdict="NO-GO"),
    case("rls_disabled_bookings", "rls", "verify.yml", ("rls.enabled_forced", "rls.isolation"),
         switch("rls_disabled", table="bookings"), verdict="NO-GO"),
    case("rls_not_forced", "rls", "verify.yml", ("rls.enabled_forced",), switch("rls_not_forced"), verdict="NO-GO"),
    # Without its policy (or with one reading another setting) the leads table refuses the smoke lead's insert.
    case("policy_dropped", "rls", "verify.yml", ("rls.policies", "rls.isolation"), switch("policy_dropped"),
         also=("smoke.lead",), verdict="NO-GO"),
    case("policy_dropped_invoices", "rls", "verify.yml", ("rls.policies", "rls.isolation"),
         switch("policy_dropped", table="invoices"), verdict="NO-GO"),
    case("policy_other_setting", "rls", "verify.yml", ("rls.policies", "rls.isolation"),
         switch("policy_other_setting"), also=("smoke.lead",), verdict="NO-GO"),
    case("policy_leaking", "rls", "verify.yml", ("rls.isolation", "rls.policies"), switch("policy_leaking"),
         verdict="NO-GO", ci=True),
    case("app_role_bypassrls", "rls", "verify.yml", ("rls.isolation",), switch("app_role_bypassrls")),
    # --- jobs
    case("heartbeat_stale", "jobs", "verify.yml", ("jobs.heartbeat", "health.readiness"), switch("heartbeat_stale"),
         also=("jobs.status",), verdict="NO-GO"),
    case("heartbeat_missing", "jobs", "verify.yml", ("jobs.heartbeat", "health.readiness", "jobs.status"),
         switch("heartbeat_missing"), verdict="NO-GO"),
    case("job_failing", "jobs", "verify.yml", ("jobs.status",), switch("job_failing"), verdict="NO-GO", ci=True),
    # --- backups
    case("backup_marker_stale", "backups", "verify.yml", ("backup.freshness",), switch("backup_marker_stale"),
         verdict="NO-GO"),
    case("backup_marker_missing", "backups", "verify.yml", ("backup.freshness",), switch("backup_marker_missing"),
         verdict="NO-GO", ci=True),
    # --- configuration (the env file the preflight audits)
    case("cfg_weak_secret", "config", "release.yml", ("config.secrets",),
         env({"AUTH_SECRET_KEY": "short-secret-17ch"}), verdict="NO-GO"),
    case("cfg_placeholder_secret", "config", "release.yml", ("config.secrets",),
         env({"CLIENT_PORTAL_SECRET": "change-me-change-me-change-me-change-me"}), verdict="NO-GO"),
    case("cfg_proxy_secret_missing", "config", "release.yml", ("config.secrets",),
         env(remove=("ADMIN_PROXY_AUTH_SECRET",)), verdict="NO-GO"),
    case("cfg_app_env_dev", "config", "release.yml", ("config.prod_mode",), env({"APP_ENV": "dev"}), verdict="NO-GO"),
    case("cfg_cors_wildcard", "config", "release.yml", ("config.prod_mode",), env({"CORS_ORIGINS": "*"}),
         verdict="NO-GO", ci=True),
    case("cfg_strict_cors_off", "config", "release.yml", ("config.prod_mode",), env({"STRICT_CORS": "false"}),
         verdict="NO-GO"),
    case("cfg_proxy_trust_missing", "config", "release.yml", ("config.prod_mode",),
         env(remove=("TRUSTED_PROXY_IPS",)), verdict="NO-GO"),
    case("cfg_short_basic_password", "config", "release.yml", ("config.basic_auth",),
         env({"ADMIN_BASIC_PASSWORD": "short-pw"}), verdict="NO-GO"),
    case("cfg_admin_username_missing", "config", "release.yml", ("config.basic_auth",),
         env(remove=("ADMIN_BASIC_USERNAME",)), verdict="NO-GO"),
    case("cfg_short_metrics_token", "config", "release.yml", ("config.metrics_token",),
         env({"METRICS_TOKEN": "mt-short"}), verdict="NO-GO"),
    case("cfg_read_only_without_incident", "config", "release.yml", ("config.admin_flags",),
         env({"ADMIN_READ_ONLY": "true"}), verdict="NO-GO"),
    case("cfg_mfa_against_policy", "config", "release.yml", ("config.admin_flags",), switch("mfa_required"),
         extra_vars=("-e", "preflight_admin_mfa_policy=not_required"), verdict="NO-GO"),
    case("cfg_storage_memory", "config", "release.yml", ("config.storage",),
         env({"ORDER_STORAGE_BACKEND": "memory"}), verdict="NO-GO"),
    case("cfg_smtp_incomplete", "config", "release.yml", ("config.email",), env({"EMAIL_MODE": "smtp"}),
         verdict="NO-GO"),
    case("cfg_env_missing", "config", "release.yml", ("config.env_present",), env_file_missing,
         also=("config.prod_mode", "config.secrets", "config.basic_auth", "config.metrics_token", "config.admin_flags",
               "config.email", "config.storage")),
    case("cfg_env_empty", "config", "release.yml", ("config.env_present",), env_file_empty,
         also=("config.prod_mode", "config.secrets", "config.basic_auth", "config.metrics_token", "config.admin_flags",
               "config.email", "config.storage")),
    # --- the application host
    case("host_disk_threshold", "host", "release.yml", ("host.disk",), nothing,
         extra_vars=("-e", "preflight_min_free_disk_gb=1000000"), verdict="NO-GO", ci=True),
    case("host_memory_threshold", "host", "release.yml", ("host.memory",), nothing,
         extra_vars=("-e", "preflight_min_memory_gb=100000"), verdict="NO-GO"),
    case("host_dir_missing", "host", "release.yml", ("host.dirs",), remove_app_dir("var"), verdict="NO-GO"),
    case("host_logs_missing", "host", "release.yml", ("host.dirs",), remove_app_dir("logs"), verdict="NO-GO"),
    case("host_no_docker", "host", "release.yml", ("host.docker",), nothing, extra_vars=("-e", "preflight_docker=true")),
    # --- concurrent deploys (another run holds the deploy lock)
    case("deploy_locked", "lock", "release.yml", ("deploy.lock",), lock_held_by_another_run, verdict="NO-GO", ci=True),
    # --- TLS and security headers (a TLS front end like the production reverse proxy)
    case("security_headers_missing", "tls", "verify.yml", ("headers.security",), switch("security_headers_missing"),
         verdict="NO-GO"),
    case("tls_expiring", "tls", "verify.yml", ("tls.certificate",), tls_front("expiring"), verdict="NO-GO", ci=True),
    case("tls_self_signed", "tls", "verify.yml", ("tls.certificate",), tls_front("self_signed", trust_ca=False),
         also=HTTP_CRITERIA + ("tls.redirect",)),
    case("tls_no_hsts", "tls", "verify.yml", ("headers.security",), tls_front(hsts=False), verdict="NO-GO"),
    case("tls_no_redirect", "tls", "verify.yml", ("tls.redirect",), tls_front(redirect=False), verdict="NO-GO"),
    # --- infrastructure
    # Down or hung: the liveness probe fails (the service's fault), nothing else is sent (the rest: inconclusive).
    case("service_down", "infra", "verify.yml", ("health.liveness", "health.readiness"), switch("service_down"),
         also=HTTP_CRITERIA, verdict="NO-GO", ci=True),
    case("service_hung", "infra", "verify.yml", ("health.liveness", "health.readiness"), switch("service_hung"),
         also=HTTP_CRITERIA, verdict="NO-GO"),
    case("db_refuses_connections", "infra", "verify.yml", ("migrations.at_head", "rls.isolation", "health.readiness"),
         db_refuses_connections, also=DB_CRITERIA + HTTP_CRITERIA),
]

IDS = [c.id for c in CASES]
assert len(set(IDS)) == len(IDS), "case ids must be unique"
