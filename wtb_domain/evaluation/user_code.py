"""Evaluators that call user code: custom functions and LLM judges, and checking their refs."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wtb_domain.errors import SpecError
from wtb_domain.evaluation.base import (
    DEFAULT_FIELD,
    CustomFn,
    JudgeFn,
    RunInfo,
    as_text,
    check_field,
    clamp_score,
    lookup,
    output_value,
)


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
        check_field(self.field)
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
        found, actual = output_value(output, run, self.field)
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
