"""Invoices, order photos, order add-ons, chat sessions; seed data for two organizations.

Revision ID: 0002_invoices_photos_seed
Revises: 0001_initial_schema
Create Date: 2026-01-19
"""
from alembic import op

revision = "0002_invoices_photos_seed"
down_revision = "0001_initial_schema"
branch_labels = None
depends_on = None

DEFAULT_ORG = "00000000-0000-0000-0000-000000000001"
OTHER_ORG = "00000000-0000-0000-0000-000000000002"


def upgrade():
    op.execute("""
        CREATE TABLE invoices (
            invoice_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            org_id uuid NOT NULL REFERENCES organizations (org_id),
            booking_id uuid REFERENCES bookings (booking_id) ON DELETE SET NULL,
            invoice_number text NOT NULL,
            total_cents integer NOT NULL,
            status text NOT NULL DEFAULT 'DRAFT',
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE order_photos (
            photo_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            org_id uuid NOT NULL REFERENCES organizations (org_id),
            order_id uuid NOT NULL REFERENCES bookings (booking_id) ON DELETE CASCADE,
            review_status text NOT NULL DEFAULT 'PENDING',
            filename text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    # No org_id of its own: its rows belong to the booking's organization.
    op.execute("""
        CREATE TABLE order_addons (
            addon_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            order_id uuid NOT NULL REFERENCES bookings (booking_id) ON DELETE CASCADE,
            code text NOT NULL,
            qty integer NOT NULL DEFAULT 1
        )""")
    op.execute("""
        CREATE TABLE chat_sessions (
            session_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            org_id uuid NOT NULL REFERENCES organizations (org_id),
            created_at timestamptz NOT NULL DEFAULT now()
        )""")

    op.execute("INSERT INTO organizations (org_id, name) VALUES ('%s', 'Default Org'), ('%s', 'Second Org')"
               % (DEFAULT_ORG, OTHER_ORG))
    op.execute("""
        INSERT INTO leads (lead_id, org_id, name, phone, email, postal_code, address, structured_inputs,
                           estimate_snapshot, referral_code) VALUES
        ('10000000-0000-0000-0000-000000000001', '%(d)s', 'Ada Default', '780-555-0101', 'ada@example.com', 'T5J0N3',
         '1 Main St', '{"beds": 2, "baths": 1, "cleaning_type": "standard"}', '{"total_before_tax": 105.0}', 'REFD0001'),
        ('10000000-0000-0000-0000-000000000002', '%(d)s', 'Ben Default', '780-555-0102', 'ben@example.com', 'T5J0N4',
         '2 Main St', '{"beds": 3, "baths": 2, "cleaning_type": "deep"}', '{"total_before_tax": 210.0}', 'REFD0002'),
        ('10000000-0000-0000-0000-000000000003', '%(d)s', 'Cy Default', '780-555-0103', NULL, 'T5J0N5',
         '3 Main St', '{"beds": 1, "baths": 1, "cleaning_type": "standard"}', '{"total_before_tax": 87.5}', 'REFD0003'),
        ('20000000-0000-0000-0000-000000000001', '%(o)s', 'Dee Other', '403-555-0201', 'dee@example.org', 'T2P1J9',
         '9 Side Ave', '{"beds": 2, "baths": 2, "cleaning_type": "standard"}', '{"total_before_tax": 105.0}', 'REFO0001'),
        ('20000000-0000-0000-0000-000000000002', '%(o)s', 'Eve Other', '403-555-0202', NULL, 'T2P1K0',
         '10 Side Ave', '{"beds": 4, "baths": 3, "cleaning_type": "move_out_empty"}', '{"total_before_tax": 350.0}', 'REFO0002')
    """ % {"d": DEFAULT_ORG, "o": OTHER_ORG})
    op.execute("""
        INSERT INTO bookings (booking_id, org_id, lead_id, status, starts_at, created_at) VALUES
        ('30000000-0000-0000-0000-000000000001', '%(d)s', '10000000-0000-0000-0000-000000000001', 'CONFIRMED',
         now() + interval '20 hours', now() - interval '2 days'),
        ('30000000-0000-0000-0000-000000000002', '%(d)s', '10000000-0000-0000-0000-000000000002', 'DONE',
         now() - interval '3 days', now() - interval '5 days'),
        ('30000000-0000-0000-0000-000000000003', '%(d)s', NULL, 'PENDING',
         now() + interval '9 days', now() - interval '3 hours'),
        ('40000000-0000-0000-0000-000000000001', '%(o)s', '20000000-0000-0000-0000-000000000001', 'CONFIRMED',
         now() + interval '30 hours', now() - interval '1 day')
    """ % {"d": DEFAULT_ORG, "o": OTHER_ORG})
    op.execute("""
        INSERT INTO invoices (org_id, booking_id, invoice_number, total_cents, status) VALUES
        ('%(d)s', '30000000-0000-0000-0000-000000000002', 'INV-D-0001', 21000, 'PAID'),
        ('%(o)s', '40000000-0000-0000-0000-000000000001', 'INV-O-0001', 10500, 'SENT')
    """ % {"d": DEFAULT_ORG, "o": OTHER_ORG})
    op.execute("""
        INSERT INTO order_photos (org_id, order_id, review_status, filename) VALUES
        ('%(d)s', '30000000-0000-0000-0000-000000000002', 'PENDING', 'kitchen-after.jpg'),
        ('%(d)s', '30000000-0000-0000-0000-000000000002', 'APPROVED', 'bath-after.jpg'),
        ('%(o)s', '40000000-0000-0000-0000-000000000001', 'NEEDS_RETAKE', 'hall-before.jpg')
    """ % {"d": DEFAULT_ORG, "o": OTHER_ORG})
    op.execute("""
        INSERT INTO order_addons (order_id, code, qty) VALUES
        ('30000000-0000-0000-0000-000000000001', 'oven', 1),
        ('30000000-0000-0000-0000-000000000002', 'fridge', 1),
        ('40000000-0000-0000-0000-000000000001', 'windows_up_to_5', 1)
    """)
    op.execute("""
        INSERT INTO outbox_events (org_id, kind, status, attempts) VALUES
        ('%(d)s', 'email.booking_confirmed', 'sent', 1),
        ('%(o)s', 'email.booking_confirmed', 'sent', 1)
    """ % {"d": DEFAULT_ORG, "o": OTHER_ORG})
    op.execute("INSERT INTO admin_audit_logs (org_id, actor, action) VALUES ('%s', 'system', 'seed')" % DEFAULT_ORG)


def downgrade():
    for table in ("chat_sessions", "order_addons", "order_photos", "invoices"):
        op.execute("DROP TABLE IF EXISTS %s" % table)
    op.execute("DELETE FROM admin_audit_logs")
    op.execute("DELETE FROM outbox_events")
    op.execute("DELETE FROM bookings")
    op.execute("DELETE FROM leads")
    op.execute("DELETE FROM organizations")
