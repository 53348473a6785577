from __future__ import annotations

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import postgres as pg

CANARY = "canary-pw-7781"


def base_params(**overrides):
    params = dict((name, spec.get("default")) for name, spec in pg.postgres_common_argument_spec().items())
    params.update(overrides)
    return params


@pytest.mark.parametrize("dsn, expected", [
    ("postgresql://app:p%40ss@db.example:6543/cws", {"host": "db.example", "port": 6543, "user": "app", "password": "p@ss", "dbname": "cws"}),
    ("postgresql+psycopg://app:x@127.0.0.1/cws?sslmode=require", {"host": "127.0.0.1", "user": "app", "password": "x", "dbname": "cws", "sslmode": "require"}),
    ("postgres://u@h/d", {"host": "h", "user": "u", "dbname": "d"}),
    ("host=h port=5 user=u dbname=d", {"host": "h", "port": "5", "user": "u", "dbname": "d"}),
])
def test_parse_dsn(dsn, expected):
    assert pg.parse_dsn(dsn) == expected


@pytest.mark.parametrize("dsn", ["mysql://u:%s@h/d" % CANARY, "just-a-word", "postgresql://u:%s@h:99999999/d" % CANARY])
def test_parse_dsn_rejects_without_leaking(dsn):
    with pytest.raises(ValueError) as err:
        pg.parse_dsn(dsn)
    assert CANARY not in str(err.value)


def test_connection_kwargs_from_login_options():
    kwargs = pg.connection_kwargs(base_params(login_host="h", login_user="u", login_password="p", login_db="d", ca_cert="/ca.pem"))
    assert kwargs["host"] == "h" and kwargs["user"] == "u" and kwargs["password"] == "p" and kwargs["dbname"] == "d"
    assert kwargs["sslrootcert"] == "/ca.pem" and kwargs["sslmode"] == "prefer" and kwargs["connect_timeout"] == 10


def test_database_override_and_dsn_secrets():
    params = base_params(dsn="postgresql+psycopg://app:%s@h/cws" % CANARY)
    assert pg.connection_kwargs(params, database="other")["dbname"] == "other"
    assert CANARY in pg.secrets_of(params)
    assert CANARY not in pg.describe_target(params)


@pytest.mark.integration
def test_connect_error_never_contains_the_password(pg_server):
    params = base_params(login_host=pg_server["host"], login_port=pg_server["port"], login_user="postgres", login_password=CANARY)
    with pytest.raises(pg.PostgresConnectionError) as err:
        pg.connect(params)
    assert "password authentication failed" in str(err.value)
    assert CANARY not in str(err.value)


@pytest.mark.integration
def test_read_only_connection_refuses_writes(pg_server):
    import psycopg2
    params = base_params(dsn=pg_server["dsn"])
    conn = pg.connect(params, read_only=True)
    try:
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
                cur.execute("CREATE TABLE should_not_exist (id int)")
    finally:
        conn.close()
