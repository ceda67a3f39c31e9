"""The audit log, the outbox and processed-event ids on SQL, and how events are written.

:func:`event_rows` turns staged events into outbox and audit rows. Written by
:func:`insert_events` (statements in the current transaction: SQLite, or PostgreSQL inside a
transaction) or as data-modifying CTEs of the one-statement checkpoint writes
(:func:`event_ctes`, see :mod:`~wtb_domain.adapters.sql.checkpoint_writes`). Both skip an
event id already stored (a retried write).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CTE,
    Connection,
    Insert,
    Select,
    Table,
    bindparam,
    func,
    insert,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql

from wtb_domain.adapters.sql.tables import AUDIT, OUTBOX, PROCESSED
from wtb_domain.audit import describe
from wtb_domain.events import Event, event_type, from_payload, to_payload
from wtb_domain.model import AuditEntry, OutboxRecord, Severity, utcnow

OUTBOX_COLUMNS = ("event_id", "event_type", "payload", "created_at")
AUDIT_COLUMNS = (
    "event_id",
    "execution_id",
    "batch_id",
    "node",
    "event_type",
    "severity",
    "message",
    "data",
    "created_at",
)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def audit_values(entry: AuditEntry) -> dict[str, Any]:
    return {
        "event_id": entry.event_id,
        "execution_id": entry.execution_id,
        "batch_id": entry.batch_id,
        "node": entry.node,
        "event_type": entry.event_type,
        "severity": entry.severity.value,
        "message": entry.message,
        "data": entry.details,
        "created_at": entry.created_at,
    }


def event_rows(events: Sequence[Event]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(outbox rows, audit rows) of ``events``, keyed by column name."""
    now = utcnow()
    outbox = [
        {
            "event_id": e.event_id,
            "event_type": event_type(e),
            "payload": to_payload(e),
            "created_at": now,
        }
        for e in events
    ]
    return outbox, [audit_values(describe(e)) for e in events]


# SQLAlchemy 2.0 does not cache statements with ``on_conflict_do_nothing()`` (their cache key
# is None: compiled again on every execution). The event inserts spell the conflict clause as
# text instead -- ``INSERT OR IGNORE`` on SQLite, an ``ON CONFLICT`` suffix of the SELECT on
# PostgreSQL -- so each shape compiles once.
_SKIP_PG = "ON CONFLICT (event_id) DO NOTHING"


def _insert_ignore(dialect: str, table: Table) -> Insert:
    """INSERT of every event column, skipping an event id already stored."""
    columns = OUTBOX_COLUMNS if table is OUTBOX else AUDIT_COLUMNS
    if dialect == "sqlite":
        values = {c: bindparam(c, type_=table.c[c].type) for c in columns}
        return insert(table).values(values).prefix_with("OR IGNORE", dialect="sqlite")
    row = select(*[bindparam(c, type_=table.c[c].type).label(c) for c in columns])
    return insert(table).from_select(list(columns), row.suffix_with(_SKIP_PG))


_INSERTS = {
    name: (_insert_ignore(name, OUTBOX), _insert_ignore(name, AUDIT))
    for name in ("postgresql", "sqlite")
}


class _SqliteInserts:
    """The event inserts on SQLite as driver-level ``executemany`` calls (one statement per
    table for all events of a transaction): the SQL is compiled once and each value goes
    through the column type's own bind processor (the same text SQLAlchemy would send),
    without SQLAlchemy's per-statement compilation overhead. They still go through the
    connection (``exec_driver_sql``), so cursor events see them."""

    def __init__(self, connection: Connection) -> None:
        dialect = connection.dialect
        self.statements = []
        for table, columns in ((OUTBOX, OUTBOX_COLUMNS), (AUDIT, AUDIT_COLUMNS)):
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            sql = f"INSERT OR IGNORE INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608
            procs = [table.c[c].type._cached_bind_processor(dialect) for c in columns]
            self.statements.append((sql, list(columns), procs))

    def __call__(self, connection: Connection, rows: Sequence[list[dict[str, Any]]]) -> None:
        for (sql, columns, procs), batch in zip(self.statements, rows, strict=True):
            params = [
                tuple(
                    p(row[c]) if p is not None else row[c]
                    for c, p in zip(columns, procs, strict=True)
                )
                for row in batch
            ]
            connection.exec_driver_sql(sql, params)


_sqlite_inserts: _SqliteInserts | None = None


