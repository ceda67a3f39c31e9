"""The comparison matrix computed in the database instead of over every result row in Python.

:func:`matrix_inputs` asks the database for what :func:`wtb_domain.comparison.build_matrix`
needs, aggregated:

* per combination: ``n``, failed runs, succeeded-and-passed runs, mean and sample standard
  deviation of the run score (a failed run or a non-finite score counts as 0, like
  :attr:`wtb_domain.comparison.ResultRow.score`), p50/p95 of ``duration_ms``, the total of the
  ``cost_usd`` metric and the mean of every numeric metric;
* per (combination, case): the mean score over repeats, the much smaller set that the
  bootstrap confidence intervals and the paired permutation tests still need in Python.

On PostgreSQL the per-combination figures come from ONE aggregate statement
(:func:`pg_stats_statement`), shaped for large batches (``bench/postgres.py``):

* the metric keys are found first, in a small sample of the batch
  (:func:`pg_metric_keys_statement`), so every per-key mean is a plain aggregate column of the
  single pass over the batch (``avg((metrics -> :key)::numeric)``) instead of a
  ``jsonb_each`` row per (result, key) to group; the same pass counts the rows holding a key
  the sample did not see, and only then are the keys read from the whole batch and the
  statement run again. Keys whose sampled values were all numbers are cast without a
  per-row ``jsonb_typeof`` test (the test costs about as much as the cast); should another row
  hold a non-number there, the cast fails, and the statement runs again, inside a savepoint,
  with the test for every key. A batch with more than :data:`MAX_KEY_COLUMNS` distinct keys
  gets its metric means from ``jsonb_each`` (one row per result and key) instead;
* that aggregate is parallel-safe (partial aggregation in parallel workers);
  ``percentile_cont`` is not, and needs its input sorted, so the percentiles come from a
  second, hashed, aggregate in the same statement that collects each combination's
  durations into one array and sorts only those (``unnest`` + ``percentile_cont``).

SQLite has no percentile or standard-deviation aggregate: there the variance is a two-pass sum
over a window mean and the percentiles read only the two rows around each percentile position
(window ``row_number()``), with the interpolation done in Python exactly as
:func:`wtb_domain.comparison.percentile` does it.

:func:`build_matrix_from_inputs` turns the aggregates into the same
:class:`~wtb_domain.comparison.ComparisonMatrix` that ``build_matrix`` gives for the rows: the
same ranks, means, confidence intervals and p-values (up to floating-point summation order:
the database sums in its own order, and PostgreSQL sums metrics as exact ``numeric``;
``build_matrix`` uses exactly rounded sums).

All values, metric keys included, reach the database as bound parameters.
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
    Numeric,
    RowMapping,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    column,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.exc import DBAPIError
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
    assemble_matrix,
    bootstrap_ci,
    check_alpha,
    metric_means,
    per_case_means,
    percentile,
    ranked,
)

RESULTS = cast(Table, BatchResultRow.__table__)
PERCENTILES = (50, 95)
# Session-local planner settings for the matrix statements on PostgreSQL (restored afterwards):
# * jit off: JIT compilation of these one-off aggregates costs more than it saves;
# * work_mem: the per-combination duration arrays (8 bytes a row) stay in memory;
# * enable_indexscan off: an aggregate reads every row of the batch, so a plain index scan
#   (random heap order) loses to a bitmap scan on ``ix_wtb_results_batch`` (heap in physical
#   order) or, for a batch that is most of the table, a sequential scan. Bitmap scans stay
#   enabled, so the batch index is still used;
# * max_parallel_workers_per_gather: at least 2 (a higher server setting is kept, see
#   PG_RAISE_ONLY), so the per-row JSONB work of the stats aggregate is shared by parallel
#   workers with partial aggregation.
PG_SETTINGS = {
    "jit": "off",
    "work_mem": "128MB",
    "enable_indexscan": "off",
    "max_parallel_workers_per_gather": "2",
}
PG_RAISE_ONLY = frozenset({"max_parallel_workers_per_gather"})
# Rows of the batch whose metric keys are read before the stats statement; a key seen only in
# other rows costs one more pass over the batch (see pg_stats_statement's ``unknown_keys``).
KEY_SAMPLE_ROWS = 1000
# Above this many distinct keys the stats statement reads the metric means with jsonb_each
# (cost per key a row holds) instead of a column per key (cost per key of the batch: about
# 25 ns a row for a key the row lacks, 160 ns for one it holds, against ~600 ns per key a row
# holds through jsonb_each; the crossover is near 100 keys for rows of 5 metrics).
MAX_KEY_COLUMNS = 100
# SQLSTATE of "cannot cast jsonb string/boolean/null to type numeric" (invalid_parameter_value).
_JSONB_CAST_FAILED = "22023"

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


@dataclass(frozen=True)
class MetricKey:
    """A key of the batch's ``metrics`` objects, as :func:`pg_stats_statement` reads it.

    Attributes:
        name: The key.
        numbers_only: Every value seen for the key was a JSON number: the statement casts the
            values to ``numeric`` without testing each one's type first (a string, boolean or
            null value then makes the statement fail). Otherwise only the values that
            ``jsonb_typeof`` calls ``number`` are averaged.
    """

    name: str
    numbers_only: bool = True


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


def _metrics() -> ColumnElement[Any]:
    return type_coerce(RESULTS.c.metrics, JSONB())


def pg_metric_keys_statement(batch_id: str, limit: int | None = KEY_SAMPLE_ROWS) -> Any:
    """The keys of the batch's ``metrics`` objects and whether all their values are numbers.

    Args:
        batch_id: The batch.
        limit: Read only this many results of the batch (any ones: the first the scan
            finds), or every result for ``None``.

    Returns:
        A statement for rows ``(key, numbers_only)``, sorted by key.
    """
    metrics = _metrics()
    objects = select(metrics.label("metrics")).where(
        _in_batch(batch_id), func.jsonb_typeof(metrics) == "object"
    )
    if limit is not None:
        objects = objects.limit(limit)
    sample = objects.subquery("sample")
    kv = func.jsonb_each(sample.c.metrics).table_valued(
        column("key", String()), column("value", JSONB())
    )
    return (
        select(
            kv.c.key,
            func.bool_and(func.jsonb_typeof(kv.c.value) == "number").label("numbers_only"),
        )
        .select_from(sample)
        .join(kv, true())
        .group_by(kv.c.key)
        .order_by(kv.c.key)
    )


def _metric_columns(keys: Sequence[MetricKey], check_keys: bool) -> Iterator[ColumnElement[Any]]:
    """``mean_<i>`` per key, ``total_cost`` and ``unknown_keys`` (see pg_stats_statement)."""
    metrics = _metrics()
    for i, key in enumerate(keys):
        value = metrics.op("->", return_type=JSONB())(
            bindparam(f"key_{i}", key.name, type_=String())
        )
        number = sql_cast(value, Numeric())
        mean: ColumnElement[Any] = func.avg(number)
        total: ColumnElement[Any] = func.sum(number)
        if not key.numbers_only:
            is_number = func.jsonb_typeof(value) == "number"
            mean, total = func.avg(number).filter(is_number), func.sum(number).filter(is_number)
        yield mean.label(f"mean_{i}")
        if key.name == COST_METRIC:
            yield total.label("total_cost")
    if check_keys:
        known = bindparam("known_keys", [k.name for k in keys], type_=ARRAY(Text()))
        rest = metrics.op("-", return_type=JSONB())(known)
        empty = literal_column("'{}'", JSONB())
        unknown = case((func.jsonb_typeof(metrics) == "object", rest != empty), else_=false())
        yield func.count().filter(unknown).label("unknown_keys")


def _metric_means_by_jsonb_each(batch_id: str) -> Any:
    """``(name, metric_keys, metric_values)``: every key's mean, one ``jsonb_each`` row per
    (result, key) grouped by (combination, key); for batches with many distinct keys."""
    metrics = _metrics()
    kv = func.jsonb_each(metrics).table_valued(column("key", String()), column("value", JSONB()))
    per_key = (
        select(
            RESULTS.c.combination_name.label("name"),
            kv.c.key.label("key"),
            func.avg(sql_cast(kv.c.value, Numeric()))
            .filter(func.jsonb_typeof(kv.c.value) == "number")
            .label("mean"),
        )
        .select_from(RESULTS)
        .join(kv, true())
        .where(_in_batch(batch_id), func.jsonb_typeof(metrics) == "object")
        .group_by(RESULTS.c.combination_name, kv.c.key)
        .subquery("per_key")
    )
    return (
        select(
            per_key.c.name,
            func.array_agg(aggregate_order_by(per_key.c.key, per_key.c.key)).label("metric_keys"),
            func.array_agg(aggregate_order_by(per_key.c.mean, per_key.c.key)).label(
                "metric_values"
            ),
        )
        .where(per_key.c.mean.is_not(None))  # keys that never held a number
        .group_by(per_key.c.name)
        .subquery("metric_means")
    )


def pg_stats_statement(
    batch_id: str, keys: Sequence[MetricKey] | None = None, check_keys: bool = True
) -> Any:
    """The single PostgreSQL statement for every per-combination figure of a batch.

    Two aggregates over the batch, joined by combination:

    * ``core`` (hashed, parallel-safe): counts, score mean and standard deviation and, given
      ``keys``, per metric key ``mean_<i>`` = ``avg((metrics -> :key_<i>)::numeric)`` (with
      ``FILTER (WHERE jsonb_typeof(...) = 'number')`` unless ``keys[i].numbers_only``);
      ``total_cost`` (if ``cost_usd`` is one of the keys) is the ``sum`` over the same
      input, so it shares the mean's transition state. With ``check_keys``,
      ``unknown_keys`` counts the rows whose ``metrics`` hold a key not in ``keys``
      (``metrics - :known_keys <> '{}'``);
    * ``durations`` (hashed): each combination's ``duration_ms`` as one array, of which a
      lateral ``percentile_cont`` over ``unnest`` gives ``p50_ms`` / ``p95_ms``: a sort of
      each combination's durations, not of the batch's rows by combination.

    Without ``keys`` the metric means come from ``jsonb_each`` instead (``metric_keys`` /
    ``metric_values`` arrays, every key of the batch, no sample needed). Its cost grows with
    the keys each row holds, not with the distinct keys of the batch (see
    :data:`MAX_KEY_COLUMNS`); for the 5 keys of ``bench/postgres.py``'s 1,000,000-row batch
    the statement takes 2.8 s instead of 1.2 s.

    Args:
        batch_id: The batch.
        keys: The metric keys to average (see :func:`pg_metric_keys_statement`), or
            ``None`` for every key through ``jsonb_each``.
        check_keys: With ``keys``: add the ``unknown_keys`` column.

    Returns:
        A statement for one row per combination, sorted by name.
    """
    score = _score()
    columns: list[ColumnElement[Any]] = [
        RESULTS.c.combination_name.label("name"),
        func.count().label("n"),
        func.count().filter(not_(RESULTS.c.success)).label("n_failed"),
        func.count().filter(and_(RESULTS.c.success, RESULTS.c.passed)).label("n_passed"),
        # avg and stddev_samp of the same float8 input share one transition state.
        func.avg(score).label("mean_run_score"),
        func.stddev_samp(score).label("std_score"),
    ]
    if keys is None:
        cost = _metrics().op("->", return_type=JSONB())(
            bindparam("cost_key", COST_METRIC, type_=String())
        )
        total_cost = func.sum(sql_cast(cost, Numeric())).filter(func.jsonb_typeof(cost) == "number")
        columns.append(total_cost.label("total_cost"))
    else:
        columns += _metric_columns(keys, check_keys)
    core = (
        select(*columns)
        .where(_in_batch(batch_id))
        .group_by(RESULTS.c.combination_name)
        .subquery("core")
    )
    durations = (
        select(
            RESULTS.c.combination_name.label("name"),
            func.array_agg(RESULTS.c.duration_ms).label("durations"),
        )
        .where(_in_batch(batch_id))
        .group_by(RESULTS.c.combination_name)
        .subquery("durations")
    )
    # unnest in a select list (ProjectSet) rather than in FROM (a Function Scan that first
    # copies the array into a tuplestore).
    unnested = (
        select(func.unnest(durations.c.durations, type_=Float()).label("duration"))
        .correlate(durations)
        .subquery("unnested")
    )
    pct = (
        select(
            *(
                func.percentile_cont(bindparam(f"q{q}", q / 100, type_=Float()))
                .within_group(unnested.c.duration)
                .label(f"p{q}_ms")
                for q in PERCENTILES
            )
        )
        .select_from(unnested)
        .lateral("pct")
    )
    joined = core.join(durations, core.c.name == durations.c.name).join(pct, true())
    outputs: list[Any] = [core, *(pct.c[f"p{q}_ms"] for q in PERCENTILES)]
    if keys is None:
        means = _metric_means_by_jsonb_each(batch_id)
        joined = joined.outerjoin(means, core.c.name == means.c.name)
        outputs += [means.c.metric_keys, means.c.metric_values]
    return select(*outputs).select_from(joined).order_by(core.c.name)


@contextmanager
def _pg_local_settings(executor: Executor, settings: Mapping[str, str]) -> Iterator[None]:
    """Transaction-local ``set_config`` (PgBouncer-safe), restoring the previous values.

    A setting in :data:`PG_RAISE_ONLY` is left alone where the server's value is higher.
    """
    previous: dict[str, str] = {}
    for name, value in settings.items():
        params = {"name": name, "value": value}
        current = str(
            executor.execute(select(func.current_setting(bindparam("name"))), params).scalar()
        )
        if name in PG_RAISE_ONLY and int(current) >= int(value):
            continue
        previous[name] = current
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


def _pg_metric_keys(executor: Executor, batch_id: str, limit: int | None) -> list[MetricKey]:
    rows = executor.execute(pg_metric_keys_statement(batch_id, limit))
    return [MetricKey(str(key), bool(numbers_only)) for key, numbers_only in rows]


def _sqlstate(error: DBAPIError) -> str | None:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return str(code) if code else None


def _pg_stats_rows(
    executor: Executor, batch_id: str, keys: Sequence[MetricKey] | None, check_keys: bool
) -> list[RowMapping] | None:
    """The stats statement's rows, or ``None`` if an untested cast met a non-number."""
    statement = pg_stats_statement(batch_id, keys, check_keys)
    if not any(k.numbers_only for k in keys or ()):
        return list(executor.execute(statement).mappings())
    try:
        with executor.begin_nested():  # the failed statement must not abort the caller's tx
            return list(executor.execute(statement).mappings())
    except DBAPIError as error:
        if _sqlstate(error) != _JSONB_CAST_FAILED:
            raise
        return None


