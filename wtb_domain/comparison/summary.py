"""Building the comparison matrix: per-case means, per-combination statistics, paired tests."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from wtb_domain.comparison.matrix import ComparisonMatrix
from wtb_domain.comparison.model import (
    BETTER,
    COST_METRIC,
    DEFAULT_ALPHA,
    DEFAULT_RESAMPLES,
    NO_DIFFERENCE,
    WORSE,
    CombinationStats,
    CombinationTotals,
    PairedComparison,
    ResultRow,
    check_alpha,
    known_names,
    numeric_metrics,
)
from wtb_domain.comparison.permutation import holm, paired_tests
from wtb_domain.comparison.resampling import bootstrap_cis, percentile
from wtb_domain.errors import SpecError


def per_case_means(rows: Iterable[ResultRow]) -> dict[str, dict[str, float]]:
    """Mean score over repeats, per combination and case (failed runs score 0).

    Returns:
        ``{combination: {case_id: mean score}}``, both levels sorted by name.
    """
    grouped: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        cases = grouped.setdefault(row.combination_name, {})
        cases.setdefault(row.case_id, []).append(row.score)
    return {
        name: {case: statistics.fmean(scores) for case, scores in sorted(cases.items())}
        for name, cases in sorted(grouped.items())
    }


def _verdict(significant: bool, mean_diff: float) -> str:
    if not significant or mean_diff == 0:
        return NO_DIFFERENCE
    return BETTER if mean_diff > 0 else WORSE


def paired_comparisons(
    case_means: Mapping[str, Mapping[str, float]],
    reference: str,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> list[PairedComparison]:
    """Compare every other combination with ``reference`` over their common cases.

    Args:
        case_means: ``{combination: {case_id: mean score}}`` as from :func:`per_case_means`;
            the output follows its key order.
        reference: The combination to compare against.
        alpha: Significance level for the Holm-adjusted p-values.
        seed: Seed of the Monte-Carlo permutation test.

    Raises:
        SpecError: Unknown reference (the message lists the known names) or a bad alpha.
    """
    check_alpha(alpha)
    if reference not in case_means:
        raise SpecError(f"unknown combination {reference!r}; known: {known_names(case_means)}")
    pairs = _pairs(case_means, reference)
    return _compared(reference, pairs, paired_tests([d for _, d in pairs], seed=seed), alpha)


def _pairs(
    case_means: Mapping[str, Mapping[str, float]], reference: str
) -> list[tuple[str, list[float]]]:
    """Each other combination's per-case differences from ``reference`` (common cases, sorted)."""
    base = case_means[reference]
    base_cases = sorted(base)
    pairs = []
    for name, cases in case_means.items():
        if name == reference:
            continue
        common = base_cases if cases.keys() == base.keys() else sorted(cases.keys() & base.keys())
        pairs.append((name, [cases[case] - base[case] for case in common]))
    return pairs


def _compared(
    reference: str,
    pairs: list[tuple[str, list[float]]],
    p_values: list[float],
    alpha: float,
) -> list[PairedComparison]:
    adjusted = holm(p_values)
    comparisons = []
    for (name, diffs), p, adj in zip(pairs, p_values, adjusted, strict=True):
        mean_diff = statistics.fmean(diffs) if diffs else 0.0
        significant = bool(diffs) and adj < alpha
        comparisons.append(
            PairedComparison(
                combination=name,
                reference=reference,
                n_pairs=len(diffs),
                mean_diff=mean_diff,
                p_value=p,
                p_adjusted=adj,
                significant=significant,
                verdict=_verdict(significant, mean_diff),
            )
        )
    return comparisons


def metric_means(rows: Sequence[ResultRow]) -> dict[str, float]:
    collected: dict[str, list[float]] = {}
    for row in rows:
        for name, value in numeric_metrics(row.metrics):
            collected.setdefault(name, []).append(value)
    return {name: statistics.fmean(values) for name, values in sorted(collected.items())}


def total_cost(rows: Iterable[ResultRow]) -> float:
    """Sum of the numeric ``cost_usd`` metric over the runs that recorded one."""
    return math.fsum(v for row in rows for k, v in numeric_metrics(row.metrics) if k == COST_METRIC)


def _combination(
    name: str, rows: Sequence[ResultRow], case_means: Mapping[str, float], ci: tuple[float, float]
) -> CombinationStats:
    scores = [row.score for row in rows]
    durations = [row.duration_ms for row in rows]
    return CombinationStats(
        name=name,
        n=len(rows),
        n_failed=sum(not row.success for row in rows),
        mean_score=statistics.fmean(case_means.values()),
        std_score=statistics.stdev(scores) if len(scores) > 1 else 0.0,
        ci_low=ci[0],
        ci_high=ci[1],
        pass_rate=sum(row.success and row.passed for row in rows) / len(rows),
        p50_ms=percentile(durations, 50),
        p95_ms=percentile(durations, 95),
        total_cost=total_cost(rows),
        metric_means=metric_means(rows),
    )


