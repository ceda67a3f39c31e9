"""Running totals per (batch, combination, case), kept in the same transaction as the results.

The comparison matrix needs, per combination, counts, the mean and spread of the run score and
the mean of every numeric metric, and per (combination, case) the mean score over repeats.
Computing those from the results table reads every row of the batch and unpacks every JSON
``metrics`` object: seconds for a batch of a million runs. Instead, every insert of results
(:meth:`SqlResults.add_many <wtb_domain.adapters.sql.repositories.SqlResults.add_many>`)
also upserts, for the rows it really inserted:

* ``wtb_result_rollups``: one row per (batch, combination, case) with ``n``, ``n_failed``,
  ``n_passed`` and the run score as mean and sum of squared deviations (``score_m2``),
  merged with the stored totals by Chan et al.'s pairwise update, so spreads stay exact
  enough whatever the order the workers commit in;
* ``wtb_metric_rollups``: one row per (batch, combination, case, metric) with the sum and
  count of the metric's numeric values (:func:`wtb_domain.comparison.numeric_metrics`).

The key is per case, not per combination: workers usually run different cases, so their
upserts do not queue on the same rows; each transaction upserts its keys in sorted order, so
two of them cannot deadlock. Results are never updated or deleted one by one (a batch's are
deleted with the batch, and its rollups by the same foreign-key cascade), so the totals stay
equal to what the results table holds. :func:`rebuild` recomputes them from the results.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, Float, Table, bindparam, cast, column, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from wtb_domain.adapters.sql import precompiled
from wtb_domain.adapters.sql.tables import METRIC_ROLLUPS, RESULTS, ROLLUPS
from wtb_domain.comparison import numeric_metrics, run_score

LEAF = ("batch_test_id", "combination_name", "case_id")
REBUILD_CHUNK = 5_000


class Result(Protocol):
    """What a rollup needs of a result (a ``BatchResult`` or a results-table row)."""

    @property
    def batch_test_id(self) -> str: ...
    @property
    def combination_name(self) -> str: ...
    @property
    def case_id(self) -> str: ...
    @property
    def success(self) -> bool: ...
    @property
    def passed(self) -> bool: ...
    @property
    def overall_score(self) -> float: ...
    @property
    def metrics(self) -> Mapping[str, Any]: ...


@dataclass
class _Totals:
    scores: list[float] = field(default_factory=list)
    n_failed: int = 0
    n_passed: int = 0
    metrics: dict[str, list[float]] = field(default_factory=dict)


def summarise(
    results: Iterable[Result],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rollup rows and metric rollup rows of some results, each sorted by key.

    Returns:
        ``(rollups, metric_rollups)``: parameter sets for :func:`upsert_statements`.
    """
    groups: dict[tuple[str, str, str], _Totals] = {}
    for r in results:
        totals = groups.setdefault((r.batch_test_id, r.combination_name, r.case_id), _Totals())
        totals.scores.append(run_score(r.success, r.overall_score))
        totals.n_failed += not r.success
        totals.n_passed += bool(r.success and r.passed)
        for name, value in numeric_metrics(r.metrics or {}):
            totals.metrics.setdefault(name, []).append(value)
    rollups: list[dict[str, Any]] = []
    metric_rollups: list[dict[str, Any]] = []
    for key in sorted(groups):
        totals = groups[key]
        leaf = dict(zip(LEAF, key, strict=True))
        mean = math.fsum(totals.scores) / len(totals.scores)
        rollups.append(
            leaf
            | {
                "n": len(totals.scores),
                "n_failed": totals.n_failed,
                "n_passed": totals.n_passed,
                "score_mean": mean,
                "score_m2": math.fsum((s - mean) ** 2 for s in totals.scores),
            }
        )
        for name in sorted(totals.metrics):
            values = totals.metrics[name]
            metric_rollups.append(
                leaf | {"key": name, "total": math.fsum(values), "count": len(values)}
            )
    return rollups, metric_rollups


