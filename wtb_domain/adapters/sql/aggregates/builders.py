"""The comparison matrix built from the aggregated inputs."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from wtb_domain.adapters.sql.aggregates.inputs import matrix_inputs
from wtb_domain.adapters.sql.aggregates.records import MatrixInputs
from wtb_domain.comparison import (
    DEFAULT_ALPHA,
    DEFAULT_RESAMPLES,
    CombinationStats,
    ComparisonMatrix,
    assemble_matrix,
    bootstrap_cis,
    check_alpha,
    ranked,
)

if TYPE_CHECKING:
    from wtb_domain.adapters.sql.aggregates.statements import Executor


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
