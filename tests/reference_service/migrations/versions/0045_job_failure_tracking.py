"""Job failure tracking on job_heartbeats (the other branch of the February work).

Revision ID: 0045_job_failure_tracking
Revises: 0044_postgres_rls_org_isolation
Create Date: 2026-02-18
"""
from alembic import op

revision = "0045_job_failure_tracking"
down_revision = "0044_postgres_rls_org_isolation"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("ALTER TABLE job_heartbeats ADD COLUMN last_success_at timestamptz")
    op.execute("ALTER TABLE job_heartbeats ADD COLUMN last_error text")
    op.execute("ALTER TABLE job_heartbeats ADD COLUMN last_error_at timestamptz")
    op.execute("ALTER TABLE job_heartbeats ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0")


def downgrade():
    for column in ("consecutive_failures", "last_error_at", "last_error", "last_success_at"):
        op.execute("ALTER TABLE job_heartbeats DROP COLUMN IF EXISTS %s" % column)
