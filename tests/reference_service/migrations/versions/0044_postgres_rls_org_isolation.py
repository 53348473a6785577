"""Row-level security: org isolation on the tenant tables.

Each table gets RLS enabled AND forced (so the table owner is subject to it too) and one permissive
policy ``<table>_org_isolation`` reading the transaction setting ``app.current_org_id``.
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
TABLES = ("leads", "bookings", "invoices", "order_photos")
JOIN_EXPR = ("EXISTS (SELECT 1 FROM bookings b WHERE b.booking_id = order_addons.order_id "
             "AND b.org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid)")


def upgrade():
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
