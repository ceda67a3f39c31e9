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

The package, one module per concept: :mod:`~.records` (:class:`CombinationAggregate`,
:class:`MatrixInputs`), :mod:`~.statements` (the rollup statements), :mod:`~.percentiles`
(the percentile lookups), :mod:`~.inputs` (:func:`matrix_inputs`, :func:`inputs_from_rows`),
:mod:`~.totals` (:func:`combination_totals`) and :mod:`~.builders`
(:func:`build_matrix_from_inputs`, :func:`matrix_for_batch`). Import from here.
"""

from wtb_domain.adapters.sql.aggregates.builders import build_matrix_from_inputs, matrix_for_batch
from wtb_domain.adapters.sql.aggregates.inputs import _Combination as _Combination
from wtb_domain.adapters.sql.aggregates.inputs import inputs_from_rows, matrix_inputs
from wtb_domain.adapters.sql.aggregates.percentiles import (
    LOOKUPS_PER_STATEMENT,
    PERCENTILES,
    PercentileLookup,
    percentile_statements,
)
from wtb_domain.adapters.sql.aggregates.records import CombinationAggregate, MatrixInputs
from wtb_domain.adapters.sql.aggregates.statements import _batch as _batch
from wtb_domain.adapters.sql.aggregates.statements import (
    metric_sums_statement,
    rollups_statement,
)
from wtb_domain.adapters.sql.aggregates.totals import combination_totals

__all__ = [
    "LOOKUPS_PER_STATEMENT",
    "PERCENTILES",
    "CombinationAggregate",
    "MatrixInputs",
    "PercentileLookup",
    "build_matrix_from_inputs",
    "combination_totals",
    "inputs_from_rows",
    "matrix_for_batch",
    "matrix_inputs",
    "metric_sums_statement",
    "percentile_statements",
    "rollups_statement",
]
