"""Audit entries with subject columns and upper-case severities; the outbox; processed events.

Revision ID: 0007_audit_outbox
Revises: 0006_batch_cases
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007_audit_outbox"
down_revision = "0006_batch_cases"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Nullable columns without defaults: metadata-only on PostgreSQL.
    op.add_column("wtb_audit_log", sa.Column("batch_id", sa.String(64), nullable=True))
    op.add_column("wtb_audit_log", sa.Column("node", sa.String(255), nullable=True))
    op.add_column("wtb_audit_log", sa.Column("event_id", sa.String(64), nullable=True))
    op.create_index("ix_wtb_audit_log_batch_id", "wtb_audit_log", ["batch_id"])
    op.create_index("ix_wtb_audit_log_event_id", "wtb_audit_log", ["event_id"], unique=True)
    op.execute("UPDATE wtb_audit_log SET severity = UPPER(severity)")
    op.create_table(
        "wtb_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("published_at", Stamp, nullable=True),
    )
    op.create_index("ix_wtb_outbox_unpublished", "wtb_outbox", ["published_at", "id"])
    op.create_table(
        "wtb_processed_events",
        sa.Column("consumer", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", Stamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("wtb_processed_events")
    op.drop_index("ix_wtb_outbox_unpublished", table_name="wtb_outbox")
    op.drop_table("wtb_outbox")
    op.execute("UPDATE wtb_audit_log SET severity = LOWER(severity)")
    op.drop_index("ix_wtb_audit_log_event_id", table_name="wtb_audit_log")
    op.drop_index("ix_wtb_audit_log_batch_id", table_name="wtb_audit_log")
    # SQLite >= 3.35 drops columns in place.
    op.drop_column("wtb_audit_log", "event_id")
    op.drop_column("wtb_audit_log", "node")
    op.drop_column("wtb_audit_log", "batch_id")
