"""Execution claims: the runner advancing an execution and the end of its lease.

Revision ID: 0005_execution_claims
Revises: 0004_baselines
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_execution_claims"
down_revision = "0004_baselines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns without defaults: a metadata-only change on PostgreSQL, and every
    # existing execution starts unclaimed (resumable as before).
    op.add_column("wtb_executions", sa.Column("claimed_by", sa.String(128), nullable=True))
    op.add_column(
        "wtb_executions", sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    # SQLite >= 3.35 drops columns in place (no table copy that would cascade to checkpoints).
    op.drop_column("wtb_executions", "claim_expires_at")
    op.drop_column("wtb_executions", "claimed_by")
