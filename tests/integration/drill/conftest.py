"""Fixtures of the backup restore drill tests (helpers in drill_dbhelpers.py)."""
from __future__ import annotations

import os
import secrets

import pytest
from psycopg2 import sql

from drill_dbhelpers import connect, drop_database, list_databases, seed


@pytest.fixture(scope="session")
def drill_env(pg_server):
    """A seeded source database and the roles of the drill; removed at the end of the session."""
    token = secrets.token_hex(4)
    env = {
        "server": pg_server,
        "token": token,
        "source_db": "drill_src_%s" % token,
        "app_role": "drill_app_%s" % token,
        "admin_role": "drill_admin_%s" % token,
        "admin_password": "canary-admin-%s" % secrets.token_hex(8),
        "reader_role": "drill_reader_%s" % token,
        "reader_password": "canary-reader-%s" % secrets.token_hex(8),
        "prefix": "cws_drill_t%s" % token,
    }
    admin = connect(pg_server)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {0} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD %s").format(sql.Identifier(env["app_role"])),
                    ("app-" + secrets.token_hex(8),))
        cur.execute(sql.SQL("CREATE ROLE {0} LOGIN SUPERUSER PASSWORD %s").format(sql.Identifier(env["admin_role"])),
                    (env["admin_password"],))
        cur.execute(sql.SQL("CREATE ROLE {0} LOGIN NOSUPERUSER NOBYPASSRLS CREATEDB PASSWORD %s").format(
            sql.Identifier(env["reader_role"])), (env["reader_password"],))
    admin.close()
    try:
        seed(pg_server, env["source_db"], env["app_role"])
        conn = connect(pg_server, env["source_db"])
        with conn.cursor() as cur:
            reader = sql.Identifier(env["reader_role"])
            cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public, reporting TO {0}").format(reader))
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA reporting TO {0}").format(reader))
        conn.close()
        yield env
    finally:
        for name in list_databases(pg_server):
            if name.startswith((env["source_db"], env["prefix"], "drill_copy_%s" % token)):
                drop_database(pg_server, name)
        admin = connect(pg_server)
        with admin.cursor() as cur:
            for role in (env["app_role"], env["admin_role"], env["reader_role"]):
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if cur.fetchone():
                    cur.execute(sql.SQL("DROP OWNED BY {0} CASCADE").format(sql.Identifier(role)))
                    cur.execute(sql.SQL("DROP ROLE {0}").format(sql.Identifier(role)))
        admin.close()


@pytest.fixture()
def drill_args(drill_env):
    """Module arguments of a drill of the seeded source, as the superuser role with the canary password."""
    server = drill_env["server"]
    return {
        "login_host": server["host"],
        "login_port": server["port"],
        "login_user": drill_env["admin_role"],
        "login_password": drill_env["admin_password"],
        "login_db": drill_env["source_db"],
        "app_role": drill_env["app_role"],
        "scratch_prefix": drill_env["prefix"],
        "bindir": server["bindir"] if _has_clients(server["bindir"]) else None,
    }


def _has_clients(bindir):
    return bool(bindir) and all(os.access(os.path.join(bindir, name), os.X_OK) for name in ("pg_dump", "pg_restore"))


@pytest.fixture()
def scratch_databases(drill_env):
    """A callable listing the databases this session's drills could have left behind."""
    def listing():
        return [name for name in list_databases(drill_env["server"]) if name.startswith(drill_env["prefix"])]
    return listing
