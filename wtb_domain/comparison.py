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
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import random
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wtb_domain.errors import SpecError

DEFAULT_ALPHA = 0.05
DEFAULT_RESAMPLES = 2000
MONTE_CARLO_DRAWS = 10_000
EXACT_TEST_MAX_PAIRS = 16
COST_METRIC = "cost_usd"
BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no difference"

CSV_COLUMNS = (
    "name",
    "rank",
    "n",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "pass_rate",
    "p50_ms",
    "p95_ms",
    "total_cost",
    "p_vs_best_adj",
    "p_vs_baseline_adj",
)


@dataclass(frozen=True)
class ResultRow:
    """One run of one combination on one test case.

    ``overall_score`` is ignored (taken as 0) when ``success`` is false.
    """

    combination_name: str
    case_id: str
    repeat: int
    success: bool
    overall_score: float
    duration_ms: float
    metrics: Mapping[str, float]
    passed: bool

    @property
    def score(self) -> float:
        """The score used in statistics: see :func:`run_score`."""
        return run_score(self.success, self.overall_score)


def run_score(success: bool, overall_score: float) -> float:
    """The score statistics use for a run: 0 for a failed run or a non-finite score."""
    return float(overall_score) if success and math.isfinite(overall_score) else 0.0


@dataclass(frozen=True)
class CombinationStats:
    """Summary of one combination's runs.

    Attributes:
        name: The combination name.
        n: Number of runs (failed runs included).
        n_failed: Number of failed runs.
        mean_score: Mean over cases of the per-case mean score (equals the plain mean over
            runs when every case has the same number of repeats).
        std_score: Sample standard deviation (n - 1) of the run scores; 0 when n = 1.
        ci_low: Lower end of the bootstrap confidence interval of ``mean_score``.
        ci_high: Upper end of that interval.
        pass_rate: Fraction of runs that succeeded and passed.
        p50_ms: Median run duration (linear interpolation, all runs).
        p95_ms: 95th percentile of run duration (linear interpolation, all runs).
        total_cost: Sum of the numeric ``cost_usd`` metric over the runs that recorded one.
        metric_means: Mean of every finite numeric metric over the runs that recorded it.
        rank: 1 = best mean score; ties broken by higher pass rate, then lower p50, then name.
    """

    name: str
    n: int
    n_failed: int
    mean_score: float
    std_score: float
    ci_low: float
    ci_high: float
    pass_rate: float
    p50_ms: float
    p95_ms: float
    total_cost: float
    metric_means: dict[str, float]
    rank: int = 0


