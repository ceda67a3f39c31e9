"""Text and number comparisons: exact match, contains, regex, numeric tolerance, token F1."""

from __future__ import annotations

import dataclasses
import math
import re
import string
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import regex

from wtb_domain.errors import SpecError
from wtb_domain.evaluation.base import (
    DEFAULT_FIELD,
    RunInfo,
    against_reference,
    as_text,
    check_field,
    check_timeout,
    output_value,
)
from wtb_domain.evaluation.budget import DEFAULT_REGEX_TIMEOUT_S

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD answer normalisation: lowercase, drop punctuation and articles, squash whitespace."""
    lowered = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", lowered).split())


def token_f1(prediction: str, truth: str) -> float:
    """SQuAD-style token F1 between a prediction and a reference answer.

    Args:
        prediction: The produced answer.
        truth: The reference answer.

    Returns:
        The harmonic mean of token precision and recall after :func:`normalize_answer`;
        1.0 if both normalise to nothing, 0.0 if only one does.
    """
    pred = normalize_answer(prediction).split()
    gold = normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def fake_judge(question: str, output_text: str, expected_text: str, rubric: str = "") -> float:
    """A deterministic stand-in for an LLM judge, for tests and demos.

    Args:
        question: The question asked (used as reference when there is no expected text).
        output_text: The answer to judge.
        expected_text: The reference answer, or ``""``.
        rubric: Accepted and ignored.

    Returns:
        Token F1 of the output against the expected text (or the question if none).
    """
    del rubric
    return token_f1(output_text, expected_text or question)


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class ExactMatch:
    """1.0 when the output field equals the expected value (or ``value`` if set), else 0.0.

    With ``normalize`` (default), text is compared case- and whitespace-insensitively.
    Non-text values on both sides are compared with ``==``.
    """

    field: str = DEFAULT_FIELD
    normalize: bool = True
    value: Any = None
    name: str = "exact_match"
    runs_user_code: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_field(self.field)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score 1.0 on a match, else 0.0."""
        return against_reference(output, expected, run, self.field, self.value, self._match)

    def _match(self, actual: Any, reference: Any) -> float:
        if not isinstance(actual, str) and not isinstance(reference, str):
            return float(actual == reference)
        left, right = as_text(actual), as_text(reference)
        if self.normalize:
            left, right = _squash(left), _squash(right)
        return float(left == right)


@dataclass(frozen=True)
class Contains:
    """1.0 when the output text contains the expected text (or ``value`` if set)."""

    field: str = DEFAULT_FIELD
    value: Any = None
    case_sensitive: bool = False
    name: str = "contains"
    runs_user_code: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_field(self.field)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score 1.0 when the reference text occurs in the output text, else 0.0."""
        return against_reference(output, expected, run, self.field, self.value, self._contains)

    def _contains(self, actual: Any, reference: Any) -> float:
        haystack, needle = as_text(actual), as_text(reference)
        if not self.case_sensitive:
            haystack, needle = haystack.lower(), needle.lower()
        return float(needle in haystack)


@dataclass(frozen=True)
class Regex:
    """1.0 when ``pattern`` matches the output text (``search``, or whole text if
    ``full_match``); does not use ``expected``.

    Matching uses the ``regex`` package (``re``-compatible syntax) with ``timeout=timeout_s``:
    a catastrophically backtracking pattern stops after the budget and raises
    ``TimeoutError``, which the score card records as this evaluator timing out.
    """

    pattern: str
    field: str = DEFAULT_FIELD
    ignore_case: bool = False
    full_match: bool = False
    name: str = "regex"
    timeout_s: float = DEFAULT_REGEX_TIMEOUT_S
    runs_user_code: ClassVar[bool] = False
    _compiled: regex.Pattern[str] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_field(self.field)
        check_timeout(self.timeout_s, "timeout_s")
        flags = regex.IGNORECASE if self.ignore_case else 0
        try:
            compiled = regex.compile(self.pattern, flags)
        except (regex.error, TypeError, ValueError) as exc:
            raise SpecError(
                f"pattern: invalid regex {self.pattern!r}: {exc}; fix the pattern "
                "(escape literal characters such as ( [ . with a backslash)"
            ) from exc
        object.__setattr__(self, "_compiled", compiled)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score 1.0 when the pattern matches, else 0.0.

        Raises:
            TimeoutError: Matching took longer than ``timeout_s``.
        """
        found, actual = output_value(output, run, self.field)
        if not found:
            return 0.0
        match = self._compiled.fullmatch if self.full_match else self._compiled.search
        return float(match(as_text(actual), timeout=self.timeout_s) is not None)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", ""))
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class NumericTolerance:
    """1.0 when the output number is within ``abs_tol`` or ``rel_tol`` of the expected one.

    Numbers may be given as text (``"1,234.5"``); unparseable values score 0.0.
    """

    field: str = DEFAULT_FIELD
    abs_tol: float = 0.0
    rel_tol: float = 0.0
    value: Any = None
    name: str = "numeric"
    runs_user_code: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_field(self.field)
        for option in ("abs_tol", "rel_tol"):
            tol = getattr(self, option)
            if not isinstance(tol, int | float) or not tol >= 0 or math.isinf(tol):
                raise SpecError(f"{option}: must be a finite number >= 0, got {tol!r}")

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score 1.0 when the numbers are close, else 0.0."""
        return against_reference(output, expected, run, self.field, self.value, self._close)

    def _close(self, actual: Any, reference: Any) -> float:
        left, right = _as_number(actual), _as_number(reference)
        if left is None or right is None:
            return 0.0
        return float(math.isclose(left, right, rel_tol=self.rel_tol, abs_tol=self.abs_tol))


@dataclass(frozen=True)
class TokenF1:
    """SQuAD-style token F1 between the output text and the expected text (see :func:`token_f1`)."""

    field: str = DEFAULT_FIELD
    name: str = "token_f1"
    runs_user_code: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_field(self.field)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Return the token F1 (best over alternatives when expected is a list)."""
        return against_reference(
            output, expected, run, self.field, None, lambda a, r: token_f1(as_text(a), as_text(r))
        )
