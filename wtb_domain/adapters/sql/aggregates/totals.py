"""Runs, failed runs and mean score per combination, from the rollups alone."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from wtb_domain.adapters.sql.aggregates.statements import rollups_statement
from wtb_domain.comparison import CombinationTotals

if TYPE_CHECKING:
    from wtb_domain.adapters.sql.aggregates.statements import Executor


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
