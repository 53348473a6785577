"""The HTTP service: routes, admin authentication, rate limit, security headers, fault switches.

Behaves like the real CleanWithSnapshot API as observed (tests/reference_service/README.md lists the
contract). Standard library only, plus psycopg2 for the database.
"""
from __future__ import annotations

import base64
import binascii
import collections
import datetime
import decimal
import hmac
import json
import os
import secrets
import sys
import threading
import time
import traceback
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg2
import psycopg2.extras

from . import VERSION, estimator
from .db import Database
from .faults import load_faults
from .heads import heads as migration_heads
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE, Metrics
from .settings import BACKUP_MARKER

PROBLEM_VALIDATION = "https://example.com/problems/validation-error"
PROBLEM_DOMAIN = "https://example.com/problems/domain-error"
PROBLEM_RATE_LIMIT = "https://example.com/problems/rate-limit"
PROBLEM_SERVER = "https://example.com/problems/server-error"

HEALTH_PATHS = ("/healthz", "/readyz", "/healthz/backup")
# What the real RateLimitMiddleware does not count (OPTIONS is not counted either); compared with and without a
# trailing slash.
RATE_LIMIT_EXEMPT_PATHS = HEALTH_PATHS + ("/v1/payments/stripe/webhook", "/stripe/webhook")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
READ_ONLY_EXEMPT = ("/v1/admin/break-glass/start",)
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
)
ROLE_PERMISSIONS = {
    "owner": ("view", "dispatch", "finance", "admin"),
    "admin": ("view", "dispatch", "finance", "admin"),
    "dispatcher": ("view", "dispatch"),
    "accountant": ("view", "finance"),
    "viewer": ("view",),
}


class Route:
    def __init__(self, method, path, handler, summary, admin=False, perms=("view",), status=200):
        self.method, self.path, self.handler, self.summary = method, path, handler, summary
        self.admin, self.perms, self.status = admin, tuple(perms), status


ROUTES = [
    Route("GET", "/", "web_root", "Web root"),
    Route("GET", "/healthz", "healthz", "Liveness"),
    Route("HEAD", "/healthz", "healthz", "Liveness (HEAD)"),
    Route("GET", "/readyz", "readyz", "Readiness: database, migrations, job heartbeat"),
    Route("GET", "/healthz/backup", "backup_health", "Age of the last successful backup"),
    Route("GET", "/metrics", "prometheus", "Prometheus metrics (bearer token)"),
    Route("GET", "/docs", "docs", "API documentation"),
    Route("GET", "/openapi.json", "openapi", "OpenAPI document"),
    Route("POST", "/v1/estimate", "estimate", "Price estimate"),
    Route("POST", "/v1/leads", "create_lead", "Create a lead", status=201),
    Route("POST", "/v1/admin/cleanup", "admin_cleanup", "Delete stale pending bookings", True, ("admin", "finance"), 202),
    Route("POST", "/v1/admin/email-scan", "admin_email_scan", "Send due reminders", True, ("admin", "dispatch"), 202),
    Route("POST", "/v1/admin/retention/cleanup", "admin_retention", "Retention cleanup", True, ("admin", "dispatch", "finance")),
    Route("GET", "/v1/admin/export-dead-letter", "admin_export_dlq", "Export dead-letter queue", True),
    Route("GET", "/v1/admin/outbox/dead-letter", "admin_outbox_dlq", "Outbox dead-letter queue", True),
    Route("GET", "/v1/admin/metrics", "admin_metrics", "Business metrics (JSON or CSV)", True, ("admin", "dispatch", "finance")),
    Route("GET", "/v1/admin/queue/photos", "admin_queue_photos", "Photo review queue", True, ("admin", "dispatch", "finance")),
    Route("GET", "/v1/admin/jobs/status", "admin_jobs_status", "Job heartbeats and failures", True),
    Route("GET", "/v1/admin/profile", "admin_profile", "The caller's admin profile", True),
    Route("POST", "/v1/admin/break-glass/start", "admin_break_glass", "Start a break-glass session", True, ("admin",)),
]


COLD_START_FILE = "cold_start.json"


class HTTPError(Exception):
    """Raised by handlers to answer with an error response."""

    def __init__(self, status, detail, errors=None, plain=False, headers=None, title=None):
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors or []
        self.plain, self.headers, self.title = plain, headers or {}, title


