"""Batch tests and their results; PostgreSQL gets BRIN/GIN indexes and autovacuum tuning.

Revision ID: 0002_batch_tests
Revises: 0001_core
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_batch_tests"
down_revision = "0001_core"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)
# Insert-heavy tables: vacuum/analyze after 1-2% churn instead of the default 20%/10%.
AUTOVACUUM = (
    "autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01, "
    "autovacuum_vacuum_insert_scale_factor = 0.05"
)
TUNED_TABLES = ("wtb_batch_test_results", "wtb_checkpoints", "wtb_state_blobs")


def upgrade() -> None:
    op.create_table(
        "wtb_batch_tests",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("workflow_ref", sa.String(512), nullable=False),
        sa.Column("spec", Json, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
    )
    op.create_table(
        "wtb_batch_test_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "batch_test_id",
            sa.String(64),
            sa.ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("combination_name", sa.String(512), nullable=False),
        sa.Column("variant_config", Json, nullable=False),
        sa.Column("case_id", sa.String(255), nullable=False),
        sa.Column("repeat", sa.Integer(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("metrics", Json, nullable=False),
        sa.Column("overall_score", sa.Float(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("worker_id", sa.String(255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.UniqueConstraint(
            "batch_test_id", "combination_name", "case_id", "repeat", name="uq_wtb_results_leaf"
        ),
    )
    op.create_index("ix_wtb_results_batch", "wtb_batch_test_results", ["batch_test_id"])
    op.create_index(
        "ix_wtb_results_batch_score",
        "wtb_batch_test_results",
        ["batch_test_id", sa.text("overall_score DESC")],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "pgx_wtb_results_created_brin",
            "wtb_batch_test_results",
            ["created_at"],
            postgresql_using="brin",
        )
        for column in ("variant_config", "metrics"):
            op.create_index(
                f"pgx_wtb_results_{column.split('_')[0]}_gin",
                "wtb_batch_test_results",
                [column],
                postgresql_using="gin",
            )
        for table in TUNED_TABLES:
            op.execute(f"ALTER TABLE {table} SET ({AUTOVACUUM})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TUNED_TABLES[1:]:
            op.execute(
                f"ALTER TABLE {table} RESET (autovacuum_vacuum_scale_factor, "
                "autovacuum_analyze_scale_factor, autovacuum_vacuum_insert_scale_factor)"
            )
        for name in ("pgx_wtb_results_metrics_gin", "pgx_wtb_results_variant_gin"):
            op.drop_index(name, table_name="wtb_batch_test_results")
        op.drop_index("pgx_wtb_results_created_brin", table_name="wtb_batch_test_results")
    op.drop_index("ix_wtb_results_batch_score", table_name="wtb_batch_test_results")
    op.drop_index("ix_wtb_results_batch", table_name="wtb_batch_test_results")
    op.drop_table("wtb_batch_test_results")
    op.drop_table("wtb_batch_tests")
