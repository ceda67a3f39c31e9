"""The SQLAlchemy unit of work: one connection per ``with`` block, committed as it goes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, Executable
from sqlalchemy.exc import DBAPIError, IntegrityError

from wtb_domain.adapters.sql import claims, result_writes, sqlite_writes
from wtb_domain.adapters.sql.baselines import SqlBaselines
from wtb_domain.adapters.sql.calls import SqlCalls, SqlNodeCache
from wtb_domain.adapters.sql.cases import SqlCases
from wtb_domain.adapters.sql.checkpoint_writes import (
    MAX_VALUES,
    guarded_write_statement,
    save_node_params,
    save_node_statement,
    start_execution_params,
    start_execution_statement,
)
from wtb_domain.adapters.sql.checkpoint_writes import (
    autocommit as pg_autocommit,
)
from wtb_domain.adapters.sql.database import READ_ONLY, prepared_statement_hint
from wtb_domain.adapters.sql.event_store import (
    SqlAudit,
    SqlOutbox,
    SqlProcessed,
    event_params,
    insert_events,
)
from wtb_domain.adapters.sql.node_events import is_stored_as_checkpoint
from wtb_domain.adapters.sql.repositories import (
    SqlBatches,
    SqlCheckpoints,
    SqlExecutions,
    SqlResults,
)
from wtb_domain.claims import Claim
from wtb_domain.errors import ExecutionExists, StoreError
from wtb_domain.events import Event
from wtb_domain.model import BatchResult, Checkpoint, Execution

# PostgreSQL's unique_violation, read from the driver's error (psycopg loads with a
# PostgreSQL URL only; SQLite's errors carry no SQLSTATE).
UNIQUE_VIOLATION = "23505"


def _exists(execution_id: str) -> ExecutionExists:
    return ExecutionExists(f"execution {execution_id!r} already exists; use another id")


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
    baselines: SqlBaselines
    outbox: SqlOutbox
    processed: SqlProcessed
    cases: SqlCases
    calls: SqlCalls
    node_cache: SqlNodeCache

    connection: Connection

    MAX_EVENTS = 20
    """Most events a one-statement write carries as CTEs (more: separate statements)."""

    def __init__(self, engine: Engine, record_events: bool = True, read_only: bool = False) -> None:
        self._engine = engine
        self._record_events = record_events
        self._read_only = read_only
        self._events: list[Event] = []

    def __enter__(self) -> Self:
        self.connection = self._engine.connect()
        if self._read_only:  # SQLite: a deferred BEGIN, not the write lock (database.py)
            self.connection.execution_options(**{READ_ONLY: True})
        self.executions = SqlExecutions(self.connection)
        self.checkpoints = SqlCheckpoints(self.connection)
        self.audit = SqlAudit(self.connection)
        self.batches = SqlBatches(self.connection)
        self.results = SqlResults(self.connection)
        self.baselines = SqlBaselines(self.connection)
        self.outbox = SqlOutbox(self.connection)
        self.processed = SqlProcessed(self.connection)
        self.cases = SqlCases(self.connection)
        self.calls = SqlCalls(self.connection)
        self.node_cache = SqlNodeCache(self.connection)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._events.clear()
        try:
            self.connection.rollback()
        finally:
            self.connection.close()
        if isinstance(exc, DBAPIError):
            raise StoreError(f"database error: {_describe(exc)}") from exc

    def record(self, events: Sequence[Event]) -> None:
        """Stage events for the next commit (one event row each, in its transaction); a
        ``NodeCompleted`` is stored as its checkpoint (``node_events``), with no row."""
        if self._record_events:
            self._events.extend(e for e in events if not is_stored_as_checkpoint(e))

    def add_results(
        self, results: Sequence[BatchResult], events_for: Callable[[int], Sequence[Event]]
    ) -> tuple[int, list[Event]]:
        """See :meth:`UnitOfWork.add_results`; one statement when nothing is pending
        (:mod:`~wtb_domain.adapters.sql.result_writes`, on SQLite ``sqlite_writes``)."""
        if self._one_statement_results(results):
            events = list(events_for(len(results)))  # published even when not stored
            stored = events if self._record_events else []
            if len(stored) <= self.MAX_EVENTS and self.connection.dialect.name == "sqlite":
                rows = sqlite_writes.result_rows(results, stored)  # aborts if one is stored:
                if sqlite_writes.write(self.connection, lambda: rows, "cannot store results"):
                    return len(results), events  # (else the general path stores the new ones)
            elif len(stored) <= self.MAX_EVENTS:
                params, rollups, metrics = result_writes.params(results)
                params.update(event_params(stored))
                stmt = result_writes.statement(len(results), rollups, metrics, len(stored))
                try:
                    inserted = int(self.connection.execute(stmt, params).scalar_one())
                except DBAPIError as exc:
                    self.connection.rollback()
                    raise StoreError(f"cannot store results: {_describe(exc)}") from exc
                if inserted == len(results):
                    self.commit()
                    return inserted, events
                self.rollback()  # none or some were new: the general path sorts them out
                if inserted == 0:
                    return 0, []
        recorded = self.results.add_many(results)
        written = list(events_for(recorded)) if recorded else []
        self.record(written)
        self.commit()
        return recorded, written

    def _one_statement_results(self, results: Sequence[BatchResult]) -> bool:
        leaves = {(r.batch_test_id, r.combination_name, r.case_id, r.repeat) for r in results}
        return (
            self.connection.dialect.name in ("postgresql", "sqlite")
            and 0 < len(results) <= result_writes.MAX_RESULTS
            and len(leaves) == len(results)
            and not self._events
            and not self.connection.in_transaction()
        )

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def commit(self) -> None:
        try:
            if self._events:
                insert_events(self.connection, self._take_events())
            self.connection.commit()
        except DBAPIError as exc:
            self.connection.rollback()
            raise StoreError(f"commit failed: {_describe(exc)}") from exc

    def rollback(self) -> None:
        self._events.clear()
        self.connection.rollback()

    def start_execution(
        self,
        execution: Execution,
        checkpoint: Checkpoint,
        new_blobs: Mapping[str, str],
        claim: Claim | None = None,
    ) -> None:
        """Store a new execution (claimed for ``claim`` if given) with its first checkpoint,
        committed together.

        One statement in autocommit mode when nothing is pending (see
        :mod:`~wtb_domain.adapters.sql.checkpoint_writes`; SQLite: ``sqlite_writes``), else
        the statements and a commit.
        """
        if self._one_statement_writes(new_blobs, "sqlite"):
            rows = partial(sqlite_writes.start_rows, execution, checkpoint, new_blobs, claim)
            return self._sqlite_write(
                rows, f"cannot store {execution.id!r}", partial(_exists, execution.id)
            )
        if not self._one_statement_writes(new_blobs):
            self._lock_for_lease()
            self.executions.add(execution, claim)
            self.checkpoints.add(checkpoint, new_blobs)
            self.commit()
            return
        events = self._take_events()
        statement = start_execution_statement(len(new_blobs), len(events))
        params = start_execution_params(execution, checkpoint, new_blobs, claim)
        params.update(event_params(events))
        try:
            pg_autocommit(self.connection, statement, params)
        except IntegrityError as exc:
            # Checkpoint and values skip conflicts: a unique violation is the execution's id.
            if getattr(exc.orig, "sqlstate", None) == UNIQUE_VIOLATION:
                raise _exists(execution.id) from None
            raise StoreError(f"cannot store execution {execution.id!r}: {_describe(exc)}") from exc
        except DBAPIError as exc:
            raise StoreError(f"cannot store execution {execution.id!r}: {_describe(exc)}") from exc

    def save_node(
        self,
        checkpoint: Checkpoint,
        new_blobs: Mapping[str, str],
        execution: Execution,
        claim: Claim | None = None,
        *,
        release: bool = False,
    ) -> None:
        """Store a node's checkpoint and move the execution's head from the checkpoint's
        parent (a compare-and-set, renewing ``claim``, or freeing it with ``release``),
        committed together.

        One statement in autocommit mode when nothing is pending (see
        :mod:`~wtb_domain.adapters.sql.checkpoint_writes`; SQLite: ``sqlite_writes``), else
        the statements and a commit (pending writes of this unit of work must commit with it).
        A refused write leaves nothing behind: the one statement inserts nothing (or aborts),
        the transaction is rolled back.
        """
        hold = claim is not None and not release
        if self._one_statement_writes(new_blobs, "sqlite"):
            refused = partial(self._refusal, execution.id, claim)
            rows = partial(sqlite_writes.node_rows, execution, checkpoint, new_blobs, claim, hold)
            return self._sqlite_write(rows, "node write failed", refused)
        if not self._one_statement_writes(new_blobs):
            self._guarded(execution, checkpoint.parent_id, claim, hold=hold)
            self.checkpoints.add(checkpoint, new_blobs)
            self.commit()
            return
        events = self._take_events()
        statement = save_node_statement(len(new_blobs), len(events))
        params = save_node_params(checkpoint, new_blobs, execution, claim, release=release)
        params.update(event_params(events))
        try:
            moved = pg_autocommit(self.connection, statement, params, scalar=True)
        except IntegrityError as exc:
            raise StoreError(f"node write failed: {_describe(exc)}") from exc
        except DBAPIError as exc:
            raise StoreError(f"node write failed: {_describe(exc)}") from exc
        if moved == 0:
            raise self._refusal(execution.id, claim)

    def claim_execution(
        self, execution: Execution, claim: Claim, takeover_from: str | None = None
    ) -> None:
        """Claim the execution for ``claim`` and write its fields, if its head is still
        ``execution.head_checkpoint_id`` and no other runner (but ``takeover_from``) holds a
        live claim; commit."""
        self._guarded_commit(
            execution, execution.head_checkpoint_id, claim, hold=True, takeover_from=takeover_from
        )

    def release_execution(self, execution: Execution, claim: Claim) -> None:
        """Write the execution's fields (paused, finished, failed) and free ``claim``; commit."""
        self._guarded_commit(execution, execution.head_checkpoint_id, claim, hold=False)

    def move_head(self, execution: Execution, expected_head: str | None) -> None:
        """Write the execution's fields (a new head) if its head is ``expected_head`` and no
        runner holds a live claim; commit."""
        self._guarded_commit(execution, expected_head, None, hold=False)

    def renew_claim(self, execution_id: str, claim: Claim) -> bool:
        """Extend ``claim``'s lease; False if the execution is no longer claimed by it."""
        return self._set_claim(execution_id, claim, keep=True)

    def drop_claim(self, execution_id: str, claim: Claim) -> None:
        """Free the execution if ``claim`` still holds it (nothing else changes)."""
        self._set_claim(execution_id, claim, keep=False)

    def _set_claim(self, execution_id: str, claim: Claim, *, keep: bool) -> bool:
        statement = claims.renew_statement(self.connection.dialect.name)
        self._lock_for_lease()
        params = claims.renew_params(execution_id, claim, keep=keep)
        return self._write_one(statement, params) == 1

    def _guarded(
        self, execution: Execution, expected_head: str | None, claim: Claim | None, *, hold: bool
    ) -> None:
        """The guarded execution write in the current transaction; refused: roll back, raise."""
        statement = claims.guarded_update(self.connection.dialect.name)
        self._lock_for_lease()
        params = claims.guard_params(execution, expected_head, claim, hold=hold)
        if self.connection.execute(statement, params).rowcount == 0:
            self.rollback()
            raise self._refusal(execution.id, claim)

    def _guarded_commit(
        self,
        execution: Execution,
        expected_head: str | None,
        claim: Claim | None,
        *,
        hold: bool,
        takeover_from: str | None = None,
    ) -> None:
        if self._one_statement_writes({}, "sqlite"):  # the guard and any events: one statement
            refused = partial(self._refusal, execution.id, claim)
            rows = partial(sqlite_writes.guarded_rows, execution, expected_head, claim, hold)
            return self._sqlite_write(partial(rows, takeover_from), "write failed", refused)
        self._lock_for_lease()
        params = claims.guard_params(execution, expected_head, claim, hold=hold)
        if takeover_from is not None:
            params["owner"] = takeover_from
        if self._events and self._one_statement_writes({}):
            # The update and its events as one statement (CTEs): one round trip.
            events = self._take_events()
            params.update(event_params(events))
            try:
                changed = pg_autocommit(
                    self.connection, guarded_write_statement(len(events)), params, scalar=True
                )
            except DBAPIError as exc:
                raise StoreError(f"execution write failed: {_describe(exc)}") from exc
        else:
            statement = claims.guarded_update(self.connection.dialect.name)
            changed = self._write_one(statement, params)
        if changed == 0:
            raise self._refusal(execution.id, claim)

    def _lock_for_lease(self) -> None:
        """SQLite: take the write lock (BEGIN IMMEDIATE) before the clock is read for a claim
        write, so its lease and its expiry test are timed when the write applies, not before
        a wait for the lock (which would shorten the lease by the wait). PostgreSQL uses
        the server's statement time."""
        conn = self.connection
        if conn.dialect.name == "sqlite" and not conn.in_transaction():
            conn.begin()

    def _write_one(self, statement: Executable, params: dict[str, Any]) -> int:
        """One statement, committed with what is pending: in autocommit mode (one round trip)
        on PostgreSQL when nothing is; its row count."""
        if self._one_statement_writes({}) and not self._events:
            try:
                return pg_autocommit(self.connection, statement, params)
            except DBAPIError as exc:
                raise StoreError(f"execution write failed: {_describe(exc)}") from exc
        rowcount = int(self.connection.execute(statement, params).rowcount)
        if rowcount == 0:  # refused: what is pending does not commit either
            self.rollback()
        else:
            self.commit()
        return rowcount

    def _refusal(self, execution_id: str, claim: Claim | None) -> Exception:
        try:
            return claims.refusal(self.connection, execution_id, claim)
        finally:
            self.rollback()

    def _one_statement_writes(
        self, new_blobs: Mapping[str, str], dialect: str = "postgresql"
    ) -> bool:
        """That dialect, not too many values, and no transaction to join (SQLAlchemy cannot
        switch to autocommit in one; the engine ends each transaction before it writes)."""
        conn = self.connection
        return (
            conn.dialect.name == dialect
            and len(new_blobs) <= MAX_VALUES
            and len(self._events) <= self.MAX_EVENTS
            and not conn.in_transaction()
        )

    def _sqlite_write(
        self, rows: Callable[[list[Event]], Any], what: str, refused: Callable[[], Exception]
    ) -> None:
        """SQLite: ``rows`` (with the pending events) as one statement in autocommit mode,
        built holding the write gate (see :func:`sqlite_writes.write`); refused: nothing
        was written, raise ``refused()``."""
        if not sqlite_writes.write(self.connection, partial(rows, self._take_events()), what):
            raise refused()
