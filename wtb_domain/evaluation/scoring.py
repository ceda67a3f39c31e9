"""Weighted evaluator sets and the score card of one execution."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wtb_domain.errors import SpecError
from wtb_domain.evaluation.base import Evaluator, RunInfo, clamp_score
from wtb_domain.evaluation.text import ExactMatch, TokenF1

DEFAULT_PASS_THRESHOLD = 0.5


@dataclass(frozen=True)
class WeightedEvaluator:
    """An evaluator with its weight in the overall score (weights are normalised)."""

    evaluator: Evaluator
    weight: float = 1.0

    def __post_init__(self) -> None:
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise SpecError(f"weight: expected a number, got {weight!r}")
        if not 0 <= weight < math.inf:
            raise SpecError(f"weight: must be a finite number >= 0 (0 disables), got {weight}")

    @property
    def name(self) -> str:
        """The wrapped evaluator's name."""
        return self.evaluator.name


@dataclass(frozen=True)
class ScoreCard:
    """The scores of one execution.

    Attributes:
        scores: Each evaluator's score, by evaluator name.
        metrics: The run's recorded numeric metrics as-is (``tokens``, ``cost_usd``, ...) plus
            every evaluator score under its name; an evaluator score wins a name clash.
        overall: Weighted mean of the evaluator scores (weights normalised to sum to 1).
        passed: ``overall >= pass_threshold`` and the run did not fail.
    """

    scores: dict[str, float]
    metrics: dict[str, float]
    overall: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "scores": dict(self.scores),
            "metrics": dict(self.metrics),
            "overall": self.overall,
            "passed": self.passed,
        }


def _numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        name: float(value)
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }


def _check_set(evaluators: Sequence[WeightedEvaluator]) -> None:
    names = [e.name for e in evaluators]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SpecError(f"evaluators: duplicate name {duplicates[0]!r}; give each a distinct name")
    if sum(e.weight for e in evaluators) <= 0:
        raise SpecError(
            "evaluators: no evaluator has a positive weight; give at least one a weight > 0"
        )


def score_execution(
    evaluators: Sequence[WeightedEvaluator | Evaluator],
    output: Mapping[str, Any],
    expected: Mapping[str, Any] | None,
    run: RunInfo,
    pass_threshold: float = DEFAULT_PASS_THRESHOLD,
) -> ScoreCard:
    """Score one execution with a set of evaluators.

    Args:
        evaluators: Weighted evaluators (plain evaluators get weight 1).
        output: The execution's final state.
        expected: The test case's expected values, if any.
        run: Duration, recorded metrics and error of the run.
        pass_threshold: Minimum overall score to pass, in ``[0, 1]``.

    Returns:
        The score card. A failed run scores 0.0 everywhere (evaluators are not called) and
        does not pass.

    Raises:
        SpecError: Empty set, duplicate names, no positive weight, or a bad threshold.
    """
    if not 0 <= pass_threshold <= 1:
        raise SpecError(f"pass_threshold: must be between 0 and 1, got {pass_threshold}")
    weighted = [e if isinstance(e, WeightedEvaluator) else WeightedEvaluator(e) for e in evaluators]
    _check_set(weighted)
    scores = {e.name: _score_one(e.evaluator, output, expected, run) for e in weighted}
    total = math.fsum(e.weight for e in weighted)
    overall = math.fsum(e.weight * scores[e.name] for e in weighted) / total
    return ScoreCard(
        scores=scores,
        metrics={**_numeric_metrics(run.metrics), **scores},
        overall=overall,
        passed=run.error is None and overall >= pass_threshold,
    )


def _score_one(
    evaluator: Evaluator,
    output: Mapping[str, Any],
    expected: Mapping[str, Any] | None,
    run: RunInfo,
) -> float:
    if run.error is not None:
        return 0.0
    return clamp_score(evaluator.evaluate(output, expected, run), evaluator.name)


def default_qa_evaluators() -> list[WeightedEvaluator]:
    """Exact match (weight 2) plus token F1 (weight 1) on the ``answer`` field."""
    return [WeightedEvaluator(ExactMatch(), 2.0), WeightedEvaluator(TokenF1(), 1.0)]