class Response:
    def __init__(self, status=200, body=b"", content_type="application/json", headers=None):
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = dict(headers or {})
        # False for what the real service answers outside its MetricsMiddleware (CORS preflights, the rate
        # limiter's 429s): not in http_requests_total.
        self.metered = True


def _json_default(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError("not JSON serializable: %r" % type(value))


def json_response(payload, status=200, headers=None):
    return Response(status, json.dumps(payload, default=_json_default).encode(), "application/json", headers)


class Request:
    def __init__(self, method, target, headers, body, client_ip, faults):
        parts = urlsplit(target)
        self.method, self.path = method, parts.path.rstrip("/") or "/"
        self.query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        self.headers, self.body, self.client_ip, self.faults = headers, body, client_ip, faults
        self.request_id = headers.get("X-Request-ID") or str(uuid.uuid4())
        self.identity = None

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPError(422, "Request validation failed",
                            [{"field": "body", "message": "JSON decode error: %s" % exc, "type": "json_invalid"}]) from exc


class RateLimiter:
    """At most ``limit`` requests per client in any 60 s window, a sliding-window log like the real service's
    InMemoryRateLimiter: an entry leaves once it is strictly older than the window, and a refused request is not
    logged."""

    def __init__(self, limit, window=60.0):
        self.limit, self.window = limit, window
        self._hits = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def allow(self, key):
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] < now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True


class Identity:
    def __init__(self, username, role):
        self.username, self.role = username, role

    @property
    def permissions(self):
        return ROLE_PERMISSIONS[self.role]


