"""SQLite writes as one statement each: rows inserted into a view whose triggers write them.

The SQLite counterpart of :mod:`~wtb_domain.adapters.sql.checkpoint_writes` and
:mod:`~wtb_domain.adapters.sql.result_writes`. SQLite has no data-modifying CTEs; its
stored procedure is an ``INSTEAD OF INSERT`` trigger on a view. Migration 0011 creates the
view ``wtb_sqlite_writes`` (columns ``kind``, ``c0`` .. ``c19``) and one trigger per kind
(:data:`LAYOUTS` gives each kind's columns, in the order the trigger reads them). A write is
then one ``INSERT INTO wtb_sqlite_writes VALUES (...), (...), ...`` -- the guard row first
(the compare-and-set of :func:`~wtb_domain.adapters.sql.claims.guarded_update`), then
values, checkpoint and events -- sent in autocommit mode: no BEGIN, no COMMIT, the statement
and everything its triggers do is one transaction. A trigger that refuses the write
(``RAISE(ABORT, 'wtb:...')``) aborts the whole statement, which leaves nothing behind.

Every value goes through its column type's bind processor, as SQLAlchemy would send it to
the table itself (dates and JSON are stored exactly as the Core statements store them).
The SQL of each shape (the kinds of its rows) is built once. The statement is sent holding
the file's write gate (:mod:`~wtb_domain.adapters.sql.sqlite_gate`), taken before the
clock is read for a lease; across processes SQLite's busy timeout applies to it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, String
from sqlalchemy.exc import DBAPIError, IntegrityError

from wtb_domain.adapters.sql.claims import Stamp, guard_params
from wtb_domain.adapters.sql.database import AUTOCOMMIT_WRITE
from wtb_domain.adapters.sql.event_store import EVENT_COLUMNS, event_rows
from wtb_domain.adapters.sql.repositories import MUTABLE, checkpoint_values, execution_values
from wtb_domain.adapters.sql.result_writes import RESULT_COLUMNS
from wtb_domain.adapters.sql.rollups import summarise
from wtb_domain.adapters.sql.tables import (
    BLOBS,
    CHECKPOINTS,
    EXECUTIONS,
    METRIC_ROLLUPS,
    OUTBOX,
    RESULTS,
    ROLLUPS,
)
from wtb_domain.claims import Claim
from wtb_domain.errors import StoreError
from wtb_domain.events import Event
from wtb_domain.model import BatchResult, Checkpoint, Execution, utcnow

VIEW = "wtb_sqlite_writes"
WIDTH = 20
REFUSED = "wtb:refused"
EXECUTION_EXISTS = "wtb:execution exists"
RESULT_STORED = "wtb:result stored"

_GUARD_KEYS = ("execution_id", "expected_head", "new_head", "owner", "new_owner", "now")
LAYOUTS: dict[str, tuple[tuple[str, Any], ...]] = {
    "guard": (
        *((k, Stamp if k == "now" else String()) for k in _GUARD_KEYS),
        ("lease_end", Stamp),
        *((name, EXECUTIONS.c[name].type) for name in MUTABLE),
    ),
    "execution": tuple((c.name, c.type) for c in EXECUTIONS.c),
    "checkpoint": tuple((c.name, c.type) for c in CHECKPOINTS.c),
    "blob": tuple((c.name, c.type) for c in BLOBS.c),
    "event": tuple((name, OUTBOX.c[name].type) for name in EVENT_COLUMNS),
    "result": tuple((name, RESULTS.c[name].type) for name in RESULT_COLUMNS),
    "rollup": tuple((c.name, c.type) for c in ROLLUPS.c),
    "metric": tuple((c.name, c.type) for c in METRIC_ROLLUPS.c),
}
"""Each kind's row: (key, type) of ``c0``, ``c1``, ... as migration 0011's triggers read
them."""

Row = tuple[str, Mapping[str, Any]]


class Aborted(Exception):
    """A trigger refused the write (nothing was written); ``reason`` is its message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@functools.lru_cache(maxsize=512)
def _sql(kinds: tuple[str, ...]) -> str:
    """``INSERT INTO wtb_sqlite_writes VALUES ...``: one row per kind, unused columns NULL."""
    rows = []
    for kind in kinds:
        width = len(LAYOUTS[kind])
        cells = [f"'{kind}'", *(["?"] * width), *("NULL" for _ in range(WIDTH - width))]
        rows.append(f"({', '.join(cells)})")
    return f"INSERT INTO {VIEW} VALUES {', '.join(rows)}"  # noqa: S608 (kinds are ours)


