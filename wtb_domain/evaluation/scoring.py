"""Weighted evaluator sets and the score card of one execution."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wtb_domain.errors import SpecError
from wtb_domain.evaluation.base import (
    Evaluator,
    RunInfo,
    ScoreTypeError,
    check_timeout,
    clamp_score,
)
from wtb_domain.evaluation.budget import (
    DEFAULT_TIMEOUT_S,
    EvaluatorBusy,
    EvaluatorTimeout,
    call_inline,
    call_isolated,
)
from wtb_domain.evaluation.text import ExactMatch, TokenF1
from wtb_domain.redaction import mask_text

DEFAULT_PASS_THRESHOLD = 0.5


@dataclass(frozen=True)
class WeightedEvaluator:
    """An evaluator with its weight in the overall score (weights are normalised) and its time
    budget: ``timeout_s``, or when ``None`` the evaluator's own ``timeout_s`` attribute, else
    :data:`~.budget.DEFAULT_TIMEOUT_S`."""

    evaluator: Evaluator
    weight: float = 1.0
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.timeout_s is not None:
            check_timeout(self.timeout_s, "timeout_s")
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise SpecError(f"weight: expected a number, got {weight!r}")
        if not 0 <= weight < math.inf:
            raise SpecError(f"weight: must be a finite number >= 0 (0 disables), got {weight}")

    @property
    def name(self) -> str:
        """The wrapped evaluator's name."""
        return self.evaluator.name

    @property
    def budget_s(self) -> float:
        """Seconds one call of this evaluator may take."""
        if self.timeout_s is not None:
            return self.timeout_s
        own = getattr(self.evaluator, "timeout_s", None)
        return float(own) if isinstance(own, int | float) else DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class ScoreCard:
    """The scores of one execution.

    Attributes:
        scores: Each evaluator's score, by evaluator name.
        metrics: The run's recorded numeric metrics as-is (``tokens``, ``cost_usd``, ...) plus
            every evaluator score under its name; an evaluator score wins a name clash.
        overall: Weighted mean of the evaluator scores (weights normalised to sum to 1).
        passed: ``overall >= pass_threshold``, the run did not fail and no evaluator failed.
        errors: Why an evaluator gave no score, by evaluator name (it timed out, raised or
            returned a non-number), e.g. ``"evaluator regex[2] timed out after 1.0 s"``; such
            an evaluator scores 0.0.
    """

    scores: dict[str, float]
    metrics: dict[str, float]
    overall: float
    passed: bool
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        """The evaluator errors as one line, or ``None``."""
        return "; ".join(self.errors.values()) or None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "scores": dict(self.scores),
            "metrics": dict(self.metrics),
            "overall": self.overall,
            "passed": self.passed,
            "errors": dict(self.errors),
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
        does not pass. An evaluator that overruns its budget, raises or returns a non-number
        scores 0.0 and is named in ``errors`` (the card does not pass); the others still run.

    Raises:
        SpecError: Empty set, duplicate names, no positive weight, or a bad threshold.
    """
    if not 0 <= pass_threshold <= 1:
        raise SpecError(f"pass_threshold: must be between 0 and 1, got {pass_threshold}")
    weighted = [e if isinstance(e, WeightedEvaluator) else WeightedEvaluator(e) for e in evaluators]
    _check_set(weighted)
    scores: dict[str, float] = {}
    errors: dict[str, str] = {}
    for index, e in enumerate(weighted):
        scores[e.name], problem = _score_one(e, output, expected, run)
        if problem is not None:
            errors[e.name] = f"evaluator {e.name}[{index}] {problem}"
    total = math.fsum(e.weight for e in weighted)
    overall = math.fsum(e.weight * scores[e.name] for e in weighted) / total
    return ScoreCard(
        scores=scores,
        metrics={**_numeric_metrics(run.metrics), **scores},
        overall=overall,
        passed=run.error is None and not errors and overall >= pass_threshold,
        errors=errors,
    )


def _score_one(
    weighted: WeightedEvaluator,
    output: Mapping[str, Any],
    expected: Mapping[str, Any] | None,
    run: RunInfo,
) -> tuple[float, str | None]:
    """One evaluator's score within its budget, or 0.0 and why (never raises for its sake)."""
    if run.error is not None:
        return 0.0, None
    evaluator, budget_s = weighted.evaluator, weighted.budget_s

    def call() -> Any:
        return evaluator.evaluate(output, expected, run)

    try:
        if getattr(evaluator, "runs_user_code", True):
            key = getattr(evaluator, "budget_key", evaluator)
            value = call_isolated(call, budget_s, key)
        else:
            value = call_inline(call, budget_s)
        return clamp_score(value, evaluator.name), None
    except (EvaluatorTimeout, EvaluatorBusy) as exc:
        return 0.0, str(exc)
    except ScoreTypeError as exc:
        return 0.0, f"returned {exc.returned}, expected a number in [0, 1]"
    except (Exception, SystemExit) as exc:  # a user evaluator's bug fails this result only
        return 0.0, mask_text(f"raised {type(exc).__name__}: {exc}")  # may quote a secret


def default_qa_evaluators() -> list[WeightedEvaluator]:
    """Exact match (weight 2) plus token F1 (weight 1) on the ``answer`` field."""
    return [WeightedEvaluator(ExactMatch(), 2.0), WeightedEvaluator(TokenF1(), 1.0)]
