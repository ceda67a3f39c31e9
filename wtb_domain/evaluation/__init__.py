"""Scoring one execution's output with configurable evaluators.

An evaluator turns ``(output, expected, run)`` into a score in ``[0, 1]``. Conventions shared by
every evaluator in this module:

* ``field`` is a dotted path into the output mapping (``"answer"``, ``"result.items.0.id"``;
  integer segments index into lists). Evaluators that compare against a reference look the
  expected value up at the same path in ``expected``.
* A missing output field (or a missing expected value, where one is needed) scores ``0.0``; it is
  not an exception.
* A failed run (``run.error`` set) scores ``0.0`` on every evaluator and never passes.
* For the text and number comparisons (exact match, contains, numeric, token F1), an expected
  *list* against a non-list output means "any of these answers"; the best score counts.
* Scores returned by user code (custom evaluators, judges) are clamped to ``[0, 1]``; NaN is 0.

Evaluators are usually built from plain dicts (a batch spec) with :func:`build_evaluators`, and
applied with :func:`score_execution`.
"""

from wtb_domain.evaluation.base import (
    DEFAULT_FIELD,
    CustomFn,
    Evaluator,
    JudgeFn,
    RunInfo,
    as_text,
    clamp_score,
    lookup,
)
from wtb_domain.evaluation.config import EVALUATOR_TYPES, build_evaluator, build_evaluators
from wtb_domain.evaluation.run_metrics import DEFAULT_COST_METRIC, Cost, Latency
from wtb_domain.evaluation.scoring import (
    DEFAULT_PASS_THRESHOLD,
    ScoreCard,
    WeightedEvaluator,
    default_qa_evaluators,
    score_execution,
)
from wtb_domain.evaluation.structured import JsonKeys, JsonSchema, check_schema, schema_errors
from wtb_domain.evaluation.text import (
    Contains,
    ExactMatch,
    NumericTolerance,
    Regex,
    TokenF1,
    fake_judge,
    normalize_answer,
    token_f1,
)
from wtb_domain.evaluation.user_code import Custom, LlmJudge, load_callable

__all__ = [
    "DEFAULT_COST_METRIC",
    "DEFAULT_FIELD",
    "DEFAULT_PASS_THRESHOLD",
    "EVALUATOR_TYPES",
    "Contains",
    "Cost",
    "Custom",
    "CustomFn",
    "Evaluator",
    "ExactMatch",
    "JsonKeys",
    "JsonSchema",
    "JudgeFn",
    "Latency",
    "LlmJudge",
    "NumericTolerance",
    "Regex",
    "RunInfo",
    "ScoreCard",
    "TokenF1",
    "WeightedEvaluator",
    "as_text",
    "build_evaluator",
    "build_evaluators",
    "check_schema",
    "clamp_score",
    "default_qa_evaluators",
    "fake_judge",
    "load_callable",
    "lookup",
    "normalize_answer",
    "schema_errors",
    "score_execution",
    "token_f1",
]
