"""One statement per execution's results on PostgreSQL: results, rollups and events together.

A batch task stores, per finished execution, its leaves' results, adds them to the rollups
(:mod:`~wtb_domain.adapters.sql.rollups`) and writes the progress event (one event row).
Separately that is four statements; here it is one, of data-modifying CTEs:

* ``inserted_results``: the results, skipping a leaf already stored (``ON CONFLICT DO
  NOTHING``), ``RETURNING`` what it inserted;
* ``all_inserted``: one row if every result was inserted, none otherwise;
* the rollup and metric-rollup upserts and the event inserts select ``FROM all_inserted``,
  so they write nothing unless every result was new.

The statement returns how many results it inserted. The caller runs it in a transaction:
all inserted or none -- commit; some -- roll back and take the general path, which adds
exactly the inserted ones to the rollups.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import CTE, Select, bindparam, column, func, insert, select, true, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY

from wtb_domain.adapters.sql.event_store import event_ctes
from wtb_domain.adapters.sql.rollups import _merge, summarise
from wtb_domain.adapters.sql.tables import METRIC_ROLLUPS, RESULTS, ROLLUPS
from wtb_domain.model import BatchResult

RESULT_COLUMNS = (
    "batch_test_id",
    "execution_id",
    "combination_name",
    "variant_config",
    "case_id",
    "repeat",
    "success",
    "passed",
    "metrics",
    "overall_score",
    "duration_ms",
    "worker_id",
    "error",
    "created_at",
)
_SKIP = "ON CONFLICT (batch_test_id, combination_name, case_id, repeat) DO NOTHING"
MAX_RESULTS = 50
"""Most results one statement carries (more: the general path)."""


def _res(column_name: str, i: int) -> str:
    return f"res_{column_name}_{i}"


def _upsert(table: Any, prefix: str, guard: CTE) -> CTE:
    arrays = [bindparam(f"{prefix}{c.name}", type_=ARRAY(c.type)) for c in table.columns]
    rows = (
        func.unnest(*arrays)
        .table_valued(*(column(c.name, c.type) for c in table.columns))
        .render_derived()
    )
    joined = rows.join(guard, true())  # no row unless every result was inserted
    source = select(*[rows.c[c.name] for c in table.columns]).select_from(joined)
    stmt = postgresql.insert(table).from_select([c.name for c in table.columns], source)
    upsert: CTE = _merge(table, stmt).cte(f"upserted_{table.name}")
    return upsert


@functools.lru_cache(maxsize=256)
def statement(results: int, rollups: int, metrics: int, events: int) -> Select[Any]:
    """The statement for that many results, rollup rows, metric rollup rows and events."""
    rows: list[Select[Any]] = [
        select(*[bindparam(_res(c, i), type_=RESULTS.c[c].type).label(c) for c in RESULT_COLUMNS])
        for i in range(results)
    ]
    source = rows[0]
    if results > 1:
        union = union_all(*rows).subquery("result_rows")
        source = select(*[union.c[c] for c in RESULT_COLUMNS])
    inserted = (
        insert(RESULTS)
        .from_select(list(RESULT_COLUMNS), source.suffix_with(_SKIP))
        .returning(RESULTS.c.repeat)
        .cte("inserted_results")
    )
    counted = select(func.count().label("n")).select_from(inserted).cte("counted")
    guard = select(counted.c.n).where(counted.c.n == results).cte("all_inserted")
    ctes: list[CTE] = []
    if rollups:
        ctes.append(_upsert(ROLLUPS, "ru_", guard))
    if metrics:
        ctes.append(_upsert(METRIC_ROLLUPS, "mr_", guard))
    ctes.extend(event_ctes(events, guard))
    return select(counted.c.n).add_cte(*ctes)


def params(results: Sequence[BatchResult]) -> tuple[dict[str, Any], int, int]:
    """The statement's parameters; (parameters, rollup rows, metric rollup rows)."""
    out: dict[str, Any] = {}
    for i, r in enumerate(results):
        for c in RESULT_COLUMNS:
            out[_res(c, i)] = getattr(r, c)
    rollup_rows, metric_rows = summarise(results)
    for prefix, table, rows in (
        ("ru_", ROLLUPS, rollup_rows),
        ("mr_", METRIC_ROLLUPS, metric_rows),
    ):
        for col in table.columns:
            out[f"{prefix}{col.name}"] = [row[col.name] for row in rows]
    return out, len(rollup_rows), len(metric_rows)