def insert_events(connection: Connection, events: Sequence[Event]) -> None:
    """Write events' outbox and audit rows in the connection's current transaction."""
    global _sqlite_inserts
    outbox, audit = event_rows(events)
    if connection.dialect.name == "sqlite":
        if _sqlite_inserts is None:
            _sqlite_inserts = _SqliteInserts(connection)
        _sqlite_inserts(connection, [outbox, audit])
        return
    outbox_insert, audit_insert = _INSERTS[connection.dialect.name]
    connection.execute(outbox_insert, outbox)
    connection.execute(audit_insert, audit)


def _param(table: str, column: str, i: int) -> str:
    return f"ev_{table}_{column}_{i}"


def event_ctes(count: int, guard: CTE | None) -> list[CTE]:
    """Inserts of ``count`` events' outbox and audit rows, as CTEs of one PostgreSQL
    statement; with a ``guard`` (an UPDATE ... RETURNING), rows are selected ``FROM`` it, so
    nothing is written when the guarded update changed no row."""
    if count == 0:
        return []
    out: list[CTE] = []
    targets = ((OUTBOX, OUTBOX_COLUMNS, "outbox"), (AUDIT, AUDIT_COLUMNS, "audit"))
    for table, columns, name in targets:
        rows: list[Select[Any]] = []
        for i in range(count):
            stmt = select(
                *[bindparam(_param(name, c, i), type_=table.c[c].type).label(c) for c in columns]
            )
            rows.append(stmt if guard is None else stmt.select_from(guard))
        source = rows[0]
        if count > 1:
            union = union_all(*rows).subquery(f"{name}_rows")
            source = select(*[union.c[c] for c in columns])
        inserted = insert(table).from_select(list(columns), source.suffix_with(_SKIP_PG))
        out.append(inserted.cte(f"inserted_{name}"))
    return out


def event_params(events: Sequence[Event]) -> dict[str, Any]:
    """The parameters of :func:`event_ctes` for ``events``."""
    outbox, audit = event_rows(events)
    params: dict[str, Any] = {}
    for name, rows in (("outbox", outbox), ("audit", audit)):
        for i, row in enumerate(rows):
            for column, value in row.items():
                params[_param(name, column, i)] = value
    return params


class SqlAudit:
    def __init__(self, connection: Connection) -> None:
        self._s = connection

    def add(self, entry: AuditEntry) -> None:
        self._s.execute(AUDIT.insert(), [audit_values(entry)])

    def entries(
        self,
        execution_id: str | None = None,
        limit: int = 200,
        *,
        batch_id: str | None = None,
        min_severity: Severity | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        stmt = select(AUDIT).order_by(AUDIT.c.id.desc()).limit(limit)
        if execution_id is not None:
            stmt = stmt.where(AUDIT.c.execution_id == execution_id)
        if batch_id is not None:
            stmt = stmt.where(AUDIT.c.batch_id == batch_id)
        if min_severity is not None:
            stmt = stmt.where(AUDIT.c.severity.in_([s.value for s in min_severity.and_above()]))
        if since is not None:
            stmt = stmt.where(AUDIT.c.created_at >= since)
        rows = list(self._s.execute(stmt))
        rows.reverse()
        return [
            AuditEntry(
                id=r.id,
                execution_id=r.execution_id,
                event_type=r.event_type,
                severity=Severity(r.severity.upper()),
                message=r.message,
                details=dict(r.data or {}),
                created_at=_aware(r.created_at),
                batch_id=r.batch_id,
                node=r.node,
                event_id=r.event_id,
            )
            for r in rows
        ]


class SqlOutbox:
    def __init__(self, connection: Connection) -> None:
        self._s = connection

    def pending(self, limit: int = 500) -> list[OutboxRecord]:
        stmt = (
            select(OUTBOX).where(OUTBOX.c.published_at.is_(None)).order_by(OUTBOX.c.id).limit(limit)
        )
        return [
            OutboxRecord(
                r.id,
                from_payload(r.event_type, dict(r.payload), r.event_id, _aware(r.created_at)),
                _aware(r.created_at),
            )
            for r in self._s.execute(stmt)
        ]

    def mark_published(self, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        stmt = (
            update(OUTBOX)
            .where(OUTBOX.c.event_id.in_(bindparam("ids", expanding=True)))
            .where(OUTBOX.c.published_at.is_(None))
            .values(published_at=utcnow())
        )
        self._s.execute(stmt, {"ids": list(event_ids)})

    def unpublished_count(self) -> int:
        stmt = select(func.count()).select_from(OUTBOX).where(OUTBOX.c.published_at.is_(None))
        return int(self._s.execute(stmt).scalar_one())


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
