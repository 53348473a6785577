"""The release repository the deploy/rollback scenario deploys: its tags, its runtime-file rules, and
what each release's migrations really do on PostgreSQL (no containers needed).

Run: .venv/bin/python -m pytest tests/compose_stack -q
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg2
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_release_repo  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.integration

TAGS = ("v1", "v2", "v3", "v3-rls", "v3-migfail")


@pytest.fixture(scope="module")
def release_repo(tmp_path_factory):
    return make_release_repo.build(str(tmp_path_factory.mktemp("release") / "repo"),
                                   os.path.join(make_release_repo.ROOT, "tests", "reference_service"))


def git(repo, *args):
    return subprocess.run(["git", "-C", repo] + list(args), check=True, capture_output=True, text=True).stdout.strip()


def checkout(repo, tag, dest):
    """The files of one release, as the deploy role's checkout would hold them."""
    subprocess.run(["git", "clone", "-q", repo, str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", tag], check=True)
    return dest


@pytest.fixture()
def database(pg_server):
    """A fresh database on the session's server; its connection facts."""
    name = "rel_%s" % uuid.uuid4().hex[:10]
    admin = psycopg2.connect(host=pg_server["host"], port=pg_server["port"], user=pg_server["user"],
                             password=pg_server["password"], dbname=pg_server["dbname"])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE %s" % name)
    facts = dict(pg_server, dbname=name)
    yield facts
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
    admin.close()


def upgrade(app_dir, db):
    url = "postgresql+psycopg2://%s:%s@%s:%s/%s" % (db["user"], db["password"], db["host"], db["port"], db["dbname"])
    env = dict(os.environ, REFSERVICE_MIGRATION_URL=url)
    return subprocess.run([sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"], cwd=app_dir,
                          env=env, capture_output=True, text=True, check=False, timeout=120)


def query(db, sql):
    conn = psycopg2.connect(host=db["host"], port=db["port"], user=db["user"], password=db["password"], dbname=db["dbname"])
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_tags_heads_and_same_inputs_same_shas(release_repo, tmp_path):
    assert sorted(release_repo["tags"]) == sorted(TAGS)
    heads = release_repo["heads"]
    assert len(heads["v1"]) == 1
    assert heads["v2"] == ["0046_service_notes"] == heads["v3"]
    assert heads["v3-rls"] == ["0047_leads_policy_cleanup"]
    assert heads["v3-migfail"] == ["0047_lead_referral_codes"]
    for tag, sha in release_repo["tags"].items():
        assert git(release_repo["path"], "rev-parse", tag + "^{commit}") == sha
    again = make_release_repo.build(str(tmp_path / "again"), os.path.join(make_release_repo.ROOT, "tests", "reference_service"))
    assert again["tags"] == release_repo["tags"]


def test_runtime_files_are_ignored_and_not_built_into_images(release_repo):
    repo = release_repo["path"]
    for path in (".env", "var/state/faults.json", "logs/api.log", ".release-state.json"):
        assert git(repo, "check-ignore", path) == path
    with open(os.path.join(repo, ".dockerignore"), encoding="utf-8") as handle:
        ignored = handle.read().split()
    assert {".env", "var/", "logs/", ".release-state.json", ".git"} <= set(ignored)


def test_v3_points_the_api_at_a_database_that_does_not_exist(release_repo, tmp_path):
    v2 = checkout(release_repo["path"], "v2", tmp_path / "v2")
    v3 = checkout(release_repo["path"], "v3", tmp_path / "v3")
    diff = subprocess.run(["diff", "-r", "-x", ".git", "-x", "RELEASE", str(v2), str(v3)], capture_output=True, text=True, check=False)
    changed = [line for line in diff.stdout.splitlines() if line.startswith(">")]
    assert changed == ["> " + "      DATABASE_URL: postgresql://${DB_APP_USER:-cws_app}:${DB_APP_PASSWORD}@db:5432/"
                              "${DB_NAME:-cleanwithsnapshot}_reporting"]


def test_v2_migrates_and_isolates_its_new_table(release_repo, database, tmp_path):
    app = checkout(release_repo["path"], "v2", tmp_path / "v2") / "app"
    done = upgrade(app, database)
    assert done.returncode == 0, done.stderr
    assert query(database, "SELECT version_num FROM alembic_version") == [("0046_service_notes",)]
    assert query(database, "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'service_notes'") == [(True, True)]
    assert query(database, "SELECT policyname FROM pg_policies WHERE tablename = 'service_notes'") == [("service_notes_org_isolation",)]


def test_v3_rls_drops_the_leads_policy_and_leaves_the_database_ahead_of_v2(release_repo, database, tmp_path):
    repo = release_repo["path"]
    assert upgrade(checkout(repo, "v2", tmp_path / "v2") / "app", database).returncode == 0
    done = upgrade(checkout(repo, "v3-rls", tmp_path / "v3rls") / "app", database)
    assert done.returncode == 0, done.stderr
    assert query(database, "SELECT policyname FROM pg_policies WHERE tablename = 'leads'") == []
    assert query(database, "SELECT version_num FROM alembic_version") == [("0047_leads_policy_cleanup",)]


def test_v3_migfail_fails_with_its_error_and_the_database_stays_at_v2(release_repo, database, tmp_path):
    repo = release_repo["path"]
    assert upgrade(checkout(repo, "v2", tmp_path / "v2") / "app", database).returncode == 0
    done = upgrade(checkout(repo, "v3-migfail", tmp_path / "bad") / "app", database)
    assert done.returncode != 0
    assert 'column "referral_code" of relation "leads" already exists' in done.stderr
    assert query(database, "SELECT version_num FROM alembic_version") == [("0046_service_notes",)]
