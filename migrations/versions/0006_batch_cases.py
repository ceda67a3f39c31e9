"""The cases of a batch, stored once with it (flows and tasks get ids, never the cases).

Revision ID: 0006_batch_cases
Revises: 0005_execution_claims
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006_batch_cases"
down_revision = "0005_execution_claims"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "wtb_batch_cases",
        sa.Column(
            "batch_test_id",
            sa.String(64),
            sa.ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("case_id", sa.String(255), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("input", Json, nullable=False),
        sa.Column("expected", Json, nullable=True),
    )
    op.create_index("ix_wtb_batch_cases_position", "wtb_batch_cases", ["batch_test_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_wtb_batch_cases_position", table_name="wtb_batch_cases")
    op.drop_table("wtb_batch_cases")
