"""The cases of a batch in SQL: inserted in multi-row batches, read by id or in order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Insert, func, insert, select
from sqlalchemy.dialects import postgresql

from wtb_domain.adapters.sql.tables import CASES
from wtb_domain.errors import NotFoundError

INSERT_CHUNK = 1000


class SqlCases:
    def __init__(self, connection: Connection) -> None:
        self._s = connection

    def add_many(self, batch_id: str, cases: Sequence[Mapping[str, Any]]) -> None:
        rows = [
            {
                "batch_test_id": batch_id,
                "case_id": case["id"],
                "position": position,
                "input": case["input"],
                "expected": case.get("expected"),
            }
            for position, case in enumerate(cases)
        ]
        stmt = self._insert()
        for start in range(0, len(rows), INSERT_CHUNK):
            self._s.execute(stmt, rows[start : start + INSERT_CHUNK])

    def _insert(self) -> Insert:
        """Idempotent: two runners registering one batch id at once store its cases once
        (they are the same cases: registration compares their digest)."""
        keys = ["batch_test_id", "case_id"]
        if self._s.dialect.name == "postgresql":
            return postgresql.insert(CASES).on_conflict_do_nothing(index_elements=keys)
        return insert(CASES).prefix_with("OR IGNORE", dialect="sqlite")  # cacheable

    def get(self, batch_id: str, case_id: str) -> dict[str, Any]:
        row = self._s.execute(
            select(CASES.c.case_id, CASES.c.input, CASES.c.expected).where(
                CASES.c.batch_test_id == batch_id, CASES.c.case_id == case_id
            )
        ).first()
        if row is None:
            raise NotFoundError(f"batch {batch_id!r} has no case {case_id!r}")
        return {"id": row.case_id, "input": row.input, "expected": row.expected}

    def ids(self, batch_id: str) -> list[str]:
        stmt = (
            select(CASES.c.case_id)
            .where(CASES.c.batch_test_id == batch_id)
            .order_by(CASES.c.position)
        )
        return list(self._s.execute(stmt).scalars())

    def count(self, batch_id: str) -> int:
        stmt = select(func.count()).select_from(CASES).where(CASES.c.batch_test_id == batch_id)
        return int(self._s.execute(stmt).scalar_one())
