"""The event rows (outbox and audit trail in one), processed-event ids, and how events are
written.

Since migration 0010 every event is one row of ``wtb_outbox`` -- except, since 0012, a
``NodeCompleted``, stored as its checkpoint (:mod:`~wtb_domain.adapters.sql.node_events`;
the reads here merge those in) -- the payload the relay
publishes and the audit entry's subject and severity (its message and details are derived
from the payload when read: a write formats no text it may never show). :func:`event_rows`
turns staged events into rows; they are written by :func:`insert_events` (one statement in
the current transaction: SQLite, or PostgreSQL inside a transaction) or as one
data-modifying CTE of the one-statement writes (:func:`event_ctes`, see
:mod:`~wtb_domain.adapters.sql.checkpoint_writes`). Both skip an event id already stored (a
retried write).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    Insert,
    Select,
    String,
    Text,
    Update,
    any_,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql

from wtb_domain.adapters.sql import node_events
from wtb_domain.adapters.sql.node_events import is_stored_as_checkpoint, node_event
from wtb_domain.adapters.sql.repositories.rows import aware
from wtb_domain.adapters.sql.tables import OUTBOX, PROCESSED
from wtb_domain.audit import describe, details_of, headline, severity_of, snake
from wtb_domain.events import (
    EVENT_TYPES,
    Event,
    NodeCompleted,
    event_type,
    from_payload,
    subject,
    to_payload,
)
from wtb_domain.ids import new_id
from wtb_domain.model import AuditEntry, OutboxRecord, Severity, utcnow
from wtb_domain.redaction import redact

EVENTS = OUTBOX
EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "payload",
    "created_at",
    "execution_id",
    "batch_id",
    "node",
    "severity",
    "message",
)


def event_row(event: Event) -> dict[str, Any]:
    """The row of one event, keyed by column name (``created_at``: when it occurred)."""
    batch_id, execution_id, node = subject(event)
    return {
        "event_id": event.event_id,
        "event_type": event_type(event),
        "payload": to_payload(event),
        "created_at": event.occurred_at,
        "execution_id": execution_id,
        "batch_id": batch_id,
        "node": node,
        "severity": severity_of(event).value,
        "message": None,  # formatted from the payload when the entry is read (``_entry``)
    }


def event_rows(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The rows of ``events``."""
    return [event_row(e) for e in events]


# SQLAlchemy 2.0 does not cache statements with ``on_conflict_do_nothing()`` (their cache key
# is None: compiled again on every execution). The event insert spells the conflict clause as
# text instead -- ``INSERT OR IGNORE`` on SQLite, an ``ON CONFLICT`` suffix of the SELECT on
# PostgreSQL -- so each shape compiles once.
_SKIP_PG = "ON CONFLICT (event_id) DO NOTHING"


def _insert_ignore_pg() -> Insert:
    """INSERT of every event column, skipping an event id already stored."""
    row = select(*[bindparam(c, type_=EVENTS.c[c].type).label(c) for c in EVENT_COLUMNS])
    return insert(EVENTS).from_select(list(EVENT_COLUMNS), row.suffix_with(_SKIP_PG))


_INSERT_PG = _insert_ignore_pg()


