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

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from wtb_domain.errors import SpecError

DEFAULT_FIELD = "answer"
DEFAULT_PASS_THRESHOLD = 0.5
DEFAULT_COST_METRIC = "cost_usd"

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)
_JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
_SCHEMA_KEYWORDS = frozenset(
    {"type", "required", "properties", "items", "enum", "additionalProperties"}
    | {"title", "description", "$schema", "$id", "default", "examples"}
)


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


def clamp_score(value: Any, who: str) -> float:
    """Convert an evaluator's return value to a score in ``[0, 1]`` (NaN becomes 0).

    Raises:
        TypeError: The value is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"evaluator {who!r} returned {type(value).__name__}, expected a float")
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, float(value)))


def load_callable(ref: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` with importlib (never eval).

    Raises:
        SpecError: The reference is malformed, the module or attribute is missing, or the
            attribute is not callable. The message has no field prefix; callers add one.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise SpecError(f"{ref!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SpecError(
            f"{ref!r}: module {exc.name!r} not found; check the spelling and that it is "
            "importable (installed or on PYTHONPATH)"
        ) from exc
    except ImportError as exc:
        raise SpecError(f"{ref!r}: importing module {module_name!r} failed: {exc}") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"{ref!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(f"{ref!r} points to a {type(obj).__name__}, not a function")
    return obj


def _resolve(target: Callable[..., Any] | str, option: str) -> Callable[..., Any]:
    if isinstance(target, str):
        try:
            return load_callable(target)
        except SpecError as exc:
            raise SpecError(f"{option}: {exc}") from exc.__cause__
    if not callable(target):
        raise SpecError(f"{option}: expected a callable or an import path, got {target!r}")
    return target


def _check_field(path: str) -> None:
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise SpecError(f"field: expected a dotted path such as 'answer', got {path!r}")


def _output_value(output: Mapping[str, Any], run: RunInfo, path: str) -> tuple[bool, Any]:
    if run.error is not None:
        return False, None
    return lookup(output, path)


def _against_reference(
    output: Mapping[str, Any],
    expected: Mapping[str, Any] | None,
    run: RunInfo,
    path: str,
    value: Any,
    score: Callable[[Any, Any], float],
) -> float:
    found, actual = _output_value(output, run, path)
    if not found:
        return 0.0
    found, reference = (True, value) if value is not None else lookup(expected, path)
    if not found:
        return 0.0
    if isinstance(reference, list) and not isinstance(actual, list):
        return max((score(actual, ref) for ref in reference), default=0.0)
    return score(actual, reference)


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

    def __post_init__(self) -> None:
        _check_field(self.field)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score 1.0 on a match, else 0.0."""
        return _against_reference(output, expected, run, self.field, self.value, self._match)

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

    def __post_init__(self) -> None:
        _check_field(self.field)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score 1.0 when the reference text occurs in the output text, else 0.0."""
        return _against_reference(output, expected, run, self.field, self.value, self._contains)

    def _contains(self, actual: Any, reference: Any) -> float:
        haystack, needle = as_text(actual), as_text(reference)
        if not self.case_sensitive:
            haystack, needle = haystack.lower(), needle.lower()
        return float(needle in haystack)


@dataclass(frozen=True)
class Regex:
    """1.0 when ``pattern`` matches the output text (``re.search``, or whole text if
    ``full_match``); does not use ``expected``."""

    pattern: str
    field: str = DEFAULT_FIELD
    ignore_case: bool = False
    full_match: bool = False
    name: str = "regex"
    _compiled: re.Pattern[str] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_field(self.field)
        flags = re.IGNORECASE if self.ignore_case else 0
        try:
            compiled = re.compile(self.pattern, flags)
        except (re.error, TypeError) as exc:
            raise SpecError(
                f"pattern: invalid regex {self.pattern!r}: {exc}; fix the pattern "
                "(escape literal characters such as ( [ . with a backslash)"
            ) from exc
        object.__setattr__(self, "_compiled", compiled)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score 1.0 when the pattern matches, else 0.0."""
        found, actual = _output_value(output, run, self.field)
        if not found:
            return 0.0
        match = self._compiled.fullmatch if self.full_match else self._compiled.search
        return float(match(as_text(actual)) is not None)


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

    def __post_init__(self) -> None:
        _check_field(self.field)
        for option in ("abs_tol", "rel_tol"):
            tol = getattr(self, option)
            if not isinstance(tol, int | float) or not tol >= 0 or math.isinf(tol):
                raise SpecError(f"{option}: must be a finite number >= 0, got {tol!r}")

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score 1.0 when the numbers are close, else 0.0."""
        return _against_reference(output, expected, run, self.field, self.value, self._close)

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

    def __post_init__(self) -> None:
        _check_field(self.field)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Return the token F1 (best over alternatives when expected is a list)."""
        return _against_reference(
            output, expected, run, self.field, None, lambda a, r: token_f1(as_text(a), as_text(r))
        )


