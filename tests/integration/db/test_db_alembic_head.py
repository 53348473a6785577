"""alembic_head against a real PostgreSQL: every outcome from a fresh database of its own, version
tables written both by hand and by real Alembic upgrades."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from dbchecks_schema import build_tenant_schema

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "unit" / "fixtures" / "migrations"
HEAD = "merge_20260301_01"


@pytest.fixture(scope="module")
def db(tenant_db):
    build_tenant_schema(tenant_db, head_revision=HEAD)
    tenant_db.execute("CREATE SCHEMA ops")
    tenant_db.execute("CREATE TABLE ops.av (version_num varchar(32) PRIMARY KEY)")
    tenant_db.execute("CREATE TABLE public.alembic_version_empty (version_num varchar(32) PRIMARY KEY)")
    tenant_db.execute("GRANT USAGE ON SCHEMA ops TO %s" % tenant_db.app)
    tenant_db.execute("GRANT SELECT ON ALL TABLES IN SCHEMA ops TO %s" % tenant_db.app)
    tenant_db.execute("GRANT SELECT ON public.alembic_version_empty TO %s" % tenant_db.app)
    return tenant_db


@pytest.fixture()
def version(db):
    """Set the version table's rows for one test; the healthy head is restored afterwards."""
    def set_rows(*revisions, table="ops.av"):
        db.execute("DELETE FROM %s" % table)
        for revision in revisions:
            db.execute("INSERT INTO %s (version_num) VALUES (%%s)" % table, (revision,))
    yield set_rows
    db.execute("DELETE FROM ops.av")


@pytest.fixture()
def migrations(tmp_path):
    target = tmp_path / "alembic"
    shutil.copytree(FIXTURES / "merged", target)
    return target


def by_criterion(result):
    return {record["criterion"]: record for record in result["records"]}


def run(module_runner, db, who="app", check_mode=False, **args):
    result = module_runner("alembic_head", db.module_args(who, **args), check_mode=check_mode)
    assert "records" in result, result
    assert db.owner_password not in result.raw and db.app_password not in result.raw
    return result


def test_at_head_passes_in_normal_and_check_mode(module_runner, db, migrations):
    for check_mode in (False, True):
        result = run(module_runner, db, migrations_dir=str(migrations), check_mode=check_mode)
        records = by_criterion(result)
        assert result["status"] == "pass", result["records"]
        assert records["migrations.single_head"]["evidence"]["heads"] == [HEAD]
        assert records["migrations.single_head"]["evidence"]["merge_count"] == 1
        assert records["migrations.at_head"]["evidence"]["current"] == [HEAD]
        assert records["migrations.at_head"]["evidence"]["behind"] == 0
        assert result["changed"] is False and result["heads"] == [HEAD] and result["current"] == [HEAD]


def test_second_head_fails_naming_both(module_runner, db, migrations):
    (migrations / "versions" / "0007_hotfix.py").write_text(
        'revision = "0007_hotfix"\ndown_revision = "0005_after_merge"\n')
    result = run(module_runner, db, migrations_dir=str(migrations))
    single = by_criterion(result)["migrations.single_head"]
    assert single["status"] == "fail"
    assert "2 heads" in single["summary"] and "0007_hotfix" in single["summary"] and HEAD in single["summary"]
    assert by_criterion(result)["migrations.at_head"]["status"] == "fail"
    assert result["status"] == "fail"
    # allowed when the operator says so
    relaxed = run(module_runner, db, migrations_dir=str(migrations), max_heads=2)
    assert by_criterion(relaxed)["migrations.single_head"]["status"] == "pass"


def test_db_behind_counts_pending_steps(module_runner, db, migrations, version):
    version("0003_a2")
    result = run(module_runner, db, migrations_dir=str(migrations), version_table="av", version_table_schema="ops")
    at_head = by_criterion(result)["migrations.at_head"]
    assert at_head["status"] == "fail"
    assert at_head["evidence"]["behind"] == 4
    assert at_head["evidence"]["pending"] == sorted(["0002_b", "merge_20260224_01", "0005_after_merge", HEAD])
    assert "4 revision(s) behind" in at_head["summary"] and "0003_a2" in at_head["summary"]


def test_db_on_unknown_revision(module_runner, db, migrations, version):
    version("ffffdeadbeef")
    result = run(module_runner, db, migrations_dir=str(migrations), version_table="av", version_table_schema="ops")
    at_head = by_criterion(result)["migrations.at_head"]
    assert at_head["status"] == "fail"
    assert at_head["evidence"]["unknown"] == ["ffffdeadbeef"]
    assert "ffffdeadbeef" in at_head["summary"] and "unknown revision" in at_head["summary"]