def _merge(table: Table, stmt: Any) -> Any:
    """``stmt`` (an INSERT of ``table``'s rows) made to add to the totals already stored."""
    old, new = table.c, stmt.excluded
    if table is METRIC_ROLLUPS:
        return stmt.on_conflict_do_update(
            index_elements=[*LEAF, "key"],
            set_={"total": old.total + new.total, "count": old.count + new.count},
        )
    n = old.n + new.n
    as_float = cast(n, Float())  # a float division on both databases
    delta = new.score_mean - old.score_mean
    return stmt.on_conflict_do_update(
        index_elements=list(LEAF),
        set_={
            "n": n,
            "n_failed": old.n_failed + new.n_failed,
            "n_passed": old.n_passed + new.n_passed,
            # Chan et al.: merge two (count, mean, M2) summaries; right-hand sides see the
            # row before the update.
            "score_mean": old.score_mean + delta * new.n / as_float,
            "score_m2": old.score_m2 + new.score_m2 + delta * delta * old.n * new.n / as_float,
        },
    )


def _pg_upsert(table: Table) -> Any:
    """One statement for any number of rows: ``INSERT ... SELECT * FROM unnest(:col, ...)``,
    a bound array per column (compiled once, no multi-row VALUES to build each time)."""
    arrays = [bindparam(c.name, type_=ARRAY(c.type)) for c in table.columns]
    rows = (
        func.unnest(*arrays)
        .table_valued(*(column(c.name, c.type) for c in table.columns))
        .render_derived()
    )
    stmt = postgresql.insert(table).from_select([c.name for c in table.columns], select(rows))
    return _merge(table, stmt)


# PostgreSQL: one unnest statement (parameters: a list per column); SQLite: executemany of a
# one-row upsert (in-process, no round trips to save).
UPSERTS = {
    "postgresql": (_pg_upsert(ROLLUPS), _pg_upsert(METRIC_ROLLUPS)),
    "sqlite": tuple(_merge(t, sqlite.insert(t)) for t in (ROLLUPS, METRIC_ROLLUPS)),
}


def add(connection: Connection, results: Iterable[Result]) -> None:
    """Add results to the rollups (in the caller's transaction; the caller commits).

    Two statements whatever the number of results; the keys of each are distinct, as
    ``ON CONFLICT DO UPDATE`` requires, and sorted, so concurrent writers lock rows in the
    same order.
    """
    dialect = connection.dialect.name
    for upsert, rows in zip(UPSERTS[dialect], summarise(results), strict=True):
        if not rows:
            continue
        if dialect == "postgresql":
            connection.execute(upsert, {name: [row[name] for row in rows] for name in rows[0]})
        else:  # SQLAlchemy would compile the ON CONFLICT statement again each time
            precompiled.execute_many(connection, upsert, rows)


def rebuild(connection: Connection, batch_id: str | None = None) -> None:
    """Recompute the rollups of one batch (or of every batch) from the results table.

    For data written before the rollups existed (the migration that adds them calls this)
    or by something other than ``SqlResults.add_many``. Runs in the caller's transaction.
    """
    columns = [RESULTS.c[name] for name in (*LEAF, "success", "passed", "overall_score")]
    stmt = select(*columns, RESULTS.c.metrics).order_by(*(RESULTS.c[name] for name in LEAF))
    wipe_rollups, wipe_metrics = delete(ROLLUPS), delete(METRIC_ROLLUPS)
    if batch_id is not None:
        stmt = stmt.where(RESULTS.c.batch_test_id == batch_id)
        wipe_rollups = wipe_rollups.where(ROLLUPS.c.batch_test_id == batch_id)
        wipe_metrics = wipe_metrics.where(METRIC_ROLLUPS.c.batch_test_id == batch_id)
    connection.execute(wipe_metrics)
    connection.execute(wipe_rollups)
    rows = connection.execute(stmt.execution_options(yield_per=REBUILD_CHUNK))
    for chunk in rows.partitions():
        add(connection, chunk)
