"""Fixtures of the database-check tests: a fresh tenant database per test module on the session's
PostgreSQL cluster (tests/conftest.py ``pg_server``), dropped with its roles afterwards."""
from __future__ import annotations

import os
import secrets
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dbchecks_schema  # noqa: E402  pylint: disable=wrong-import-position

# A recognisable value that must never show up in any module output.
CANARY = "canary-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def tenant_db(pg_server, request):
    name = "dbc_%s_%s" % (request.module.__name__.rsplit(".", 1)[-1][-12:].replace("-", "_").lower(), secrets.token_hex(3))
    tenant = dbchecks_schema.create_database(pg_server, name, app_password=CANARY + "-app")
    try:
        yield tenant
    finally:
        dbchecks_schema.drop_database(tenant)


@pytest.fixture()
def canary():
    return CANARY
