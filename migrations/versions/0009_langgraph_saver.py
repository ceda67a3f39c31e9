"""LangGraph checkpointer: the index of LangGraph checkpoints and their pending writes.

Channel values live in ``wtb_state_blobs`` (content-addressed, shared with WTB's own
checkpoints); each LangGraph checkpoint is also a row of ``wtb_checkpoints``.

Revision ID: 0009_langgraph_saver
Revises: 0008_call_records_node_cache
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009_langgraph_saver"
down_revision = "0008_call_records_node_cache"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "wtb_lg_checkpoints",
        sa.Column("thread_id", sa.String(255), primary_key=True),
        sa.Column("checkpoint_ns", sa.String(255), primary_key=True),
        sa.Column("checkpoint_id", sa.String(64), primary_key=True),
        sa.Column(
            "execution_id",
            sa.String(64),
            sa.ForeignKey("wtb_executions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "wtb_checkpoint_id",
            sa.String(64),
            sa.ForeignKey("wtb_checkpoints.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("parent_checkpoint_id", sa.String(64), nullable=True),
        sa.Column("checkpoint", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
    )
    op.create_table(
        "wtb_lg_writes",
        sa.Column("thread_id", sa.String(255), primary_key=True),
        sa.Column("checkpoint_ns", sa.String(255), primary_key=True),
        sa.Column("checkpoint_id", sa.String(64), primary_key=True),
        sa.Column("task_id", sa.String(255), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(255), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("task_path", sa.String(1024), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("wtb_lg_writes")
    op.drop_table("wtb_lg_checkpoints")
