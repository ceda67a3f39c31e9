"""The executions repository and its cached statements."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from wtb_domain.adapters.sql.repositories.rows import _execution_from, execution_values
from wtb_domain.adapters.sql.tables import EXECUTIONS
from wtb_domain.claims import Claim
from wtb_domain.errors import ExecutionExists, NotFoundError
from wtb_domain.model import Execution, Status, utcnow

MUTABLE = (
    "status",
    "head_checkpoint_id",
    "paused_at",
    "error_type",
    "error_message",
    "error_traceback",
    "metrics",
    "updated_at",
)
UPDATE_EXECUTION = (
    update(EXECUTIONS)
    .where(EXECUTIONS.c.id == bindparam("execution_id"))
    .values({name: bindparam(name) for name in MUTABLE})
)


def execution_update_params(execution: Execution) -> dict[str, Any]:
    """The parameters of :data:`UPDATE_EXECUTION`: the MUTABLE values and ``execution_id``."""
    values = execution_values(execution)
    params = {name: values[name] for name in MUTABLE}
    params["execution_id"] = execution.id
    return params


INSERT_EXECUTION_SQLITE = insert(EXECUTIONS).prefix_with("OR IGNORE", dialect="sqlite")


class SqlExecutions:
    def __init__(self, connection: Connection) -> None:
        self._s = connection

    def add(self, execution: Execution, claim: Claim | None = None) -> None:
        """Insert a new execution, claimed for ``claim`` (lease from now) if given."""
        row = execution_values(execution)
        if claim is not None:
            row["claimed_by"] = claim.owner
            row["claim_expires_at"] = utcnow() + timedelta(seconds=claim.lease_s)
        if self._s.dialect.name == "sqlite":  # one statement, no savepoint around it
            if self._s.execute(INSERT_EXECUTION_SQLITE, row).rowcount == 1:
                return
            raise ExecutionExists(f"execution {execution.id!r} already exists; use another id")
        try:
            with self._s.begin_nested():
                self._s.execute(insert(EXECUTIONS), [row])
        except IntegrityError:
            raise ExecutionExists(
                f"execution {execution.id!r} already exists; use another id"
            ) from None

    def update(self, execution: Execution) -> None:
        """Write the fields that change while an execution runs (one cached statement)."""
        result = self._s.execute(UPDATE_EXECUTION, execution_update_params(execution))
        if result.rowcount == 0:
            raise NotFoundError(f"no execution {execution.id!r}")

    def get(self, execution_id: str) -> Execution:
        row = self._s.execute(select(EXECUTIONS).where(EXECUTIONS.c.id == execution_id)).first()
        if row is None:
            raise NotFoundError(f"no execution {execution_id!r}")
        return _execution_from(row)

    def recent(self, *, status: Status | None = None, limit: int = 50) -> list[Execution]:
        stmt = select(EXECUTIONS).order_by(EXECUTIONS.c.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(EXECUTIONS.c.status == status.value)
        return [_execution_from(r) for r in self._s.execute(stmt)]
