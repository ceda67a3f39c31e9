"""What every evaluator shares: the run info, the protocol, field lookup and score clamping."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from wtb_domain.errors import SpecError
from wtb_domain.evaluation.budget import MAX_TIMEOUT_S

DEFAULT_FIELD = "answer"


@dataclass(frozen=True)
class RunInfo:
    """What the evaluators may know about the run besides its output.

    Attributes:
        duration_ms: Wall-clock duration of the execution.
        metrics: Numeric metrics the nodes recorded (``tokens``, ``cost_usd``, ...).
        error: The error message if the run failed, else ``None``.
    """

    duration_ms: float
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    error: str | None = None


CustomFn = Callable[[Mapping[str, Any], Mapping[str, Any] | None, RunInfo], float]
JudgeFn = Callable[..., float]


class Evaluator(Protocol):
    """Scores one execution; ``name`` is the key of the score in the score card."""

    @property
    def name(self) -> str:
        """The evaluator's name (unique within a set)."""

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Return a score in ``[0, 1]``."""


def lookup(data: Mapping[str, Any] | None, path: str) -> tuple[bool, Any]:
    """Follow a dotted path through nested mappings and lists.

    Args:
        data: The mapping to search (``None`` is treated as empty).
        path: Dotted path such as ``"answer"`` or ``"items.0.name"``.

    Returns:
        ``(True, value)`` when every segment exists, else ``(False, None)``.
    """
    current: Any = data
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list | tuple) and _is_index(part, len(current)):
            current = current[int(part)]
        else:
            return False, None
    return True, current


def _is_index(part: str, length: int) -> bool:
    return part.isdigit() and int(part) < length


def as_text(value: Any) -> str:
    """Render a value as text: strings as-is, ``None`` as ``""``, anything else as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


class ScoreTypeError(TypeError):
    """An evaluator returned something other than a number."""

    def __init__(self, who: str, returned: str) -> None:
        super().__init__(f"evaluator {who!r} returned {returned}, expected a float")
        self.returned = returned


def clamp_score(value: Any, who: str) -> float:
    """Convert an evaluator's return value to a score in ``[0, 1]`` (NaN becomes 0).

    Raises:
        ScoreTypeError: The value is not a number (a ``TypeError``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScoreTypeError(who, type(value).__name__)
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, float(value)))


def check_field(path: str) -> None:
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise SpecError(f"field: expected a dotted path such as 'answer', got {path!r}")


def output_value(output: Mapping[str, Any], run: RunInfo, path: str) -> tuple[bool, Any]:
    if run.error is not None:
        return False, None
    return lookup(output, path)


def against_reference(
    output: Mapping[str, Any],
    expected: Mapping[str, Any] | None,
    run: RunInfo,
    path: str,
    value: Any,
    score: Callable[[Any, Any], float],
) -> float:
    found, actual = output_value(output, run, path)
    if not found:
        return 0.0
    found, reference = (True, value) if value is not None else lookup(expected, path)
    if not found:
        return 0.0
    if isinstance(reference, list) and not isinstance(actual, list):
        return max((score(actual, ref) for ref in reference), default=0.0)
    return score(actual, reference)


def check_timeout(value: Any, option: str) -> None:
    """Check a time budget in seconds: a finite number > 0 and at most :data:`MAX_TIMEOUT_S`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{option}: expected a number of seconds, e.g. 5, got {value!r}")
    if not 0 < value <= MAX_TIMEOUT_S:
        raise SpecError(
            f"{option}: must be > 0 and at most {MAX_TIMEOUT_S:g} seconds, got {value!r}"
        )
