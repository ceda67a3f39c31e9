"""Node events read from their checkpoints: a ``NodeCompleted`` is stored as the checkpoint
its node wrote, not as an event row.

A ``NodeCompleted`` says nothing its checkpoint lacks: the execution, node, variant, the
checkpoint's id, when it was written and ``duration_ms`` (in its metadata); the batch is
the execution's ``batch_test_id`` label. Its event id *is* the checkpoint id and it occurred
when the checkpoint was created (``engine.step`` builds it so), so the event a process
publishes and the one the relay reads back here are the same event: idempotent consumers
see one id. A node write is then three rows (head move, values, checkpoint) instead of
four; ``bench/event_cost.py`` measures what the event row cost.

Which node events are published is kept per execution in ``wtb_node_event_marks``: every
node checkpoint of the execution created at or before ``published_through`` has had its
event published. :func:`mark_statement` moves a mark forward only over node checkpoints
whose events the marker published: a process that takes over an execution another process
left with unpublished events cannot mark those as published, so the relay still finds them.

Checkpoints of LangGraph's saver (``wtb_domain.langgraph``) have no variant and had no
event: they are not node events.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeGuard

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    Select,
    String,
    Text,
    any_,
    bindparam,
    exists,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from wtb_domain.adapters.sql import precompiled
from wtb_domain.adapters.sql.repositories.rows import aware
from wtb_domain.adapters.sql.tables import CHECKPOINTS, EXECUTIONS, NODE_EVENT_MARKS
from wtb_domain.events import Event, NodeCompleted
from wtb_domain.model import Source

C, E, M = CHECKPOINTS.c, EXECUTIONS.c, NODE_EVENT_MARKS.c

NODE_EVENT = (C.source == Source.NODE.value) & C.variant.is_not(None)
"""The checkpoints that are node events (those ``engine.step`` writes)."""

_COVERED = exists().where(M.execution_id == C.execution_id, M.published_through >= C.created_at)
UNPUBLISHED = NODE_EVENT & ~_COVERED
"""Node-event checkpoints whose event no mark covers."""

COLUMNS = (C.id, C.execution_id, C.node, C.variant, C.metadata, C.created_at, E.labels)


def is_stored_as_checkpoint(event: Event) -> TypeGuard[NodeCompleted]:
    """Whether ``event`` is stored as its checkpoint (no event row is written for it)."""
    return type(event) is NodeCompleted


def node_event(row: Any) -> NodeCompleted:
    """The ``NodeCompleted`` of a checkpoint row (selected with :data:`COLUMNS`)."""
    labels = row.labels or {}
    batch_id = labels.get("batch_test_id")
    duration = (row.metadata or {}).get("duration_ms", 0.0)
    return NodeCompleted(
        row.execution_id,
        row.node or "",
        row.variant or "",
        row.id,
        float(duration) if isinstance(duration, int | float) else 0.0,
        batch_id=batch_id if isinstance(batch_id, str) else None,
        event_id=row.id,
        occurred_at=aware(row.created_at),
    )


def _from_checkpoints() -> Any:
    return CHECKPOINTS.join(EXECUTIONS, E.id == C.execution_id)


def pending_statement(limit: int) -> Select[Any]:
    """The oldest ``limit`` node events not published (a scan: the relay runs in doctor)."""
    return (
        select(*COLUMNS)
        .select_from(_from_checkpoints())
        .where(UNPUBLISHED)
        .order_by(C.created_at, C.id)
        .limit(limit)
    )


def unpublished_count_statement(created_before: datetime | None = None) -> Select[Any]:
    stmt = select(func.count()).select_from(CHECKPOINTS).where(UNPUBLISHED)
    if created_before is not None:
        stmt = stmt.where(C.created_at < created_before)
    return stmt


def unpublished_statement(created_before: datetime) -> Select[Any]:
    """Node events not published, written before ``created_before`` (doctor's findings)."""
    return (
        select(C.id, C.created_at)
        .where(UNPUBLISHED, C.created_at < created_before)
        .order_by(C.created_at, C.id)
    )


def entries_statement(
    execution_id: str | None,
    batch_id: str | None,
    since: datetime | None,
    limit: int,
) -> Select[Any]:
    """The newest ``limit`` node events of an execution or a batch (newest first)."""
    stmt = select(*COLUMNS).select_from(_from_checkpoints()).where(NODE_EVENT)
    if execution_id is not None:
        stmt = stmt.where(C.execution_id == execution_id)
    if batch_id is not None:
        stmt = stmt.where(E.labels["batch_test_id"].as_string() == batch_id)
    if since is not None:
        stmt = stmt.where(C.created_at >= since)
    return stmt.order_by(C.created_at.desc(), C.id.desc()).limit(limit)


def _published(dialect: str) -> ColumnElement[bool]:
    """``C.id`` is one of the ids the marker published (one parameter, ``ids``)."""
    if dialect == "sqlite":
        ids: Select[Any] = select(literal_column("value")).select_from(
            func.json_each(bindparam("ids", type_=Text()))
        )
        return C.id.in_(ids)
    return C.id == any_(bindparam("ids", type_=postgresql.ARRAY(String(64))))


def _mark(dialect: str) -> Insert:
    top = bindparam("top", type_=M.published_through.type)
    execution = bindparam("execution_id", type_=String())
    # A node checkpoint of the execution up to ``top`` that no mark covers and whose event
    # the marker did not publish: the mark must not pass it.
    # (``source`` a named parameter like the others: ``precompiled`` runs it, compiled once)
    node_event = (C.source == bindparam("source", type_=String())) & C.variant.is_not(None)
    gap = exists().where(
        C.execution_id == execution,
        node_event,
        C.created_at <= top,
        ~_COVERED,
        ~_published(dialect),
    )
    source = select(execution.label("execution_id"), top.label("published_through")).where(~gap)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(NODE_EVENT_MARKS).from_select(["execution_id", "published_through"], source)
    return stmt.on_conflict_do_update(
        index_elements=[M.execution_id],
        set_={"published_through": stmt.excluded.published_through},
        where=stmt.excluded.published_through > M.published_through,
    )


_MARKS = {dialect: _mark(dialect) for dialect in ("sqlite", "postgresql")}


def mark_statement(dialect: str) -> Insert:
    """Move an execution's mark to ``top`` when every node event up to it is covered or
    among ``ids``; parameters ``execution_id``, ``top``, ``ids`` and ``source`` (the node
    checkpoints' source)."""
    return _MARKS[dialect]


def mark_params(dialect: str, events: Sequence[NodeCompleted]) -> list[dict[str, Any]]:
    """One parameter set per execution of ``events`` (published node events)."""
    by_execution: dict[str, list[NodeCompleted]] = defaultdict(list)
    for e in events:
        by_execution[e.execution_id].append(e)
    params = []
    for execution_id, mine in by_execution.items():
        ids = [e.event_id for e in mine]
        params.append(
            {
                "source": Source.NODE.value,
                "execution_id": execution_id,
                "top": max(e.occurred_at for e in mine),
                "ids": json.dumps(ids) if dialect == "sqlite" else ids,
            }
        )
    return params


def mark_published(connection: Connection, events: Sequence[NodeCompleted]) -> None:
    """Mark published node events (in the connection's current transaction)."""
    if events:
        dialect = connection.dialect.name
        # The dialect's ON CONFLICT insert has no cache key: SQLAlchemy would compile it on
        # every call.
        precompiled.execute_many(connection, mark_statement(dialect), mark_params(dialect, events))
