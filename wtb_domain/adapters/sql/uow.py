"""The SQLAlchemy unit of work: one session (one transaction) per ``with`` block."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from wtb_domain.adapters.sql.repositories import (
    SqlAudit,
    SqlBatches,
    SqlCheckpoints,
    SqlExecutions,
    SqlResults,
)
from wtb_domain.errors import StoreError


class SqlUnitOfWork:
    """Rolls back unless :meth:`commit` is called; always closes its session."""

    executions: SqlExecutions
    checkpoints: SqlCheckpoints
    audit: SqlAudit
    batches: SqlBatches
    results: SqlResults

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def __enter__(self) -> Self:
        self.session = self._sessions()
        self.executions = SqlExecutions(self.session)
        self.checkpoints = SqlCheckpoints(self.session)
        self.audit = SqlAudit(self.session)
        self.batches = SqlBatches(self.session)
        self.results = SqlResults(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.close()
        if isinstance(exc, DBAPIError):
            raise StoreError(f"database error: {exc.orig}") from exc

    def commit(self) -> None:
        try:
            self.session.commit()
        except DBAPIError as exc:
            self.session.rollback()
            raise StoreError(f"commit failed: {exc.orig}") from exc

    def rollback(self) -> None:
        self.session.rollback()