class App:
    def __init__(self, settings):
        self.settings = settings
        self.db = Database(settings.db_kwargs)
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.metrics = Metrics(settings.app_name)
        self._error_lock = threading.Lock()
        self._error_seq = 0
        self.routes = {(route.method, route.path): route for route in ROUTES}
        self.paths = {route.path for route in ROUTES}
        # The cold_start fault: the real API builds its OpenAPI schema on its one event loop on the first
        # /openapi.json after a start, and every request that arrives meanwhile waits for it.
        self._loop_lock = threading.Lock()
        self._schema_built = False
        self._loop_free = threading.Event()
        self._loop_free.set()
        self._stalled = []

    # ----------------------------------------------------------------- plumbing
    def faults(self):
        return load_faults(self.settings.state_dir)

    def problem(self, req, status, detail, errors=None, title=None, headers=None):
        if status == 422:
            ptype = PROBLEM_VALIDATION
        elif status == 429:
            ptype = PROBLEM_RATE_LIMIT
        elif status >= 500:
            ptype = PROBLEM_SERVER
        else:
            ptype = PROBLEM_DOMAIN
        body = {"type": ptype, "title": title or HTTPStatus(status).phrase, "status": status, "detail": detail,
                "request_id": req.request_id, "errors": errors or []}
        return Response(status, json.dumps(body).encode(), "application/problem+json", headers)

    def injected_error(self, req):
        """The ``error_fraction`` fault: every round(1/fraction)-th request (a counter, so the share is exact and
        the same on every run) answers 500; the count starts afresh whenever the fault is off."""
        fault = req.faults.get("error_fraction")
        with self._error_lock:
            if fault is None:
                self._error_seq = 0
                return False
            try:
                fraction = float((fault or {}).get("fraction", 0.05))
            except (TypeError, ValueError):
                fraction = 0.05
            if fraction <= 0:
                return False
            period = max(1, int(round(1.0 / min(fraction, 1.0))))
            self._error_seq += 1
            return self._error_seq % period == 0

    @staticmethod
    def rate_limited(req):
        if req.method == "OPTIONS":
            return False
        return req.path not in RATE_LIMIT_EXEMPT_PATHS and (req.path.rstrip("/") or "/") not in RATE_LIMIT_EXEMPT_PATHS

    def rate_key(self, req):
        if self.settings.trust_proxy_headers and req.client_ip in self.settings.trusted_proxy_ips:
            forwarded = req.headers.get("X-Forwarded-For", "").split(",")[0].strip()
            if forwarded:
                return forwarded
        return req.client_ip

    def read_only(self, req):
        return self.settings.admin_read_only or "read_only" in req.faults

    def mfa_required(self, req):
        return self.settings.admin_mfa_required or "mfa_required" in req.faults

    def cors_headers(self, req):
        origin = req.headers.get("Origin")
        if origin and origin in self.settings.cors_origins:
            return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}
        return {}

    def cold_start(self, req, fault):
        """The first /openapi.json of this process blocks every request for ``seconds``. ``<state_dir>/cold_start.json``
        says when the build is under way (``building``) and, once it is done, which requests waited (``stalled``)."""
        with self._loop_lock:
            building = req.path == "/openapi.json" and not self._schema_built
            if building:
                self._schema_built = True
                self._loop_free.clear()
            elif not self._loop_free.is_set():
                self._stalled.append("%s %s" % (req.method, req.path))
        if not building:
            self._loop_free.wait()
            return
        seconds = float((fault or {}).get("seconds", 4))
        self._cold_start_report({"seconds": seconds, "building": True, "stalled": []})
        time.sleep(seconds)
        with self._loop_lock:
            self._loop_free.set()
            stalled = list(self._stalled)
        self._cold_start_report({"seconds": seconds, "building": False, "stalled": stalled})

    def _cold_start_report(self, report):
        if self.settings.state_dir:
            path = os.path.join(self.settings.state_dir, COLD_START_FILE)
            with open(path + ".tmp", "w", encoding="utf-8") as handle:
                json.dump(report, handle)
            os.replace(path + ".tmp", path)

    def handle(self, req):
        """Everything in front of the route handlers, in the order the real middleware stack applies it."""
        if "cold_start" in req.faults:
            self.cold_start(req, req.faults["cold_start"])
        slow = req.faults.get("slow")
        if slow is not None:
            time.sleep(float((slow or {}).get("delay", 3)))
        if req.method == "OPTIONS" and req.headers.get("Origin") and req.headers.get("Access-Control-Request-Method"):
            if req.headers["Origin"] not in self.settings.cors_origins:
                return Response(400, b"Disallowed CORS origin", "text/plain; charset=utf-8")
            headers = self.cors_headers(req)
            headers.update({"Access-Control-Allow-Methods": "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT",
                            "Access-Control-Allow-Headers": req.headers.get("Access-Control-Request-Headers", "*"),
                            "Access-Control-Max-Age": "600"})
            resp = Response(200, b"OK", "text/plain; charset=utf-8", headers)
            resp.metered = False
            return resp
        if self.rate_limited(req) and not self.limiter.allow(self.rate_key(req)):
            self.metrics.rate_limited(req.path)
            resp = self.problem(req, 429, "Rate limit exceeded", title="Too Many Requests")
            resp.metered = False
            return resp
        if req.path != "/metrics":
            added = req.faults.get("added_latency")
            if added is not None:
                time.sleep(max(0.0, float((added or {}).get("ms", 600))) / 1000.0)
            if self.injected_error(req):
                return self.problem(req, 500, "Internal Server Error")
        if (req.method in WRITE_METHODS and req.path.startswith(("/v1/admin/", "/v1/iam/"))
                and req.path not in READ_ONLY_EXEMPT and self.read_only(req)):
            return self.problem(req, 409, "Admin writes temporarily disabled", title="Conflict")
        route = self.routes.get((req.method, req.path))
        if route is None:
            if req.path in self.paths:
                return self.problem(req, 405, "Method Not Allowed")
            return self.problem(req, 404, "Not Found")
        try:
            if route.admin:
                req.identity = self.authenticate(req)
                if not set(route.perms) & set(req.identity.permissions) and "weak_role_allowed" not in req.faults:
                    raise HTTPError(403, "Forbidden", headers={"X-Admin-Auth-Fail-Reason": "forbidden_permission"})
            result = getattr(self, route.handler)(req)
        except HTTPError as exc:
            if exc.plain:
                return json_response({"detail": exc.detail}, exc.status, exc.headers)
            return self.problem(req, exc.status, exc.detail, exc.errors, exc.title, exc.headers)
        if isinstance(result, Response):
            return result
        return json_response(result, route.status)

    # ----------------------------------------------------------------- admin authentication
    def authenticate(self, req):
        auth = req.headers.get("Authorization") or ""
        opened = req.faults.get("admin_open")
        if opened is not None and not auth and (not (opened or {}).get("path") or opened["path"] == req.path):
            return Identity("anonymous", "admin")

        def fail(detail, reason):
            return HTTPError(401, detail, plain=True,
                             headers={"WWW-Authenticate": "Basic", "X-Admin-Auth-Fail-Reason": reason})

        if not auth:
            raise fail("Admin access requires MFA", "mfa_required")
        scheme, dummy, param = auth.partition(" ")
        if scheme.lower() == "bearer":
            raise fail("Invalid SaaS token", "invalid_saas_token")
        if scheme.lower() != "basic":
            raise fail("Invalid authentication", "invalid_authentication")
        if req.client_ip not in self.settings.trusted_proxy_ips:
            raise fail("Admin access requires a trusted proxy", "proxy_untrusted")
        if req.headers.get("X-Auth-MFA", "").strip().lower() != "true":
            raise fail("Admin access requires MFA", "mfa_required")
        try:
            username, dummy, password = base64.b64decode(param.strip(), validate=True).decode("latin1").partition(":")
        except (binascii.Error, ValueError) as exc:
            raise fail("Invalid authentication", "malformed_authorization_header") from exc
        matched = None
        for role, (user, secret) in self.settings.users.items():
            if hmac.compare_digest(username.encode(), user.encode()) & hmac.compare_digest(password.encode(), secret.encode()):
                matched = Identity(user, role)
        if matched is None:
            raise fail("Invalid authentication", "invalid_credentials")
        return matched

    # ----------------------------------------------------------------- public routes
    def web_root(self, req):
        html = ("<!doctype html><html><head><title>CleanWithSnapshot</title></head><body>"
                "<h1>CleanWithSnapshot</h1><p>Reference service %s.</p></body></html>" % VERSION)
        return Response(200, html.encode(), "text/html; charset=utf-8")

    def healthz(self, req):
        return {"status": "ok"}

    def readyz(self, req):
        settings = self.settings
        checks, conn = [], None
        overrides = {"host": "127.0.0.1", "port": 1} if "readyz_db_down" in req.faults else {}
        started = time.monotonic()
        try:
            conn = self.db.connect(connect_timeout=2, **overrides)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            db_detail, db_ok = {"message": "database reachable"}, True
        except psycopg2.Error as exc:
            db_detail, db_ok = {"message": "database check failed", "error": type(exc).__name__}, False
        checks.append({"name": "db", "ok": db_ok, "ms": round((time.monotonic() - started) * 1000, 2), "detail": db_detail})
        try:
            started = time.monotonic()
            try:
                expected, skip_reason = migration_heads(settings.migrations_dir), None
            except (OSError, SyntaxError):
                expected, skip_reason = [], "skipped_no_alembic_files"
            expected_head = expected[0] if len(expected) == 1 else None
            current, mig_ok = None, False
            if conn is not None:
                with conn.cursor() as cur:
                    try:
                        cur.execute("SELECT version_num FROM alembic_version")
                        row = cur.fetchone()
                        current = row[0] if row else None
                    except psycopg2.Error:
                        current = None
                if skip_reason:
                    current_ok = True
                elif not expected:
                    current_ok = False
                else:
                    current_ok = current in expected
                detail = {"message": "database reachable", "migrations_current": current_ok, "current_version": current,
                          "expected_head": expected_head, "expected_heads": expected, "migrations_check": skip_reason or "ok"}
                mig_ok = current_ok
            else:
                detail = {"message": "database check failed", "migrations_current": False, "current_version": None,
                          "expected_head": expected_head, "expected_heads": expected,
                          "migrations_check": skip_reason or "not_run"}
            checks.append({"name": "migrations", "ok": mig_ok, "ms": round((time.monotonic() - started) * 1000, 2),
                           "detail": detail})
            started = time.monotonic()
            jobs_ok, jobs_detail = self._jobs_check(conn)
            jobs_check = {"name": "jobs", "ok": jobs_ok, "ms": round((time.monotonic() - started) * 1000, 2),
                          "detail": jobs_detail}
            if "wrong_shape" in req.faults:
                del jobs_check["ok"]
            checks.append(jobs_check)
        finally:
            if conn is not None:
                conn.close()
        overall = db_ok and mig_ok and jobs_ok
        return json_response({"ok": overall, "checks": checks}, 200 if overall else 503)

    def _jobs_check(self, conn):
        # `enabled` is the heartbeat check (JOB_HEARTBEAT_REQUIRED); `jobs_enabled` only echoes the JOBS_ENABLED
        # flag (whether this process runs the jobs itself): an external runner writes the heartbeat either way.
        ttl, jobs_enabled = self.settings.job_heartbeat_ttl_seconds, self.settings.jobs_enabled
        if not self.settings.job_heartbeat_required:
            return True, {"enabled": False, "message": "job heartbeat check disabled", "jobs_enabled": jobs_enabled}
        if conn is None:
            return False, {"enabled": True, "message": "job heartbeat check failed", "threshold_seconds": ttl,
                           "jobs_enabled": jobs_enabled}
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT last_heartbeat, runner_id, now() FROM job_heartbeats WHERE name = 'jobs-runner'")
                row = cur.fetchone()
        except psycopg2.Error as exc:
            return False, {"enabled": True, "message": "job heartbeat check failed", "error": type(exc).__name__,
                           "threshold_seconds": ttl, "jobs_enabled": jobs_enabled}
        if row is None:
            # As the real check: a missing heartbeat is exported as one second past the threshold.
            self.metrics.job_heartbeat_age("jobs-runner", ttl + 1, threshold_seconds=ttl)
            return False, {"enabled": True, "message": "job heartbeat missing", "threshold_seconds": ttl,
                           "jobs_enabled": jobs_enabled}
        last, runner_id, now = row
        age = round((now - last).total_seconds(), 3)
        self.metrics.job_heartbeat_age("jobs-runner", age, threshold_seconds=ttl)
        return age <= ttl, {"enabled": True, "last_heartbeat": last.isoformat(), "runner_id": runner_id,
                            "age_seconds": age, "threshold_seconds": ttl, "jobs_enabled": jobs_enabled}

    def backup_health(self, req):
        marker = os.path.join(self.settings.backup_dir, BACKUP_MARKER)
        try:
            with open(marker, encoding="utf-8") as handle:
                raw = handle.read().strip()
        except FileNotFoundError as exc:
            raise HTTPError(503, "backup marker missing") from exc
        try:
            stamp = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=datetime.timezone.utc)
        except ValueError as exc:
            raise HTTPError(503, "backup marker invalid") from exc
        age = (datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()
        if age > self.settings.backup_max_age_seconds:
            raise HTTPError(503, "backup too old: %ds" % int(age))
        return {"backup_ok": True, "last_backup_utc": raw, "age_seconds": int(age)}

    def prometheus(self, req):
        token = self.settings.metrics_token
        if not self.settings.metrics_enabled:
            raise HTTPError(404, "Not Found")
        if "metrics_down" in req.faults:
            raise HTTPError(503, "metrics unavailable")
        if "metrics_open" not in req.faults:
            given = req.headers.get("Authorization", "")
            if not token or not hmac.compare_digest(given.encode(), ("Bearer " + token).encode()):
                raise HTTPError(401, "Unauthorized", plain=True, headers={"WWW-Authenticate": "Bearer"})
        return Response(200, self.metrics.render().encode(), METRICS_CONTENT_TYPE)

    def openapi_document(self):
        paths = {}
        for route in ROUTES:
            if route.method == "HEAD":
                continue
            op = {"summary": route.summary, "responses": {str(route.status): {"description": "Successful Response"}}}
            if route.admin:
                op["security"] = [{"HTTPBasic": []}]
                op["responses"].update({"401": {"description": "Not authenticated"}, "403": {"description": "Forbidden"}})
            if route.method in WRITE_METHODS:
                op["responses"]["422"] = {"description": "Validation Error"}
            paths.setdefault(route.path, {})[route.method.lower()] = op
        return {"openapi": "3.1.0", "info": {"title": "CleanWithSnapshot API (reference service)", "version": VERSION},
                "paths": paths, "components": {"securitySchemes": {"HTTPBasic": {"type": "http", "scheme": "basic"}}}}

    def openapi(self, req):
        return self.openapi_document()

    def docs(self, req):
        items = "".join("<li><code>%s %s</code> %s</li>" % (r.method, r.path, r.summary) for r in ROUTES)
        html = ("<!doctype html><html><head><title>CleanWithSnapshot API - Docs</title></head><body>"
                "<h1>CleanWithSnapshot API</h1><p><a href=\"/openapi.json\">openapi.json</a></p><ul>%s</ul>"
                "</body></html>" % items)
        return Response(200, html.encode(), "text/html; charset=utf-8")

    def estimate(self, req):
        if "estimate_broken" in req.faults:
            raise HTTPError(500, "Internal Server Error")
        body = req.json()
        errors = estimator.validate(body)
        if errors:
            raise HTTPError(422, "Request validation failed", errors)
        return estimator.estimate(body)

    def create_lead(self, req):
        body = req.json()
        if not isinstance(body, dict):
            raise HTTPError(422, "Request validation failed",
                            [{"field": "body", "message": "Input should be a JSON object", "type": "model_type"}])
        errors = _validate_lead(body)
        if self.settings.captcha_mode != "off" and not body.get("captcha_token"):
            errors.append({"field": "captcha_token", "message": "captcha_required", "type": "missing"})
        if errors:
            raise HTTPError(422, "Request validation failed", errors)
        lead_id, code = str(uuid.uuid4()), secrets.token_hex(4).upper()
        with self.db.transaction(self.settings.default_org_id) as cur:
            cur.execute(
                "INSERT INTO leads (lead_id, org_id, name, phone, email, postal_code, address, preferred_dates,"
                " structured_inputs, estimate_snapshot, referral_code)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (lead_id, self.settings.default_org_id, body["name"], body["phone"], body.get("email"),
                 body.get("postal_code"), body["address"], psycopg2.extras.Json(body.get("preferred_dates") or []),
                 psycopg2.extras.Json(body["structured_inputs"]), psycopg2.extras.Json(body["estimate_snapshot"]), code))
        return {"lead_id": lead_id, "next_step_text": "Thanks! Our team will confirm your booking and follow up shortly.",
                "referral_code": code}

    # ----------------------------------------------------------------- admin routes
    def _audit(self, cur, req, action):
        cur.execute("INSERT INTO admin_audit_logs (org_id, actor, action) VALUES (%s, %s, %s)",
                    (self.settings.default_org_id, req.identity.username, action))

    def admin_cleanup(self, req):
        with self.db.transaction(self.settings.default_org_id) as cur:
            cur.execute("DELETE FROM bookings WHERE status = 'PENDING' AND created_at < now() - interval '1 hour'"
                        " RETURNING booking_id")
            deleted = len(cur.fetchall())
            self._audit(cur, req, "cleanup")
        return {"deleted": deleted}

    def admin_email_scan(self, req):
        org = self.settings.default_org_id
        with self.db.transaction(org) as cur:
            window = "status = 'CONFIRMED' AND starts_at BETWEEN now() AND now() + interval '24 hours'"
            cur.execute("SELECT count(*) AS n FROM bookings WHERE " + window + " AND reminder_sent")
            skipped = cur.fetchone()["n"]
            cur.execute("UPDATE bookings SET reminder_sent = true WHERE " + window + " AND NOT reminder_sent"
                        " RETURNING booking_id")
            sent_ids = [row["booking_id"] for row in cur.fetchall()]
            for booking_id in sent_ids:
                cur.execute("INSERT INTO outbox_events (org_id, kind, payload, status, attempts)"
                            " VALUES (%s, 'email.booking_reminder', %s, 'sent', 1)",
                            (org, psycopg2.extras.Json({"booking_id": str(booking_id)})))
            self._audit(cur, req, "email-scan")
        return {"sent": len(sent_ids), "skipped": skipped}

    def admin_retention(self, req):
        org = self.settings.default_org_id
        with self.db.transaction(org) as cur:
            cur.execute("SELECT (SELECT count(*) FROM leads) + (SELECT count(*) FROM order_photos)"
                        " + (SELECT count(*) FROM chat_sessions WHERE org_id = %s) AS n", (org,))
            processed = cur.fetchone()["n"]
            cur.execute("DELETE FROM chat_sessions WHERE org_id = %s AND created_at < now() - interval '30 days'", (org,))
            chats = cur.rowcount
            cur.execute("DELETE FROM leads WHERE status = 'LOST' AND created_at < now() - interval '365 days'")
            leads_deleted = cur.rowcount
            cur.execute("UPDATE leads SET name = 'anonymized', phone = '', email = NULL, address = ''"
                        " WHERE created_at < now() - interval '730 days' AND name <> 'anonymized'")
            anonymized = cur.rowcount
            cur.execute("DELETE FROM order_photos WHERE created_at < now() - interval '180 days'")
            photos = cur.rowcount
            cur.execute("UPDATE invoices SET booking_id = NULL"
                        " WHERE booking_id IS NOT NULL AND created_at < now() - interval '7 years'")
            detached = cur.rowcount
            self._audit(cur, req, "retention-cleanup")
        return {"chat_sessions_deleted": chats, "leads_deleted": leads_deleted, "processed": processed,
                "leads_anonymized": anonymized, "photos_deleted": photos, "invoices_detached": detached}

    def _limit(self, req, default=50):
        raw = req.query.get("limit", str(default))
        try:
            limit = int(raw)
        except ValueError:
            limit = -1
        if not 1 <= limit <= 500:
            raise HTTPError(422, "Request validation failed",
                            [{"field": "limit", "message": "Input should be between 1 and 500", "type": "int_range"}])
        return limit

    def admin_export_dlq(self, req):
        limit = self._limit(req)
        with self.db.transaction(self.settings.default_org_id) as cur:
            cur.execute("SELECT count(*) AS n FROM export_events WHERE status = 'dead_letter'")
            total = cur.fetchone()["n"]
            cur.execute("SELECT event_id, export_kind, reason, attempts, created_at FROM export_events"
                        " WHERE status = 'dead_letter' ORDER BY created_at DESC LIMIT %s", (limit,))
            items = cur.fetchall()
        if "wrong_shape" in req.faults:
            return items
        return {"items": items, "total": total}

    def admin_outbox_dlq(self, req):
        limit = self._limit(req)
        with self.db.transaction(self.settings.default_org_id) as cur:
            cur.execute("SELECT event_id, kind, attempts, last_error, created_at FROM outbox_events"
                        " WHERE org_id = %s AND status = 'dead' ORDER BY created_at DESC LIMIT %s",
                        (self.settings.default_org_id, limit))
            return cur.fetchall()

    def admin_metrics(self, req):
        org = self.settings.default_org_id
        end = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        start = end - datetime.timedelta(days=30)
        with self.db.transaction(org) as cur:
            cur.execute(
                "SELECT (SELECT count(*) FROM leads WHERE created_at >= %(s)s) AS leads_created,"
                " (SELECT count(*) FROM bookings WHERE created_at >= %(s)s) AS bookings_created,"
                " (SELECT count(*) FROM bookings WHERE status IN ('CONFIRMED', 'DONE') AND created_at >= %(s)s)"
                " AS bookings_confirmed,"
                " (SELECT count(*) FROM bookings WHERE status = 'DONE' AND created_at >= %(s)s) AS jobs_completed,"
                " (SELECT coalesce(sum(total_cents), 0) FROM invoices WHERE status = 'PAID' AND created_at >= %(s)s)"
                " AS revenue_cents", {"s": start})
            row = cur.fetchone()
        metrics = [("range_start", start.isoformat()), ("range_end", end.isoformat())]
        metrics += [(key, int(row[key])) for key in ("leads_created", "bookings_created", "bookings_confirmed",
                                                     "jobs_completed", "revenue_cents")]
        conversion = round(row["bookings_confirmed"] / row["leads_created"], 4) if row["leads_created"] else 0.0
        metrics.append(("lead_to_booking_conversion", conversion))
        if req.query.get("format") == "csv":
            text = "".join("%s,%s\n" % (key, value) for key, value in metrics)
            return Response(200, text.encode(), "text/csv; charset=utf-8")
        return dict(metrics)

    def admin_queue_photos(self, req):
        limit = self._limit(req)
        status = (req.query.get("status") or "pending").upper()
        if status not in ("PENDING", "APPROVED", "NEEDS_RETAKE", "ALL"):
            raise HTTPError(422, "Request validation failed",
                            [{"field": "status", "message": "Input should be pending, approved, needs_retake or all",
                              "type": "enum"}])
        where, params = ("", ()) if status == "ALL" else (" WHERE review_status = %s", (status,))
        with self.db.transaction(self.settings.default_org_id) as cur:
            cur.execute("SELECT count(*) AS n FROM order_photos" + where, params)
            total = cur.fetchone()["n"]
            cur.execute("SELECT photo_id, order_id, review_status, filename, created_at FROM order_photos" + where
                        + " ORDER BY created_at LIMIT %s", params + (limit,))
            items = cur.fetchall()
            cur.execute("SELECT count(*) FILTER (WHERE review_status = 'PENDING') AS p,"
                        " count(*) FILTER (WHERE review_status = 'NEEDS_RETAKE') AS r FROM order_photos")
            counts = cur.fetchone()
        return {"items": items, "total": total, "pending_count": counts["p"], "needs_retake_count": counts["r"]}

    def admin_jobs_status(self, req):
        with self.db.transaction(self.settings.default_org_id) as cur:
            cur.execute("SELECT name, last_heartbeat, runner_id, last_success_at, last_error, last_error_at,"
                        " consecutive_failures FROM job_heartbeats ORDER BY name")
            return cur.fetchall()

    def admin_profile(self, req):
        return {"username": req.identity.username, "role": req.identity.role,
                "permissions": sorted(req.identity.permissions)}

    def admin_break_glass(self, req):
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("incident_ref"), str) or not body["incident_ref"]:
            raise HTTPError(422, "Request validation failed",
                            [{"field": "incident_ref", "message": "Field required", "type": "missing"}])
        if self.mfa_required(req):
            raise HTTPError(403, "MFA required")
        # The observed release answers 500 here (an enum bug); the reference reproduces it.
        raise HTTPError(500, "Internal Server Error")


