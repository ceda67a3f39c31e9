"""Pinned regression baselines: the history of blessings per name.

Revision ID: 0004_baselines
Revises: 0003_result_rollups
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_baselines"
down_revision = "0003_result_rollups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wtb_baselines",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column(
            "batch_test_id",
            sa.String(64),
            sa.ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("blessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blessed_by", sa.String(255), nullable=True),
    )
    op.create_index("ix_wtb_baselines_name_blessed", "wtb_baselines", ["name", "blessed_at"])


def downgrade() -> None:
    op.drop_index("ix_wtb_baselines_name_blessed", table_name="wtb_baselines")
    op.drop_table("wtb_baselines")