@functools.cache
def _processors(dialect: Any) -> dict[str, list[tuple[str, Callable[[Any], Any] | None]]]:
    return {
        kind: [(key, type_._cached_bind_processor(dialect)) for key, type_ in layout]
        for kind, layout in LAYOUTS.items()
    }


def execute(connection: Connection, rows: Sequence[Row]) -> None:
    """Send ``rows`` as one statement; raises :class:`Aborted` when a trigger refused."""
    procs = _processors(connection.dialect)
    params: list[Any] = []
    for kind, values in rows:
        params.extend(values[k] if p is None else p(values[k]) for k, p in procs[kind])
    try:
        connection.exec_driver_sql(_sql(tuple(kind for kind, _ in rows)), tuple(params))
    except IntegrityError as exc:
        reason = str(exc.orig)
        if reason.startswith("wtb:"):
            raise Aborted(reason) from None
        raise


def write(connection: Connection, rows: Callable[[], Sequence[Row]], what: str) -> bool:
    """Build ``rows`` holding the write gate and send them as one statement in autocommit
    mode; False if a trigger refused the write (nothing was written). A database error is a
    ``StoreError`` starting with ``what``."""
    try:
        with autocommit(connection):
            execute(connection, rows())
    except Aborted:
        return False
    except DBAPIError as exc:
        raise StoreError(f"{what}: {exc.orig}") from exc
    return True


@contextmanager
def autocommit(connection: Connection) -> Iterator[None]:
    """One statement as its own transaction, holding the file's write gate from before the
    block (build the parameters, with the clock, inside it) to its end."""
    connection.execution_options(**{AUTOCOMMIT_WRITE: True})
    try:
        connection.begin()  # the gate only (database._sqlite_begin): no BEGIN is sent
        try:
            yield
            connection.commit()  # ends SQLAlchemy's transaction; the driver's is a no-op
        except BaseException:
            connection.rollback()
            raise
    finally:
        connection.execution_options(**{AUTOCOMMIT_WRITE: False})


def _value_rows(checkpoint: Checkpoint, new_blobs: Mapping[str, str]) -> list[Row]:
    rows: list[Row] = [
        ("blob", {"hash": h, "data": new_blobs[h], "size": len(new_blobs[h])})
        for h in sorted(new_blobs)
    ]
    rows.append(("checkpoint", checkpoint_values(checkpoint)))
    return rows


def _event_rows(events: Sequence[Event]) -> list[Row]:
    return [("event", row) for row in event_rows(events)]


def guarded_rows(
    execution: Execution,
    expected_head: str | None,
    claim: Claim | None,
    hold: bool,
    takeover_from: str | None,
    events: Sequence[Event],
) -> list[Row]:
    """The guarded execution write (``claims.guard_params``; ``takeover_from``: the owner
    whose claim may be taken over) and events."""
    guard = guard_params(execution, expected_head, claim, hold=hold)
    if takeover_from is not None:
        guard["owner"] = takeover_from
    return [("guard", guard), *_event_rows(events)]


def node_rows(
    execution: Execution,
    checkpoint: Checkpoint,
    new_blobs: Mapping[str, str],
    claim: Claim | None,
    hold: bool,
    events: Sequence[Event],
) -> list[Row]:
    """A node's write: the head move from the checkpoint's parent (renewing ``claim`` if
    ``hold``, else freeing it), its new values, checkpoint and events."""
    guard = guard_params(execution, checkpoint.parent_id, claim, hold=hold)
    return [("guard", guard), *_value_rows(checkpoint, new_blobs), *_event_rows(events)]


def start_rows(
    execution: Execution,
    checkpoint: Checkpoint,
    new_blobs: Mapping[str, str],
    claim: Claim | None,
    events: Sequence[Event],
) -> list[Row]:
    """A new execution (claimed for ``claim``, lease from now) with its first checkpoint."""
    row = execution_values(execution)
    row["claimed_by"] = claim.owner if claim is not None else None
    row["claim_expires_at"] = (
        utcnow() + timedelta(seconds=claim.lease_s) if claim is not None else None
    )
    return [("execution", row), *_value_rows(checkpoint, new_blobs), *_event_rows(events)]


def result_rows(results: Sequence[BatchResult], events: Sequence[Event]) -> list[Row]:
    """Results (every leaf new, else the write aborts), their rollups and events."""
    rows: list[Row] = [("result", {c: getattr(r, c) for c in RESULT_COLUMNS}) for r in results]
    rollup_rows, metric_rows = summarise(results)
    rows.extend(("rollup", r) for r in rollup_rows)
    rows.extend(("metric", r) for r in metric_rows)
    rows.extend(_event_rows(events))
    return rows
