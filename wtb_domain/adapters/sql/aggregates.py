"""The comparison matrix computed in the database instead of over every result row in Python.

:func:`matrix_inputs` asks the database for what :func:`wtb_domain.comparison.build_matrix`
needs, aggregated:

* per combination: ``n``, failed runs, succeeded-and-passed runs, mean and sample standard
  deviation of the run score (a failed run or a non-finite score counts as 0, like
  :attr:`wtb_domain.comparison.ResultRow.score`), p50/p95 of ``duration_ms``, the total of the
  ``cost_usd`` metric and the mean of every numeric metric;
* per (combination, case): the mean score over repeats, the much smaller set that the
  bootstrap confidence intervals and the paired permutation tests still need in Python.

On PostgreSQL the per-combination figures come from ONE statement: one aggregate over the batch
(``percentile_cont(...) WITHIN GROUP`` for the percentiles, ``FILTER`` for counts and the
cost) joined with the metric means (``jsonb_each`` over the batch's metrics). SQLite has no
percentile or standard-deviation aggregate: there the variance is a two-pass sum over a window
mean and the percentiles read only the two rows around each percentile position (window
``row_number()``), with the interpolation done in Python exactly as
:func:`wtb_domain.comparison.percentile` does it.

:func:`build_matrix_from_inputs` turns the aggregates into the same
:class:`~wtb_domain.comparison.ComparisonMatrix` that ``build_matrix`` gives for the rows: the
same ranks, means, confidence intervals and p-values (up to floating-point summation order:
the database sums in its own order, ``build_matrix`` uses exactly rounded sums).

All values reach the database as bound parameters.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    case,
    column,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from wtb_domain.adapters.sql.tables import BatchResultRow
from wtb_domain.comparison import (
    COST_METRIC,
    DEFAULT_ALPHA,
    DEFAULT_RESAMPLES,
    CombinationStats,
    ComparisonMatrix,
    ResultRow,
    bootstrap_ci,
    paired_comparisons,
    per_case_means,
    percentile,
)
from wtb_domain.errors import SpecError

RESULTS = cast(Table, BatchResultRow.__table__)
PERCENTILES = (50, 95)
# Session-local planner settings for the matrix statements on PostgreSQL (restored afterwards):
# * jit off: JIT compilation of these one-off aggregates costs more than it saves;
# * work_mem: the sort feeding the per-combination aggregate stays in memory (a 1M-row
#   batch needs ~100 MB);
# * enable_indexscan off: an aggregate reads every row of the batch, so a plain index scan
#   (random heap order, chosen to get rows pre-sorted by combination) loses to a bitmap scan
#   on ``ix_wtb_results_batch`` (heap in physical order) or, for a batch that is most of the
#   table, a sequential scan. Bitmap scans stay enabled, so the batch index is still used.
PG_SETTINGS = {"jit": "off", "work_mem": "128MB", "enable_indexscan": "off"}

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


# --------------------------------------------------------------------------- SQL pieces


def _dialect(executor: Executor) -> str:
    if isinstance(executor, Session):
        return executor.get_bind().dialect.name
    return executor.dialect.name


def _score() -> ColumnElement[float]:
    """The run score: ``overall_score`` if the run succeeded and it is finite, else 0."""
    score = RESULTS.c.overall_score
    finite = and_(
        RESULTS.c.success,
        score > bindparam("neg_inf", -math.inf, type_=Float()),
        score < bindparam("pos_inf", math.inf, type_=Float()),
    )
    return case((finite, score), else_=literal(0.0, Float()))


def _in_batch(batch_id: str) -> ColumnElement[bool]:
    return RESULTS.c.batch_test_id == bindparam("batch_id", batch_id, type_=String())


def _case_means_stmt(batch_id: str) -> Any:
    return (
        select(RESULTS.c.combination_name, RESULTS.c.case_id, func.avg(_score()))
        .where(_in_batch(batch_id))
        .group_by(RESULTS.c.combination_name, RESULTS.c.case_id)
    )


def pg_stats_statement(batch_id: str) -> Any:
    """The single PostgreSQL statement for every per-combination figure of a batch.

    Shaped for large batches (see ``bench/postgres.py``):

    * the per-combination aggregate reads a narrow projection of the batch (name, flags,
      score, duration, cost; ``OFFSET 0`` keeps PostgreSQL from flattening it), so the sort
      that feeds ``percentile_cont`` carries ~50 bytes per row instead of the JSONB columns;
    * the metric means filter numbers inside the aggregate (``FILTER``) rather than in
      ``WHERE``: the planner then expects many rows per ``jsonb_each`` call and hashes the
      (combination, key) groups instead of sorting one row per metric value.
    """
    metrics = type_coerce(RESULTS.c.metrics, JSONB())
    cost = metrics.op("->", return_type=JSONB())(bindparam("cost_key", COST_METRIC, type_=String()))
    rows = (
        select(
            RESULTS.c.combination_name.label("name"),
            RESULTS.c.success.label("success"),
            RESULTS.c.passed.label("passed"),
            _score().label("score"),
            RESULTS.c.duration_ms.label("duration_ms"),
            case((func.jsonb_typeof(cost) == "number", sql_cast(cost, Float()))).label("cost"),
        )
        .where(_in_batch(batch_id))
        .offset(0)
        .subquery("batch_rows")
    )
    core = (
        select(
            rows.c.name,
            func.count().label("n"),
            func.count().filter(not_(rows.c.success)).label("n_failed"),
            func.count().filter(and_(rows.c.success, rows.c.passed)).label("n_passed"),
            func.avg(rows.c.score).label("mean_run_score"),
            func.stddev_samp(rows.c.score).label("std_score"),
            *(
                func.percentile_cont(bindparam(f"q{q}", q / 100, type_=Float()))
                .within_group(rows.c.duration_ms)
                .label(f"p{q}_ms")
                for q in PERCENTILES
            ),
            func.sum(rows.c.cost).label("total_cost"),
        )
        .group_by(rows.c.name)
        .cte("core")
    )
    kv = func.jsonb_each(metrics).table_valued(column("key", String()), column("value", JSONB()))
    per_key = (
        select(
            RESULTS.c.combination_name.label("name"),
            kv.c.key.label("key"),
            func.avg(sql_cast(kv.c.value, Float()))
            .filter(func.jsonb_typeof(kv.c.value) == "number")
            .label("mean"),
        )
        .select_from(RESULTS)
        .join(kv, true())
        .where(_in_batch(batch_id), func.jsonb_typeof(metrics) == "object")
        .group_by(RESULTS.c.combination_name, kv.c.key)
        .cte("per_key")
    )
    metric_means = (
        select(
            per_key.c.name,
            func.array_agg(aggregate_order_by(per_key.c.key, per_key.c.key)).label("metric_keys"),
            func.array_agg(aggregate_order_by(per_key.c.mean, per_key.c.key)).label(
                "metric_values"
            ),
        )
        .where(per_key.c.mean.is_not(None))  # keys that never held a number
        .group_by(per_key.c.name)
        .cte("metric_means")
    )
    return (
        select(core, metric_means.c.metric_keys, metric_means.c.metric_values)
        .select_from(core.outerjoin(metric_means, core.c.name == metric_means.c.name))
        .order_by(core.c.name)
    )


@contextmanager
def _pg_local_settings(executor: Executor, settings: Mapping[str, str]) -> Iterator[None]:
    """Transaction-local ``set_config`` (PgBouncer-safe), restoring the previous values."""
    previous: dict[str, str] = {}
    for name, value in settings.items():
        params = {"name": name, "value": value}
        previous[name] = str(
            executor.execute(select(func.current_setting(bindparam("name"))), params).scalar()
        )
        executor.execute(
            select(func.set_config(bindparam("name"), bindparam("value"), true())), params
        )
    try:
        yield
    finally:
        for name, value in previous.items():
            executor.execute(
                select(func.set_config(bindparam("name"), bindparam("value"), true())),
                {"name": name, "value": value},
            )


def _pg_combinations(executor: Executor, batch_id: str) -> list[CombinationAggregate]:
    out = []
    for row in executor.execute(pg_stats_statement(batch_id)).mappings():
        keys = row["metric_keys"] or []
        means = row["metric_values"] or []
        out.append(
            CombinationAggregate(
                name=row["name"],
                n=int(row["n"]),
                n_failed=int(row["n_failed"]),
                n_passed=int(row["n_passed"]),
                mean_run_score=float(row["mean_run_score"]),
                std_score=float(row["std_score"] or 0.0),
                p50_ms=float(row["p50_ms"]),
                p95_ms=float(row["p95_ms"]),
                total_cost=float(row["total_cost"] or 0.0),
                metric_means={str(k): float(v) for k, v in zip(keys, means, strict=True)},
            )
        )
    return out


def _sqlite_metrics() -> ColumnElement[Any]:
    """The metrics column, or ``'{}'`` where it is not valid JSON (e.g. a ``NaN`` value)."""
    valid = func.json_valid(RESULTS.c.metrics) == 1
    return case((valid, RESULTS.c.metrics), else_=literal("{}", String()))


def _sqlite_core_stmt(batch_id: str) -> Any:
    cost_path = bindparam("cost_path", f'$."{COST_METRIC}"', type_=String())
    metrics = _sqlite_metrics()
    inner = (
        select(
            RESULTS.c.combination_name.label("name"),
            RESULTS.c.success.label("success"),
            RESULTS.c.passed.label("passed"),
            _score().label("score"),
            func.json_type(metrics, cost_path).label("cost_type"),
            func.json_extract(metrics, cost_path).label("cost"),
        )
        .where(_in_batch(batch_id))
        .subquery()
    )
    window_mean = func.avg(inner.c.score).over(partition_by=inner.c.name)
    centred = select(inner, window_mean.label("mean")).subquery()
    dev = centred.c.score - centred.c.mean
    return select(
        centred.c.name,
        func.count().label("n"),
        func.count().filter(not_(centred.c.success)).label("n_failed"),
        func.count().filter(and_(centred.c.success, centred.c.passed)).label("n_passed"),
        func.avg(centred.c.score).label("mean_run_score"),
        func.sum(dev * dev).label("squares"),
        func.sum(centred.c.cost)
        .filter(centred.c.cost_type.in_(["integer", "real"]))
        .label("total_cost"),
    ).group_by(centred.c.name)


def _sqlite_percentile_stmt(batch_id: str) -> Any:
    ranked = (
        select(
            RESULTS.c.combination_name.label("name"),
            RESULTS.c.duration_ms.label("duration"),
            (
                func.row_number().over(
                    partition_by=RESULTS.c.combination_name, order_by=RESULTS.c.duration_ms
                )
                - 1
            ).label("pos"),
            func.count().over(partition_by=RESULTS.c.combination_name).label("cnt"),
        )
        .where(_in_batch(batch_id))
        .subquery()
    )
    wanted = []
    for q in PERCENTILES:
        # The same position as comparison.percentile: floor((n - 1) * q / 100) and the next.
        low = sql_cast(
            (ranked.c.cnt - 1)
            * bindparam(f"q{q}", q, type_=Integer())
            / bindparam("hundred", 100.0, type_=Float()),
            Integer(),
        )
        wanted += [ranked.c.pos == low, ranked.c.pos == low + 1]
    return select(ranked.c.name, ranked.c.cnt, ranked.c.pos, ranked.c.duration).where(or_(*wanted))


def _sqlite_metric_stmt(batch_id: str) -> Any:
    metrics = _sqlite_metrics()
    kv = func.json_each(metrics).table_valued(
        column("key", String()), column("value", Float()), column("type", String())
    )
    return (
        select(RESULTS.c.combination_name, kv.c.key, func.avg(kv.c.value))
        .select_from(RESULTS)
        .join(kv, true())
        .where(
            _in_batch(batch_id),
            func.json_type(metrics) == "object",
            kv.c.type.in_(["integer", "real"]),
            kv.c.value > bindparam("neg_inf", -math.inf, type_=Float()),
            kv.c.value < bindparam("pos_inf", math.inf, type_=Float()),
        )
        .group_by(RESULTS.c.combination_name, kv.c.key)
    )


def _interpolate(count: int, values: Mapping[int, float], q: int) -> float:
    """:func:`wtb_domain.comparison.percentile` given the sorted values at the needed ranks."""
    position = (count - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, count - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _sqlite_combinations(executor: Executor, batch_id: str) -> list[CombinationAggregate]:
    ranks: dict[str, tuple[int, dict[int, float]]] = {}
    for name, count, pos, duration in executor.execute(_sqlite_percentile_stmt(batch_id)):
        ranks.setdefault(name, (int(count), {}))[1][int(pos)] = float(duration)
    metrics: dict[str, dict[str, float]] = {}
    for name, key, mean in executor.execute(_sqlite_metric_stmt(batch_id)):
        metrics.setdefault(name, {})[str(key)] = float(mean)
    out = []
    for row in executor.execute(_sqlite_core_stmt(batch_id)).mappings():
        name, n = row["name"], int(row["n"])
        count, at = ranks[name]
        p50, p95 = (_interpolate(count, at, q) for q in PERCENTILES)
        out.append(
            CombinationAggregate(
                name=name,
                n=n,
                n_failed=int(row["n_failed"]),
                n_passed=int(row["n_passed"]),
                mean_run_score=float(row["mean_run_score"]),
                std_score=math.sqrt(float(row["squares"]) / (n - 1)) if n > 1 else 0.0,
                p50_ms=p50,
                p95_ms=p95,
                total_cost=float(row["total_cost"] or 0.0),
                metric_means=dict(sorted(metrics.get(name, {}).items())),
            )
        )
    return out


def matrix_inputs(executor: Executor, batch_id: str) -> MatrixInputs:
    """Aggregate a batch's results in the database (PostgreSQL or SQLite).

    Args:
        executor: A SQLAlchemy ``Session`` (e.g. a unit of work's) or ``Connection``. On
            PostgreSQL a few planner settings are changed for these statements only
            (transaction-local, restored before returning; see :data:`PG_SETTINGS`).
        batch_id: The batch.

    Returns:
        The per-combination aggregates and the per-(combination, case) mean scores; empty
        for a batch without results.
    """
    dialect = _dialect(executor)
    if dialect == "postgresql":
        with _pg_local_settings(executor, PG_SETTINGS):
            combos = _pg_combinations(executor, batch_id)
            case_rows = list(executor.execute(_case_means_stmt(batch_id)))
    elif dialect == "sqlite":
        combos = _sqlite_combinations(executor, batch_id)
        case_rows = list(executor.execute(_case_means_stmt(batch_id)))
    else:
        raise NotImplementedError(f"matrix_inputs supports postgresql and sqlite, not {dialect}")
    grouped: dict[str, dict[str, float]] = {}
    for name, case_id, mean in case_rows:
        grouped.setdefault(name, {})[case_id] = float(mean)
    return MatrixInputs(
        batch_id=batch_id,
        combinations={c.name: c for c in sorted(combos, key=lambda c: c.name)},
        case_means={name: dict(sorted(cases.items())) for name, cases in sorted(grouped.items())},
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
        costs = [r.metrics[COST_METRIC] for r in group if COST_METRIC in r.metrics]
        combos[name] = CombinationAggregate(
            name=name,
            n=len(group),
            n_failed=sum(not r.success for r in group),
            n_passed=sum(r.success and r.passed for r in group),
            mean_run_score=statistics.fmean(scores),
            std_score=statistics.stdev(scores) if len(scores) > 1 else 0.0,
            p50_ms=percentile(durations, 50),
            p95_ms=percentile(durations, 95),
            total_cost=math.fsum(costs),
            metric_means=_metric_means(group),
        )
    return MatrixInputs(batch_id, combos, per_case_means(materialised))


def _metric_means(rows: Sequence[ResultRow]) -> dict[str, float]:
    collected: dict[str, list[float]] = {}
    for row in rows:
        for name, value in row.metrics.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and math.isfinite(value):
                collected.setdefault(name, []).append(float(value))
    return {name: statistics.fmean(values) for name, values in sorted(collected.items())}


# --------------------------------------------------------------------------- the matrix


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise SpecError(f"alpha: must be strictly between 0 and 1 (e.g. 0.05), got {alpha}")


def _known(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names) or "(none)"


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
    _check_alpha(alpha)
    stats = []
    for name, agg in inputs.combinations.items():
        case_means = inputs.case_means[name]
        low, high = bootstrap_ci(list(case_means.values()), resamples=resamples, seed=seed)
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
    stats.sort(key=lambda s: (-s.mean_score, -s.pass_rate, s.p50_ms, s.name))
    stats = [dataclasses.replace(s, rank=rank) for rank, s in enumerate(stats, start=1)]
    names = [s.name for s in stats]
    if baseline is not None and baseline not in names:
        raise SpecError(
            f"baseline: unknown combination {baseline!r}; known combinations: {_known(names)}"
        )
    ranked = {name: inputs.case_means[name] for name in names}
    return ComparisonMatrix(
        batch_id=inputs.batch_id if batch_id is None else batch_id,
        stats=stats,
        vs_best=paired_comparisons(ranked, names[0], alpha, seed) if names else [],
        vs_baseline=paired_comparisons(ranked, baseline, alpha, seed)
        if baseline is not None
        else [],
        baseline=baseline,
        alpha=alpha,
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
