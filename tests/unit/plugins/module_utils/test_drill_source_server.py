"""The backup drill's "same server as the source" test: same DSN, same host and port, same cluster."""
from __future__ import annotations

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.drill import same_server_reason

SOURCE_DSN = "postgresql://owner:s3cret-Pw@db.internal:5432/app"


def login(host, port=5432, **more):
    return dict({"dsn": None, "login_host": host, "login_port": port, "login_user": "postgres",
                 "login_password": "x", "login_db": "postgres", "login_unix_socket": ""}, **more)


@pytest.mark.parametrize("source, target, words", [
    ({"dsn": SOURCE_DSN}, {"dsn": " %s " % SOURCE_DSN}, "same DSN"),
    ({"dsn": SOURCE_DSN}, login("db.internal"), "same host and port, db.internal:5432"),
    ({"dsn": SOURCE_DSN}, login("DB.internal"), "same host and port, db.internal:5432"),
    ({"dsn": "postgresql://u:p@127.0.0.1:55432/app"}, login("localhost", 55432), "same host and port, localhost:55432"),
    ({"dsn": "host=/run/postgresql port=5432 dbname=app"}, login(None, login_unix_socket="/run/postgresql"),
     "same host and port, /run/postgresql:5432"),
])
def test_the_sources_server_is_named(source, target, words):
    reason = same_server_reason(source, target)
    assert reason and words in reason and "s3cret" not in reason


@pytest.mark.parametrize("source, target", [
    ({"dsn": SOURCE_DSN}, {"dsn": "postgresql://owner:s3cret-Pw@drill.internal:5432/postgres"}),
    ({"dsn": SOURCE_DSN}, login("db.internal", 5433)),
    ({"dsn": "postgresql://u:p@127.0.0.1:55432/app"}, login("10.0.0.7", 55432)),
])
def test_another_server_is_not_the_source(source, target):
    assert same_server_reason(source, target) is None


def test_one_cluster_under_two_names_is_the_same_server():
    reason = same_server_reason({"dsn": SOURCE_DSN}, login("10.0.0.5"), {"system_identifier": "7301"},
                                {"system_identifier": "7301"})
    assert reason == "same PostgreSQL cluster, system identifier 7301"
    assert same_server_reason({"dsn": SOURCE_DSN}, login("10.0.0.5"), {"system_identifier": "7301"},
                              {"system_identifier": "9999"}) is None
    assert same_server_reason({"dsn": SOURCE_DSN}, login("10.0.0.5"), {}, {"system_identifier": None}) is None
