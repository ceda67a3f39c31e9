"""The batch tests repository."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql

from wtb_domain.adapters.sql.repositories.rows import aware
from wtb_domain.adapters.sql.tables import BATCHES
from wtb_domain.errors import NotFoundError
from wtb_domain.model import BatchStatus, BatchTest


def _batch_values(b: BatchTest) -> dict[str, Any]:
    return {
        "id": b.id,
        "name": b.name,
        "workflow_ref": b.workflow_ref,
        "spec": b.spec,
        "status": b.status.value,
        "total": b.total,
        "cancel_requested": b.cancel_requested,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
    }


INSERT_BATCH = {
    "postgresql": postgresql.insert(BATCHES).on_conflict_do_nothing(index_elements=["id"]),
    "sqlite": insert(BATCHES).prefix_with("OR IGNORE", dialect="sqlite"),
}


class SqlBatches:
    def __init__(self, connection: Connection) -> None:
        self._s = connection

    def add(self, batch: BatchTest) -> None:
        self._s.execute(insert(BATCHES), [_batch_values(batch)])

    def add_if_absent(self, batch: BatchTest) -> bool:
        """Insert the batch; False (nothing written) if another writer holds its id."""
        stmt = INSERT_BATCH[self._s.dialect.name]
        return bool(self._s.execute(stmt, _batch_values(batch)).rowcount)

    def update(self, batch: BatchTest) -> None:
        values = _batch_values(batch)
        del values["id"], values["created_at"]
        self._s.execute(update(BATCHES).where(BATCHES.c.id == batch.id).values(**values))

    def find(self, batch_id: str) -> BatchTest | None:
        row = self._s.execute(select(BATCHES).where(BATCHES.c.id == batch_id)).first()
        return None if row is None else self._batch_from(row)

    def latest(self, name: str, *, exclude: str | None = None) -> BatchTest | None:
        stmt = (
            select(BATCHES)
            .where(BATCHES.c.name == name, BATCHES.c.status != BatchStatus.RUNNING.value)
            .order_by(BATCHES.c.created_at.desc())
            .limit(1)
        )
        if exclude is not None:
            stmt = stmt.where(BATCHES.c.id != exclude)
        row = self._s.execute(stmt).first()
        return None if row is None else self._batch_from(row)

    @staticmethod
    def _batch_from(row: Any) -> BatchTest:
        return BatchTest(
            id=row.id,
            name=row.name,
            workflow_ref=row.workflow_ref,
            spec=dict(row.spec),
            status=BatchStatus(row.status),
            total=row.total,
            cancel_requested=bool(row.cancel_requested),
            created_at=aware(row.created_at),
            updated_at=aware(row.updated_at),
        )

    def get(self, batch_id: str) -> BatchTest:
        found = self.find(batch_id)
        if found is None:
            raise NotFoundError(f"no batch test {batch_id!r}")
        return found

    def get_for_update(self, batch_id: str) -> BatchTest:
        """``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's transaction holds the write lock
        already (BEGIN IMMEDIATE)."""
        stmt = select(BATCHES).where(BATCHES.c.id == batch_id).with_for_update()
        row = self._s.execute(stmt).first()
        if row is None:
            raise NotFoundError(f"no batch test {batch_id!r}")
        return self._batch_from(row)