def combination_stats(
    rows: Iterable[ResultRow], resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> list[CombinationStats]:
    """Summarise every combination and rank them.

    Args:
        rows: All result rows of a batch.
        resamples: Bootstrap resamples for the confidence intervals (of per-case means).
        seed: Bootstrap seed.

    Returns:
        One :class:`CombinationStats` per combination, ordered by rank (1 first).
    """
    materialised = list(rows)
    return _combination_stats(materialised, per_case_means(materialised), resamples, seed)


def combination_totals(rows: Iterable[ResultRow]) -> list[CombinationTotals]:
    """Runs, failed runs and mean score per combination (by name): the matrix's values,
    without its intervals, percentiles and paired tests."""
    counts: dict[str, list[int]] = {}
    materialised = list(rows)
    for row in materialised:
        count = counts.setdefault(row.combination_name, [0, 0])
        count[0] += 1
        count[1] += not row.success
    return [
        CombinationTotals(name, counts[name][0], counts[name][1], statistics.fmean(cases.values()))
        for name, cases in per_case_means(materialised).items()
    ]


def _combination_stats(
    rows: Sequence[ResultRow],
    means: Mapping[str, Mapping[str, float]],
    resamples: int,
    seed: int,
) -> list[CombinationStats]:
    by_name: dict[str, list[ResultRow]] = {}
    for row in rows:
        by_name.setdefault(row.combination_name, []).append(row)
    intervals = bootstrap_cis(
        [list(means[name].values()) for name in means], resamples=resamples, seed=seed
    )
    return ranked(
        _combination(name, by_name[name], means[name], ci)
        for name, ci in zip(means, intervals, strict=True)
    )


def ranked(stats: Iterable[CombinationStats]) -> list[CombinationStats]:
    """Best first (mean score, then pass rate, then p50, then name), with ``rank`` set."""
    ordered = sorted(stats, key=lambda s: (-s.mean_score, -s.pass_rate, s.p50_ms, s.name))
    return [dataclasses.replace(s, rank=rank) for rank, s in enumerate(ordered, start=1)]


def build_matrix(
    rows: Iterable[ResultRow],
    batch_id: str,
    baseline: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
) -> ComparisonMatrix:
    """Build the comparison matrix of a batch.

    Args:
        rows: All result rows of the batch.
        batch_id: The batch id (for the report).
        baseline: A combination to compare every other one against, or ``None``.
        alpha: Significance level for the Holm-adjusted p-values.
        seed: Seed of the bootstrap and the Monte-Carlo permutation tests.
        resamples: Bootstrap resamples.

    Returns:
        The matrix; deterministic for the same rows and seed.

    Raises:
        SpecError: Unknown baseline (the message lists the known combinations) or bad alpha.
    """
    check_alpha(alpha)
    materialised = list(rows)
    means = per_case_means(materialised)
    stats = _combination_stats(materialised, means, resamples, seed)
    return assemble_matrix(stats, means, batch_id, baseline, alpha, seed)


def assemble_matrix(
    stats: list[CombinationStats],
    case_means: Mapping[str, Mapping[str, float]],
    batch_id: str,
    baseline: str | None,
    alpha: float,
    seed: int,
) -> ComparisonMatrix:
    """The matrix from ranked stats and per-case means: paired tests vs best and baseline."""
    names = [s.name for s in stats]
    if baseline is not None and baseline not in names:
        raise SpecError(
            f"baseline: unknown combination {baseline!r}; known combinations: {known_names(names)}"
        )
    means = {name: case_means[name] for name in names}
    references = names[:1] + ([baseline] if baseline is not None and names[0] != baseline else [])
    families = [_pairs(means, reference) for reference in references]
    p_values = paired_tests([diffs for family in families for _, diffs in family], seed=seed)
    compared = []
    for reference, family in zip(references, families, strict=True):
        compared.append(_compared(reference, family, p_values[: len(family)], alpha))
        p_values = p_values[len(family) :]
    vs_best = compared[0] if compared else []
    vs_baseline = [] if baseline is None else compared[references.index(baseline)]
    return ComparisonMatrix(
        batch_id=batch_id,
        stats=stats,
        vs_best=vs_best,
        vs_baseline=vs_baseline,
        baseline=baseline,
        alpha=alpha,
    )


def result_rows(results: Iterable[Any]) -> list[ResultRow]:
    """Comparison rows from stored batch results (``wtb_domain.model.BatchResult``)."""
    return [
        ResultRow(
            combination_name=r.combination_name,
            case_id=r.case_id,
            repeat=r.repeat,
            success=r.success,
            overall_score=r.overall_score,
            duration_ms=r.duration_ms,
            metrics=r.metrics,
            passed=r.passed,
        )
        for r in results
    ]
