"""Helpers shared by the reference service tests (HTTP calls, database connections, the GO state)."""
from __future__ import annotations

import psycopg2
import requests

MFA = {"X-Auth-MFA": "true"}
TIMEOUT = 15
# These tests present themselves as a client behind the trusted proxy (127.0.0.1), so the requests they send count
# against a budget of their own (the real limit, 30 a minute), not against that of other suites sharing the stack.
# Each test is a new client (conftest.py gives it its own address); the rate-limit tests count within one test.
CLIENT = {"X-Forwarded-For": "198.51.100.10"}


def new_client(number):
    """The address of test ``number`` (198.18.0.0/15, the benchmarking range: no real client has it)."""
    CLIENT["X-Forwarded-For"] = "198.18.%d.%d" % ((number // 250) % 250, number % 250 + 1)


HEALTH_PATHS = ("/healthz", "/readyz", "/healthz/backup")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
# The 20 tables the real service isolates with <table>_org_isolation (on its current Alembic release), plus
# order_addons, whose policy joins through bookings.
REAL_RLS_TABLES = ("bookings", "checklist_run_items", "checklist_runs", "client_users", "email_events", "export_events",
                   "invoice_payments", "invoices", "leads", "notifications_events", "notifications_reads",
                   "notifications_rules_presets", "order_photos", "teams", "training_assignments", "training_courses",
                   "training_requirements", "training_sessions", "worker_training_records", "workers")
RLS_TABLES = REAL_RLS_TABLES + ("order_addons",)
RUNBOOK_PATHS = ("/healthz", "/readyz", "/healthz/backup", "/v1/estimate", "/v1/leads", "/v1/admin/cleanup",
                 "/v1/admin/email-scan", "/v1/admin/retention/cleanup", "/v1/admin/export-dead-letter",
                 "/v1/admin/outbox/dead-letter", "/v1/admin/metrics", "/v1/admin/queue/photos",
                 "/v1/admin/jobs/status", "/v1/admin/profile", "/v1/admin/break-glass/start", "/metrics")


def get(stack, path, **kwargs):
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs["headers"] = dict(CLIENT, **kwargs.get("headers", {}))
    return requests.get(stack.base_url + path, **kwargs)


def post(stack, path, **kwargs):
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs["headers"] = dict(CLIENT, **kwargs.get("headers", {}))
    return requests.post(stack.base_url + path, **kwargs)


def admin(stack, role, method, path, mfa=True, **kwargs):
    headers = dict(CLIENT, **dict(MFA if mfa else {}, **kwargs.pop("headers", {})))
    return requests.request(method, stack.base_url + path, auth=tuple(stack.credentials[role]), headers=headers,
                            timeout=TIMEOUT, **kwargs)


def connect(stack, who="app"):
    db = stack.db
    user, password = {"app": (db["app_user"], db["app_password"]), "owner": (db["owner_user"], db["owner_password"]),
                      "super": (db["superuser"], db["superuser_password"])}[who]
    return psycopg2.connect(host=db["host"], port=db["port"], dbname=db["dbname"], user=user, password=password)


def query(stack, statement, params=None, who="super"):
    conn = connect(stack, who)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def count_as_app(stack, table, org_id):
    """Rows of ``table`` visible to the application role inside one transaction for ``org_id``."""
    conn = connect(stack, "app")
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL app.current_org_id = %s", (org_id,))
            cur.execute("SELECT count(*) FROM %s" % table)  # table names come from RLS_TABLES only
            return cur.fetchone()[0]
    finally:
        conn.rollback()
        conn.close()


def assert_problem(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = resp.json()
    assert set(body) == {"type", "title", "status", "detail", "request_id", "errors"}
    assert body["status"] == status and isinstance(body["errors"], list)
    assert body["request_id"] == resp.headers["X-Request-ID"]
    return body


def rls_state(stack):
    rows = query(stack, "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'")
    policies = query(stack, "SELECT tablename, policyname, qual, with_check FROM pg_policies WHERE schemaname = 'public'")
    return {name: (enabled, forced) for name, enabled, forced in rows}, {(t, p): (q, w) for t, p, q, w in policies}


def assert_go(stack):
    """The healthy state every criterion passes on."""
    ready = get(stack, "/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["ok"] is True and [c["name"] for c in body["checks"]] == ["db", "migrations", "jobs"]
    assert all(check["ok"] is True for check in body["checks"])
    migrations = body["checks"][1]["detail"]
    assert migrations["expected_heads"] == [stack.expected_head] and migrations["current_version"] == stack.expected_head
    assert get(stack, "/healthz/backup").status_code == 200
    assert query(stack, "SELECT version_num FROM alembic_version") == [(stack.expected_head,)]
    flags, policies = rls_state(stack)
    for table in RLS_TABLES:
        assert flags[table] == (True, True), table
        qual, check = policies[(table, table + "_org_isolation")]
        assert "app.current_org_id" in qual and qual == check
    assert query(stack, "SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = %s",
                 (stack.db["app_user"],)) == [(False, False)]
    assert count_as_app(stack, "leads", stack.other_org_id) == 2
    estimate = post(stack, "/v1/estimate", json={"beds": 2, "baths": 1.5, "cleaning_type": "deep"})
    assert estimate.status_code == 200 and estimate.json()["total_before_tax"] == 157.5
    for name, value in SECURITY_HEADERS.items():
        assert estimate.headers.get(name) == value
    assert get(stack, "/v1/admin/profile").status_code == 401
    assert admin(stack, "viewer", "POST", "/v1/admin/cleanup").status_code == 403
    assert admin(stack, "owner", "POST", "/v1/admin/email-scan").status_code == 202
    assert isinstance(admin(stack, "viewer", "GET", "/v1/admin/export-dead-letter?limit=1").json(), dict)
    jobs = admin(stack, "viewer", "GET", "/v1/admin/jobs/status").json()
    assert jobs and all(job["consecutive_failures"] == 0 and job["last_error"] is None for job in jobs)
    assert get(stack, "/metrics").status_code == 401
