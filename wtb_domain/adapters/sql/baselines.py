"""Pinned baselines in SQL: one row per blessing, the newest row of a name is its baseline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select

from wtb_domain.adapters.sql.repositories import aware
from wtb_domain.adapters.sql.tables import BASELINES, BATCHES
from wtb_domain.errors import NotFoundError
from wtb_domain.ids import new_id
from wtb_domain.model import Baseline


def _baseline_from(row: Any) -> Baseline:
    return Baseline(
        name=row.name,
        batch_test_id=row.batch_test_id,
        note=row.note,
        blessed_by=row.blessed_by,
        blessed_at=aware(row.blessed_at),
        id=row.id,
    )


class SqlBaselines:
    def __init__(self, connection: Connection) -> None:
        self._s = connection

    def add(self, baseline: Baseline) -> None:
        values = {
            "id": baseline.id or new_id(),
            "name": baseline.name,
            "batch_test_id": baseline.batch_test_id,
            "note": baseline.note,
            "blessed_at": baseline.blessed_at,
            "blessed_by": baseline.blessed_by,
        }
        known = select(BATCHES.c.id).where(BATCHES.c.id == baseline.batch_test_id)
        if self._s.execute(known).first() is None:
            raise NotFoundError(
                f"no batch test {baseline.batch_test_id!r} to bless as baseline "
                f"{baseline.name!r}; list batches with `wtb batch status ID`"
            )
        self._s.execute(insert(BASELINES), [values])

    def _ordered(self, name: str) -> Any:
        return (
            select(BASELINES)
            .where(BASELINES.c.name == name)
            .order_by(BASELINES.c.blessed_at.desc(), BASELINES.c.id.desc())
        )

    def current(self, name: str) -> Baseline | None:
        row = self._s.execute(self._ordered(name).limit(1)).first()
        return None if row is None else _baseline_from(row)

    def history(self, name: str) -> list[Baseline]:
        return [_baseline_from(row) for row in self._s.execute(self._ordered(name))]
