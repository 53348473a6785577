"""Every fault switch changes what it says, and clear_faults() brings back the GO state."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from alembic.config import Config
from alembic.script import ScriptDirectory
from prometheus_client.parser import text_string_to_metric_families

import refstack
from refhelpers import admin, assert_go, assert_problem, connect, count_as_app, get, post, query, rls_state

pytestmark = pytest.mark.integration
RANDOM_ORG = "00000000-0000-0000-0000-00000000beef"


def _total_leads(stack):
    return query(stack, "SELECT count(*) FROM leads")[0][0]


def _ready(stack, status=503):
    resp = get(stack, "/readyz")
    assert resp.status_code == status, resp.text
    return {check["name"]: check for check in resp.json()["checks"]}


def _env(stack):
    with open(stack.env_file, encoding="utf-8") as handle:
        return dict(line.split("=", 1) for line in handle.read().splitlines() if line and not line.startswith("#"))


def check_readyz_db_down(stack):
    checks = _ready(stack)
    assert checks["db"]["ok"] is False and checks["db"]["detail"]["message"] == "database check failed"
    assert get(stack, "/healthz").status_code == 200


def check_heartbeat_stale(stack):
    jobs = _ready(stack)["jobs"]
    assert jobs["ok"] is False and jobs["detail"]["age_seconds"] > jobs["detail"]["threshold_seconds"]


def check_heartbeat_missing(stack):
    assert _ready(stack)["jobs"]["detail"]["message"] == "job heartbeat missing"


def check_slow(stack):
    assert stack._file_faults()["slow"]["delay"] == 3.0  # the default; measured below with a shorter delay
    stack.set_fault("slow", delay=0.6)
    for path in ("/healthz", "/openapi.json"):
        started = time.monotonic()
        assert get(stack, path).status_code == 200
        assert time.monotonic() - started >= 0.6, path


def check_service_down(stack):
    assert not stack.service_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(stack.base_url + "/healthz", timeout=3)


def check_service_hung(stack):
    assert refstack._process_state(stack.service_pid) == "T"  # stopped, yet listening
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as conn:  # the kernel accepts it
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        conn.settimeout(1.0)
        with pytest.raises(socket.timeout):
            conn.recv(1024)  # and nothing answers


def _wait_for(predicate, what, limit=30.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "no %s within %ss" % (what, limit)
        time.sleep(0.02)


def check_cold_start(stack):
    assert stack._file_faults()["cold_start"] == {"seconds": 4.0}
    stack.set_fault("cold_start", seconds=1.0)
    stack.restart()  # once after a start: the schema is built by the first /openapi.json of the process
    answers = {}
    builder = threading.Thread(target=lambda: answers.update(openapi=get(stack, "/openapi.json").status_code))
    builder.start()
    _wait_for(lambda: (stack.cold_start_report() or {}).get("building"), "schema build")
    assert get(stack, "/healthz").status_code == 200  # waits for the build, then answers
    builder.join(30)
    assert answers == {"openapi": 200}
    assert stack.cold_start_report() == {"seconds": 1.0, "building": False, "stalled": ["GET /healthz"]}
    assert get(stack, "/openapi.json").status_code == 200  # built: no second stall
    assert stack.cold_start_report()["stalled"] == ["GET /healthz"]


def check_second_head(stack):
    heads = ScriptDirectory.from_config(Config(stack.alembic_ini)).get_heads()
    assert sorted(heads) == sorted([stack.expected_head, refstack.EXTRA_REVISION])
    detail = _ready(stack, 200)["migrations"]["detail"]  # DB at one of the heads: the real service still says ok
    assert detail["expected_head"] is None and len(detail["expected_heads"]) == 2


def check_db_behind(stack):
    detail = _ready(stack)["migrations"]["detail"]
    assert detail["migrations_current"] is False and detail["current_version"] == "0045_export_dead_letter"


def check_db_unknown_revision(stack):
    assert _ready(stack)["migrations"]["detail"]["current_version"] == "ffffdeadbeef"


def check_version_table_missing(stack):
    assert query(stack, "SELECT to_regclass('public.alembic_version')") == [(None,)]
    detail = _ready(stack)["migrations"]["detail"]
    assert detail["current_version"] is None and detail["migrations_current"] is False


def check_version_table_empty(stack):
    assert query(stack, "SELECT count(*) FROM alembic_version") == [(0,)]
    assert _ready(stack)["migrations"]["detail"]["current_version"] is None


def check_rls_disabled(stack):
    assert rls_state(stack)[0]["leads"] == (False, True)
    assert count_as_app(stack, "leads", RANDOM_ORG) == _total_leads(stack)


def check_rls_not_forced(stack):
    assert rls_state(stack)[0]["leads"] == (True, False)
    assert count_as_app(stack, "leads", RANDOM_ORG) == 0  # the app role is still isolated ...
    conn = connect(stack, "owner")  # ... but the table owner now bypasses RLS
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM leads")
            assert cur.fetchone()[0] == _total_leads(stack)
    finally:
        conn.close()


def check_policy_dropped(stack):
    stack.clear_faults()
    stack.set_fault("policy_dropped", table="order_photos")
    policies = rls_state(stack)[1]
    assert ("order_photos", "order_photos_org_isolation") not in policies
    assert ("leads", "leads_org_isolation") in policies
    assert count_as_app(stack, "order_photos", stack.default_org_id) == 0  # RLS without a policy: nothing visible


def check_policy_other_setting(stack):
    qual, check = rls_state(stack)[1][("leads", "leads_org_isolation")]
    assert "app.org_id" in qual and "app.current_org_id" not in qual and qual == check
    assert count_as_app(stack, "leads", stack.default_org_id) == 0


def check_policy_leaking(stack):
    assert rls_state(stack)[1][("leads", "leads_org_isolation")] == ("true", "true")
    assert count_as_app(stack, "leads", RANDOM_ORG) == _total_leads(stack)


def check_app_role_bypassrls(stack):
    assert query(stack, "SELECT rolbypassrls FROM pg_roles WHERE rolname = %s", (stack.db["app_user"],)) == [(True,)]
    assert count_as_app(stack, "leads", RANDOM_ORG) == _total_leads(stack)


def check_admin_open(stack):
    assert get(stack, "/v1/admin/profile").status_code == 200
    assert get(stack, "/v1/admin/jobs/status").status_code == 200
    stack.set_fault("admin_open", path="/v1/admin/jobs/status")
    assert get(stack, "/v1/admin/jobs/status").status_code == 200
    assert get(stack, "/v1/admin/profile").status_code == 401


def check_weak_role_allowed(stack):
    assert admin(stack, "viewer", "POST", "/v1/admin/cleanup").status_code == 202


def check_read_only(stack):
    for resp in (post(stack, "/v1/admin/cleanup"), admin(stack, "owner", "POST", "/v1/admin/email-scan"),
                 requests.delete(stack.base_url + "/v1/iam/users/1", timeout=5)):
        body = assert_problem(resp, 409)
        assert body["title"] == "Conflict" and body["detail"] == "Admin writes temporarily disabled"
        assert body["errors"] == []
    assert admin(stack, "owner", "GET", "/v1/admin/export-dead-letter?limit=1").status_code == 200
    assert admin(stack, "owner", "POST", "/v1/admin/break-glass/start", json={"incident_ref": "INC-9"}).status_code == 500
    assert _env(stack)["ADMIN_READ_ONLY"] == "true"


def check_mfa_required(stack):
    body = assert_problem(admin(stack, "owner", "POST", "/v1/admin/break-glass/start", json={"incident_ref": "INC-9"}), 403)
    assert body["detail"] == "MFA required"
    assert _env(stack)["ADMIN_MFA_REQUIRED"] == "true"


def check_backup_marker_stale(stack):
    assert assert_problem(get(stack, "/healthz/backup"), 503)["detail"].startswith("backup too old")


def check_backup_marker_missing(stack):
    assert assert_problem(get(stack, "/healthz/backup"), 503)["detail"] == "backup marker missing"


def check_wrong_shape(stack):
    assert admin(stack, "viewer", "GET", "/v1/admin/export-dead-letter?limit=1").json() == []
    body = get(stack, "/readyz").json()
    assert "ok" not in body["checks"][2] and all("ok" in check for check in body["checks"][:2])


def check_job_failing(stack):
    def by_name():
        return {job["name"]: job for job in admin(stack, "viewer", "GET", "/v1/admin/jobs/status").json()}
    jobs = by_name()
    assert jobs["email-dlq"]["consecutive_failures"] == 2 and "simulated failure" in jobs["email-dlq"]["last_error"]
    assert jobs["email-dlq"]["last_error_at"] and jobs["outbox-delivery"]["consecutive_failures"] == 0
    summary = stack.run_jobs_once()  # the runner still exits 0
    assert summary["jobs"]["email-dlq"]["ok"] is False
    assert by_name()["email-dlq"]["consecutive_failures"] == 3
    assert get(stack, "/readyz").status_code == 200


def check_security_headers_missing(stack):
    resp = get(stack, "/healthz")
    for name in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy"):
        assert name not in resp.headers
    assert resp.headers["X-Request-ID"]


def check_metrics_open(stack):
    resp = get(stack, "/metrics")
    assert resp.status_code == 200 and "# TYPE http_request_latency_seconds histogram" in resp.text
    assert 'route="/healthz",service="cleaning-economy-bot",status_class="2xx"} ' in resp.text


def _samples(stack):
    resp = get(stack, "/metrics", headers={"Authorization": "Bearer " + stack.metrics_token})
    assert resp.status_code == 200, resp.text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(resp.text) for sample in family.samples}


def _healthz(suffix, name="http_request_latency_seconds", status_class="2xx", **labels):
    """The sample key of a /healthz series: (sample name, sorted label pairs)."""
    labels = dict({"method": "GET", "route": "/healthz", "service": "cleaning-economy-bot"}, **labels)
    if status_class:
        labels["status_class"] = status_class
    return (name + suffix, tuple(sorted(labels.items())))


def check_error_fraction(stack):
    assert stack._file_faults()["error_fraction"] == {"fraction": 0.05}  # every 20th request
    before = _samples(stack)
    statuses = [get(stack, "/healthz").status_code for dummy in range(40)]
    assert statuses == ([200] * 19 + [500]) * 2
    after = _samples(stack)  # /metrics is exempt: 200, and not one of the 20
    key = _healthz("", name="http_5xx_total", status_class=None)
    assert after[key] - before.get(key, 0) == 2
    stack.set_fault("error_fraction", fraction=1)
    assert_problem(get(stack, "/readyz"), 500)


def check_added_latency(stack):
    assert stack._file_faults()["added_latency"] == {"ms": 600.0}
    before = _samples(stack)
    assert get(stack, "/healthz").status_code == 200
    after = _samples(stack)

    def slower_than_half_a_second(samples):
        return samples.get(_healthz("_count"), 0) - samples.get(_healthz("_bucket", le="0.5"), 0)

    # The sleep of 600 ms puts the request above the 0.5 s bucket, whatever the machine's speed.
    assert slower_than_half_a_second(after) - slower_than_half_a_second(before) == 1


def check_metrics_down(stack):
    resp = get(stack, "/metrics", headers={"Authorization": "Bearer " + stack.metrics_token})
    assert_problem(resp, 503)
    assert get(stack, "/healthz").status_code == 200


def check_estimate_broken(stack):
    assert_problem(post(stack, "/v1/estimate", json={"beds": 2, "baths": 1.5, "cleaning_type": "deep"}), 500)


CHECKS = {name[len("check_"):]: func for name, func in globals().items() if name.startswith("check_")}


def test_every_fault_has_a_check():
    assert set(CHECKS) == set(refstack.FAULTS)


@pytest.mark.parametrize("fault", sorted(refstack.FAULTS))
def test_fault(healthy_stack, fault):
    healthy_stack.set_fault(fault)
    CHECKS[fault](healthy_stack)
    healthy_stack.clear_faults()
    assert_go(healthy_stack)


def test_faults_combine_and_clear(healthy_stack):
    for fault in ("rls_disabled", "policy_leaking", "db_behind", "wrong_shape", "backup_marker_missing"):
        healthy_stack.set_fault(fault)
    healthy_stack.set_fault("rls_not_forced", table="invoices")
    assert get(healthy_stack, "/readyz").status_code == 503
    healthy_stack.clear_faults()
    assert_go(healthy_stack)


def test_bad_fault_input(healthy_stack):
    with pytest.raises(ValueError, match="unknown fault"):
        healthy_stack.set_fault("no_such_fault")
    with pytest.raises(ValueError, match="no parameter"):
        healthy_stack.set_fault("rls_disabled", tabel="leads")
    with pytest.raises(ValueError, match="RLS tables"):
        healthy_stack.set_fault("rls_disabled", table="organizations")