def _as_json(value: Any, parse: bool) -> tuple[bool, Any]:
    if not parse or not isinstance(value, str):
        return True, value
    try:
        return True, json.loads(value)
    except ValueError:
        return False, None


@dataclass(frozen=True)
class JsonKeys:
    """Fraction of ``keys`` (dotted paths) present in the output field's object.

    With ``parse_json`` (default), a string field is parsed as JSON first; invalid JSON or a
    non-object scores 0.0.
    """

    keys: tuple[str, ...]
    field: str = DEFAULT_FIELD
    parse_json: bool = True
    name: str = "json_keys"

    def __post_init__(self) -> None:
        _check_field(self.field)
        keys = tuple(self.keys) if isinstance(self.keys, list | tuple) else ()
        if not keys or any(not isinstance(key, str) or not key for key in keys):
            raise SpecError(f"keys: expected a non-empty list of key names, got {self.keys!r}")
        object.__setattr__(self, "keys", keys)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Return the fraction of required keys present."""
        found, actual = _output_value(output, run, self.field)
        ok, obj = _as_json(actual, self.parse_json)
        if not found or not ok or not isinstance(obj, Mapping):
            return 0.0
        return sum(lookup(obj, key)[0] for key in self.keys) / len(self.keys)


def check_schema(schema: Any, path: str = "schema") -> None:
    """Check that ``schema`` uses only the supported JSON Schema subset.

    Supported: ``type`` (a name or list of names), ``required``, ``properties``, ``items``,
    ``enum``, ``additionalProperties`` (boolean), plus annotations such as ``description``.

    Raises:
        SpecError: Naming the offending path inside the schema.
    """
    if not isinstance(schema, Mapping):
        raise SpecError(f"{path}: expected a mapping (a JSON schema object), got {schema!r}")
    unknown = sorted(set(schema) - _SCHEMA_KEYWORDS)
    if unknown:
        raise SpecError(
            f"{path}.{unknown[0]}: unsupported schema keyword; supported: "
            "type, required, properties, items, enum, additionalProperties"
        )
    _check_schema_type(schema.get("type"), f"{path}.type")
    _check_schema_lists(schema, path)
    for key, sub in _schema_mapping(schema, "properties", path).items():
        check_schema(sub, f"{path}.properties.{key}")
    if "items" in schema:
        check_schema(schema["items"], f"{path}.items")


def _check_schema_type(types: Any, path: str) -> None:
    if types is None:
        return
    names = [types] if isinstance(types, str) else types
    if not isinstance(names, list) or not names or any(t not in _JSON_TYPES for t in names):
        raise SpecError(f"{path}: unknown type {types!r}; use one of {', '.join(_JSON_TYPES)}")


def _check_schema_lists(schema: Mapping[str, Any], path: str) -> None:
    required = schema.get("required", [])
    if not isinstance(required, list) or any(not isinstance(key, str) for key in required):
        raise SpecError(f"{path}.required: expected a list of property names, got {required!r}")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise SpecError(f"{path}.enum: expected a list of allowed values")
    if not isinstance(schema.get("additionalProperties", True), bool):
        raise SpecError(f"{path}.additionalProperties: only true/false is supported")


def _schema_mapping(schema: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = schema.get(key, {})
    if not isinstance(value, Mapping):
        raise SpecError(f"{path}.{key}: expected a mapping of property name to schema")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, Mapping) else "array"


def _type_matches(value: Any, types: Any) -> bool:
    actual = _json_type(value)
    names = [types] if isinstance(types, str) else list(types)
    integral = actual == "number" and float(value).is_integer()
    return (
        actual in names
        or (actual == "integer" and "number" in names)
        or (integral and "integer" in names)
    )


def schema_errors(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Validate ``value`` against a schema accepted by :func:`check_schema`.

    Args:
        value: The JSON-like value to check.
        schema: The schema.
        path: Where ``value`` sits, used in the messages.

    Returns:
        Human-readable problems; empty when the value conforms.
    """
    if "type" in schema and not _type_matches(value, schema["type"]):
        return [f"{path}: expected {schema['type']}, got {_json_type(value)}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if isinstance(value, Mapping):
        errors.extend(_object_errors(value, schema, path))
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors.extend(schema_errors(item, schema["items"], f"{path}[{index}]"))
    return errors


def _object_errors(value: Mapping[str, Any], schema: Mapping[str, Any], path: str) -> list[str]:
    properties = schema.get("properties", {})
    errors = [f"{path}: missing {key!r}" for key in schema.get("required", []) if key not in value]
    for key, sub in properties.items():
        if key in value:
            errors.extend(schema_errors(value[key], sub, f"{path}.{key}"))
    if schema.get("additionalProperties", True) is False:
        errors.extend(f"{path}: unexpected {key!r}" for key in value if key not in properties)
    return errors


@dataclass(frozen=True)
class JsonSchema:
    """1.0 when the output field conforms to ``schema`` (a small JSON Schema subset), else 0.0.

    See :func:`check_schema` for the supported keywords. With ``parse_json`` (default), a string
    field is parsed as JSON first; set it to false to validate a plain string.
    """

    schema: Mapping[str, Any]
    field: str = DEFAULT_FIELD
    parse_json: bool = True
    name: str = "json_schema"

    def __post_init__(self) -> None:
        _check_field(self.field)
        check_schema(self.schema)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Score 1.0 when the value conforms, else 0.0."""
        found, actual = _output_value(output, run, self.field)
        ok, value = _as_json(actual, self.parse_json)
        if not found or not ok:
            return 0.0
        return float(not schema_errors(value, self.schema))


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


@dataclass(frozen=True)
class Custom:
    """A user function ``fn(output, expected, run) -> float``, given directly or as an import
    path ``"package.module:function"``. Its result is clamped to ``[0, 1]``; exceptions it
    raises propagate."""

    function: CustomFn | str
    name: str = "custom"
    _fn: Callable[..., Any] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fn", _resolve(self.function, "function"))

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Call the function (not for failed runs, which score 0.0)."""
        if run.error is not None:
            return 0.0
        return clamp_score(self._fn(output, expected, run), self.name)


def _accepts_rubric(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return any(
        (p.name == "rubric" and p.kind in keyword) or p.kind is inspect.Parameter.VAR_KEYWORD
        for p in params
    )


@dataclass(frozen=True)
class LlmJudge:
    """Asks a judge ``judge(question, output_text, expected_text) -> float in [0, 1]``.

    ``judge`` is a callable or an import path. ``rubric`` is passed as the keyword argument
    ``rubric=`` (so a judge that takes one must name it so). The question is read from
    ``question_field`` in the output, else in ``expected``, else ``""``; the expected text is
    ``expected[field]`` or ``""`` (reference-free judging is allowed).
    """

    judge: JudgeFn | str
    rubric: str = ""
    field: str = DEFAULT_FIELD
    question_field: str = "question"
    name: str = "llm_judge"
    _fn: Callable[..., Any] = dataclasses.field(init=False, repr=False, compare=False)
    _takes_rubric: bool = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_field(self.field)
        fn = _resolve(self.judge, "judge")
        takes_rubric = _accepts_rubric(fn)
        if self.rubric and not takes_rubric:
            raise SpecError(
                f"rubric: judge {self.judge!r} takes no 'rubric' argument; add a "
                "`rubric: str = ''` parameter to it or drop the rubric"
            )
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_takes_rubric", takes_rubric)

    def evaluate(
        self, output: Mapping[str, Any], expected: Mapping[str, Any] | None, run: RunInfo
    ) -> float:
        """Return the judge's score (0.0 for a failed run or a missing output field)."""
        found, actual = _output_value(output, run, self.field)
        if not found:
            return 0.0
        question = self._question(output, expected)
        reference = as_text(lookup(expected, self.field)[1])
        extra = {"rubric": self.rubric} if self._takes_rubric else {}
        return clamp_score(self._fn(question, as_text(actual), reference, **extra), self.name)

    def _question(self, output: Mapping[str, Any], expected: Mapping[str, Any] | None) -> str:
        for source in (output, expected):
            found, value = lookup(source, self.question_field)
            if found:
                return as_text(value)
        return ""


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


_REQUIRED: Any = object()

_EXAMPLES = {
    "pattern": "'^\\d+$'",
    "keys": "['title', 'summary']",
    "schema": "{'type': 'object', 'required': ['answer']}",
    "target_ms": "1000",
    "max_ms": "5000",
    "budget": "0.01",
    "max_cost": "0.05",
    "function": "'my_pkg.scorers:score'",
    "judge": "'wtb_domain.evaluation:fake_judge'",
}


class _Options:
    """Typed access to one evaluator config, with errors naming ``evaluators[i].<key>``."""

    def __init__(self, config: Mapping[str, Any], where: str, kind: str) -> None:
        self.config = config
        self.where = where
        self.kind = kind
        self.used = {"type", "weight"}

    def get(self, key: str, default: Any, kinds: tuple[type, ...], what: str) -> Any:
        self.used.add(key)
        if key not in self.config:
            if default is _REQUIRED:
                example = _EXAMPLES.get(key, "...")
                raise SpecError(
                    f"{self.where}.{key}: required for type {self.kind!r}; add it, "
                    f"e.g. {key}: {example}"
                )
            return default
        value = self.config[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise SpecError(f"{self.where}.{key}: expected {what}, got {value!r}")
        return value

    def text(self, key: str, default: Any = _REQUIRED) -> str:
        value: str = self.get(key, default, (str,), "a string")
        return value

    def number(self, key: str, default: Any = _REQUIRED) -> float:
        value: float = self.get(key, default, (int, float), "a number")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value: bool = self.get(key, default, (bool,), "true or false")
        return value

    def raw(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.config.get(key, default)

    def name(self) -> str:
        return self.text("name", self.kind)

    def build(self, factory: Callable[..., Evaluator], **kwargs: Any) -> Evaluator:
        unknown = sorted(set(self.config) - self.used)
        if unknown:
            raise SpecError(
                f"{self.where}.{unknown[0]}: unknown option for type {self.kind!r}; "
                f"allowed: {', '.join(sorted(self.used))}"
            )
        try:
            return factory(**kwargs)
        except SpecError as exc:
            raise SpecError(f"{self.where}.{exc}") from exc.__cause__


def _build_exact_match(o: _Options) -> Evaluator:
    return o.build(
        ExactMatch,
        field=o.text("field", DEFAULT_FIELD),
        normalize=o.flag("normalize", True),
        value=o.raw("value"),
        name=o.name(),
    )


def _build_contains(o: _Options) -> Evaluator:
    return o.build(
        Contains,
        field=o.text("field", DEFAULT_FIELD),
        value=o.raw("value"),
        case_sensitive=o.flag("case_sensitive", False),
        name=o.name(),
    )


def _build_regex(o: _Options) -> Evaluator:
    return o.build(
        Regex,
        pattern=o.text("pattern"),
        field=o.text("field", DEFAULT_FIELD),
        ignore_case=o.flag("ignore_case", False),
        full_match=o.flag("full_match", False),
        name=o.name(),
    )


def _build_numeric(o: _Options) -> Evaluator:
    return o.build(
        NumericTolerance,
        field=o.text("field", DEFAULT_FIELD),
        abs_tol=o.number("abs_tol", 0.0),
        rel_tol=o.number("rel_tol", 0.0),
        value=o.raw("value"),
        name=o.name(),
    )


def _build_token_f1(o: _Options) -> Evaluator:
    return o.build(TokenF1, field=o.text("field", DEFAULT_FIELD), name=o.name())


def _build_json_keys(o: _Options) -> Evaluator:
    keys = o.get("keys", _REQUIRED, (list, tuple), "a list of key names")
    return o.build(
        JsonKeys,
        keys=tuple(keys),
        field=o.text("field", DEFAULT_FIELD),
        parse_json=o.flag("parse_json", True),
        name=o.name(),
    )


def _build_json_schema(o: _Options) -> Evaluator:
    return o.build(
        JsonSchema,
        schema=o.get("schema", _REQUIRED, (Mapping,), "a mapping (JSON schema)"),
        field=o.text("field", DEFAULT_FIELD),
        parse_json=o.flag("parse_json", True),
        name=o.name(),
    )


def _build_latency(o: _Options) -> Evaluator:
    return o.build(
        Latency, target_ms=o.number("target_ms"), max_ms=o.number("max_ms"), name=o.name()
    )


def _build_cost(o: _Options) -> Evaluator:
    return o.build(
        Cost,
        budget=o.number("budget"),
        max_cost=o.number("max_cost"),
        metric=o.text("metric", DEFAULT_COST_METRIC),
        name=o.name(),
    )


def _build_custom(o: _Options) -> Evaluator:
    return o.build(Custom, function=o.text("function"), name=o.name())


def _build_llm_judge(o: _Options) -> Evaluator:
    return o.build(
        LlmJudge,
        judge=o.text("judge"),
        rubric=o.text("rubric", ""),
        field=o.text("field", DEFAULT_FIELD),
        question_field=o.text("question_field", "question"),
        name=o.name(),
    )


_BUILDERS: dict[str, Callable[[_Options], Evaluator]] = {
    "exact_match": _build_exact_match,
    "contains": _build_contains,
    "regex": _build_regex,
    "numeric": _build_numeric,
    "token_f1": _build_token_f1,
    "json_keys": _build_json_keys,
    "json_schema": _build_json_schema,
    "latency": _build_latency,
    "cost": _build_cost,
    "custom": _build_custom,
    "llm_judge": _build_llm_judge,
}

EVALUATOR_TYPES = tuple(_BUILDERS)


def build_evaluator(config: Mapping[str, Any], where: str = "evaluator") -> WeightedEvaluator:
    """Build one weighted evaluator from a plain dict such as ``{"type": "regex", ...}``.

    Args:
        config: ``type`` (one of :data:`EVALUATOR_TYPES`), optional ``name`` (defaults to the
            type) and ``weight`` (default 1, must be >= 0), plus the type's options.
        where: The config's path, used as the prefix of error messages.

    Raises:
        SpecError: Unknown type or option, missing required option, wrong value type, or an
            invalid value (bad regex, unimportable function, ...), naming ``where.<option>``.
    """
    if not isinstance(config, Mapping):
        raise SpecError(f"{where}: expected a mapping like {{type: exact_match}}, got {config!r}")
    kind = config.get("type")
    if not isinstance(kind, str) or kind not in _BUILDERS:
        got = "missing" if kind is None else f"unknown type {kind!r}"
        raise SpecError(f"{where}.type: {got}; use one of {', '.join(EVALUATOR_TYPES)}")
    options = _Options(config, where, kind)
    weight = options.number("weight", 1.0)
    if not 0 <= weight < math.inf:
        raise SpecError(f"{where}.weight: must be a finite number >= 0 (0 disables), got {weight}")
    return WeightedEvaluator(_BUILDERS[kind](options), weight)


def build_evaluators(configs: Sequence[Mapping[str, Any]]) -> list[WeightedEvaluator]:
    """Build an evaluator set from a batch spec's ``evaluators`` list.

    Args:
        configs: One dict per evaluator, e.g.
            ``{"type": "exact_match", "field": "answer", "weight": 2.0, "name": "em"}``.

    Returns:
        The weighted evaluators, in order.

    Raises:
        SpecError: Naming ``evaluators[i].<option>`` (see :func:`build_evaluator`), a duplicate
            name, an empty list, or all weights zero.
    """
    if isinstance(configs, str | Mapping) or not isinstance(configs, Sequence) or not configs:
        raise SpecError(
            "evaluators: expected a non-empty list, e.g. [{type: exact_match, weight: 2}, "
            "{type: token_f1}]"
        )
    built: list[WeightedEvaluator] = []
    for index, config in enumerate(configs):
        evaluator = build_evaluator(config, f"evaluators[{index}]")
        previous = [e.name for e in built]
        if evaluator.name in previous:
            raise SpecError(
                f"evaluators[{index}].name: {evaluator.name!r} is already used by "
                f"evaluators[{previous.index(evaluator.name)}]; set a distinct name"
            )
        built.append(evaluator)
    if sum(e.weight for e in built) <= 0:
        raise SpecError("evaluators: all weights are 0; give at least one evaluator a weight > 0")
    return built