def test_db_ahead_of_older_code(module_runner, db, migrations, version):
    version(HEAD)
    # older release code: its scripts stop at the first merge, so the DB's head is unknown to it
    (migrations / "versions" / "0005_after.py").unlink()
    (migrations / "versions" / "0006_merge_again.py").unlink()
    older = run(module_runner, db, migrations_dir=str(migrations), version_table="av", version_table_schema="ops")
    assert by_criterion(older)["migrations.at_head"]["evidence"]["unknown"] == [HEAD]
    assert by_criterion(older)["migrations.at_head"]["status"] == "fail"


def test_db_ahead_of_expected_head(module_runner, db, migrations, version):
    version(HEAD)
    result = run(module_runner, db, migrations_dir=str(migrations), expected_heads=["merge_20260224_01"],
                 version_table="av", version_table_schema="ops")
    records = by_criterion(result)
    assert records["migrations.single_head"]["status"] == "fail"
    assert "differ from expected_heads" in records["migrations.single_head"]["summary"]
    assert records["migrations.at_head"]["status"] == "fail"
    assert records["migrations.at_head"]["evidence"]["ahead"] == [HEAD]
    assert records["migrations.at_head"]["evidence"]["ahead_by"] == 2
    assert "ahead" in records["migrations.at_head"]["summary"]


def test_version_table_missing_is_a_fail(module_runner, db, migrations):
    result = run(module_runner, db, migrations_dir=str(migrations), version_table="alembic_version_gone")
    at_head = by_criterion(result)["migrations.at_head"]
    assert at_head["status"] == "fail"
    assert "public.alembic_version_gone does not exist" in at_head["summary"]
    assert result["status"] == "fail"


def test_version_table_empty_is_a_fail(module_runner, db, migrations):
    result = run(module_runner, db, migrations_dir=str(migrations), version_table="alembic_version_empty")
    at_head = by_criterion(result)["migrations.at_head"]
    assert at_head["status"] == "fail" and "is empty" in at_head["summary"]


def test_unreadable_version_table_is_an_error(module_runner, db):
    db.execute("CREATE TABLE ops.av_private (version_num varchar(32) PRIMARY KEY)")
    db.execute("REVOKE ALL ON ops.av_private FROM %s" % db.app)
    result = run(module_runner, db, expected_heads=[HEAD], version_table="av_private", version_table_schema="ops")
    at_head = by_criterion(result)["migrations.at_head"]
    assert at_head["status"] == "error" and "permission denied" in at_head["summary"]
    assert "SELECT" not in at_head["summary"]  # the statement is never echoed


def test_expected_heads_only(module_runner, db):
    good = run(module_runner, db, expected_heads=[HEAD])
    assert good["status"] == "pass"
    assert by_criterion(good)["migrations.single_head"]["evidence"]["source"] == "expected_heads"
    bad = run(module_runner, db, expected_heads=["0001_init"])
    assert by_criterion(bad)["migrations.at_head"]["status"] == "fail"
    assert "0001_init" in by_criterion(bad)["migrations.at_head"]["summary"]


def test_scripts_and_expected_heads_cross_checked(module_runner, db, migrations):
    result = run(module_runner, db, migrations_dir=str(migrations), expected_heads=[HEAD])
    assert result["status"] == "pass"
    assert by_criterion(result)["migrations.single_head"]["evidence"]["source"] == "scripts+expected_heads"


def test_readyz_detail_compared_with_the_database(module_runner, db, migrations):
    agree = {"message": "ok", "migrations_current": True, "current_version": HEAD, "expected_head": HEAD,
             "expected_heads": [HEAD], "migrations_check": "ok"}
    result = run(module_runner, db, migrations_dir=str(migrations), readyz_detail=agree)
    assert by_criterion(result)["migrations.readyz"]["status"] == "pass"
    other_db = dict(agree, current_version="0001_init")
    result = run(module_runner, db, migrations_dir=str(migrations), readyz_detail=other_db)
    readyz = by_criterion(result)["migrations.readyz"]
    assert readyz["status"] == "fail" and "0001_init" in readyz["summary"]
    stale_code = dict(agree, expected_head="0005_after_merge", expected_heads=["0005_after_merge"])
    readyz = by_criterion(run(module_runner, db, migrations_dir=str(migrations), readyz_detail=stale_code))["migrations.readyz"]
    assert readyz["status"] == "fail" and "0005_after_merge" in readyz["summary"]
    lying = dict(agree, migrations_current=False)
    readyz = by_criterion(run(module_runner, db, migrations_dir=str(migrations), readyz_detail=lying))["migrations.readyz"]
    assert readyz["status"] == "fail" and "migrations_current=False" in readyz["summary"]
    empty = by_criterion(run(module_runner, db, migrations_dir=str(migrations), readyz_detail={"x": 1}))["migrations.readyz"]
    assert empty["status"] == "error"