@dataclass(frozen=True)
class PairedComparison:
    """A combination against a reference over the cases both ran.

    Attributes:
        combination: The compared combination.
        reference: The reference combination (best or baseline).
        n_pairs: Number of cases present in both.
        mean_diff: Mean of per-case (combination - reference) mean-score differences.
        p_value: Two-sided paired sign-flip permutation test p-value (1.0 when no pairs).
        p_adjusted: Holm-Bonferroni adjusted p-value over all comparisons with this reference.
        significant: ``p_adjusted < alpha``.
        verdict: ``"better"``, ``"worse"`` or ``"no difference"``.
    """

    combination: str
    reference: str
    n_pairs: int
    mean_diff: float
    p_value: float
    p_adjusted: float
    significant: bool
    verdict: str


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (``q`` in 0..100) by linear interpolation between closest ranks.

    This is the common "type 7" definition (numpy's default): position ``(n - 1) * q / 100``
    in the sorted values.

    Raises:
        ValueError: No values, or ``q`` outside 0..100.
    """
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bootstrap_ci(
    values: Sequence[float],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean.

    Args:
        values: The sample (e.g. per-case mean scores).
        confidence: Coverage of the interval, strictly between 0 and 1.
        resamples: Number of bootstrap resamples.
        seed: Seed of the resampling; the same inputs and seed give the same interval.

    Returns:
        ``(low, high)``; ``(v, v)`` for a single value.

    Raises:
        ValueError: No values, or an invalid confidence or resample count.
    """
    sample = [float(v) for v in values]
    if not sample:
        raise ValueError("bootstrap_ci of no values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if len(sample) == 1 or min(sample) == max(sample):
        return sample[0], sample[0]
    rng = random.Random(seed)  # noqa: S311 - seeded resampling for statistics, not secrets
    size = len(sample)
    means = [math.fsum(rng.choices(sample, k=size)) / size for _ in range(resamples)]
    tail = (1 - confidence) / 2 * 100
    return percentile(means, tail), percentile(means, 100 - tail)


def _signed_sums(values: Sequence[float]) -> list[float]:
    sums = [0.0]
    for value in values:
        sums = [s + value for s in sums] + [s - value for s in sums]
    return sums


def paired_test(
    diffs: Sequence[float],
    seed: int = 0,
    draws: int = MONTE_CARLO_DRAWS,
    exact_max: int = EXACT_TEST_MAX_PAIRS,
) -> float:
    """Two-sided paired sign-flip permutation test of "mean difference = 0".

    The statistic is ``|sum(diffs)|``. Zero differences are kept (they cannot change the
    statistic but count in n).

    Args:
        diffs: Per-case differences (combination - reference).
        seed: Seed of the Monte-Carlo draws.
        draws: Number of random sign assignments when ``len(diffs) > exact_max``.
        exact_max: Up to this many pairs, all ``2**n`` sign assignments are enumerated.

    Returns:
        The exact p-value (share of assignments at least as extreme, the observed one
        included), or for larger n the Monte-Carlo estimate ``(hits + 1) / (draws + 1)``.
        1.0 when there are no pairs.
    """
    values = [float(d) for d in diffs]
    if not values:
        return 1.0
    tolerance = 1e-9 * (1.0 + math.fsum(abs(v) for v in values))
    threshold = abs(math.fsum(values)) - tolerance
    if len(values) <= exact_max:
        sums = _signed_sums(values)
        return sum(1 for s in sums if abs(s) >= threshold) / len(sums)
    return _monte_carlo(values, threshold, draws, seed)


def _monte_carlo(values: Sequence[float], threshold: float, draws: int, seed: int) -> float:
    rng = random.Random(seed)  # noqa: S311 - seeded Monte Carlo for a p-value, not secrets
    tables = [_signed_sums(values[i : i + 8]) for i in range(0, len(values), 8)]
    widths = [len(table).bit_length() - 1 for table in tables]
    hits = 0
    for _ in range(draws):
        total = math.fsum(t[rng.getrandbits(w)] for t, w in zip(tables, widths, strict=True))
        hits += abs(total) >= threshold
    return (hits + 1) / (draws + 1)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjustment.

    Args:
        p_values: Raw p-values of one family of tests.

    Returns:
        Adjusted p-values in the input order; each is >= its raw value, at most 1, and the
        adjustment preserves the order of the raw p-values.

    Raises:
        ValueError: A p-value outside [0, 1].
    """
    if any(not 0 <= p <= 1 for p in p_values):
        raise ValueError(f"p-values must be in [0, 1], got {list(p_values)}")
    count = len(p_values)
    adjusted = [0.0] * count
    running = 0.0
    for position, index in enumerate(sorted(range(count), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (count - position) * p_values[index]))
        adjusted[index] = running
    return adjusted


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


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise SpecError(f"alpha: must be strictly between 0 and 1 (e.g. 0.05), got {alpha}")


def known_names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names) or "(none)"


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
    base = case_means[reference]
    raw: list[tuple[str, int, float, float]] = []
    for name, cases in case_means.items():
        if name == reference:
            continue
        diffs = [cases[case] - base[case] for case in sorted(set(cases) & set(base))]
        mean_diff = statistics.fmean(diffs) if diffs else 0.0
        raw.append((name, len(diffs), mean_diff, paired_test(diffs, seed=seed)))
    adjusted = holm([p for *_, p in raw])
    return [
        PairedComparison(
            combination=name,
            reference=reference,
            n_pairs=pairs,
            mean_diff=diff,
            p_value=p,
            p_adjusted=adj,
            significant=pairs > 0 and adj < alpha,
            verdict=_verdict(pairs > 0 and adj < alpha, diff),
        )
        for (name, pairs, diff, p), adj in zip(raw, adjusted, strict=True)
    ]


def numeric_metrics(metrics: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """The metrics that statistics use: finite numbers (not booleans), as floats.

    Every figure made from metrics (means, the total cost) and the SQL rollups that store
    them (``wtb_domain.adapters.sql.rollups``) read them through this one rule.
    """
    for name, value in metrics.items():
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and math.isfinite(value):
            yield name, float(value)


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
    name: str, rows: Sequence[ResultRow], case_means: Mapping[str, float], resamples: int, seed: int
) -> CombinationStats:
    scores = [row.score for row in rows]
    durations = [row.duration_ms for row in rows]
    low, high = bootstrap_ci(list(case_means.values()), resamples=resamples, seed=seed)
    return CombinationStats(
        name=name,
        n=len(rows),
        n_failed=sum(not row.success for row in rows),
        mean_score=statistics.fmean(case_means.values()),
        std_score=statistics.stdev(scores) if len(scores) > 1 else 0.0,
        ci_low=low,
        ci_high=high,
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
    means = per_case_means(materialised)
    by_name: dict[str, list[ResultRow]] = {}
    for row in materialised:
        by_name.setdefault(row.combination_name, []).append(row)
    stats = [_combination(name, by_name[name], means[name], resamples, seed) for name in means]
    return ranked(stats)


def ranked(stats: Iterable[CombinationStats]) -> list[CombinationStats]:
    """Best first (mean score, then pass rate, then p50, then name), with ``rank`` set."""
    ordered = sorted(stats, key=lambda s: (-s.mean_score, -s.pass_rate, s.p50_ms, s.name))
    return [dataclasses.replace(s, rank=rank) for rank, s in enumerate(ordered, start=1)]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


@dataclass(frozen=True)
class ComparisonMatrix:
    """The comparison of all combinations of a batch.

    Attributes:
        batch_id: The batch compared.
        stats: Per-combination statistics, ordered by rank.
        vs_best: Each other combination against the rank-1 combination, in rank order.
        vs_baseline: Each other combination against ``baseline``; empty without a baseline.
        baseline: The baseline combination, if any.
        alpha: Significance level used for the verdicts.
    """

    batch_id: str
    stats: list[CombinationStats]
    vs_best: list[PairedComparison]
    vs_baseline: list[PairedComparison]
    baseline: str | None = None
    alpha: float = DEFAULT_ALPHA

    @property
    def best(self) -> str | None:
        """The rank-1 combination, or ``None`` for an empty batch."""
        return self.stats[0].name if self.stats else None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (non-finite numbers become ``None``)."""
        data = {
            "batch_id": self.batch_id,
            "baseline": self.baseline,
            "alpha": self.alpha,
            "best": self.best,
            "stats": [dataclasses.asdict(s) for s in self.stats],
            "vs_best": [dataclasses.asdict(c) for c in self.vs_best],
            "vs_baseline": [dataclasses.asdict(c) for c in self.vs_baseline],
        }
        safe: dict[str, Any] = _json_safe(data)
        return safe

    def to_json(self, indent: int | None = 2) -> str:
        """Return :meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_csv(self) -> str:
        """One row per combination (see :data:`CSV_COLUMNS`), numbers at full precision.

        The adjusted p-value columns are empty for the reference itself and, without a
        baseline, for ``p_vs_baseline_adj``.
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        best, baseline = _p_by_name(self.vs_best), _p_by_name(self.vs_baseline)
        for s in self.stats:
            writer.writerow(
                [
                    *(s.name, s.rank, s.n, s.mean_score, s.std_score, s.ci_low, s.ci_high),
                    *(s.pass_rate, s.p50_ms, s.p95_ms, s.total_cost),
                    *(_blank(best.get(s.name)), _blank(baseline.get(s.name))),
                ]
            )
        return buffer.getvalue()

    def to_markdown(self) -> str:
        """A ranked table plus a short section on significant differences from the baseline."""
        lines = [f"## Comparison of batch `{self.batch_id}`", ""]
        if not self.stats:
            return "\n".join([*lines, "No results.", ""])
        lines += [*self._table(), "", *self._baseline_section()]
        return "\n".join(lines) + "\n"

    def _table(self) -> list[str]:
        header = (
            "| rank | combination | n | failed | mean | 95% CI | pass rate | p50 ms | p95 ms "
            "| cost | p vs best (adj) |"
        )
        lines = [header, "|" + "---|" * 11]
        best = _p_by_name(self.vs_best)
        for s in self.stats:
            lines.append(
                f"| {s.rank} | {_cell(s.name)} | {s.n} | {s.n_failed} | {s.mean_score:.3f} "
                f"| [{s.ci_low:.3f}, {s.ci_high:.3f}] | {s.pass_rate:.1%} | {s.p50_ms:.1f} "
                f"| {s.p95_ms:.1f} | {s.total_cost:.4f} | {_fmt_p(best.get(s.name))} |"
            )
        return lines

    def _baseline_section(self) -> list[str]:
        if self.baseline is None:
            return ["No baseline set; pass `baseline=<combination>` to compare against one."]
        lines = [f"### vs baseline `{self.baseline}` (Holm-adjusted, alpha = {self.alpha:g})", ""]
        for verdict, label in ((BETTER, "Significantly better"), (WORSE, "Significantly worse")):
            found = [c for c in self.vs_baseline if c.verdict == verdict]
            lines.append(f"- {label}: " + (", ".join(map(_describe, found)) or "none"))
        same = [c.combination for c in self.vs_baseline if c.verdict == NO_DIFFERENCE]
        lines.append("- No significant difference: " + (", ".join(same) or "none"))
        return lines


def _describe(comparison: PairedComparison) -> str:
    return (
        f"{comparison.combination} (Δ {comparison.mean_diff:+.3f}, "
        f"p_adj {_fmt_p(comparison.p_adjusted)})"
    )


def _p_by_name(comparisons: Sequence[PairedComparison]) -> dict[str, float]:
    return {c.combination: c.p_adjusted for c in comparisons}


def _blank(value: float | None) -> str | float:
    return "" if value is None else value


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
    stats = combination_stats(materialised, resamples=resamples, seed=seed)
    return assemble_matrix(stats, per_case_means(materialised), batch_id, baseline, alpha, seed)


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
    return ComparisonMatrix(
        batch_id=batch_id,
        stats=stats,
        vs_best=paired_comparisons(means, names[0], alpha, seed) if names else [],
        vs_baseline=paired_comparisons(means, baseline, alpha, seed)
        if baseline is not None
        else [],
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
