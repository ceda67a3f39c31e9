"""One row per event: the audit log merged into the outbox, with its data.

Every event was written twice -- an outbox row (payload, published marker) and an audit entry
(subject, severity, message, redacted details) -- two statements and two tables' indexes per
node write. ``wtb_outbox`` now carries the entry's subject, severity and message; the entry's
details are derived from the payload when read (``wtb_domain.audit.details_of``, the same
function that built them), so they are not stored twice.

The unpublished index becomes partial (only unpublished rows), as are the new subject
indexes (only rows with an execution, a batch).

Data: each audit entry's subject, severity and message move to its event's outbox row.
Entries without an outbox row (written before 0007, without an event id) become rows of their
own, marked published (there is nothing to relay) and holding their details as the payload;
they get ids below every outbox row, in their old order, so the trail keeps its order. An
outbox row without an entry gets the severity and message its event describes.

Revision ID: 0010_events_one_row
Revises: 0009_langgraph_saver
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010_events_one_row"
down_revision = "0009_langgraph_saver"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)
UNPUBLISHED = sa.text("published_at IS NULL")
SUBJECT = ("execution_id", "batch_id", "node", "severity", "message")


def _outbox() -> sa.TableClause:
    return sa.table(
        "wtb_outbox",
        sa.column("id", sa.BigInteger()),
        sa.column("event_id", sa.String()),
        sa.column("event_type", sa.String()),
        sa.column("payload", Json),
        sa.column("created_at", Stamp),
        sa.column("published_at", Stamp),
        *[sa.column(c, sa.String()) for c in SUBJECT],
    )


def _audit() -> sa.TableClause:
    return sa.table(
        "wtb_audit_log",
        sa.column("id", sa.Integer()),
        sa.column("execution_id", sa.String()),
        sa.column("event_type", sa.String()),
        sa.column("severity", sa.String()),
        sa.column("message", sa.String()),
        sa.column("data", Json),
        sa.column("created_at", Stamp),
        sa.column("batch_id", sa.String()),
        sa.column("node", sa.String()),
        sa.column("event_id", sa.String()),
    )


def upgrade() -> None:
    op.add_column("wtb_outbox", sa.Column("execution_id", sa.String(64), nullable=True))
    op.add_column("wtb_outbox", sa.Column("batch_id", sa.String(64), nullable=True))
    op.add_column("wtb_outbox", sa.Column("node", sa.String(255), nullable=True))
    op.add_column("wtb_outbox", sa.Column("severity", sa.String(16), nullable=True))
    op.add_column("wtb_outbox", sa.Column("message", sa.Text(), nullable=True))
    o, a = _outbox(), _audit()
    entry = a.alias("entry")
    # Entries of outbox events: their subject, severity and message move to the event's row.
    op.execute(
        o.update().values(
            {
                c: sa.select(entry.c[c]).where(entry.c.event_id == o.c.event_id).scalar_subquery()
                for c in SUBJECT
            }
        )
    )
    # Entries without an outbox row: rows of their own, below every outbox id, in order.
    has_event = sa.exists().where(o.c.event_id == a.c.event_id)
    offset = sa.select(sa.func.coalesce(sa.func.max(entry.c.id), 0) + 1).scalar_subquery()
    event_id = sa.func.coalesce(a.c.event_id, sa.literal("audit-") + sa.cast(a.c.id, sa.String))
    op.execute(
        o.insert().from_select(
            ["id", "event_id", "event_type", "payload", "created_at", "published_at", *SUBJECT],
            sa.select(
                a.c.id - offset,
                event_id,
                a.c.event_type,
                a.c.data,
                a.c.created_at,
                a.c.created_at,
                *[a.c[c] for c in SUBJECT],
            ).where(sa.or_(a.c.event_id.is_(None), ~has_event)),
        )
    )
    _describe_orphans(o)
    op.drop_index("ix_wtb_audit_log_event_id", table_name="wtb_audit_log")
    op.drop_index("ix_wtb_audit_log_batch_id", table_name="wtb_audit_log")
    op.drop_index("ix_wtb_audit_log_execution_id", table_name="wtb_audit_log")
    op.drop_table("wtb_audit_log")
    # Partial: events without an execution (or without a batch) add no index entry.
    for column in ("execution_id", "batch_id"):
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_wtb_outbox_{column}",
            "wtb_outbox",
            [column],
            sqlite_where=where,
            postgresql_where=where,
        )
    # The table is now the event log (it keeps growing): index only the unpublished rows.
    op.drop_index("ix_wtb_outbox_unpublished", table_name="wtb_outbox")
    op.create_index(
        "ix_wtb_outbox_unpublished",
        "wtb_outbox",
        ["id"],
        sqlite_where=UNPUBLISHED,
        postgresql_where=UNPUBLISHED,
    )


def _describe_orphans(o: sa.TableClause) -> None:
    """Outbox rows that had no audit entry get the severity and message of their event."""
    from wtb_domain.audit import headline
    from wtb_domain.events import EVENT_TYPES, from_payload, subject

    bind = op.get_bind()
    rows = bind.execute(
        sa.select(o.c.id, o.c.event_id, o.c.event_type, o.c.payload, o.c.created_at).where(
            o.c.severity.is_(None), o.c.event_type.in_(list(EVENT_TYPES))
        )
    ).all()
    for row_id, event_id, type_name, payload, created in rows:
        event = from_payload(type_name, dict(payload), event_id, created)
        severity, message = headline(event)
        batch_id, execution_id, node = subject(event)
        values: dict[str, Any] = {
            "severity": severity.value,
            "message": message,
            "execution_id": execution_id,
            "batch_id": batch_id,
            "node": node,
        }
        bind.execute(o.update().where(o.c.id == row_id).values(values))


def downgrade() -> None:
    from wtb_domain.audit import details_of, snake
    from wtb_domain.events import EVENT_TYPES

    op.create_table(
        "wtb_audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(64), nullable=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", Json, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("node", sa.String(255), nullable=True),
        sa.Column("event_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_wtb_audit_log_execution_id", "wtb_audit_log", ["execution_id"])
    op.create_index("ix_wtb_audit_log_batch_id", "wtb_audit_log", ["batch_id"])
    op.create_index("ix_wtb_audit_log_event_id", "wtb_audit_log", ["event_id"], unique=True)
    o, a = _outbox(), _audit()
    bind = op.get_bind()
    rows = bind.execute(sa.select(o).order_by(o.c.id)).all()
    entries = []
    for r in rows:
        known = r.event_type in EVENT_TYPES
        payload = dict(r.payload or {})
        entries.append(
            {
                "execution_id": r.execution_id,
                "event_type": snake(r.event_type),
                "severity": r.severity or "INFO",
                "message": r.message or snake(r.event_type),
                "data": details_of(payload) if known else payload,
                "created_at": r.created_at,
                "batch_id": r.batch_id,
                "node": r.node,
                "event_id": None if r.event_id.startswith("audit-") and r.id < 0 else r.event_id,
            }
        )
    if entries:
        bind.execute(a.insert(), entries)
    bind.execute(o.delete().where(o.c.event_type.not_in(list(EVENT_TYPES))))
    op.drop_index("ix_wtb_outbox_unpublished", table_name="wtb_outbox")
    op.create_index("ix_wtb_outbox_unpublished", "wtb_outbox", ["published_at", "id"])
    op.drop_index("ix_wtb_outbox_batch_id", table_name="wtb_outbox")
    op.drop_index("ix_wtb_outbox_execution_id", table_name="wtb_outbox")
    # SQLite >= 3.35 drops columns in place.
    for column in reversed(SUBJECT):
        op.drop_column("wtb_outbox", column)