class _SqliteInsert:
    """The event insert on SQLite as one driver-level ``executemany`` (all events of a
    transaction): the SQL is compiled once and each value goes through the column type's own
    bind processor (the same text SQLAlchemy would send), without SQLAlchemy's per-statement
    compilation overhead. It still goes through the connection (``exec_driver_sql``), so
    cursor events see it."""

    def __init__(self, connection: Connection) -> None:
        dialect = connection.dialect
        names = ", ".join(EVENT_COLUMNS)
        marks = ", ".join("?" for _ in EVENT_COLUMNS)
        self.sql = f"INSERT OR IGNORE INTO {EVENTS.name} ({names}) VALUES ({marks})"  # noqa: S608
        procs = [EVENTS.c[c].type._cached_bind_processor(dialect) for c in EVENT_COLUMNS]
        self.procs = list(zip(EVENT_COLUMNS, procs, strict=True))

    def __call__(self, connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        procs = self.procs
        params = [tuple(row[c] if p is None else p(row[c]) for c, p in procs) for row in rows]
        connection.exec_driver_sql(self.sql, params)


_sqlite_insert: _SqliteInsert | None = None


def insert_events(connection: Connection, events: Sequence[Event]) -> None:
    """Write events' rows in the connection's current transaction (one statement)."""
    global _sqlite_insert
    rows = event_rows(events)
    if connection.dialect.name == "sqlite":
        if _sqlite_insert is None:
            _sqlite_insert = _SqliteInsert(connection)
        _sqlite_insert(connection, rows)
        return
    connection.execute(_INSERT_PG, rows)


def _param(column: str, i: int) -> str:
    return f"ev_{column}_{i}"


def event_ctes(count: int, guard: CTE | None) -> list[CTE]:
    """The insert of ``count`` events' rows, as a CTE of one PostgreSQL statement; with a
    ``guard`` (an UPDATE ... RETURNING), rows are selected ``FROM`` it, so nothing is written
    when the guarded update changed no row."""
    if count == 0:
        return []
    rows: list[Select[Any]] = []
    for i in range(count):
        stmt = select(
            *[bindparam(_param(c, i), type_=EVENTS.c[c].type).label(c) for c in EVENT_COLUMNS]
        )
        rows.append(stmt if guard is None else stmt.select_from(guard))
    source = rows[0]
    if count > 1:
        union = union_all(*rows).subquery("event_rows")
        source = select(*[union.c[c] for c in EVENT_COLUMNS])
    inserted = insert(EVENTS).from_select(list(EVENT_COLUMNS), source.suffix_with(_SKIP_PG))
    return [inserted.cte("inserted_events")]


def event_params(events: Sequence[Event]) -> dict[str, Any]:
    """The parameters of :func:`event_ctes` for ``events``."""
    params: dict[str, Any] = {}
    for i, row in enumerate(event_rows(events)):
        for column, value in row.items():
            params[_param(column, i)] = value
    return params


def _entry(r: Any) -> AuditEntry:
    """The audit entry of an event row. Rows of entries that had no event (written before
    migration 0007, or by :meth:`SqlAudit.add`) hold their details as the payload."""
    payload = dict(r.payload or {})
    known = r.event_type in EVENT_TYPES
    created = aware(r.created_at)
    if r.severity is not None and r.message is not None:  # an entry without an event
        severity, message = Severity(r.severity.upper()), r.message
    elif not known:
        severity, message = Severity.INFO, snake(r.event_type)
    else:  # an event's row: its message is formatted now (headline's severity is the
        # stored one, see audit.severity_of)
        severity, message = headline(from_payload(r.event_type, payload, r.event_id, created))
    return AuditEntry(
        id=r.id,
        execution_id=r.execution_id,
        event_type=snake(r.event_type),
        severity=severity,
        message=message,
        details=details_of(payload) if known else payload,
        created_at=created,
        batch_id=r.batch_id,
        node=r.node,
        event_id=r.event_id,
    )


class SqlAudit:
    """The audit trail: a view of the event rows."""

    def __init__(self, connection: Connection) -> None:
        self._s = connection

    def add(self, entry: AuditEntry) -> None:
        """An entry without an event to publish (stored as published)."""
        row = {
            "event_id": entry.event_id or new_id(),
            "event_type": entry.event_type,
            "payload": redact(entry.details),
            "created_at": entry.created_at,
            "published_at": entry.created_at,
            "execution_id": entry.execution_id,
            "batch_id": entry.batch_id,
            "node": entry.node,
            "severity": entry.severity.value,
            "message": entry.message,
        }
        self._s.execute(EVENTS.insert(), [row])

    def entries(
        self,
        execution_id: str | None = None,
        limit: int = 200,
        *,
        batch_id: str | None = None,
        min_severity: Severity | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        stmt = select(EVENTS).order_by(EVENTS.c.id.desc()).limit(limit)
        if execution_id is not None:
            stmt = stmt.where(EVENTS.c.execution_id == execution_id)
        if batch_id is not None:
            stmt = stmt.where(EVENTS.c.batch_id == batch_id)
        if min_severity is not None:
            stmt = stmt.where(EVENTS.c.severity.in_([s.value for s in min_severity.and_above()]))
        if since is not None:
            stmt = stmt.where(EVENTS.c.created_at >= since)
        rows = list(self._s.execute(stmt))
        rows.reverse()
        entries = [_entry(r) for r in rows]
        if min_severity is not None and _NODE_SEVERITY not in min_severity.and_above():
            return entries
        derived = node_events.entries_statement(execution_id, batch_id, since, limit)
        nodes = [describe(node_event(r)) for r in self._s.execute(derived)]
        nodes.reverse()
        return _newest(limit, entries, nodes)


_NODE_SEVERITY = severity_of(NodeCompleted("", "", "", "", 0.0))


def _newest(limit: int, rows: list[AuditEntry], nodes: list[AuditEntry]) -> list[AuditEntry]:
    """The newest ``limit`` of event rows (in row order) and node events (in time order),
    oldest first, interleaved by time."""
    merged = list(heapq.merge(rows, nodes, key=lambda e: e.created_at))
    return merged[-limit:] if limit > 0 else []


def _mark(ids: ColumnElement[bool]) -> Update:
    """Mark the events ``ids`` names published (one that already is keeps its time)."""
    return (
        update(OUTBOX)
        .where(ids, OUTBOX.c.published_at.is_(None))
        .values(published_at=bindparam("now", type_=OUTBOX.c.published_at.type))
    )


# The ids as one parameter (an expanding IN renders and binds one placeholder per id on
# every call): a JSON array on SQLite, an array on PostgreSQL.
_MARK = {
    "sqlite": _mark(
        OUTBOX.c.event_id.in_(
            select(literal_column("value")).select_from(
                func.json_each(bindparam("ids", type_=Text()))
            )
        )
    ),
    "postgresql": _mark(
        OUTBOX.c.event_id == any_(bindparam("ids", type_=postgresql.ARRAY(String(64))))
    ),
}


class SqlOutbox:
    def __init__(self, connection: Connection) -> None:
        self._s = connection

    def pending(self, limit: int = 500) -> list[OutboxRecord]:
        """Unpublished event rows (in row order) and node events (read from their
        checkpoints, in time order), interleaved by time: the oldest ``limit``."""
        stmt = (
            select(OUTBOX).where(OUTBOX.c.published_at.is_(None)).order_by(OUTBOX.c.id).limit(limit)
        )
        rows = [
            OutboxRecord(
                r.id,
                from_payload(r.event_type, dict(r.payload), r.event_id, aware(r.created_at)),
                aware(r.created_at),
            )
            for r in self._s.execute(stmt)
        ]
        nodes = [
            OutboxRecord(None, e, e.occurred_at)
            for e in map(node_event, self._s.execute(node_events.pending_statement(limit)))
        ]
        return list(heapq.merge(rows, nodes, key=lambda r: r.created_at))[:limit]

    def mark_published(self, events: Sequence[Event]) -> None:
        nodes: list[NodeCompleted] = []
        ids: list[str] = []
        for e in events:
            if is_stored_as_checkpoint(e):
                nodes.append(e)
            else:
                ids.append(e.event_id)
        node_events.mark_published(self._s, nodes)
        if not ids:
            return
        dialect = self._s.dialect.name
        param: Any = json.dumps(ids) if dialect == "sqlite" else ids
        self._s.execute(_MARK[dialect], {"ids": param, "now": utcnow()})

    def unpublished_count(self) -> int:
        stmt = select(func.count()).select_from(OUTBOX).where(OUTBOX.c.published_at.is_(None))
        rows = int(self._s.execute(stmt).scalar_one())
        return rows + int(self._s.execute(node_events.unpublished_count_statement()).scalar_one())


_FIRST_TIME = {
    "postgresql": postgresql.insert(PROCESSED)
    .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
    .returning(PROCESSED.c.event_id),
    # INSERT OR IGNORE: cacheable (on_conflict_do_nothing() compiles on every call).
    "sqlite": insert(PROCESSED)
    .prefix_with("OR IGNORE", dialect="sqlite")
    .returning(PROCESSED.c.event_id),
}


class SqlProcessed:
    def __init__(self, connection: Connection) -> None:
        self._s = connection

    def first_time(self, consumer: str, event_id: str) -> bool:
        stmt = _FIRST_TIME[self._s.dialect.name]
        row = {"consumer": consumer, "event_id": event_id, "processed_at": utcnow()}
        return self._s.execute(stmt, row).first() is not None
