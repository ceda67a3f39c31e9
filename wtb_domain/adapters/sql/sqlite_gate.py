"""One SQLite write transaction at a time per process and file, queued on a Python lock.

Every WTB write transaction on SQLite starts with ``BEGIN IMMEDIATE`` (the write lock). When
another thread holds it, SQLite's busy handler does not wait for its release: it sleeps and
retries (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms, then every 100 ms), so with 8
threads writing one file a transaction of 2 ms can wait 25-100 ms for a lock that was free
long before. Threads of one process therefore queue here first, on a lock that wakes the
next thread when the holder commits or rolls back; other processes still meet at SQLite's
lock and its busy timeout.

Nothing changes in what is written or when it is durable: each transaction still commits on
its own, the gate is only taken for the time of ``BEGIN IMMEDIATE ... COMMIT``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc

_gates_lock = threading.Lock()
_gates: dict[str, WriteGate] = {}


class WriteGate:
    """The in-process write lock of one SQLite file."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def _after_fork(self) -> None:
        # A child process inherits the lock in whatever state a parent thread left it;
        # no thread of the child holds a transaction of the parent.
        self.lock = threading.Lock()


def gate_for(database: str | None) -> WriteGate | None:
    """The gate of a SQLite database file (None for an in-memory database)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    key = str(Path(database).resolve())
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = WriteGate()
        return gate


def _reset_after_fork() -> None:
    global _gates_lock
    _gates_lock = threading.Lock()
    for gate in _gates.values():
        gate._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class GatedConnection(sqlite3.Connection):
    """A sqlite3 connection that holds its file's gate from BEGIN to the end of the
    transaction (commit, rollback or close, however SQLAlchemy ends it)."""

    wtb_gate: WriteGate | None = None
    wtb_holds = False

    def wtb_enter(self, timeout_s: float) -> None:
        """Take the gate before ``BEGIN IMMEDIATE`` (raises "database is locked" after
        ``timeout_s``, as SQLite's busy timeout would)."""
        gate = self.wtb_gate
        if gate is None or self.wtb_holds:
            return
        if not gate.lock.acquire(timeout=timeout_s):
            raise sqlite3.OperationalError(
                f"database is locked (another transaction of this process, in another "
                f"thread or still open in this one, held the write lock for over {timeout_s:g} s)"
            )
        self.wtb_holds = True

    def wtb_settle(self) -> None:
        """Release the gate once no transaction is open on this connection."""
        if not self.wtb_holds:
            return
        try:
            open_ = self.in_transaction
        except sqlite3.ProgrammingError:  # closed: SQLite rolled the transaction back
            open_ = False
        if not open_:
            self.wtb_holds = False
            if self.wtb_gate is not None:
                self.wtb_gate.lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.wtb_settle()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.wtb_settle()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.wtb_settle()


def enter_gate(conn: Any, timeout_s: float) -> bool:
    """Take the gate of ``conn``'s file (a gated connection); whether it is one."""
    dbapi = conn.connection.dbapi_connection
    if not isinstance(dbapi, GatedConnection):
        return False
    try:
        dbapi.wtb_enter(timeout_s)
    except sqlite3.OperationalError as exc:  # as SQLAlchemy reports a busy timeout
        raise sa_exc.OperationalError("BEGIN IMMEDIATE", None, exc) from exc
    return True


def begin_gate_only(conn: Any, timeout_s: float) -> None:
    """SQLAlchemy ``begin`` listener of a one-statement write (``sqlite_writes``): the gate,
    and no BEGIN -- the driver is in autocommit mode, so the statement is its own
    transaction (SQLite's busy timeout still applies to it across processes). The gate is
    released when SQLAlchemy ends its transaction (the driver's commit is then a no-op)."""
    enter_gate(conn, timeout_s)


def begin_immediate(conn: Any, timeout_s: float) -> None:
    """SQLAlchemy ``begin`` listener: the gate (on a gated connection), then the write lock.

    Taking the write lock up front matters: a deferred transaction that later writes can
    fail with SQLITE_BUSY without waiting when another process writes at the same time.
    """
    gated = enter_gate(conn, timeout_s)
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if gated:
            conn.connection.dbapi_connection.wtb_settle()
        raise
