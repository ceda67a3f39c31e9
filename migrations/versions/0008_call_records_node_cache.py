"""Recorded LLM/tool calls with content-addressed bodies; the node result cache.

Revision ID: 0008_call_records_node_cache
Revises: 0007_audit_outbox
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008_call_records_node_cache"
down_revision = "0007_audit_outbox"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "wtb_call_records",
        sa.Column("checkpoint_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("variant", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("request_key", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response_hash", sa.String(64), nullable=False),
        sa.Column("repeat", sa.Integer(), nullable=True),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_index(
        "ix_wtb_call_records_request_key", "wtb_call_records", ["request_key", "created_at"]
    )
    op.create_index("ix_wtb_call_records_batch_id", "wtb_call_records", ["batch_id"])
    op.create_table(
        "wtb_call_bodies",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("data", sa.Text(), nullable=False),
    )
    op.create_table(
        "wtb_node_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("variant", sa.String(255), nullable=False),
        sa.Column("writes", Json, nullable=False),
        sa.Column("checkpoint_id", sa.String(64), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("wtb_node_cache")
    op.drop_table("wtb_call_bodies")
    op.drop_index("ix_wtb_call_records_batch_id", table_name="wtb_call_records")
    op.drop_index("ix_wtb_call_records_request_key", table_name="wtb_call_records")
    op.drop_table("wtb_call_records")
