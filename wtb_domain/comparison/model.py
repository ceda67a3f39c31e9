"""The comparison's records: result rows, per-combination statistics, paired comparisons."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
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
class CombinationTotals:
    """A combination's counts and mean score: what a batch's end needs of the matrix.

    Attributes:
        name: The combination name.
        n: Number of runs (failed runs included).
        n_failed: Number of failed runs.
        mean_score: :attr:`CombinationStats.mean_score` (mean over cases of the per-case
            mean score), computed the same way.
    """

    name: str
    n: int
    n_failed: int
    mean_score: float


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


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise SpecError(f"alpha: must be strictly between 0 and 1 (e.g. 0.05), got {alpha}")


def known_names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names) or "(none)"


def numeric_metrics(metrics: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """The metrics that statistics use: finite numbers (not booleans), as floats.

    Every figure made from metrics (means, the total cost) and the SQL rollups that store
    them (``wtb_domain.adapters.sql.rollups``) read them through this one rule.
    """
    for name, value in metrics.items():
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and math.isfinite(value):
            yield name, float(value)
