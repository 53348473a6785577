"""Secret canaries: a reference stack whose every credential is a canary (canaries.py), and every playbook run
at -vvvv with failures injected - faults in the service and the database, wrong passwords, unreachable
endpoints, bad configuration. Nothing a run leaves (stdout, stderr, the log file, the gate's artifacts, the
published set_stats data, ANSIBLE_HOME and the temp and async directories) may hold a canary, in any encoding.

Each run also proves the canaries were really used (a role authenticated with its canary password, the drill
connected with the canary DSN), so a clean search is not the result of checks that never touched a secret."""
from __future__ import annotations

import json
import os
import secrets

import pytest

from canaries import Canaries, CanarySuperuser, canary_stack, run_texts
from matrix_harness import NO_GO, PLAYBOOKS, PlaybookRunner, edit_env_file, write_private_json
from refstack import app_layout
from local_inventory import inventory_vars

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def canary_env(pg_server):
    canaries = Canaries()
    suffix = os.getpid()
    superuser = CanarySuperuser(pg_server, canaries, "cws_cnry_su_%d" % suffix)
    stack = canary_stack(pg_server, canaries, "cws_cnry_%d" % suffix)
    superuser.create()
    try:
        stack.start()
        app_layout(stack)
        yield {"canaries": canaries, "stack": stack, "superuser": superuser, "stored": set(canaries.values)}
    finally:
        try:
            stack.stop()
        finally:
            superuser.drop()


@pytest.fixture()
def canary(canary_env, tmp_path):
    """Runs playbooks at -vvvv against the canary stack and searches what each run left."""
    stack, canaries, superuser = canary_env["stack"], canary_env["canaries"], canary_env["superuser"]
    original_env = open(stack.env_file, encoding="utf-8").read()
    stack.clear_faults()
    stack.fresh_rate_window()
    variables = inventory_vars(stack.facts())
    variables["db_dsn"] = variables["source_dsn"] = superuser.dsn(stack)
    vars_file = tmp_path / "local-stack.json"
    write_private_json(vars_file, variables)
    runner = PlaybookRunner(tmp_path, vars_file)

    class Helper:
        def __init__(self):
            self.stack, self.canaries, self.superuser, self.variables = stack, canaries, superuser, variables

        @staticmethod
        def extra_vars_file(data):
            """Extra vars holding secrets go in a file of the test (an inventory's vault, not a run's output)."""
            path = tmp_path / ("extra-%s.json" % secrets.token_hex(4))
            write_private_json(path, data)
            return "@%s" % path

        @staticmethod
        def run(playbook, *args, extra_sources=()):
            run = runner.run(playbook, *args, verbosity=4, log=True)
            texts = run_texts(run, run.run_dir)
            for source in extra_sources:
                for root, dummy, files in os.walk(source):
                    for name in files:
                        with open(os.path.join(root, name), "rb") as handle:
                            texts[os.path.join(root, name)] = handle.read().decode("utf-8", errors="replace")
            assert "PLAY RECAP" in run.stdout and "<localhost> EXEC" in run.stdout, "the run did not run:\n" + run.tail()
            leaks = canaries.find(texts)
            assert not leaks, "secrets leaked:\n" + "\n".join("%s: %s: ...%s..." % leak for leak in leaks[:20])
            return run

    # The search itself works: every canary is found where it is stored on purpose (the inventory's file).
    stored = {"inventory vars": vars_file.read_text(encoding="utf-8"), "env file": original_env}
    found = {label for dummy, label, dummy2 in canaries.find(stored)}
    assert canary_env["stored"] <= found, sorted(canary_env["stored"] - found)
    try:
        yield Helper()
    finally:
        with open(stack.env_file, "w", encoding="utf-8") as handle:
            handle.write(original_env)
        app_layout(stack)
        stack.clear_faults()


def record(run, name):
    for criterion in run.report["criteria"]:
        for item in criterion["records"]:
            if item["name"] == name:
                return item
    raise AssertionError("no record %s in the report" % name)


def test_verify_with_faults_and_a_wrong_canary_password(canary):
    for fault in ("estimate_broken", "wrong_shape", "weak_role_allowed", "policy_leaking", "job_failing",
                  "backup_marker_missing"):
        canary.stack.set_fault(fault)
    roles = json.loads(json.dumps(canary.variables["admin_roles"]))
    roles["accountant"]["password"] = canary.canaries.make("wrong_accountant_password", 16)
    canary.canaries.basic(roles["accountant"]["username"], roles["accountant"]["password"])
    run = canary.run("verify.yml", "-e", canary.extra_vars_file({"verify_admin_roles": roles}))
    assert run.rc != 0 and run.verdict in NO_GO, run.tail()
    assert {"smoke.estimate", "admin.export_dlq", "auth.roles", "rls.isolation", "jobs.status",
            "backup.freshness"} <= run.not_passing(), run.tail()
    assert record(run, "export_dlq:admin")["status"] == "pass", "the canary admin password must have authenticated"
    assert record(run, "email_scan:accountant")["evidence"]["status_code"] == 401  # the wrong password was sent