def test_connection_error_is_error_and_never_leaks(module_runner, db, migrations, canary):
    args = db.module_args("app", migrations_dir=str(migrations))
    args["login_password"] = canary
    result = module_runner("alembic_head", args)
    at_head = by_criterion(result)["migrations.at_head"]
    assert at_head["status"] == "error" and "password authentication failed" in at_head["summary"]
    assert by_criterion(result)["migrations.single_head"]["status"] == "pass"
    assert result["status"] == "error"
    assert canary not in result.raw
    dsn = "postgresql://%s:%s@%s:1/%s" % (db.app, canary, db.host, db.dbname)
    result = module_runner("alembic_head", {"dsn": dsn, "migrations_dir": str(migrations), "connect_timeout": 2})
    assert by_criterion(result)["migrations.at_head"]["status"] == "error"
    assert canary not in result.raw


def test_dsn_of_the_service_form(module_runner, db, migrations, canary):
    result = module_runner("alembic_head", {"dsn": db.dsn("app"), "migrations_dir": str(migrations)})
    assert result["status"] == "pass", result["records"]
    assert canary not in result.raw


@pytest.mark.parametrize("args, words", [
    ({"dsn": "postgresql://u:p@h/d", "login_host": "h", "expected_heads": ["a"]}, ["mutually exclusive", "dsn", "login_host"]),
    ({"expected_heads": ["a"], "max_heads": 0}, ["max_heads"]),
    ({"migrations_dir": "/nonexistent/alembic"}, ["migrations_dir"]),
    ({}, ["migrations_dir", "expected_heads"]),
    ({"expected_heads": ["a", " "]}, ["expected_heads"]),
    ({"expected_heads": ["a"], "version_table": ""}, ["version_table"]),
    ({"expected_heads": ["a"], "dsn": "mysql://u:secretpw@h/d"}, ["dsn"]),
])
def test_bad_input_fails_naming_the_option(module_runner, args, words):
    result = module_runner("alembic_head", args)
    assert result.get("failed") is True, result
    for word in words:
        assert word in result["msg"]
    assert "Traceback" not in result.raw
    assert "secretpw" not in result.raw


def test_unreadable_script_is_an_error_record(module_runner, db, migrations):
    (migrations / "versions" / "0008_broken.py").write_text('revision = compute()\n')
    result = run(module_runner, db, migrations_dir=str(migrations))
    single = by_criterion(result)["migrations.single_head"]
    assert single["status"] == "error" and "0008_broken.py" in single["summary"]


ENV_PY = textwrap.dedent('''
    from alembic import context
    from sqlalchemy import create_engine, pool

    config = context.config
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, version_table=config.get_main_option("version_table"),
                          version_table_schema=config.get_main_option("version_table_schema"))
        with context.begin_transaction():
            context.run_migrations()
''')


def alembic_upgrade(db, tmp_path, fixture, version_table, target="heads"):
    """Run real Alembic (test-only) on a copy of a fixture directory, as the owner role."""
    from alembic import command  # pylint: disable=import-outside-toplevel
    from alembic.config import Config  # pylint: disable=import-outside-toplevel
    location = tmp_path / fixture
    if not location.exists():
        shutil.copytree(FIXTURES / fixture, location)
        (location / "env.py").write_text(ENV_PY)
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", "postgresql+psycopg2://%s:%s@%s:%d/%s" % (
        db.owner, db.owner_password, db.host, db.port, db.dbname))
    config.set_main_option("version_table", version_table)
    config.set_main_option("version_table_schema", "public")
    command.upgrade(config, target)
    db.execute("GRANT SELECT ON public.%s TO %s" % (version_table, db.app))
    return location


@pytest.mark.parametrize("fixture, heads", [("merged", 1), ("labels_depends", 3), ("three_way", 2), ("two_heads", 2)])
def test_version_tables_written_by_real_alembic(module_runner, db, tmp_path, fixture, heads):
    table = "av_%s" % fixture
    location = alembic_upgrade(db, tmp_path, fixture, table)
    result = run(module_runner, db, migrations_dir=str(location), version_table=table, max_heads=heads)
    assert result["status"] == "pass", result["records"]
    if heads > 1:
        strict = run(module_runner, db, migrations_dir=str(location), version_table=table)
        assert by_criterion(strict)["migrations.single_head"]["status"] == "fail"


def test_real_alembic_partial_upgrade_is_behind(module_runner, db, tmp_path):
    location = alembic_upgrade(db, tmp_path, "merged", "av_partial", target="0002_b")
    result = run(module_runner, db, migrations_dir=str(location), version_table="av_partial")
    at_head = by_criterion(result)["migrations.at_head"]
    assert at_head["status"] == "fail"
    assert at_head["evidence"]["current"] == ["0002_b"]
    assert at_head["evidence"]["behind"] == 5
    alembic_upgrade(db, tmp_path, "merged", "av_partial")
    assert run(module_runner, db, migrations_dir=str(location), version_table="av_partial")["status"] == "pass"
