"""Core schema: executions, checkpoints, content-addressed state values, audit log.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "wtb_executions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("workflow_name", sa.String(255), nullable=False),
        sa.Column("workflow_hash", sa.String(64), nullable=False),
        sa.Column("workflow_ref", sa.String(512), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("variants", Json, nullable=False),
        sa.Column("breakpoints", Json, nullable=False),
        sa.Column("head_checkpoint_id", sa.String(64), nullable=True),
        sa.Column("paused_at", sa.String(300), nullable=True),
        sa.Column("parent_execution_id", sa.String(64), nullable=True),
        sa.Column("forked_from_checkpoint_id", sa.String(64), nullable=True),
        sa.Column("error_type", sa.String(255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_traceback", sa.Text(), nullable=True),
        sa.Column("metrics", Json, nullable=False),
        sa.Column("labels", Json, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
    )
    op.create_index("ix_wtb_executions_status", "wtb_executions", ["status"])
    op.create_index(
        "ix_wtb_executions_parent_execution_id", "wtb_executions", ["parent_execution_id"]
    )
    op.create_table(
        "wtb_checkpoints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "execution_id",
            sa.String(64),
            sa.ForeignKey("wtb_executions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(255), nullable=True),
        sa.Column("variant", sa.String(255), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("manifest", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_index("ix_wtb_checkpoints_execution_id_id", "wtb_checkpoints", ["execution_id", "id"])
    op.create_table(
        "wtb_state_blobs",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
    )
    op.create_table(
        "wtb_audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(64), nullable=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", Json, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_index("ix_wtb_audit_log_execution_id", "wtb_audit_log", ["execution_id"])


def downgrade() -> None:
    op.drop_index("ix_wtb_audit_log_execution_id", table_name="wtb_audit_log")
    op.drop_table("wtb_audit_log")
    op.drop_table("wtb_state_blobs")
    op.drop_index("ix_wtb_checkpoints_execution_id_id", table_name="wtb_checkpoints")
    op.drop_table("wtb_checkpoints")
    op.drop_index("ix_wtb_executions_parent_execution_id", table_name="wtb_executions")
    op.drop_index("ix_wtb_executions_status", table_name="wtb_executions")
    op.drop_table("wtb_executions")
