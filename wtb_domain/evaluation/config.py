"""Building evaluator sets from plain dicts (a batch spec's ``evaluators`` list)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wtb_domain.errors import SpecError
from wtb_domain.evaluation.base import DEFAULT_FIELD, Evaluator, check_timeout
from wtb_domain.evaluation.budget import DEFAULT_REGEX_TIMEOUT_S
from wtb_domain.evaluation.run_metrics import DEFAULT_COST_METRIC, Cost, Latency
from wtb_domain.evaluation.scoring import WeightedEvaluator
from wtb_domain.evaluation.structured import JsonKeys, JsonSchema
from wtb_domain.evaluation.text import Contains, ExactMatch, NumericTolerance, Regex, TokenF1
from wtb_domain.evaluation.user_code import Custom, LlmJudge

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
        self.used = {"type", "weight", "timeout_s"}
        self.timeout_s: float | None = None

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
        timeout_s=o.timeout_s or DEFAULT_REGEX_TIMEOUT_S,
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
            type), ``weight`` (default 1, must be >= 0) and ``timeout_s`` (the time budget of
            one call, default 5 s, 1 s for ``regex``; see :mod:`.budget`), plus the type's
            options.
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
    timeout = options.get("timeout_s", None, (int, float), "a number of seconds, e.g. 5")
    if timeout is not None:
        try:
            check_timeout(timeout, "timeout_s")
        except SpecError as exc:
            raise SpecError(f"{where}.{exc}") from None
        options.timeout_s = float(timeout)
    return WeightedEvaluator(_BUILDERS[kind](options), weight, options.timeout_s)


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
