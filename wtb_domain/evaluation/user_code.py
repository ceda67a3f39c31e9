"""Evaluators that call user code: custom functions and LLM judges, and checking their refs."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

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

# Standard library and C builtins: never a scorer, and some (os:system, subprocess:run,
# shutil:rmtree, sys:exit, builtins:eval) are dangerous to call with user data.
_REFUSED_MODULES = frozenset(sys.stdlib_module_names) | {"builtins", "__builtin__"}
_EXAMPLE = "e.g. 'my_pkg.scorers:score'"


def is_refused_module(module_name: str | None) -> bool:
    """True for a standard-library or builtin module (or no module at all)."""
    if not module_name:
        return True
    return module_name.partition(".")[0] in _REFUSED_MODULES


def load_callable(ref: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` with importlib (never eval).

    Standard-library and builtin modules are refused before anything is imported.

    Raises:
        SpecError: The reference is malformed, names a standard-library module, the module or
            attribute is missing, or the attribute is not callable. The message has no field
            prefix; callers add one.
    """
    if not isinstance(ref, str):
        raise SpecError(f"expected an import path such as 'my_pkg.scorers:score', got {ref!r}")
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise SpecError(f"{ref!r} must look like 'package.module:function'")
    if is_refused_module(module_name):
        raise SpecError(
            f"{ref!r}: {module_name!r} is a standard-library or builtin module, not allowed as "
            f"an evaluator; point to a function in your own module, {_EXAMPLE}"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SpecError(
            f"{ref!r}: module {exc.name!r} not found; check the spelling and that it is "
            "importable (installed or on PYTHONPATH)"
        ) from exc
    except Exception as exc:  # the user's module failed while importing: say so, one line
        raise SpecError(
            f"{ref!r}: importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"{ref!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(f"{ref!r} points to a {type(obj).__name__}, not a function")
    return obj  # type: ignore[no-any-return]


def _origin(obj: Any) -> str | None:
    """The module that defines ``obj``'s code (``None`` for C builtins)."""
    if inspect.isfunction(obj) or inspect.isclass(obj):
        return str(obj.__module__)
    if inspect.ismethod(obj):  # a bound method of a user object: its function's module
        return _origin(obj.__func__)
    if callable(obj) and not inspect.isbuiltin(obj) and not inspect.isroutine(obj):
        return str(type(obj).__module__)
    return None


def user_callable(obj: Any, shown: str) -> Callable[..., Any]:
    """Check that ``obj`` is user code and return what to call.

    Accepted: a Python function, a bound method, a class (instantiated once, with no
    arguments; its instances are called), or an instance of a class with ``__call__``, defined
    in a module outside the standard library.
    C builtins (``os.system``, ``print``), ``functools.partial`` and other standard-library
    callables are refused.

    Raises:
        SpecError: Without a field prefix; callers add one.
    """
    origin = _origin(obj)
    if is_refused_module(origin):
        builtin_of = getattr(obj, "__module__", None) if origin is None else None
        where = f"from {origin!r}" if origin else f"a builtin (of {builtin_of or 'C code'!r})"
        raise SpecError(
            f"{shown} is {where}, not a function of your own; point to a function defined "
            f"in your module, {_EXAMPLE}"
        )
    if not inspect.isclass(obj):
        return obj  # type: ignore[no-any-return]
    try:
        inspect.signature(obj).bind()
    except (TypeError, ValueError):
        raise SpecError(
            f"{shown} is a class whose constructor needs arguments; WTB creates it with none "
            "(give every __init__ parameter a default) or point to a function"
        ) from None
    if not any("__call__" in vars(klass) for klass in obj.__mro__[:-1]):
        raise SpecError(f"{shown} is a class without __call__; add one or point to a function")
    try:
        instance = obj()
    except Exception as exc:
        raise SpecError(f"{shown}(): creating it failed: {type(exc).__name__}: {exc}") from exc
    return cast("Callable[..., Any]", instance)


def check_signature(fn: Callable[..., Any], shown: str, params: Sequence[str], **kw: Any) -> None:
    """Check that ``fn`` can be called with ``params`` positionally (and ``kw`` by keyword).

    Raises:
        SpecError: Naming the expected signature.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # not introspectable (rare for Python code): let the call decide
    try:
        signature.bind(*params, **kw)
    except TypeError as exc:
        wanted = ", ".join([*params, *(f"{k}=..." for k in kw)])
        raise SpecError(
            f"{shown} cannot be called as ({wanted}): {exc}; give it that signature"
        ) from None


def _resolve(
    target: Callable[..., Any] | str, option: str, params: Sequence[str], **kw: Any
) -> Callable[..., Any]:
    shown = repr(target) if isinstance(target, str) else getattr(target, "__qualname__", "it")
    try:
        if isinstance(target, str):
            found = load_callable(target)
        elif callable(target):
            found = target
        else:
            raise SpecError(f"expected a callable or an import path, got {target!r}")
        fn = user_callable(found, shown)
        check_signature(fn, shown, params, **kw)
    except SpecError as exc:
        raise SpecError(f"{option}: {exc}") from exc.__cause__
    return fn


@dataclass(frozen=True)
class Custom:
    """A user function ``fn(output, expected, run) -> float``, given directly or as an import
    path ``"package.module:function"`` (checked when built: see :func:`user_callable` and
    :func:`check_signature`). Its result is clamped to ``[0, 1]``; exceptions it raises
    propagate to :func:`~wtb_domain.evaluation.score_execution`, which records them on the
    score card. Scoring runs it within its time budget (see :mod:`.budget`)."""

    function: CustomFn | str
    name: str = "custom"
    runs_user_code: ClassVar[bool] = True
    _fn: Callable[..., Any] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fn = _resolve(self.function, "function", ("output", "expected", "run"))
        object.__setattr__(self, "_fn", fn)

    @property
    def budget_key(self) -> object:
        """What a hung call is tracked by (see :func:`~.budget.call_isolated`)."""
        return self._fn if inspect.isfunction(self._fn) else type(self._fn)

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
    runs_user_code: ClassVar[bool] = True
    _fn: Callable[..., Any] = dataclasses.field(init=False, repr=False, compare=False)
    _takes_rubric: bool = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_field(self.field)
        fn = _resolve(self.judge, "judge", ("question", "output_text", "expected_text"))
        takes_rubric = _accepts_rubric(fn)
        if self.rubric and not takes_rubric:
            raise SpecError(
                f"rubric: judge {self.judge!r} takes no 'rubric' argument; add a "
                "`rubric: str = ''` parameter to it or drop the rubric"
            )
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_takes_rubric", takes_rubric)

    @property
    def budget_key(self) -> object:
        """What a hung call is tracked by (see :func:`~.budget.call_isolated`)."""
        return self._fn if inspect.isfunction(self._fn) else type(self._fn)

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
