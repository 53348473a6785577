"""alembic_head and rls_policy_check against the reference stack (tests/harness/refstack.py): the
healthy deployment passes, each database fault fails naming its revision, table or role."""
from __future__ import annotations

import json
import os
import urllib.request

import pytest
import yaml
from psycopg2 import sql

from reference_service.refhelpers import query

pytestmark = pytest.mark.integration

RLS_TABLES = ["leads", "bookings", "invoices", "order_photos", "order_addons"]
COUNTED = RLS_TABLES + ["organizations"]


def by_criterion(result):
    return {record["criterion"]: record for record in result["records"]}


def leaks(stack, result):
    for secret in (stack.db["owner_password"], stack.db["app_password"], stack.db["superuser_password"]):
        assert secret not in result.raw


def alembic(module_runner, stack, **extra):
    args = {"dsn": stack.db["app_dsn"], "migrations_dir": stack.migrations_dir}
    args.update(extra)
    result = module_runner("alembic_head", args)
    leaks(stack, result)
    return result


def rls(module_runner, stack, **extra):
    """As the superuser switching to the app role (the stack's owner is not a member of the app role)."""
    args = {"login_host": stack.db["host"], "login_port": stack.db["port"], "login_user": stack.db["superuser"],
            "login_password": stack.db["superuser_password"], "login_db": stack.db["dbname"],
            "app_role": stack.db["app_user"], "tables": RLS_TABLES, "probe_values": {"order_addons": {}}}
    args.update(extra)
    args = dict((key, value) for key, value in args.items() if value is not None)
    before = row_counts(stack)
    result = module_runner("rls_policy_check", args)
    assert row_counts(stack) == before, "a probe row outlived the rolled-back proof"
    leaks(stack, result)
    return result


def row_counts(stack):
    return dict((table, query(stack, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))[0][0])
                for table in COUNTED)


def readyz_migrations(stack):
    try:
        with urllib.request.urlopen(stack.base_url + "/readyz", timeout=10) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as err:
        body = json.load(err)
    return next(check["detail"] for check in body["checks"] if check["name"] == "migrations")


def test_healthy_stack_passes_both_checks(module_runner, healthy_stack):
    head = alembic(module_runner, healthy_stack, readyz_detail=readyz_migrations(healthy_stack))
    records = by_criterion(head)
    assert head["status"] == "pass", [r["summary"] for r in head["records"]]
    assert records["migrations.at_head"]["evidence"]["current"] == [healthy_stack.expected_head]
    assert records["migrations.single_head"]["evidence"]["heads"] == [healthy_stack.expected_head]
    assert records["migrations.readyz"]["status"] == "pass"
    result = rls(module_runner, healthy_stack)
    assert result["status"] == "pass", [r["summary"] for r in result["records"]]
    isolation = by_criterion(result)["rls.isolation"]["evidence"]
    assert isolation["proof_ran_as"] == healthy_stack.db["app_user"]
    assert isolation["tables"]["order_addons"]["observations"]["cross_org_insert"] == "refused by row-level security"
    coverage = by_criterion(result)["rls.coverage"]
    assert coverage["blocking"] is False
    assert {"organizations", "outbox_events", "admin_audit_logs", "chat_sessions"} <= set(coverage["evidence"]["without_rls"])


def test_as_the_app_role_with_the_default_orgs(module_runner, healthy_stack):
    result = rls(module_runner, healthy_stack, dsn=healthy_stack.db["app_dsn"], app_role=None, login_host=None,
                 login_port=None, login_user=None, login_password=None, login_db=None,
                 org_a=healthy_stack.default_org_id, org_b=healthy_stack.other_org_id)
    assert "records" in result, result
    assert result["status"] == "pass", [r["summary"] for r in result["records"]]


@pytest.mark.parametrize("fault, criterion, words", [
    ("second_head", "migrations.single_head", ["2 heads", "0046_second_head_fault"]),
    # the head is a merge: back on one parent, the other branch and the merge are pending
    ("db_behind", "migrations.at_head", ["2 revision(s) behind", "0045_job_failure_tracking"]),
    ("db_unknown_revision", "migrations.at_head", ["ffffdeadbeef", "unknown revision"]),
    ("version_table_missing", "migrations.at_head", ["public.alembic_version does not exist"]),
    ("version_table_empty", "migrations.at_head", ["public.alembic_version is empty"]),
])
def test_migration_faults_fail(module_runner, healthy_stack, fault, criterion, words):
    healthy_stack.set_fault(fault)
    result = alembic(module_runner, healthy_stack)
    record = by_criterion(result)[criterion]
    assert record["status"] == "fail", record
    for word in words:
        assert word in record["summary"], record["summary"]
    assert result["status"] == "fail"


