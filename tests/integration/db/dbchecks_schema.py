"""A throw-away tenant database for the database-check tests and the benchmark.

Shaped like the real service as observed: a migration owner, a NOSUPERUSER NOBYPASSRLS application
role, tables with RLS enabled AND forced and one ``<table>_org_isolation`` policy reading
``app.current_org_id`` (``org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid``),
a duplicate policy (``client_users_org_rls``), two tables whose policy joins through ``bookings`` with
EXISTS, org tables without RLS (coverage), seed rows in two orgs and an ``alembic_version`` table.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import psycopg2
from psycopg2 import sql

ORG_EXPR = "org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid"
ORG_1 = "00000000-0000-0000-0000-000000000001"
ORG_2 = "00000000-0000-0000-0000-000000000002"
RLS_TABLES = ["leads", "bookings", "client_users", "invoices"]
JOIN_TABLES = ["booking_photos", "order_addons"]
NO_RLS_TABLES = ["organizations", "outbox_events", "admin_audit_logs"]

TENANT_DDL = """
CREATE TYPE booking_kind AS ENUM ('standard', 'deep', 'move_out');
CREATE TABLE organizations (org_id uuid PRIMARY KEY, name text NOT NULL);
CREATE TABLE leads (
    lead_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id uuid NOT NULL REFERENCES organizations (org_id),
    name text NOT NULL,
    email varchar(120) NOT NULL,
    status text NOT NULL CHECK (status IN ('new', 'contacted', 'won')),
    score smallint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leads_org_idx ON leads (org_id);
CREATE TABLE bookings (
    booking_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id uuid NOT NULL,
    lead_id uuid NOT NULL REFERENCES leads (lead_id),
    starts_at timestamptz NOT NULL,
    duration_minutes integer NOT NULL CHECK (duration_minutes > 0),
    amount numeric(10, 2) NOT NULL,
    kind booking_kind NOT NULL,
    notes text
);
CREATE TABLE client_users (
    id serial PRIMARY KEY,
    org_id uuid NOT NULL,
    email text NOT NULL UNIQUE,
    is_active boolean NOT NULL,
    settings jsonb NOT NULL,
    last_login date
);
CREATE TABLE invoices (
    invoice_id bigserial PRIMARY KEY,
    org_id uuid NOT NULL,
    booking_id uuid REFERENCES bookings (booking_id),
    number text NOT NULL CHECK (char_length(number) = 10),
    total_cents bigint NOT NULL,
    issued_on date NOT NULL
);
CREATE TABLE booking_photos (
    photo_id bigserial PRIMARY KEY,
    booking_id uuid NOT NULL REFERENCES bookings (booking_id),
    path text NOT NULL
);
CREATE TABLE order_addons (
    addon_id serial PRIMARY KEY,
    order_id uuid NOT NULL REFERENCES bookings (booking_id),
    qty integer NOT NULL
);
CREATE TABLE outbox_events (id bigserial PRIMARY KEY, org_id uuid NOT NULL, payload jsonb NOT NULL DEFAULT '{}');
CREATE TABLE admin_audit_logs (id bigserial PRIMARY KEY, org_id uuid, action text NOT NULL);
CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
"""

JOIN_EXPR = ("EXISTS (SELECT 1 FROM bookings b WHERE b.booking_id = {table}.{column} "
             "AND b.org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)")
JOIN_COLUMNS = {"booking_photos": "booking_id", "order_addons": "order_id"}

# Probe values the generated ones cannot satisfy: invoices.number must be exactly 10 characters.
PROBE_VALUES = {"invoices": {"number": "INV-000001"}}


@dataclass
class TenantDb:
    """Connection facts of one throw-away database and its roles."""

    host: str
    port: int
    dbname: str
    superuser: str
    superuser_password: str
    owner: str
    owner_password: str
    app: str
    app_password: str
    admin_db: str = "postgres"
    extra_roles: list = field(default_factory=list)

    def connect(self, who="super", dbname=None, autocommit=True):
        user, password = {"super": (self.superuser, self.superuser_password), "owner": (self.owner, self.owner_password),
                          "app": (self.app, self.app_password)}[who]
        conn = psycopg2.connect(host=self.host, port=self.port, user=user, password=password, dbname=dbname or self.dbname,
                                connect_timeout=5)
        conn.autocommit = autocommit
        return conn

    def module_args(self, who="owner", **extra):
        """Connection options for a module: login_* of the owner, the app or the superuser."""
        user, password = {"super": (self.superuser, self.superuser_password), "owner": (self.owner, self.owner_password),
                          "app": (self.app, self.app_password)}[who]
        args = dict(login_host=self.host, login_port=self.port, login_user=user, login_password=password, login_db=self.dbname)
        args.update(extra)
        return args

    def dsn(self, who="app"):
        user, password = {"super": (self.superuser, self.superuser_password), "owner": (self.owner, self.owner_password),
                          "app": (self.app, self.app_password)}[who]
        return "postgresql+psycopg://%s:%s@%s:%d/%s" % (user, password, self.host, self.port, self.dbname)

    def execute(self, statement, params=None, who="super"):
        conn = self.connect(who)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def row_counts(self, tables):
        """Rows per table, counted as the superuser (RLS does not hide anything from it)."""
        conn = self.connect("super")
        try:
            with conn.cursor() as cur:
                counts = {}
                for table in tables:
                    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
                    counts[table] = cur.fetchone()[0]
                return counts
        finally:
            conn.close()


def create_database(pg, name, app_password=None):
    """Roles ``<name>_owner`` and ``<name>_app`` (NOSUPERUSER NOBYPASSRLS) and database ``<name>``."""
    tenant = TenantDb(host=pg["host"], port=int(pg["port"]), dbname=name, superuser=pg["user"],
                      superuser_password=pg["password"], owner=name + "_owner", owner_password="own-" + secrets.token_hex(10),
                      app=name + "_app", app_password=app_password or "app-" + secrets.token_hex(10),
                      admin_db=pg.get("dbname", "postgres"))
    drop_database(tenant)
    conn = tenant.connect("super", dbname=tenant.admin_db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(tenant.owner)),
                        (tenant.owner_password,))
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(tenant.app)),
                        (tenant.app_password,))
            # The owner may SET ROLE to the app role (the module's second way of connecting).
            cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(tenant.app), sql.Identifier(tenant.owner)))
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(tenant.owner)))
    finally:
        conn.close()
    conn = tenant.connect("super")
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(tenant.owner)))
    finally:
        conn.close()
    return tenant


def drop_database(tenant):
    conn = tenant.connect("super", dbname=tenant.admin_db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(tenant.dbname)))
            for role in [tenant.app, tenant.owner] + list(tenant.extra_roles):
                cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    finally:
        conn.close()


def _grant_app(cur, tenant):
    app = sql.Identifier(tenant.app)
    cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(app))
    cur.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(app))
    cur.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(app))


def enable_rls(cur, table, expression=ORG_EXPR, name=None):
    ident = sql.Identifier(table)
    cur.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(ident))
    cur.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(ident))
    # The expressions are this fixture's own constants.
    cur.execute(sql.SQL("CREATE POLICY {} ON {} USING (%s) WITH CHECK (%s)" % (expression, expression)).format(
        sql.Identifier(name or table + "_org_isolation"), ident))


def build_tenant_schema(tenant, head_revision=None):
    """The observed shape, owned by the owner role, plus seed rows in two orgs (inserted as superuser)."""
    conn = tenant.connect("super")
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(tenant.owner)))
            cur.execute(TENANT_DDL)
            for table in RLS_TABLES:
                enable_rls(cur, table)
            enable_rls(cur, "client_users", name="client_users_org_rls")
            for table in JOIN_TABLES:
                enable_rls(cur, table, JOIN_EXPR.format(table=table, column=JOIN_COLUMNS[table]))
            _grant_app(cur, tenant)
            cur.execute("RESET ROLE")
            seed(cur)
            if head_revision:
                cur.execute("INSERT INTO alembic_version (version_num) VALUES (%s)", (head_revision,))
    finally:
        conn.close()


def seed(cur):
    for number, org in enumerate((ORG_1, ORG_2), start=1):
        cur.execute("INSERT INTO organizations VALUES (%s, %s)", (org, "org %d" % number))
        cur.execute("INSERT INTO leads (org_id, name, email, status, score) VALUES (%s, 'Lead', 'l@example.com', 'new', 1)"
                    " RETURNING lead_id", (org,))
        lead = cur.fetchone()[0]
        cur.execute("INSERT INTO bookings (org_id, lead_id, starts_at, duration_minutes, amount, kind)"
                    " VALUES (%s, %s, now(), 60, 150.00, 'deep') RETURNING booking_id", (org, lead))
        booking = cur.fetchone()[0]
        cur.execute("INSERT INTO client_users (org_id, email, is_active, settings) VALUES (%s, %s, true, '{}')",
                    (org, "c%d@example.com" % number))
        cur.execute("INSERT INTO invoices (org_id, booking_id, number, total_cents, issued_on)"
                    " VALUES (%s, %s, %s, 15000, current_date)", (org, booking, "INV-%06d" % number))
        cur.execute("INSERT INTO booking_photos (booking_id, path) VALUES (%s, 'p.jpg')", (booking,))
        cur.execute("INSERT INTO order_addons (order_id, qty) VALUES (%s, 2)", (booking,))
        cur.execute("INSERT INTO outbox_events (org_id) VALUES (%s)", (org,))


ALL_TABLES = RLS_TABLES + JOIN_TABLES + NO_RLS_TABLES


def build_many_tables(tenant, count, rows_per_org=3):
    """``count`` tables ``t_000``... with forced RLS and the observed policy, for the benchmark."""
    conn = tenant.connect("super")
    names = ["t_%03d" % index for index in range(count)]
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(tenant.owner)))
            for name in names:
                cur.execute(sql.SQL("CREATE TABLE {} (id bigserial PRIMARY KEY, org_id uuid NOT NULL, label text NOT NULL, "
                                    "qty integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now())").format(sql.Identifier(name)))
                cur.execute(sql.SQL("CREATE INDEX ON {} (org_id)").format(sql.Identifier(name)))
                enable_rls(cur, name)
            _grant_app(cur, tenant)
            cur.execute("RESET ROLE")
            for name in names:
                for org in (ORG_1, ORG_2):
                    cur.execute(sql.SQL("INSERT INTO {} (org_id, label, qty) SELECT %s, 'seed', g FROM generate_series(1, %s) g")
                                .format(sql.Identifier(name)), (org, rows_per_org))
    finally:
        conn.close()
    return names
