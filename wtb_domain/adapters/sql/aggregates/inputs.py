"""The matrix inputs of a batch: aggregated in the database (:func:`matrix_inputs`) or, the
same values, computed in Python from the result rows (:func:`inputs_from_rows`)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wtb_domain.adapters.sql.aggregates.percentiles import (
    PERCENTILES,
    PercentileLookup,
    percentile_statements,
)
from wtb_domain.adapters.sql.aggregates.records import CombinationAggregate, MatrixInputs
from wtb_domain.adapters.sql.aggregates.statements import metric_sums_statement, rollups_statement
from wtb_domain.comparison import (
    COST_METRIC,
    ResultRow,
    metric_means,
    per_case_means,
    percentile,
    total_cost,
)
from wtb_domain.errors import StoreError

if TYPE_CHECKING:
    from wtb_domain.adapters.sql.aggregates.statements import Executor


@dataclass
class _Combination:
    n: int = 0
    n_failed: int = 0
    n_passed: int = 0
    cases: list[tuple[int, float, float]] = field(default_factory=list)  # (n, mean, m2)

    def mean_and_std(self) -> tuple[float, float]:
        """Pooled mean and sample standard deviation of the run scores over the cases."""
        mean = math.fsum(n * m for n, m, _ in self.cases) / self.n
        m2 = math.fsum(m2 for _, _, m2 in self.cases)
        m2 += math.fsum(n * (m - mean) ** 2 for n, m, _ in self.cases)
        return mean, math.sqrt(max(m2, 0.0) / (self.n - 1)) if self.n > 1 else 0.0


def matrix_inputs(executor: Executor, batch_id: str) -> MatrixInputs:
    """Aggregate a batch's results in the database (PostgreSQL or SQLite).

    Args:
        executor: A SQLAlchemy ``Session`` or ``Connection`` (e.g. a unit of work's).
        batch_id: The batch.

    Returns:
        The per-combination aggregates and the per-(combination, case) mean scores; empty
        for a batch without results.
    """
    combos: dict[str, _Combination] = {}
    case_means: dict[str, dict[str, float]] = {}
    for name, case_id, n, n_failed, n_passed, mean, m2 in executor.execute(
        rollups_statement(batch_id)
    ):
        combo = combos.setdefault(name, _Combination())
        combo.n += n
        combo.n_failed += n_failed
        combo.n_passed += n_passed
        combo.cases.append((n, float(mean), float(m2)))
        case_means.setdefault(name, {})[case_id] = float(mean)
    means: dict[str, dict[str, float]] = {}
    costs: dict[str, float] = {}
    for name, key, total, count in executor.execute(metric_sums_statement(batch_id)):
        means.setdefault(name, {})[key] = float(total) / int(count)
        if key == COST_METRIC:
            costs[name] = float(total)
    lookups = [
        PercentileLookup.of(name, q, combo.n) for name, combo in combos.items() for q in PERCENTILES
    ]
    at: dict[tuple[str, int], float] = {}
    for stmt in percentile_statements(batch_id, lookups):
        for tag, low, high in executor.execute(stmt):
            lookup = lookups[tag]
            if low is None:  # fewer results than the rollups count
                raise StoreError(
                    f"the rollups of batch {batch_id!r} do not match its results (combination "
                    f"{lookup.name!r}: results were written or deleted around "
                    "SqlResults.add_many); recompute them with `wtb doctor --repair` "
                    "(wtb_domain.adapters.sql.rollups.rebuild)"
                )
            at[lookup.name, lookup.q] = lookup.interpolate(float(low), float(high))
    out: dict[str, CombinationAggregate] = {}
    for name in sorted(combos):
        combo = combos[name]
        mean, std = combo.mean_and_std()
        out[name] = CombinationAggregate(
            name=name,
            n=combo.n,
            n_failed=combo.n_failed,
            n_passed=combo.n_passed,
            mean_run_score=mean,
            std_score=std,
            p50_ms=at[name, 50],
            p95_ms=at[name, 95],
            total_cost=costs.get(name, 0.0),
            metric_means=dict(sorted(means.get(name, {}).items())),
        )
    return MatrixInputs(
        batch_id=batch_id,
        combinations=out,
        case_means={name: dict(sorted(case_means[name].items())) for name in sorted(case_means)},
    )


def inputs_from_rows(batch_id: str, rows: Iterable[ResultRow]) -> MatrixInputs:
    """The same :class:`MatrixInputs` computed in Python (for stores without SQL, and tests)."""
    materialised = list(rows)
    by_name: dict[str, list[ResultRow]] = {}
    for row in materialised:
        by_name.setdefault(row.combination_name, []).append(row)
    combos: dict[str, CombinationAggregate] = {}
    for name in sorted(by_name):
        group = by_name[name]
        scores = [r.score for r in group]
        durations = [r.duration_ms for r in group]
        combos[name] = CombinationAggregate(
            name=name,
            n=len(group),
            n_failed=sum(not r.success for r in group),
            n_passed=sum(r.success and r.passed for r in group),
            mean_run_score=statistics.fmean(scores),
            std_score=statistics.stdev(scores) if len(scores) > 1 else 0.0,
            p50_ms=percentile(durations, 50),
            p95_ms=percentile(durations, 95),
            total_cost=total_cost(group),
            metric_means=metric_means(group),
        )
    return MatrixInputs(batch_id, combos, per_case_means(materialised))