def test_verify_with_the_service_down_and_a_wrong_database_password(canary):
    canary.stack.set_fault("service_down")
    wrong = canary.canaries.make("wrong_db_password")
    base = canary.stack.base_url.replace("http://", "http://ops-url:%s@" % canary.canaries.make("url_password"))
    run = canary.run("verify.yml", "-e", canary.extra_vars_file({
        "release_db_dsn": canary.superuser.dsn(canary.stack, password=wrong), "release_api_base_url": base,
        "verify_http_deadline": 3, "verify_admin_deadline": 3}))
    # The API refuses connections (health.liveness fails: the service's fault); the database checks cannot decide.
    assert run.rc != 0 and run.verdict == "NO-GO", run.tail()
    assert "health.liveness" in run.report["failing"], run.tail()
    assert {"migrations.at_head", "rls.isolation"} <= set(run.report["inconclusive"]), run.tail()


def _config_faults(canary):
    """Bad settings whose values are canaries: the audit must name the rule, never the value."""
    make = canary.canaries
    edit_env_file(canary.stack.env_file, {
        "AUTH_SECRET_KEY": "changeme-" + make.make("placeholder_auth_secret", 40),  # a placeholder
        "ADMIN_BASIC_PASSWORD": make.make_short("short_admin_password"),  # 11 characters: too short
        "METRICS_TOKEN": make.make_short("short_metrics_token", prefix="mt-"),  # shorter than 16
        "CORS_ORIGINS": "*",
        "EMAIL_MODE": "smtp",
        "SMTP_PASSWORD": make.make("smtp_password"),
        "STRIPE_SECRET_KEY": "pk_" + make.make("stripe_key"),  # not an sk_ key
    })


def test_preflight_with_bad_configuration(canary):
    _config_faults(canary)
    run = canary.run("preflight.yml")
    assert run.rc != 0 and run.verdict in NO_GO, run.tail()
    assert {"config.secrets", "config.basic_auth", "config.metrics_token", "config.prod_mode",
            "config.email"} <= run.not_passing(), run.tail()


def test_release_with_configuration_and_service_faults(canary):
    _config_faults(canary)
    canary.stack.set_fault("admin_open")
    canary.stack.set_fault("rls_not_forced")
    run = canary.run("release.yml")
    assert run.rc != 0 and run.verdict in NO_GO, run.tail()
    assert {"config.secrets", "auth.anonymous", "rls.enabled_forced"} <= run.not_passing(), run.tail()
    assert record(run, "profile:viewer")["status"] == "pass", "the canary viewer password must have authenticated"


def test_backup_drill_passing_and_with_a_wrong_canary_password(canary):
    run = canary.run("backup_drill.yml", extra_sources=(canary.stack.backup_dir,))
    assert run.rc == 0 and run.verdict == "GO", run.tail()  # connected with the canary DSN, restored, verified
    wrong = canary.canaries.make("wrong_drill_password")
    run = canary.run("backup_drill.yml", "-e", canary.extra_vars_file({
        "backup_drill_source_dsn": canary.superuser.dsn(canary.stack, password=wrong)}),
        extra_sources=(canary.stack.backup_dir,))
    assert run.rc != 0 and run.verdict == "NO-GO-INCONCLUSIVE", run.tail()


@pytest.mark.matrix_full
@pytest.mark.parametrize("playbook", ["deploy.yml", "rollback.yml"])
def test_deploy_and_rollback_failing_in_check_mode(canary, playbook):
    """deploy.yml and rollback.yml against the local stack fail early (no release repository reachable, no last-good
    state); their error paths must not print a credential either. (A repository URL with credentials in it is shown
    by the deploy role's git task in its echoed arguments: keep credentials out of deploy_repo.)"""
    if not (PLAYBOOKS / playbook).exists():
        pytest.skip("%s is not in this checkout" % playbook)
    run = canary.run(playbook, "--check", "-e", "deploy_repo=https://127.0.0.1:9/release.git")
    assert run.rc != 0, run.tail()
    # They fail for the reason they were set up to fail for, not somewhere earlier.
    reason = {"deploy.yml": "unable to access 'https://127.0.0.1:9/release.git/'",
              "rollback.yml": "nothing to roll back to"}[playbook]
    assert "FAILED!" in run.stdout and reason in run.stdout, run.tail()