LEAD_FIELDS = (
    ("name", str, True), ("phone", str, True), ("email", str, False), ("postal_code", str, False),
    ("address", str, True), ("preferred_dates", list, False), ("access_notes", str, False), ("parking", str, False),
    ("pets", str, False), ("allergies", str, False), ("notes", str, False), ("structured_inputs", dict, True),
    ("estimate_snapshot", dict, True), ("referral_code", str, False), ("captcha_token", str, False),
)


def _validate_lead(body):
    errors = []
    for name, kind, required in LEAD_FIELDS:
        value = body.get(name)
        if value is None:
            if required:
                errors.append({"field": name, "message": "Field required", "type": "missing"})
            continue
        if not isinstance(value, kind) or (kind is str and required and not value.strip()):
            errors.append({"field": name, "message": "Input should be a valid %s" % kind.__name__, "type": "type_error"})
        elif name == "estimate_snapshot":
            errors.extend(estimator.validate_snapshot(value, "estimate_snapshot"))
        elif name == "preferred_dates" and not all(isinstance(item, str) for item in value):
            errors.append({"field": name, "message": "Input should be a list of strings", "type": "list_type"})
    return errors


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "refservice/" + VERSION
    sys_version = ""
    timeout = 30
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    app = None  # set by make_server

    def version_string(self):
        return self.server_version

    def _dispatch(self):
        started = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        faults = self.app.faults()
        req = Request(self.command, self.path, self.headers, body, self.client_address[0], faults)
        try:
            resp = self.app.handle(req)
        except Exception:  # noqa: BLE001  pylint: disable=broad-except
            traceback.print_exc(file=sys.stderr)
            resp = self.app.problem(req, 500, "Internal Server Error")
        if resp.metered:
            route = req.path if req.path in self.app.paths else "unmatched"
            self.app.metrics.observe(req.method, route, resp.status, time.monotonic() - started)
        self.send_response(resp.status)
        if "security_headers_missing" not in faults:
            for name, value in SECURITY_HEADERS:
                self.send_header(name, value)
        self.send_header("X-Request-ID", req.request_id)
        for name, value in self.app.cors_headers(req).items():
            if name not in resp.headers:
                self.send_header(name, value)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _dispatch

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), format % args))


class Server(ThreadingHTTPServer):
    # The default listen backlog of 5 drops connections when a gate sends 20 probes at once.
    request_queue_size = 128


def make_server(settings, host="127.0.0.1", port=0):
    app = App(settings)
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = Server((host, port), handler)
    server.daemon_threads = True
    server.app = app
    return server
