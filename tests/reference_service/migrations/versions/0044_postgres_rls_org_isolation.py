"""Row-level security: org isolation on the tenant tables.

Creates the further tenant tables of the service (teams and workers, client users, checklists, email and
notification events, invoice payments, training) and gives each tenant table RLS enabled AND forced (so
the table owner is subject to it too) and one permissive policy ``<table>_org_isolation`` reading the
transaction setting ``app.current_org_id``: the 20 tables of the real service but ``export_events``
(revision 0045_export_dead_letter). ``teams`` and ``workers`` have serial ids, as the real ones do.
``order_addons`` has no org_id: its policy joins through ``bookings``. ``organizations``,
``outbox_events``, ``admin_audit_logs`` and ``chat_sessions`` stay without RLS (as in the service).

Revision ID: 0044_postgres_rls_org_isolation
Revises: 0002_invoices_photos_seed
Create Date: 2026-02-10
"""
from alembic import op

revision = "0044_postgres_rls_org_isolation"
down_revision = "0002_invoices_photos_seed"
branch_labels = None
depends_on = None

ORG_EXPR = "org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid"
ORG = "org_id uuid NOT NULL REFERENCES organizations (org_id)"
# name, key, further columns; created in this order (parents first).
NEW_TABLES = (
    ("teams", "team_id serial PRIMARY KEY", "name text NOT NULL"),
    ("workers", "worker_id serial PRIMARY KEY", "team_id integer NOT NULL REFERENCES teams (team_id)", "name text NOT NULL",
     "active boolean NOT NULL DEFAULT true"),
    ("client_users", "client_user_id uuid PRIMARY KEY DEFAULT gen_random_uuid()", "email text NOT NULL"),
    ("checklist_runs", "run_id uuid PRIMARY KEY DEFAULT gen_random_uuid()",
     "booking_id uuid REFERENCES bookings (booking_id) ON DELETE SET NULL", "status text NOT NULL DEFAULT 'open'"),
    ("checklist_run_items", "item_id uuid PRIMARY KEY DEFAULT gen_random_uuid()",
     "run_id uuid NOT NULL REFERENCES checklist_runs (run_id) ON DELETE CASCADE", "label text NOT NULL",
     "checked boolean NOT NULL DEFAULT false"),
    ("email_events", "email_event_id uuid PRIMARY KEY DEFAULT gen_random_uuid()", "kind text NOT NULL", "recipient text"),
    ("invoice_payments", "payment_id uuid PRIMARY KEY DEFAULT gen_random_uuid()",
     "invoice_id uuid NOT NULL REFERENCES invoices (invoice_id) ON DELETE CASCADE", "amount_cents integer NOT NULL"),
    ("notifications_events", "notification_id uuid PRIMARY KEY DEFAULT gen_random_uuid()", "kind text NOT NULL"),
    ("notifications_reads", "read_id uuid PRIMARY KEY DEFAULT gen_random_uuid()",
     "notification_id uuid NOT NULL REFERENCES notifications_events (notification_id) ON DELETE CASCADE",
     "reader text NOT NULL"),
    ("notifications_rules_presets", "preset_id uuid PRIMARY KEY DEFAULT gen_random_uuid()", "name text NOT NULL",
     "rules jsonb NOT NULL DEFAULT '{}'::jsonb"),
    ("training_courses", "course_id uuid PRIMARY KEY DEFAULT gen_random_uuid()", "title text NOT NULL"),
    ("training_sessions", "session_id uuid PRIMARY KEY DEFAULT gen_random_uuid()",
     "course_id uuid NOT NULL REFERENCES training_courses (course_id) ON DELETE CASCADE", "starts_at timestamptz NOT NULL"),
    ("training_assignments", "assignment_id uuid PRIMARY KEY DEFAULT gen_random_uuid()",
     "worker_id integer NOT NULL REFERENCES workers (worker_id) ON DELETE CASCADE",
     "course_id uuid NOT NULL REFERENCES training_courses (course_id) ON DELETE CASCADE"),
    ("training_requirements", "requirement_id uuid PRIMARY KEY DEFAULT gen_random_uuid()",
     "course_id uuid NOT NULL REFERENCES training_courses (course_id) ON DELETE CASCADE", "role_name text NOT NULL"),
    ("worker_training_records", "record_id uuid PRIMARY KEY DEFAULT gen_random_uuid()",
     "worker_id integer NOT NULL REFERENCES workers (worker_id) ON DELETE CASCADE",
     "course_id uuid NOT NULL REFERENCES training_courses (course_id) ON DELETE CASCADE", "completed_at timestamptz"),
)
TABLES = ("leads", "bookings", "invoices", "order_photos") + tuple(entry[0] for entry in NEW_TABLES)
SEED_TEAMS = (("00000000-0000-0000-0000-000000000001", "Crew North"), ("00000000-0000-0000-0000-000000000001", "Crew South"),
              ("00000000-0000-0000-0000-000000000002", "Second Org Crew"))
JOIN_EXPR = ("EXISTS (SELECT 1 FROM bookings b WHERE b.booking_id = order_addons.order_id "
             "AND b.org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)")


def upgrade():
    for name, key, *columns in NEW_TABLES:
        op.execute("CREATE TABLE %s (%s)" % (name, ", ".join([key, ORG] + list(columns))))
        op.execute("CREATE INDEX ix_%s_org_id ON %s (org_id)" % (name, name))
    for org, name in SEED_TEAMS:
        op.execute("INSERT INTO teams (org_id, name) VALUES ('%s', '%s')" % (org, name))
    op.execute("INSERT INTO workers (org_id, team_id, name) SELECT org_id, team_id, name || ' lead' FROM teams")
    for table in TABLES:
        op.execute("ALTER TABLE %s ENABLE ROW LEVEL SECURITY" % table)
        op.execute("ALTER TABLE %s FORCE ROW LEVEL SECURITY" % table)
        op.execute("CREATE POLICY %s_org_isolation ON %s USING (%s) WITH CHECK (%s)" % (table, table, ORG_EXPR, ORG_EXPR))
    op.execute("ALTER TABLE order_addons ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE order_addons FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY order_addons_org_isolation ON order_addons USING (%s) WITH CHECK (%s)" % (JOIN_EXPR, JOIN_EXPR))


def downgrade():
    for table in TABLES + ("order_addons",):
        op.execute("DROP POLICY IF EXISTS %s_org_isolation ON %s" % (table, table))
        op.execute("ALTER TABLE %s NO FORCE ROW LEVEL SECURITY" % table)
        op.execute("ALTER TABLE %s DISABLE ROW LEVEL SECURITY" % table)
    for entry in reversed(NEW_TABLES):
        op.execute("DROP TABLE IF EXISTS %s" % entry[0])
