"""Merge the export dead-letter and job failure tracking branches.

Revision ID: merge_20260224_01
Revises: 0045_export_dead_letter, 0045_job_failure_tracking
Create Date: 2026-02-24
"""
revision = "merge_20260224_01"
down_revision = ("0045_export_dead_letter", "0045_job_failure_tracking")
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
