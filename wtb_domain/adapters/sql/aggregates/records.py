"""What the database aggregates of a batch come back as: per-combination aggregates and the
inputs of the comparison matrix."""

from __future__ import annotations

from dataclasses import dataclass, field


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
