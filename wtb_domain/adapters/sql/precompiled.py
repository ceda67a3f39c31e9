"""Statements SQLAlchemy compiles on every execution, compiled once per process instead.

SQLAlchemy caches a statement's compiled SQL by its cache key, and the dialect ``INSERT``
constructs with ``ON CONFLICT`` (``sqlalchemy.dialects.sqlite.insert``) have none: each
execution compiles them again (1-2 ms of CPU, more than the statement's own run on SQLite).
For such statements, fixed at import time, :func:`execute_many` keeps the SQL string, the
order of its positional parameters and their bind processors, and runs it with
``exec_driver_sql``: the same SQL, every value still a bound parameter converted as
SQLAlchemy would, and the same engine events (statement counters, metrics).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import CursorResult


@dataclass(frozen=True)
class _Compiled:
    statement: Any  # kept alive: the cache is keyed by its id
    sql: str
    order: tuple[str, ...]
    processors: dict[str, Callable[[Any], Any]]


_lock = threading.Lock()
_cache: dict[tuple[int, str, tuple[str, ...]], _Compiled] = {}


def _compiled(connection: Connection, statement: Any, keys: tuple[str, ...]) -> _Compiled | None:
    dialect = connection.dialect
    key = (id(statement), dialect.name, keys)
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit.statement is statement:
        return hit
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    # Positional (SQLite): the parameters in SQL order; named (psycopg): each name once.
    order = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
    if not order or set(order) != set(keys):  # other binds than the rows': not for us
        return None
    processors = {}
    for name in order:
        proc = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if proc is not None:
            processors[name] = proc
    entry = _Compiled(statement, str(compiled), order, processors)
    with _lock:
        _cache[key] = entry
    return entry


def execute_many(
    connection: Connection, statement: Any, rows: Sequence[Mapping[str, Any]]
) -> CursorResult[Any]:
    """Execute ``statement`` (a module-level constant) for every row (all with the same keys).

    Statements whose SQL has other parameters than the rows' keys go through
    ``connection.execute`` as usual.
    """
    entry = _compiled(connection, statement, tuple(rows[0]))
    if entry is None:
        return connection.execute(statement, list(rows))
    procs, order = entry.processors, entry.order
    params: list[Any]
    if connection.dialect.positional:
        params = [tuple(procs[k](row[k]) if k in procs else row[k] for k in order) for row in rows]
    else:
        params = [{k: procs[k](row[k]) if k in procs else row[k] for k in order} for row in rows]
    return connection.exec_driver_sql(entry.sql, params if len(params) > 1 else params[0])
