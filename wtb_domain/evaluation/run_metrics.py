"""Scores over the run itself rather than its output: latency and recorded cost."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from wtb_domain.errors import SpecError
from wtb_domain.evaluation.base import RunInfo

DEFAULT_COST_METRIC = "cost_usd"


def _check_range(good: float, bad: float, good_name: str, bad_name: str) -> None:
    for option, number in ((good_name, good), (bad_name, bad)):
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise SpecError(f"{option}: expected a number, got {number!r}")
        if not 0 <= number < math.inf:
            raise SpecError(f"{option}: must be a finite number >= 0, got {number!r}")
    if not bad > good:
        raise SpecError(f"{bad_name}: must be greater than {good_name} ({good}), got {bad}")


def _linear_decay(value: float, good: float, bad: float) -> float:
    if value <= good:
        return 1.0
    return max(0.0, (bad - value) / (bad - good))


@dataclass(frozen=True)
class Latency:
    """1.0 up to ``target_ms``, decaying linearly to 0.0 at ``max_ms``."""

    target_ms: float
    max_ms: float
    name: str = "latency"
    runs_user_code: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_range(self.target_ms, self.max_ms, "target_ms", "max_ms")

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score the run's duration."""
        if run.error is not None:
            return 0.0
        return _linear_decay(run.duration_ms, self.target_ms, self.max_ms)


@dataclass(frozen=True)
class Cost:
    """1.0 up to ``budget``, decaying linearly to 0.0 at ``max_cost``, over a recorded metric.

    A run that did not record ``metric`` counts as costing 0 (nodes that make no paid calls
    record nothing).
    """

    budget: float
    max_cost: float
    metric: str = DEFAULT_COST_METRIC
    name: str = "cost"
    runs_user_code: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_range(self.budget, self.max_cost, "budget", "max_cost")
        if not isinstance(self.metric, str) or not self.metric:
            raise SpecError(
                f"metric: expected a metric name such as 'cost_usd', got {self.metric!r}"
            )

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score the run's recorded cost."""
        if run.error is not None:
            return 0.0
        return _linear_decay(float(run.metrics.get(self.metric, 0.0)), self.budget, self.max_cost)
