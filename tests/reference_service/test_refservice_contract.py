"""The reference service answers like the real CleanWithSnapshot as observed (status codes and shapes)."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from alembic.config import Config
from alembic.script import ScriptDirectory

from refhelpers import (REAL_RLS_TABLES, RLS_TABLES, RUNBOOK_PATHS, SECURITY_HEADERS, admin, assert_go, assert_problem,
                        connect, count_as_app, get, post, query)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

RUNBOOK_LEAD = {"name": "Smoke Lead", "phone": "780-555-0000", "email": "lead@example.com", "postal_code": "T5J0N3",
                "structured_inputs": {"beds": 1, "baths": 1, "cleaning_type": "standard"}}
ESTIMATE = {"beds": 2, "baths": 1.5, "cleaning_type": "deep"}


def test_the_started_stack_is_in_the_go_state(healthy_stack, capsys):
    # The session's stack may have started minutes ago: healthy_stack refreshes the job heartbeat, as cron would.
    # Its startup time is printed for information only; speed is measured in bench/.
    with capsys.disabled():
        print("\nreference stack startup: %.2fs (%s)" % (
            healthy_stack.startup_seconds, ", ".join("%s %.2fs" % item for item in healthy_stack.timings.items())))
    assert_go(healthy_stack)


def test_healthz(healthy_stack):
    resp = get(healthy_stack, "/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    assert requests.head(healthy_stack.base_url + "/healthz", timeout=5).status_code == 200


def test_readyz_shape(healthy_stack):
    body = get(healthy_stack, "/readyz").json()
    assert set(body) == {"ok", "checks"}  # no top-level status / database / jobs
    for check in body["checks"]:
        assert set(check) == {"name", "ok", "ms", "detail"} and isinstance(check["ms"], float)
    db, migrations, jobs = body["checks"]
    assert db["detail"]["message"] == "database reachable"
    assert set(migrations["detail"]) == {"message", "migrations_current", "current_version", "expected_head",
                                         "expected_heads", "migrations_check"}
    assert migrations["detail"]["expected_head"] == "merge_20260224_01" and migrations["detail"]["migrations_current"]
    assert set(jobs["detail"]) == {"enabled", "last_heartbeat", "runner_id", "age_seconds", "threshold_seconds",
                                   "jobs_enabled"}
    assert jobs["detail"]["threshold_seconds"] == 180 and 0 <= jobs["detail"]["age_seconds"] < 180


def test_readyz_without_heartbeat_is_503(healthy_stack):
    query(healthy_stack, "DELETE FROM job_heartbeats")
    resp = get(healthy_stack, "/readyz")
    assert resp.status_code == 503
    jobs = resp.json()["checks"][2]
    assert jobs["ok"] is False
    assert jobs["detail"] == {"enabled": True, "message": "job heartbeat missing", "threshold_seconds": 180,
                              "jobs_enabled": True}
    assert admin(healthy_stack, "viewer", "GET", "/v1/admin/jobs/status").json() == []
    summary = healthy_stack.run_jobs_once()
    assert set(summary["jobs"]) == {"outbox-delivery", "storage-janitor", "email-dlq"}
    assert get(healthy_stack, "/readyz").status_code == 200


def test_backup_health(healthy_stack):
    body = get(healthy_stack, "/healthz/backup").json()
    assert body["backup_ok"] is True and isinstance(body["age_seconds"], int) and body["last_backup_utc"].endswith("Z")


def test_estimate(healthy_stack):
    resp = post(healthy_stack, "/v1/estimate", json=ESTIMATE)
    assert resp.status_code == 200
    body = resp.json()
    assert body["pricing_config_id"] == "economy" and body["total_before_tax"] == 157.5
    assert body["breakdown"]["total_before_tax"] == 157.5 and isinstance(body["assumptions"], list)
    bad = assert_problem(post(healthy_stack, "/v1/estimate", json={"beds": "two", "cleaning_type": "shiny"}), 422)
    assert [error["field"] for error in bad["errors"]] == ["beds", "baths", "cleaning_type"]
    assert_problem(post(healthy_stack, "/v1/estimate", data="{not json", headers={"Content-Type": "application/json"}), 422)


def test_leads(healthy_stack):
    body = assert_problem(post(healthy_stack, "/v1/leads", json=RUNBOOK_LEAD), 422)
    assert [error["field"] for error in body["errors"]] == ["address", "estimate_snapshot"]
    snapshot = post(healthy_stack, "/v1/estimate", json=ESTIMATE).json()
    full = dict(RUNBOOK_LEAD, address="1 Smoke St", estimate_snapshot=snapshot, preferred_dates=["2026-03-01 morning"])
    resp = post(healthy_stack, "/v1/leads", json=full)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert set(created) == {"lead_id", "next_step_text", "referral_code"}
    rows = query(healthy_stack, "SELECT org_id::text, address FROM leads WHERE lead_id = %s", (created["lead_id"],))
    assert rows == [(healthy_stack.default_org_id, "1 Smoke St")]


def test_admin_401s(healthy_stack):
    for resp, reason, detail in (
            (post(healthy_stack, "/v1/admin/cleanup"), "mfa_required", "Admin access requires MFA"),
            (admin(healthy_stack, "owner", "POST", "/v1/admin/cleanup", mfa=False), "mfa_required",
             "Admin access requires MFA"),
            (requests.get(healthy_stack.base_url + "/v1/admin/profile", auth=("ops-owner", "wrong-password-1"),
                          headers={"X-Auth-MFA": "true"}, timeout=5), "invalid_credentials", "Invalid authentication"),
            (get(healthy_stack, "/v1/admin/profile", headers={"Authorization": "Bearer abc"}), "invalid_saas_token",
             "Invalid SaaS token")):
        assert resp.status_code == 401
        assert resp.json() == {"detail": detail}
        assert resp.headers["WWW-Authenticate"] == "Basic" and resp.headers["X-Admin-Auth-Fail-Reason"] == reason
        assert resp.headers["Content-Type"] == "application/json"


def test_admin_endpoints_as_owner(healthy_stack):
    stack = healthy_stack
    assert set(admin(stack, "owner", "POST", "/v1/admin/cleanup").json()) == {"deleted"}
    cleanup = admin(stack, "admin", "POST", "/v1/admin/cleanup")
    assert cleanup.status_code == 202 and isinstance(cleanup.json()["deleted"], int)
    scan = admin(stack, "owner", "POST", "/v1/admin/email-scan")
    assert scan.status_code == 202 and set(scan.json()) == {"sent", "skipped"}
    retention = admin(stack, "owner", "POST", "/v1/admin/retention/cleanup")
    assert retention.status_code == 200
    assert set(retention.json()) == {"chat_sessions_deleted", "leads_deleted", "processed", "leads_anonymized",
                                     "photos_deleted", "invoices_detached"}
    assert admin(stack, "owner", "GET", "/v1/admin/export-dead-letter?limit=1").json() == {"items": [], "total": 0}
    assert admin(stack, "owner", "GET", "/v1/admin/outbox/dead-letter?limit=1").json() == []
    metrics = admin(stack, "owner", "GET", "/v1/admin/metrics?format=csv")
    assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(metrics.text)))
    assert rows[0][0] == "range_start" and all(len(row) == 2 for row in rows)
    queue = admin(stack, "dispatcher", "GET", "/v1/admin/queue/photos?status=pending&limit=1")
    assert queue.status_code == 200
    assert set(queue.json()) == {"items", "total", "pending_count", "needs_retake_count"}
    assert queue.json()["pending_count"] == 1 and len(queue.json()["items"]) == 1
    jobs = admin(stack, "owner", "GET", "/v1/admin/jobs/status").json()
    assert {job["name"] for job in jobs} == {"jobs-runner", "outbox-delivery", "storage-janitor", "email-dlq"}
    assert set(jobs[0]) == {"name", "last_heartbeat", "runner_id", "last_success_at", "last_error", "last_error_at",
                            "consecutive_failures"}
    profile = admin(stack, "accountant", "GET", "/v1/admin/profile").json()
    assert profile == {"username": "ops-accountant", "role": "accountant", "permissions": ["finance", "view"]}


def test_role_matrix(healthy_stack):
    forbidden = [("viewer", "POST", "/v1/admin/cleanup"), ("viewer", "POST", "/v1/admin/email-scan"),
                 ("viewer", "POST", "/v1/admin/retention/cleanup"), ("viewer", "GET", "/v1/admin/metrics?format=csv"),
                 ("viewer", "GET", "/v1/admin/queue/photos?status=pending&limit=1"),
                 ("dispatcher", "POST", "/v1/admin/cleanup"), ("accountant", "POST", "/v1/admin/email-scan")]
    for role, method, path in forbidden:
        resp = admin(healthy_stack, role, method, path)
        assert_problem(resp, 403)
        assert resp.headers["X-Admin-Auth-Fail-Reason"] == "forbidden_permission", (role, path)
    for path in ("/v1/admin/export-dead-letter?limit=1", "/v1/admin/outbox/dead-letter?limit=1",
                 "/v1/admin/jobs/status", "/v1/admin/profile"):
        assert admin(healthy_stack, "viewer", "GET", path).status_code == 200, path
    assert admin(healthy_stack, "dispatcher", "POST", "/v1/admin/email-scan").status_code == 202
    assert admin(healthy_stack, "accountant", "POST", "/v1/admin/cleanup").status_code == 202


def test_break_glass(healthy_stack):
    runbook_body = {"reason": "incident", "ttl_minutes": 30}
    body = assert_problem(admin(healthy_stack, "owner", "POST", "/v1/admin/break-glass/start", json=runbook_body), 422)
    assert body["errors"][0]["field"] == "incident_ref"
    assert_problem(admin(healthy_stack, "owner", "POST", "/v1/admin/break-glass/start",
                         json=dict(runbook_body, incident_ref="INC-1")), 500)
    assert_problem(admin(healthy_stack, "viewer", "POST", "/v1/admin/break-glass/start",
                         json=dict(runbook_body, incident_ref="INC-1")), 403)


def test_metrics_docs_and_unknown_paths(healthy_stack):
    stack = healthy_stack
    assert get(stack, "/metrics").status_code == 401
    assert get(stack, "/metrics", headers={"Authorization": "Bearer wrong-token-123456"}).status_code == 401
    prom = get(stack, "/metrics", headers={"Authorization": "Bearer " + stack.metrics_token})
    assert prom.status_code == 200 and "# TYPE http_requests_total counter" in prom.text
    # The two refusals above, counted like the real MetricsMiddleware counts them (the route, the status class).
    assert 'http_requests_total{method="GET",route="/metrics",service="cleaning-economy-bot",status_class="4xx"}' \
        in prom.text
    assert_problem(get(stack, "/v1/metrics"), 404)
    docs = get(stack, "/docs")
    assert docs.status_code == 200 and docs.headers["Content-Type"].startswith("text/html")
    spec = get(stack, "/openapi.json").json()
    assert spec["openapi"].startswith("3.1") and set(RUNBOOK_PATHS) <= set(spec["paths"])
    root = get(stack, "/")
    assert root.status_code == 200 and "<html" in root.text


def test_security_headers_everywhere(healthy_stack):
    responses = [get(healthy_stack, "/healthz"), get(healthy_stack, "/readyz"), get(healthy_stack, "/nope"),
                 post(healthy_stack, "/v1/admin/cleanup"), post(healthy_stack, "/v1/estimate", json=ESTIMATE)]
    for resp in responses:
        for name, value in SECURITY_HEADERS.items():
            assert resp.headers.get(name) == value, (resp.url, name)
        assert "default-src" in resp.headers["Content-Security-Policy"] and resp.headers["X-Request-ID"]
        assert "Strict-Transport-Security" not in resp.headers and "Cache-Control" not in resp.headers
    echoed = get(healthy_stack, "/healthz", headers={"X-Request-ID": "req-123"})
    assert echoed.headers["X-Request-ID"] == "req-123"


def test_cors(healthy_stack):
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = requests.options(healthy_stack.base_url + "/v1/estimate", timeout=5,
                               headers=dict(preflight, Origin="https://app.example.com"))
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    denied = requests.options(healthy_stack.base_url + "/v1/estimate", timeout=5,
                              headers=dict(preflight, Origin="https://evil.example.net"))
    assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers


def test_alembic_history(healthy_stack):
    config = Config(healthy_stack.alembic_ini)
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == ["merge_20260224_01"]
    head = script.get_revision("merge_20260224_01")
    assert head.is_merge_point and len(head.down_revision) == 2
    revisions = list(script.walk_revisions())
    assert len(revisions) >= 5
    assert len([rev for rev in revisions if rev.is_branch_point]) == 1
    assert "0044_postgres_rls_org_isolation" in {rev.revision for rev in revisions}


def test_roles_and_rls(healthy_stack):
    stack = healthy_stack
    assert query(stack, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s",
                 (stack.db["app_user"],)) == [(False, False)]
    owners = query(stack, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert owners == [(stack.db["owner_user"],)]
    rows = dict((name, (enabled, forced)) for name, enabled, forced in query(
        stack, "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(%s)",
        (list(RLS_TABLES) + ["organizations", "outbox_events", "admin_audit_logs", "chat_sessions"],)))
    for table in RLS_TABLES:
        assert rows[table] == (True, True)
    for table in ("organizations", "outbox_events", "admin_audit_logs", "chat_sessions"):
        assert rows[table] == (False, False)
    policies = dict(((table, name), qual) for table, name, qual in query(
        stack, "SELECT tablename, policyname, qual FROM pg_policies WHERE schemaname = 'public'"))
    assert set(policies) == {(table, table + "_org_isolation") for table in RLS_TABLES}
    assert "EXISTS" in policies[("order_addons", "order_addons_org_isolation")]
    assert "bookings" in policies[("order_addons", "order_addons_org_isolation")]


def test_verify_role_requires_the_real_tables():
    """The verify role's default must-have list is the real service's set, which this service reproduces."""
    defaults = yaml.safe_load((REPO / "roles" / "verify" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert sorted(defaults["verify_rls_tables"]) == sorted(REAL_RLS_TABLES)
    assert len(REAL_RLS_TABLES) == 20


def test_isolation_as_app_role(healthy_stack):
    stack = healthy_stack
    assert count_as_app(stack, "leads", stack.other_org_id) == 2
    assert count_as_app(stack, "leads", stack.default_org_id) >= 3
    assert count_as_app(stack, "leads", "00000000-0000-0000-0000-00000000dead") == 0
    assert count_as_app(stack, "order_addons", stack.other_org_id) == 1
    conn = connect(stack, "app")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM leads")  # no org set: nothing, and no error
            assert cur.fetchone()[0] == 0
            conn.rollback()
            cur.execute("SET LOCAL app.current_org_id = %s", (stack.default_org_id,))
            with pytest.raises(Exception, match="row-level security"):
                cur.execute("INSERT INTO leads (org_id, name, phone, address, estimate_snapshot, referral_code)"
                            " VALUES (%s, 'x', '1', 'a', '{}', 'XRLS0001')", (stack.other_org_id,))
            conn.rollback()
            cur.execute("SET LOCAL app.current_org_id = %s", (stack.default_org_id,))
            cur.execute("UPDATE leads SET status = 'LOST' WHERE org_id = %s", (stack.other_org_id,))
            assert cur.rowcount == 0
    finally:
        conn.rollback()
        conn.close()


def test_service_refuses_weak_prod_settings(ref_stack, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)), APP_ENV="prod",
               DATABASE_URL=ref_stack.db["app_database_url"], METRICS_TOKEN="short", AUTH_SECRET_KEY="x" * 40,
               CLIENT_PORTAL_SECRET="y" * 40, WORKER_PORTAL_SECRET="z" * 40, ADMIN_PROXY_AUTH_SECRET="p" * 40,
               STRICT_CORS="true", CORS_ORIGINS="*", OWNER_BASIC_USERNAME="o", OWNER_BASIC_PASSWORD="short")
    proc = subprocess.run([sys.executable, "-m", "refservice", "--port-file", str(tmp_path / "p.json")], env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2
    for needle in ("METRICS_TOKEN", "CORS_ORIGINS", "OWNER_BASIC_PASSWORD"):
        assert needle in proc.stderr
    assert not (tmp_path / "p.json").exists()


def test_env_file_is_a_prod_env(ref_stack):
    assert oct(os.stat(ref_stack.env_file).st_mode & 0o777) == "0o600"
    values = dict(line.split("=", 1) for line in open(ref_stack.env_file, encoding="utf-8").read().splitlines()
                  if line and not line.startswith("#"))
    assert values["APP_ENV"] == "prod" and values["STRICT_CORS"] == "true" and "*" not in values["CORS_ORIGINS"]
    assert values["DATABASE_URL"] == ref_stack.db["app_database_url"]
    assert values["DATABASE_URL"].startswith("postgresql+psycopg://")
    for key in ("AUTH_SECRET_KEY", "CLIENT_PORTAL_SECRET", "WORKER_PORTAL_SECRET"):
        assert len(values[key]) >= 32
    assert len(values["METRICS_TOKEN"]) >= 16 and values["ADMIN_READ_ONLY"] == "false"
    for role in ("OWNER", "ADMIN", "DISPATCHER", "ACCOUNTANT", "VIEWER"):
        assert len(values[role + "_BASIC_PASSWORD"]) >= 12
