"""rls_policy_check against a real PostgreSQL: the healthy tenant schema passes, each fault fails
naming its table, the proof leaves no row behind, bad input fails naming the option, and no password
ever appears in the output."""
from __future__ import annotations

import contextlib

import pytest

from dbchecks_schema import ALL_TABLES, JOIN_TABLES, ORG_1, ORG_2, PROBE_VALUES, RLS_TABLES, build_tenant_schema

pytestmark = pytest.mark.integration

REQUIRED = RLS_TABLES + JOIN_TABLES
ODD = 'Odd "Name"%s'


@pytest.fixture(scope="module")
def db(tenant_db):
    build_tenant_schema(tenant_db)
    return tenant_db


@pytest.fixture(autouse=True)
def no_probe_row_remains(db):
    """Every test: the row counts of every table, taken as the superuser, are the same after it."""
    before = db.row_counts(ALL_TABLES)
    yield
    assert db.row_counts(ALL_TABLES) == before


@contextlib.contextmanager
def fault(db, do, undo):
    for statement in do:
        db.execute(statement)
    try:
        yield
    finally:
        for statement in undo:
            db.execute(statement)


def by_criterion(result):
    return {record["criterion"]: record for record in result["records"]}


def check(module_runner, db, who="owner", check_mode=False, **extra):
    args = {"tables": REQUIRED, "probe_values": PROBE_VALUES}
    if who != "app":
        args["app_role"] = db.app
    args.update(extra)
    args = dict((key, value) for key, value in args.items() if value is not None)
    result = module_runner("rls_policy_check", db.module_args(who, **args), check_mode=check_mode)
    assert "records" in result, result
    for secret in (db.owner_password, db.app_password, db.superuser_password):
        assert secret not in result.raw
    return result


def test_healthy_schema_passes_as_owner_switching_to_the_app_role(module_runner, db):
    result = check(module_runner, db)
    records = by_criterion(result)
    assert result["status"] == "pass", [r["summary"] for r in result["records"]]
    assert set(records) == {"rls.enabled_forced", "rls.policies", "rls.isolation", "rls.coverage"}
    isolation = records["rls.isolation"]["evidence"]
    assert isolation["proof_ran_as"] == db.app and isolation["connected_as"] == db.owner
    assert isolation["rolled_back"] is True
    for table in RLS_TABLES:
        observed = isolation["tables"][table]["observations"]
        assert isolation["tables"][table]["status"] == "pass", (table, isolation["tables"][table])
        assert observed["own_org_insert"] == "ok"
        assert observed["probe_row_visible_as_org_a"] is True
        assert observed["probe_row_visible_as_org_b"] is False and observed["probe_row_visible_as_no_org"] is False
        assert observed["cross_org_insert"] == "refused by row-level security"
        assert observed["no_org_insert"] == "refused by row-level security"
        assert observed["move_to_other_org"] == "refused by row-level security"
        assert observed["cross_org_update_rows"] == 0
    # leads.org_id references organizations, bookings needs a lead: parent rows generated in the same org
    assert isolation["tables"]["leads"]["observations"]["generated_parent_rows"] == ["organizations"]
    assert isolation["tables"]["bookings"]["observations"]["generated_parent_rows"] == ["organizations", "leads"]
    # join tables: policy checked, write probes skipped with a reason
    assert sorted(isolation["skipped"]) == sorted(JOIN_TABLES)
    assert "probe_values" in isolation["tables"]["order_addons"]["skip_reason"]
    assert isolation["tables"]["order_addons"]["observations"]["rows_visible_without_org"] is False
    policies = records["rls.policies"]["evidence"]
    assert policies["extra_policies"] == ["client_users_org_rls"]
    assert "client_users_org_rls" in records["rls.policies"]["summary"]
    assert result["tables"] == REQUIRED and result["role"] == db.app


def test_connected_as_the_app_role_itself(module_runner, db):
    result = check(module_runner, db, who="app")
    assert result["status"] == "pass", [r["summary"] for r in result["records"]]
    evidence = by_criterion(result)["rls.isolation"]["evidence"]
    assert evidence["proof_ran_as"] == db.app == evidence["connected_as"]


def test_join_tables_proven_with_probe_values(module_runner, db):
    probe_values = dict(PROBE_VALUES, booking_photos={"path": "probe.jpg"}, order_addons={})
    result = check(module_runner, db, probe_values=probe_values)
    isolation = by_criterion(result)["rls.isolation"]
    assert isolation["status"] == "pass", isolation["summary"]
    assert isolation["evidence"]["skipped"] == []
    for table in JOIN_TABLES:
        observed = isolation["evidence"]["tables"][table]["observations"]
        assert observed["generated_parent_rows"] == ["organizations", "leads", "bookings"]
        assert observed["probe_row_visible_as_org_b"] is False
        assert observed["cross_org_insert"] == "refused by row-level security"


