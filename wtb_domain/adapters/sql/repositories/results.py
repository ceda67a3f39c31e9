"""The batch results repository: result inserts (kept in the rollups), progress and reads;
the comparison matrix and totals come from :mod:`wtb_domain.adapters.sql.aggregates`,
imported on first use."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.dialects import postgresql

from wtb_domain.adapters.sql import rollups
from wtb_domain.adapters.sql.repositories.rows import aware
from wtb_domain.adapters.sql.tables import RESULTS, ROLLUPS
from wtb_domain.comparison import CombinationTotals, ComparisonMatrix
from wtb_domain.model import BatchProgress, BatchResult

LEAF_COLUMNS = ["batch_test_id", "combination_name", "case_id", "repeat"]


# RETURNING names the rows really inserted (psycopg 3 reports no rowcount for executemany):
# only those go into the rollups.
INSERT_RESULTS = {
    "postgresql": postgresql.insert(RESULTS)
    .on_conflict_do_nothing(index_elements=LEAF_COLUMNS)
    .returning(*(RESULTS.c[name] for name in LEAF_COLUMNS)),
    # SQLite: INSERT OR IGNORE (on_conflict_do_nothing() would compile on every call).
    "sqlite": insert(RESULTS)
    .prefix_with("OR IGNORE", dialect="sqlite")
    .returning(*(RESULTS.c[name] for name in LEAF_COLUMNS)),
}


def _leaf(r: BatchResult) -> tuple[str, str, str, int]:
    return (r.batch_test_id, r.combination_name, r.case_id, r.repeat)


class SqlResults:
    def __init__(self, connection: Connection) -> None:
        self._s = connection
        self._insert = INSERT_RESULTS[connection.dialect.name]

    def add_many(self, results: Sequence[BatchResult]) -> int:
        """Insert results whose leaf is new (others are skipped) and add them to the rollups.

        Returns:
            How many were inserted.
        """
        if not results:
            return 0
        rows = [
            {
                "batch_test_id": r.batch_test_id,
                "execution_id": r.execution_id,
                "combination_name": r.combination_name,
                "variant_config": r.variant_config,
                "case_id": r.case_id,
                "repeat": r.repeat,
                "success": r.success,
                "passed": r.passed,
                "metrics": r.metrics,
                "overall_score": r.overall_score,
                "duration_ms": r.duration_ms,
                "worker_id": r.worker_id,
                "error": r.error,
                "created_at": r.created_at,
            }
            for r in results
        ]
        inserted = {tuple(row) for row in self._s.execute(self._insert, rows)}
        if inserted:
            first = {_leaf(r): r for r in reversed(results)}  # a leaf twice: the first one
            rollups.add(self._s, [r for leaf, r in first.items() if leaf in inserted])
        return len(inserted)

    def done_keys(self, batch_id: str, case_id: str) -> set[str]:
        stmt = select(RESULTS.c.combination_name, RESULTS.c.repeat).where(
            RESULTS.c.batch_test_id == batch_id, RESULTS.c.case_id == case_id
        )
        return {f"{name}#{repeat}" for name, repeat in self._s.execute(stmt)}

    def progress(self, batch_id: str, total: int) -> BatchProgress:
        stmt = select(
            func.coalesce(func.sum(ROLLUPS.c.n), 0), func.coalesce(func.sum(ROLLUPS.c.n_failed), 0)
        ).where(ROLLUPS.c.batch_test_id == batch_id)
        done, failed = self._s.execute(stmt).one()
        return BatchProgress(total, int(done), int(failed))

    def for_batch(self, batch_id: str) -> list[BatchResult]:
        stmt = select(RESULTS).where(RESULTS.c.batch_test_id == batch_id).order_by(RESULTS.c.id)
        return [
            BatchResult(
                batch_test_id=r.batch_test_id,
                execution_id=r.execution_id,
                combination_name=r.combination_name,
                variant_config=dict(r.variant_config),
                case_id=r.case_id,
                repeat=r.repeat,
                success=bool(r.success),
                passed=bool(r.passed),
                overall_score=float(r.overall_score),
                duration_ms=float(r.duration_ms),
                metrics=dict(r.metrics or {}),
                worker_id=r.worker_id,
                error=r.error,
                created_at=aware(r.created_at),
            )
            for r in self._s.execute(stmt)
        ]

    def comparison(self, batch_id: str, baseline: str | None) -> ComparisonMatrix:
        """Per-combination statistics in SQL; bootstrap and paired tests over case means."""
        from wtb_domain.adapters.sql.aggregates import matrix_for_batch

        return matrix_for_batch(self._s, batch_id, baseline)

    def combination_totals(self, batch_id: str) -> list[CombinationTotals]:
        from wtb_domain.adapters.sql.aggregates import combination_totals

        return combination_totals(self._s, batch_id)