def _pg_combinations(executor: Executor, batch_id: str) -> list[CombinationAggregate]:
    keys: list[MetricKey] | None = _pg_metric_keys(executor, batch_id, KEY_SAMPLE_ROWS)
    every_key = False  # keys read from the whole batch rather than a sample
    while True:
        if keys is not None and len(keys) > MAX_KEY_COLUMNS:
            keys = None  # too many keys for a column each: jsonb_each
        rows = _pg_stats_rows(executor, batch_id, keys, check_keys=not every_key)
        if rows is None:  # a key's value is not a number after all: test every value's type
            keys = [dataclasses.replace(k, numbers_only=False) for k in keys or ()]
        elif keys is not None and not every_key and any(r["unknown_keys"] for r in rows):
            keys = _pg_metric_keys(executor, batch_id, None)
            every_key = True
        else:
            break
    out = []
    for row in rows:
        if keys is None:
            means = list(zip(row["metric_keys"] or [], row["metric_values"] or [], strict=True))
        else:
            means = [(key.name, row[f"mean_{i}"]) for i, key in enumerate(keys)]
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
                total_cost=float(row.get("total_cost") or 0.0),
                metric_means={str(k): float(v) for k, v in sorted(means) if v is not None},
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
            (transaction-local, restored before returning; see :data:`PG_SETTINGS`), and the
            stats statement runs in a savepoint when it casts metric values without a type
            test (see :class:`MetricKey`).
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