@pytest.mark.parametrize("fault, criteria", [
    ("rls_disabled", ["rls.enabled_forced", "rls.isolation"]),
    ("rls_not_forced", ["rls.enabled_forced"]),
    ("policy_dropped", ["rls.policies", "rls.isolation"]),
    ("policy_other_setting", ["rls.policies", "rls.isolation"]),
    ("policy_leaking", ["rls.policies", "rls.isolation"]),
])
def test_rls_faults_fail_naming_the_table(module_runner, healthy_stack, fault, criteria):
    healthy_stack.set_fault(fault, table="invoices")
    result = rls(module_runner, healthy_stack)
    records = by_criterion(result)
    assert result["status"] == "fail"
    for criterion in criteria:
        assert records[criterion]["status"] == "fail", (criterion, records[criterion]["summary"])
        assert "invoices" in records[criterion]["summary"]
        assert "invoices" in records[criterion]["evidence"]["failed"]


def test_app_role_bypassrls_fails_isolation(module_runner, healthy_stack):
    healthy_stack.set_fault("app_role_bypassrls")
    isolation = by_criterion(rls(module_runner, healthy_stack))["rls.isolation"]
    assert isolation["status"] == "fail"
    assert "BYPASSRLS" in isolation["summary"] and healthy_stack.db["app_user"] in isolation["summary"]


def verify_role_tables():
    """The verify role's default must-have list: the real service's tenant tables."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "verify", "defaults", "main.yml")
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["verify_rls_tables"]


def sequence_values(stack):
    return dict(query(stack, "SELECT sequencename::text, last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"))


def test_role_default_tables_pass_and_discovery_adds_the_join_table(module_runner, healthy_stack):
    required = verify_role_tables()
    result = rls(module_runner, healthy_stack, tables=required, discover_tables=True)
    records = by_criterion(result)
    for criterion in ("rls.enabled_forced", "rls.policies", "rls.isolation"):
        assert records[criterion]["status"] == "pass", records[criterion]["summary"]
        assert records[criterion]["evidence"]["discovered_tables"] == ["order_addons"]
    assert result["discovered_tables"] == ["order_addons"]
    assert result["tables"] == required + ["order_addons"]
    assert "on 21 tables" in records["rls.isolation"]["summary"]
    # Without discovery only the required ones are checked.
    plain = rls(module_runner, healthy_stack, tables=required)
    assert plain["tables"] == required and "discovered_tables" not in plain


def test_discovery_does_not_replace_the_required_list(module_runner, healthy_stack):
    healthy_stack.set_fault("policy_dropped", table="teams")
    result = rls(module_runner, healthy_stack, tables=["leads"], discover_tables=True)
    # teams has no policy any more: discovery cannot find it, so the must-have list is what catches it ...
    assert "teams" not in result["tables"] and by_criterion(result)["rls.policies"]["status"] == "pass"
    result = rls(module_runner, healthy_stack, tables=["leads", "teams"], discover_tables=True)
    assert by_criterion(result)["rls.policies"]["status"] == "fail"
    assert "teams" in by_criterion(result)["rls.policies"]["evidence"]["failed"]


def test_a_missing_required_table_says_the_expectation_may_be_stale(module_runner, healthy_stack):
    result = rls(module_runner, healthy_stack, tables=["leads", "export_dead_letter"], tables_variable="verify_rls_tables")
    records = by_criterion(result)
    for criterion in ("rls.enabled_forced", "rls.policies", "rls.isolation"):
        record = records[criterion]
        assert record["status"] == "fail", record
        assert "export_dead_letter" in record["summary"] and "may be stale" in record["summary"], record["summary"]
        assert "verify_rls_tables" in record["summary"]
    assert result["status"] == "fail"


@pytest.mark.parametrize("check_mode", [True, False])
def test_write_probes_consume_no_sequence_value(module_runner, healthy_stack, check_mode):
    """teams and workers have serial ids: the rolled-back probe rows get explicit ids, so nextval() is never called."""
    before = sequence_values(healthy_stack)
    assert {"teams_team_id_seq", "workers_worker_id_seq"} <= set(before)
    tables = ["teams", "workers", "training_assignments", "worker_training_records"]
    args = {"login_host": healthy_stack.db["host"], "login_port": healthy_stack.db["port"],
            "login_user": healthy_stack.db["superuser"], "login_password": healthy_stack.db["superuser_password"],
            "login_db": healthy_stack.db["dbname"], "app_role": healthy_stack.db["app_user"], "tables": tables}
    result = module_runner("rls_policy_check", args, check_mode=check_mode)
    isolation = by_criterion(result)["rls.isolation"]
    assert isolation["status"] == "pass", isolation["summary"]
    for table in tables:
        assert isolation["evidence"]["tables"][table]["observations"]["cross_org_insert"] == "refused by row-level security"
    assert sequence_values(healthy_stack) == before