def test_check_mode_runs_the_proof_and_leaves_nothing(module_runner, db):
    result = check(module_runner, db, check_mode=True)
    assert result["status"] == "pass" and result["changed"] is False
    assert by_criterion(result)["rls.isolation"]["evidence"]["tables"]["leads"]["observations"]["own_org_insert"] == "ok"


def test_read_only_proof_with_real_orgs(module_runner, db):
    result = check(module_runner, db, write_probes=False, org_a=ORG_1, org_b=ORG_2)
    isolation = by_criterion(result)["rls.isolation"]
    assert isolation["status"] == "pass", isolation["summary"]
    assert "read-only" in isolation["summary"]
    leads = isolation["evidence"]["tables"]["leads"]["observations"]
    assert leads == {"other_org_rows_visible_as_org_a": False, "other_org_rows_visible_as_org_b": False,
                     "rows_visible_without_org": False, "write_probes": "disabled"}


def test_existing_org_row_is_reused(module_runner, db):
    result = check(module_runner, db, org_a=ORG_1)
    leads = by_criterion(result)["rls.isolation"]["evidence"]["tables"]["leads"]["observations"]
    assert leads["generated_parent_rows"] == ["organizations (existing row)"]
    assert result["status"] == "pass"


def test_unsatisfiable_generated_value_is_an_error_with_a_hint(module_runner, db):
    result = check(module_runner, db, probe_values={})
    isolation = by_criterion(result)["rls.isolation"]
    assert isolation["status"] == "error"
    assert isolation["evidence"]["errors"] == ["invoices"]
    assert "invoices" in isolation["summary"] and "probe_values" in isolation["summary"]
    # the refusal probes still ran: row-level security is checked before the CHECK constraint
    observed = isolation["evidence"]["tables"]["invoices"]["observations"]
    assert observed["cross_org_insert"] == "refused by row-level security"
    assert result["status"] == "error"


def test_read_only_database_asks_for_write_probes_off(module_runner, db):
    with fault(db, ["ALTER ROLE %s SET default_transaction_read_only = on" % db.app],
               ["ALTER ROLE %s RESET default_transaction_read_only" % db.app]):
        result = check(module_runner, db, who="app", tables=["leads"], probe_values={})
        isolation = by_criterion(result)["rls.isolation"]
        assert isolation["status"] == "error" and "write_probes false" in isolation["summary"]
        assert check(module_runner, db, who="app", tables=["leads"], probe_values={}, write_probes=False)["status"] == "pass"


def test_behavioural_off_is_skipped(module_runner, db):
    isolation = by_criterion(check(module_runner, db, behavioural=False))["rls.isolation"]
    assert isolation["status"] == "skipped" and isolation["skip_reason"] == "not_requested"


def test_coverage_lists_org_tables_without_rls(module_runner, db):
    coverage = by_criterion(check(module_runner, db))["rls.coverage"]
    assert coverage["status"] == "fail" and coverage["blocking"] is False
    assert coverage["evidence"]["without_rls"] == ["admin_audit_logs", "organizations", "outbox_events"]
    assert coverage["evidence"]["org_tables"] == 7
    assert "3 of 7 tables" in coverage["summary"]
    blocking = check(module_runner, db, coverage_blocking=True)
    assert by_criterion(blocking)["rls.coverage"]["blocking"] is True and blocking["status"] == "fail"
    assert "rls.coverage" not in by_criterion(check(module_runner, db, coverage=False))


def test_table_pattern_selects_tables(module_runner, db):
    result = check(module_runner, db, tables=None, table_pattern="lead.*|bookings")
    assert result["tables"] == ["bookings", "leads"]
    assert result["status"] == "pass"
    everything = check(module_runner, db, tables=None, table_pattern=".*")
    assert "organizations" in everything["tables"] and "alembic_version" not in everything["tables"]
    assert by_criterion(everything)["rls.enabled_forced"]["status"] == "fail"


def test_missing_table_fails(module_runner, db):
    result = check(module_runner, db, tables=["leads", "no_such_table"])
    for criterion in ("rls.enabled_forced", "rls.policies", "rls.isolation"):
        record = by_criterion(result)[criterion]
        assert record["status"] == "fail" and "no_such_table" in record["summary"], record


