"""The comparison matrix from the database without reading every result row in Python.

:func:`matrix_inputs` reads what :func:`wtb_domain.comparison.build_matrix` needs, already
aggregated, with three statements whose cost does not grow with the repeats of a batch:

1. the batch's rows of ``wtb_result_rollups`` (one per combination and case, kept by every
   result insert, see :mod:`wtb_domain.adapters.sql.rollups`): the per-(combination, case)
   mean scores that the bootstrap confidence intervals and paired tests need, and, merged in
   Python, each combination's ``n``, failed and passed runs, mean and sample standard
   deviation of the run score;
2. ``SUM ... GROUP BY combination, key`` over ``wtb_metric_rollups``: the mean of every
   numeric metric and the total ``cost_usd``;
3. the p50/p95 of ``duration_ms``, exact: with each combination's ``n`` known, the one or two
   results around each percentile's position are read from the
   ``(batch_test_id, combination_name, duration_ms)`` index (``ORDER BY duration_ms
   OFFSET k LIMIT 2``, descending for positions past the middle), one index-only scan per
   (combination, percentile), all in one ``UNION ALL`` statement; the interpolation is
   :func:`wtb_domain.comparison.percentile`'s.

The same statements run on PostgreSQL and SQLite. :func:`build_matrix_from_inputs` turns the
aggregates into the same :class:`~wtb_domain.comparison.ComparisonMatrix` that
``build_matrix`` gives for the rows: the same ranks, means, confidence intervals and p-values
(up to floating-point summation order). All values reach the database as bound parameters.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    String,
    Table,
    bindparam,
    func,
    select,
    text,
)

from wtb_domain.adapters.sql.tables import METRIC_ROLLUPS, RESULTS, ROLLUPS
from wtb_domain.comparison import (
    COST_METRIC,
    DEFAULT_ALPHA,
    DEFAULT_RESAMPLES,
    CombinationStats,
    CombinationTotals,
    ComparisonMatrix,
    ResultRow,
    assemble_matrix,
    bootstrap_cis,
    check_alpha,
    metric_means,
    per_case_means,
    percentile,
    ranked,
    total_cost,
)
from wtb_domain.errors import StoreError

PERCENTILES = (50, 95)
# Percentile lookups per statement (each is a subquery of the UNION ALL).
LOOKUPS_PER_STATEMENT = 200

if TYPE_CHECKING:  # a Session works too; the ORM is not imported to say so
    from sqlalchemy.orm import Session

    Executor = Session | Connection


@dataclass(frozen=True)
class CombinationAggregate:
    """What the database returns for one combination.

    Attributes:
        name: The combination name.
        n: Runs (failed ones included).
        n_failed: Runs that did not succeed.
        n_passed: Runs that succeeded and passed.
        mean_run_score: Plain mean of the run scores (failed = 0). The matrix's ``mean_score``
            is the mean of the per-case means instead; the two agree when every case has the
            same number of repeats.
        std_score: Sample standard deviation of the run scores; 0 for a single run.
        p50_ms: Median ``duration_ms`` (linear interpolation).
        p95_ms: 95th percentile of ``duration_ms`` (linear interpolation).
        total_cost: Sum of the numeric ``cost_usd`` metric over the runs that recorded it.
        metric_means: Mean of every numeric metric over the runs that recorded it, by name.
    """

    name: str
    n: int
    n_failed: int
    n_passed: int
    mean_run_score: float
    std_score: float
    p50_ms: float
    p95_ms: float
    total_cost: float
    metric_means: dict[str, float] = field(default_factory=dict)

    @property
    def pass_rate(self) -> float:
        return self.n_passed / self.n if self.n else 0.0


@dataclass(frozen=True)
class MatrixInputs:
    """The aggregated inputs of a batch's comparison matrix.

    Attributes:
        batch_id: The batch.
        combinations: Per-combination aggregates, by name (sorted).
        case_means: ``{combination: {case_id: mean score over repeats}}``, both levels sorted.
    """

    batch_id: str
    combinations: dict[str, CombinationAggregate]
    case_means: dict[str, dict[str, float]]


def _batch(table: Table, batch_id: str) -> Any:
    return table.c.batch_test_id == bindparam("batch_id", batch_id, type_=String())


def rollups_statement(batch_id: str) -> Any:
    r = ROLLUPS.c
    return (
        select(r.combination_name, r.case_id, r.n, r.n_failed, r.n_passed, r.score_mean, r.score_m2)
        .where(_batch(ROLLUPS, batch_id))
        .order_by(r.combination_name, r.case_id)
    )


def metric_sums_statement(batch_id: str) -> Any:
    m = METRIC_ROLLUPS.c
    return (
        select(m.combination_name, m.key, func.sum(m.total), func.sum(m.count))
        .where(_batch(METRIC_ROLLUPS, batch_id))
        .group_by(m.combination_name, m.key)
    )


@dataclass(frozen=True)
class PercentileLookup:
    """Where a percentile of one combination's ``duration_ms`` sits in its sorted values.

    Attributes:
        name: The combination.
        q: The percentile (0-100).
        n: The combination's number of results.
        low: 0-based rank of the value at or below the percentile's position.
        high: The rank above it (``low`` again at the end).
        fraction: Position minus ``low``: the interpolation weight of the ``high`` value.
    """

    name: str
    q: int
    n: int
    low: int
    high: int
    fraction: float

    @classmethod
    def of(cls, name: str, q: int, n: int) -> PercentileLookup:
        """The same position as :func:`wtb_domain.comparison.percentile`."""
        position = (n - 1) * q / 100
        low = math.floor(position)
        return cls(name, q, n, low, min(low + 1, n - 1), position - low)

    def sql(self, tag: int) -> tuple[str, dict[str, Any]]:
        """``(tag, value at low, value at high)``: the two ranks from the nearer end; the SQL
        (with ``:batch_id`` and this lookup's bound name, limit and offset) and its values."""
        table, duration = RESULTS.name, f"{RESULTS.name}.{RESULTS.c.duration_ms.name}"
        descending = self.low > self.n - 1 - self.high
        offset = self.n - 1 - self.high if descending else self.low
        # Only our table/column names and int tags are formatted in; every value is bound.
        sql = (
            f"SELECT {int(tag)} AS tag, min(p{tag}.d) AS low, max(p{tag}.d) AS high FROM "  # noqa: S608
            f"(SELECT {duration} AS d FROM {table} WHERE {table}.batch_test_id = :batch_id "
            f"AND {table}.combination_name = :n{tag} "
            f"ORDER BY {duration}{' DESC' if descending else ''} "
            f"LIMIT :l{tag} OFFSET :o{tag}) AS p{tag}"
        )
        return sql, {f"n{tag}": self.name, f"l{tag}": self.high - self.low + 1, f"o{tag}": offset}

    def interpolate(self, low: float, high: float) -> float:
        return low + (high - low) * self.fraction


def percentile_statements(batch_id: str, lookups: Sequence[PercentileLookup]) -> list[Any]:
    """``UNION ALL`` statements for the lookups, tagged by their index in ``lookups``.

    Plain SQL text with bound parameters: built as SQLAlchemy constructs, 200 subqueries
    cost more CPU to build, key and compile (every time: the names differ) than to run.
    """
    out: list[Any] = []
    for start in range(0, len(lookups), LOOKUPS_PER_STATEMENT):
        parts: list[str] = []
        params: dict[str, Any] = {"batch_id": batch_id}
        for tag, lookup in enumerate(lookups[start : start + LOOKUPS_PER_STATEMENT], start):
            sql, values = lookup.sql(tag)
            parts.append(sql)
            params.update(values)
        out.append(text(" UNION ALL ".join(parts)).bindparams(**params))
    return out


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


def combination_totals(executor: Executor, batch_id: str) -> list[CombinationTotals]:
    """Runs, failed runs and mean score per combination (by name), from the rollups only:
    one statement, the same values as :func:`matrix_inputs` gives the matrix."""
    counts: dict[str, list[int]] = {}
    case_means: dict[str, list[float]] = {}
    for name, _case, n, n_failed, _passed, mean, _m2 in executor.execute(
        rollups_statement(batch_id)
    ):
        count = counts.setdefault(name, [0, 0])
        count[0] += n
        count[1] += n_failed
        case_means.setdefault(name, []).append(float(mean))  # in case_id order, as the matrix
    return [
        CombinationTotals(name, counts[name][0], counts[name][1], statistics.fmean(means))
        for name, means in sorted(case_means.items())
    ]


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


def build_matrix_from_inputs(
    inputs: MatrixInputs,
    batch_id: str | None = None,
    baseline: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
) -> ComparisonMatrix:
    """The comparison matrix from aggregates; same result as ``build_matrix`` on the rows.

    Args:
        inputs: From :func:`matrix_inputs` (or :func:`inputs_from_rows`).
        batch_id: The batch id for the report (default: ``inputs.batch_id``).
        baseline: A combination to compare every other one against, or ``None``.
        alpha: Significance level for the Holm-adjusted p-values.
        seed: Seed of the bootstrap and the Monte-Carlo permutation tests.
        resamples: Bootstrap resamples.

    Raises:
        SpecError: Unknown baseline (the message lists the known combinations) or bad alpha.
    """
    check_alpha(alpha)
    stats = []
    names = list(inputs.combinations)
    intervals = bootstrap_cis(
        [list(inputs.case_means[name].values()) for name in names],
        resamples=resamples,
        seed=seed,
    )
    for name, (low, high) in zip(names, intervals, strict=True):
        agg, case_means = inputs.combinations[name], inputs.case_means[name]
        stats.append(
            CombinationStats(
                name=name,
                n=agg.n,
                n_failed=agg.n_failed,
                mean_score=statistics.fmean(case_means.values()),
                std_score=agg.std_score,
                ci_low=low,
                ci_high=high,
                pass_rate=agg.pass_rate,
                p50_ms=agg.p50_ms,
                p95_ms=agg.p95_ms,
                total_cost=agg.total_cost,
                metric_means=dict(agg.metric_means),
            )
        )
    return assemble_matrix(
        ranked(stats),
        inputs.case_means,
        inputs.batch_id if batch_id is None else batch_id,
        baseline,
        alpha,
        seed,
    )


def matrix_for_batch(
    executor: Executor,
    batch_id: str,
    baseline: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> ComparisonMatrix:
    """:func:`matrix_inputs` then :func:`build_matrix_from_inputs`."""
    return build_matrix_from_inputs(
        matrix_inputs(executor, batch_id), batch_id, baseline, alpha, seed
    )
