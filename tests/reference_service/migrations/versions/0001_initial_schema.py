"""Initial schema: organizations, leads, bookings, outbox, audit log, job heartbeats.

Revision ID: 0001_initial_schema
Revises:
Create Date: 2026-01-05
"""
from alembic import op

revision = "0001_initial_schema"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        CREATE TABLE organizations (
            org_id uuid PRIMARY KEY,
            name text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE leads (
            lead_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            org_id uuid NOT NULL REFERENCES organizations (org_id),
            name text NOT NULL,
            phone text NOT NULL,
            email text,
            postal_code text,
            address text NOT NULL,
            preferred_dates jsonb NOT NULL DEFAULT '[]'::jsonb,
            structured_inputs jsonb NOT NULL DEFAULT '{}'::jsonb,
            estimate_snapshot jsonb NOT NULL,
            referral_code text NOT NULL UNIQUE,
            status text NOT NULL DEFAULT 'NEW',
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX ix_leads_org_id ON leads (org_id)")
    op.execute("""
        CREATE TABLE bookings (
            booking_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            org_id uuid NOT NULL REFERENCES organizations (org_id),
            lead_id uuid REFERENCES leads (lead_id) ON DELETE SET NULL,
            status text NOT NULL DEFAULT 'PENDING',
            starts_at timestamptz NOT NULL,
            reminder_sent boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX ix_bookings_org_id ON bookings (org_id)")
    op.execute("""
        CREATE TABLE outbox_events (
            event_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            org_id uuid NOT NULL REFERENCES organizations (org_id),
            kind text NOT NULL,
            payload jsonb NOT NULL DEFAULT '{}'::jsonb,
            status text NOT NULL DEFAULT 'pending',
            attempts integer NOT NULL DEFAULT 0,
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE admin_audit_logs (
            audit_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            org_id uuid NOT NULL REFERENCES organizations (org_id),
            actor text NOT NULL,
            action text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE job_heartbeats (
            name text PRIMARY KEY,
            last_heartbeat timestamptz NOT NULL,
            runner_id text
        )""")


def downgrade():
    for table in ("job_heartbeats", "admin_audit_logs", "outbox_events", "bookings", "leads", "organizations"):
        op.execute("DROP TABLE IF EXISTS %s" % table)