FAULTS = {
    "rls_disabled": (["ALTER TABLE leads DISABLE ROW LEVEL SECURITY"], ["ALTER TABLE leads ENABLE ROW LEVEL SECURITY"],
                     {"rls.enabled_forced": "disabled", "rls.isolation": "visible"}),
    "rls_not_forced": (["ALTER TABLE leads NO FORCE ROW LEVEL SECURITY"], ["ALTER TABLE leads FORCE ROW LEVEL SECURITY"],
                       {"rls.enabled_forced": "not forced"}),
    "policy_dropped": (["DROP POLICY leads_org_isolation ON leads"],
                       ["CREATE POLICY leads_org_isolation ON leads USING (org_id = NULLIF(current_setting('app.current_org_id', true), "
                        "'')::uuid) WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)"],
                       {"rls.policies": "leads_org_isolation is missing", "rls.isolation": "cannot insert its own row"}),
    "policy_other_setting": (["DROP POLICY leads_org_isolation ON leads",
                              "CREATE POLICY leads_org_isolation ON leads USING (org_id = NULLIF(current_setting('app.org_id', true), "
                              "'')::uuid) WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)"],
                             ["DROP POLICY leads_org_isolation ON leads",
                              "CREATE POLICY leads_org_isolation ON leads USING (org_id = NULLIF(current_setting('app.current_org_id', "
                              "true), '')::uuid) WITH CHECK (org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)"],
                             {"rls.policies": "reads app.org_id, not app.current_org_id", "rls.isolation": "leads"}),
    "policy_leaking": (["CREATE POLICY leads_debug ON leads USING (true)"], ["DROP POLICY leads_debug ON leads"],
                       {"rls.policies": "leads_debug", "rls.isolation": "visible with app.current_org_id set to org_b"}),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_fails_naming_the_table(module_runner, db, name):
    do, undo, expected = FAULTS[name]
    with fault(db, do, undo):
        result = check(module_runner, db)
    records = by_criterion(result)
    assert result["status"] == "fail"
    for criterion, words in expected.items():
        assert records[criterion]["status"] == "fail", (criterion, records[criterion]["summary"])
        assert "leads" in records[criterion]["summary"] and words in records[criterion]["summary"], records[criterion]["summary"]
    for criterion in ("rls.enabled_forced", "rls.policies", "rls.isolation"):
        if records[criterion]["status"] == "fail":
            assert records[criterion]["evidence"]["failed"] == ["leads"], (criterion, records[criterion]["summary"])
    # the healthy state is back
    assert check(module_runner, db)["status"] == "pass"


def test_owner_without_force_bypasses_and_the_proof_shows_it(module_runner, db):
    with fault(db, ["ALTER TABLE leads NO FORCE ROW LEVEL SECURITY"], ["ALTER TABLE leads FORCE ROW LEVEL SECURITY"]):
        result = check(module_runner, db, app_role=db.owner)
    isolation = by_criterion(result)["rls.isolation"]
    assert isolation["status"] == "fail" and isolation["evidence"]["failed"] == ["leads"]
    assert "visible with app.current_org_id set to org_b" in isolation["summary"]
    assert by_criterion(result)["rls.enabled_forced"]["evidence"]["tables"]["leads"]["app_role_has_owner_privileges"] is True


def test_app_role_with_bypassrls_fails_isolation(module_runner, db):
    with fault(db, ["ALTER ROLE %s BYPASSRLS" % db.app], ["ALTER ROLE %s NOBYPASSRLS" % db.app]):
        for who in ("owner", "app"):
            result = check(module_runner, db, who=who)
            isolation = by_criterion(result)["rls.isolation"]
            assert isolation["status"] == "fail"
            assert "has BYPASSRLS" in isolation["summary"] and db.app in isolation["summary"]
            assert by_criterion(result)["rls.enabled_forced"]["status"] == "pass"


@pytest.mark.parametrize("app_role", [None, "postgres"])
def test_superuser_as_the_app_role_fails_isolation(module_runner, db, app_role):
    result = check(module_runner, db, who="super", app_role=app_role)
    isolation = by_criterion(result)["rls.isolation"]
    assert isolation["status"] == "fail" and "is a superuser" in isolation["summary"]
    assert result["status"] == "fail" and result["role"] == "postgres"


def test_odd_identifiers_are_quoted(module_runner, db):
    quoted = '"%s"' % ODD.replace('"', '""')
    expr = "org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid"
    do = ["CREATE TABLE public.%s (id serial PRIMARY KEY, org_id uuid NOT NULL, \"we%%ird col\" text NOT NULL)" % quoted,
          "ALTER TABLE public.%s ENABLE ROW LEVEL SECURITY" % quoted, "ALTER TABLE public.%s FORCE ROW LEVEL SECURITY" % quoted,
          "CREATE POLICY \"%s_org_isolation\" ON public.%s USING (%s) WITH CHECK (%s)" % (ODD.replace('"', '""'), quoted, expr, expr),
          "GRANT ALL ON public.%s TO %s" % (quoted, db.app), "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO %s" % db.app]
    with fault(db, do, ["DROP TABLE public.%s" % quoted]):
        result = check(module_runner, db, tables=["leads", ODD])
    assert result["status"] == "pass", [r["summary"] for r in result["records"]]
    assert by_criterion(result)["rls.isolation"]["evidence"]["tables"][ODD]["observations"]["own_org_insert"] == "ok"


def test_partitioned_table_probe_row_is_told_apart(module_runner, db):
    """Partitions repeat ctids: org_b's seed row in one partition and org_a's probe row in another can
    both sit at (0,1); the probe row is located by tableoid and ctid."""
    expr = "org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid"
    do = ["CREATE TABLE visits (org_id uuid NOT NULL, region text NOT NULL, note text NOT NULL) PARTITION BY LIST (region)",
          "CREATE TABLE visits_eu PARTITION OF visits FOR VALUES IN ('eu')",
          "CREATE TABLE visits_other PARTITION OF visits DEFAULT",
          "ALTER TABLE visits ENABLE ROW LEVEL SECURITY", "ALTER TABLE visits FORCE ROW LEVEL SECURITY",
          "CREATE POLICY visits_org_isolation ON visits USING (%s) WITH CHECK (%s)" % (expr, expr),
          "GRANT ALL ON visits TO %s" % db.app,
          "INSERT INTO visits VALUES ('%s', 'eu', 'seed')" % ORG_2]
    with fault(db, do, ["DROP TABLE visits"]):
        result = check(module_runner, db, tables=["visits"], probe_values={}, org_b=ORG_2)
        assert db.execute("SELECT count(*) FROM visits")[0][0] == 1
    isolation = by_criterion(result)["rls.isolation"]
    assert isolation["status"] == "pass", isolation["summary"]
    observed = isolation["evidence"]["tables"]["visits"]["observations"]
    assert observed["probe_row_visible_as_org_a"] is True and observed["probe_row_visible_as_org_b"] is False
    assert by_criterion(result)["rls.enabled_forced"]["evidence"]["tables"]["visits"]["ok"] is True


def test_canary_password_never_in_output(module_runner, db, canary):
    result = module_runner("rls_policy_check", {"dsn": db.dsn("app"), "tables": REQUIRED, "probe_values": PROBE_VALUES})
    assert result["status"] == "pass"
    assert canary not in result.raw
    bad = db.module_args("app", tables=["leads"])
    bad["login_password"] = canary + "-wrong"
    failed = module_runner("rls_policy_check", bad)
    assert failed["status"] == "error"
    assert all(record["status"] == "error" for record in failed["records"])
    assert "password authentication failed" in failed["records"][0]["summary"]
    assert canary not in failed.raw


@pytest.mark.parametrize("extra, words", [
    ({"tables": ["public.leads"]}, ["tables", "dot"]),
    ({"tables": [""]}, ["tables", "empty"]),
    ({"tables": [], "table_pattern": None}, ["tables"]),
    ({"tables": None, "table_pattern": "(unclosed"}, ["table_pattern", "regular expression"]),
    ({"app_role": "no_such_role_x"}, ["app_role", "no_such_role_x", "does not exist"]),
    ({"org_a": "not-a-uuid"}, ["org_a", "UUID"]),
    ({"org_a": ORG_1, "org_b": ORG_1}, ["org_a", "org_b"]),
    ({"policy_name_pattern": "{tbl}_org_isolation"}, ["policy_name_pattern", "{tbl}"]),
    ({"setting": "no_dot_setting"}, ["setting"]),
    ({"org_column": "x" * 70}, ["org_column"]),
    ({"probe_values": {"no_such_tbl": {"name": "x"}}}, ["probe_values", "no_such_tbl"]),
    ({"probe_values": {"leads": {"no_such_column": 1}}}, ["probe_values", "leads", "no_such_column"]),
    ({"probe_values": {"leads": "x"}}, ["probe_values", "leads"]),
    ({"statement_timeout": 0}, ["statement_timeout"]),
    ({"dsn": "postgresql://u:p@h/d"}, ["mutually exclusive", "dsn", "login_host"]),
])
def test_bad_input_fails_naming_the_option(module_runner, db, extra, words):
    args = db.module_args("owner", tables=["leads"], app_role=db.app)
    args.update(extra)
    args = dict((key, value) for key, value in args.items() if value is not None)
    result = module_runner("rls_policy_check", args)
    assert result.get("failed") is True, result
    for word in words:
        assert word in result["msg"], result["msg"]
    assert "Traceback" not in result.raw
    assert db.owner_password not in result.raw


def test_app_role_the_connection_cannot_become(module_runner, db):
    db.execute("CREATE ROLE %s_other NOLOGIN" % db.dbname)
    db.extra_roles.append(db.dbname + "_other")
    result = module_runner("rls_policy_check", db.module_args("app", tables=["leads"], app_role=db.dbname + "_other"))
    assert result.get("failed") is True
    assert "app_role" in result["msg"] and "cannot SET ROLE" in result["msg"]
