"""The SQLAlchemy unit of work: one connection per ``with`` block, committed as it goes."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from psycopg.errors import ForeignKeyViolation, UniqueViolation
from sqlalchemy import Connection, Engine, Executable
from sqlalchemy.exc import DBAPIError, IntegrityError

from wtb_domain.adapters.sql.cases import SqlCases
from wtb_domain.adapters.sql.checkpoint_writes import (
    MAX_VALUES,
    save_node_params,
    save_node_statement,
    start_execution_params,
    start_execution_statement,
)
from wtb_domain.adapters.sql.database import prepared_statement_hint
from wtb_domain.adapters.sql.repositories import (
    SqlAudit,
    SqlBatches,
    SqlCheckpoints,
    SqlExecutions,
    SqlResults,
)
from wtb_domain.errors import ExecutionError, NotFoundError, StoreError
from wtb_domain.model import Checkpoint, Execution


def _describe(exc: DBAPIError) -> str:
    """The driver's message, with a hint for errors that have a known configuration cause."""
    return f"{exc.orig}{prepared_statement_hint(getattr(exc.orig, 'sqlstate', None))}"


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
    cases: SqlCases

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
        self.cases = SqlCases(self.connection)
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
            raise StoreError(f"database error: {_describe(exc)}") from exc

    def commit(self) -> None:
        try:
            self.connection.commit()
        except DBAPIError as exc:
            self.connection.rollback()
            raise StoreError(f"commit failed: {_describe(exc)}") from exc

    def rollback(self) -> None:
        self.connection.rollback()

    def start_execution(
        self, execution: Execution, checkpoint: Checkpoint, new_blobs: Mapping[str, str]
    ) -> None:
        """Store a new execution with its first checkpoint, committed together.

        One statement in autocommit mode on PostgreSQL when nothing is pending (see
        :mod:`~wtb_domain.adapters.sql.checkpoint_writes`), else the statements and a commit.
        """
        if not self._one_statement_writes(new_blobs):
            self.executions.add(execution)
            self.checkpoints.add(checkpoint, new_blobs)
            self.commit()
            return
        statement = start_execution_statement(len(new_blobs))
        try:
            self._autocommit(statement, start_execution_params(execution, checkpoint, new_blobs))
        except IntegrityError as exc:
            # Checkpoint and values skip conflicts: a unique violation is the execution's id.
            if isinstance(exc.orig, UniqueViolation):
                raise ExecutionError(
                    f"execution {execution.id!r} already exists; use another id"
                ) from None
            raise StoreError(f"cannot store execution {execution.id!r}: {_describe(exc)}") from exc
        except DBAPIError as exc:
            raise StoreError(f"cannot store execution {execution.id!r}: {_describe(exc)}") from exc

    def save_node(
        self, checkpoint: Checkpoint, new_blobs: Mapping[str, str], execution: Execution
    ) -> None:
        """Store a node's checkpoint and move the execution's head, committed together.

        One statement in autocommit mode on PostgreSQL when nothing is pending (see
        :mod:`~wtb_domain.adapters.sql.checkpoint_writes`), else the statements and a commit
        (pending writes of this unit of work must commit with it).
        """
        if not self._one_statement_writes(new_blobs):
            self.executions.update(execution)
            self.checkpoints.add(checkpoint, new_blobs)
            self.commit()
            return
        statement = save_node_statement(len(new_blobs))
        try:
            moved = self._autocommit(statement, save_node_params(checkpoint, new_blobs, execution))
        except IntegrityError as exc:
            # The statement's only foreign key is the checkpoint's execution.
            if isinstance(exc.orig, ForeignKeyViolation):
                raise NotFoundError(f"no execution {execution.id!r}") from None
            raise StoreError(f"node write failed: {_describe(exc)}") from exc
        except DBAPIError as exc:
            raise StoreError(f"node write failed: {_describe(exc)}") from exc
        if moved == 0:
            raise NotFoundError(f"no execution {execution.id!r}")

    def _one_statement_writes(self, new_blobs: Mapping[str, str]) -> bool:
        """PostgreSQL, not too many values, and no transaction to join (SQLAlchemy cannot
        switch to autocommit in one; the engine ends each transaction before it writes)."""
        conn = self.connection
        return (
            conn.dialect.name == "postgresql"
            and len(new_blobs) <= MAX_VALUES
            and not conn.in_transaction()
        )

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
