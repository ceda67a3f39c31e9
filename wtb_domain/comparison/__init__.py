"""The comparison matrix: per-combination statistics and paired significance tests.

A batch runs several *combinations* (workflow variants) over the same test *cases*, each case
possibly repeated. This module turns the per-run results into:

* :class:`CombinationStats` per combination: mean score with a bootstrap confidence interval,
  pass rate, latency percentiles, cost and metric means, and a rank;
* :class:`PairedComparison` of each combination against a reference (the best one, and
  optionally a named baseline), using a paired sign-flip permutation test on per-case mean
  scores with Holm-Bonferroni adjustment across the comparisons against that reference.

A failed run counts in ``n`` and ``n_failed`` and scores 0. Everything is deterministic for a
given ``seed``. The building blocks (:func:`bootstrap_ci`, :func:`paired_test`, :func:`holm`,
:func:`percentile`, :func:`per_case_means`, :func:`paired_comparisons`) take plain numbers so a
database can feed them pre-aggregated values.
The package: :mod:`~wtb_domain.comparison.model` (records and constants),
:mod:`~wtb_domain.comparison.resampling` and :mod:`~wtb_domain.comparison.permutation` (the
statistics, vectorised with numpy, bit-for-bit equal to their plain-Python definitions kept in
``tests/stats_pure.py``), :mod:`~wtb_domain.comparison.stream` (their random draws),
:mod:`~wtb_domain.comparison.summary` (building a matrix) and
:mod:`~wtb_domain.comparison.matrix` (the matrix and its renderings). Import from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wtb_domain.lazy import lazy_exports

if TYPE_CHECKING:
    from wtb_domain.comparison.matrix import ComparisonMatrix
    from wtb_domain.comparison.model import (
        BETTER,
        COST_METRIC,
        CSV_COLUMNS,
        DEFAULT_ALPHA,
        DEFAULT_RESAMPLES,
        EXACT_TEST_MAX_PAIRS,
        MONTE_CARLO_DRAWS,
        NO_DIFFERENCE,
        WORSE,
        CombinationStats,
        CombinationTotals,
        PairedComparison,
        ResultRow,
        check_alpha,
        known_names,
        numeric_metrics,
        run_score,
    )
    from wtb_domain.comparison.permutation import holm, paired_test, paired_tests
    from wtb_domain.comparison.resampling import bootstrap_ci, bootstrap_cis, percentile
    from wtb_domain.comparison.summary import (
        assemble_matrix,
        build_matrix,
        combination_stats,
        combination_totals,
        metric_means,
        paired_comparisons,
        per_case_means,
        ranked,
        result_rows,
        total_cost,
    )

# Loaded on first use (PEP 562): the numpy statistics load with the first matrix built, so a
# process that only writes results or reads a batch's status does not import numpy.
_LAZY = {
    "ComparisonMatrix": "wtb_domain.comparison.matrix",
    "BETTER": "wtb_domain.comparison.model",
    "COST_METRIC": "wtb_domain.comparison.model",
    "CSV_COLUMNS": "wtb_domain.comparison.model",
    "DEFAULT_ALPHA": "wtb_domain.comparison.model",
    "DEFAULT_RESAMPLES": "wtb_domain.comparison.model",
    "EXACT_TEST_MAX_PAIRS": "wtb_domain.comparison.model",
    "MONTE_CARLO_DRAWS": "wtb_domain.comparison.model",
    "NO_DIFFERENCE": "wtb_domain.comparison.model",
    "WORSE": "wtb_domain.comparison.model",
    "CombinationStats": "wtb_domain.comparison.model",
    "CombinationTotals": "wtb_domain.comparison.model",
    "PairedComparison": "wtb_domain.comparison.model",
    "ResultRow": "wtb_domain.comparison.model",
    "check_alpha": "wtb_domain.comparison.model",
    "known_names": "wtb_domain.comparison.model",
    "numeric_metrics": "wtb_domain.comparison.model",
    "run_score": "wtb_domain.comparison.model",
    "holm": "wtb_domain.comparison.permutation",
    "paired_test": "wtb_domain.comparison.permutation",
    "paired_tests": "wtb_domain.comparison.permutation",
    "bootstrap_ci": "wtb_domain.comparison.resampling",
    "bootstrap_cis": "wtb_domain.comparison.resampling",
    "percentile": "wtb_domain.comparison.resampling",
    "assemble_matrix": "wtb_domain.comparison.summary",
    "build_matrix": "wtb_domain.comparison.summary",
    "combination_stats": "wtb_domain.comparison.summary",
    "combination_totals": "wtb_domain.comparison.summary",
    "metric_means": "wtb_domain.comparison.summary",
    "paired_comparisons": "wtb_domain.comparison.summary",
    "per_case_means": "wtb_domain.comparison.summary",
    "ranked": "wtb_domain.comparison.summary",
    "result_rows": "wtb_domain.comparison.summary",
    "total_cost": "wtb_domain.comparison.summary",
}

if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all __getattr__
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "BETTER",
    "COST_METRIC",
    "CSV_COLUMNS",
    "DEFAULT_ALPHA",
    "DEFAULT_RESAMPLES",
    "EXACT_TEST_MAX_PAIRS",
    "MONTE_CARLO_DRAWS",
    "NO_DIFFERENCE",
    "WORSE",
    "CombinationStats",
    "CombinationTotals",
    "ComparisonMatrix",
    "PairedComparison",
    "ResultRow",
    "assemble_matrix",
    "bootstrap_ci",
    "bootstrap_cis",
    "build_matrix",
    "check_alpha",
    "combination_stats",
    "combination_totals",
    "holm",
    "known_names",
    "metric_means",
    "numeric_metrics",
    "paired_comparisons",
    "paired_test",
    "paired_tests",
    "per_case_means",
    "percentile",
    "ranked",
    "result_rows",
    "run_score",
    "total_cost",
]
