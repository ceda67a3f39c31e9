"""Result rollups per (batch, combination, case) and the duration index of the matrix.

Revision ID: 0003_result_rollups
Revises: 0002_batch_tests
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wtb_domain.adapters.sql import rollups

revision = "0003_result_rollups"
down_revision = "0002_batch_tests"
branch_labels = None
depends_on = None


def leaf() -> list[sa.Column[str]]:
    return [
        sa.Column(
            "batch_test_id",
            sa.String(64),
            sa.ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("combination_name", sa.String(512), primary_key=True),
        sa.Column("case_id", sa.String(255), primary_key=True),
    ]


AUTOVACUUM = (
    "autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01, "
    "autovacuum_vacuum_insert_scale_factor = 0.05"
)


def upgrade() -> None:
    op.create_table(
        "wtb_result_rollups",
        *leaf(),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("n_failed", sa.Integer(), nullable=False),
        sa.Column("n_passed", sa.Integer(), nullable=False),
        sa.Column("score_mean", sa.Float(), nullable=False),
        sa.Column("score_m2", sa.Float(), nullable=False),
    )
    op.create_table(
        "wtb_metric_rollups",
        *leaf(),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_wtb_results_batch_duration",
        "wtb_batch_test_results",
        ["batch_test_id", "combination_name", "duration_ms"],
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Updated in place by every result insert: vacuum them as often as the results.
        for table in ("wtb_result_rollups", "wtb_metric_rollups"):
            op.execute(f"ALTER TABLE {table} SET ({AUTOVACUUM})")
    # Results stored before this revision: their rollups, computed as the inserts would.
    rollups.rebuild(bind)


def downgrade() -> None:
    op.drop_index("ix_wtb_results_batch_duration", table_name="wtb_batch_test_results")
    op.drop_table("wtb_metric_rollups")
    op.drop_table("wtb_result_rollups")
