"""The SQLAlchemy unit of work: one connection per ``with`` block, committed as it goes."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from wtb_domain.adapters.sql.repositories import (
    SqlAudit,
    SqlBatches,
    SqlCheckpoints,
    SqlExecutions,
    SqlResults,
)
from wtb_domain.errors import StoreError
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
        """Store a node's checkpoint and move the execution's head, committed together."""
        self.executions.update(execution)
        self.checkpoints.add(checkpoint, new_blobs)
        self.commit()
