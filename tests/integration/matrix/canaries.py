"""Secret canaries: a reference stack whose every credential is a unique, recognizable value, and a search for
those values (and their encodings) in everything a playbook run leaves behind.

Credentials made canaries: the five Basic Auth passwords, the metrics token, the four env-file secrets
(AUTH_SECRET_KEY, CLIENT_PORTAL_SECRET, WORKER_PORTAL_SECRET, ADMIN_PROXY_AUTH_SECRET), the database owner and
application passwords (so POSTGRES_PASSWORD and DATABASE_URL in the env file), and the password of the superuser
role the checks connect as (inside the check DSN). Wrong passwords the matrix sends on purpose are canaries too.
"""
from __future__ import annotations

import base64
import os
import re
import secrets
import urllib.parse

import psycopg2
from psycopg2 import sql

from refstack import ROLES, RefStack


class Canaries:
    """Makes canary values and finds them. Each canary holds a random 24-hex-digit core; a leak is any
    occurrence of the whole value, of the core or either half of it (a truncated excerpt still leaks), or of the
    Basic Auth header value built from it."""

    def __init__(self):
        self.values = {}
        self.basic_pairs = []

    def make(self, label, length=None):
        core = secrets.token_hex(12)
        value = "cnry%s%s" % (re.sub(r"[^A-Za-z0-9]", "", label)[:12], core)
        if length and len(value) < length:
            value += "z" * (length - len(value))
        self.values[label] = (value, core)
        return value

    def make_short(self, label, prefix="c"):
        """An 11-character canary (a too-short password or token is a secret all the same)."""
        core = secrets.token_hex(5)
        self.values[label] = (prefix + core, core)
        return prefix + core

    def basic(self, username, password):
        self.basic_pairs.append((username, password))

    def needles(self):
        needles = {}
        for label, (value, core) in self.values.items():
            needles[value] = label
            needles[core] = label + " (core)"
            if len(core) >= 24:
                needles[core[:12]] = label + " (core, first half)"
                needles[core[12:]] = label + " (core, second half)"
            quoted = urllib.parse.quote(value, safe="")
            if quoted != value:
                needles[quoted] = label + " (url-encoded)"
        for username, password in self.basic_pairs:
            token = base64.b64encode(("%s:%s" % (username, password)).encode()).decode()
            needles[token] = "Basic Auth header of %s" % username
            needles[token[:-4]] = "Basic Auth header of %s (truncated)" % username
        return needles

    def find(self, texts):
        """``texts``: {source name: text}. Returns [(source, label, context)] with the canary masked in the context."""
        leaks = []
        for needle, label in self.needles().items():
            for source, text in texts.items():
                start = text.find(needle)
                while start >= 0:
                    context = text[max(0, start - 80):start + len(needle) + 80].replace(needle, "<CANARY:%s>" % label)
                    leaks.append((source, label, context))
                    start = text.find(needle, start + 1)
        return leaks


def canary_stack(pg_facts, canaries, name):
    """A RefStack (not started) whose credentials are canaries (RefStack's generated secrets replaced before start)."""
    stack = RefStack(pg_facts, name=name)
    stack.metrics_token = canaries.make("metrics_token", 24)
    stack.credentials = {role: ("ops-%s" % role, canaries.make("%s_password" % role, 16)) for role in ROLES}
    for user, password in stack.credentials.values():
        canaries.basic(user, password)
    stack.secrets = {key: canaries.make(key.lower(), 40) for key in stack.secrets}
    db = stack.db
    db["owner_password"] = canaries.make("db_owner_password")
    db["app_password"] = canaries.make("db_app_password")
    host, port, dbname = db["host"], db["port"], db["dbname"]
    db["owner_dsn"] = "postgresql+psycopg2://%s:%s@%s:%d/%s" % (db["owner_user"], db["owner_password"], host, port, dbname)
    db["app_dsn"] = "postgresql+psycopg2://%s:%s@%s:%d/%s" % (db["app_user"], db["app_password"], host, port, dbname)
    db["app_database_url"] = "postgresql+psycopg://%s:%s@%s:%d/%s" % (db["app_user"], db["app_password"], host, port, dbname)
    return stack


class CanarySuperuser:
    """A superuser role with a canary password on the cluster: the role the database checks and the drill
    connect as (the cluster's own superuser password is not ours to choose)."""

    def __init__(self, pg_facts, canaries, name):
        self.pg = pg_facts
        self.name = name
        self.password = canaries.make("check_dsn_password")

    def _run(self, statement, params=None):
        conn = psycopg2.connect(host=self.pg.get("host", "127.0.0.1"), port=self.pg["port"], user=self.pg["user"],
                                password=self.pg["password"], dbname=self.pg.get("dbname", "postgres"), connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
        finally:
            conn.close()

    def create(self):
        self._run(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.name)))
        self._run(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD %s").format(sql.Identifier(self.name)), (self.password,))

    def drop(self):
        self._run(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.name)))

    def dsn(self, stack, password=None, port=None):
        return "postgresql://%s:%s@%s:%s/%s" % (self.name, password or self.password, stack.db["host"],
                                                port or stack.db["port"], stack.db["dbname"])


def run_texts(run, run_dir):
    """Everything a run left: its stdout and stderr (the custom stats are printed there), its log file, and every
    file under its run directory (artifacts, the stats dump, ANSIBLE_HOME, the local temp and the async job files)."""
    texts = {"stdout": run.stdout, "stderr": run.stderr}
    for root, dummy, files in os.walk(str(run_dir)):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as handle:
                    texts[path] = handle.read().decode("utf-8", errors="replace")
            except OSError:
                continue
    return texts
