"""Export events, whose dead letters the admin API lists (one branch of the February work).

As in the real service there is no ``export_dead_letter`` table: the dead letters are the rows of
``export_events`` with ``status = 'dead_letter'``.

Revision ID: 0045_export_dead_letter
Revises: 0044_postgres_rls_org_isolation
Create Date: 2026-02-17
"""
from alembic import op

revision = "0045_export_dead_letter"
down_revision = "0044_postgres_rls_org_isolation"
branch_labels = None
depends_on = None

ORG_EXPR = "org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid"


def upgrade():
    op.execute("""
        CREATE TABLE export_events (
            event_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            org_id uuid NOT NULL REFERENCES organizations (org_id),
            export_kind text NOT NULL,
            payload jsonb NOT NULL DEFAULT '{}'::jsonb,
            status text NOT NULL DEFAULT 'pending',
            reason text,
            attempts integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("ALTER TABLE export_events ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE export_events FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY export_events_org_isolation ON export_events USING (%s) WITH CHECK (%s)"
               % (ORG_EXPR, ORG_EXPR))


def downgrade():
    op.execute("DROP TABLE IF EXISTS export_events")
