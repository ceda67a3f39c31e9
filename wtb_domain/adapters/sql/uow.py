"""The SQLAlchemy unit of work: one connection per ``with`` block, committed as it goes."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from psycopg.errors import ForeignKeyViolation
from sqlalchemy import Connection, Engine, Executable
from sqlalchemy.exc import DBAPIError, IntegrityError

from wtb_domain.adapters.sql.node_write import SAVE_NODE, save_node_params
from wtb_domain.adapters.sql.repositories import (
    SqlAudit,
    SqlBatches,
    SqlCheckpoints,
    SqlExecutions,
    SqlResults,
)
from wtb_domain.errors import NotFoundError, StoreError
from wtb_domain.model import Checkpoint, Execution


class SqlUnitOfWork:
    """Rolls back unless :meth:`commit` is called; always returns its connection.

    Core statements on one Connection (no ORM Session): the hot path writes a checkpoint and
    moves the execution's head per node, and the ORM layer would only add overhead there.
    A unit of work may commit several times (the engine commits once per node).
    """

    executions: SqlExecutions
    checkpoints: SqlCheckpoints
    audit: SqlAudit
    batches: SqlBatches
    results: SqlResults

    connection: Connection

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> Self:
        self.connection = self._engine.connect()
        self.executions = SqlExecutions(self.connection)
        self.checkpoints = SqlCheckpoints(self.connection)
        self.audit = SqlAudit(self.connection)
        self.batches = SqlBatches(self.connection)
        self.results = SqlResults(self.connection)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.connection.rollback()
        finally:
            self.connection.close()
        if isinstance(exc, DBAPIError):
            raise StoreError(f"database error: {exc.orig}") from exc

    def commit(self) -> None:
        try:
            self.connection.commit()
        except DBAPIError as exc:
            self.connection.rollback()
            raise StoreError(f"commit failed: {exc.orig}") from exc

    def rollback(self) -> None:
        self.connection.rollback()

    def save_node(
        self, checkpoint: Checkpoint, new_blobs: Mapping[str, str], execution: Execution
    ) -> None:
        """Store a node's checkpoint and move the execution's head, committed together.

        On PostgreSQL, outside a transaction, this is one statement in autocommit mode (one
        round trip: see :mod:`~wtb_domain.adapters.sql.node_write`). Otherwise (SQLite, or
        writes of this unit of work still pending, which must commit with it) the usual
        statements and a commit.
        """
        conn = self.connection
        if conn.dialect.name != "postgresql" or conn.in_transaction():
            self.executions.update(execution)
            self.checkpoints.add(checkpoint, new_blobs)
            self.commit()
            return
        try:
            moved = self._autocommit(SAVE_NODE, save_node_params(checkpoint, new_blobs, execution))
        except IntegrityError as exc:
            # The statement's only foreign key is the checkpoint's execution.
            if isinstance(exc.orig, ForeignKeyViolation):
                raise NotFoundError(f"no execution {execution.id!r}") from None
            raise StoreError(f"node write failed: {exc.orig}") from exc
        except DBAPIError as exc:
            raise StoreError(f"node write failed: {exc.orig}") from exc
        if moved == 0:
            raise NotFoundError(f"no execution {execution.id!r}")

    def _autocommit(self, statement: Executable, params: dict[str, Any]) -> int:
        """Run one statement as its own transaction; its row count.

        A psycopg connection switches to and from autocommit locally, without a round trip.
        SQLAlchemy also restores the default when the connection goes back to the pool, and a
        connection replaced after a disconnect starts with the default.
        """
        conn = self.connection
        conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            rowcount = conn.execute(statement, params).rowcount
            conn.commit()  # ends SQLAlchemy's transaction; nothing is sent in autocommit
        except BaseException:
            conn.rollback()
            raise
        finally:
            if not conn.invalidated:
                conn.execution_options(isolation_level=conn.default_isolation_level)
        return rowcount
