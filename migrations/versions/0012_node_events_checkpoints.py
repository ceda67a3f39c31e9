"""Node events stored as their checkpoints: no ``NodeCompleted`` event row.

A ``NodeCompleted`` holds nothing its checkpoint lacks (execution, node, variant, checkpoint
id, time, ``duration_ms`` in the metadata). From this revision it is not written to
``wtb_outbox``: the audit trail and the outbox relay read it from the checkpoint
(``wtb_domain/adapters/sql/node_events.py``), with the checkpoint id as its event id.
Publication is kept per execution in the new table ``wtb_node_event_marks``: every node
checkpoint created at or before ``published_through`` has had its event published.

Data:

* each execution with node checkpoints gets a mark at its newest node checkpoint -- or,
  when some of its ``NodeCompleted`` rows are unpublished, just before the oldest of those,
  so the relay publishes them (now under their checkpoint's id);
* ``NodeCompleted`` rows whose checkpoint exists are deleted (the checkpoint is the event);
  a row whose checkpoint is gone stays a row.

Node checkpoints written without an event row (``audit=False``, or before 0007) now show in
the audit trail as ``node_completed`` entries, and count as published.

Downgrade writes a ``NodeCompleted`` row for every node checkpoint (published where its
mark covers it; event id: the checkpoint id) and drops the marks.

Revision ID: 0012_node_events_checkpoints
Revises: 0011_sqlite_write_triggers
Create Date: 2026-12-02
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012_node_events_checkpoints"
down_revision = "0011_sqlite_write_triggers"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)
MARKS = "wtb_node_event_marks"


def _tables() -> tuple[sa.TableClause, sa.TableClause, sa.TableClause, sa.TableClause]:
    outbox = sa.table(
        "wtb_outbox",
        sa.column("id", sa.BigInteger()),
        sa.column("event_id", sa.String()),
        sa.column("event_type", sa.String()),
        sa.column("payload", Json),
        sa.column("created_at", Stamp),
        sa.column("published_at", Stamp),
        sa.column("execution_id", sa.String()),
        sa.column("batch_id", sa.String()),
        sa.column("node", sa.String()),
        sa.column("severity", sa.String()),
        sa.column("message", sa.Text()),
    )
    checkpoints = sa.table(
        "wtb_checkpoints",
        sa.column("id", sa.String()),
        sa.column("execution_id", sa.String()),
        sa.column("node", sa.String()),
        sa.column("variant", sa.String()),
        sa.column("source", sa.String()),
        sa.column("metadata", Json),
        sa.column("created_at", Stamp),
    )
    executions = sa.table("wtb_executions", sa.column("id", sa.String()), sa.column("labels", Json))
    marks = sa.table(
        MARKS, sa.column("execution_id", sa.String()), sa.column("published_through", Stamp)
    )
    return outbox, checkpoints, executions, marks


def _node_checkpoint(c: sa.TableClause) -> sa.ColumnElement[bool]:
    return sa.and_(c.c.source == "node", c.c.variant.is_not(None))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def upgrade() -> None:
    op.create_table(
        MARKS,
        sa.Column(
            "execution_id",
            sa.String(64),
            sa.ForeignKey("wtb_executions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("published_through", Stamp, nullable=False),
    )
    o, c, _, m = _tables()
    bind = op.get_bind()
    checkpoint_of = o.c.payload["checkpoint_id"].as_string()
    # The oldest node checkpoint of each execution whose event row is unpublished.
    first_unpublished: dict[str, datetime] = {}
    rows = bind.execute(
        sa.select(c.c.execution_id, c.c.created_at)
        .select_from(o.join(c, c.c.id == checkpoint_of))
        .where(o.c.event_type == "NodeCompleted", o.c.published_at.is_(None))
    )
    for execution_id, created in rows:
        seen = first_unpublished.get(execution_id)
        first_unpublished[execution_id] = created if seen is None else min(seen, created)
    newest = (
        sa.select(c.c.execution_id, sa.func.max(c.c.created_at))
        .where(_node_checkpoint(c))
        .group_by(c.c.execution_id)
    )
    op.execute(m.insert().from_select(["execution_id", "published_through"], newest))
    for execution_id, first in first_unpublished.items():
        before = bind.execute(
            sa.select(sa.func.max(c.c.created_at)).where(
                _node_checkpoint(c), c.c.execution_id == execution_id, c.c.created_at < first
            )
        ).scalar()
        mark = m.c.execution_id == execution_id
        if before is None:
            bind.execute(m.delete().where(mark))
        else:
            bind.execute(m.update().where(mark).values(published_through=before))
    stored = sa.exists().where(c.c.id == checkpoint_of, _node_checkpoint(c))
    op.execute(o.delete().where(o.c.event_type == "NodeCompleted", stored))


def downgrade() -> None:
    from wtb_domain.events import NodeCompleted, to_payload

    o, c, e, m = _tables()
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            c.c.id,
            c.c.execution_id,
            c.c.node,
            c.c.variant,
            c.c.metadata,
            c.c.created_at,
            e.c.labels,
            m.c.published_through,
        )
        .select_from(
            c.join(e, e.c.id == c.c.execution_id).outerjoin(m, m.c.execution_id == c.c.execution_id)
        )
        .where(_node_checkpoint(c))
        .order_by(c.c.created_at, c.c.id)
    ).all()
    events: list[dict[str, Any]] = []
    for r in rows:
        batch_id = (r.labels or {}).get("batch_test_id")
        duration = (r.metadata or {}).get("duration_ms", 0.0)
        created = _aware(r.created_at)
        event = NodeCompleted(
            r.execution_id,
            r.node or "",
            r.variant or "",
            r.id,
            float(duration) if isinstance(duration, int | float) else 0.0,
            batch_id=batch_id if isinstance(batch_id, str) else None,
            event_id=r.id,
            occurred_at=created,
        )
        published = r.published_through is not None and _aware(r.published_through) >= created
        events.append(
            {
                "event_id": r.id,
                "event_type": "NodeCompleted",
                "payload": to_payload(event),
                "created_at": created,
                "published_at": created if published else None,
                "execution_id": r.execution_id,
                "batch_id": event.batch_id,
                "node": event.node,
                "severity": "DEBUG",
                "message": None,
            }
        )
    if events:
        bind.execute(o.insert(), events)
    op.drop_table(MARKS)
